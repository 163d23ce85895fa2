# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where pgBackRest and PostgreSQL live: a target.

A target is this host (HostTarget, below) or a Docker container on this host (ContainerTarget, in
_container.py). Everything else in the collection asks a target to run a command as a user, read or write
a file, run SQL, tell whether PostgreSQL runs, stop it or start it, and never asks which kind it is.

This file and the other module_utils do not import Ansible: the scheduled job program (_jobs.py) runs the
same code on the managed host. Errors are raised as ChronosError; modules turn them into fail_json
(_module.py), the job program into a message on stderr and an exit code.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import csv
import errno
import glob
import io
import json
import os
import pwd
import re
import shutil
import subprocess
import time

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _files

DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
# Where site.yml records a stanza's settings on the managed host, for the scheduled jobs (and for restores while
# PostgreSQL is down).
SETTINGS_DIRECTORY = '/etc/chronos-pgbackrest'
# What the collection records on the managed host as it works (the drills' scratch places): root's alone.
STATE_DIRECTORY = '/var/lib/chronos-pgbackrest'


def settings_path(stanza):
    return os.path.join(SETTINGS_DIRECTORY, '%s.json' % stanza)


class ChronosError(Exception):
    """A failure with a complete message: what was attempted, what was found, what to do. `extra` lands in the
    module's result (fail_json) beside msg."""

    def __init__(self, msg, **extra):
        super(ChronosError, self).__init__(msg)
        self.msg = msg
        self.extra = extra


class Completed(object):
    """What one command did."""

    def __init__(self, argv, rc, stdout, stderr):
        self.argv = argv
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    @property
    def output(self):
        """stderr, else stdout, stripped: what to quote when the command failed."""
        return (self.stderr or '').strip() or (self.stdout or '').strip()


