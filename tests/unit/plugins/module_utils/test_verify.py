# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/module_utils/_verify.py: every problem found with the backups of a stanza, from captured `info` output,
pg_stat_archiver rows and the runs metrics file."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _metrics
from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import PgBackRest
from ansible_collections.chronos.pgbackrest.plugins.module_utils._verify import report, summary, verify

from ansible_collections.chronos.pgbackrest.tests.unit.harness import fails, ok, psql_rows

I1 = '20261124-092311F_20261124-092345I'
I1_STOP = 1795512226                   # info-full-diff-incr.json's newest backup
DAY = 86400
COMMAND = 'pgbackrest --stanza=chronos-v2 archive-push %p'
ARCHIVING = ('120', '0', '00000001000000000000000A', '', str(I1_STOP), '0', 'on', COMMAND)
FAILING = ('120', '7', '00000001000000000000000A', '00000001000000000000000B', str(I1_STOP), str(I1_STOP + 60), 'on',
           COMMAND)
OFF = ('0', '0', '', '', '0', '0', 'off', '')


@pytest.fixture
def pgbackrest(host):
    return PgBackRest(host, 'chronos-v2')


def run(host, pgbackrest, commands, info, archiver, now=I1_STOP + 3600, max_age=25 * 3600, metrics_dir=None):
    commands.expect(ok(info) if isinstance(info, str) else info)
    # A row of pg_stat_archiver (strings), or the answer psql gave (rc, stdout, stderr).
    commands.expect(ok(psql_rows(archiver)) if isinstance(archiver[0], str) else archiver)
    return verify(host, pgbackrest, max_age, metrics_dir, repository='s3://chronos-backups',
                  schedule='cron (/etc/cron.d/pgbackrest-chronos-v2)', log='/var/log/pgbackrest/backup.log',
                  backup_command='ansible-playbook playbooks/backup.yml', now=now)


def test_all_is_well(host, pgbackrest, commands):
    result = run(host, pgbackrest, commands, 'info-full-diff-incr.json', ARCHIVING)
    assert (result['ok'], result['problems'], result['repository_ok']) == (True, [], True)
    assert result['backup'] == dict(label=I1, type='incr', stop=I1_STOP, stop_time='2026-11-24 09:23:46+00',
                                    age_seconds=3600)
    assert result['archive']['last_archived_time'] == '2026-11-24 09:23:46+00'
    assert result['archive']['last_failed_time'] is None
    assert summary(result) == ('Stanza chronos-v2 OK: newest backup %s (incr) stopped 2026-11-24 09:23:46+00, 1h00m ago '
                               '(limit 25h00m); WAL archived up to 00000001000000000000000A at 2026-11-24 09:23:46+00; '
                               'no scheduled run recorded yet.' % I1)


def test_a_stale_backup(host, pgbackrest, commands):
    result = run(host, pgbackrest, commands, 'info-full-diff-incr.json', ARCHIVING, now=I1_STOP + 26 * 3600 + 120)
    assert result['ok'] is False
    assert result['problems'] == [
        'The newest backup of stanza chronos-v2, %s (incr), stopped at 2026-11-24 09:23:46+00, 26h02m ago: older than the '
        'limit (25h00m). Check that cron (/etc/cron.d/pgbackrest-chronos-v2) runs and read /var/log/pgbackrest/backup.log, '
        'then take a backup now: ansible-playbook playbooks/backup.yml.' % I1]


def test_a_backup_exactly_at_the_limit_is_fresh(host, pgbackrest, commands):
    assert run(host, pgbackrest, commands, 'info-full-diff-incr.json', ARCHIVING, now=I1_STOP + 25 * 3600)['ok'] is True


def test_no_backup(host, pgbackrest, commands):
    result = run(host, pgbackrest, commands, 'info-no-backup.json', ARCHIVING)
    assert result['problems'] == ['Stanza chronos-v2 has no completed backup. Take a full one now: ansible-playbook '
                                  'playbooks/backup.yml -e pgbackrest_backup_type=full.']
    assert result['backup'] is None and result['repository_ok'] is True


@pytest.mark.parametrize('info, text', [
    ('info-unreachable.json', "[HostConnectError] unable to get address for 'nowhere.chronos.lab'"),
    ('info-wrong-env.json', '[FormatError] unable to load info file'),
    ('info-missing-stanza.json', 'missing stanza path'),
    (fails(49, b'ERROR: [049]: unable to get address for host nowhere.chronos.lab\n'), 'pgBackRest error [049]'),
], ids=['unreachable', 'wrong-passphrase', 'missing-stanza', 'info-fails'])
def test_an_unreadable_repository(host, pgbackrest, commands, info, text):
    result = run(host, pgbackrest, commands, info, ARCHIVING)
    assert result['repository_ok'] is False and result['backup'] is None
    assert len(result['problems']) == 1
    assert result['problems'][0].startswith('The repository (s3://chronos-backups) cannot be read: ')
    assert text in result['problems'][0]
    assert '\n' not in result['problems'][0]


