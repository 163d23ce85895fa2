# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The modules' main() with run_command answering captured_bytes pgBackRest 2.45 output (fixtures/README.md).

Each scenario lists what run_command returns, in order; run_module fails the test when a module runs a
command more or less than that.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

import pytest

from ansible_collections.chronos.pgbackrest.plugins.modules import (
    pgbackrest_backup, pgbackrest_check, pgbackrest_info, pgbackrest_stanza)

LAB_SYSID = 7711665496204834485        # the cluster of info-one-full.json ... info-after-diff.json
OLD_LAB_SYSID = 7711661904765073182    # the cluster of info-no-backup.json
OTHER_SYSID = 7711666316191427927      # the second cluster stanza-create-mismatch.err was captured_bytes with

D1 = '20261124-092311F_20261124-092341D'
D1_STOP = 1795512223
D2 = '20261124-092311F_20261124-092445D'

SECRETS = dict(repo_cipher_pass='cipher-secret-1', repo_s3_key='s3-key-2', repo_s3_key_secret='s3-secret-3')


def ok(name, captured_bytes):
    return (0, captured_bytes(name), b'')


def fails(rc, name, captured_bytes):
    return (rc, b'', captured_bytes(name))


def version(captured_bytes):
    return ok('version.out', captured_bytes)


def assert_utf8(result):
    """ansible-core 2.19 refuses a module result holding text that is not valid UTF-8 ("Refusing to deserialize
    an invalid UTF8 string value"), e.g. the surrogate escapes run_command makes of undecodable bytes."""
    json.dumps(result, ensure_ascii=False).encode('utf-8')


# --- pgbackrest_stanza ------------------------------------------------------------------------------

def test_stanza_creates_a_missing_stanza(run_module, captured_bytes, make_cluster):
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', pg_path=make_cluster(OLD_LAB_SYSID)), [
        ok('info-missing-stanza.json', captured_bytes),
        (0, b'', b''),                       # stanza-create prints nothing with --log-level-console=off
        ok('info-no-backup.json', captured_bytes),
    ])
    assert not run.failed, run.result.get('msg')
    assert run.result['changed'] is True
    assert run.commands == ['info', 'stanza-create', 'info']
    assert run.result['executed_commands'][1].endswith(' stanza-create')
    assert run.result['stanza']['status']['code'] == 2
    assert run.result['cluster'] == dict(version='15', system_id=OLD_LAB_SYSID)


@pytest.mark.parametrize('name', ['info-no-backup.json', 'info-full-and-diff.json'])
def test_stanza_unchanged_when_it_matches_the_cluster(run_module, captured_bytes, make_cluster, name):
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', pg_path=make_cluster(OLD_LAB_SYSID)),
                     [ok(name, captured_bytes)])
    assert not run.failed, run.result.get('msg')
    assert run.result['changed'] is False
    assert run.commands == ['info']


@pytest.mark.parametrize('state', ['present', 'upgraded'])
def test_stanza_unchanged_for_both_states_on_the_lab(run_module, captured_bytes, make_cluster, state):
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', state=state, pg_path=make_cluster(LAB_SYSID)),
                     [ok('info-after-diff.json', captured_bytes)])
    assert (run.failed, run.result['changed'], run.commands) == (False, False, ['info'])


@pytest.mark.parametrize('system_id, version', [(OTHER_SYSID, '15'), (LAB_SYSID, '16')])
def test_stanza_present_fails_on_another_cluster(run_module, captured_bytes, make_cluster, system_id, version):
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', pg_path=make_cluster(system_id, version)),
                     [ok('info-full-diff-incr.json', captured_bytes)])
    assert run.failed
    assert run.result['failed_part'] == 'stanza'
    assert 'state=upgraded' in run.result['msg']
    assert "stanza 'chronos-v2' belongs to PostgreSQL 15 with system-id %s" % LAB_SYSID in run.result['msg']
    assert 'PostgreSQL %s with system-id %s' % (version, system_id) in run.result['msg']
    assert run.commands == ['info']


