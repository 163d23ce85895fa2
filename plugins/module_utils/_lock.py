# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One lock per stanza on the managed host (the database host, or the Docker host of the container), held
by a restore, a backup, a restore drill and pgbackrest verify, so that none of them runs against another. It is an
flock: the kernel releases it when its holder dies, so a killed run never leaves it behind. The directory is
sticky and world-writable, like /tmp, and the lock files readable and writable by all: root's jobs and modules run
as postgres share them."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import fcntl
import os
import time

from ansible_collections.chronos.pgbackrest.plugins.module_utils._target import ChronosError

LOCK_DIRECTORY = '/run/lock/chronos-pgbackrest'


class StanzaLock(object):
    """with StanzaLock('chronos-v2', 'restore', wait=600): ... ; raises Busy when another holds it."""

    class Busy(ChronosError):
        pass

    def __init__(self, stanza, purpose, wait=0, directory=None):
        self.path = os.path.join(directory or LOCK_DIRECTORY, '%s.lock' % stanza)
        self.stanza = stanza
        self.purpose = purpose
        self.wait = wait
        self.handle = None

    def holder(self):
        """What the holder wrote into the lock file ('restore into ... pid 1234: step 3 of 5, ...'), or '' when no one
        holds it (a holder that ended leaves its text behind)."""
        try:
            with open(self.path) as handle:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
                except (IOError, OSError):
                    return handle.read().strip()
                return ''
        except (IOError, OSError):
            return ''

    def left_behind(self):
        """What the last holder wrote, held or not: a holder that was killed leaves its last note (a clean exit empties
        the file)."""
        try:
            with open(self.path) as handle:
                return handle.read().strip()
        except (IOError, OSError):
            return ''

    def __enter__(self):
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            os.makedirs(directory)
            os.chmod(directory, 0o1777)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        if os.fstat(descriptor).st_uid == os.geteuid():
            os.fchmod(descriptor, 0o666)
        self.handle = os.fdopen(descriptor, 'a+')
        deadline = time.time() + self.wait
        while True:
            try:
                fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except (IOError, OSError) as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.time() >= deadline:
                holder = self.holder() or 'another run'
                self.handle.close()
                raise StanzaLock.Busy('Stanza %s is busy: %s holds %s%s.' % (
                    self.stanza, holder, self.path, ' (waited %d s)' % self.wait if self.wait else ''), holder=holder)
            time.sleep(1)
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write('%s pid %d since %d\n' % (self.purpose, os.getpid(), int(time.time())))
        self.handle.flush()
        return self

    def note(self, text):
        """Say what the holder is doing now, for whoever reads holder() (progress reports, refusals)."""
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write('%s pid %d: %s\n' % (self.purpose, os.getpid(), text))
        self.handle.flush()

    def __exit__(self, *exc):
        self.handle.truncate(0)
        self.handle.close()
        return False
