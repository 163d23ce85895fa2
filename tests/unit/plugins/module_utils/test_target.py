# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/module_utils/_target.py: the host target's commands (the process it starts is faked one level below
HostTarget._run, at subprocess), SQL through psql, waiting for PostgreSQL, and the files it writes for real in
tmp_path (write_local_file)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import pwd
import subprocess
import sys

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _drivers, _files, _host, _target
from ansible_collections.chronos.pgbackrest.plugins.module_utils._places import DirectoryPlace
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError
from ansible_collections.chronos.pgbackrest.plugins.module_utils._host import HostTarget

from ansible_collections.chronos.pgbackrest.tests.unit.harness import BIN, SECRET_ENVIRONMENT, fails, ok, psql_rows

PSQL = [BIN + '/psql', '-X', '-q', '-t', '--csv', '-v', 'ON_ERROR_STOP=1', '-h', '/var/run/postgresql', '-p', '5432',
        '-U', 'postgres', '-d', 'postgres']


def ids(table):
    return [row[0] for row in table]


# --- HostTarget._run: the process it starts --------------------------------------------------------------

class Processes(object):
    """Stands for subprocess inside _target: records what HostTarget._run would start."""

    PIPE = subprocess.PIPE

    def __init__(self, returncode=0, stdout=b'', stderr=b'', error=None):
        self.started = []
        self.answer = (returncode, stdout, stderr)
        self.error = error

    def run(self, argv, **kwargs):
        self.started.append(dict(kwargs, argv=list(argv)))
        if self.error:
            raise self.error
        return type('Completed', (), dict(zip(('returncode', 'stdout', 'stderr'), self.answer)))()


@pytest.fixture
def processes(monkeypatch):
    """Processes as _target's subprocess, with runuser at /usr/sbin/runuser, running as root."""
    fake = Processes()
    monkeypatch.setattr(_host, 'subprocess', fake)
    monkeypatch.setattr(_host, '_which', lambda name: '/usr/sbin/%s' % name)
    as_user(monkeypatch, 'root', 0)
    return fake


def as_user(monkeypatch, name, uid):
    """Make HostTarget believe it runs as name (uid); no such user needs to exist."""
    monkeypatch.setattr(os, 'geteuid', lambda: uid)
    monkeypatch.setattr(_host.pwd, 'getpwuid', lambda wanted: pwd.struct_passwd(
        (name, 'x', wanted, wanted, '', '/', '/bin/sh')))


def test_run_as_another_user_from_root_goes_through_runuser(processes):
    done = HostTarget(bin_path='/opt/pg/bin').run(['pgbackrest', 'version'], env={'PGBACKREST_REPO1_CIPHER_PASS': 'x'})
    started = processes.started[0]
    assert started['argv'] == ['/usr/sbin/runuser', '-u', 'postgres', '--', 'pgbackrest', 'version']
    assert started['cwd'] == '/'
    assert started['input'] is None
    assert started['env']['PGBACKREST_REPO1_CIPHER_PASS'] == 'x'
    # bin_path first, then PATH as it was, then the standard directories cron leaves out.
    path = started['env']['PATH'].split(':')
    assert path[0] == '/opt/pg/bin'
    assert path.index('/usr/local/sbin') > 0 and '/usr/sbin' in path and '/bin' in path
    assert (done.rc, done.stdout, done.stderr) == (0, '', '')


def test_run_as_the_same_user_needs_no_runuser(processes, monkeypatch):
    as_user(monkeypatch, 'postgres', 1234)
    HostTarget().run(['psql', '--version'])
    assert processes.started[0]['argv'] == ['psql', '--version']


def test_run_as_root_when_asked(processes):
    HostTarget().run(['id', '-u', 'postgres'], user='root')
    assert processes.started[0]['argv'] == ['id', '-u', 'postgres']


def test_run_as_another_user_without_root_is_refused(processes, monkeypatch):
    as_user(monkeypatch, 'ansible', 1000)
    with pytest.raises(ChronosError) as raised:
        HostTarget().run(['pgbackrest', 'info'])
    assert raised.value.msg == ('Cannot run pgbackrest as postgres while running as ansible: run as root '
                                '(become: true) or as postgres.')
    assert processes.started == []


def test_runuser_missing(monkeypatch):
    monkeypatch.setattr(_host.shutil, 'which', lambda name, path=None: None)
    as_user(monkeypatch, 'root', 0)
    with pytest.raises(ChronosError, match='runuser is not installed on this host.'):
        HostTarget().run(['pgbackrest', 'info'])


