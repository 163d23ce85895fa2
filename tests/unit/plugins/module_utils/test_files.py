# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/module_utils/_files.py: where root writes, for real, with a second user (nobody) owning what another user
would own on a database host (/var/lib/postgresql). Run as root, as CI runs them."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import shutil
import stat
import tempfile

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _files

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='writes as another user')
NOBODY = 65534


@pytest.fixture
def reachable():
    """A directory every user can reach (tmp_path's parents are root's 0700)."""
    path = tempfile.mkdtemp(prefix='chronos-files-', dir='/tmp')
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def users_home(reachable):
    """A directory of nobody's, as /var/lib/postgresql is postgres's."""
    home = os.path.join(reachable, 'home')
    os.mkdir(home, 0o755)
    os.chown(home, NOBODY, NOBODY)
    return home


def test_as_user_runs_as_that_user():
    assert _files.as_user(NOBODY, NOBODY, os.geteuid) == NOBODY
    assert _files.as_user(NOBODY, NOBODY, os.getgroups) == []


def test_as_user_raises_the_childs_failure(reachable):
    secret = os.path.join(reachable, 'secret')
    with open(secret, 'w') as handle:
        handle.write('root only')
    os.chmod(secret, 0o600)
    with pytest.raises(OSError) as raised:
        _files.as_user(NOBODY, NOBODY, lambda: open(secret).read())
    assert 'Permission denied' in str(raised.value)


def test_as_user_passes_no_descriptor_of_roots_on(reachable):
    """A descriptor root holds (a lock, a root-only file) is closed in the child before it becomes the other user."""
    secret = os.path.join(reachable, 'secret')
    with open(secret, 'w') as handle:
        handle.write('root only')
    os.chmod(secret, 0o600)
    held = os.open(secret, os.O_RDONLY)
    try:
        def read_what_root_held():
            try:
                return os.read(held, 100).decode()
            except OSError as exc:
                return 'closed: %s' % exc.strerror
        assert _files.as_user(NOBODY, NOBODY, read_what_root_held) == 'closed: Bad file descriptor'
    finally:
        os.close(held)


def test_as_user_gives_up_on_a_child_that_hangs(monkeypatch):
    monkeypatch.setattr(_files, 'AS_USER_SECONDS', 1)
    import time
    with pytest.raises(OSError) as raised:
        _files.as_user(NOBODY, NOBODY, time.sleep, 30)
    assert 'did not finish within 1 s' in str(raised.value)


def test_a_fifo_where_a_file_is_expected_does_not_hang(reachable):
    fifo = os.path.join(reachable, 'postmaster.pid')
    os.mkfifo(fifo)
    with pytest.raises(_files.UntrustedPath, match='is not a regular file'):
        _files.open_existing(fifo)


def test_a_directory_another_process_made_meanwhile_is_judged_not_refused(reachable, monkeypatch):
    """mkdir racing another mkdir of the same directory (two jobs at boot): EEXIST is not a failure."""
    wanted = os.path.join(reachable, 'made', 'deeper')
    real_mkdir = os.mkdir

    def racing_mkdir(name, mode=0o777, dir_fd=None):
        real_mkdir(name, mode, dir_fd=dir_fd)
        raise OSError(17, 'File exists')
    monkeypatch.setattr(os, 'mkdir', racing_mkdir)
    descriptor = _files.open_directory(wanted, 0o755)
    os.close(descriptor)
    assert os.path.isdir(wanted)