class Target(object):
    """Where PostgreSQL and pgBackRest live. Subclasses implement the _primitives; the rest is shared."""

    kind = None

    def __init__(self, os_user='postgres', superuser=None, pg_port=5432, socket_path='/var/run/postgresql',
                 bin_path=None):
        self.os_user = os_user
        self._superuser = superuser
        self.pg_port = int(pg_port)
        self.socket_path = socket_path
        self.bin_path = bin_path
        # Every command run (or, in check mode, planned), as the modules report it.
        self.executed_commands = []

    # --- what subclasses provide ------------------------------------------------------------------
    def describe(self):
        """'this host' or "container 'chronos-db'", for messages."""
        raise NotImplementedError

    def _run(self, argv, user, env, stdin):
        """Run argv as user with env added to the environment; returns (rc, stdout bytes, stderr bytes)."""
        raise NotImplementedError

    def read_file(self, path):
        """The bytes of a file; IOError/OSError when it cannot be read."""
        raise NotImplementedError

    def write_file(self, path, content, uid, gid, mode, check_mode=False):
        """Make path hold content (bytes) with that owner and mode; True when something changed."""
        raise NotImplementedError

    def remove_file(self, path):
        """Remove a file if it exists."""
        raise NotImplementedError

    def ensure_directory(self, path, uid, gid, mode, check_mode=False):
        """Create a directory (and its parents) owned by uid:gid when it is missing; True when it was."""
        raise NotImplementedError

    def postgresql_running(self, pg_path):
        raise NotImplementedError

    def stop_postgresql(self, pg_path, timeout):
        raise NotImplementedError

    def start_postgresql(self):
        raise NotImplementedError

    def user_ids(self, user):
        """(uid, gid) of an operating-system user of the target."""
        raise NotImplementedError

    @property
    def default_superuser(self):
        return 'postgres'

    def allow_commands_while_stopped(self):
        """A restore works while PostgreSQL is stopped: let commands run then (a container runs them in a helper)."""

    def held_restart_policy(self):
        """The restart policy a restore holds off (a container's), or None: a host has none."""
        return None

    def local_path(self, path):
        """Where a file of the target lies on this machine's disk, or None when it lies nowhere this machine can
        reach (a container's own layer)."""
        return path

    def hold_restart_policy(self):
        """Keep PostgreSQL from being started again behind a restore's back (a container's restart policy)."""

    def release_restart_policy(self):
        """Undo hold_restart_policy."""

    # --- shared -----------------------------------------------------------------------------------
    @property
    def superuser(self):
        """The PostgreSQL role the collection connects as (pg1-user): as set, or the target's own default."""
        return self._superuser or self.default_superuser

    def record(self, argv, user=None):
        self.executed_commands.append(' '.join(argv))

    def run(self, argv, user=None, env=None, stdin=None):
        """Run one command (an argument list, never a shell line) and return Completed, whatever its exit code.
        Secrets go in env: it reaches only that process, never its arguments."""
        argv = [str(arg) for arg in argv]
        self.record(argv, user)
        rc, stdout, stderr = self._run(argv, user or self.os_user, dict(env or {}), stdin)
        return Completed(argv, rc, _text(stdout), _text(stderr))

    def pg_tool(self, name):
        """The path of a PostgreSQL program (pg_ctl, psql, ...): in bin_path when set, else found on PATH."""
        return '%s/%s' % (self.bin_path.rstrip('/'), name) if self.bin_path else name

    def psql_argv(self, database='postgres', port=None, host=None, user=None):
        return [self.pg_tool('psql'), '-X', '-q', '-t', '--csv', '-v', 'ON_ERROR_STOP=1',
                '-h', host or self.socket_path, '-p', str(port or self.pg_port), '-U', user or self.superuser,
                '-d', database]

    def sql(self, script, database='postgres', variables=None, port=None, host=None, attempt=None):
        """Run an SQL script with psql as the superuser; returns the rows it printed (lists of strings).
        variables become psql variables (:'name' in the script)."""
        argv = self.psql_argv(database, port, host)
        for name, value in sorted((variables or {}).items()):
            argv += ['-v', '%s=%s' % (name, value)]
        argv += ['-f', '-']
        done = self.run(argv, stdin=script)
        if done.rc != 0:
            raise ChronosError('Unable to %s: psql on %s exited %s: %s' % (
                attempt or 'query PostgreSQL', self.describe(), done.rc, done.output or 'no message'),
                rc=done.rc, stderr=done.stderr)
        return [row for row in csv.reader(io.StringIO(done.stdout)) if row]

    def pg_ready(self, port=None, host=None):
        """Whether PostgreSQL accepts connections (pg_isready)."""
        done = self.run([self.pg_tool('pg_isready'), '-q', '-h', host or self.socket_path, '-p',
                         str(port or self.pg_port)])
        return done.rc == 0

    def wait_for_recovery(self, timeout, pause, alive, why_stopped):
        """Wait until PostgreSQL left recovery (promoted), or with pause until it paused at the target.
        alive() tells whether the server still runs; why_stopped() what its log says when it stopped."""
        deadline = time.time() + timeout
        while True:
            if not alive():
                raise ChronosError('PostgreSQL stopped during recovery on %s: %s' % (self.describe(), why_stopped()),
                                   step='recover')
            done = self.run(self.psql_argv() + ['-c', 'SELECT pg_is_in_recovery(), pg_is_in_recovery() AND '
                                                      'pg_is_wal_replay_paused()'])
            if done.rc == 0:
                in_recovery, paused = done.stdout.strip().split(',')
                if (pause and paused == 't') or (not pause and in_recovery == 'f'):
                    return
            if time.time() >= deadline:
                raise ChronosError('PostgreSQL on %s was still recovering after %d s (the restore timeout).' % (
                    self.describe(), timeout), step='recover')
            time.sleep(1)

    def filesystem(self, path):
        """(size, available) in bytes of the filesystem that holds path on the target, as `df -Pk` reports it there
        (links followed: pg_wal may be one); the same command on a host, in a Debian image and with BusyBox."""
        done = self.run(['df', '-Pk', path])
        if done.rc != 0:
            raise ChronosError('Unable to read the free space of %s on %s: df exited %s: %s' % (
                path, self.describe(), done.rc, done.output))
        return parse_df(done.stdout, path)

    def wait_until_ready(self, timeout, interval=1):
        """Wait until PostgreSQL accepts connections; False when it did not within timeout seconds."""
        deadline = time.time() + timeout
        while True:
            if self.pg_ready():
                return True
            if time.time() >= deadline:
                return False
            time.sleep(interval)


