# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One lock per stanza, held by every backup, restore, restore drill and pgbackrest verify, so that none runs
against another. It is an flock: the kernel releases it when its holder dies, so a killed run never leaves it behind.

Two files are locked:
- /run/chronos-pgbackrest/<stanza>.lock on the managed host: root's alone (the directory 0700, the file 0600, both
  opened without following links), so no other user can hold it, plant a link in its place, or write what its holder
  says (the progress a restore reports, the holder a refusal names);
- with `shared`, the stanza's pgbackrest.conf as this host sees it: in container mode the same inode the container
  bind-mounts, so that the backup wrapper run by hand inside the container (docker exec chronos-db
  pgbackrest-backup.sh), which locks its pgbackrest.conf, waits on the same lock. Only root and pgBackRest's user
  can open that file.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import fcntl
import json
import os
import re
import stat
import time

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _files
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError, untrusted_message

LOCK_DIRECTORY = '/run/chronos-pgbackrest'
# When a lock was first seen held by a process that is gone (root's alone): see held_seconds.
SEEN_DIRECTORY = '/var/lib/chronos-pgbackrest/locks'
_SINCE = re.compile(r' since (\d+)')


def flock_holders(files, locks='/proc/locks'):
    """Process ids holding an flock on any of files [(major, minor, inode)], as /proc/locks lists them (waiters, marked
    '->', are not holders)."""
    wanted = set(files)
    holders = set()
    try:
        with open(locks) as handle:
            lines = handle.read().splitlines()
    except (IOError, OSError):
        return holders
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] == '->' or fields[1] != 'FLOCK':
            continue
        device = fields[5].split(':')
        try:
            key = (int(device[0], 16), int(device[1], 16), int(device[2]))
        except (IndexError, ValueError):
            continue
        if key in wanted and fields[4].isdigit():
            holders.add(int(fields[4]))
    return holders


def fd_holders(files, proc='/proc'):
    """Process ids holding an flock on any of files [(major, minor, inode)]: the processes with a descriptor of the
    locked open file, whose fdinfo lists the lock. /proc/locks alone misses a lock whose taker exited while the
    descriptor lives on - flock(1) on a shell's descriptor, as the backup wrapper takes its lock - and, in a
    container, one taken in another PID namespace."""
    wanted = set(files)
    holders = set()
    try:
        pids = [name for name in os.listdir(proc) if name.isdigit()]
    except OSError:
        return holders
    for pid in pids:
        directory = os.path.join(proc, pid, 'fd')
        try:
            descriptors = os.listdir(directory)
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                info = os.stat(os.path.join(directory, descriptor))
                if (os.major(info.st_dev), os.minor(info.st_dev), info.st_ino) not in wanted:
                    continue
                with open(os.path.join(proc, pid, 'fdinfo', descriptor)) as handle:
                    text = handle.read()
            except (IOError, OSError):
                continue
            if any(line.startswith('lock:') and ' FLOCK ' in line for line in text.splitlines()):
                holders.add(int(pid))
    return holders


def lock_holders(files):
    """Every process the kernel shows holding an flock on one of files: the takers /proc/locks lists, and the
    processes holding a descriptor of the locked file (fd_holders)."""
    return flock_holders(files) | fd_holders(files)


def process_start(pid, proc='/proc'):
    """When process pid started (epoch seconds), or None when it is gone."""
    try:
        with open(os.path.join(proc, str(pid), 'stat')) as handle:
            # The command name (field 2) may hold spaces and parentheses: count from its closing parenthesis.
            fields = handle.read().rsplit(')', 1)[1].split()
        with open(os.path.join(proc, 'stat')) as handle:
            boot = int([line.split()[1] for line in handle if line.startswith('btime ')][0])
    except (IOError, OSError, IndexError, ValueError):
        return None
    return boot + int(fields[19]) / float(os.sysconf('SC_CLK_TCK'))