def test_remove_tree_follows_no_link_above_it(reachable, users_home):
    """The cluster owner swaps a parent for a link to a directory of root's: nothing of root's is removed."""
    roots = os.path.join(reachable, 'roots')
    os.makedirs(os.path.join(roots, 'scratch', 'data'))
    parent = os.path.join(users_home, '16')
    os.symlink(roots, parent)
    with pytest.raises(_files.UntrustedPath):
        _files.remove_tree(os.path.join(parent, 'scratch'))
    assert os.path.isdir(os.path.join(roots, 'scratch', 'data'))
    os.unlink(parent)
    os.makedirs(os.path.join(parent, 'scratch', 'data'))
    os.symlink(roots, os.path.join(parent, 'scratch', 'data', 'link'))
    assert _files.remove_tree(os.path.join(parent, 'scratch')) is True
    assert not os.path.exists(os.path.join(parent, 'scratch')) and os.path.isdir(roots)
    assert _files.remove_tree(os.path.join(parent, 'scratch')) is False


def test_a_file_of_the_user_in_the_users_directory_is_written_as_the_user(users_home):
    path = os.path.join(users_home, 'postgresql.conf')
    assert _files.write_file(path, b'port = 5433\n', NOBODY, NOBODY, 0o600) is True
    info = os.stat(path)
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (NOBODY, NOBODY, 0o600)
    assert _files.write_file(path, b'port = 5433\n', NOBODY, NOBODY, 0o600) is False


def test_the_user_cannot_steer_roots_write_through_a_link(users_home, reachable):
    """A link the user planted under the name: the write happens as the user, who cannot reach the root-only file,
    and the link is refused anyway."""
    secret = os.path.join(reachable, 'shadow')
    with open(secret, 'w') as handle:
        handle.write('root:$6$x\n')
    os.chmod(secret, 0o640)
    os.symlink(secret, os.path.join(users_home, 'postgresql.conf'))
    with pytest.raises(_files.UntrustedPath, match='is a link'):
        _files.write_file(os.path.join(users_home, 'postgresql.conf'), b'x', NOBODY, NOBODY, 0o600)
    with open(secret) as handle:
        assert handle.read() == 'root:$6$x\n'
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o640


def test_a_root_file_in_the_users_directory_is_refused(users_home):
    with pytest.raises(_files.UntrustedPath, match='is owned by nobody, not root'):
        _files.write_file(os.path.join(users_home, 'settings.json'), b'{}', 0, 0, 0o644)
    assert os.listdir(users_home) == []


def test_a_directory_of_the_user_in_the_users_directory_is_made_as_the_user(users_home):
    path = os.path.join(users_home, 'pgbackrest-drill')
    assert _files.make_directory(path, NOBODY, NOBODY, 0o700) is True
    info = os.stat(path)
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (NOBODY, 0o700)
    assert _files.make_directory(path, NOBODY, NOBODY, 0o700) is False


def test_a_directory_others_can_write_is_refused_for_anyone(users_home):
    os.chmod(users_home, 0o777)
    with pytest.raises(_files.UntrustedPath, match='is owned by nobody, not root'):
        _files.write_file(os.path.join(users_home, 'x'), b'x', NOBODY, NOBODY, 0o600)
    os.chown(users_home, 0, 0)
    with pytest.raises(_files.UntrustedPath, match=r'is writable by others \(mode 0777\)'):
        _files.make_directory(os.path.join(users_home, 'x'), NOBODY, NOBODY, 0o755)
    assert os.listdir(users_home) == []


def test_open_append_never_follows_a_link(reachable):
    secret = os.path.join(reachable, 'secret')
    with open(secret, 'w') as handle:
        handle.write('keep')
    log = os.path.join(reachable, 'job.log')
    os.symlink(secret, log)
    with pytest.raises(_files.UntrustedPath, match='is a link'):
        _files.open_append(log)
    os.unlink(log)
    handle = _files.open_append(log)
    os.write(handle, b'line\n')
    os.close(handle)
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o640
    with open(secret) as handle:
        assert handle.read() == 'keep'


def test_open_append_refuses_a_second_name(reachable):
    log = os.path.join(reachable, 'job.log')
    with open(log, 'w'):
        pass
    os.link(log, os.path.join(reachable, 'other'))
    with pytest.raises(_files.UntrustedPath, match='with one name'):
        _files.open_append(log)
