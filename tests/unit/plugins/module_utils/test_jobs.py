# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/module_utils/_jobs.py, the chronos-pgbackrest program cron runs: backups as the module takes them, the
metrics it leaves (parsed back from tmp_path), the stanza lock, the drill's exit codes, pgbackrest verify, and the
command line."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _backup, _jobs, _metrics
from ansible_collections.chronos.pgbackrest.plugins.module_utils._lock import StanzaLock
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError

from ansible_collections.chronos.pgbackrest.tests.unit.harness import (
    ARCHIVER, PREFIX, VERIFY_ERRORS, VERIFY_VERBOSE_OK, fails, ok, psql_rows, status_refresh)

WRAPPER = '/usr/local/bin/pgbackrest-backup.sh'


@pytest.fixture
def settings(tmp_path):
    """What pgbackrest_schedule writes into /etc/chronos-pgbackrest/<stanza>.json, metrics into tmp_path."""
    metrics = tmp_path / 'node-exporter'
    metrics.mkdir()
    (tmp_path / 'pg' / 'main').mkdir(parents=True)
    config = tmp_path / 'pgbackrest.conf'
    config.write_text('[global]\narchive-push-queue-max=67108864\n[chronos-v2]\npg1-path=/var/lib/postgresql/15/main\n')
    return dict(stanza='chronos-v2', config=str(config), container=None, os_user='postgres', pg_user=None, pg_port=5432,
                pg_socket_path='/var/run/postgresql', pg_bin_path='/usr/lib/postgresql/15/bin', pg_service='postgresql',
                stop_timeout=60, pg_path=str(tmp_path / 'pg' / 'main'), metrics_dir=str(metrics),
                repository='s3://chronos-backups', log='/var/log/pgbackrest/chronos-v2-backup.log', full_weekday=0,
                wrapper=WRAPPER, drill={'port': 5499})


def samples(settings, kind):
    return _metrics.read_samples(_metrics.file_path(settings['metrics_dir'], 'chronos-v2', kind))


def sample(found, name, **labels):
    return found[(name, frozenset(dict(labels, stanza='chronos-v2').items()))]


# --- backup ------------------------------------------------------------------------------------------------

def backup_argv(backup_type):
    """The end of pgbackrest backup's command line (the settings' --config comes before)."""
    return ['--type=%s' % backup_type, '--log-level-file=detail', 'backup']


def test_backup_as_the_module_takes_it_then_metrics(settings, commands, capsys):
    """pgbackrest backup itself as pgBackRest's user (not the wrapper), the new backup read back, then the metrics."""
    commands.expect(ok('info-one-full.json'), ok(), ok('info-after-diff.json'), *status_refresh())
    assert _jobs.Job(settings).backup('diff') == 0
    assert commands.calls[1]['argv'][-3:] == backup_argv('diff')
    assert commands.calls[1]['user'] == 'postgres'
    assert commands.names == ['info', 'backup', 'info', 'version', 'info', 'psql', 'psql', 'df', 'repo-ls', 'repo-ls']
    runs = _metrics.read_runs(settings['metrics_dir'], 'chronos-v2')
    assert runs['diff']['exit_code'] == 0
    assert sample(samples(settings, 'status'), 'pgbackrest_exporter_status') == 1
    out = capsys.readouterr().out
    assert 'chronos-v2: starting a diff backup\n' in out
    assert 'diff backup succeeded in 0 s: Took diff backup 20261124-092311F_20261124-092445D (prior 20261124-092311F)' \
        in out