def test_the_last_scheduled_run_failed(host, pgbackrest, commands, tmp_path):
    _metrics.write_run(str(tmp_path), 'chronos-v2', 'full', 0, I1_STOP - 100, I1_STOP - 60)
    _metrics.write_run(str(tmp_path), 'chronos-v2', 'diff', 50, I1_STOP - 10, I1_STOP)
    result = run(host, pgbackrest, commands, 'info-full-diff-incr.json', ARCHIVING, metrics_dir=str(tmp_path))
    assert result['last_run'] == 'diff'
    assert result['runs']['diff'] == dict(exit_code=50, last_run=I1_STOP, duration=10, last_success=0,
                                          last_run_time='2026-11-24 09:23:46+00')
    assert result['problems'] == [
        'The last scheduled backup run, diff at 2026-11-24 09:23:46+00, failed with exit code 50 (from %s/'
        'pgbackrest_chronos-v2_runs.prom). Read /var/log/pgbackrest/backup.log for the cause, fix it, then run '
        'chronos-pgbackrest --stanza chronos-v2 backup diff (or ansible-playbook playbooks/backup.yml) and check it '
        'succeeds.' % tmp_path]


def test_an_older_failed_run_is_not_a_problem(host, pgbackrest, commands, tmp_path):
    _metrics.write_run(str(tmp_path), 'chronos-v2', 'full', 87, I1_STOP - 100, I1_STOP - 60)
    _metrics.write_run(str(tmp_path), 'chronos-v2', 'diff', 0, I1_STOP - 10, I1_STOP)
    result = run(host, pgbackrest, commands, 'info-full-diff-incr.json', ARCHIVING, metrics_dir=str(tmp_path))
    assert result['ok'] is True
    assert summary(result).endswith('last scheduled run diff at 2026-11-24 09:23:46+00, exit 0.')


def test_archiving_failing(host, pgbackrest, commands):
    result = run(host, pgbackrest, commands, 'info-full-diff-incr.json', FAILING)
    assert result['problems'] == [
        "WAL archiving is failing: the last failure (00000001000000000000000B at 2026-11-24 09:24:46+00) is newer than "
        "the last success (00000001000000000000000A at 2026-11-24 09:23:46+00), 7 failures since the statistics were "
        "reset. Check archive_command (%r), the PostgreSQL log and pgBackRest's archive-push log; pgbackrest "
        "--stanza=chronos-v2 check names the failing part. WAL piles up in pg_wal until archiving works again." % COMMAND]


def test_archiving_off(host, pgbackrest, commands):
    result = run(host, pgbackrest, commands, 'info-full-diff-incr.json', OFF)
    assert result['problems'] == ['WAL archiving is off (archive_mode=off): nothing after the newest backup can be '
                                  'restored. Run site.yml (tag pgbackrest_archiving).']


def test_postgresql_down(host, pgbackrest, commands):
    result = run(host, pgbackrest, commands, 'info-full-diff-incr.json',
                 fails(2, b'psql: error: connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed: '
                          b'No such file or directory\n\tIs the server running locally?\n'))
    assert result['archive'] is None
    assert result['problems'] == [
        'PostgreSQL cannot be queried for pg_stat_archiver on this host: Unable to read pg_stat_archiver: psql on this '
        'host exited 2: psql: error: connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed: No such '
        'file or directory Is the server running locally? Check that PostgreSQL is running.']


def test_every_problem_at_once(host, pgbackrest, commands, tmp_path):
    _metrics.write_run(str(tmp_path), 'chronos-v2', 'full', 87, I1_STOP - 10, I1_STOP)
    result = run(host, pgbackrest, commands, 'info-full-diff-incr.json', OFF, now=I1_STOP + 30 * DAY,
                 metrics_dir=str(tmp_path))
    assert [problem.split(' ')[1] for problem in result['problems']] == ['newest', 'last', 'archiving']
    text = report(result, 'db1.chronos.lab')
    assert text.startswith('Backups of stanza chronos-v2 on db1.chronos.lab need attention (3 problems):\n- The newest ')
    assert text.count('\n- ') == 3


def test_report_of_one_problem(host, pgbackrest, commands):
    result = run(host, pgbackrest, commands, 'info-no-backup.json', ARCHIVING)
    assert report(result, 'this host').startswith('Backups of stanza chronos-v2 on this host need attention (1 problem):\n')
