# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/module_utils/_places.py on real directories in tmp_path: a data directory moved aside and put back, its
symlinked pg_wal and tablespaces following; the root of a bind mount and of a Docker volume (conftest.FakeDocker,
volumes under tmp_path) emptied without removing the mounted directory itself."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _places
from ansible_collections.chronos.pgbackrest.plugins.module_utils._places import (
    KEPT_LABEL, BindRootPlace, DirectoryPlace, VolumeRootPlace)
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError

FIRST = '20261124T095217Z'
SECOND = '20261124T095255Z'

pytestmark = pytest.mark.usefixtures('owned_by_this_user')


def tree(directory):
    """{relative path: file content, or '-> target' for a link, or '/' for a directory}, links not followed."""
    found = {}
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, directory)
            if os.path.islink(path):
                found[relative] = '-> ' + os.readlink(path)
                if name in dirs:
                    dirs.remove(name)
            elif os.path.isdir(path):
                found[relative] = '/'
            else:
                with open(path) as handle:
                    found[relative] = handle.read()
    return found


def write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as handle:
        handle.write(content)


@pytest.fixture
def cluster(tmp_path):
    """/pg/main, a data directory (0700) with pg_wal linked to /wal/main and a tablespace linked to /ts/one, as
    initdb --waldir and CREATE TABLESPACE leave them (absolute links)."""
    main = tmp_path / 'pg' / 'main'
    write(str(main / 'PG_VERSION'), '15\n')
    write(str(main / 'base' / '1' / '1259'), 'old catalog')
    write(str(tmp_path / 'wal' / 'main' / '000000010000000000000012'), 'old wal')
    write(str(tmp_path / 'ts' / 'one' / 'PG_15_202209061' / '16400'), 'old table')
    os.symlink(str(tmp_path / 'wal' / 'main'), str(main / 'pg_wal'))
    os.makedirs(str(main / 'pg_tblspc'))
    os.symlink(str(tmp_path / 'ts' / 'one'), str(main / 'pg_tblspc' / '16384'))
    os.chmod(str(main), 0o700)
    return tmp_path


def restore_into(cluster, tag):
    """What pgBackRest's restore --link-all leaves in the emptied /pg/main: files, and links to the original
    locations, filled anew."""
    main = cluster / 'pg' / 'main'
    write(str(main / 'PG_VERSION'), '15\n')
    write(str(main / 'base' / '1' / '1259'), '%s catalog' % tag)
    write(str(cluster / 'wal' / 'main' / '000000020000000000000013'), '%s wal' % tag)
    write(str(cluster / 'ts' / 'one' / 'PG_15_202209061' / '16400'), '%s table' % tag)
    os.symlink(str(cluster / 'wal' / 'main'), str(main / 'pg_wal'))
    os.makedirs(str(main / 'pg_tblspc'))
    os.symlink(str(cluster / 'ts' / 'one'), str(main / 'pg_tblspc' / '16384'))


# --- DirectoryPlace -------------------------------------------------------------------------------------

def test_move_aside_renames_the_directory_and_its_linked_directories(cluster):
    main = cluster / 'pg' / 'main'
    place = DirectoryPlace(str(main))
    assert place.linked() == [str(cluster / 'wal' / 'main'), str(cluster / 'ts' / 'one')]
    kept = place.move_aside(FIRST)
    moved = str(main) + '.pre-restore-' + FIRST
    assert (kept.name, kept.local, kept.stamp) == (moved, moved, FIRST)
    # A new empty data directory with the old one's mode; the kept copy is whole, its links follow the renames.
    assert os.listdir(str(main)) == [] and oct(main.stat().st_mode & 0o7777) == oct(0o700)
    assert tree(moved) == {
        'PG_VERSION': '15\n', 'base': '/', 'base/1': '/', 'base/1/1259': 'old catalog',
        'pg_wal': '-> %s/wal/main.pre-restore-%s' % (cluster, FIRST),
        'pg_tblspc': '/', 'pg_tblspc/16384': '-> %s/ts/one.pre-restore-%s' % (cluster, FIRST)}
    assert os.listdir(str(cluster / 'wal')) == ['main.pre-restore-' + FIRST]
    assert os.listdir(str(cluster / 'ts')) == ['one.pre-restore-' + FIRST]
    with open(os.path.join(moved, 'pg_wal', '000000010000000000000012')) as handle:
        assert handle.read() == 'old wal'