def test_a_failing_backup_passes_pgbackrests_exit_code_on(settings, commands, capsys):
    commands.expect(ok('info-one-full.json'), fails(87, 'backup-archive-off.err'), *status_refresh())
    assert _jobs.Job(settings).backup('diff') == 87
    assert _metrics.read_runs(settings['metrics_dir'], 'chronos-v2')['diff']['exit_code'] == 87
    assert sample(samples(settings, 'runs'), 'pgbackrest_backup_run_exit_code', backup_type='diff') == 87
    err = capsys.readouterr().err
    assert 'archive_mode must be enabled' in err
    assert ('diff backup FAILED with exit code 87, pgBackRest error 87 (s3://chronos-backups); see '
            '/var/log/pgbackrest/chronos-v2-backup.log') in err


def test_an_unreadable_repository_still_tries_the_backup(settings, commands, capsys):
    """pgbackrest info fails before the backup (S3 down): the backup runs all the same and its own error code is
    what the metrics record."""
    commands.expect(fails(82, 'info-unreachable.err'), fails(82, 'info-unreachable.err'), *status_refresh())
    assert _jobs.Job(settings).backup('full') == 82
    assert _metrics.read_runs(settings['metrics_dir'], 'chronos-v2')['full']['exit_code'] == 82


def test_a_failure_keeps_the_last_success(settings, commands):
    commands.expect(ok('info-one-full.json'), ok(), ok('info-after-diff.json'), *status_refresh())
    commands.expect(ok('info-one-full.json'), fails(87, 'backup-archive-off.err'), *status_refresh())
    _jobs.Job(settings).backup('full')
    _jobs.Job(settings).backup('full')
    run = _metrics.read_runs(settings['metrics_dir'], 'chronos-v2')['full']
    assert (run['exit_code'], run['last_success']) == (87, 1795513999)


def test_busy_stanza_exits_75_and_writes_no_metrics(settings, commands, capsys):
    with StanzaLock('chronos-v2', 'restore into /var/lib/postgresql/15/main'):
        assert _jobs.Job(settings).backup('full') == _jobs.EXIT_BUSY == 75
    assert commands.calls == []
    assert os.listdir(settings['metrics_dir']) == []
    assert 'not starting a full backup: Stanza chronos-v2 is busy: restore into' in capsys.readouterr().err


def test_a_link_planted_as_the_lock_is_refused_and_recorded(settings, commands, lock_dir, tmp_path, capsys):
    """What pgBackRest's user could plant if it could write the lock's directory: a link to a root-only file. The
    job follows nothing, records exit 3 and runs no backup."""
    secret = tmp_path / 'shadow'
    secret.write_text(u'root:$6$x:19000::::::\n')
    secret.chmod(0o640)
    os.makedirs(lock_dir, 0o700)
    os.symlink(str(secret), os.path.join(lock_dir, 'chronos-v2.lock'))
    assert _jobs.Job(settings).backup('diff') == _jobs.EXIT_REFUSED == 3
    assert commands.calls == []
    assert (secret.read_text(), oct(secret.stat().st_mode & 0o777)) == (u'root:$6$x:19000::::::\n', oct(0o640))
    assert _metrics.read_runs(settings['metrics_dir'], 'chronos-v2')['diff']['exit_code'] == 3
    assert ('diff backup REFUSED: The lock of stanza chronos-v2, %s/chronos-v2.lock, is a link: root does not follow '
            'it.' % lock_dir) in capsys.readouterr().err


def test_the_metrics_say_how_long_the_stanza_lock_is_held(settings, commands, clock, monkeypatch):
    from ansible_collections.chronos.pgbackrest.plugins.module_utils import _lock
    monkeypatch.setattr(_lock, 'process_start', lambda pid: clock.now - 9000 if pid == os.getpid() else None)
    commands.expect(*status_refresh())
    _jobs.Job(settings).metrics()
    assert sample(samples(settings, 'status'), 'pgbackrest_lock_held_seconds') == 0
    with StanzaLock('chronos-v2', 'restore into /var/lib/postgresql/15/main'):
        commands.expect(*status_refresh())
        _jobs.Job(settings).metrics()
    assert sample(samples(settings, 'status'), 'pgbackrest_lock_held_seconds') == 9000