def test_stanza_check_mode_plans_stanza_create(run_module, captured_bytes, make_cluster):
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', pg_path=make_cluster(LAB_SYSID)),
                     [ok('info-missing-stanza.json', captured_bytes)], check_mode=True)
    assert not run.failed, run.result.get('msg')
    assert run.result['changed'] is True
    assert run.commands == ['info']          # stanza-create is not run...
    assert run.result['executed_commands'] == [   # ...but is reported
        '/usr/bin/pgbackrest --stanza=chronos-v2 --log-level-console=off --log-level-stderr=warn --output=json info',
        '/usr/bin/pgbackrest --stanza=chronos-v2 --log-level-console=off --log-level-stderr=warn stanza-create',
    ]


def test_stanza_upgraded_check_mode_plans_stanza_upgrade(run_module, captured_bytes, make_cluster):
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', state='upgraded', pg_path=make_cluster(OTHER_SYSID)),
                     [ok('info-full-diff-incr.json', captured_bytes)], check_mode=True)
    assert (run.failed, run.result['changed'], run.commands) == (False, True, ['info'])
    assert run.result['executed_commands'][-1].endswith(' stanza-upgrade')


def test_stanza_upgraded_fails_when_the_repository_still_differs(run_module, captured_bytes, make_cluster):
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', state='upgraded', pg_path=make_cluster(OTHER_SYSID)), [
        ok('info-full-diff-incr.json', captured_bytes),
        (0, b'', b''),
        ok('info-full-diff-incr.json', captured_bytes),
    ])
    assert run.failed
    assert run.commands == ['info', 'stanza-upgrade', 'info']
    assert 'stanza-upgrade succeeded, yet the repository still does not match' in run.result['msg']


def test_stanza_upgraded_fails_when_missing(run_module, captured_bytes, make_cluster):
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', state='upgraded', pg_path=make_cluster(LAB_SYSID)),
                     [ok('info-missing-stanza.json', captured_bytes)])
    assert run.failed
    assert 'nothing to upgrade' in run.result['msg'] and 'state=present' in run.result['msg']
    assert run.commands == ['info']


def test_stanza_create_error_is_reported(run_module, captured_bytes, make_cluster):
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', pg_path=make_cluster(OTHER_SYSID)), [
        ok('info-missing-stanza.json', captured_bytes),
        fails(28, 'stanza-create-mismatch.err', captured_bytes),
    ])
    assert run.failed
    assert (run.result['error_code'], run.result['failed_part'], run.result['rc']) == (28, 'stanza', 28)
    assert run.result['msg'].startswith(
        'Unable to stanza-create for stanza chronos-v2: pgBackRest error [028]: backup and archive info files exist '
        'but do not match the database HINT: is this the correct stanza?')
    assert run.result['cmd'].endswith(' stanza-create')


@pytest.mark.parametrize('name, part', [
    ('info-unreachable.json', 'repository'),
    ('info-wrong.json', 'encryption'),
])
def test_stanza_fails_on_an_unusable_repository(run_module, captured_bytes, make_cluster, name, part):
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', pg_path=make_cluster(LAB_SYSID)), [ok(name, captured_bytes)])
    assert run.failed
    assert run.result['failed_part'] == part
    assert run.commands == ['info']


def test_stanza_fails_on_an_unreadable_pg_path(run_module, tmp_path):
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', pg_path=str(tmp_path / 'missing')), [])
    assert run.failed
    assert run.result['msg'].startswith('Unable to read the PostgreSQL cluster in %s' % (tmp_path / 'missing'))


# --- pgbackrest_info -------------------------------------------------------------------------------