def test_stdin_and_output_bytes(processes):
    processes.answer = (3, b'caf\xc3\xa9\n', b'\xff not utf-8\n')
    done = HostTarget().run(['psql', '-f', '-'], stdin='SELECT \'é\';')
    assert processes.started[0]['input'] == "SELECT 'é';".encode('utf-8')
    # Undecodable bytes (a wrong passphrase's garbage) become U+FFFD, never an exception.
    assert (done.rc, done.stdout, done.stderr) == (3, 'café\n', '\ufffd not utf-8\n')
    assert done.output == '\ufffd not utf-8'


def test_a_missing_program_is_exit_127(processes):
    processes.error = OSError(2, 'No such file or directory', 'pgbackrest')
    done = HostTarget().run(['pgbackrest', 'version'])
    assert done.rc == 127 and 'No such file or directory' in done.stderr


def test_secrets_reach_the_environment_never_the_arguments(processes):
    HostTarget().run(['pgbackrest', '--stanza=s', 'info'], env=SECRET_ENVIRONMENT)
    started = processes.started[0]
    assert all(started['env'][name] == value for name, value in SECRET_ENVIRONMENT.items())
    assert not [arg for arg in started['argv'] for value in SECRET_ENVIRONMENT.values() if value in arg]


def test_run_records_what_it_ran(host, commands):
    commands.expect(ok(), ok())
    host.run(['pgbackrest', 7, '--stanza=s'])
    host.run(['psql'], env={'PGBACKREST_REPO1_CIPHER_PASS': 'secret'})
    assert host.executed_commands == ['pgbackrest 7 --stanza=s', 'psql']
    assert commands.calls[0]['argv'] == ['pgbackrest', '7', '--stanza=s']
    assert commands.calls[0]['user'] == 'postgres'


@pytest.mark.parametrize('path, first, expected', [
    ('/usr/bin:/bin', None, '/usr/bin:/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin'),
    ('', '/opt/pg/bin', '/opt/pg/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'),
    (None, None, _host.DEFAULT_PATH),
    ('/home/x/bin::/usr/bin', None, '/home/x/bin:/usr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin:/bin'),
])
def test_with_default_path(path, first, expected):
    assert _host._with_default_path(path, first) == expected


# --- pg_tool ------------------------------------------------------------------------------------------

def test_pg_tool_in_bin_path():
    assert HostTarget(bin_path='/usr/lib/postgresql/16/bin/').pg_tool('pg_ctl') == '/usr/lib/postgresql/16/bin/pg_ctl'


def test_pg_tool_on_path(monkeypatch):
    monkeypatch.setattr(_host.shutil, 'which', lambda name, path=None: '/usr/bin/%s' % name)
    assert HostTarget().pg_tool('psql') == 'psql'


@pytest.mark.parametrize('installed, expected', [
    (['/usr/lib/postgresql/9.6/bin/pg_ctl', '/usr/lib/postgresql/15/bin/pg_ctl', '/usr/lib/postgresql/13/bin/pg_ctl'],
     '/usr/lib/postgresql/15/bin/pg_ctl'),
    (['/usr/lib/postgresql/17/bin/pg_ctl'], '/usr/lib/postgresql/17/bin/pg_ctl'),
    ([], 'pg_ctl'),
], ids=['newest-major', 'one', 'none'])
def test_pg_tool_falls_back_to_debians_directories(monkeypatch, installed, expected):
    """Debian keeps pg_ctl off the PATH, in /usr/lib/postgresql/<major>/bin: the newest major's (numerically: 15 > 9.6)."""
    monkeypatch.setattr(_host.shutil, 'which', lambda name, path=None: None)
    monkeypatch.setattr(_host.glob, 'glob', lambda pattern: list(installed)
                        if pattern == '/usr/lib/postgresql/*/bin/pg_ctl' else [])
    assert HostTarget().pg_tool('pg_ctl') == expected


def test_container_like_targets_use_the_name_on_path():
    assert _target.Target().pg_tool('psql') == 'psql'
    assert _target.Target(bin_path='/opt/pg').pg_tool('psql') == '/opt/pg/psql'


# --- SQL ----------------------------------------------------------------------------------------------

def test_psql_argv():
    target = HostTarget(pg_user='chronos', pg_port=5433, socket_path='/tmp/s', bin_path=BIN)
    assert target.psql_argv('app') == [BIN + '/psql', '-X', '-q', '-t', '--csv', '-v', 'ON_ERROR_STOP=1', '-h', '/tmp/s',
                                       '-p', '5433', '-U', 'chronos', '-d', 'app']
    assert target.psql_argv(port=6000, host='/run/x', user='other')[8:14] == ['/run/x', '-p', '6000', '-U', 'other', '-d']