NOBODY = 65534


def owned_by_nobody(cluster):
    """The cluster's directories handed to another user, as a database host's are postgres's."""
    for top in ('pg/main', 'wal/main', 'ts/one'):
        for root, dirs, files in os.walk(str(cluster / top)):
            for name in dirs + files + ['.']:
                os.lchown(os.path.join(root, name), NOBODY, NOBODY)


@pytest.mark.skipif(os.geteuid() != 0, reason='hands files to another user')
def test_a_data_directory_swapped_for_a_link_to_roots_is_never_moved(cluster):
    """What the cluster's owner could do before a restore: main made a link to a directory of root's. root moves
    nothing that is not the owner's."""
    owned_by_nobody(cluster)
    roots = cluster / 'etc'
    write(str(roots / 'shadow'), 'root only')
    main = cluster / 'pg' / 'main'
    os.rename(str(main), str(cluster / 'pg' / 'real'))
    os.symlink(str(roots), str(main))
    place = DirectoryPlace(str(main), owner=NOBODY)
    assert place.refusal() == ("%s is not a directory of the cluster's owner (uid %d): root does not move or delete "
                               "it. Nothing was moved." % (roots, NOBODY))
    with pytest.raises(ChronosError, match="is not a directory of the cluster's owner"):
        place.move_aside(FIRST)
    assert os.listdir(str(cluster / 'etc')) == ['shadow']


@pytest.mark.skipif(os.geteuid() != 0, reason='hands files to another user')
def test_a_pg_wal_link_turned_to_a_directory_of_roots_renames_nothing_of_roots(cluster):
    owned_by_nobody(cluster)
    roots = cluster / 'ssl'
    write(str(roots / 'key.pem'), 'root only')
    wal = cluster / 'pg' / 'main' / 'pg_wal'
    os.unlink(str(wal))
    os.symlink(str(roots), str(wal))
    os.lchown(str(wal), NOBODY, NOBODY)
    place = DirectoryPlace(str(cluster / 'pg' / 'main'), owner=NOBODY)
    assert place.refusal().startswith('%s links to %s. %s is not a directory of the cluster' % (wal, roots, roots))
    with pytest.raises(ChronosError):
        place.move_aside(FIRST)
    # Refused before anything moved: the data directory is where it was too.
    assert os.listdir(str(roots)) == ['key.pem'] and os.path.isdir(str(cluster / 'pg' / 'main' / 'base'))


@pytest.mark.skipif(os.geteuid() != 0, reason='hands files to another user')
def test_the_owners_cluster_moves_as_before(cluster):
    owned_by_nobody(cluster)
    place = DirectoryPlace(str(cluster / 'pg' / 'main'), owner=NOBODY)
    assert place.refusal() is None
    kept = place.move_aside(FIRST)
    assert os.path.isdir(kept.local) and os.path.isdir(str(cluster / 'wal' / ('main.pre-restore-' + FIRST)))


def test_put_back_restores_the_names_and_keeps_the_current_data(cluster):
    main = cluster / 'pg' / 'main'
    place = DirectoryPlace(str(main))
    kept = place.move_aside(FIRST)
    restore_into(cluster, 'restored')
    replaced = place.put_back(kept, SECOND)
    rolled_back = str(main) + '.rolled-back-' + SECOND
    assert (replaced.name, replaced.stamp) == (rolled_back, SECOND)
    # The old data is back under its names, links included...
    assert tree(str(main)) == {
        'PG_VERSION': '15\n', 'base': '/', 'base/1': '/', 'base/1/1259': 'old catalog',
        'pg_wal': '-> %s/wal/main' % cluster, 'pg_tblspc': '/', 'pg_tblspc/16384': '-> %s/ts/one' % cluster}
    with open(str(main / 'pg_wal' / '000000010000000000000012')) as handle:
        assert handle.read() == 'old wal'
    with open(str(main / 'pg_tblspc' / '16384' / 'PG_15_202209061' / '16400')) as handle:
        assert handle.read() == 'old table'
    # ...and the restored data is kept beside it, with its own linked directories.
    assert tree(rolled_back)['pg_wal'] == '-> %s/wal/main.rolled-back-%s' % (cluster, SECOND)
    with open(os.path.join(rolled_back, 'pg_wal', '000000020000000000000013')) as handle:
        assert handle.read() == 'restored wal'
    assert sorted(os.listdir(str(cluster / 'wal'))) == ['main', 'main.rolled-back-' + SECOND]
    assert sorted(os.listdir(str(cluster / 'pg'))) == ['main', 'main.rolled-back-' + SECOND]