def test_info_reports_stanza_backups_and_version(run_module, captured_bytes):
    run = run_module(pgbackrest_info, dict(stanza='chronos-v2'),
                     [version(captured_bytes), ok('info-full-diff-incr.json', captured_bytes)])
    assert not run.failed, run.result.get('msg')
    assert run.result['changed'] is False
    assert run.result['pgbackrest_version'] == '2.45'
    assert run.commands == ['version', 'info']
    assert [backup['type'] for backup in run.result['backups']] == ['full', 'full', 'diff', 'incr']
    assert run.result['latest_backup']['label'] == '20261124-092311F_20261124-092345I'
    assert run.result['latest_backup']['stop_time'] == '2026-11-24 09:23:46+00'
    assert run.result['stanza']['backups'] == run.result['backups']


def test_info_without_backup_is_not_a_failure(run_module, captured_bytes):
    run = run_module(pgbackrest_info, dict(stanza='chronos-v2'), [version(captured_bytes), ok('info-no-backup.json', captured_bytes)])
    assert not run.failed, run.result.get('msg')
    assert run.result['latest_backup'] is None
    assert run.result['backups'] == []


@pytest.mark.parametrize('name, part, in_msg', [
    ('info-missing-stanza.json', 'stanza', 'pgbackrest_stanza with state=present'),
    ('info-unreachable.json', 'repository', "unable to get address for 'nowhere.chronos.lab'"),
    ('info-wrong.json', 'encryption', 'cipher passphrase (repo1-cipher-pass)'),
    ('info-wrong-env.json', 'encryption', 'cipher passphrase (repo1-cipher-pass)'),
], ids=['missing', 'unreachable', 'wrong-passphrase', 'wrong-passphrase-env'])
def test_info_fails_on_an_unusable_stanza(run_module, captured_bytes, name, part, in_msg):
    run = run_module(pgbackrest_info, dict(stanza='chronos-v2'), [version(captured_bytes), ok(name, captured_bytes)])
    assert run.failed
    assert run.result['failed_part'] == part
    assert in_msg in run.result['msg']
    assert run.result['msg'].startswith("pgBackRest reports stanza 'chronos-v2' as ")


@pytest.mark.parametrize('name', ['info-wrong.json', 'info-wrong-env.json'])
def test_info_result_on_a_wrong_passphrase_is_valid_utf8(run_module, captured_bytes, name):
    run = run_module(pgbackrest_info, dict(stanza='chronos-v2'), [version(captured_bytes), ok(name, captured_bytes)])
    assert run.failed
    assert_utf8(run.result)


def test_stanza_and_backup_results_on_a_wrong_passphrase_are_valid_utf8(run_module, captured_bytes, make_cluster):
    stanza = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', pg_path=make_cluster(LAB_SYSID)),
                        [ok('info-wrong-env.json', captured_bytes)])
    backup = run_module(pgbackrest_backup, dict(stanza='chronos-v2'), [ok('info-wrong-env.json', captured_bytes)])
    assert stanza.failed and backup.failed
    assert_utf8(stanza.result)
    assert_utf8(backup.result)


def test_info_fails_on_output_that_is_not_json(run_module, captured_bytes):
    run = run_module(pgbackrest_info, dict(stanza='chronos-v2'),
                     [version(captured_bytes), (0, b'stanza: chronos-v2\n', b'')])
    assert run.failed
    assert run.result['msg'].startswith('Unable to parse the output of pgbackrest info --output=json')


# --- pgbackrest_backup ----------------------------------------------------------------------------

@pytest.mark.parametrize('backup_type, label, backup_stop', [
    ('full', '20261124-092311F', 1795512217),
    ('diff', D1, D1_STOP),                     # the incr after it does not count for a diff
    ('incr', '20261124-092311F_20261124-092345I', 1795512226),
])
def test_backup_reuses_a_fresh_backup(run_module, captured_bytes, monkeypatch, backup_type, label, backup_stop):
    monkeypatch.setattr(pgbackrest_backup, 'now', lambda: D1_STOP + 60)
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', type=backup_type, max_age='1h'),
                     [ok('info-full-diff-incr.json', captured_bytes)])
    assert not run.failed, run.result.get('msg')
    assert (run.result['changed'], run.result['reused']) == (False, True)
    assert run.result['backup']['label'] == label
    assert run.result['backup']['stop'] == backup_stop
    assert run.commands == ['info']


