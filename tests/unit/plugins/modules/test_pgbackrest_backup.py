# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgbackrest_backup's main() with its commands answered from captured pgBackRest 2.45 output; "now" is the fake
clock (conftest.clock). The progress of a running backup is read from info (the 2.48+ fields put into a captured
document) or from the tail of pgBackRest's log file (assembled in its format: the lab's backups were too quick to
catch one half-way)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _backup, _metrics
from ansible_collections.chronos.pgbackrest.plugins.module_utils._lock import StanzaLock
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError
from ansible_collections.chronos.pgbackrest.plugins.modules import pgbackrest_backup

from ansible_collections.chronos.pgbackrest.tests.unit.harness import (
    PREFIX, SECRET_ENVIRONMENT, SECRETS, fails, fixture_text, ok, status_refresh)

D1 = '20261124-092311F_20261124-092341D'
D1_STOP = 1795512223
D2 = '20261124-092311F_20261124-092445D'


def backup_argv(backup_type):
    """pgbackrest backup as the module runs it: at detail level in the log file, which progress reads."""
    return PREFIX + ['--type=%s' % backup_type, '--log-level-file=detail', 'backup']


@pytest.mark.parametrize('backup_type, label, backup_stop', [
    ('full', '20261124-092311F', 1795512217),
    ('diff', D1, D1_STOP),                     # the incr after it does not count for a diff
    ('incr', '20261124-092311F_20261124-092345I', 1795512226),
])
def test_reuses_a_fresh_backup(run_module, clock, backup_type, label, backup_stop):
    clock.now = D1_STOP + 60
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', type=backup_type, max_age='1h'),
                     [ok('info-full-diff-incr.json')])
    assert not run.failed, run.msg
    assert (run.result['changed'], run.result['reused']) == (False, True)
    assert run.result['backup']['label'] == label
    assert run.result['backup']['stop'] == backup_stop
    assert run.commands == ['info']


@pytest.mark.parametrize('name, backup_type, max_age, now, reused', [
    ('info-one-full.json', 'diff', '1h', 1795512084 + 60, '20261124-092101F'),     # a full satisfies a diff
    ('info-one-full.json', 'incr', '1h', 1795512084 + 60, '20261124-092101F'),
    ('info-one-full.json', 'full', '1h', 1795512084 + 3601, None),                  # older than max_age
    ('info-one-full.json', 'full', '1h', 1795512084 + 3600, '20261124-092101F'),    # exactly max_age: fresh
    ('info-full-diff-incr.json', 'full', '5s', 1795512227, None),                   # a fresh diff is no full
    ('info-full-diff-incr.json', 'diff', '5s', 1795512227, D1),
    ('info-full-diff-incr.json', 'incr', '5s', 1795512227, '20261124-092311F_20261124-092345I'),
    ('info-no-backup.json', 'diff', '7d', 1795512227, None),
])
def test_max_age(run_module, clock, name, backup_type, max_age, now, reused):
    clock.now = now
    # Check mode, so that when nothing is fresh enough the backup is planned rather than run.
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', type=backup_type, max_age=max_age),
                     [ok(name)], check_mode=True)
    assert not run.failed, run.msg
    assert run.result['reused'] is bool(reused)
    assert run.result['changed'] is not bool(reused)
    if reused:
        assert run.result['backup']['label'] == reused
        assert len(run.result['executed_commands']) == 1
    else:
        assert run.result['backup'] is None
        assert run.result['executed_commands'][-1] == ' '.join(backup_argv(backup_type))


@pytest.mark.parametrize('name, reused', [('info-one-full.json', '20261124-092101F'), ('info-no-backup.json', None)])
def test_if_none(run_module, name, reused):
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', type='full', if_none=True), [ok(name)],
                     check_mode=True)
    assert run.result['reused'] is bool(reused)
    assert (run.result['backup'] or {}).get('label') == reused


def test_reused_backup_has_a_duration_and_a_summary(run_module, clock):
    clock.now = D1_STOP + 60
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', type='full', max_age='90m'),
                     [ok('info-full-diff-incr.json')])
    assert run.result['backup']['duration'] == 26
    assert run.result['backup']['stop_time'] == '2026-11-24 09:23:37+00'
    assert run.result['summary'] == (
        'Reused full backup 20261124-092311F (prior none): 2026-11-24 09:23:11+00 to 2026-11-24 09:23:37+00 (26 s), '
        'database 29.1 MiB, 3.6 MiB added to the repository, WAL 000000010000000000000006 to 000000010000000000000006.')


