# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgbackrest_config's main(): the configuration written for real in tmp_path (on a host, or on the Docker host
through a bind mount), proven with pgbackrest info against captured output before it replaces the live one."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils._host import HostTarget
from ansible_collections.chronos.pgbackrest.plugins.modules import pgbackrest_config

from ansible_collections.chronos.pgbackrest.tests.unit.harness import SECRET_ENVIRONMENT, SECRETS, fails, ok, write_cluster

LAB_SYSID = 7711665496204834485
OTHER_SYSID = 7711666316191427927
OLD = b'[global]\nrepo1-path=/var/lib/pgbackrest\n'
NEW = '[global]\nrepo1-type=s3\nrepo1-cipher-pass=the-passphrase\n\n[chronos-v2]\npg1-path=/var/lib/postgresql/15/main\n'
UID, GID = os.getuid(), os.getgid()


@pytest.fixture
def host_files(tmp_path, monkeypatch):
    """The live configuration and the cluster in tmp_path; the postgres user is this process's user."""
    monkeypatch.setattr(HostTarget, 'user_ids', lambda self, user: (UID, GID))
    config = tmp_path / 'etc' / 'pgbackrest.conf'
    config.parent.mkdir()
    config.write_bytes(OLD)
    os.chmod(str(config), 0o600)
    return dict(config=str(config), pg_path=write_cluster(str(tmp_path / 'main'), LAB_SYSID))


def args(files, **more):
    return dict(dict(stanza='chronos-v2', content=NEW, config=files['config'], pg_path=files['pg_path']), **more)


def read(path):
    with open(path, 'rb') as handle:
        return handle.read()


def test_a_changed_configuration_is_proven_then_installed(run_module, host_files):
    seen = []

    def info(call):
        # The proof reads the repository with the candidate, which is in place by then.
        seen.append(read(host_files['config'] + '.candidate'))
        return ok('info-full-diff-incr.json')
    run = run_module(pgbackrest_config, args(host_files, **SECRETS), [info])
    assert not run.failed, run.msg
    assert (run.result['changed'], run.result['changed_files']) == (True, [host_files['config']])
    assert run.commands == ['info']
    assert '--config=%s.candidate' % host_files['config'] in run.calls[0]['argv']
    assert run.calls[0]['env'] == SECRET_ENVIRONMENT
    assert seen == [NEW.encode()]
    assert read(host_files['config']) == NEW.encode()
    assert oct(os.stat(host_files['config']).st_mode & 0o777) == oct(0o600)
    assert sorted(os.listdir(os.path.dirname(host_files['config']))) == ['pgbackrest.conf']
    # The content holds secrets: it is never part of the result.
    assert 'the-passphrase' not in str(run.result)