def test_kept_lists_both_kinds_oldest_first(cluster):
    main = cluster / 'pg' / 'main'
    place = DirectoryPlace(str(main))
    kept = place.move_aside(SECOND)
    restore_into(cluster, 'restored')
    place.put_back(kept, '20261124T110000Z')
    restore_into_again = place.move_aside(FIRST)        # an older stamp, made later: the stamp orders
    os.makedirs(str(cluster / 'pg' / 'main.pre-restore-notastamp'))
    os.makedirs(str(cluster / 'pg' / ('other.pre-restore-' + FIRST)))
    write(str(cluster / 'pg' / ('main.pre-restore-' + '20261124T120000Z')), 'a file, not a kept directory')
    assert [(found.name, found.stamp) for found in place.kept()] == [
        (restore_into_again.name, FIRST), (str(main) + '.rolled-back-20261124T110000Z', '20261124T110000Z')]


def test_find_kept_by_name_path_or_stamp(cluster):
    place = DirectoryPlace(str(cluster / 'pg' / 'main'))
    kept = place.move_aside(FIRST)
    for name in (kept.name, kept.local, FIRST):
        assert place.find_kept(name).local == kept.local


def test_find_kept_unknown(cluster):
    place = DirectoryPlace(str(cluster / 'pg' / 'main'))
    with pytest.raises(ChronosError, match="^No kept data directory 'x'. Kept: none.$"):
        place.find_kept('x')
    kept = place.move_aside(FIRST)
    with pytest.raises(ChronosError, match="^No kept data directory 'x'. Kept: %s.$" % kept.name):
        place.find_kept('x')


def test_a_symlinked_data_directory_is_kept_where_it_really_is(cluster):
    os.symlink(str(cluster / 'pg' / 'main'), str(cluster / 'pgdata'))
    place = DirectoryPlace(str(cluster / 'pgdata'))
    place.move_aside(FIRST)
    assert os.readlink(str(cluster / 'pgdata')) == str(cluster / 'pg' / 'main')
    assert os.path.isdir(str(cluster / 'pg' / ('main.pre-restore-' + FIRST)))


def test_a_data_directory_without_links(tmp_path):
    write(str(tmp_path / 'main' / 'PG_VERSION'), '15\n')
    place = DirectoryPlace(str(tmp_path / 'main'))
    assert place.linked() == []
    place.move_aside(FIRST)
    assert sorted(os.listdir(str(tmp_path))) == ['main', 'main.pre-restore-' + FIRST]


def test_a_linked_directory_already_gone(cluster):
    """A pg_wal link whose directory vanished is relinked, not an error."""
    import shutil
    shutil.rmtree(str(cluster / 'ts' / 'one'))
    place = DirectoryPlace(str(cluster / 'pg' / 'main'))
    kept = place.move_aside(FIRST)
    assert os.readlink(os.path.join(kept.local, 'pg_tblspc', '16384')) == '%s/ts/one.pre-restore-%s' % (cluster, FIRST)


