# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a data directory's files lie on this machine's disk, and how a restore keeps the old ones.

Nothing is ever deleted: before a restore the old data is moved aside (a rename on the same filesystem, so
it is instant and needs no space), and a rollback moves it back, keeping what it replaces the same way.
Three places, chosen by the target (data_place()):

- DirectoryPlace: the data directory is a directory of its filesystem (a database host; a container whose
  volume is mounted above PGDATA, as the official image does from PostgreSQL 18). It is renamed to
  <dir>.pre-restore-<stamp>; symlinked pg_wal and tablespace directories are renamed the same way, and the
  kept copy's links follow them.
- VolumeRootPlace: PGDATA is the root of a Docker volume (the official image up to PostgreSQL 17). Its
  entries are moved into a new volume <volume>-pre-restore-<stamp> (both live under Docker's volume
  directory, so each move is a rename).
- BindRootPlace: PGDATA is the root of a bind mount. Its entries are moved into <source>.pre-restore-<stamp>.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import calendar
import os
import re
import stat
import time
from datetime import datetime

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _files
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError, untrusted_message

KEPT = '.pre-restore-'
ROLLED_BACK = '.rolled-back-'
# What a restore leaves in the data directory it emptied, until pgBackRest fills it: a PG_VERSION, so that the
# official postgres image's entrypoint, should the container start meanwhile, finds "a database" and does not
# initialise a new cluster there (PostgreSQL itself then stops at once, finding no pg_control), and a note saying why.
GUARD_NOTE = 'CHRONOS_PGBACKREST_RESTORE_IN_PROGRESS'
GUARD_TEXT = (b'A restore by chronos.pgbackrest emptied this data directory and is filling it: its old files are kept '
              b'aside. Run the same restore command again to finish it, or the rollback playbook to put them back.\n')
KEPT_LABEL = 'chronos.pgbackrest.kept-from'
_STAMP = re.compile(r'(\d{8}T\d{6}Z)$')


def disk_usage(path):
    """Bytes of the files under path (st_size; symlinks are not followed)."""
    total = 0
    for root, dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def free_bytes(path):
    found = os.statvfs(path)
    return found.f_bavail * found.f_frsize


def _empty_like(path, like):
    """mkdir path with the owner and mode of like. The parent may be the cluster owner's (/var/lib/postgresql/16):
    the new directory is opened without following a link and re-moded through that descriptor, so a link swapped in
    after the mkdir is never chowned."""
    parent, name = os.path.split(path)
    directory = _files.open_directory(parent, trusted=False)
    try:
        os.mkdir(name, 0o700, dir_fd=directory)
        child = os.open(name, os.O_RDONLY | _files.DIRECTORY | _files.NOFOLLOW | _files.CLOEXEC, dir_fd=directory)
    finally:
        os.close(directory)
    try:
        if os.fstat(child).st_uid != os.geteuid():
            raise ChronosError('%s was replaced while it was being made. Nothing was changed in it.' % path)
        os.fchown(child, like.st_uid, like.st_gid)
        os.fchmod(child, like.st_mode & 0o7777)
    finally:
        os.close(child)


def _move_entries(source, destination):
    """Move every entry of source into destination, both reached without following a link."""
    source_fd = _files.open_directory(source, trusted=False)
    try:
        destination_fd = _files.open_directory(destination, trusted=False)
        try:
            for name in os.listdir(source_fd):
                os.rename(name, name, src_dir_fd=source_fd, dst_dir_fd=destination_fd)
        finally:
            os.close(destination_fd)
    finally:
        os.close(source_fd)


def _relink(link, text):
    """Point an existing symlink at text, through its parent's descriptor."""
    parent, name = os.path.split(link)
    directory = _files.open_directory(parent, trusted=False)
    try:
        os.unlink(name, dir_fd=directory)
        os.symlink(text, name, dir_fd=directory)
    finally:
        os.close(directory)


def _rename(source, destination, owner=None):
    """rename(2) through descriptors of both parents, reached without following a link: the parents may be the
    cluster owner's (/var/lib/postgresql/16), who could otherwise swap one for a link meanwhile. With owner, source
    must be a directory of that uid's, seen through the same descriptor just before: root renames nothing the cluster's
    owner could not (a pg_wal link turned to /etc/ssl renames nothing)."""
    source_parent, source_name = os.path.split(source)
    destination_parent, destination_name = os.path.split(destination)
    source_fd = _files.open_directory(source_parent, trusted=False)
    try:
        if owner is not None:
            _refuse_unless_owned(source, os.lstat(source_name, dir_fd=source_fd), owner)
        destination_fd = source_fd if destination_parent == source_parent else _files.open_directory(
            destination_parent, trusted=False)
        try:
            os.rename(source_name, destination_name, src_dir_fd=source_fd, dst_dir_fd=destination_fd)
        finally:
            if destination_fd != source_fd:
                os.close(destination_fd)
    finally:
        os.close(source_fd)


