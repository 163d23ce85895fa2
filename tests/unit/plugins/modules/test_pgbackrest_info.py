# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgbackrest_info's main() with its commands answered from captured pgBackRest 2.45 output."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

import pytest

from ansible_collections.chronos.pgbackrest.plugins.modules import pgbackrest_info

from ansible_collections.chronos.pgbackrest.tests.unit.harness import PREFIX, SECRET_ENVIRONMENT, SECRETS, fails, ok


def test_reports_stanza_backups_and_version(run_module):
    run = run_module(pgbackrest_info, dict(stanza='chronos-v2'), [ok('version.out'), ok('info-full-diff-incr.json')])
    assert not run.failed, run.msg
    assert run.result['changed'] is False
    assert run.result['pgbackrest_version'] == '2.45'
    assert run.commands == ['version', 'info']
    assert [backup['type'] for backup in run.result['backups']] == ['full', 'full', 'diff', 'incr']
    assert run.result['latest_backup']['label'] == '20261124-092311F_20261124-092345I'
    assert run.result['latest_backup']['stop_time'] == '2026-11-24 09:23:46+00'
    assert run.result['stanza']['backups'] == run.result['backups']
    assert run.result['executed_commands'] == ['pgbackrest version',
                                               ' '.join(PREFIX + ['--output=json', 'info'])]


def test_runs_in_check_mode_too(run_module):
    run = run_module(pgbackrest_info, dict(stanza='chronos-v2'), [ok('version.out'), ok('info-one-full.json')],
                     check_mode=True)
    assert not run.failed and run.result['latest_backup']['label'] == '20261124-092101F'


def test_without_backup_is_not_a_failure(run_module):
    run = run_module(pgbackrest_info, dict(stanza='chronos-v2'), [ok('version.out'), ok('info-no-backup.json')])
    assert not run.failed, run.msg
    assert run.result['latest_backup'] is None
    assert run.result['backups'] == []


@pytest.mark.parametrize('name, part, in_msg', [
    ('info-missing-stanza.json', 'stanza', 'pgbackrest_stanza with state=present'),
    ('info-unreachable.json', 'repository', "unable to get address for 'nowhere.chronos.lab'"),
    ('info-wrong.json', 'encryption', 'cipher passphrase (repo1-cipher-pass)'),
    ('info-wrong-env.json', 'encryption', 'cipher passphrase (repo1-cipher-pass)'),
], ids=['missing', 'unreachable', 'wrong-passphrase', 'wrong-passphrase-env'])
def test_fails_on_an_unusable_stanza(run_module, name, part, in_msg):
    run = run_module(pgbackrest_info, dict(stanza='chronos-v2'), [ok('version.out'), ok(name)])
    assert run.failed
    assert run.result['failed_part'] == part
    assert in_msg in run.msg
    assert run.msg.startswith("Cannot read the backups: pgBackRest reports stanza 'chronos-v2' as ")
    assert run.result['stanza']['name'] == 'chronos-v2'


@pytest.mark.parametrize('name', ['info-wrong.json', 'info-wrong-env.json'])
def test_result_on_a_wrong_passphrase_is_valid_utf8(run_module, name):
    """ansible-core 2.19 refuses a module result holding text that is not valid UTF-8."""
    run = run_module(pgbackrest_info, dict(stanza='chronos-v2'), [ok('version.out'), ok(name)])
    assert run.failed
    json.dumps(run.result, ensure_ascii=False).encode('utf-8')


def test_fails_on_output_that_is_not_json(run_module):
    run = run_module(pgbackrest_info, dict(stanza='chronos-v2'), [ok('version.out'), ok(b'stanza: chronos-v2\n')])
    assert run.failed
    assert run.msg.startswith('Unable to parse the output of pgbackrest info --output=json')


def test_fails_when_pgbackrest_does_not_run(run_module):
    run = run_module(pgbackrest_info, dict(stanza='chronos-v2'), [fails(127, b'runuser: failed to execute pgbackrest\n')])
    assert run.failed
    assert run.msg == ('Unable to read the pgBackRest version: pgBackRest exited 127: runuser: failed to execute '
                       'pgbackrest. Read the pgBackRest log in /var/log/pgbackrest for details.')
    assert run.result['executed_commands'] == ['pgbackrest version']


def test_secrets_reach_pgbackrest_through_the_environment_only(run_module):
    run = run_module(pgbackrest_info, dict(stanza='chronos-v2', config='/etc/pgbackrest/pgbackrest.conf', **SECRETS),
                     [ok('version.out'), ok('info-full-diff-incr.json')])
    assert not run.failed, run.msg
    for call in run.calls:
        assert not [part for part in call['argv'] for secret in SECRETS.values() if secret in part]
        assert call['env'] == SECRET_ENVIRONMENT
    assert not [cmd for cmd in run.result['executed_commands'] for secret in SECRETS.values() if secret in cmd]


def test_in_a_container_as_postgres_with_secrets_only_in_the_environment(run_module, docker):
    docker.add_container()
    run = run_module(pgbackrest_info, dict(stanza='chronos-v2', container='chronos-db',
                                           repo_cipher_pass=SECRETS['repo_cipher_pass']),
                     [ok('version.out'), ok('info-one-full.json')])
    assert not run.failed, run.msg
    assert run.result['latest_backup']['type'] == 'full' and run.result['pgbackrest_version'] == '2.45'
    for call in run.calls:
        assert (call['where'], call['user'], call['argv'][0]) == ('chronos-db', 'postgres', 'pgbackrest')
        assert call['env'] == {'PGBACKREST_REPO1_CIPHER_PASS': SECRETS['repo_cipher_pass']}
    assert docker.created == []


def test_a_missing_container_is_named_and_nothing_runs(run_module, docker):
    run = run_module(pgbackrest_info, dict(stanza='chronos-v2', container='chronos-db'))
    assert run.failed
    assert "Container 'chronos-db' does not exist on this Docker host" in run.msg
    assert run.result['executed_commands'] == []
