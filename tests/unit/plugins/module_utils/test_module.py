# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/module_utils/_module.py: the options every module shares, ModuleRun turning errors into fail_json with
executed_commands (exercised through a small module's main() run by AnsibleModule, conftest.run_module), and where
the data directory comes from when pg_path is not given (resolve_pg_path)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _module
from ansible_collections.chronos.pgbackrest.plugins.module_utils._module import ModuleRun
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError

from ansible_collections.chronos.pgbackrest.tests.unit.harness import PREFIX, SECRET_ENVIRONMENT, SECRETS, ok


class Module(object):
    """A module whose main() runs `body(run)` inside ModuleRun."""

    def __init__(self, body, spec=None, puts_back=False):
        self.body = body
        self.spec = spec
        self.puts_back = puts_back

    def main(self):
        run = ModuleRun(self.spec, supports_check_mode=True, puts_back=self.puts_back)
        with run:
            self.body(run)
            run.exit(changed=False)


def test_common_argument_spec():
    spec = _module.common_argument_spec()
    assert spec['stanza'] == dict(type='str', required=True)
    assert [name for name, option in sorted(spec.items()) if option.get('no_log')] == [
        'repo_cipher_pass', 'repo_s3_key', 'repo_s3_key_secret']
    assert (spec['os_user']['default'], spec['pg_port']['default'], spec['pg_socket_path']['default'],
            spec['pg_service']['default'], spec['stop_timeout']['default']) == (
        'postgres', 5432, '/var/run/postgresql', 'postgresql', 60)


def test_secrets():
    assert _module.secrets(dict(SECRETS, stanza='s')) == SECRETS
    assert _module.secrets({}) == dict(repo_cipher_pass=None, repo_s3_key=None, repo_s3_key_secret=None)


def test_a_run_builds_target_and_pgbackrest(run_module):
    seen = {}

    def body(run):
        seen.update(kind=run.target.kind, stanza=run.pgbackrest.stanza, config=run.pgbackrest.config,
                    binary=run.pgbackrest.binary, environment=run.pgbackrest.environment, pg_user=run.target.pg_user,
                    check_mode=run.check_mode)
    result = run_module(Module(body), dict(stanza='chronos-v2', config='/etc/pgbackrest/pgbackrest.conf',
                                           binary='/usr/bin/pgbackrest', pg_user='chronos', **SECRETS), check_mode=True)
    assert not result.failed
    assert seen == dict(kind='host', stanza='chronos-v2', config='/etc/pgbackrest/pgbackrest.conf',
                        binary='/usr/bin/pgbackrest', environment=SECRET_ENVIRONMENT, pg_user='chronos',
                        check_mode=True)
    assert result.result['executed_commands'] == []


def test_exit_reports_executed_commands(run_module):
    result = run_module(Module(lambda run: run.pgbackrest.run('check')), dict(stanza='chronos-v2'), [ok()])
    assert result.result['executed_commands'] == [' '.join(PREFIX + ['check'])]


def test_a_chronos_error_becomes_fail_json_with_its_fields(run_module):
    def body(run):
        run.pgbackrest.run('check')
        raise ChronosError('Unable to do it: because.', failed_part='stanza', executed_commands=['forged'])
    result = run_module(Module(body), dict(stanza='chronos-v2'), [ok()])
    assert result.failed
    assert result.msg == 'Unable to do it: because.'
    assert result.result['failed_part'] == 'stanza'
    # The commands run, never what an error claims they were.
    assert result.result['executed_commands'] == [' '.join(PREFIX + ['check'])]


def test_a_pgbackrest_error_keeps_rc_and_output(run_module, captured):
    result = run_module(Module(lambda run: run.pgbackrest.run('check', attempt='check stanza chronos-v2')),
                        dict(stanza='chronos-v2'), [(87, b'', captured('check-archive-off.err').encode())])
    assert result.failed
    assert (result.result['rc'], result.result['error_code'], result.result['failed_part']) == (87, 87, 'archiving')
    assert result.result['stderr'] == captured('check-archive-off.err')


def test_an_unexpected_exception_is_reported_with_its_traceback(run_module):
    def body(run):
        raise KeyError('stop_time')
    result = run_module(Module(body), dict(stanza='chronos-v2'))
    assert result.failed
    assert result.msg == "KeyError: 'stop_time'"
    assert 'Traceback (most recent call last)' in result.result['exception']
    assert result.result['executed_commands'] == []


def test_a_target_that_cannot_be_made(run_module, docker):
    result = run_module(Module(lambda run: pytest.fail('the body ran')), dict(stanza='chronos-v2', container='chronos-db'))
    assert result.failed
    assert result.msg.startswith("Container 'chronos-db' does not exist on this Docker host")
    assert result.result['executed_commands'] == []


def test_the_targets_helper_is_removed_at_the_end(run_module, docker):
    container = docker.add_container(status='exited')

    def body(run):
        run.target.allow_commands_while_stopped()
        run.target.run(['true'])
    result = run_module(Module(body), dict(stanza='chronos-v2', container='chronos-db'), [ok()])
    assert not result.failed
    helper = [event for event in docker.events if event[0] == 'remove']
    assert helper == [('remove', 'chronos-db-pgbackrest-helper')]
    assert container.status == 'exited'


def test_the_helper_is_removed_on_failure_too(run_module, docker):
    docker.add_container(status='exited')

    def body(run):
        run.target.allow_commands_while_stopped()
        run.target.run(['true'])
        raise ChronosError('failed')
    result = run_module(Module(body), dict(stanza='chronos-v2', container='chronos-db'), [ok()])
    assert result.failed and ('remove', 'chronos-db-pgbackrest-helper') in docker.events


INSTALLED = [dict(path='/usr/local/bin/pgbackrest-backup.sh', content='#!/bin/sh\n', uid=0, gid=0, mode='0755')]


def record_installed(settings_dir):
    os.makedirs(settings_dir, exist_ok=True)
    with open(os.path.join(settings_dir, 'chronos-v2.json'), 'w') as handle:
        json.dump(dict(stanza='chronos-v2', installed=INSTALLED), handle)


def test_a_module_that_acts_puts_back_what_a_recreated_container_lost(run_module, docker, settings_dir):
    container = docker.add_container()
    record_installed(settings_dir)
    result = run_module(Module(lambda run: run.exit(changed=False), puts_back=True),
                        dict(stanza='chronos-v2', container='chronos-db'))
    assert not result.failed, result.msg
    assert result.result['put_back'] == ['/usr/local/bin/pgbackrest-backup.sh'] and result.result['changed'] is True
    assert container.files['/usr/local/bin/pgbackrest-backup.sh'] == (b'#!/bin/sh\n', 0, 0, 0o755)
    again = run_module(Module(lambda run: run.exit(changed=False), puts_back=True),
                       dict(stanza='chronos-v2', container='chronos-db'))
    assert 'put_back' not in again.result and again.result['changed'] is False


@pytest.mark.parametrize('puts_back, check_mode', [(False, False), (True, True)])
def test_read_only_modules_and_check_mode_put_nothing_back(run_module, docker, settings_dir, puts_back, check_mode):
    container = docker.add_container()
    record_installed(settings_dir)
    result = run_module(Module(lambda run: run.exit(changed=False), puts_back=puts_back),
                        dict(stanza='chronos-v2', container='chronos-db'), check_mode=check_mode)
    assert 'put_back' not in result.result and container.files == {}


def test_a_module_may_change_shared_options(run_module):
    spec = dict(stanza=dict(type='str', required=False, default=''))
    seen = []
    result = run_module(Module(lambda run: seen.append(run.pgbackrest.command('info')), spec), {})
    assert not result.failed
    assert seen == [['pgbackrest', '--log-level-console=off', '--log-level-stderr=warn', 'info']]


# --- resolve_pg_path -------------------------------------------------------------------------------------------

def recorded(settings_dir, text):
    """The settings file site.yml writes for chronos-v2 (pgbackrest_schedule), holding text."""
    os.makedirs(settings_dir)
    with open(os.path.join(settings_dir, 'chronos-v2.json'), 'w') as handle:
        handle.write(text)


class Host(object):
    """A target as resolve_pg_path sees it: a host has no PGDATA."""
    pgdata = None


class Container(object):
    pgdata = '/var/lib/postgresql/data'


def test_resolve_pg_path_as_given(settings_dir):
    recorded(settings_dir, '{"pg_path": "/srv/recorded"}')
    params = dict(stanza='chronos-v2', pg_path='/srv/given')
    assert _module.resolve_pg_path(params, Container()) == '/srv/given'


def test_resolve_pg_path_of_a_container_is_its_pgdata(settings_dir):
    recorded(settings_dir, '{"pg_path": "/srv/recorded"}')
    assert _module.resolve_pg_path(dict(stanza='chronos-v2', pg_path=None), Container()) == '/var/lib/postgresql/data'


def test_resolve_pg_path_from_the_recorded_settings(settings_dir):
    """PostgreSQL may be down during an incident: the data directory comes from what site.yml recorded."""
    recorded(settings_dir, '{"stanza": "chronos-v2", "pg_path": "/var/lib/postgresql/15/main"}')
    assert _module.resolve_pg_path(dict(stanza='chronos-v2', pg_path=None), Host()) == '/var/lib/postgresql/15/main'


@pytest.mark.parametrize('text', [None, '{"stanza": "chronos-v2", "pg_path": null}', '{"stanza": ', '{}'],
                         ids=['no-file', 'none-recorded', 'broken-file', 'no-key'])
def test_resolve_pg_path_required_when_nothing_tells(settings_dir, text):
    if text is not None:
        recorded(settings_dir, text)
    with pytest.raises(ChronosError) as raised:
        _module.resolve_pg_path(dict(stanza='chronos-v2', pg_path=None), Host())
    assert raised.value.msg == ('pg_path is required: the data directory (site.yml has not recorded one for stanza '
                                'chronos-v2 in %s/chronos-v2.json). Nothing was changed.' % settings_dir)