def test_a_relative_pg_wal_link_follows_the_move(cluster, monkeypatch):
    """A relative link is resolved against its own directory, wherever the process runs, and stays relative."""
    main = cluster / 'pg' / 'main'
    os.unlink(str(main / 'pg_wal'))
    os.symlink('../../wal/main', str(main / 'pg_wal'))
    monkeypatch.chdir('/')
    place = DirectoryPlace(str(main))
    assert place.refusal() is None
    kept = place.move_aside(FIRST)
    assert os.readlink(os.path.join(kept.local, 'pg_wal')) == '../../wal/main.pre-restore-' + FIRST
    with open(os.path.join(kept.local, 'pg_wal', '000000010000000000000012')) as handle:
        assert handle.read() == 'old wal'
    assert os.listdir(str(cluster / 'wal')) == ['main.pre-restore-' + FIRST]
    restore_into(cluster, 'restored')
    place.put_back(kept, SECOND)
    assert os.readlink(str(main / 'pg_wal')) == '../../wal/main'
    with open(str(main / 'pg_wal' / '000000010000000000000012')) as handle:
        assert handle.read() == 'old wal'
    assert sorted(os.listdir(str(cluster / 'wal'))) == ['main', 'main.rolled-back-' + SECOND]


def through(tmp_path):
    """local_path of a machine that reaches the data directory's /srv through tmp_path/host/srv (a container's
    mount), and nothing else."""
    def local_path(path):
        return str(tmp_path / 'host') + path if path == '/srv' or path.startswith('/srv/') else None
    return local_path


@pytest.fixture
def translated(tmp_path):
    """A data directory whose pg_wal link names /srv/wal/main, which lies at tmp_path/host/srv/wal/main here."""
    main = tmp_path / 'host' / 'srv' / 'pg' / 'main'
    write(str(main / 'PG_VERSION'), '15\n')
    write(str(tmp_path / 'host' / 'srv' / 'wal' / 'main' / '000000010000000000000012'), 'old wal')
    os.symlink('/srv/wal/main', str(main / 'pg_wal'))
    return main


def test_a_translated_link_is_followed_where_it_lies_here(tmp_path, translated):
    place = DirectoryPlace(str(translated), through(tmp_path))
    assert place.refusal() is None
    kept = place.move_aside(FIRST)
    wal = tmp_path / 'host' / 'srv' / 'wal'
    assert os.listdir(str(wal)) == ['main.pre-restore-' + FIRST]
    # The link keeps naming the path as the data directory's own machine sees it.
    assert os.readlink(os.path.join(kept.local, 'pg_wal')) == '/srv/wal/main.pre-restore-' + FIRST
    write(str(translated / 'PG_VERSION'), '15\n')
    os.symlink('/srv/wal/main', str(translated / 'pg_wal'))
    os.makedirs(str(wal / 'main'))
    place.put_back(kept, SECOND)
    assert os.readlink(str(translated / 'pg_wal')) == '/srv/wal/main'
    with open(str(wal / 'main' / '000000010000000000000012')) as handle:
        assert handle.read() == 'old wal'
    assert sorted(os.listdir(str(wal))) == ['main', 'main.rolled-back-' + SECOND]


def test_a_link_this_machine_cannot_reach_is_refused(tmp_path, translated):
    os.unlink(str(translated / 'pg_wal'))
    os.symlink('/elsewhere/wal', str(translated / 'pg_wal'))
    place = DirectoryPlace(str(translated), through(tmp_path))
    assert place.refusal() == ('%s/pg_wal links to /elsewhere/wal, which lies outside the volumes this machine can '
                               'reach: it cannot be kept aside with the data directory.' % translated)


def test_a_container_pg_wal_link_never_renames_a_directory_of_the_docker_host(tmp_path, docker):
    """PostgreSQL 18's image layout (volume at /var/lib/postgresql, PGDATA below it) with pg_wal linked to
    /srv/wal in the container; /srv/wal also exists on the Docker host (here: under tmp_path, same string)."""
    from ansible_collections.chronos.pgbackrest.plugins.module_utils._container import ContainerTarget
    source = tmp_path / 'volume'
    write(str(source / '18' / 'docker' / 'PG_VERSION'), '18\n')
    host_directory = tmp_path / 'srv' / 'wal'
    write(str(host_directory / 'not-postgresql'), 'the Docker host\'s own file')
    os.symlink(str(host_directory), str(source / '18' / 'docker' / 'pg_wal'))
    docker.add_container(mounts=[{'Type': 'volume', 'Name': 'pg', 'Source': str(source),
                                  'Destination': '/var/lib/postgresql', 'Driver': 'local'}])
    place = ContainerTarget('chronos-db', client=docker).data_place('/var/lib/postgresql/18/docker')
    assert 'lies outside the volumes this machine can reach' in place.refusal()
    place.move_aside(FIRST)
    assert os.listdir(str(host_directory)) == ['not-postgresql']