def test_a_backup_by_hand_holding_the_file_keeps_it_in_place(run_module, host_files, clock):
    """The wrapper run by hand locks pgbackrest.conf; on a host the new file is a new inode, which a restore would
    lock without waiting for that backup. The change waits for the lock, and gives up saying who holds it."""
    import fcntl
    held = os.open(host_files['config'], os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        run = run_module(pgbackrest_config, args(host_files), [ok('info-one-full.json')])
    finally:
        os.close(held)
    assert run.failed
    assert 'is busy: a backup started by hand (pgbackrest-backup.sh) holds %s (waited 600 s)' % host_files['config'] \
        in run.msg
    assert read(host_files['config']) == OLD
    assert sorted(os.listdir(os.path.dirname(host_files['config']))) == ['pgbackrest.conf']


def test_a_new_repository_without_the_stanza_yet(run_module, host_files):
    run = run_module(pgbackrest_config, args(host_files), [ok('info-missing-stanza.json')])
    assert not run.failed and run.result['changed'] is True


@pytest.mark.parametrize('info, text', [
    ('info-wrong-env.json', 'cipher passphrase (repo1-cipher-pass)'),
    ('info-unreachable.json', "unable to get address for 'nowhere.chronos.lab'"),
    ('info-full-diff-incr.json', "stanza 'chronos-v2' belongs to PostgreSQL 15 with system-id %s" % LAB_SYSID),
], ids=['wrong-passphrase', 'unreachable', 'another-cluster'])
def test_a_failed_proof_leaves_the_live_configuration(run_module, host_files, tmp_path, info, text):
    pg_path = write_cluster(str(tmp_path / 'other'), OTHER_SYSID) if info == 'info-full-diff-incr.json' else None
    run = run_module(pgbackrest_config, args(host_files, **({'pg_path': pg_path} if pg_path else {})), [ok(info)])
    assert run.failed
    assert run.msg.startswith('The new configuration was not installed, the live one is unchanged: ')
    assert text in run.msg
    assert read(host_files['config']) == OLD
    assert sorted(os.listdir(os.path.dirname(host_files['config']))) == ['pgbackrest.conf']


def test_an_unchanged_configuration_is_not_proven_again(run_module, host_files):
    with open(host_files['config'], 'wb') as handle:
        handle.write(NEW.encode())
    inode = os.stat(host_files['config']).st_ino
    run = run_module(pgbackrest_config, args(host_files), [])
    assert (run.failed, run.result['changed'], run.result['changed_files']) == (False, False, [])
    assert run.result['executed_commands'] == []
    assert os.stat(host_files['config']).st_ino == inode


def test_only_the_mode_differs(run_module, host_files):
    with open(host_files['config'], 'wb') as handle:
        handle.write(NEW.encode())
    os.chmod(host_files['config'], 0o644)
    run = run_module(pgbackrest_config, args(host_files), [])
    assert (run.result['changed'], run.result['executed_commands']) == (True, [])
    assert oct(os.stat(host_files['config']).st_mode & 0o777) == oct(0o600)


def test_check_mode_proves_and_writes_nothing(run_module, host_files):
    run = run_module(pgbackrest_config, args(host_files), [], check_mode=True)
    assert (run.failed, run.result['changed'], run.result['changed_files']) == (False, True, [host_files['config']])
    assert read(host_files['config']) == OLD
    assert run.result['executed_commands'] == []


def test_a_missing_configuration_is_created(run_module, host_files, tmp_path):
    config = str(tmp_path / 'new' / 'pgbackrest.conf')
    run = run_module(pgbackrest_config, args(host_files, config=config), [ok('info-one-full.json')])
    assert not run.failed, run.msg
    assert read(config) == NEW.encode()


def test_the_ca_certificate(run_module, host_files, tmp_path):
    ca_path = str(tmp_path / 'ssl' / 'chronos-ca.crt')
    with open(host_files['config'], 'wb') as handle:
        handle.write(NEW.encode())
    run = run_module(pgbackrest_config, args(host_files, ca_cert='-----BEGIN CERTIFICATE-----\n', ca_path=ca_path), [])
    assert (run.result['changed'], run.result['changed_files']) == (True, [ca_path])
    assert read(ca_path) == b'-----BEGIN CERTIFICATE-----\n'
    status = os.stat(ca_path)
    assert (status.st_uid, oct(status.st_mode & 0o777)) == (0, oct(0o644))


def test_a_ca_certificate_needs_a_path(run_module, host_files):
    run = run_module(pgbackrest_config, args(host_files, ca_cert='-----BEGIN CERTIFICATE-----\n'), [])
    assert run.failed and run.msg == 'ca_path is required with ca_cert. Nothing was changed.'
    assert read(host_files['config']) == OLD


def test_in_a_container_a_file_mounted_on_its_own_is_rewritten_in_place(run_module, docker, tmp_path):
    """The guide mounts pgbackrest.conf alone: the container keeps its inode, so it is rewritten, not replaced."""
    conf = tmp_path / 'host' / 'pgbackrest.conf'
    conf.parent.mkdir()
    conf.write_bytes(OLD)
    # As the guide's user makes it before docker run: the container's postgres (999) reads it alone.
    os.chown(str(conf), 999, 999)
    os.chmod(str(conf), 0o600)
    inode = conf.stat().st_ino
    pg_path = '/var/lib/postgresql/data'
    import struct
    container = docker.add_container(
        mounts=[{'Type': 'bind', 'Source': str(conf), 'Destination': '/etc/pgbackrest/pgbackrest.conf'}],
        files={pg_path + '/PG_VERSION': (b'15\n', 999, 999, 0o600),
               pg_path + '/global/pg_control': (struct.pack('=Q', LAB_SYSID) + b'\0' * 8184, 999, 999, 0o600)})
    run = run_module(pgbackrest_config, dict(stanza='chronos-v2', container='chronos-db', content=NEW, pg_path=pg_path),
                     [ok(b'999\n'), ok(b'999\n'),                 # id -u, id -g postgres
                      ok('info-full-diff-incr.json'),            # the proof
                      ok()])                                     # rm -f the candidate
    assert not run.failed, run.msg
    assert run.commands == ['id', 'id', 'info', 'rm']
    assert '--config=/etc/pgbackrest/pgbackrest.conf.candidate' in run.calls[2]['argv']
    # The candidate went into the container (not a mount), then was removed with rm -f.
    assert ('put_archive', 'chronos-db', '/etc/pgbackrest/pgbackrest.conf.candidate') in docker.events
    assert run.calls[3]['argv'] == ['rm', '-f', '/etc/pgbackrest/pgbackrest.conf.candidate']
    assert conf.read_bytes() == NEW.encode() and conf.stat().st_ino == inode
    assert (conf.stat().st_uid, conf.stat().st_gid) == (999, 999)
    assert container.status == 'running'


# --- directories ------------------------------------------------------------------------------------------------

def test_directories_are_made_for_the_postgresql_user(run_module, host_files, tmp_path):
    """A posix repository and the spool directory, made 0750 and owned by the PostgreSQL user when missing."""
    with open(host_files['config'], 'wb') as handle:
        handle.write(NEW.encode())
    (tmp_path / 'spool').mkdir(mode=0o700)
    os.chmod(str(tmp_path / 'spool'), 0o700)
    wanted = [str(tmp_path / 'srv' / 'pgbackrest' / 'repo'), str(tmp_path / 'spool')]
    run = run_module(pgbackrest_config, args(host_files, directories=wanted), [])
    assert not run.failed, run.msg
    assert (run.result['changed'], run.result['changed_files']) == (True, wanted[:1])
    status = os.stat(wanted[0])
    assert (status.st_uid, status.st_gid, oct(status.st_mode & 0o7777)) == (UID, GID, oct(0o750))
    # An existing directory is left as it is.
    assert oct(os.stat(wanted[1]).st_mode & 0o7777) == oct(0o700)
    again = run_module(pgbackrest_config, args(host_files, directories=wanted), [])
    assert (again.result['changed'], again.result['changed_files']) == (False, [])


def test_directories_in_check_mode(run_module, host_files, tmp_path):
    with open(host_files['config'], 'wb') as handle:
        handle.write(NEW.encode())
    wanted = str(tmp_path / 'srv' / 'repo')
    run = run_module(pgbackrest_config, args(host_files, directories=[wanted]), [], check_mode=True)
    assert (run.failed, run.result['changed'], run.result['changed_files']) == (False, True, [wanted])
    assert not os.path.exists(str(tmp_path / 'srv'))


def test_directories_in_a_container(run_module, docker):
    docker.add_container(files={'/etc/pgbackrest/pgbackrest.conf': (NEW.encode(), 999, 998, 0o600)})
    run = run_module(pgbackrest_config, dict(stanza='chronos-v2', container='chronos-db', content=NEW,
                                             pg_path='/var/lib/postgresql/data', directories=['/var/lib/pgbackrest']),
                     [ok(b'999\n'), ok(b'998\n'),               # id -u, id -g postgres
                      fails(1), ok()])                          # test -d, install -d
    assert not run.failed, run.msg
    assert (run.result['changed'], run.result['changed_files']) == (True, ['/var/lib/pgbackrest'])
    assert run.calls[3]['argv'] == ['install', '-d', '-o', '999', '-g', '998', '-m', '750', '/var/lib/pgbackrest']