@pytest.mark.parametrize('args', [
    dict(type='diff'),                   # no max_age: always back up
    dict(type='diff', max_age='60s'),    # the newest diff stopped 2 minutes before "now"
])
def test_runs_and_returns_the_new_backup(run_module, clock, args):
    clock.now = D1_STOP + 120
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', **args), [
        ok('info-full-diff-incr.json'),
        ok('info-full-diff-incr.json'),
        ok(),
        ok('info-after-diff.json'),
    ])
    assert not run.failed, run.msg
    assert (run.result['changed'], run.result['reused']) == (True, False)
    assert run.commands == ['info', 'info', 'backup', 'info']
    assert run.calls[2]['argv'] == backup_argv('diff')
    backup = run.result['backup']
    assert (backup['label'], backup['type'], backup['prior']) == (D2, 'diff', '20261124-092311F')
    assert (backup['duration'], backup['stop_time']) == (2, '2026-11-24 09:24:47+00')
    assert (backup['wal_start'], backup['wal_stop']) == ('00000001000000000000000D', '00000001000000000000000D')
    assert run.result['summary'].startswith('Took diff backup %s (prior 20261124-092311F): ' % D2)


def test_check_mode_plans_the_backup(run_module):
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', type='incr'),
                     [ok('info-full-diff-incr.json')], check_mode=True)
    assert (run.failed, run.result['changed'], run.result['backup']) == (False, True, None)
    assert run.commands == ['info']
    assert run.result['executed_commands'] == [' '.join(PREFIX + ['--output=json', 'info']),
                                               ' '.join(backup_argv('incr'))]


@pytest.mark.parametrize('rc, name, code, part, in_msg', [
    (50, 'backup-locked.err', 50, 'lock', 'HINT: is another pgBackRest process running?'),
    (87, 'backup-archive-off.err', 87, 'archiving', 'archive_mode must be enabled'),
])
def test_failure_names_the_part(run_module, rc, name, code, part, in_msg):
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', type='full'),
                     [ok('info-one-full.json'), ok('info-one-full.json'), fails(rc, name)])
    assert run.failed
    assert (run.result['error_code'], run.result['failed_part'], run.result['rc']) == (code, part, rc)
    assert run.msg.startswith('Unable to take a full backup of stanza chronos-v2: pgBackRest error [%03d]: ' % code)
    assert in_msg in run.msg
    assert 'WARN' not in run.msg
    assert len(run.result['executed_commands']) == 3


def test_fails_when_info_lists_no_new_backup(run_module):
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2'),
                     [ok('info-one-full.json'), ok('info-one-full.json'), ok(), ok('info-one-full.json')])
    assert run.failed
    assert run.msg == 'pgbackrest backup succeeded, yet pgbackrest info lists no new backup of stanza chronos-v2.'


def test_fails_on_a_missing_stanza(run_module):
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2'), [ok('info-missing-stanza.json')])
    assert run.failed
    assert run.msg.startswith('Cannot back up: ')
    assert run.result['failed_part'] == 'stanza'


def test_result_on_a_wrong_passphrase_is_valid_utf8(run_module):
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2'), [ok('info-wrong-env.json')])
    assert run.failed
    json.dumps(run.result, ensure_ascii=False).encode('utf-8')


@pytest.mark.parametrize('args, message', [
    (dict(max_age='yesterday'), "Invalid duration: 'yesterday' is not a duration"),
    (dict(lock_timeout='1 hour'), "Invalid duration: '1 hour' is not a duration"),
])
def test_rejects_a_bad_duration(run_module, args, message):
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', **args), [])
    assert run.failed
    assert run.msg.startswith(message)
    assert run.result['executed_commands'] == []


def test_secrets_reach_pgbackrest_through_the_environment_only(run_module):
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', type='full', **SECRETS),
                     [ok('info-one-full.json'), ok('info-one-full.json'), ok(), ok('info-after-diff.json')])
    assert not run.failed, run.msg
    for call in run.calls:
        assert not [part for part in call['argv'] for secret in SECRETS.values() if secret in part]
        assert call['env'] == SECRET_ENVIRONMENT
    assert not [secret for secret in SECRETS.values() if secret in json.dumps(run.result)]