def test_a_container_pg_wal_link_within_its_volume_follows_the_move(tmp_path, docker):
    """pg_wal linked to /var/lib/postgresql/wal/18 in the container, on the same volume as PGDATA."""
    from ansible_collections.chronos.pgbackrest.plugins.module_utils._container import ContainerTarget
    source = tmp_path / 'volume'
    write(str(source / '18' / 'docker' / 'PG_VERSION'), '18\n')
    write(str(source / 'wal' / '18' / '000000010000000000000012'), 'old wal')
    os.symlink('/var/lib/postgresql/wal/18', str(source / '18' / 'docker' / 'pg_wal'))
    docker.add_container(mounts=[{'Type': 'volume', 'Name': 'pg', 'Source': str(source),
                                  'Destination': '/var/lib/postgresql', 'Driver': 'local'}])
    place = ContainerTarget('chronos-db', client=docker).data_place('/var/lib/postgresql/18/docker')
    assert place.refusal() is None
    kept = place.move_aside(FIRST)
    assert os.listdir(str(source / 'wal')) == ['18.pre-restore-' + FIRST]
    assert os.readlink(os.path.join(kept.local, 'pg_wal')) == '/var/lib/postgresql/wal/18.pre-restore-' + FIRST


def test_a_link_to_a_mount_point_is_refused(cluster, monkeypatch):
    wal = str(cluster / 'wal' / 'main')
    monkeypatch.setattr(_places.os.path, 'ismount', lambda path: path == wal)
    assert DirectoryPlace(str(cluster / 'pg' / 'main')).refusal() is not None


def test_refusal_of_a_mount_point(cluster, monkeypatch):
    main = str(cluster / 'pg' / 'main')
    monkeypatch.setattr(_places.os.path, 'ismount', lambda path: path == main)
    place = DirectoryPlace(main)
    assert place.refusal() == ('%s is a mount point: its files cannot be renamed aside on their filesystem. Mount the '
                               'filesystem one level up (PGDATA a directory inside it), or restore by hand.' % main)
    monkeypatch.setattr(_places.os.path, 'ismount', lambda path: False)
    assert place.refusal() is None


def test_what_is_in_the_directory(cluster, tmp_path):
    place = DirectoryPlace(str(cluster / 'pg' / 'main'))
    assert (place.has_cluster(), place.is_empty(), place.exists('pg_wal'), place.exists('backup.manifest')) == (
        True, False, True, False)
    # Links are not followed: the WAL and the tablespace do not count.
    assert place.usage() == len('15\n') + len('old catalog')
    assert place.free() > 0
    missing = DirectoryPlace(str(tmp_path / 'missing'))
    assert (missing.has_cluster(), missing.is_empty()) == (False, True)
    assert missing.free() > 0            # measured on the parent


def test_the_guard_keeps_an_entrypoint_from_making_a_new_cluster(cluster):
    """After the move aside: PG_VERSION (an entrypoint then finds "a database" and initialises nothing, and PostgreSQL
    stops at once without pg_control) and a note saying why, owned like the directory."""
    main = cluster / 'pg' / 'main'
    place = DirectoryPlace(str(main))
    kept = place.move_aside(FIRST)
    assert not place.guarded()
    place.guard(kept)
    assert sorted(os.listdir(str(main))) == sorted([_places.GUARD_NOTE, 'PG_VERSION'])
    with open(str(main / 'PG_VERSION')) as handle:
        assert handle.read() == '15\n'
    assert place.guarded() and not place.is_empty()
    assert oct(os.stat(str(main / 'PG_VERSION')).st_mode & 0o777) == oct(0o600)
    # Anything else in the directory (pgBackRest's restore began) and it is no longer just the guard.
    write(str(main / 'backup.manifest'), '{}')
    assert not place.guarded()