@pytest.mark.parametrize('name, backup_type, max_age, now, reused', [
    ('info-one-full.json', 'diff', '1h', 1795512084 + 60, '20261124-092101F'),     # a full satisfies a diff
    ('info-one-full.json', 'incr', '1h', 1795512084 + 60, '20261124-092101F'),
    ('info-one-full.json', 'full', '1h', 1795512084 + 3601, None),                  # older than max_age
    ('info-full-diff-incr.json', 'full', '5s', 1795512227, None),                   # a fresh diff is no full
    ('info-full-diff-incr.json', 'diff', '5s', 1795512227, D1),
    ('info-full-diff-incr.json', 'incr', '5s', 1795512227, '20261124-092311F_20261124-092345I'),
    ('info-no-backup.json', 'diff', '7d', 1795512227, None),
])
def test_backup_max_age(run_module, captured_bytes, monkeypatch, name, backup_type, max_age, now, reused):
    monkeypatch.setattr(pgbackrest_backup, 'now', lambda: now)
    # Check mode, so that when nothing is fresh enough the backup is planned rather than run.
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', type=backup_type, max_age=max_age),
                     [ok(name, captured_bytes)], check_mode=True)
    assert not run.failed, run.result.get('msg')
    assert run.result['reused'] is bool(reused)
    assert run.result['changed'] is not bool(reused)
    if reused:
        assert run.result['backup']['label'] == reused
        assert len(run.result['executed_commands']) == 1
    else:
        assert run.result['backup'] is None
        assert run.result['executed_commands'][-1].endswith(' --type=%s backup' % backup_type)


def test_backup_reused_backup_has_a_duration(run_module, captured_bytes, monkeypatch):
    monkeypatch.setattr(pgbackrest_backup, 'now', lambda: D1_STOP + 60)
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', type='full', max_age='90m'),
                     [ok('info-full-diff-incr.json', captured_bytes)])
    assert run.result['backup']['duration'] == 26
    assert run.result['backup']['stop_time'] == '2026-11-24 09:23:37+00'


@pytest.mark.parametrize('args', [
    dict(type='diff'),                   # no max_age: always back up
    dict(type='diff', max_age='60s'),    # the newest diff stopped 2 minutes before "now"
])
def test_backup_runs_and_returns_the_new_backup(run_module, captured_bytes, monkeypatch, args):
    monkeypatch.setattr(pgbackrest_backup, 'now', lambda: D1_STOP + 120)
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', **args), [
        ok('info-full-diff-incr.json', captured_bytes),
        (0, b'', b''),
        ok('info-after-diff.json', captured_bytes),
    ])
    assert not run.failed, run.result.get('msg')
    assert (run.result['changed'], run.result['reused']) == (True, False)
    assert run.commands == ['info', 'backup', 'info']
    assert run.calls[1]['argv'][-2:] == ['--type=diff', 'backup']
    backup = run.result['backup']
    assert (backup['label'], backup['type'], backup['prior']) == (D2, 'diff', '20261124-092311F')
    assert (backup['duration'], backup['stop_time']) == (2, '2026-11-24 09:24:47+00')
    assert (backup['wal_start'], backup['wal_stop']) == ('00000001000000000000000D', '00000001000000000000000D')


def test_backup_check_mode_plans_the_backup(run_module, captured_bytes):
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', type='incr'),
                     [ok('info-full-diff-incr.json', captured_bytes)], check_mode=True)
    assert (run.failed, run.result['changed'], run.result['backup']) == (False, True, None)
    assert run.commands == ['info']
    assert run.result['executed_commands'][-1].endswith(' --type=incr backup')