def _refuse_unless_owned(path, info, owner):
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != owner:
        raise ChronosError('%s is not a directory of the cluster\'s owner (uid %d): root does not move or delete '
                           'it. Nothing was moved.' % (path, owner))


def _owner_refusal(path, owner):
    """Why root would not move path for a cluster of uid owner, or None."""
    try:
        _refuse_unless_owned(path, os.lstat(path), owner)
    except ChronosError as exc:
        return exc.msg
    except OSError:
        return None
    return None


def _remove_tree(path):
    try:
        return _files.remove_tree(path)
    except _files.UntrustedPath as exc:
        raise ChronosError(untrusted_message(exc))


def _same_filesystem(one, other):
    return os.stat(one).st_dev == os.stat(other).st_dev


def kept_beside(local):
    """The kept copies <local>.pre-restore-<stamp> and <local>.rolled-back-<stamp>, oldest first."""
    parent, base = os.path.split(local)
    found = []
    for name in os.listdir(parent) if os.path.isdir(parent) else []:
        match = _STAMP.search(name)
        if match and name.startswith((base + KEPT, base + ROLLED_BACK)) and os.path.isdir(os.path.join(parent, name)):
            found.append(Kept(os.path.join(parent, name), os.path.join(parent, name), match.group(1)))
    return sorted(found, key=lambda kept: kept.stamp)


class Kept(object):
    """One kept copy of a data directory: name (what the operator types to put it back), where it is."""

    def __init__(self, name, local, stamp):
        self.name = name
        self.local = local
        self.stamp = stamp

    def as_dict(self):
        """What the plan lists: where it is, when it was kept, how much it holds and how old it is."""
        try:
            kept_at = calendar.timegm(datetime.strptime(self.stamp, '%Y%m%dT%H%M%SZ').timetuple())
        except ValueError:
            kept_at = None
        return dict(name=self.name, path=self.local, stamp=self.stamp, bytes=disk_usage(self.local),
                    age_seconds=int(time.time() - kept_at) if kept_at is not None else None)


class DataPlace(object):
    """The data directory's files on this machine's disk: `local` is where they are."""

    kind = None

    def __init__(self, local):
        self.local = local

    def has_cluster(self):
        return os.path.exists(os.path.join(self.local, 'PG_VERSION'))

    def is_empty(self):
        return not os.path.isdir(self.local) or not os.listdir(self.local)

    def exists(self, name):
        return os.path.lexists(os.path.join(self.local, name))

    def usage(self):
        return disk_usage(self.local)

    def free(self):
        return free_bytes(self.local if os.path.isdir(self.local) else os.path.dirname(self.local))

    def refusal(self):
        """Why the old data could not be kept here, or None."""
        return None

    def restore_path(self, pg_path):
        return pg_path

    def guard(self, kept):
        """Put the guard into the emptied data directory: PG_VERSION as the kept copy has it, and the note. Created
        anew (never following a link), owned like the directory."""
        try:
            handle = _files.open_existing(os.path.join(kept.local, 'PG_VERSION'))
            with os.fdopen(handle, 'rb') as stream:
                version = stream.read(64)
        except (IOError, OSError, _files.UntrustedPath):
            version = b''
        directory = _files.open_directory(self.local, trusted=False)
        try:
            like = os.fstat(directory)
            for name, content in ((GUARD_NOTE, GUARD_TEXT), ('PG_VERSION', version)):
                descriptor = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _files.NOFOLLOW | _files.CLOEXEC,
                                     0o600, dir_fd=directory)
                with os.fdopen(descriptor, 'wb') as stream:
                    os.fchown(stream.fileno(), like.st_uid, like.st_gid)
                    stream.write(content)
        finally:
            os.close(directory)

    def guarded(self):
        """Whether the data directory holds nothing but a restore's guard."""
        return os.path.isdir(self.local) and sorted(os.listdir(self.local)) == sorted([GUARD_NOTE, 'PG_VERSION'])

    def linked(self):
        """The link texts of pg_wal and the tablespaces, where pgBackRest restores links (a data directory of its
        own filesystem only)."""
        return []

    def kept(self):
        raise NotImplementedError

    def move_aside(self, stamp, mark=KEPT):
        raise NotImplementedError

    def put_back(self, kept, stamp):
        """Put a kept copy back, keeping the current data as <...>.rolled-back-<stamp>; returns that Kept."""
        raise NotImplementedError

    def remove_kept(self, kept):
        """Delete a kept copy for good (only ever one that kept() listed, named by the operator)."""
        _remove_tree(kept.local)

    def find_kept(self, name):
        for kept in self.kept():
            if name in (kept.name, kept.local, kept.stamp):
                return kept
        raise ChronosError("No kept data directory '%s'. Kept: %s." % (
            name, ', '.join(kept.name for kept in self.kept()) or 'none'))


