# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/module_utils/_lock.py: the stanza flock, for real, in the test's lock directory (conftest.lock_dir).
A second open file description of the same file conflicts like another process would; waiting runs on the fake
clock."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import fcntl
import os
import stat

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _lock
from ansible_collections.chronos.pgbackrest.plugins.module_utils._lock import StanzaLock
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError


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
            'restore into /data pid %d since %d: step 4 of 5, start PostgreSQL and wait for recovery'
            % (os.getpid(), clock.now))
        assert StanzaLock('chronos-v2', 'progress').held_since() == clock.now


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
    os.makedirs(lock_dir, 0o700)
    with os.fdopen(os.open(os.path.join(lock_dir, 'chronos-v2.lock'), os.O_WRONLY | os.O_CREAT, 0o600), 'w') as handle:
        handle.write('restore into /data pid 4242: step 3 of 5, restore the files with pgBackRest\n')
    assert StanzaLock('chronos-v2', 'progress').holder() == ''
    with StanzaLock('chronos-v2', 'restore drill') as lock:
        assert lock.holder() == 'restore drill pid %d since 1795513999' % os.getpid()


def test_root_alone_can_reach_the_lock(lock_dir):
    """The directory 0700 and the file 0600, whatever the umask: no other user can hold the lock, write what its
    holder says, or plant a link there."""
    umask = os.umask(0)
    try:
        with StanzaLock('chronos-v2', 'backup') as lock:
            assert stat.S_IMODE(os.stat(lock_dir).st_mode) == 0o700
            assert stat.S_IMODE(os.stat(lock.path).st_mode) == 0o600
    finally:
        os.umask(umask)


def refused(stanza='chronos-v2'):
    with pytest.raises(ChronosError) as raised:
        with StanzaLock(stanza, 'backup'):
            pytest.fail('an untrusted lock was taken')
    assert raised.value.extra.get('refused')
    return raised.value.msg


def test_a_link_planted_as_the_lock_is_not_followed(lock_dir, tmp_path):
    target = tmp_path / 'pg_hba.conf'
    target.write_text(u'local all all peer\n')
    os.makedirs(lock_dir, 0o700)
    os.symlink(str(target), os.path.join(lock_dir, 'chronos-v2.lock'))
    assert refused() == ('The lock of stanza chronos-v2, %s/chronos-v2.lock, is a link: root does not follow it. '
                         'Remove it and run again. Nothing was changed.' % lock_dir)
    assert target.read_text() == u'local all all peer\n'
    assert StanzaLock('chronos-v2', 'progress').holder() == ''


def test_a_lock_directory_others_can_write_is_refused(lock_dir):
    os.makedirs(lock_dir)
    os.chmod(lock_dir, 0o1777)
    assert 'is writable by others (mode 1777)' in refused()
    assert os.listdir(lock_dir) == []


def test_a_lock_directory_another_user_owns_is_refused(lock_dir):
    os.makedirs(lock_dir, 0o700)
    os.chown(lock_dir, 999, 999)
    assert 'is owned by ' in refused()


def test_a_lock_directory_that_is_a_link_is_refused(lock_dir, tmp_path):
    os.symlink(str(tmp_path), lock_dir)
    assert 'is a link or not a directory' in refused()


def test_a_lock_file_another_user_owns_is_refused(lock_dir):
    os.makedirs(lock_dir, 0o700)
    path = os.path.join(lock_dir, 'chronos-v2.lock')
    open(path, 'w').close()
    os.chown(path, 999, 999)
    assert refused() == ("The lock of stanza chronos-v2, %s, is not a file of root's alone: remove it and run again. "
                         "Nothing was changed." % path)


# --- the configuration file, shared with the wrapper run by hand in the container ----------------------------

@pytest.fixture
def config(tmp_path):
    path = tmp_path / 'pgbackrest.conf'
    path.write_text(u'[global]\n')
    path.chmod(0o640)
    return str(path)


def test_the_configuration_is_locked_too(config):
    with StanzaLock('chronos-v2', 'backup', shared=config):
        handle = os.open(config, os.O_RDONLY)
        try:
            with pytest.raises(IOError):
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(handle)


def test_a_backup_started_by_hand_holds_off_the_lock(config, clock, lock_dir):
    """The wrapper in the container (flock on its pgbackrest.conf) holds it: the stanza lock is given back and the
    refusal names the wrapper."""
    handle = os.open(config, os.O_RDONLY)
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
        with pytest.raises(StanzaLock.Busy) as raised:
            StanzaLock('chronos-v2', 'restore', wait=3, shared=config).__enter__()
    finally:
        os.close(handle)
    assert raised.value.msg == ('Stanza chronos-v2 is busy: a backup started by hand (pgbackrest-backup.sh) holds %s '
                                '(waited 3 s).' % config)
    with StanzaLock('chronos-v2', 'backup'):
        pass


def test_a_configuration_reached_through_a_link_is_refused(config, tmp_path):
    link = str(tmp_path / 'link.conf')
    os.symlink(config, link)
    with pytest.raises(ChronosError) as raised:
        StanzaLock('chronos-v2', 'backup', shared=link).__enter__()
    assert raised.value.msg.startswith('Cannot lock %s, the configuration of stanza chronos-v2: ' % link)
    assert raised.value.extra.get('refused')
    with StanzaLock('chronos-v2', 'backup'):
        pass


# --- how long the lock is held, read from the kernel --------------------------------------------------------------