def test_waits_for_the_lock_when_asked(run_module, clock):
    clock.now = D1_STOP + 120
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', type='diff', wait_for_lock=True), [
        ok('info-full-diff-incr.json'),
        ok('info-full-diff-incr.json'),
        fails(50, 'backup-locked.err'),
        fails(50, 'backup-locked.err'),
        ok(),
        ok('info-after-diff.json'),
    ])
    assert not run.failed, run.msg
    assert run.commands == ['info', 'info', 'backup', 'backup', 'backup', 'info']
    assert clock.slept == [_backup.LOCK_POLL_SECONDS] * 2
    assert run.result['backup']['label'] == D2


def test_gives_up_on_the_lock_after_lock_timeout(run_module, clock):
    # Tries at 0 s and 5 s are within 8 s; the try at 10 s is the last.
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', type='diff', wait_for_lock=True, lock_timeout='8s'), [
        ok('info-full-diff-incr.json'),
        ok('info-full-diff-incr.json'),
        fails(50, 'backup-locked.err'),
        fails(50, 'backup-locked.err'),
        fails(50, 'backup-locked.err'),
    ])
    assert run.failed
    assert run.result['failed_part'] == 'lock'
    assert 'wait_for_lock' in run.msg


def test_does_not_wait_for_the_lock_unless_asked(run_module, clock):
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', type='diff'),
                     [ok('info-full-diff-incr.json'), ok('info-full-diff-incr.json'), fails(50, 'backup-locked.err')])
    assert run.failed and clock.slept == []


def test_holds_the_stanza_lock_while_it_backs_up(run_module):
    seen = []

    def backup(call):
        seen.append(StanzaLock('chronos-v2', 'progress').holder())
        return 0, b'', b''
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', type='diff'),
                     [ok('info-full-diff-incr.json'), ok('info-full-diff-incr.json'), backup, ok('info-after-diff.json')])
    assert not run.failed, run.msg
    assert seen[0].startswith('diff backup (pgbackrest_backup) pid ')
    assert StanzaLock('chronos-v2', 'progress').holder() == ''


def test_waits_for_the_stanza_lock_when_asked(run_module, clock):
    """A restore drill holds the stanza: with wait_for_lock the backup starts once it is done."""
    drill = StanzaLock('chronos-v2', 'restore drill').__enter__()
    clock.on_sleep = lambda now: drill.__exit__(None, None, None) if len(clock.slept) == 2 else None
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', type='diff', wait_for_lock=True),
                     [ok('info-full-diff-incr.json'), ok('info-full-diff-incr.json'), ok(), ok('info-after-diff.json')])
    assert not run.failed, run.msg
    assert clock.slept == [1, 1]
    assert run.commands == ['info', 'info', 'backup', 'info']


def test_refused_while_a_restore_holds_the_stanza(run_module):
    with StanzaLock('chronos-v2', 'restore into /var/lib/postgresql/15/main'):
        run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', type='full'), [ok('info-one-full.json')])
    assert run.failed
    assert run.msg.startswith('Stanza chronos-v2 is busy: restore into /var/lib/postgresql/15/main pid ')
    assert run.commands == ['info']


def test_metrics_after_the_backup(run_module, tmp_path):
    metrics = str(tmp_path / 'node-exporter')
    archiver = ('120', '0', '00000001000000000000000D', '', '1795512287', '0', 'on', 'x')
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', type='diff', metrics_dir=metrics), [
        ok('info-full-diff-incr.json'), ok('info-full-diff-incr.json'), ok(), ok('info-after-diff.json'),
        *status_refresh('info-after-diff.json', archiver=archiver)])
    assert not run.failed, run.msg
    assert run.commands == ['info', 'info', 'backup', 'info', 'version', 'info', 'psql', 'psql', 'df', 'repo-ls', 'repo-ls']
    assert _metrics.read_runs(metrics, 'chronos-v2')['diff']['exit_code'] == 0
    status = _metrics.read_samples(_metrics.file_path(metrics, 'chronos-v2', 'status'))
    assert status[('pgbackrest_exporter_status', frozenset({'stanza': 'chronos-v2'}.items()))] == 1


def test_metrics_need_prometheus_client_before_anything_runs(run_module, tmp_path, monkeypatch):
    def missing():
        raise ChronosError('prometheus_client is missing: install python3-prometheus-client (the pgbackrest role does).')
    monkeypatch.setattr(_metrics, '_client', missing)
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', type='diff', metrics_dir=str(tmp_path)), [])
    assert run.failed
    assert run.msg.startswith('prometheus_client is missing')
    assert run.result['executed_commands'] == []


