# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgbackrest_archiving's main(): PostgreSQL's settings answered as psql prints them (pg_settings joined with
postgresql.auto.conf), the service and pgbackrest check faked at the target seam."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.chronos.pgbackrest.plugins.modules import pgbackrest_archiving

from ansible_collections.chronos.pgbackrest.tests.unit.harness import PREFIX, fails, ok, psql_rows

COMMAND = 'pgbackrest --stanza=chronos-v2 archive-push %p'
ARGS = dict(stanza='chronos-v2', archive_command=COMMAND)


def settings(mode=('on', 'on'), command=(COMMAND, COMMAND), timeout=('60', '60s'), wal_level=('replica', None)):
    """psql's answer to the settings query: name, running value, unit, value in postgresql.auto.conf, whether set
    there."""
    def row(name, pair, unit=''):
        return (name, pair[0], unit, pair[1] or '', 't' if pair[1] is not None else 'f')
    return ok(psql_rows(row('archive_command', command), row('archive_mode', mode),
                        row('archive_timeout', timeout, 's'), row('wal_level', wal_level)))


ARCHIVING = settings()
OFF = settings(mode=('off', None), command=('(disabled)', None), timeout=('0', None))


def test_nothing_to_do_runs_nothing_else(run_module):
    run = run_module(pgbackrest_archiving, ARGS, [ARCHIVING])
    assert not run.failed, run.msg
    assert run.result['changed'] is False
    assert run.commands == ['psql']
    assert (run.result['altered'], run.result['reloaded'], run.result['restarted'], run.result['restart_needed'],
            run.result['checked']) == ({}, False, False, False, False)


def test_check_always(run_module):
    run = run_module(pgbackrest_archiving, dict(ARGS, check='always'), [ARCHIVING, ok()])
    assert (run.result['changed'], run.result['checked'], run.commands) == (False, True, ['psql', 'check'])
    assert run.result['executed_commands'][-1] == ' '.join(PREFIX + ['check'])


def test_a_new_archive_command_is_set_and_reloaded_then_checked(run_module):
    run = run_module(pgbackrest_archiving, ARGS, [settings(command=('/bin/true', '/bin/true')), ok(), ok()])
    assert not run.failed, run.msg
    assert run.commands == ['psql', 'psql', 'check']
    assert run.calls[1]['stdin'] == "ALTER SYSTEM SET archive_command = :'archive_command';\nSELECT pg_reload_conf();\n"
    assert run.calls[1]['argv'][-4:] == ['-v', 'archive_command=%s' % COMMAND, '-f', '-']
    assert (run.result['changed'], run.result['altered'], run.result['reloaded'], run.result['restarted'],
            run.result['checked']) == (True, {'archive_command': COMMAND}, True, False, True)


def test_archive_timeout_in_another_spelling_is_the_same(run_module):
    run = run_module(pgbackrest_archiving, dict(ARGS, archive_timeout='1min'), [settings(timeout=('60', '1min'))])
    assert (run.result['changed'], run.commands) == (False, ['psql'])


def test_archiving_off_is_set_and_postgresql_restarted(run_module):
    run = run_module(pgbackrest_archiving, dict(ARGS, pg_path='/var/lib/postgresql/15/main'),
                     [OFF, ok(), ok(), ok(), ok(), ARCHIVING, ok()])
    assert not run.failed, run.msg
    assert run.commands == ['psql', 'psql', 'service', 'service', 'pg_isready', 'psql', 'check']
    assert [call['argv'][1:] for call in run.calls if call['argv'][0].endswith('service')] == [
        ['postgresql', 'stop'], ['postgresql', 'start']]
    assert run.calls[1]['stdin'].splitlines() == [
        "ALTER SYSTEM SET archive_command = :'archive_command';", "ALTER SYSTEM SET archive_mode = :'archive_mode';",
        "ALTER SYSTEM SET archive_timeout = :'archive_timeout';", 'SELECT pg_reload_conf();']
    assert (run.result['changed'], run.result['restarted'], run.result['restart_needed'], run.result['checked']) == (
        True, True, False, True)
    assert run.result['altered'] == dict(archive_mode='on', archive_command=COMMAND, archive_timeout='60s')


def test_an_interrupted_run_only_restarts(run_module):
    """ALTER SYSTEM was done, the restart was not: no ALTER again, no reload needed, a restart."""
    run = run_module(pgbackrest_archiving, ARGS, [settings(mode=('off', 'on')), ok(), ok(), ok(), ARCHIVING, ok()])
    assert not run.failed, run.msg
    assert run.commands == ['psql', 'service', 'service', 'pg_isready', 'psql', 'check']
    assert (run.result['altered'], run.result['reloaded'], run.result['restarted']) == ({}, False, True)


def test_wal_level_minimal(run_module):
    run = run_module(pgbackrest_archiving, ARGS, [settings(wal_level=('minimal', None)), ok(), ok(), ok(), ok(),
                                                  ARCHIVING, ok()])
    assert run.result['altered'] == {'wal_level': 'replica'}
    assert run.result['restarted'] is True


