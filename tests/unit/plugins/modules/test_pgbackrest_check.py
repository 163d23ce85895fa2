# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgbackrest_check's main() with its command answered from captured pgBackRest 2.45 output."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.chronos.pgbackrest.plugins.modules import pgbackrest_check

from ansible_collections.chronos.pgbackrest.tests.unit.harness import PREFIX, SECRET_ENVIRONMENT, SECRETS, fails, ok


def test_passes(run_module):
    run = run_module(pgbackrest_check, dict(stanza='chronos-v2'), [ok()])
    assert (run.failed, run.result['changed'], run.result['ok']) == (False, False, True)
    assert run.commands == ['check']
    assert run.calls[0]['env'] == {}


@pytest.mark.parametrize('rc, name, code, part', [
    (87, 'check-archive-off.err', 87, 'archiving'),
    (28, 'check-mismatch.err', 28, 'stanza'),
])
def test_failure_names_the_part(run_module, rc, name, code, part):
    run = run_module(pgbackrest_check, dict(stanza='chronos-v2'), [fails(rc, name)])
    assert run.failed
    assert (run.result['error_code'], run.result['failed_part']) == (code, part)
    assert run.msg.startswith('Unable to check stanza chronos-v2: pgBackRest error [%03d]: ' % code)
    assert run.result['executed_commands'] == [' '.join(PREFIX + ['check'])]


def test_without_error_line_reports_the_exit_status(run_module):
    run = run_module(pgbackrest_check, dict(stanza='chronos-v2'), [fails(1, b'something odd\n')])
    assert run.failed
    assert run.result['error_code'] is None and run.result['failed_part'] == 'pgbackrest'
    assert 'pgBackRest exited 1: something odd' in run.msg


def test_check_mode_does_not_run_check(run_module):
    run = run_module(pgbackrest_check, dict(stanza='chronos-v2'), [], check_mode=True)
    assert (run.failed, run.result['changed'], run.result['ok']) == (False, False, None)
    assert run.result['executed_commands'] == [' '.join(PREFIX + ['check'])]


def test_secrets_reach_pgbackrest_through_the_environment_only(run_module):
    run = run_module(pgbackrest_check, dict(stanza='chronos-v2', **SECRETS), [ok()])
    assert run.calls[0]['env'] == SECRET_ENVIRONMENT
    assert not [part for part in run.calls[0]['argv'] for secret in SECRETS.values() if secret in part]


def test_a_stopped_container_is_refused_with_how_to_start_it(run_module, docker):
    docker.add_container(status='exited')
    run = run_module(pgbackrest_check, dict(stanza='chronos-v2', container='chronos-db'))
    assert run.failed
    assert run.msg.startswith("Container 'chronos-db' is not running (status: exited): start it (docker start chronos-db)")
    assert docker.created == []