def test_metrics_of_a_failed_backup(run_module, tmp_path):
    metrics = str(tmp_path / 'node-exporter')
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', type='full', metrics_dir=metrics), [
        ok('info-one-full.json'), ok('info-one-full.json'), fails(87, 'backup-archive-off.err'),
        ok('version.out'), ok('info-one-full.json'), fails(2, b'psql: error\n')])
    assert run.failed and run.result['error_code'] == 87
    assert _metrics.read_runs(metrics, 'chronos-v2')['full']['exit_code'] == 87


def test_pgbackrest_errors_in_a_container_read_as_on_a_host(run_module, docker):
    docker.add_container()
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', container='chronos-db', type='full'),
                     [ok('info-one-full.json'), ok('info-one-full.json'), fails(87, 'check-archive-off.err', stdout=b'')])
    assert run.failed
    assert (run.result['failed_part'], run.result['rc']) == ('archiving', 87)
    assert [call['where'] for call in run.calls] == ['chronos-db'] * 3


# --- progress of a running backup ------------------------------------------------------------------------------

def running(size=None, done=None):
    """info while a full backup ran (info-backup-running.json), with the figures 2.48+ adds to the lock when given."""
    raw = json.loads(fixture_text('info-backup-running.json'))
    if size is not None:
        raw[0]['status']['lock']['backup'].update({'size': size, 'size-cplt': done})
    return ok(json.dumps(raw).encode())


LOG = '/var/log/pgbackrest/chronos-v2-backup.log'
# pgBackRest's log file at detail level: a banner where each run starts, then each copied file with the share of the
# backup done so far (src/command/backup/backup.c in 2.45: "backup file %s (%s, %u.%02u%%)%s").
BANNER = '-------------------PROCESS START-------------------\n'
BEGIN = ('2026-11-24 09:23:11.801 P00   INFO: backup command begin 2.45: --exec-id=1183-2f5c7b84 --log-level-console=off '
         '--log-level-file=detail --log-level-stderr=warn --pg1-path=/var/lib/postgresql/15/main --repo1-type=s3 '
         '--stanza=chronos-v2 --type=full\n')


def copied(name, share, size='8KB', bundle=''):
    return ('2026-11-24 09:23:14.112 P01 DETAIL: backup file /var/lib/postgresql/15/main/%s (%s%s, %s%%) checksum '
            '5e2e09a2d4a5a24ef5d24b8ad1d1b6a3c2f5a1c9\n' % (name, bundle, size, share))


def progress(run_module, answers, **args):
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', progress=True, **args), answers)
    assert not run.failed, run.msg
    assert run.result['changed'] is False
    return run


def test_progress_without_a_running_backup(run_module):
    run = progress(run_module, [ok('info-full-diff-incr.json')])
    assert run.result['progress'] == 'No backup of stanza chronos-v2 runs now.'
    assert run.commands == ['info']


def test_progress_from_pgbackrest_info(run_module):
    """pgBackRest 2.48+ reports the running backup's size and what it copied: nothing else is read."""
    run = progress(run_module, [running(size=30452680, done=10 * 2 ** 20)])
    assert run.result['progress'] == 'Backing up: 10 of 29 MiB (34 %).'
    assert run.commands == ['info']


def test_progress_from_the_log_tail(run_module):
    log = BANNER + BEGIN + copied('base/5/1249', '12.34', '440KB') + copied('base/5/2608', '47.08')
    run = progress(run_module, [running(), ok(log.encode())])
    assert run.result['progress'] == 'Backing up: 47.08 % done (last file 2608).'
    assert (run.calls[1]['argv'], run.calls[1]['user']) == (['tail', '-c', '65536', LOG], 'postgres')


def test_progress_from_the_log_tail_of_a_bundled_backup(run_module):
    log = BANNER + BEGIN + copied('base/5/2608', '57.10', bundle='bundle 1/81920, ')
    run = progress(run_module, [running(), ok(log.encode())], log_path='/srv/log/pgbackrest')
    assert run.result['progress'] == 'Backing up: 57.10 % done (last file 2608).'
    assert run.calls[1]['argv'][-1] == '/srv/log/pgbackrest/chronos-v2-backup.log'


def test_progress_before_the_first_file(run_module):
    run = progress(run_module, [running(), ok((BANNER + BEGIN).encode())])
    assert run.result['progress'] == 'Backing up: started, no file copied yet.'


def test_progress_ignores_the_previous_run_in_the_log(run_module):
    log = BANNER + BEGIN + copied('global/pg_control', '100.00') + '\n' + BANNER + BEGIN
    run = progress(run_module, [running(), ok(log.encode())])
    assert run.result['progress'] == 'Backing up: started, no file copied yet.'