class HostTarget(Target):
    """PostgreSQL and pgBackRest on this host. Commands run as os_user through runuser when the caller is
    root (the modules run with become: true, the scheduled job from root's cron)."""

    kind = 'host'

    def __init__(self, service='postgresql', **settings):
        super(HostTarget, self).__init__(**settings)
        self.service = service

    def describe(self):
        return 'this host'

    def pg_tool(self, name):
        """As Target.pg_tool; Debian keeps pg_ctl and pg_controldata off the PATH, in /usr/lib/postgresql/<major>/bin
        (the newest major's is taken)."""
        if self.bin_path or shutil.which(name, path=_with_default_path(os.environ.get('PATH'))):
            return super(HostTarget, self).pg_tool(name)
        found = sorted(glob.glob('/usr/lib/postgresql/*/bin/%s' % name),
                       key=lambda path: [int(part) for part in re.findall(r'\d+', path)])
        return found[-1] if found else name

    def _run(self, argv, user, env, stdin):
        current = pwd.getpwuid(os.geteuid()).pw_name
        if user != current:
            if os.geteuid() != 0:
                raise ChronosError('Cannot run %s as %s while running as %s: run as root (become: true) or as %s.'
                                   % (argv[0], user, current, user))
            argv = [_which('runuser'), '-u', user, '--'] + argv
        environment = dict(os.environ)
        environment['PATH'] = _with_default_path(environment.get('PATH'), self.bin_path)
        environment.update(env)
        try:
            # cwd /: a command run as postgres from root's working directory would complain it cannot enter it.
            done = subprocess.run(argv, input=_bytes(stdin), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=environment, cwd='/', check=False, preexec_fn=die_with_parent)
        except OSError as exc:
            return 127, b'', str(exc).encode()
        return done.returncode, done.stdout, done.stderr

    def read_file(self, path):
        # Never through a link: what root reads may end up in a result or a diff.
        handle = _files.open_existing(path)
        with os.fdopen(handle, 'rb') as stream:
            return stream.read()

    def write_file(self, path, content, uid, gid, mode, check_mode=False):
        return write_local_file(path, content, uid, gid, mode, check_mode)

    def remove_file(self, path):
        remove_local_file(path)

    def ensure_directory(self, path, uid, gid, mode, check_mode=False):
        return make_local_directory(path, uid, gid, mode, check_mode)

    def postgresql_running(self, pg_path):
        return postmaster_running(pg_path)

    def stop_postgresql(self, pg_path, timeout):
        self._service('stop')
        deadline = time.time() + timeout
        while postmaster_running(pg_path):
            if time.time() >= deadline:
                raise ChronosError('PostgreSQL on %s still runs %s s after service %s stop.' % (
                    pg_path, timeout, self.service))
            time.sleep(0.5)

    def start_postgresql(self):
        self._service('start')

    def recover(self, pg_path, timeout, pause):
        """Start PostgreSQL on a restored data directory and wait until recovery reached its target."""
        self.start_postgresql()
        self.wait_for_recovery(timeout, pause, lambda: postmaster_running(pg_path), postgresql_log_errors)

    def data_place(self, pg_path):
        from ansible_collections.chronos.pgbackrest.plugins.module_utils._places import DirectoryPlace
        return DirectoryPlace(pg_path)

    def _service(self, action):
        done = self.run([_which('service'), self.service, action], user=pwd.getpwuid(os.geteuid()).pw_name)
        if done.rc != 0:
            raise ChronosError('Unable to %s PostgreSQL: service %s %s exited %s: %s' % (
                action, self.service, action, done.rc, done.output))

    def user_ids(self, user):
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            raise ChronosError("There is no user '%s' on this host: set the PostgreSQL operating-system user "
                               "(pgbackrest_user)." % user)
        return entry.pw_uid, entry.pw_gid