def test_another_pgbackrest_backup_running_records_no_run(settings, commands, capsys):
    """pgBackRest's own lock held (a backup started by hand with pgbackrest itself): busy, not a run of the schedule;
    the status is refreshed."""
    commands.expect(ok('info-one-full.json'), fails(50, 'backup-locked.err'), *status_refresh())
    assert _jobs.Job(settings).backup('incr') == 75
    assert _metrics.read_runs(settings['metrics_dir'], 'chronos-v2') == {}
    assert sample(samples(settings, 'status'), 'pgbackrest_exporter_status') == 1
    assert 'not starting a incr backup: another pgBackRest backup of the stanza runs' in capsys.readouterr().err


def test_a_backup_that_cannot_run_is_exit_1(settings, commands, monkeypatch):
    def refuse(self, argv, user, env, stdin):
        raise ChronosError("Container 'chronos-db' is not running (status: exited)")
    monkeypatch.setattr(_jobs.make_target(settings).__class__, '_run', refuse)
    assert _jobs.Job(settings).backup('diff') == 1
    assert _metrics.read_runs(settings['metrics_dir'], 'chronos-v2')['diff']['exit_code'] == 1
    assert sample(samples(settings, 'status'), 'pgbackrest_exporter_status') == 0


def test_without_metrics_directory_nothing_is_written(settings, commands):
    settings['metrics_dir'] = None
    commands.expect(ok('info-one-full.json'), ok(), ok('info-after-diff.json'))
    assert _jobs.Job(settings).backup('full') == 0
    assert commands.names == ['info', 'backup', 'info']


class On(datetime):
    """datetime whose now() is a given weekday (0 Sunday ... 6 Saturday), at 02:00."""
    weekday_wanted = 0

    @classmethod
    def now(cls, tz=None):
        # 2026-11-29 is a Sunday.
        return datetime(2026, 11, 29, 2, 0, tzinfo=tz) + timedelta(days=cls.weekday_wanted)


@pytest.mark.parametrize('weekday, full_weekday, backup_type', [
    (0, 0, 'full'), (1, 0, 'diff'), (6, 6, 'full'), (0, 6, 'diff')])
def test_the_type_follows_the_full_weekday(settings, commands, monkeypatch, weekday, full_weekday, backup_type):
    assert On(2026, 11, 29).strftime('%w') == '0'
    monkeypatch.setattr(On, 'weekday_wanted', weekday)
    monkeypatch.setattr(_backup, 'datetime', On)
    settings.update(full_weekday=full_weekday, metrics_dir=None)
    commands.expect(ok('info-one-full.json'), ok(), ok('info-after-diff.json'))
    _jobs.Job(settings).backup()
    assert commands.calls[1]['argv'][-3:] == backup_argv(backup_type)


# --- metrics --------------------------------------------------------------------------------------------

def test_metrics(settings, commands):
    commands.expect(*status_refresh())
    assert _jobs.Job(settings).metrics() == 0
    found = samples(settings, 'status')
    assert (sample(found, 'pgbackrest_kept_copies'), sample(found, 'pgbackrest_kept_copies_bytes')) == (0, 0)
    assert sample(found, 'pgbackrest_exporter_status') == 1
    assert sample(found, 'pgbackrest_postgresql_up') == 1
    assert sample(found, 'pgbackrest_archive_archived_total') == 120


def test_metrics_count_the_data_directories_restores_kept(settings, commands):
    kept = settings['pg_path'] + '.pre-restore-20261124T095255Z'
    os.makedirs(kept + '/base')
    with open(kept + '/base/1259', 'wb') as handle:
        handle.write(b'x' * 4096)
    os.makedirs(settings['pg_path'] + '.rolled-back-20261124T100000Z')
    commands.expect(*status_refresh())
    _jobs.Job(settings).metrics()
    found = samples(settings, 'status')
    assert (sample(found, 'pgbackrest_kept_copies'), sample(found, 'pgbackrest_kept_copies_bytes')) == (2, 4096)
    assert 0 < sample(found, 'pgbackrest_data_filesystem_avail_bytes') <= sample(
        found, 'pgbackrest_data_filesystem_size_bytes')


