# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files root writes on the managed host, written so that root never follows what another user can write
(docs/threat-model.md).

A directory written in is opened one component at a time from /, never through a link (O_NOFOLLOW), and must end
owned by the writer and writable by no one else: anything else is refused with a message, before anything is
written. Root writes in root's directories; a file or directory that will belong to another user (pgBackRest's), in a
directory that user owns (/var/lib/postgresql), is made by a child process running as that user (as_user), so root
gains nothing another user could steer. Missing components are made, owned by root. A file is written new beside its
name (O_CREAT | O_EXCL | O_NOFOLLOW) and renamed over it through the directory's descriptor, so that no link planted
under either name is followed, and it is never world-writable. Nothing here is re-moded unless it was made here.

The ground floor of module_utils, with _errors (whose ChronosError it raises where callers want a message).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import json
import os
import pwd
import select
import shutil
import signal
import stat
import time

from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError, untrusted_message

NOFOLLOW = getattr(os, 'O_NOFOLLOW', 0)
DIRECTORY = getattr(os, 'O_DIRECTORY', 0)
CLOEXEC = getattr(os, 'O_CLOEXEC', 0)
# Opening a FIFO planted where a file is expected would wait for a writer for ever; a regular file ignores the flag.
NONBLOCK = getattr(os, 'O_NONBLOCK', 0)
# How long a child working as another user (as_user) may take: file work, never a restore.
AS_USER_SECONDS = 300


class UntrustedPath(Exception):
    """A path root must not write through; its message says what was found and what to do."""


def user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return 'uid %d' % uid


def _refuse_directory(path, info):
    writer = os.geteuid()
    if info.st_uid != writer:
        raise UntrustedPath('%s is owned by %s, not %s: root does not write where another user can. Remove it (or '
                            'chown %s and chmod go-w it) and run again.' % (
                                path, user_name(info.st_uid), user_name(writer), user_name(writer)))
    if info.st_mode & 0o022:
        raise UntrustedPath('%s is writable by others (mode %04o): root does not write where another user can. chmod '
                            'go-w it and run again.' % (path, stat.S_IMODE(info.st_mode)))


def open_directory(path, create_mode=None, trusted=True):
    """A descriptor of directory path, reached from / one component at a time without following links; with trusted,
    it must be owned by this process's user and writable by no one else. With create_mode, missing components are
    made (this process's, that mode). Without trusted, any owner will do: for work the owner could do there itself
    (renaming a data directory whose parent its owner owns), where only the links matter."""
    if not os.path.isabs(path):
        raise UntrustedPath('%s is not an absolute path.' % path)
    descriptor = os.open('/', os.O_RDONLY | DIRECTORY | CLOEXEC)
    walked = ''
    try:
        for name in [part for part in path.split('/') if part]:
            walked += '/' + name
            try:
                child = os.open(name, os.O_RDONLY | DIRECTORY | NOFOLLOW | CLOEXEC, dir_fd=descriptor)
            except OSError as exc:
                if exc.errno == errno.ENOENT and create_mode is not None:
                    child = _make_component(descriptor, name, walked, create_mode)
                elif exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UntrustedPath('%s is a link or not a directory: root does not follow links where it writes. '
                                        'Replace it with a directory and run again.' % walked)
                else:
                    raise
            os.close(descriptor)
            descriptor = child
        if trusted:
            _refuse_directory(path, os.fstat(descriptor))
        return descriptor
    except BaseException:
        os.close(descriptor)
        raise