def put_back(target, installed, check_mode=False):
    """Put back on the target what the collection placed there and recorded in the stanza's settings (the backup
    wrapper, the repository's CA file: [{path, content, uid, gid, mode}]) where it is missing or changed: a container
    recreated from its image has lost what was copied into it. Returns the paths put back (or, in check mode, that
    would be)."""
    done = []
    for item in installed or []:
        if target.write_file(item['path'], item['content'].encode('utf-8'), item['uid'], item['gid'],
                             int(item['mode'], 8), check_mode):
            done.append(item['path'])
    return done


def recorded_settings(stanza):
    """What site.yml recorded for the stanza (pgbackrest_schedule), or {} when nothing was."""
    try:
        with open(settings_path(stanza)) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return {}


def die_with_parent():
    """In a child before it executes its program: ask the kernel to send it SIGTERM when the process that started it
    dies (prctl PR_SET_PDEATHSIG). A module or job that is killed - by the OOM killer, or kill -9 - then leaves no
    pgBackRest restore or backup running on its own behind it (runuser forwards the signal to its child)."""
    try:
        import ctypes
        import signal
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def make_target(settings):
    """The target settings describe (the modules' shared options, or a scheduled job's settings file): the
    container named by `container`, or this host."""
    common = dict(os_user=settings.get('os_user') or 'postgres', superuser=settings.get('pg_user') or None,
                  pg_port=settings.get('pg_port') or 5432,
                  socket_path=settings.get('pg_socket_path') or '/var/run/postgresql',
                  bin_path=settings.get('pg_bin_path') or None)
    if settings.get('container'):
        from ansible_collections.chronos.pgbackrest.plugins.module_utils._container import ContainerTarget
        return ContainerTarget(settings['container'], stop_timeout=settings.get('container_stop_timeout') or 60,
                               config_path=settings.get('config') or '/etc/pgbackrest/pgbackrest.conf', **common)
    return HostTarget(service=settings.get('pg_service') or 'postgresql', **common)


def parse_df(text, path='the path'):
    """`df -Pk` output -> (size, available) in bytes. The mount point may hold spaces: the fields are counted from
    the capacity column ('42%')."""
    lines = [line for line in (text or '').splitlines() if line.strip()]
    fields = lines[-1].split() if len(lines) >= 2 else []
    capacity = [index for index, field in enumerate(fields) if re.match(r'^\d+%$', field)]
    if not capacity or capacity[0] < 3:
        raise ChronosError('Unable to read the free space of %s: df printed %r.' % (path, text))
    index = capacity[0]
    return int(fields[index - 3]) * 1024, int(fields[index - 1]) * 1024


def postmaster_running(pg_path):
    """Whether a postmaster runs on pg_path: postmaster.pid names a live process."""
    try:
        with open('%s/postmaster.pid' % pg_path) as handle:
            pid = int(handle.readline().strip())
    except (IOError, OSError, ValueError):
        return False
    if pid <= 0:  # kill(0 or -1) would signal a process group, not a postmaster
        return False
    try:
        os.kill(pid, 0)
    except OverflowError:
        return False
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def postgresql_log_errors(directory='/var/log/postgresql'):
    """The FATAL and PANIC lines at the end of the newest PostgreSQL log (Debian's /var/log/postgresql)."""
    try:
        logs = [os.path.join(directory, name) for name in os.listdir(directory) if name.endswith('.log')]
        with open(max(logs, key=os.path.getmtime), 'rb') as handle:
            lines = _text(handle.read()[-20000:]).splitlines()[-40:]
    except (IOError, OSError, ValueError):
        return 'see the PostgreSQL log'
    errors = [line for line in lines if 'FATAL' in line or 'PANIC' in line]
    return ' '.join(errors[-3:]) or 'see the PostgreSQL log'