@pytest.mark.parametrize('answers', [
    [ok('version.out'), ok('info-unreachable.json'), ok(psql_rows(ARCHIVER)), ok('archive-queue.csv'),
     ok('df-pg-wal.out')],
    [ok('version.out'), fails(49, b'ERROR: [049]: unable to get address\n'), ok(psql_rows(ARCHIVER)),
     ok('archive-queue.csv'), ok('df-pg-wal.out')],
    [fails(127, b'sh: pgbackrest: not found\n'), ok(psql_rows(ARCHIVER)), ok('archive-queue.csv'), ok('df-pg-wal.out')],
], ids=['unreachable', 'info-fails', 'no-pgbackrest'])
def test_metrics_of_an_unreadable_repository(settings, commands, capsys, answers):
    commands.expect(*answers)
    assert _jobs.Job(settings).metrics() == 0
    found = samples(settings, 'status')
    if answers[1][0] == 0 and b'HostConnectError' in answers[1][1]:
        # info answers, with the repository's status in it.
        assert sample(found, 'pgbackrest_stanza_status') == 99
    else:
        assert sample(found, 'pgbackrest_exporter_status') == 0
        assert 'the repository cannot be read: Unable to ' in capsys.readouterr().err
    assert sample(found, 'pgbackrest_postgresql_up') == 1


def test_metrics_while_postgresql_is_down(settings, commands, capsys):
    commands.expect(ok('version.out'), ok('info-full-diff-incr.json'), fails(2, b'psql: error: connection refused\n'))
    assert _jobs.Job(settings).metrics() == 0
    found = samples(settings, 'status')
    assert (sample(found, 'pgbackrest_exporter_status'), sample(found, 'pgbackrest_postgresql_up')) == (1, 0)
    assert 'PostgreSQL cannot be asked about WAL archiving' in capsys.readouterr().err


def test_metrics_when_the_container_is_gone(settings, commands, docker, capsys):
    """The container is gone (or Docker does not answer): the status file says nothing could be read, instead of the
    last one staying and claiming all is well."""
    commands.expect(*status_refresh())
    assert _jobs.Job(settings).metrics() == 0
    assert sample(samples(settings, 'status'), 'pgbackrest_exporter_status') == 1
    settings['container'] = 'chronos-db'
    assert _jobs.Job(settings).metrics() == 0
    assert sample(samples(settings, 'status'), 'pgbackrest_exporter_status') == 0
    assert "chronos-v2: Container 'chronos-db' does not exist on this Docker host" in capsys.readouterr().err


INSTALLED = [dict(path=WRAPPER, content='#!/usr/bin/env bash\necho backup\n', uid=0, gid=0, mode='0755'),
             dict(path='/etc/pgbackrest/repo1-ca.crt', content='-----BEGIN CERTIFICATE-----\n', uid=0, gid=999,
                  mode='0644')]