def test_check_mode_reports_and_changes_nothing(run_module):
    run = run_module(pgbackrest_archiving, ARGS, [OFF], check_mode=True)
    assert not run.failed, run.msg
    assert run.commands == ['psql']
    assert (run.result['changed'], run.result['restart_needed'], run.result['restarted'], run.result['checked']) == (
        True, True, False, False)
    assert set(run.result['altered']) == {'archive_mode', 'archive_command', 'archive_timeout'}


def test_without_restart_the_result_says_restart_needed(run_module):
    run = run_module(pgbackrest_archiving, dict(ARGS, restart=False, check='never'), [OFF, ok()])
    assert not run.failed, run.msg
    assert run.commands == ['psql', 'psql']
    assert (run.result['changed'], run.result['restarted'], run.result['restart_needed']) == (True, False, True)


@pytest.mark.parametrize('check', ['changed', 'always'])
def test_without_restart_no_check_that_must_fail(run_module, check):
    """pgbackrest check would fail with [087] (archive_mode must be enabled) until the restart the caller put off."""
    run = run_module(pgbackrest_archiving, dict(ARGS, restart=False, check=check), [OFF, ok()])
    assert not run.failed, run.msg
    assert run.commands == ['psql', 'psql']
    assert (run.result['changed'], run.result['restart_needed'], run.result['checked']) == (True, True, False)


def test_without_restart_a_reload_is_still_checked(run_module):
    """Only a pending restart holds the check back: a new archive_command is checked after its reload."""
    answers = [settings(command=('/bin/true', '/bin/true')), ok(), ok()]
    run = run_module(pgbackrest_archiving, dict(ARGS, restart=False), answers)
    assert run.commands == ['psql', 'psql', 'check']
    assert (run.result['restart_needed'], run.result['checked']) == (False, True)


def test_a_restart_that_does_not_enable_archiving(run_module):
    """postgresql.conf overrides ALTER SYSTEM (an include after it, or a command-line -c)."""
    run = run_module(pgbackrest_archiving, ARGS, [settings(mode=('off', 'on')), ok(), ok(), ok(),
                                                  settings(mode=('off', 'on'))])
    assert run.failed
    assert run.msg == ('PostgreSQL on this host still runs without WAL archiving after its restart: check '
                       'postgresql.conf for an archive_mode or wal_level that overrides ALTER SYSTEM.')
    assert (run.result['restarted'], run.result['restart_needed']) == (True, True)


def test_postgresql_does_not_come_back(run_module, clock):
    run = run_module(pgbackrest_archiving, ARGS, [settings(mode=('off', 'on')), ok(), ok()] + [fails(2)] * 121)
    assert run.failed
    assert run.msg == 'PostgreSQL did not accept connections within 120 s of its restart on this host.'


def test_the_settings_cannot_be_read(run_module):
    run = run_module(pgbackrest_archiving, ARGS, [fails(2, b'psql: error: connection to server failed\n')])
    assert run.failed
    assert run.msg == ('Unable to read the WAL archiving settings: psql on this host exited 2: psql: error: connection '
                       'to server failed')


@pytest.mark.parametrize('current', [ARCHIVING, OFF], ids=['archiving', 'off'])
def test_a_malformed_archive_timeout_is_refused_before_any_change(run_module, current):
    run = run_module(pgbackrest_archiving, dict(ARGS, archive_timeout='a minute'), [current])
    assert run.failed
    assert run.msg.startswith("Invalid archive_timeout: 'a minute' is not a time setting")
    assert run.commands == ['psql']


def test_a_failed_check_is_reported(run_module):
    run = run_module(pgbackrest_archiving, ARGS, [settings(command=('/bin/true', '/bin/true')), ok(),
                                                  fails(82, b'ERROR: [082]: WAL segment 000000010000000000000005 was '
                                                            b'not archived before the 60000ms timeout\n')])
    assert run.failed
    assert (run.result['failed_part'], run.result['error_code']) == ('archiving', 82)
    assert run.msg.startswith('Unable to check stanza chronos-v2: pgBackRest error [082]: ')


def test_in_a_container_the_container_is_restarted(run_module, docker):
    container = docker.add_container()
    run = run_module(pgbackrest_archiving, dict(ARGS, container='chronos-db'),
                     [OFF, ok(), ok(), ARCHIVING, ok()])
    assert not run.failed, run.msg
    assert run.commands == ['psql', 'psql', 'pg_isready', 'psql', 'check']
    assert 'update' not in [event[0] for event in docker.events], 'a restart for archive_mode holds no restart policy'
    assert [event for event in docker.events if event[0] in ('stop', 'start')] == [
        ('stop', 'chronos-db', 60), ('start', 'chronos-db')]
    assert container.status == 'running'
    assert 'docker stop --time 60 chronos-db' in run.result['executed_commands']