class DirectoryPlace(DataPlace):
    kind = 'directory'

    def __init__(self, local, local_path=None, owner=None):
        """local_path turns a path as the data directory's links name it into one on this machine's disk (in a
        container, through its mounts), or None when it lies nowhere this machine can reach. owner is the cluster
        owner's uid: the data directory and the directories its links reach must be that uid's."""
        # A symlinked data directory is kept where it really is; the link stays and points at the new one.
        super(DirectoryPlace, self).__init__(os.path.realpath(local))
        self.local_path = local_path or (lambda path: path)
        self.given = local
        self._owner = owner

    @property
    def owner(self):
        """The cluster owner's uid, asked of the target the first time it is needed; None when not known."""
        if callable(self._owner):
            self._owner = self._owner()
        return self._owner

    def restore_path(self, pg_path):
        """The path pgBackRest restores into: the real directory when pg_path is a symlink on this machine (pgBackRest
        would give the restored files the link's owner, often root, which it cannot set as postgres)."""
        return self.local if self.given == pg_path and os.path.islink(pg_path) else pg_path

    def refusal(self):
        if self.owner is not None and _owner_refusal(self.local, self.owner):
            return _owner_refusal(self.local, self.owner)
        if os.path.ismount(self.local):
            return ('%s is a mount point: its files cannot be renamed aside on their filesystem. Mount the filesystem '
                    'one level up (PGDATA a directory inside it), or restore by hand.' % self.local)
        for link in self._linked(self.local):
            target = self._link_target(link)
            if target is None:
                return ('%s links to %s, which lies outside the volumes this machine can reach: it cannot be kept '
                        'aside with the data directory.' % (link, os.readlink(link)))
            if os.path.ismount(target):
                return ('%s links to %s, a mount point: it cannot be renamed aside on its filesystem. Link to a directory '
                        'inside the mounted filesystem instead, or restore by hand.' % (link, os.readlink(link)))
            if self.owner is not None and _owner_refusal(target, self.owner):
                return '%s links to %s. %s' % (link, os.readlink(link), _owner_refusal(target, self.owner))
        return None

    def _link_target(self, link):
        """Where a link of the data directory points, on this machine's disk."""
        text = os.readlink(link)
        if not os.path.isabs(text):
            return os.path.normpath(os.path.join(os.path.dirname(link), text))
        return self.local_path(text)

    def _linked(self, directory):
        """Symlinks in a data directory that pgBackRest restores as links: pg_wal and the tablespaces."""
        links = [os.path.join(directory, 'pg_wal')]
        tablespaces = os.path.join(directory, 'pg_tblspc')
        if os.path.isdir(tablespaces):
            links += [os.path.join(tablespaces, name) for name in sorted(os.listdir(tablespaces))]
        return [link for link in links if os.path.islink(link)]

    def linked(self):
        return [os.readlink(link) for link in self._linked(self.local)]

    def kept(self):
        return kept_beside(self.local)

    def _rename_with_links(self, source, destination, suffix):
        """Rename a data directory, and each linked directory beside its destination with the same suffix;
        the renamed data directory's links follow."""
        links = [(link, self._link_target(link), os.readlink(link)) for link in self._linked(source)]
        if self.owner is not None:
            # Every directory judged before the first moves: a refusal leaves everything where it was.
            for path in [source] + [target for dummy, target, dummy in links if target and os.path.exists(target)]:
                if _owner_refusal(path, self.owner):
                    raise ChronosError(_owner_refusal(path, self.owner))
        _rename(source, destination, self.owner)
        for link, target, text in links:
            if target and os.path.exists(target):
                _rename(target, target + suffix, self.owner)
            moved_link = os.path.join(destination, os.path.relpath(link, source))
            _relink(moved_link, text + suffix)

    def move_aside(self, stamp, mark=KEPT):
        like = os.stat(self.local)
        kept = self.local + mark + stamp
        self._rename_with_links(self.local, kept, mark + stamp)
        _empty_like(self.local, like)
        return Kept(kept, kept, stamp)

    def put_back(self, kept, stamp):
        current = self.move_aside(stamp, mark=ROLLED_BACK)
        os.rmdir(self.local)
        # The kept copy's links point at <dir>.pre-restore-<stamp>: give those their names back.
        suffix = KEPT + kept.stamp
        _rename(kept.local, self.local, self.owner)
        for link in self._linked(self.local):
            text, target = os.readlink(link), self._link_target(link)
            if text.endswith(suffix) and target:
                original = target[:-len(suffix)]
                if os.path.exists(target) and not os.path.exists(original):
                    _rename(target, original, self.owner)
                _relink(link, text[:-len(suffix)])
        return current

    def remove_kept(self, kept):
        """Delete a kept copy and the linked directories (pg_wal, tablespaces) moved aside with it."""
        suffix = kept.name[len(self.local):]
        owner = os.lstat(kept.local).st_uid if self.owner is None else self.owner
        _refuse_unless_owned(kept.local, os.lstat(kept.local), owner)
        for link in self._linked(kept.local):
            # The links lie in the cluster owner's files: only a directory that owner owns, and that was moved aside
            # with this copy (its suffix), is deleted - nothing the owner could not delete itself.
            target = self._link_target(link)
            if target and target.endswith(suffix) and not _owner_refusal(target, owner) and os.path.isdir(target):
                _remove_tree(target)
        _remove_tree(kept.local)