def test_a_recreated_container_gets_back_what_the_collection_put_in_it(settings, commands, docker, capsys):
    """docker compose pull && up -d: the same image, volume and mounts, and none of what was copied into the old
    container. The next job puts the wrapper and the CA file back before it runs anything, and says so."""
    container = docker.add_container(env=['PGDATA=/var/lib/postgresql/data'])
    settings.update(container='chronos-db', installed=INSTALLED)
    commands.expect(ok('info-one-full.json'), ok(), ok('info-after-diff.json'), *status_refresh())
    assert _jobs.Job(settings).backup('diff') == 0
    assert container.files[WRAPPER] == (b'#!/usr/bin/env bash\necho backup\n', 0, 0, 0o755)
    assert container.files['/etc/pgbackrest/repo1-ca.crt'] == (b'-----BEGIN CERTIFICATE-----\n', 0, 999, 0o644)
    # Put back before the backup ran: pgBackRest's exec came after the archive API's writes.
    assert docker.events[:2] == [('put_archive', 'chronos-db', WRAPPER),
                                 ('put_archive', 'chronos-db', '/etc/pgbackrest/repo1-ca.crt')]
    out = capsys.readouterr().out
    assert ("chronos-v2: put back %s on container 'chronos-db': it was missing or changed (was the container "
            "recreated?)" % WRAPPER) in out
    # Once back, nothing more is written.
    commands.expect(*status_refresh())
    assert _jobs.Job(settings).metrics() == 0
    assert [event for event in docker.events if event[0] == 'put_archive'] == docker.events[:2]
    assert 'put back' not in capsys.readouterr().out


# --- drill ----------------------------------------------------------------------------------------------

class FakeDrill(object):
    """Stands for _drill.Drill: records what it was built with; run() returns or raises `outcome`."""
    outcome = None
    built = []

    def __init__(self, target, pgbackrest, pg_path, settings):
        FakeDrill.built.append(dict(pg_path=pg_path, settings=settings, stanza=pgbackrest.stanza))

    def run(self):
        if isinstance(FakeDrill.outcome, BaseException):
            raise FakeDrill.outcome  # pylint: disable=raising-bad-type
        return FakeDrill.outcome


DRILLED = dict(backup_set='20261124-092311F_20261124-092345I', target='latest', restore_seconds=42, files_seconds=30,
               recovery_seconds=12, newest_transaction_age_seconds=60, query_result=['271'])


@pytest.fixture
def drill(monkeypatch):
    monkeypatch.setattr(_jobs, 'Drill', FakeDrill)
    FakeDrill.built = []
    return FakeDrill


def test_drill_passes(settings, commands, drill, capsys):
    drill.outcome = DRILLED
    assert _jobs.Job(settings).drill('2026-11-24 09:23:44+00') == 0
    built = drill.built[0]
    assert (built['pg_path'], built['settings'].port, built['settings'].recovery_target) == (
        settings['pg_path'], 5499, '2026-11-24 09:23:44+00')
    found = samples(settings, 'drill')
    assert (sample(found, 'pgbackrest_drill_exit_code'), sample(found, 'pgbackrest_drill_restore_seconds')) == (0, 42)
    assert 'restore drill passed: backup set %s restored to latest in 42 s (files 30 s, recovery 12 s)' % (
        DRILLED['backup_set']) in capsys.readouterr().out


@pytest.mark.parametrize('error, rc', [
    (ChronosError('Restore drill refused: something already listens on port 5499. Nothing was changed.', refused=True), 3),
    (ChronosError('Restore drill failed: pg_amcheck found corruption'), 1),
], ids=['refused', 'failed'])
def test_drill_failure_exit_codes(settings, commands, drill, capsys, error, rc):
    drill.outcome = error
    assert _jobs.Job(settings).drill() == rc
    found = samples(settings, 'drill')
    assert (sample(found, 'pgbackrest_drill_exit_code'), sample(found, 'pgbackrest_drill_restore_seconds')) == (rc, 0)
    assert error.msg in capsys.readouterr().err


def test_drill_while_busy(settings, commands, drill):
    drill.outcome = StanzaLock.Busy('Stanza chronos-v2 is busy: scheduled full backup holds it.')
    assert _jobs.Job(settings).drill() == 75
    assert os.listdir(settings['metrics_dir']) == []


# --- verify -------------------------------------------------------------------------------------------

def verify_metrics(settings):
    found = samples(settings, 'verify')
    return (sample(found, 'pgbackrest_verify_status'), sample(found, 'pgbackrest_verify_errors'),
            sample(found, 'pgbackrest_verify_last_run_timestamp_seconds'))


