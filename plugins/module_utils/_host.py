# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host driver: PostgreSQL and pgBackRest on this machine (the database host). Commands run as the target's
operating-system user through runuser when the caller is root (the modules run with become: true, the scheduled
program from root's cron), and die with the process that started them."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import glob
import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
import time

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _files, _places
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError, untrusted_message
from ansible_collections.chronos.pgbackrest.plugins.module_utils._places import (
    KEPT_MESSAGE, DirectoryPlace)
from ansible_collections.chronos.pgbackrest.plugins.module_utils import _target
from ansible_collections.chronos.pgbackrest.plugins.module_utils._target import Target, _bytes, _text

DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'


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


class HostTarget(Target):
    """PostgreSQL and pgBackRest on this host. Commands run as os_user through runuser when the caller is
    root (the modules run with become: true, the scheduled job from root's cron)."""

    kind = 'host'

    def __init__(self, pg_service='postgresql', **settings):
        super(HostTarget, self).__init__(**settings)
        self.pg_service = pg_service

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
        return _files.write_local_file(path, content, uid, gid, mode, check_mode)

    def remove_file(self, path):
        _files.remove_local_file(path)

    def ensure_directory(self, path, uid, gid, mode, check_mode=False):
        return _files.make_local_directory(path, uid, gid, mode, check_mode)

    def postgresql_running(self, pg_path):
        return postmaster_running(pg_path)

    def stop_postgresql(self, pg_path):
        self._service('stop')
        deadline = time.time() + self.stop_timeout
        while postmaster_running(pg_path):
            if time.time() >= deadline:
                raise ChronosError('PostgreSQL on %s still runs %s s after service %s stop.' % (
                    pg_path, self.stop_timeout, self.pg_service))
            time.sleep(0.5)

    def start_postgresql(self):
        self._service('start')

    def recover(self, pg_path, timeout, pause):
        """Start PostgreSQL on a restored data directory and wait until recovery reached its target."""
        self.start_postgresql()
        self.wait_for_recovery(timeout, pause, lambda: postmaster_running(pg_path), postgresql_log_errors)

    def data_place(self, pg_path):
        return DirectoryPlace(pg_path, owner=lambda: self.user_ids(self.os_user)[0])

    def scratch_place(self, live_pg_path, settings):
        return HostScratch(self, live_pg_path, settings)

    def config_location(self, config):
        return 'host', config

    def _service(self, action):
        done = self.run([_which('service'), self.pg_service, action], user=pwd.getpwuid(os.geteuid()).pw_name)
        if done.rc != 0:
            raise ChronosError('Unable to %s PostgreSQL: service %s %s exited %s: %s' % (
                action, self.pg_service, action, done.rc, done.output))

    def user_ids(self, user):
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            raise ChronosError("There is no user '%s' on this host: set the PostgreSQL operating-system user "
                               "(pgbackrest_user)." % user)
        return entry.pw_uid, entry.pw_gid


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


def postmaster_running(pg_path):
    """Whether a postmaster runs on pg_path: postmaster.pid names a live process."""
    try:
        # Not through a link, and not waiting on a FIFO planted in its place.
        with os.fdopen(_files.open_existing('%s/postmaster.pid' % pg_path)) as handle:
            pid = int(handle.readline().strip())
    except (IOError, OSError, ValueError, _files.UntrustedPath):
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
        with os.fdopen(_files.open_existing(max(logs, key=os.path.getmtime)), 'rb') as handle:
            lines = _text(handle.read()[-20000:]).splitlines()[-40:]
    except (IOError, OSError, ValueError, _files.UntrustedPath):
        return 'see the PostgreSQL log'
    errors = [line for line in lines if 'FATAL' in line or 'PANIC' in line]
    return ' '.join(errors[-3:]) or 'see the PostgreSQL log'


class HostScratch(object):
    """A scratch directory on the database host, with its sockets in a private directory. What a drill made is
    recorded on this host, root's alone (STATE_DIRECTORY/drills): a later drill removes a scratch place an interrupted
    drill left, never one kept on purpose."""

    def __init__(self, live, live_pg_path, settings):
        self.live = live
        self.live_pg_path = live_pg_path
        self.settings = settings
        self.path = os.path.normpath(settings.path)
        self.target = None
        self.created = False

    def describe(self):
        return self.path

    def not_ours(self):
        """Why the scratch path is not the drill's own to create or remove, or None."""
        path, live = os.path.realpath(self.path), os.path.realpath(self.live_pg_path)
        if not self.settings.path.startswith('/') or path.count('/') < 2:
            return "the drill path '%s' must be an absolute path at least two levels deep" % self.settings.path
        if path == live or (path + '/').startswith(live + '/') or (live + '/').startswith(path + '/'):
            return 'the drill path %s and the live data directory %s are the same or lie inside one another' % (
                self.path, self.live_pg_path)
        if os.path.lexists(self.path) and self.record() is None and not self._empty() \
                and not os.path.exists(os.path.join(self.path, 'drill.conf')):
            return '%s exists and is not a drill\'s scratch directory (no drill.conf): move it away' % self.path
        return None

    def _empty(self):
        return os.path.isdir(self.path) and not os.path.islink(self.path) and not os.listdir(self.path)

    def refusal(self):
        if self.settings.port == self.live.pg_port:
            return 'the drill port %d is the live cluster\'s port' % self.settings.port
        return self.not_ours() or self.kept() or ('something already listens on port %d' % self.settings.port
                                                  if _places.port_listening(self.settings.port) else None)

    def _record_path(self):
        # Readable, and told apart by a digest of the path (/a/b_c and /a_b/c would otherwise share a name).
        digest = hashlib.sha256(self.path.encode('utf-8')).hexdigest()[:12]
        # Read when used (not bound at import): the tests give each run a directory of its own.
        name = '%s-%s.json' % (self.path.strip('/').replace('/', '_'), digest)
        return os.path.join(_target.STATE_DIRECTORY, 'drills', name)

    def record(self):
        """What the drill that made this scratch place recorded ({keep, stanza, created}), or None."""
        try:
            handle = _files.open_existing(self._record_path(), owners=(0,))
            with os.fdopen(handle) as stream:
                return json.load(stream)
        except (IOError, OSError, ValueError, _files.UntrustedPath):
            return None

    def kept(self):
        """Why this scratch place is not the drill's to remove (a drill kept it), or None."""
        if not os.path.lexists(self.path) or self._empty():
            return None
        record = self.record()
        if record is not None and not record.get('keep'):
            return None
        return KEPT_MESSAGE % (self.path, ' (stanza %s)' % record['stanza'] if record and record.get('stanza') else '')

    def exists(self):
        return os.path.lexists(self.path)

    def free(self):
        parent = self.path
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        stat = os.statvfs(parent)
        return stat.f_bavail * stat.f_frsize

    def create(self, stanza):
        if os.path.lexists(self.path):
            # Left by a drill that was interrupted: removed only when its record says a drill made it, not to keep.
            why = self.kept()
            if why:
                raise ChronosError('Restore drill refused: %s. Nothing was changed.' % why)
            self.remove()
        _files.write_file(self._record_path(), json.dumps(dict(
            keep=bool(self.settings.keep), stanza=stanza, created=int(time.time()))).encode(), 0, 0, 0o600,
            create_mode=0o700)
        uid, gid = self.live.user_ids(self.live.os_user)
        # Made as pgBackRest's user where that user owns the parent (/var/lib/postgresql): _files.
        _files.make_directory(self.path, uid, gid, 0o700)
        self.created = True
        socket_dir = os.path.join(self.path, 'socket')
        self.target = HostTarget(os_user=self.live.os_user, pg_user=self.live.pg_user, pg_port=self.settings.port,
                                 socket_path=socket_dir, bin_path=self.live.bin_path)
        self.target.executed_commands = self.live.executed_commands
        return self.target, os.path.join(self.path, 'data')

    def remove(self):
        data = os.path.join(self.path, 'data')
        if os.path.exists(os.path.join(data, 'postmaster.pid')):
            target = self.target or self.live
            target.run([target.pg_tool('pg_ctl'), '-D', data, '-m', 'immediate', '-w', 'stop'])
        # Reached without following a link, its parents included, and nothing below it followed either.
        try:
            _files.remove_tree(self.path)
        except _files.UntrustedPath as exc:
            raise ChronosError(untrusted_message(exc))
        _files.remove_file(self._record_path())