def test_sql_reads_csv_rows(host, commands):
    commands.expect(ok(psql_rows(('1', 'a, with a comma'), ('2', 'two\nlines'), ('3', '"quoted"')) + b'\n'))
    rows = host.sql('SELECT 1', database='app', variables={'b': 'x y', 'a': "it's"})
    assert rows == [['1', 'a, with a comma'], ['2', 'two\nlines'], ['3', '"quoted"']]
    call = commands.calls[0]
    # The script on stdin, variables as psql variables in a stable order.
    assert call['argv'] == PSQL[:-1] + ['app', '-v', "a=it's", '-v', 'b=x y', '-f', '-']
    assert call['stdin'] == 'SELECT 1'
    assert call['user'] == 'postgres'


def test_sql_error_says_what_was_attempted(host, commands):
    commands.expect(fails(1, b'psql:<stdin>:1: ERROR:  relation "nope" does not exist\n'))
    with pytest.raises(ChronosError) as raised:
        host.sql('SELECT * FROM nope', attempt='count the rows')
    assert raised.value.msg == ('Unable to count the rows: psql on this host exited 1: psql:<stdin>:1: ERROR:  '
                                'relation "nope" does not exist')
    assert raised.value.extra == dict(rc=1, stderr='psql:<stdin>:1: ERROR:  relation "nope" does not exist\n')


def test_sql_error_without_message(host, commands):
    commands.expect(fails(2))
    with pytest.raises(ChronosError, match=r'^Unable to query PostgreSQL: psql on this host exited 2: no message$'):
        host.sql('SELECT 1')


@pytest.mark.parametrize('rc, ready', [(0, True), (1, False), (2, False)])
def test_pg_ready(host, commands, rc, ready):
    commands.expect((rc, b'', b''))
    assert host.pg_ready() is ready
    assert commands.calls[0]['argv'] == [BIN + '/pg_isready', '-q', '-h', '/var/run/postgresql', '-p', '5432']


# --- waiting for PostgreSQL ---------------------------------------------------------------------------------

def recovery(in_recovery, paused):
    return ok(('%s,%s\n' % (in_recovery, paused)).encode())


def test_wait_for_recovery_until_promoted(host, commands, clock):
    commands.expect(recovery('t', 'f'), fails(2, b'psql: error: the database system is starting up\n'),
                    recovery('f', 'f'))
    host.wait_for_recovery(60, False, lambda: True, lambda: 'never asked')
    assert clock.slept == [1, 1]
    assert commands.calls[0]['argv'][-2:] == ['-c', 'SELECT pg_is_in_recovery(), pg_is_in_recovery() AND '
                                                    'pg_is_wal_replay_paused()']


def test_wait_for_recovery_until_paused(host, commands, clock):
    commands.expect(recovery('t', 'f'), recovery('t', 't'))
    host.wait_for_recovery(60, True, lambda: True, lambda: 'never asked')
    assert clock.slept == [1]


def test_wait_for_recovery_when_postgresql_stopped(host, commands):
    commands.expect(recovery('t', 'f'))
    alive = iter([True, False])
    with pytest.raises(ChronosError) as raised:
        ended = 'FATAL:  recovery ended before configured recovery target was reached'
        host.wait_for_recovery(60, False, lambda: next(alive), lambda: ended)
    assert raised.value.msg == ('PostgreSQL stopped during recovery on this host: FATAL:  recovery ended before '
                                'configured recovery target was reached')
    assert raised.value.extra == dict(step='recover')


def test_wait_for_recovery_times_out(host, commands, clock):
    commands.expect(*[recovery('t', 'f')] * 4)
    with pytest.raises(ChronosError) as raised:
        host.wait_for_recovery(3, False, lambda: True, lambda: '')
    assert raised.value.msg == 'PostgreSQL on this host was still recovering after 3 s (the restore timeout).'
    assert clock.slept == [1, 1, 1]


def test_wait_until_ready(host, commands, clock):
    commands.expect(fails(2), fails(2), ok())
    assert host.wait_until_ready(10) is True
    assert clock.slept == [1, 1]


def test_wait_until_ready_gives_up(host, commands, clock):
    commands.expect(*[fails(2)] * 3)
    assert host.wait_until_ready(4, interval=2) is False
    assert clock.slept == [2, 2]


# --- the PostgreSQL service ----------------------------------------------------------------------------------

