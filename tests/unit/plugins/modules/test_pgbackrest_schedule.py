# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgbackrest_schedule: the cron file, the schedule's validation, the program's library taken from the module's own
copy of module_utils (installed into tmp_path and run for real), and main() writing under tmp_path instead of /etc
and /usr/local (the module's paths are fixed: its writes are re-rooted here)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _errors, _files
from ansible_collections.chronos.pgbackrest.plugins.modules import pgbackrest_schedule as schedule

from ansible_collections.chronos.pgbackrest.tests.unit.harness import REPO, SECRETS, ok

PARAMS = dict(hour=2, minute=0, full_weekday=0, metrics_every=5, metrics_dir='/var/lib/prometheus/node-exporter',
              cron_log='/var/log/chronos-backup-cron.log', verify={}, drill={})
PROGRAM = '/usr/local/bin/chronos-pgbackrest --stanza chronos-v2 --log /var/log/chronos-backup-cron.log'


# --- the cron file ----------------------------------------------------------------------------------------

def test_cron_text():
    assert schedule.cron_text(PARAMS, 'chronos-v2').splitlines() == [
        '# Scheduled pgBackRest jobs of stanza chronos-v2; written by chronos.pgbackrest (pgbackrest_schedule).',
        'SHELL=/bin/sh',
        'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        '0 2 * * * root %s backup' % PROGRAM,
        '*/5 * * * * root %s metrics' % PROGRAM]


def test_cron_text_with_a_drill_and_without_metrics():
    params = dict(PARAMS, hour=23, minute=45, full_weekday=6, metrics_dir=None,
                  drill=dict(enabled=True, weekday='3', hour=5, minute='30'))
    lines = schedule.cron_text(params, 'chronos-v2').splitlines()
    assert lines[3:] == ['45 23 * * * root %s backup' % PROGRAM,
                         '30 5 * * 3 root %s drill' % PROGRAM]


def test_cron_text_with_a_verify_and_a_drill():
    params = dict(PARAMS, verify=dict(enabled=True, weekday=0, hour='3', minute=15), drill=dict(enabled=True))
    assert schedule.cron_text(params, 'chronos-v2').splitlines()[-2:] == [
        '15 3 * * 0 root %s verify' % PROGRAM,
        '0 5 * * 6 root %s drill' % PROGRAM]


@pytest.mark.parametrize('job, line', [('verify', '0 4 * * 6 root %s verify' % PROGRAM),
                                       ('drill', '0 5 * * 6 root %s drill' % PROGRAM)])
def test_cron_text_defaults_of_the_weekly_jobs(job, line):
    lines = schedule.cron_text(dict(PARAMS, **{job: dict(enabled=True)}), 'chronos-v2').splitlines()
    assert lines[-1] == line
    assert len(lines) == 6


@pytest.mark.parametrize('job', ['verify', 'drill'])
def test_a_disabled_weekly_job_is_not_scheduled(job):
    assert ' %s ' % job not in schedule.cron_text(dict(PARAMS, **{job: dict(enabled=False, hour=5)}), 'chronos-v2')
    assert ' %s ' % job not in schedule.cron_text(dict(PARAMS, **{job: None}), 'chronos-v2')


@pytest.mark.parametrize('changes, problems', [
    (dict(hour=24), ['hour must be 0 to 23 (got 24)']),
    (dict(minute=60), ['minute must be 0 to 59 (got 60)']),
    (dict(hour=-1, minute=-1), ['hour must be 0 to 23 (got -1)', 'minute must be 0 to 59 (got -1)']),
    (dict(full_weekday=7), ['full_weekday must be 0 to 6 (got 7)']),
    (dict(metrics_every=0), ['metrics_every must be 1 to 59 (got 0)']),
    (dict(metrics_every=60), ['metrics_every must be 1 to 59 (got 60)']),
    (dict(drill=dict(enabled=True, hour=24)), ['drill hour must be 0 to 23 (got 24)']),
    (dict(drill=dict(enabled=True, minute='x')), ['drill minute must be 0 to 59 (got x)']),
    (dict(drill=dict(enabled=True, weekday=-1)), ['drill weekday must be 0 to 6 (got -1)']),
    (dict(verify=dict(enabled=True, hour=25)), ['verify hour must be 0 to 23 (got 25)']),
    (dict(verify=dict(minute='half past')), ['verify minute must be 0 to 59 (got half past)']),
    (dict(verify=dict(weekday=7), drill=dict(weekday=7)),
     ['verify weekday must be 0 to 6 (got 7)', 'drill weekday must be 0 to 6 (got 7)']),
], ids=['hour-24', 'minute-60', 'negative', 'weekday-7', 'every-0', 'every-60', 'drill-hour', 'drill-minute',
        'drill-weekday', 'verify-hour', 'verify-minute', 'both-weekdays'])
def test_check_schedule_refuses(changes, problems):
    with pytest.raises(_errors.ChronosError) as raised:
        schedule.check_schedule(dict(PARAMS, **changes))
    assert raised.value.msg == ('Invalid schedule: %s; cron would reject the file and nothing would run. Nothing was '
                                'changed.' % '; '.join(problems))


@pytest.mark.parametrize('changes', [dict(), dict(hour=23, minute=59, full_weekday=6, metrics_every=59),
                                     dict(hour=0, minute=0, metrics_every=1, drill=dict(hour='0', minute=59, weekday=0)),
                                     dict(verify=dict(enabled=True, hour=23, minute='0', weekday=6)),
                                     dict(verify=None, drill=None)])
def test_check_schedule_accepts(changes):
    schedule.check_schedule(dict(PARAMS, **changes))


# --- the program's library ---------------------------------------------------------------------------------

def test_library_files_are_the_module_utils_sources():
    files = schedule.library_files()
    package = os.path.join(schedule.LIBRARY, 'ansible_collections', 'chronos', 'pgbackrest', 'plugins', 'module_utils')
    # Derived from what _jobs imports: the modules' own helpers (_module, _follow) are not the program's.
    for module in ('_archiving', '_backup', '_container', '_drill', '_drivers', '_errors', '_files', '_host', '_jobs', '_lock',
                   '_metrics', '_pgbackrest', '_places', '_postgres', '_restore', '_target', '_wal'):
        with open(os.path.join(REPO, 'plugins', 'module_utils', module + '.py'), 'rb') as handle:
            assert files.pop(os.path.join(package, module + '.py')) == handle.read(), module
    # What is left: an empty __init__.py for each package level, nothing else.
    levels = ['ansible_collections', 'chronos', 'pgbackrest', 'plugins', 'module_utils']
    assert files == dict((os.path.join(schedule.LIBRARY, *levels[:depth]) + '/__init__.py', b'')
                         for depth in range(1, 6))


def test_the_installed_program_runs_on_its_library_alone(tmp_path):
    """Everything _jobs imports is shipped: the program, installed with its library under tmp_path, starts with
    nothing else of the collection importable."""
    library = str(tmp_path / 'lib')
    for path, content in schedule.library_files().items():
        target = library + path[len(schedule.LIBRARY):]
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, 'wb') as handle:
            handle.write(content)
    program = tmp_path / 'chronos-pgbackrest'
    program.write_text(schedule.PROGRAM_TEXT % (sys.executable, library))
    done = subprocess.run([sys.executable, '-I', str(program), '--help'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          cwd=str(tmp_path), check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith('usage: chronos-pgbackrest')
    # Every module the program can load came from the installed library.
    check = ("import sys; sys.path.insert(0, %r); from ansible_collections.chronos.pgbackrest.plugins.module_utils "
             "import _jobs, _drill, _restore, _container, _places; print(_jobs.__file__)" % library)
    done = subprocess.run([sys.executable, '-I', '-c', check], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          cwd=str(tmp_path), check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith(library)


# --- main() ------------------------------------------------------------------------------------------------

SYSTEM = ('/etc/', '/usr/local/')


@pytest.fixture
def root(tmp_path, monkeypatch):
    """Re-root the module's writes under /etc and /usr/local into tmp_path/root; owner root without being root."""
    base = str(tmp_path / 'root')

    def rooted(path):
        return base + path if path.startswith(SYSTEM) else path

    def rerooted(real):
        return lambda path, *args, **kwargs: real(rooted(path), *args, **kwargs)
    for name in ('write_local_file', 'make_local_directory', 'remove_local_file'):
        monkeypatch.setattr(schedule, name, rerooted(getattr(_files, name)))
    monkeypatch.setattr(schedule, 'read_local', rerooted(schedule.read_local))

    class Path(object):
        def __getattr__(self, name):
            return getattr(os.path, name)

        def exists(self, path):
            return os.path.exists(rooted(path))

        def lexists(self, path):
            return os.path.lexists(rooted(path))

    class Os(object):
        path = Path()

        def __getattr__(self, name):
            return getattr(os, name)
    monkeypatch.setattr(schedule, 'os', Os())
    # The first status file is written through _metrics.refresh (its own tests are in test_jobs.py): record the calls.
    refreshed = []

    def refresh(target, pgbackrest, directory):
        refreshed.append(directory)
        os.makedirs(directory, exist_ok=True)
        open(schedule._metrics.file_path(directory, pgbackrest.stanza, 'status'), 'w').close()
        return []
    monkeypatch.setattr(schedule._metrics, 'refresh', refresh)
    monkeypatch.setattr(schedule, 'REFRESHED', refreshed, raising=False)
    if os.geteuid() != 0:
        monkeypatch.setattr(os, 'chown', lambda *args: None)
        monkeypatch.setattr(os, 'fchown', lambda *args: None)
    return base


def args(tmp_path, **more):
    return dict(dict(stanza='chronos-v2', pg_path='/var/lib/postgresql/15/main', wrapper='#!/bin/sh\nexec true\n',
                     wrapper_path=str(tmp_path / 'pgbackrest-backup.sh'), metrics_dir=str(tmp_path / 'metrics'),
                     config='/etc/pgbackrest/pgbackrest.conf'), **more)


def tree(base):
    return sorted(os.path.relpath(os.path.join(directory, name), base)
                  for directory, dummy, names in os.walk(base) for name in names)


def test_first_run_installs_everything_then_nothing_changes(run_module, root, tmp_path, settings_dir):
    run = run_module(schedule, args(tmp_path, drill=dict(enabled=True, port=5499, hour=4),
                                    verify=dict(enabled=True, weekday=0), **SECRETS))
    assert not run.failed, run.msg
    assert run.result['changed'] is True
    assert run.result['cron_file'] == '/etc/cron.d/pgbackrest-chronos-v2'
    assert schedule.REFRESHED == [str(tmp_path / 'metrics')], 'the status metrics are written before cron first runs'
    installed = tree(root)
    assert 'etc/cron.d/pgbackrest-chronos-v2' in installed
    assert 'usr/local/bin/chronos-pgbackrest' in installed
    assert 'usr/local/lib/chronos-pgbackrest/ansible_collections/chronos/pgbackrest/plugins/module_utils/_jobs.py' in installed
    # The settings go where the program and the modules read them (_target.settings_path; conftest.settings_dir).
    settings_file = os.path.join(settings_dir, 'chronos-v2.json')
    assert sorted(run.result['changed_files']) == sorted(
        ['/' + path for path in installed] + [settings_file, str(tmp_path / 'metrics'),
                                              '%s on this host' % (tmp_path / 'pgbackrest-backup.sh')])
    program = os.path.join(root, 'usr/local/bin/chronos-pgbackrest')
    assert oct(os.stat(program).st_mode & 0o777) == oct(0o755)
    with open(program) as handle:
        assert "sys.path.insert(0, '/usr/local/lib/chronos-pgbackrest')" in handle.read()
    with open(os.path.join(root, 'etc/cron.d/pgbackrest-chronos-v2')) as handle:
        assert handle.read() == schedule.cron_text(dict(PARAMS, metrics_dir=str(tmp_path / 'metrics'),
                                                        drill=dict(enabled=True, hour=4),
                                                        verify=dict(enabled=True, weekday=0)), 'chronos-v2')
    with open(settings_file) as handle:
        text = handle.read()
    settings = json.loads(text)
    assert settings['wrapper'] == str(tmp_path / 'pgbackrest-backup.sh')
    assert settings['drill'] == {'port': 5499}
    assert (settings['stanza'], settings['pg_path'], settings['config'], settings['metrics_dir'], settings['binary']) == (
        'chronos-v2', '/var/lib/postgresql/15/main', '/etc/pgbackrest/pgbackrest.conf', str(tmp_path / 'metrics'), None)
    # No secret in any file the module writes.
    for path in [os.path.join(root, path) for path in installed] + [settings_file]:
        with open(path, 'rb') as handle:
            content = handle.read()
        assert not [secret for secret in SECRETS.values() if secret.encode() in content], path
    with open(str(tmp_path / 'pgbackrest-backup.sh')) as handle:
        assert handle.read() == '#!/bin/sh\nexec true\n'
    assert os.path.isdir(str(tmp_path / 'metrics'))

    again = run_module(schedule, args(tmp_path, drill=dict(enabled=True, port=5499, hour=4),
                                      verify=dict(enabled=True, weekday=0), **SECRETS))
    assert (again.failed, again.result['changed'], again.result['changed_files']) == (False, False, [])


def test_diff_mode_shows_the_cron_file_the_settings_and_the_wrapper(run_module, root, tmp_path, settings_dir):
    first = run_module(schedule, dict(args(tmp_path), _ansible_diff=True), check_mode=True)
    headers = [diff['before_header'] for diff in first.result['diff']]
    assert headers == [os.path.join(settings_dir, 'chronos-v2.json'), '/etc/cron.d/pgbackrest-chronos-v2',
                       str(tmp_path / 'pgbackrest-backup.sh')]
    assert [diff['before'] for diff in first.result['diff']] == ['', '', '']
    assert ' root /usr/local/bin/chronos-pgbackrest --stanza chronos-v2 --log /var/log/chronos-backup-cron.log backup\n' \
        in first.result['diff'][1]['after']
    run_module(schedule, args(tmp_path))
    moved = run_module(schedule, dict(args(tmp_path, hour=3), _ansible_diff=True))
    assert [diff['before_header'] for diff in moved.result['diff']] == ['/etc/cron.d/pgbackrest-chronos-v2']
    cron = moved.result['diff'][0]
    assert '0 2 * * * root' in cron['before'] and '0 3 * * * root' in cron['after']
    quiet = run_module(schedule, dict(args(tmp_path, hour=3), _ansible_diff=True))
    assert (quiet.result['changed'], quiet.result['diff']) == (False, [])


def test_a_stanza_with_dots(run_module, root, tmp_path, settings_dir):
    run = run_module(schedule, args(tmp_path, stanza='db1.chronos.lab'))
    assert run.result['cron_file'] == '/etc/cron.d/pgbackrest-db1_chronos_lab'
    assert os.path.exists(os.path.join(root, 'etc/cron.d/pgbackrest-db1_chronos_lab'))
    # The settings keep the stanza's real name.
    assert os.path.exists(os.path.join(settings_dir, 'db1.chronos.lab.json'))


def test_check_mode_writes_nothing(run_module, root, tmp_path):
    run = run_module(schedule, args(tmp_path), check_mode=True)
    assert (run.failed, run.result['changed']) == (False, True)
    assert '/etc/cron.d/pgbackrest-chronos-v2' in run.result['changed_files']
    assert not os.path.exists(root)
    assert not os.path.exists(str(tmp_path / 'metrics'))
    assert not os.path.exists(str(tmp_path / 'pgbackrest-backup.sh'))


def test_disabled_removes_the_cron_file(run_module, root, tmp_path):
    run_module(schedule, args(tmp_path))
    check = run_module(schedule, args(tmp_path, enabled=False), check_mode=True)
    assert check.result['changed_files'] == ['/etc/cron.d/pgbackrest-chronos-v2']
    assert os.path.exists(os.path.join(root, 'etc/cron.d/pgbackrest-chronos-v2'))
    run = run_module(schedule, args(tmp_path, enabled=False))
    assert run.result['changed_files'] == ['/etc/cron.d/pgbackrest-chronos-v2']
    assert not os.path.exists(os.path.join(root, 'etc/cron.d/pgbackrest-chronos-v2'))
    again = run_module(schedule, args(tmp_path, enabled=False))
    assert again.result['changed'] is False


def test_an_invalid_schedule_changes_nothing(run_module, root, tmp_path):
    run = run_module(schedule, args(tmp_path, hour=24, minute=60))
    assert run.failed
    assert run.msg.startswith('Invalid schedule: hour must be 0 to 23 (got 24); minute must be 0 to 59 (got 60); ')
    assert not os.path.exists(root)


def test_the_wrapper_goes_into_the_container(run_module, root, tmp_path, docker, settings_dir):
    container = docker.add_container()
    run = run_module(schedule, args(tmp_path, container='chronos-db', wrapper_path='/usr/local/bin/pgbackrest-backup.sh'))
    assert not run.failed, run.msg
    assert container.files['/usr/local/bin/pgbackrest-backup.sh'] == (b'#!/bin/sh\nexec true\n', 0, 0, 0o755)
    assert "/usr/local/bin/pgbackrest-backup.sh on container 'chronos-db'" in run.result['changed_files']
    # The program and its settings are on the Docker host, not in the container.
    assert os.path.exists(os.path.join(root, 'usr/local/bin/chronos-pgbackrest'))
    with open(os.path.join(settings_dir, 'chronos-v2.json')) as handle:
        assert json.load(handle)['container'] == 'chronos-db'


def test_the_settings_list_what_the_jobs_put_back_on_the_target(run_module, root, tmp_path, docker, settings_dir):
    container = docker.add_container()
    run = run_module(schedule, args(tmp_path, container='chronos-db', wrapper_path='/usr/local/bin/pgbackrest-backup.sh',
                                    ca_cert='-----BEGIN CERTIFICATE-----\nlab\n', ca_path='/etc/pgbackrest/repo1-ca.crt'),
                     [ok(b'999\n'), ok(b'999\n')])
    assert not run.failed, run.msg
    with open(os.path.join(settings_dir, 'chronos-v2.json')) as handle:
        installed = json.load(handle)['installed']
    assert installed == [
        dict(path='/usr/local/bin/pgbackrest-backup.sh', content='#!/bin/sh\nexec true\n', uid=0, gid=0, mode='0755'),
        dict(path='/etc/pgbackrest/repo1-ca.crt', content='-----BEGIN CERTIFICATE-----\nlab\n', uid=0, gid=999,
             mode='0644')]
    assert container.files['/usr/local/bin/pgbackrest-backup.sh'][0] == b'#!/bin/sh\nexec true\n'