def _make_component(parent, name, walked, mode):
    """mkdir name in the opened parent and open it; another process making it meanwhile is fine (the walk then
    judges what it made). The mode is set only on a directory this process owns."""
    try:
        os.mkdir(name, mode, dir_fd=parent)
        made = True
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise
        made = False
    try:
        child = os.open(name, os.O_RDONLY | DIRECTORY | NOFOLLOW | CLOEXEC, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UntrustedPath('%s is a link or not a directory: root does not follow links where it writes. '
                                'Replace it with a directory and run again.' % walked)
        raise
    if made and os.fstat(child).st_uid == os.geteuid():
        os.fchmod(child, mode)
    return child


def owned_by(path, uid):
    """Whether directory path (reached without a link) belongs to uid and no one else can write it."""
    try:
        descriptor = open_directory(path, trusted=False)
    except (OSError, UntrustedPath):
        return False
    try:
        info = os.fstat(descriptor)
        return info.st_uid == uid and not info.st_mode & 0o022
    finally:
        os.close(descriptor)


def as_user(uid, gid, function, *args):
    """function(*args) in a child process running as uid:gid (no other groups); its return value (anything JSON can
    carry), or its failure raised here as UntrustedPath or OSError."""
    if os.geteuid() == uid:
        return function(*args)
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 0
        try:
            # Nothing root holds open (a lock, a log, a descriptor of a directory) reaches the other user.
            os.closerange(0, writer)
            os.closerange(writer + 1, os.sysconf('SC_OPEN_MAX'))
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            answer = b'R' + json.dumps(function(*args)).encode('utf-8')
        except UntrustedPath as exc:
            answer, code = b'U' + str(exc).encode('utf-8', 'replace'), 1
        except BaseException as exc:  # pylint: disable=broad-except
            answer, code = b'E%d %s' % (getattr(exc, 'errno', 0) or 0, str(exc).encode('utf-8', 'replace')), 1
        try:
            os.write(writer, answer[:65536])
        finally:
            os._exit(code)
    os.close(writer)
    chunks, deadline = [], time.time() + AS_USER_SECONDS
    try:
        while True:
            ready = select.select([reader], [], [], max(0, deadline - time.time()))[0]
            if not ready:
                os.kill(pid, signal.SIGKILL)
                raise OSError(errno.ETIMEDOUT, 'the process working as uid %d did not finish within %d s' % (
                    uid, AS_USER_SECONDS))
            chunk = os.read(reader, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(reader)
        os.waitpid(pid, 0)
    answer = b''.join(chunks)
    if answer[:1] == b'R':
        return json.loads(answer[1:].decode('utf-8'))
    if answer[:1] == b'U':
        raise UntrustedPath(answer[1:].decode('utf-8', 'replace'))
    number, dummy, text = answer[1:].decode('utf-8', 'replace').partition(' ')
    raise OSError(int(number) if number.isdigit() else 0, text or 'the process writing as uid %d died' % uid)


def write_file(path, content, uid=0, gid=0, mode=0o644, check_mode=False, create_mode=0o755):
    """Make path hold content with that owner and mode, in a directory root alone can write: True when something
    changed. A new file is written beside the name and renamed over it (a reader never sees half a file)."""
    if mode & 0o002:
        raise ValueError('%s would be world-writable' % path)
    directory, name = os.path.split(path)
    if check_mode and not os.path.isdir(directory):
        return True
    if os.geteuid() == 0 and uid != 0 and owned_by(directory, uid):
        # A file of uid's in uid's own directory (the drill's scratch cluster): written as uid.
        return as_user(uid, gid, write_file, path, content, uid, gid, mode, check_mode, None)
    descriptor = open_directory(directory, create_mode)
    try:
        current = _read(descriptor, name)
        if current is not None:
            old, info = current
            if old == content and (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (uid, gid, mode):
                return False
        if check_mode:
            return True
        temporary = '.%s.%d.tmp' % (name, os.getpid())
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | CLOEXEC, 0o600,
                         dir_fd=descriptor)
        try:
            os.fchown(handle, uid, gid)
            os.fchmod(handle, mode)
            view = memoryview(content)
            while view:
                view = view[os.write(handle, view):]
            os.fsync(handle)
        except BaseException:
            os.close(handle)
            os.unlink(temporary, dir_fd=descriptor)
            raise
        os.close(handle)
        try:
            os.rename(temporary, name, src_dir_fd=descriptor, dst_dir_fd=descriptor)
        except BaseException:
            os.unlink(temporary, dir_fd=descriptor)
            raise
        return True
    finally:
        os.close(descriptor)


def make_directory(path, uid, gid, mode, check_mode=False):
    """Make directory path for uid:gid with mode, in a parent root alone can write, owner and mode set through its
    descriptor (a link swapped in meanwhile is never chowned): True when it was missing."""
    parent, name = os.path.split(path.rstrip('/'))
    if os.path.islink(path):
        raise UntrustedPath('%s is a link: root does not follow links where it writes. Replace it with a directory and '
                            'run again.' % path)
    if os.path.isdir(path):
        return False
    if check_mode:
        return True
    if os.geteuid() == 0 and uid != 0 and owned_by(parent, uid):
        return as_user(uid, gid, make_directory, path, uid, gid, mode)
    descriptor = open_directory(parent, 0o755)
    try:
        os.mkdir(name, 0o700, dir_fd=descriptor)
        child = os.open(name, os.O_RDONLY | DIRECTORY | NOFOLLOW | CLOEXEC, dir_fd=descriptor)
        try:
            os.fchown(child, uid, gid)
            os.fchmod(child, mode)
        finally:
            os.close(child)
        return True
    finally:
        os.close(descriptor)


def open_append(path, mode=0o640):
    """A descriptor to append to path (a log), in a directory root alone can write, created with mode, never through a
    link, and refused when it is not a regular file of root's with one name."""
    directory, name = os.path.split(path)
    descriptor = open_directory(directory, 0o755)
    try:
        try:
            handle = os.open(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | NOFOLLOW | CLOEXEC, mode, dir_fd=descriptor)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UntrustedPath('%s is a link: root does not follow links where it writes. Remove it and run '
                                    'again.' % path)
            raise
    finally:
        os.close(descriptor)
    info = os.fstat(handle)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != 0 or info.st_nlink != 1 or info.st_mode & 0o022:
        os.close(handle)
        raise UntrustedPath('%s is not a file of root\'s with one name that only root can write. Remove it and run '
                            'again.' % path)
    return handle


def remove_tree(path):
    """Delete directory path and all below it, reached without following a link - the parents included (the
    cluster owner could swap one for a link): the parent is opened from / one component at a time, and rmtree works
    through its descriptor. False when there was nothing."""
    parent, name = os.path.split(os.path.normpath(path))
    try:
        descriptor = open_directory(parent, trusted=False)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise
    try:
        try:
            info = os.lstat(name, dir_fd=descriptor)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return False
            raise
        if not stat.S_ISDIR(info.st_mode):
            raise UntrustedPath('%s is not a directory (a link?): root removes nothing through it.' % path)
        shutil.rmtree(name, dir_fd=descriptor)
        return True
    finally:
        os.close(descriptor)


def remove_file(path, any_owner=False):
    """Remove path from a directory root alone can write (the name, never what a link would point at); with any_owner,
    from any directory reached without following a link."""
    directory, name = os.path.split(path)
    if not os.path.isdir(directory):
        return False
    descriptor = open_directory(directory, trusted=not any_owner)
    try:
        os.unlink(name, dir_fd=descriptor)
        return True
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise
    finally:
        os.close(descriptor)


def _read(descriptor, name):
    """(content, stat) of a regular file in an opened directory, not following a link; None when there is none."""
    try:
        handle = os.open(name, os.O_RDONLY | NOFOLLOW | CLOEXEC, dir_fd=descriptor)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        if exc.errno == errno.ELOOP:
            raise UntrustedPath('%s is a link: root does not follow links where it writes. Remove it and run again.'
                                % name)
        raise
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            raise UntrustedPath('%s is not a regular file. Remove it and run again.' % name)
        chunks = []
        while True:
            chunk = os.read(handle, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        return b''.join(chunks), info
    finally:
        os.close(handle)


def open_existing(path, flags=os.O_RDONLY, owners=None):
    """A descriptor of an existing regular file, its last component not followed if it is a link, with one name only
    (no hard link into it) and, with owners, owned by one of those uids: how root opens a file that lies where another
    user may write (the configuration a container bind-mounts from its user's directory)."""
    try:
        handle = os.open(path, flags | NOFOLLOW | CLOEXEC | NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UntrustedPath('%s is a link: root does not follow it. Put the file itself there and run again.'
                                % path)
        raise
    info = os.fstat(handle)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = 'is not a regular file'
    elif info.st_nlink != 1:
        problem = 'has %d names (hard links): root does not write a file another name may reach' % info.st_nlink
    elif owners is not None and info.st_uid not in owners:
        problem = 'is owned by %s' % user_name(info.st_uid)
    if problem:
        os.close(handle)
        raise UntrustedPath('%s %s. Nothing was changed.' % (path, problem))
    return handle


# --- as the targets and the scheduled program use them: refusals as ChronosError -----------------------------

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
        return write_file(path, content, uid, gid, mode, check_mode)
    except UntrustedPath as exc:
        raise ChronosError(untrusted_message(exc))


def make_local_directory(path, uid, gid, mode, check_mode=False):
    """Make a directory on this host (uid:gid, mode) in a parent root alone can write; True when it was missing."""
    try:
        return make_directory(path, uid, gid, mode, check_mode)
    except UntrustedPath as exc:
        raise ChronosError(untrusted_message(exc))


def remove_local_file(path, any_owner=False):
    """Remove a file of this host from a directory root alone can write (the name, never what a link points at); with
    any_owner, from any directory reached without a link (removing a name gives its owner nothing)."""
    try:
        return remove_file(path, any_owner)
    except UntrustedPath as exc:
        raise ChronosError(untrusted_message(exc))


def _rewrite_in_place(path, content, uid, gid, mode, check_mode):
    handle = open_existing(path, os.O_RDONLY if check_mode else os.O_RDWR)
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