def test_stop_postgresql(host, commands, make_data_dir):
    commands.expect(ok())
    host.stop_postgresql(make_data_dir())
    assert commands.calls[0]['argv'] == ['/usr/sbin/service', 'postgresql', 'stop']
    # As the user the module runs as (root), not as the PostgreSQL user: only root may stop the service.
    assert commands.calls[0]['user'] == pwd.getpwuid(os.geteuid()).pw_name
    assert host.executed_commands == ['/usr/sbin/service postgresql stop']


def test_the_service_runs_without_runuser(processes):
    """HostTarget._service goes through _run like any command: as the current user, so without runuser."""
    HostTarget(pg_service='postgresql@15-main', bin_path='/opt/pg/bin').start_postgresql()
    started = processes.started[0]
    assert started['argv'] == ['/usr/sbin/service', 'postgresql@15-main', 'start']
    assert started['cwd'] == '/'


def test_stop_postgresql_waits_for_the_postmaster(host, commands, make_data_dir, clock):
    pg_path = make_data_dir({'postmaster.pid': ('%d\n' % os.getpid()).encode()})

    def gone(now):
        if now >= clock.now and len(clock.slept) == 3:
            os.unlink(os.path.join(pg_path, 'postmaster.pid'))
    clock.on_sleep = gone
    commands.expect(ok())
    host.stop_postgresql(pg_path)
    assert clock.slept == [0.5, 0.5, 0.5]


def test_stop_postgresql_times_out(host, commands, make_data_dir):
    pg_path = make_data_dir({'postmaster.pid': ('%d\n' % os.getpid()).encode()})
    commands.expect(ok())
    with pytest.raises(ChronosError, match=r'^PostgreSQL on %s still runs 2 s after service postgresql stop.$' % pg_path):
        HostTarget(stop_timeout=2).stop_postgresql(pg_path)


def test_service_failure(commands):
    commands.expect(fails(1, b'Job for postgresql.service failed.\n'))
    with pytest.raises(ChronosError) as raised:
        HostTarget(pg_service='postgresql@15-main').start_postgresql()
    assert raised.value.msg == ('Unable to start PostgreSQL: service postgresql@15-main start exited 1: Job for '
                                'postgresql.service failed.')


def test_recover_starts_and_waits(host, commands, make_data_dir):
    pg_path = make_data_dir({'postmaster.pid': ('%d\n' % os.getpid()).encode()})
    commands.expect(ok(), recovery('f', 'f'))
    host.recover(pg_path, 60, False)
    assert commands.names == ['service', 'psql']
    assert commands.calls[0]['argv'][1:] == ['postgresql', 'start']


# --- postmaster_running ------------------------------------------------------------------------------

def pid_file(captured_bytes, pid):
    """The lab's postmaster.pid (datadir-main.postmaster.pid) with its first line, the postmaster's pid, replaced."""
    lines = captured_bytes('datadir-main.postmaster.pid').split(b'\n')
    return b'\n'.join([str(pid).encode()] + lines[1:])


def dead_pid():
    """The pid of a process that has exited and been reaped: what a postmaster.pid left by a crash names."""
    child = subprocess.Popen([sys.executable, '-c', ''])
    child.wait()
    return child.pid


POSTMASTER_RUNNING = [
    ('no-pid-file', lambda captured_bytes: None, False),
    ('own-pid', lambda captured_bytes: pid_file(captured_bytes, os.getpid()), True),
    ('pid-1', lambda captured_bytes: pid_file(captured_bytes, 1), True),      # alive; EPERM when not root
    ('dead-pid', lambda captured_bytes: pid_file(captured_bytes, dead_pid()), False),
    ('empty', lambda captured_bytes: b'', False),
    ('words', lambda captured_bytes: b'not a pid\n', False),
    ('digits-and-words', lambda captured_bytes: b'12abc\n/var/lib/postgresql/15/main\n', False),
    ('second-line-only', lambda captured_bytes: b'\n5348\n', False),
    ('not-utf8', lambda captured_bytes: b'\xff\xfe\x00\x01', False),
    ('zero', lambda captured_bytes: b'0\n', False),           # kill(0) would signal the process group
    ('minus-one', lambda captured_bytes: b'-1\n', False),     # kill(-1) every process
    ('huge', lambda captured_bytes: b'99999999999\n', False),
]


@pytest.mark.parametrize('case, content, running', POSTMASTER_RUNNING, ids=ids(POSTMASTER_RUNNING))
def test_postmaster_running(captured_bytes, make_data_dir, case, content, running):
    pid = content(captured_bytes)
    pg_path = make_data_dir({} if pid is None else {'postmaster.pid': pid})
    assert _host.postmaster_running(pg_path) is running


def test_postmaster_running_missing_dir(tmp_path):
    assert _host.postmaster_running(str(tmp_path / 'nowhere')) is False


