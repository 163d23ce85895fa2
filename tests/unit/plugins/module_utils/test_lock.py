# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/module_utils/_lock.py: the stanza flock, for real, in the test's lock directory (conftest.lock_dir).
A second open file description of the same file conflicts like another process would; waiting runs on the fake
clock."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import stat

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils._lock import StanzaLock


def test_holding_the_lock_says_who_holds_it(lock_dir, clock):
    with StanzaLock('chronos-v2', 'restore into /var/lib/postgresql/15/main') as lock:
        assert lock.path == os.path.join(lock_dir, 'chronos-v2.lock')
        assert lock.holder() == 'restore into /var/lib/postgresql/15/main pid %d since %d' % (os.getpid(), clock.now)
        assert StanzaLock('chronos-v2', 'progress').holder() == lock.holder()


def test_a_second_holder_is_refused_with_the_holders_text(lock_dir):
    with StanzaLock('chronos-v2', 'scheduled full backup'):
        with pytest.raises(StanzaLock.Busy) as raised:
            with StanzaLock('chronos-v2', 'restore drill'):
                pytest.fail('two holders')
    holder = 'scheduled full backup pid %d since %d' % (os.getpid(), 1795513999)
    assert raised.value.msg == 'Stanza chronos-v2 is busy: %s holds %s.' % (holder, os.path.join(lock_dir, 'chronos-v2.lock'))
    assert raised.value.extra == dict(holder=holder)


def test_other_stanzas_are_not_locked():
    with StanzaLock('chronos-v2', 'backup'):
        with StanzaLock('chronos', 'backup'):
            pass


def test_released_on_exit():
    with StanzaLock('chronos-v2', 'backup'):
        pass
    with StanzaLock('chronos-v2', 'restore'):
        pass


def test_wait_until_the_holder_is_done(clock):
    first = StanzaLock('chronos-v2', 'backup').__enter__()
    clock.on_sleep = lambda now: first.__exit__(None, None, None) if len(clock.slept) == 3 else None
    with StanzaLock('chronos-v2', 'restore', wait=600) as second:
        assert second.holder().startswith('restore pid ')
    assert clock.slept == [1, 1, 1]


def test_wait_gives_up(clock):
    with StanzaLock('chronos-v2', 'backup'):
        with pytest.raises(StanzaLock.Busy) as raised:
            StanzaLock('chronos-v2', 'restore', wait=5).__enter__()
    assert raised.value.msg.endswith(' (waited 5 s).')
    assert clock.slept == [1] * 5


def test_note_replaces_what_the_holder_says(clock):
    with StanzaLock('chronos-v2', 'restore into /data') as lock:
        lock.note('step 3 of 5, restore the files with pgBackRest')
        lock.note('step 4 of 5, start PostgreSQL and wait for recovery')
        assert StanzaLock('chronos-v2', 'progress').holder() == (
            'restore into /data pid %d: step 4 of 5, start PostgreSQL and wait for recovery' % os.getpid())


def test_the_directory_is_made(tmp_path):
    directory = tmp_path / 'a' / 'b'
    with StanzaLock('s', 'backup', directory=str(directory)):
        assert os.listdir(str(directory)) == ['s.lock']


def test_no_holder_without_a_lock_file():
    assert StanzaLock('never-locked', 'progress').holder() == ''


def test_holder_of_a_released_lock_is_empty():
    with StanzaLock('chronos-v2', 'restore into /data') as lock:
        lock.note('step 3 of 5, restore the files with pgBackRest')
    assert StanzaLock('chronos-v2', 'progress').holder() == ''
    assert os.path.getsize(lock.path) == 0


def test_the_text_of_a_killed_holder_is_ignored(lock_dir):
    """A holder killed mid-run leaves its text (its __exit__ never ran), but the kernel released its flock."""
    os.makedirs(lock_dir)
    with open(os.path.join(lock_dir, 'chronos-v2.lock'), 'w') as handle:
        handle.write('restore into /data pid 4242: step 3 of 5, restore the files with pgBackRest\n')
    assert StanzaLock('chronos-v2', 'progress').holder() == ''
    with StanzaLock('chronos-v2', 'restore drill') as lock:
        assert lock.holder() == 'restore drill pid %d since 1795513999' % os.getpid()


def test_shared_by_root_and_postgres(lock_dir):
    """Root's scheduled jobs and modules running as postgres take the same locks: the directory is sticky and
    world-writable like /tmp, the lock files readable and writable by all, whatever the umask."""
    umask = os.umask(0o077)
    try:
        with StanzaLock('chronos-v2', 'backup') as lock:
            assert stat.S_IMODE(os.stat(lock_dir).st_mode) == 0o1777
            assert stat.S_IMODE(os.stat(lock.path).st_mode) == 0o666
    finally:
        os.umask(umask)