def write_local_file(path, content, uid, gid, mode, check_mode=False, in_place=False):
    """Make a file on this host hold content with owner uid:gid and mode; True when something changed.

    In a directory root alone can write (anything else is refused: _files), new content is written beside the file
    and renamed over it, so a reader never sees half a file. With in_place (a file bind-mounted into a container on
    its own: the container keeps the old inode after a rename, and the file may lie in its user's directory), the
    file is opened without following a link and rewritten through that descriptor, and it must already have the owner
    and mode asked for: root does not re-mode a file it did not make."""
    try:
        if in_place and os.path.lexists(path):
            return _rewrite_in_place(path, content, uid, gid, mode, check_mode)
        return _files.write_file(path, content, uid, gid, mode, check_mode)
    except _files.UntrustedPath as exc:
        raise ChronosError(untrusted_message(exc))


def make_local_directory(path, uid, gid, mode, check_mode=False):
    """Make a directory on this host (uid:gid, mode) in a parent root alone can write; True when it was missing."""
    try:
        return _files.make_directory(path, uid, gid, mode, check_mode)
    except _files.UntrustedPath as exc:
        raise ChronosError(untrusted_message(exc))


def remove_local_file(path, any_owner=False):
    """Remove a file of this host from a directory root alone can write (the name, never what a link points at); with
    any_owner, from any directory reached without a link (removing a name gives its owner nothing)."""
    try:
        return _files.remove_file(path, any_owner)
    except _files.UntrustedPath as exc:
        raise ChronosError(untrusted_message(exc))


def untrusted_message(exc):
    text = str(exc)
    return text if 'Nothing was changed' in text else text + ' Nothing was changed.'


def _rewrite_in_place(path, content, uid, gid, mode, check_mode):
    handle = _files.open_existing(path, os.O_RDONLY if check_mode else os.O_RDWR)
    try:
        info = os.fstat(handle)
        if (info.st_uid, info.st_gid, info.st_mode & 0o7777) != (uid, gid, mode):
            raise ChronosError(
                '%s is owned by %d:%d with mode %04o; it will hold the repository keys and the cipher passphrase, '
                'readable by pgBackRest alone: run chown %d:%d %s && chmod %04o %s, then run again. Nothing was '
                'changed.' % (path, info.st_uid, info.st_gid, info.st_mode & 0o7777, uid, gid, path, mode, path))
        old = b''
        while True:
            chunk = os.read(handle, 1 << 20)
            if not chunk:
                break
            old += chunk
        if old == content:
            return False
        if check_mode:
            return True
        # Padded with a comment to the old length in one write, then cut: a reader sees the old content, the new
        # content, or the new content followed by a comment.
        padded = content
        if len(content) < len(old):
            filler = len(old) - len(content)
            padded = content + (b'\n' if filler == 1 else b'\n#' + b'#' * (filler - 2))
        os.lseek(handle, 0, os.SEEK_SET)
        view = memoryview(padded)
        while view:
            view = view[os.write(handle, view):]
        os.ftruncate(handle, len(content))
        os.fsync(handle)
        return True
    finally:
        os.close(handle)


def _which(name):
    found = shutil.which(name, path=_with_default_path(os.environ.get('PATH')))
    if not found:
        raise ChronosError('%s is not installed on this host.' % name)
    return found


def _with_default_path(path, first=None):
    """PATH as given, with the standard directories (cron starts jobs with /usr/bin:/bin only) and first ahead."""
    parts = [part for part in (path or '').split(':') if part]
    parts += [part for part in DEFAULT_PATH.split(':') if part not in parts]
    if first:
        parts.insert(0, first)
    return ':'.join(parts)


def _bytes(data):
    if data is None or isinstance(data, bytes):
        return data
    return data.encode('utf-8')


def _text(data):
    if isinstance(data, bytes):
        # errors='replace': pgBackRest prints undecryptable bytes when the passphrase is wrong.
        return data.decode('utf-8', errors='replace')
    return data or ''