def test_postmaster_running_for_a_process_of_another_user(make_data_dir, monkeypatch):
    """kill(pid, 0) answers EPERM for a live process this user may not signal: it runs."""
    def kill(pid, signal):
        raise OSError(1, 'Operation not permitted')
    monkeypatch.setattr(os, 'kill', kill)
    assert _host.postmaster_running(make_data_dir({'postmaster.pid': b'5348\n'})) is True


# --- postgresql_log_errors ----------------------------------------------------------------------------------

def test_postgresql_log_errors_reads_the_newest_log(tmp_path):
    old = tmp_path / 'postgresql-14-main.log'
    old.write_text('2026-11-24 09:00:00 UTC [1] FATAL:  old trouble\n')
    new = tmp_path / 'postgresql-15-main.log'
    new.write_text('LOG:  starting\nFATAL:  one\nLOG:  x\nPANIC:  two\nFATAL:  three\nFATAL:  four\nLOG:  end\n')
    os.utime(str(old), (1, 1))
    (tmp_path / 'notes.txt').write_text('FATAL: not a log\n')
    assert _host.postgresql_log_errors(str(tmp_path)) == 'PANIC:  two FATAL:  three FATAL:  four'


@pytest.mark.parametrize('content', [None, 'LOG:  all fine\n'], ids=['no-log', 'no-error'])
def test_postgresql_log_errors_without_errors(tmp_path, content):
    if content:
        (tmp_path / 'postgresql-15-main.log').write_text(content)
    assert _host.postgresql_log_errors(str(tmp_path)) == 'see the PostgreSQL log'


# --- files and users on the host --------------------------------------------------------------------------

def test_host_read_and_remove_file(tmp_path):
    path = tmp_path / 'file'
    path.write_bytes(b'\x00data')
    target = HostTarget()
    assert target.read_file(str(path)) == b'\x00data'
    target.remove_file(str(path))
    target.remove_file(str(path))          # already gone: nothing to do
    assert not path.exists()


def test_user_ids():
    assert HostTarget().user_ids('root') == (0, 0)


def test_ensure_directory_makes_it_with_parents(tmp_path):
    path = tmp_path / 'srv' / 'pgbackrest' / 'repo'
    assert HostTarget().ensure_directory(str(path), UID, GID, 0o750) is True
    assert oct(path.stat().st_mode & 0o7777) == oct(0o750)
    assert (path.stat().st_uid, path.stat().st_gid) == (UID, GID)
    assert HostTarget().ensure_directory(str(path), UID, GID, 0o750) is False


def test_ensure_directory_leaves_an_existing_one_as_it_is(tmp_path):
    path = tmp_path / 'repo'
    path.mkdir(mode=0o700)
    os.chmod(str(path), 0o700)
    assert HostTarget().ensure_directory(str(path), UID, GID, 0o750) is False
    assert oct(path.stat().st_mode & 0o7777) == oct(0o700)


def test_ensure_directory_in_check_mode_makes_nothing(tmp_path):
    path = tmp_path / 'srv' / 'repo'
    assert HostTarget().ensure_directory(str(path), UID, GID, 0o750, check_mode=True) is True
    assert not (tmp_path / 'srv').exists()


def test_user_ids_of_a_missing_user():
    with pytest.raises(ChronosError, match="There is no user 'no-such-user-here' on this host: set the PostgreSQL "
                                           r"operating-system user \(pgbackrest_user\)."):
        HostTarget().user_ids('no-such-user-here')


def test_host_data_place_is_the_real_directory(tmp_path):
    (tmp_path / 'real').mkdir()
    os.symlink(str(tmp_path / 'real'), str(tmp_path / 'link'))
    place = HostTarget().data_place(str(tmp_path / 'link'))
    assert isinstance(place, DirectoryPlace) and place.local == str(tmp_path / 'real')


def test_superuser_default_and_set():
    assert HostTarget().pg_user == 'postgres'
    assert HostTarget(pg_user='chronos').pg_user == 'chronos'


def test_settings_path_reads_the_directory_when_called(settings_dir):
    assert _target.settings_path('chronos-v2') == os.path.join(settings_dir, 'chronos-v2.json')


# --- make_target ------------------------------------------------------------------------------------------

def test_make_target_host_defaults():
    target = _drivers.make_target(dict(stanza='s', os_user=None, pg_user=None, pg_port=None))
    assert isinstance(target, HostTarget)
    assert (target.os_user, target.pg_user, target.pg_port, target.socket_path, target.bin_path, target.pg_service) == (
        'postgres', 'postgres', 5432, '/var/run/postgresql', None, 'postgresql')