PROC_LOCKS = ('1: FLOCK  ADVISORY  WRITE 8912 00:3e:1541215 0 EOF\n'
              '1: -> FLOCK  ADVISORY  WRITE 9000 00:3e:1541215 0 EOF\n'
              '2: POSIX  ADVISORY  WRITE 8903 00:3e:1541216 0 EOF\n'
              '3: FLOCK  ADVISORY  READ 77 fd:01:42 0 EOF\n')


def test_flock_holders_reads_proc_locks(tmp_path):
    locks = tmp_path / 'locks'
    locks.write_text(PROC_LOCKS)
    holders = _lock.flock_holders
    assert holders([(0, 0x3e, 1541215)], str(locks)) == {8912}
    assert holders([(0, 0x3e, 1541216)], str(locks)) == set()  # a POSIX lock is not ours
    assert holders([(0xfd, 1, 42), (0, 0x3e, 1541215)], str(locks)) == {77, 8912}
    assert holders([(0, 0x3e, 1)], str(tmp_path / 'missing')) == set()


def test_process_start_of_this_process():
    import time as real_time
    assert 0 <= real_time.time() - _lock.process_start(os.getpid()) < 3600 * 24 * 365
    assert _lock.process_start(2 ** 22 + 1) is None


def test_held_seconds_from_the_holders_start(clock, monkeypatch, config):
    started = {}
    monkeypatch.setattr(_lock, 'process_start', started.get)
    lock = StanzaLock('chronos-v2', 'metrics', shared=config)
    assert lock.held_seconds() == 0
    with StanzaLock('chronos-v2', 'restore'):
        started[os.getpid()] = clock.now - 7200
        assert lock.held_seconds() == 7200
    assert lock.held_seconds() == 0
    # The wrapper in the container holds the configuration alone.
    handle = os.open(config, os.O_RDONLY)
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
        assert lock.held_seconds() == 7200
    finally:
        os.close(handle)


def test_held_by_a_process_that_is_gone_counts_from_when_it_was_first_seen(clock, monkeypatch, config):
    """The kernel names the process that took the lock; when that one exited and a child it forked holds the
    descriptor (an orphaned pgBackRest worker), its start is unknown: the time is counted from the first metrics run
    that saw the lock so, and forgotten once the lock is free."""
    monkeypatch.setattr(_lock, 'process_start', lambda pid: None)
    lock = StanzaLock('chronos-v2', 'metrics', shared=config)
    handle = os.open(config, os.O_RDONLY)
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
        assert lock.held_seconds() == 0
        clock.now += 7 * 3600
        assert lock.held_seconds() == 7 * 3600
        assert oct(os.stat(lock._seen_path()).st_mode & 0o777) == oct(0o600)
    finally:
        os.close(handle)
    assert lock.held_seconds() == 0
    assert not os.path.exists(lock._seen_path())


def test_a_first_seen_record_others_could_write_is_not_believed(clock, monkeypatch, config):
    monkeypatch.setattr(_lock, 'process_start', lambda pid: None)
    lock = StanzaLock('chronos-v2', 'metrics', shared=config)
    handle = os.open(config, os.O_RDONLY)
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
        lock.held_seconds()
        os.chown(lock._seen_path(), 65534, 65534)
        clock.now += 3600
        # Not believed, so written anew: counted from now.
        assert lock.held_seconds() == 0
    finally:
        os.close(handle)


@pytest.mark.skipif(os.geteuid() != 0, reason='locks as another user')
def test_a_caller_that_is_not_root_is_told_to_run_as_root(lock_dir):
    """The lock's directory is root's 0700: a module run with become_user postgres cannot open it, and says why."""
    from ansible_collections.chronos.pgbackrest.plugins.module_utils import _files

    def take():
        try:
            with StanzaLock('chronos-v2', 'backup'):
                return 'taken'
        except ChronosError as exc:
            return exc.msg
    os.makedirs(lock_dir, 0o700)
    os.chmod(os.path.dirname(lock_dir), 0o755)
    message = _files.as_user(65534, 65534, take)
    assert message == ("The lock of stanza chronos-v2, in %s, is root's alone, and this runs as nobody: run it as "
                       "root (become: true, without become_user; pgBackRest itself runs as its own user). Nothing was "
                       "changed." % lock_dir)


def test_a_lock_whose_taker_exited_is_still_seen(lock_dir, config):
    """As the backup wrapper locks: flock(1) on the shell's descriptor, which exits at once. /proc/locks names the
    gone taker (or, in a container, nothing); the shell holding the descriptor is found through its fdinfo."""
    import subprocess
    import time as real_time
    shell = subprocess.Popen(['bash', '-c', 'exec 9<"$1"; flock 9; echo locked; sleep 30', 'bash', config],
                             stdout=subprocess.PIPE)
    try:
        assert shell.stdout.readline() == b'locked\n'
        info = os.stat(config)
        key = (os.major(info.st_dev), os.minor(info.st_dev), info.st_ino)
        # /proc/locks names the taker, flock(1), which is gone (in a container's PID namespace it lists nothing).
        assert shell.pid not in _lock.flock_holders([key])
        assert shell.pid in _lock.lock_holders([key])
        lock = StanzaLock('chronos-v2', 'metrics', shared=config)
        assert 0 <= lock.held_seconds() < real_time.time() - _lock.process_start(shell.pid) + 5
        with pytest.raises(StanzaLock.Busy, match='a backup started by hand'):
            lock.__enter__()
    finally:
        shell.kill()
        shell.wait()
    assert not [pid for pid in _lock.lock_holders([key]) if _lock.process_start(pid) is not None]