class VolumeRootPlace(DataPlace):
    """PGDATA is the root of a Docker volume (official image up to PostgreSQL 17)."""

    kind = 'volume'

    def __init__(self, client, volume, local, container):
        super(VolumeRootPlace, self).__init__(local)
        self.client = client
        self.volume = volume
        self.container = container

    def kept(self):
        found = []
        for volume in self.client.volumes.list(filters={'label': '%s=%s' % (KEPT_LABEL, self.volume)}):
            match = _STAMP.search(volume.name)
            if match:
                found.append(Kept(volume.name, volume.attrs['Mountpoint'], match.group(1)))
        return sorted(found, key=lambda kept: kept.stamp)

    def _new_volume(self, name):
        volume = self.client.volumes.create(name=name, driver='local', labels={
            KEPT_LABEL: self.volume, 'chronos.pgbackrest.container': self.container})
        destination = volume.attrs['Mountpoint']
        if not _same_filesystem(self.local, destination):
            volume.remove()
            raise ChronosError('Docker created volume %s on another filesystem than %s: moving the data would be a '
                               'copy. Nothing was moved.' % (name, self.volume))
        like = os.stat(self.local)
        os.chown(destination, like.st_uid, like.st_gid)
        os.chmod(destination, like.st_mode & 0o7777)
        return volume

    def move_aside(self, stamp, mark=KEPT):
        name = '%s%s%s' % (self.volume, mark.replace('.', '-'), stamp)
        volume = self._new_volume(name)
        _move_entries(self.local, volume.attrs['Mountpoint'])
        return Kept(name, volume.attrs['Mountpoint'], stamp)

    def put_back(self, kept, stamp):
        current = self.move_aside(stamp, mark=ROLLED_BACK)
        _move_entries(kept.local, self.local)
        self.client.volumes.get(kept.name).remove()
        return current

    def remove_kept(self, kept):
        self.client.volumes.get(kept.name).remove()


class BindRootPlace(DataPlace):
    """PGDATA is the root of a bind mount: its entries move to a sibling directory on this host."""

    kind = 'bind'

    def kept(self):
        return kept_beside(self.local)

    def move_aside(self, stamp, mark=KEPT):
        like = os.stat(self.local)
        kept = self.local + mark + stamp
        _empty_like(kept, like)
        if not _same_filesystem(self.local, kept):
            os.rmdir(kept)
            raise ChronosError('%s and %s are on different filesystems: moving the data would be a copy. Nothing '
                               'was moved.' % (self.local, kept))
        _move_entries(self.local, kept)
        return Kept(kept, kept, stamp)

    def put_back(self, kept, stamp):
        current = self.move_aside(stamp, mark=ROLLED_BACK)
        _move_entries(kept.local, self.local)
        os.rmdir(kept.local)
        return current


# --- scratch places (the restore drill's): what both drivers' share -----------------------------------------------

MARKER = '# pgbackrest restore drill'


DRILL_LABEL = 'chronos.pgbackrest.drill-for'


# Whether the drill that made a scratch container keeps it: 'yes' or 'no'.
KEEP_LABEL = 'chronos.pgbackrest.drill-keep'


def port_listening(port):
    """Whether something on this machine listens on a TCP port, or has a PostgreSQL socket for it."""
    wanted = ':%04X' % port
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            with open(table) as handle:
                next(handle)
                for line in handle:
                    fields = line.split()
                    if fields[3] == '0A' and fields[1].endswith(wanted):
                        return True
        except (IOError, OSError, StopIteration):
            continue
    try:
        with open('/proc/net/unix') as handle:
            return any(line.rstrip().endswith('/.s.PGSQL.%d' % port) for line in handle)
    except (IOError, OSError):
        return False


KEPT_MESSAGE = ('%s was kept by an earlier drill (keep)%s: a drill never removes what it did not create. Remove it '
                'with playbooks/restore_drill.yml -e pgbackrest_drill_remove=true once done with it, or drill into '
                'another pgbackrest_drill_path and pgbackrest_drill_port')