def test_make_target_host_settings():
    target = _drivers.make_target(dict(os_user='pg', pg_user='chronos', pg_port='5433', pg_socket_path='/tmp',
                                       pg_bin_path='/opt/pg/bin', pg_service='postgresql@16-main'))
    assert (target.os_user, target.pg_user, target.pg_port, target.socket_path, target.bin_path, target.pg_service) == (
        'pg', 'chronos', 5433, '/tmp', '/opt/pg/bin', 'postgresql@16-main')


def test_make_target_host_stop_timeout_old_and_new_name():
    assert _drivers.make_target(dict(stop_timeout=15)).stop_timeout == 15
    assert _drivers.make_target(dict(container_stop_timeout=25)).stop_timeout == 25


def test_make_target_container(docker):
    docker.add_container(env=['POSTGRES_USER=chronos', 'PGDATA=/var/lib/postgresql/data'])
    target = _drivers.make_target(dict(container='chronos-db', container_stop_timeout=30, config='/etc/pgbr.conf',
                                       pg_port=5432))
    assert (target.kind, target.name, target.stop_timeout, target.config_path, target.pg_user) == (
        'container', 'chronos-db', 30, '/etc/pgbr.conf', 'chronos')


# --- write_local_file -------------------------------------------------------------------------------------

UID, GID = os.getuid(), os.getgid()


def files_in(directory):
    return sorted(os.listdir(str(directory)))


def test_write_new_file(tmp_path):
    path = tmp_path / 'etc' / 'pgbackrest' / 'pgbackrest.conf'
    assert _files.write_local_file(str(path), b'[global]\n', UID, GID, 0o640) is True
    assert path.read_bytes() == b'[global]\n'
    assert oct(path.stat().st_mode & 0o7777) == oct(0o640)
    # The missing directories are made, and no temporary file is left beside the file.
    assert files_in(path.parent) == ['pgbackrest.conf']


def test_same_content_and_owner_is_not_rewritten(tmp_path):
    path = tmp_path / 'pgbackrest.conf'
    _files.write_local_file(str(path), b'[global]\n', UID, GID, 0o600)
    os.utime(str(path), (1000, 1000))
    before = path.stat()
    assert _files.write_local_file(str(path), b'[global]\n', UID, GID, 0o600) is False
    after = path.stat()
    assert (after.st_ino, after.st_mtime) == (before.st_ino, 1000)


def test_a_mode_change_writes_the_file_anew(tmp_path):
    path = tmp_path / 'pgbackrest.conf'
    _files.write_local_file(str(path), b'[global]\n', UID, GID, 0o644)
    assert _files.write_local_file(str(path), b'[global]\n', UID, GID, 0o600) is True
    assert (path.read_bytes(), path.stat().st_mode & 0o7777) == (b'[global]\n', 0o600)
    assert files_in(tmp_path) == ['pgbackrest.conf']


@pytest.mark.skipif(os.geteuid() != 0, reason='changing a file owner needs root')
def test_an_owner_change_writes_the_file_anew(tmp_path):
    path = tmp_path / 'pgbackrest.conf'
    _files.write_local_file(str(path), b'[global]\n', 0, 0, 0o600)
    # No user or group 4321 needs to exist.
    assert _files.write_local_file(str(path), b'[global]\n', 4321, 4322, 0o600) is True
    assert (path.stat().st_uid, path.stat().st_gid) == (4321, 4322)


def test_new_content_replaces_the_file_atomically(tmp_path):
    path = tmp_path / 'pgbackrest.conf'
    _files.write_local_file(str(path), b'old\n', UID, GID, 0o600)
    inode = path.stat().st_ino
    assert _files.write_local_file(str(path), b'new content\n', UID, GID, 0o600) is True
    assert path.read_bytes() == b'new content\n'
    assert path.stat().st_ino != inode            # renamed over: a reader sees the old file or the new one
    assert files_in(tmp_path) == ['pgbackrest.conf']


def test_a_link_planted_under_the_name_is_replaced_not_followed(tmp_path):
    """Root writes a new file and renames it over the name: what a planted link points at is left alone."""
    victim = tmp_path / 'victim'
    victim.write_bytes(b'root only\n')
    os.chmod(str(victim), 0o640)
    os.symlink(str(victim), str(tmp_path / 'pgbackrest.conf'))
    with pytest.raises(ChronosError) as raised:
        _files.write_local_file(str(tmp_path / 'pgbackrest.conf'), b'new\n', UID, GID, 0o666 & ~0o002)
    assert raised.value.msg.startswith('pgbackrest.conf is a link: root does not follow links where it writes.')
    assert (victim.read_bytes(), victim.stat().st_mode & 0o777) == (b'root only\n', 0o640)