def holding_the_lock(output):
    """An answer for pgbackrest verify that also notes who held the stanza lock while it ran."""
    seen = []

    def answer(call):
        seen.append(StanzaLock('chronos-v2', 'progress').holder())
        return output
    answer.seen = seen
    return answer


def test_verify_finds_invalid_files(settings, commands, capsys):
    answer = holding_the_lock(ok(VERIFY_ERRORS))
    commands.expect(answer)
    assert _jobs.Job(settings).verify() == 1
    assert commands.calls[0]['argv'] == PREFIX[:2] + ['--config=%s' % settings['config']] + PREFIX[2:] + [
        '--output=text', '--verbose', 'verify']
    assert commands.calls[0]['user'] == 'postgres'
    assert answer.seen[0].startswith('pgbackrest verify pid ')
    assert StanzaLock('chronos-v2', 'progress').holder() == ''
    status, dummy, last_run = verify_metrics(settings)
    assert (status, last_run) == (1, 1795513999)
    out = capsys.readouterr().out
    assert 'chronos-v2: pgbackrest verify found ' in out
    assert '  backup: 20261124-092311F_20261124-092341D, status: invalid, total files checked: 983' in out


def test_verify_reports_a_sound_repository(settings, commands, capsys):
    """As pgBackRest prints it with --verbose: the status line says ok."""
    commands.expect(ok(VERIFY_VERBOSE_OK))
    assert _jobs.Job(settings).verify() == 0
    assert verify_metrics(settings) == (0, 0, 1795513999)
    assert 'chronos-v2: pgbackrest verify found no problem' in capsys.readouterr().out


def test_verify_counts_the_invalid_files(settings, commands):
    commands.expect(ok(VERIFY_ERRORS))
    _jobs.Job(settings).verify()
    assert verify_metrics(settings)[:2] == (1, 3)


def test_verify_that_cannot_run(settings, commands, capsys):
    commands.expect(fails(49, b'ERROR: [049]: unable to get address for \'nowhere.chronos.lab\'\n'))
    assert _jobs.Job(settings).verify() == _jobs.EXIT_REFUSED
    assert verify_metrics(settings) == (2, 0, 1795513999)
    assert ("pgbackrest verify could not run: ERROR: [049]: unable to get address for 'nowhere.chronos.lab'"
            in capsys.readouterr().err)


def test_verify_while_busy(settings, commands, capsys):
    with StanzaLock('chronos-v2', 'scheduled full backup'):
        assert _jobs.Job(settings).verify() == _jobs.EXIT_BUSY
    assert commands.calls == []
    assert os.listdir(settings['metrics_dir']) == []
    assert 'not starting pgbackrest verify: Stanza chronos-v2 is busy: scheduled full backup pid ' in (
        capsys.readouterr().err)


def test_verify_without_metrics_directory(settings, commands):
    settings['metrics_dir'] = None
    commands.expect(ok(VERIFY_ERRORS))
    assert _jobs.Job(settings).verify() == 1


def test_verify_when_the_container_is_gone(settings, commands, docker):
    commands.expect(ok(VERIFY_VERBOSE_OK))
    _jobs.Job(settings).verify()
    settings['container'] = 'chronos-db'
    try:
        _jobs.Job(settings).verify()
    except ChronosError:
        pass
    assert verify_metrics(settings)[0] == 2


# --- the command line -----------------------------------------------------------------------------------

@pytest.fixture
def settings_file(settings, tmp_path):
    path = tmp_path / 'chronos-v2.json'
    path.write_text(json.dumps(settings))
    return str(path)


@pytest.mark.parametrize('argv', [[], ['--stanza', 'chronos-v2'], ['metrics']])
def test_usage(argv, capsys):
    assert _jobs.main(argv) == _jobs.EXIT_USAGE == 2
    assert capsys.readouterr().err.startswith('usage: chronos-pgbackrest')