def test_the_guard_is_never_written_through_a_link(cluster, tmp_path):
    main = cluster / 'pg' / 'main'
    place = DirectoryPlace(str(main))
    kept = place.move_aside(FIRST)
    os.symlink(str(tmp_path / 'elsewhere'), str(main / _places.GUARD_NOTE))
    with pytest.raises(OSError):
        place.guard(kept)
    assert not os.path.exists(str(tmp_path / 'elsewhere'))


def test_remove_kept_deletes_a_kept_copy_and_its_linked_directories(cluster):
    main = cluster / 'pg' / 'main'
    place = DirectoryPlace(str(main))
    kept = place.move_aside(FIRST)
    restore_into(cluster, 'new')
    place.remove_kept(place.find_kept(FIRST))
    assert place.kept() == []
    assert os.listdir(str(cluster / 'wal')) == ['main'] and os.listdir(str(cluster / 'ts')) == ['one']
    assert tree(str(main))['base/1/1259'] == 'new catalog'
    assert kept.name not in os.listdir(str(cluster / 'pg'))


def test_kept_copies_say_their_size_and_age(cluster, clock):
    place = DirectoryPlace(str(cluster / 'pg' / 'main'))
    place.move_aside('20261124T095255Z')
    kept = place.kept()[0].as_dict()
    assert (kept['bytes'], kept['age_seconds']) == (len('15\n') + len('old catalog'), int(clock.now) - 1795513975)


# --- BindRootPlace ----------------------------------------------------------------------------------------

@pytest.fixture
def bind_root(tmp_path):
    """The source of a bind mount that is PGDATA: the directory itself must stay (the container mounts it)."""
    source = tmp_path / 'srv' / 'pgdata'
    write(str(source / 'PG_VERSION'), '15\n')
    write(str(source / 'base' / '1' / '1259'), 'old catalog')
    os.chmod(str(source), 0o700)
    return source


def test_bind_root_moves_entries_and_keeps_the_mounted_directory(bind_root):
    inode = bind_root.stat().st_ino
    place = BindRootPlace(str(bind_root))
    kept = place.move_aside(FIRST)
    assert kept.local == str(bind_root) + '.pre-restore-' + FIRST
    assert os.listdir(str(bind_root)) == [] and bind_root.stat().st_ino == inode
    assert tree(kept.local) == {'PG_VERSION': '15\n', 'base': '/', 'base/1': '/', 'base/1/1259': 'old catalog'}
    assert oct(os.stat(kept.local).st_mode & 0o7777) == oct(0o700)
    assert [found.name for found in place.kept()] == [kept.name]


def test_bind_root_put_back(bind_root):
    place = BindRootPlace(str(bind_root))
    kept = place.move_aside(FIRST)
    write(str(bind_root / 'PG_VERSION'), 'restored\n')
    inode = bind_root.stat().st_ino
    replaced = place.put_back(kept, SECOND)
    assert tree(str(bind_root)) == {'PG_VERSION': '15\n', 'base': '/', 'base/1': '/', 'base/1/1259': 'old catalog'}
    assert bind_root.stat().st_ino == inode
    assert not os.path.exists(kept.local)
    assert tree(replaced.local) == {'PG_VERSION': 'restored\n'}
    assert replaced.local == str(bind_root) + '.rolled-back-' + SECOND


def test_bind_root_on_another_filesystem_moves_nothing(bind_root, monkeypatch):
    monkeypatch.setattr(_places, '_same_filesystem', lambda one, other: False)
    with pytest.raises(ChronosError) as raised:
        BindRootPlace(str(bind_root)).move_aside(FIRST)
    assert raised.value.msg.endswith('are on different filesystems: moving the data would be a copy. Nothing was moved.')
    assert sorted(os.listdir(str(bind_root))) == ['PG_VERSION', 'base']
    assert os.listdir(str(bind_root.parent)) == ['pgdata']


# --- VolumeRootPlace --------------------------------------------------------------------------------------