@pytest.mark.skipif(os.geteuid() != 0, reason='a directory of another owner needs root')
def test_a_directory_another_user_can_write_is_refused(tmp_path):
    other = tmp_path / 'theirs'
    other.mkdir()
    os.chown(str(other), 4321, 4321)
    with pytest.raises(ChronosError) as raised:
        _files.write_local_file(str(other / 'chronos-v2.json'), b'{}', 0, 0, 0o644)
    assert raised.value.msg == ('%s is owned by uid 4321, not root: root does not write where another user can. Remove '
                                'it (or chown root and chmod go-w it) and run again. Nothing was changed.' % other)
    assert files_in(other) == []
    shared = tmp_path / 'shared'
    shared.mkdir()
    os.chmod(str(shared), 0o1777)
    with pytest.raises(ChronosError, match='is writable by others'):
        _files.write_local_file(str(shared / 'x'), b'{}', 0, 0, 0o644)


def test_a_link_in_the_directory_path_is_refused(tmp_path):
    (tmp_path / 'real').mkdir()
    os.symlink(str(tmp_path / 'real'), str(tmp_path / 'link'))
    with pytest.raises(ChronosError, match='link is a link or not a directory'):
        _files.write_local_file(str(tmp_path / 'link' / 'x'), b'{}', UID, GID, 0o644)
    assert files_in(tmp_path / 'real') == []


def test_nothing_is_written_world_writable(tmp_path):
    with pytest.raises(ValueError):
        _files.write_local_file(str(tmp_path / 'x'), b'{}', UID, GID, 0o666)


def in_place_file(tmp_path, content, mode=0o600):
    path = tmp_path / 'pgbackrest.conf'
    path.write_bytes(content)
    os.chmod(str(path), mode)
    return path


@pytest.mark.parametrize('old, new', [
    (b'[global]\nrepo1-path=/var/lib/pgbackrest\nrepo1-retention-full=2\n', b'[global]\nrepo1-path=/x\n'),
    (b'abc\n', b'ab\n'),              # one byte shorter: padded with a newline
    (b'abcd\n', b'ab\n'),             # two: newline and '#'
    (b'short\n', b'a longer content\n'),
    (b'same length\n', b'SAME LENGTH\n'),
], ids=['much-shorter', 'one-shorter', 'two-shorter', 'longer', 'same-length'])
def test_in_place_rewrite_keeps_the_inode(tmp_path, old, new):
    """A file bind-mounted into a container on its own: the container keeps the old inode after a rename."""
    path = in_place_file(tmp_path, old)
    inode = path.stat().st_ino
    assert _files.write_local_file(str(path), new, UID, GID, 0o600, in_place=True) is True
    assert path.read_bytes() == new
    assert (path.stat().st_ino, path.stat().st_mode & 0o7777) == (inode, 0o600)
    assert files_in(tmp_path) == ['pgbackrest.conf']


def test_in_place_padding_is_a_comment(tmp_path, monkeypatch):
    """What a reader could see between the one write and the truncate: the new content, then a comment line."""
    path = in_place_file(tmp_path, b'[global]\nrepo1-retention-full=2\n')
    seen = []
    real_truncate = os.ftruncate

    def truncate(handle, size):
        seen.append(path.read_bytes())
        return real_truncate(handle, size)
    monkeypatch.setattr(_files.os, 'ftruncate', truncate)
    _files.write_local_file(str(path), b'[global]\n', UID, GID, 0o600, in_place=True)
    assert seen == [b'[global]\n' + b'\n' + b'#' * 22]
    assert path.read_bytes() == b'[global]\n'


def test_in_place_never_re_modes_the_users_file(tmp_path):
    """The configuration a container mounts on its own lies where its user put it: root refuses to re-mode it and says
    how, instead of writing secrets into a file others can read."""
    path = in_place_file(tmp_path, b'old\n', mode=0o644)
    with pytest.raises(ChronosError) as raised:
        _files.write_local_file(str(path), b'new\n', UID, GID, 0o600, in_place=True)
    assert raised.value.msg == (
        '%s is owned by %d:%d with mode 0644; it will hold the repository keys and the cipher passphrase, readable by '
        'pgBackRest alone: run chown %d:%d %s && chmod 0600 %s, then run again. Nothing was changed.' % (
            path, UID, GID, UID, GID, path, path))
    assert (path.read_bytes(), path.stat().st_mode & 0o7777) == (b'old\n', 0o644)