def test_main_backup(settings_file, commands):
    commands.expect(ok('info-one-full.json'), ok(), ok('info-after-diff.json'), *status_refresh())
    assert _jobs.main(['--settings', settings_file, 'backup', 'incr']) == 0
    assert commands.calls[1]['argv'][-3:] == backup_argv('incr')


def test_main_metrics(settings_file, commands):
    commands.expect(*status_refresh())
    assert _jobs.main(['--settings', settings_file, 'metrics']) == 0


def test_main_verify(settings_file, commands):
    commands.expect(ok(VERIFY_ERRORS))
    assert _jobs.main(['--settings', settings_file, 'verify']) == 1
    assert commands.names == ['verify']


def test_main_drill(settings_file, commands, drill):
    drill.outcome = DRILLED
    assert _jobs.main(['--settings', settings_file, 'drill', '--target', '2026-11-24 09:23:44+00']) == 0
    assert drill.built[0]['settings'].recovery_target == '2026-11-24 09:23:44+00'


def test_main_reads_the_stanzas_settings(settings, commands, settings_dir):
    os.makedirs(settings_dir)
    with open(os.path.join(settings_dir, 'chronos-v2.json'), 'w') as handle:
        json.dump(settings, handle)
    commands.expect(*status_refresh())
    assert _jobs.main(['--stanza', 'chronos-v2', 'metrics']) == 0
    assert sample(samples(settings, 'status'), 'pgbackrest_exporter_status') == 1


def test_main_without_settings(settings_dir, capsys):
    assert _jobs.main(['--stanza', 'chronos-v2', 'metrics']) == 1
    assert ('chronos-v2: Cannot read the settings %s/chronos-v2.json: ' % settings_dir) in capsys.readouterr().err


def test_main_with_broken_settings(settings_file, capsys):
    with open(settings_file, 'w') as handle:
        handle.write('{"stanza": ')
    assert _jobs.main(['--settings', settings_file, 'metrics']) == 1
    assert 'Run site.yml (tag pgbackrest_schedule) to write them.' in capsys.readouterr().err


def run_program(*argv):
    """The program in a process of its own (it points its stdout and stderr at the log)."""
    collections = os.path.abspath(_jobs.__file__)
    for dummy in range(6):  # .../collections/ansible_collections/chronos/pgbackrest/plugins/module_utils/_jobs.py
        collections = os.path.dirname(collections)
    code = ('import sys; sys.path.insert(0, %r); from ansible_collections.chronos.pgbackrest.plugins.module_utils._jobs '
            'import main; raise SystemExit(main(sys.argv[1:]))' % collections)
    return subprocess.run([sys.executable, '-c', code] + list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          check=False)


def test_the_job_appends_to_its_log(tmp_path):
    log = tmp_path / 'logs' / 'cron.log'
    log.parent.mkdir(mode=0o755)
    log.write_text(u'earlier run\n')
    done = run_program('--settings', str(tmp_path / 'missing.json'), '--log', str(log), 'metrics')
    assert (done.returncode, done.stdout, done.stderr) == (1, b'', b'')
    text = log.read_text()
    assert text.startswith(u'earlier run\n') and 'Cannot read the settings %s' % (tmp_path / 'missing.json') in text


def test_a_log_planted_as_a_link_is_not_followed(tmp_path):
    secret = tmp_path / 'shadow'
    secret.write_text(u'root:$6$x:19000::::::\n')
    secret.chmod(0o640)
    log = tmp_path / 'cron.log'
    os.symlink(str(secret), str(log))
    done = run_program('--settings', str(tmp_path / 'missing.json'), '--log', str(log), 'metrics')
    assert done.returncode == _jobs.EXIT_REFUSED
    assert b'not running metrics: cannot open the log: ' in done.stderr and b'is a link' in done.stderr
    assert (secret.read_text(), secret.stat().st_mode & 0o777) == (u'root:$6$x:19000::::::\n', 0o640)