@pytest.fixture
def volume_root(docker):
    """Volume pgdata, PGDATA its root (the official image up to PostgreSQL 17); its files under tmp_path."""
    local = docker.add_volume('pgdata').attrs['Mountpoint']
    write(os.path.join(local, 'PG_VERSION'), '15\n')
    write(os.path.join(local, 'base', '1', '1259'), 'old catalog')
    os.chmod(local, 0o700)
    return local


def test_volume_root_moves_entries_into_a_new_volume(docker, volume_root):
    inode = os.stat(volume_root).st_ino
    place = VolumeRootPlace(docker, 'pgdata', volume_root, 'chronos-db')
    kept = place.move_aside(FIRST)
    name = 'pgdata-pre-restore-' + FIRST
    volume = docker.volumes.get(name)
    assert (kept.name, kept.local, kept.stamp) == (name, volume.attrs['Mountpoint'], FIRST)
    assert volume.attrs['Labels'] == {KEPT_LABEL: 'pgdata', 'chronos.pgbackrest.container': 'chronos-db'}
    assert tree(kept.local) == {'PG_VERSION': '15\n', 'base': '/', 'base/1': '/', 'base/1/1259': 'old catalog'}
    assert os.listdir(volume_root) == [] and os.stat(volume_root).st_ino == inode
    assert oct(os.stat(kept.local).st_mode & 0o7777) == oct(0o700)
    assert [(found.name, found.stamp) for found in place.kept()] == [(name, FIRST)]


def test_volume_root_kept_lists_only_this_volumes_copies(docker, volume_root):
    docker.volumes.create('other-pre-restore-' + FIRST, labels={KEPT_LABEL: 'other'})
    docker.volumes.create('pgdata-pre-restore-nostamp', labels={KEPT_LABEL: 'pgdata'})
    place = VolumeRootPlace(docker, 'pgdata', volume_root, 'chronos-db')
    place.move_aside(SECOND)
    place.move_aside(FIRST)
    assert [found.name for found in place.kept()] == ['pgdata-pre-restore-' + FIRST, 'pgdata-pre-restore-' + SECOND]


def test_volume_root_put_back(docker, volume_root):
    place = VolumeRootPlace(docker, 'pgdata', volume_root, 'chronos-db')
    kept = place.move_aside(FIRST)
    write(os.path.join(volume_root, 'PG_VERSION'), 'restored\n')
    replaced = place.put_back(place.find_kept(FIRST), SECOND)
    assert tree(volume_root) == {'PG_VERSION': '15\n', 'base': '/', 'base/1': '/', 'base/1/1259': 'old catalog'}
    assert replaced.name == 'pgdata-rolled-back-' + SECOND
    assert tree(replaced.local) == {'PG_VERSION': 'restored\n'}
    # The emptied kept volume is removed; the rolled-back one is kept, and listed.
    assert ('volume-remove', kept.name) in docker.events
    assert [found.name for found in place.kept()] == [replaced.name]


def test_volume_root_on_another_filesystem_moves_nothing(docker, volume_root, monkeypatch):
    monkeypatch.setattr(_places, '_same_filesystem', lambda one, other: False)
    with pytest.raises(ChronosError) as raised:
        VolumeRootPlace(docker, 'pgdata', volume_root, 'chronos-db').move_aside(FIRST)
    assert raised.value.msg == ('Docker created volume pgdata-pre-restore-%s on another filesystem than pgdata: moving '
                                'the data would be a copy. Nothing was moved.' % FIRST)
    assert [volume.name for volume in docker.volumes.list()] == ['pgdata']
    assert sorted(os.listdir(volume_root)) == ['PG_VERSION', 'base']


def test_volume_root_remove_kept_removes_its_volume(docker, volume_root):
    place = VolumeRootPlace(docker, 'pgdata', volume_root, 'chronos-db')
    place.move_aside(FIRST)
    place.remove_kept(place.find_kept(FIRST))
    assert [volume.name for volume in docker.volumes.list()] == ['pgdata'] and place.kept() == []


# --- disk usage ---------------------------------------------------------------------------------------------

def test_disk_usage_counts_files_not_links(cluster):
    assert _places.disk_usage(str(cluster / 'pg')) == len('15\n') + len('old catalog')
    assert _places.disk_usage(str(cluster / 'missing')) == 0