def test_in_place_never_follows_a_link_or_a_second_name(tmp_path):
    victim = tmp_path / 'victim'
    victim.write_bytes(b'root only\n')
    os.chmod(str(victim), 0o600)
    os.symlink(str(victim), str(tmp_path / 'linked.conf'))
    with pytest.raises(ChronosError, match='linked.conf is a link: root does not follow it'):
        _files.write_local_file(str(tmp_path / 'linked.conf'), b'new\n', UID, GID, 0o600, in_place=True)
    os.link(str(victim), str(tmp_path / 'hard.conf'))
    with pytest.raises(ChronosError, match='has 2 names'):
        _files.write_local_file(str(tmp_path / 'hard.conf'), b'new\n', UID, GID, 0o600, in_place=True)
    assert victim.read_bytes() == b'root only\n'


def test_in_place_for_a_new_file_writes_it(tmp_path):
    path = tmp_path / 'pgbackrest.conf'
    assert _files.write_local_file(str(path), b'x\n', UID, GID, 0o600, in_place=True) is True
    assert path.read_bytes() == b'x\n'


@pytest.mark.parametrize('exists', [False, True], ids=['new', 'changed'])
def test_check_mode_writes_nothing(tmp_path, exists):
    path = tmp_path / 'pgbackrest.conf'
    if exists:
        path.write_bytes(b'old\n')
        os.chmod(str(path), 0o600)
    assert _files.write_local_file(str(path), b'new\n', UID, GID, 0o600, check_mode=True) is True
    assert _files.write_local_file(str(path), b'new\n', UID, GID, 0o600, check_mode=True, in_place=True) is True
    if exists:
        assert (path.read_bytes(), path.stat().st_mode & 0o7777) == (b'old\n', 0o600)
    else:
        assert files_in(tmp_path) == []


def test_check_mode_unchanged_is_false(tmp_path):
    path = tmp_path / 'pgbackrest.conf'
    _files.write_local_file(str(path), b'x\n', UID, GID, 0o600)
    assert _files.write_local_file(str(path), b'x\n', UID, GID, 0o600, check_mode=True) is False


def test_a_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / 'pgbackrest.conf'
    path.write_bytes(b'old\n')
    from ansible_collections.chronos.pgbackrest.plugins.module_utils import _files

    def rename(source, destination, **kwargs):
        raise OSError(18, 'Invalid cross-device link')
    monkeypatch.setattr(_files.os, 'rename', rename)
    with pytest.raises(OSError):
        _files.write_local_file(str(path), b'new\n', UID, GID, 0o600)
    monkeypatch.undo()
    assert files_in(tmp_path) == ['pgbackrest.conf']
    assert path.read_bytes() == b'old\n'


def test_a_directory_in_the_files_place_is_an_error(tmp_path):
    (tmp_path / 'a-directory').mkdir()
    with pytest.raises(ChronosError, match='a-directory is not a regular file'):
        _files.write_local_file(str(tmp_path / 'a-directory'), b'x', UID, GID, 0o600)


# --- df ---------------------------------------------------------------------------------------------------------

def test_filesystem_runs_df_where_postgresql_is(host, commands):
    commands.expect(ok('df-pg-wal.out'))
    assert host.filesystem('/var/lib/postgresql/data/pg_wal') == (264212084 * 1024, 79455016 * 1024)
    assert commands.calls[0]['argv'] == ['df', '-Pk', '/var/lib/postgresql/data/pg_wal']
    assert commands.calls[0]['user'] == 'postgres'


@pytest.mark.parametrize('text, expected', [
    # A mount point with a space, and BusyBox's header.
    (b'Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sdb1 1000 200 800 20% /mnt/wal disk\n',
     (1024000, 819200)),
    (b'Filesystem           1024-blocks    Used Available Capacity Mounted on\noverlay 2000 0 2000 0% /\n',
     (2048000, 2048000)),
])
def test_parse_df(text, expected):
    assert _target.parse_df(text.decode()) == expected


@pytest.mark.parametrize('text', ['', 'Filesystem 1024-blocks Used Available Capacity Mounted on\n', 'df: oops\n'])
def test_parse_df_refuses_what_it_cannot_read(text):
    with pytest.raises(ChronosError, match='Unable to read the free space'):
        _target.parse_df(text)


def test_filesystem_when_df_fails(host, commands):
    commands.expect(fails(1, b"df: /nowhere: No such file or directory\n"))
    with pytest.raises(ChronosError) as raised:
        host.filesystem('/nowhere')
    assert raised.value.msg == ("Unable to read the free space of /nowhere on this host: df exited 1: df: /nowhere: No "
                                "such file or directory")