@pytest.mark.parametrize('rc, name, code, part, in_msg', [
    (50, 'backup-locked.err', 50, 'lock', 'HINT: is another pgBackRest process running?'),
    (87, 'backup-archive-off.err', 87, 'archiving', 'archive_mode must be enabled'),
])
def test_backup_failure_names_the_part(run_module, captured_bytes, rc, name, code, part, in_msg):
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', type='full'),
                     [ok('info-one-full.json', captured_bytes), fails(rc, name, captured_bytes)])
    assert run.failed
    assert (run.result['error_code'], run.result['failed_part'], run.result['rc']) == (code, part, rc)
    assert run.result['msg'].startswith('Unable to take a full backup of stanza chronos-v2: pgBackRest error [%03d]: ' % code)
    assert in_msg in run.result['msg']
    assert 'WARN' not in run.result['msg']


def test_backup_fails_when_info_lists_no_new_backup(run_module, captured_bytes):
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2'), [
        ok('info-one-full.json', captured_bytes), (0, b'', b''), ok('info-one-full.json', captured_bytes)])
    assert run.failed
    assert 'lists no new backup' in run.result['msg']


def test_backup_fails_on_a_missing_stanza(run_module, captured_bytes):
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2'), [ok('info-missing-stanza.json', captured_bytes)])
    assert run.failed
    assert run.result['msg'].startswith('Cannot back up: ')
    assert run.result['failed_part'] == 'stanza'


def test_backup_rejects_a_bad_max_age(run_module):
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', max_age='yesterday'), [])
    assert run.failed
    assert run.result['msg'].startswith("Invalid duration: 'yesterday' is not a duration")


# --- pgbackrest_check ----------------------------------------------------------------------------

def test_check_passes(run_module):
    run = run_module(pgbackrest_check, dict(stanza='chronos-v2'), [(0, b'', b'')])
    assert (run.failed, run.result['changed'], run.result['ok']) == (False, False, True)
    assert run.commands == ['check']


@pytest.mark.parametrize('rc, name, code, part', [
    (87, 'check-archive-off.err', 87, 'archiving'),
    (28, 'check-mismatch.err', 28, 'stanza'),
])
def test_check_failure_names_the_part(run_module, captured_bytes, rc, name, code, part):
    run = run_module(pgbackrest_check, dict(stanza='chronos-v2'), [fails(rc, name, captured_bytes)])
    assert run.failed
    assert (run.result['error_code'], run.result['failed_part']) == (code, part)
    assert run.result['msg'].startswith('Unable to check stanza chronos-v2: pgBackRest error [%03d]: ' % code)


def test_check_without_error_line_reports_the_exit_status(run_module):
    run = run_module(pgbackrest_check, dict(stanza='chronos-v2'), [(1, b'', b'something odd\n')])
    assert run.failed
    assert run.result['error_code'] is None and run.result['failed_part'] == 'pgbackrest'
    assert 'pgBackRest exited 1: something odd' in run.result['msg']


def test_check_mode_does_not_run_check(run_module):
    run = run_module(pgbackrest_check, dict(stanza='chronos-v2'), [], check_mode=True)
    assert (run.failed, run.result['changed'], run.result['ok']) == (False, False, None)
    assert run.result['executed_commands'] == [
        '/usr/bin/pgbackrest --stanza=chronos-v2 --log-level-console=off --log-level-stderr=warn check']


# --- secrets: environment only, never argv --------------------------------------------------------