class StanzaLock(object):
    """with StanzaLock('chronos-v2', 'restore', wait=600, shared=conf): ... ; raises Busy when another holds it, and a
    ChronosError (refused=True) when the lock's place is not root's alone."""

    class Busy(ChronosError):
        pass

    def __init__(self, stanza, purpose, wait=0, directory=None, shared=None):
        self.path = os.path.join(directory or LOCK_DIRECTORY, '%s.lock' % stanza)
        self.stanza = stanza
        self.purpose = purpose
        self.wait = wait
        self.shared = shared
        self.handle = self.shared_handle = None
        self.since = None

    def _read(self, test=False):
        """What the lock file says; with test, '' unless someone holds it."""
        try:
            handle = _files.open_existing(self.path)
        except (IOError, OSError, _files.UntrustedPath):
            return ''
        try:
            if test:
                # The kernel's list, not a try of the lock: a try would make a backup starting that instant find
                # the stanza busy.
                info = os.fstat(handle)
                if not lock_holders([(os.major(info.st_dev), os.minor(info.st_dev), info.st_ino)]):
                    return ''
            return os.read(handle, 65536).decode('utf-8', 'replace').strip()
        finally:
            os.close(handle)

    def holder(self):
        """What the holder wrote ('restore into ... pid 1234 since 1796300000: step 3 of 5, ...'), or '' when no one
        holds it (a holder that ended leaves its text behind)."""
        return self._read(test=True)

    def held_since(self):
        """When the holder took the lock (epoch), or None when no one holds it."""
        match = _SINCE.search(self.holder())
        return int(match.group(1)) if match else None

    def held_seconds(self):
        """How long the oldest process holding the stanza lock or the configuration's has run, in seconds; 0 when
        neither is held. Read from the kernel (lock_holders and the holders' start times), never by trying the locks:
        a try would make a backup starting that instant find the stanza busy."""
        files = []
        for path in (self.path, self.shared):
            try:
                info = os.stat(path) if path else None
            except OSError:
                info = None
            if info is not None:
                files.append((os.major(info.st_dev), os.minor(info.st_dev), info.st_ino))
        holders = lock_holders(files)
        starts = [process_start(pid) for pid in holders]
        starts = [start for start in starts if start is not None]
        if starts or not holders:
            self._forget_unknown_holders()
            return max(0, int(time.time() - min(starts))) if starts else 0
        # Held, and the process the kernel names is gone: the lock's descriptor lives on in a child it forked (an
        # orphaned pgBackRest worker, say). Counted from when this was first seen, so the alert still fires.
        return self._unknown_holders_seconds(sorted(holders))

    def _seen_path(self):
        return os.path.join(SEEN_DIRECTORY, '%s.json' % self.stanza)

    def _unknown_holders_seconds(self, holders):
        now = time.time()
        try:
            handle = _files.open_existing(self._seen_path(), owners=(0,))
            with os.fdopen(handle) as stream:
                seen = json.load(stream)
            if seen.get('holders') == holders:
                return max(0, int(now - seen['since']))
        except (IOError, OSError, ValueError, KeyError, TypeError, _files.UntrustedPath):
            pass
        try:
            _files.write_file(self._seen_path(), json.dumps(dict(holders=holders, since=int(now))).encode(), 0, 0,
                              0o600, create_mode=0o700)
        except (IOError, OSError, _files.UntrustedPath):
            pass
        return 0

    def _forget_unknown_holders(self):
        if os.path.lexists(self._seen_path()):
            try:
                _files.remove_file(self._seen_path())
            except (IOError, OSError, _files.UntrustedPath):
                pass

    def left_behind(self):
        """What the last holder wrote, held or not: a holder that was killed leaves its last note (a clean exit empties
        the file)."""
        return self._read()

    def _open(self):
        try:
            directory = _files.open_directory(os.path.dirname(self.path), 0o700)
        except _files.UntrustedPath as exc:
            raise ChronosError('The lock of stanza %s cannot be trusted: %s' % (self.stanza, untrusted_message(exc)),
                               refused=True)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM):
                raise
            raise ChronosError('The lock of stanza %s, in %s, is root\'s alone, and this runs as %s: run it as root '
                               '(become: true, without become_user; pgBackRest itself runs as its own user). Nothing '
                               'was changed.' % (self.stanza, os.path.dirname(self.path), _files.user_name(os.geteuid())))
        try:
            descriptor = os.open(os.path.basename(self.path), os.O_RDWR | os.O_CREAT | _files.NOFOLLOW | _files.CLOEXEC,
                                 0o600, dir_fd=directory)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ChronosError('The lock of stanza %s, %s, is a link: root does not follow it. Remove it and run '
                                   'again. Nothing was changed.' % (self.stanza, self.path), refused=True)
            raise
        finally:
            os.close(directory)
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
            os.close(descriptor)
            raise ChronosError('The lock of stanza %s, %s, is not a file of root\'s alone: remove it and run again. '
                               'Nothing was changed.' % (self.stanza, self.path), refused=True)
        return descriptor

    def _take(self, descriptor, deadline):
        """flock descriptor, waiting until deadline; False when it stayed busy."""
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except (IOError, OSError) as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.time() >= deadline:
                return False
            time.sleep(1)

    def _busy(self, holder, where):
        return StanzaLock.Busy('Stanza %s is busy: %s holds %s%s.' % (
            self.stanza, holder, where, ' (waited %d s)' % self.wait if self.wait else ''), holder=holder)

    def __enter__(self):
        deadline = time.time() + self.wait
        self.handle = self._open()
        try:
            if not self._take(self.handle, deadline):
                raise self._busy(self.holder() or 'another run', self.path)
            if self.shared:
                try:
                    self.shared_handle = _files.open_existing(self.shared)
                except (IOError, OSError, _files.UntrustedPath) as exc:
                    raise ChronosError('Cannot lock %s, the configuration of stanza %s: %s' % (
                        self.shared, self.stanza, getattr(exc, 'strerror', None) or exc), refused=True)
                if not self._take(self.shared_handle, deadline):
                    raise self._busy('a backup started by hand (pgbackrest-backup.sh)', self.shared)
            self.since = int(time.time())
            self._write('%s pid %d since %d' % (self.purpose, os.getpid(), self.since))
        except BaseException:
            # Busy, refused or interrupted: nothing stays open (or locked) behind the caller's back.
            self._release()
            raise
        return self

    def _write(self, text):
        os.lseek(self.handle, 0, os.SEEK_SET)
        os.ftruncate(self.handle, 0)
        os.write(self.handle, (text + '\n').encode('utf-8'))

    def note(self, text):
        """Say what the holder is doing now, for whoever reads holder() (progress reports, refusals)."""
        self._write('%s pid %d since %d: %s' % (self.purpose, os.getpid(), self.since, text))

    def _release(self):
        for name in ('shared_handle', 'handle'):
            if getattr(self, name) is not None:
                os.close(getattr(self, name))
                setattr(self, name, None)

    def __exit__(self, *exc):
        os.ftruncate(self.handle, 0)
        self._release()
        return False