@pytest.mark.parametrize('module, extra, outputs', [
    (pgbackrest_info, {}, ['version.out', 'info-full-diff-incr.json']),
    (pgbackrest_check, {}, ['']),
    (pgbackrest_backup, dict(type='full'), ['info-one-full.json', '', 'info-after-diff.json']),
], ids=['info', 'check', 'backup'])
def test_secrets_reach_pgbackrest_through_the_environment_only(run_module, captured_bytes, module, extra, outputs):
    args = dict(stanza='chronos-v2', config='/etc/pgbackrest/pgbackrest.conf', **SECRETS)
    args.update(extra)
    run = run_module(module, args, [(0, captured_bytes(name) if name else b'', b'') for name in outputs])
    assert not run.failed, run.result.get('msg')
    assert run.calls
    for call in run.calls:
        assert not [part for part in call['argv'] for secret in SECRETS.values() if secret in part]
        assert call['environ_update'] == {
            'PGBACKREST_REPO1_CIPHER_PASS': 'cipher-secret-1',
            'PGBACKREST_REPO1_S3_KEY': 's3-key-2',
            'PGBACKREST_REPO1_S3_KEY_SECRET': 's3-secret-3',
        }
    assert not [cmd for cmd in run.result['executed_commands'] for secret in SECRETS.values() if secret in cmd]


def test_stanza_secrets_reach_pgbackrest_through_the_environment_only(run_module, captured_bytes, make_cluster):
    args = dict(stanza='chronos-v2', pg_path=make_cluster(OLD_LAB_SYSID), **SECRETS)
    run = run_module(pgbackrest_stanza, args, [
        ok('info-missing-stanza.json', captured_bytes), (0, b'', b''), ok('info-no-backup.json', captured_bytes)])
    assert not run.failed, run.result.get('msg')
    for call in run.calls:
        assert not [part for part in call['argv'] for secret in SECRETS.values() if secret in part]
        assert call['environ_update']['PGBACKREST_REPO1_CIPHER_PASS'] == 'cipher-secret-1'


def test_no_environment_without_secrets(run_module):
    run = run_module(pgbackrest_check, dict(stanza='chronos-v2'), [(0, b'', b'')])
    assert run.calls[0]['environ_update'] == {}


def test_backup_waits_for_the_lock_when_asked(run_module, captured_bytes, monkeypatch):
    clock = [D1_STOP + 120]
    monkeypatch.setattr(pgbackrest_backup, 'now', lambda: clock[0])
    monkeypatch.setattr(pgbackrest_backup.time, 'sleep', lambda seconds: clock.__setitem__(0, clock[0] + seconds))
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', type='diff', wait_for_lock=True), [
        ok('info-full-diff-incr.json', captured_bytes),
        fails(50, 'backup-locked.err', captured_bytes),
        fails(50, 'backup-locked.err', captured_bytes),
        (0, b'', b''),
        ok('info-after-diff.json', captured_bytes),
    ])
    assert not run.failed, run.result.get('msg')
    assert run.commands == ['info', 'backup', 'backup', 'backup', 'info']
    assert clock[0] == D1_STOP + 120 + 2 * pgbackrest_backup.LOCK_POLL_SECONDS
    assert run.result['backup']['label'] == D2


def test_backup_gives_up_on_the_lock_after_lock_timeout(run_module, captured_bytes, monkeypatch):
    clock = [D1_STOP + 120]
    monkeypatch.setattr(pgbackrest_backup, 'now', lambda: clock[0])
    monkeypatch.setattr(pgbackrest_backup.time, 'sleep', lambda seconds: clock.__setitem__(0, clock[0] + seconds))
    # Tries at 0 s and 5 s are within 8 s; the try at 10 s is the last.
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', type='diff', wait_for_lock=True, lock_timeout='8s'), [
        ok('info-full-diff-incr.json', captured_bytes),
        fails(50, 'backup-locked.err', captured_bytes),
        fails(50, 'backup-locked.err', captured_bytes),
        fails(50, 'backup-locked.err', captured_bytes),
    ])
    assert run.failed
    assert run.result['failed_part'] == 'lock'
    assert 'wait_for_lock' in run.result['msg']
