# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgbackrest_target_info's main(): the preflight facts of a host or a container, and every refusal, from PostgreSQL's
and pgBackRest's answers faked at the target seam."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils._host import HostTarget
from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import backup_settings, restore_settings
from ansible_collections.chronos.pgbackrest.plugins.modules import pgbackrest_target_info

from ansible_collections.chronos.pgbackrest.tests.unit.harness import fails, fixture_bytes, ok, psql_rows

DATA = '/var/lib/postgresql/15/main'
SERVER = ok(psql_rows((DATA, '150018', 't')))
UNSUPPORTED = fails(32, b'')                   # pgBackRest built without that compress type
SUPPORTED = fails(37, b'')                     # past compress-type: pg1-path missing for the probe stanza
CONFIG = '/etc/pgbackrest/pgbackrest.conf'


DF = ok('df-pg-wal.out')
# The captured df: a 264212084 KiB filesystem, of which archive-push-queue-max is a quarter, in whole MiB.
QUEUE_MAX = 264212084 * 1024 // 4 // 2 ** 20 * 2 ** 20
OFFICIAL_PID = b'1\n/var/lib/postgresql/data\n1795513991\n5432\n/var/run/postgresql\n*\n'


@pytest.fixture(autouse=True)
def postgres_user(monkeypatch):
    monkeypatch.setattr(HostTarget, 'user_ids', lambda self, user: (101, 104))


@pytest.fixture(autouse=True)
def postmaster_pid_file(monkeypatch):
    """On a host, the captured postmaster.pid of the lab's database host (PostgreSQL is not PID 1 there)."""
    real = HostTarget.read_file

    def read_file(self, path):
        return fixture_bytes('datadir-main.postmaster.pid') if path == DATA + '/postmaster.pid' else real(self, path)
    monkeypatch.setattr(HostTarget, 'read_file', read_file)


def host_answers(version=b'pgBackRest 2.45\n', probes=(SUPPORTED, SUPPORTED, SUPPORTED)):
    return [ok(), SERVER, ok(version), DF] + list(probes)


def test_host_facts(run_module):
    run = run_module(pgbackrest_target_info, dict(pg_path=DATA + '/', pg_version='15'), host_answers(), check_mode=True)
    assert not run.failed, run.msg
    assert run.result['changed'] is False
    assert run.commands == ['pg_isready', 'psql', 'version', 'df', 'backup', 'backup', 'backup']
    target = dict(run.result['target'])
    backup = target.pop('backup')
    assert backup.pop('process_max') >= 1
    restore = target.pop('restore')
    assert restore['process_max'] >= 4 and restore['process_max_reason'].startswith('a restore from S3 waits')
    assert backup == dict(compress_type='zst', repo_block=False,
                          compress_reason='The fastest compression this pgBackRest was built with (zst, lz4, gz)',
                          repo_block_reason='it needs pgBackRest 2.46 or later, this is 2.45')
    assert target.pop('archive') == {
        'async': True, 'postmaster_pid': 5348, 'queue_max': QUEUE_MAX, 'wal_filesystem_size': 264212084 * 1024,
        'async_reason': "PostgreSQL is not PID 1 of this host: the process asynchronous archive-push "
                        "detaches is reaped by PID 1, not by PostgreSQL",
        'queue_max_reason': 'a quarter of the 252 GiB filesystem that holds pg_wal'}
    assert target == dict(kind='host', name='this host', pg_path=DATA, pg_version='15', pg_user='postgres',
                          os_user='postgres', uid=101, gid=104, pgbackrest_version='2.45',
                          compress_types=['zst', 'lz4', 'gz'], block_incremental=False, config_mount='host',
                          config_host_path=CONFIG)


def test_compress_types_probe(run_module):
    run = run_module(pgbackrest_target_info, {}, host_answers(probes=(UNSUPPORTED, SUPPORTED, SUPPORTED)))
    assert run.result['target']['compress_types'] == ['lz4', 'gz']
    probes = [call['argv'] for call in run.calls[4:]]
    assert probes == [['pgbackrest', '--stanza=probe', '--compress-type=%s' % kind, '--log-level-console=error',
                       '--log-level-file=off', '--log-level-stderr=off', 'backup'] for kind in ('zst', 'lz4', 'gz')]


@pytest.mark.parametrize('version, block', [(b'pgBackRest 2.46\n', True), (b'pgBackRest 2.55.1\n', True),
                                            (b'pgBackRest 2.45\n', False)])
def test_block_incremental_from_246(run_module, version, block):
    run = run_module(pgbackrest_target_info, {}, host_answers(version=version))
    assert run.result['target']['block_incremental'] is block


@pytest.mark.parametrize('asked, version, block, reason', [
    (dict(repo_type='posix'), '2.51', True, 'a changed file stores only its changed blocks (pgBackRest 2.51)'),
    (dict(), '2.51', False, "from S3 a restore fetches a block-incremental file's blocks one request after another, "
                            "so its time grows with the round trip to the bucket (docs/benchmark.md); set "
                            "pgbackrest_repo_block: true where the repository's size matters more than restore time"),
    (dict(repo_type='s3', repo_block='true'), '2.51', True,
     'a changed file stores only its changed blocks (pgBackRest 2.51)'),
    (dict(repo_type='posix', repo_bundle=False), '2.51', False, 'it needs bundling (pgbackrest_repo_bundle)'),
    (dict(repo_type='posix'), '2.45', False, 'it needs pgBackRest 2.46 or later, this is 2.45'),
    (dict(repo_block='false'), '2.51', False, None),
    (dict(repo_block='true'), '2.45', True, 'a changed file stores only its changed blocks (pgBackRest 2.45)'),
])
def test_block_incremental_setting(asked, version, block, reason):
    settings = backup_settings(version, ['lz4', 'gz'], 8, **asked)
    assert (settings['repo_block'], settings['repo_block_reason']) == (block, reason)


@pytest.mark.parametrize('repo_type, cpus, asked, process_max, reason', [
    ('s3', 2, 0, 8, 'a restore from S3 waits on round trips to the bucket, not on the CPUs: 8 processes for 2 CPUs '
                    '(4 per CPU, at most 16)'),
    ('s3', 1, 0, 4, 'a restore from S3 waits on round trips to the bucket, not on the CPUs: 4 processes for 1 CPU '
                    '(4 per CPU, at most 16)'),
    ('s3', 64, 0, 16, 'a restore from S3 waits on round trips to the bucket, not on the CPUs: 16 processes for 64 CPUs '
                      '(4 per CPU, at most 16)'),
    ('posix', 6, 0, 6, 'a restore runs while PostgreSQL is stopped: one process per CPU (6)'),
    ('s3', 2, 3, 3, None),
])
def test_restore_processes(repo_type, cpus, asked, process_max, reason):
    assert restore_settings(repo_type, cpus, asked) == dict(process_max=process_max, process_max_reason=reason)


@pytest.mark.parametrize('asked, compress_type, process_max', [
    (dict(), 'lz4', 4), (dict(compress_type='gz', process_max=3), 'gz', 3)])
def test_compression_and_processes(asked, compress_type, process_max):
    settings = backup_settings('2.51', ['lz4', 'gz'], 8, **asked)
    assert (settings['compress_type'], settings['process_max']) == (compress_type, process_max)
    assert (settings['compress_reason'] is None) == ('compress_type' in asked)


def test_binary_option(run_module):
    run = run_module(pgbackrest_target_info, dict(binary='/opt/pgbackrest/bin/pgbackrest'), host_answers())
    assert [call['argv'][0] for call in run.calls[2:] if call['argv'][0] != 'df'] == ['/opt/pgbackrest/bin/pgbackrest'] * 4


REFUSALS = [
    ('not-ready', dict(), [fails(2)],
     'PostgreSQL does not accept connections on this host (socket directory /var/run/postgresql, port 5432): start it, '
     'or set pgbackrest_pg_port and pgbackrest_pg_socket_path, and run again. Nothing was changed.'),
    ('role-missing', dict(pg_user='chronos'), [ok(), fails(2, b'psql: error: connection to server on socket '
                                                              b'"/var/run/postgresql/.s.PGSQL.5432" failed: FATAL:  role '
                                                              b'"chronos" does not exist\n')],
     "PostgreSQL on this host has no role chronos to connect as: set pgbackrest_pg_user to a superuser (in the official "
     "postgres image, the container's POSTGRES_USER). Nothing was changed."),
    ('not-superuser', dict(pg_user='app'), [ok(), ok(psql_rows((DATA, '150018', 'f')))],
     'Role app on this host is not a superuser: pgBackRest and ALTER SYSTEM need one. Set pgbackrest_pg_user to a '
     'superuser. Nothing was changed.'),
    ('pg-path-mismatch', dict(pg_path='/var/lib/postgresql/16/main'), [ok(), SERVER],
     'pgbackrest_pg_path /var/lib/postgresql/16/main is not the data directory PostgreSQL runs with on this host '
     '(%s): set it to that, or leave it unset. Nothing was changed.' % DATA),
    ('pg-version-mismatch', dict(pg_version='16'), [ok(), SERVER],
     'The inventory says PostgreSQL 16 (pgbackrest_pg_version), but this host runs PostgreSQL 15: correct it, or leave '
     'it unset. Nothing was changed.'),
    ('pgbackrest-missing', dict(), [ok(), SERVER,
                                    fails(127, b'runuser: failed to execute pgbackrest: No such file or directory\n')],
     'pgBackRest does not run on this host (runuser: failed to execute pgbackrest: No such file or directory). Install '
     'pgbackrest. Nothing was changed.'),
]


@pytest.mark.parametrize('case, args, answers, msg', REFUSALS, ids=[row[0] for row in REFUSALS])
def test_refusals(run_module, case, args, answers, msg):
    run = run_module(pgbackrest_target_info, args, answers)
    assert run.failed
    assert run.msg == msg


def test_another_connection_error_is_passed_on(run_module):
    run = run_module(pgbackrest_target_info, {}, [ok(), fails(2, b'psql: error: FATAL:  the database system is '
                                                                 b'starting up\n')])
    assert run.failed
    assert run.msg == ('Unable to connect to PostgreSQL: psql on this host exited 2: psql: error: FATAL:  the database '
                       'system is starting up')


# --- containers ------------------------------------------------------------------------------------------

def container_answers(probes=(SUPPORTED, UNSUPPORTED, SUPPORTED)):
    return [ok(), ok(psql_rows(('/var/lib/postgresql/data', '170002', 't'))), ok(b'pgBackRest 2.55.1\n'),
            ok(b'999\n'), ok(b'999\n'), DF] + list(probes)


def official(**settings):
    """The official image's PostgreSQL, PID 1 of its container (postmaster.pid says so)."""
    return dict(settings, files={'/var/lib/postgresql/data/postmaster.pid': (OFFICIAL_PID, 999, 999, 0o600)})


@pytest.fixture
def conf(tmp_path):
    path = tmp_path / 'host' / 'pgbackrest.conf'
    path.parent.mkdir()
    path.write_text('[global]\n')
    return path


def bind(source, destination):
    return {'Type': 'bind', 'Source': str(source), 'Destination': destination}


def test_container_facts_with_the_configuration_mounted_alone(run_module, docker, conf):
    docker.add_container(**official(env=['POSTGRES_USER=chronos', 'PGDATA=/var/lib/postgresql/data'],
                                    mounts=[bind(conf, CONFIG)]))
    run = run_module(pgbackrest_target_info, dict(container='chronos-db'), container_answers())
    assert not run.failed, run.msg
    target = run.result['target']
    assert (target['archive']['postmaster_pid'], target['archive']['async']) == (1, False)
    assert target['archive']['async_reason'] == (
        "PostgreSQL is PID 1 of container 'chronos-db': the process asynchronous archive-push detaches would be reaped "
        "by PostgreSQL, which takes its failure for a crash and restarts")
    assert (target['kind'], target['name'], target['pg_version'], target['pg_user'], target['uid'], target['gid']) == (
        'container', "container 'chronos-db'", '17', 'chronos', 999, 999)
    assert (target['config_mount'], target['config_host_path']) == ('file', str(conf))
    assert (target['pgbackrest_version'], target['block_incremental'], target['compress_types']) == (
        '2.55.1', True, ['zst', 'gz'])
    assert all(call['where'] == 'chronos-db' for call in run.calls)
    assert '-U' in run.calls[1]['argv'] and run.calls[1]['argv'][run.calls[1]['argv'].index('-U') + 1] == 'chronos'


def test_container_with_the_configuration_directory_mounted(run_module, docker, conf):
    docker.add_container(mounts=[bind(conf.parent, '/etc/pgbackrest')])
    run = run_module(pgbackrest_target_info, dict(container='chronos-db'), container_answers())
    assert (run.result['target']['config_mount'], run.result['target']['config_host_path']) == ('directory', str(conf))


def test_container_not_running(run_module, docker):
    docker.add_container(status='exited')
    run = run_module(pgbackrest_target_info, dict(container='chronos-db'))
    assert run.failed
    assert run.msg == ("Container 'chronos-db' is not running (status exited): start it (docker start chronos-db) and "
                       "run again. Nothing was changed.")


def test_container_without_pgbackrest(run_module, docker, conf):
    docker.add_container(mounts=[bind(conf, CONFIG)])
    run = run_module(pgbackrest_target_info, dict(container='chronos-db'), container_answers()[:2] + [
        fails(126, b'OCI runtime exec failed: exec: "pgbackrest": executable file not found in $PATH\n')])
    assert run.failed
    assert run.msg.endswith("Install it in the container's image (for example apt-get install pgbackrest in its "
                            "Dockerfile) and recreate the container. Nothing was changed.")


def test_container_without_the_configuration_mounted(run_module, docker):
    docker.add_container(mounts=[])
    run = run_module(pgbackrest_target_info, dict(container='chronos-db'), container_answers()[:5])
    assert run.failed
    assert run.msg.startswith("Container 'chronos-db' does not mount %s from this host: the role writes it on the Docker "
                              "host." % CONFIG)


def test_container_configuration_on_a_read_only_filesystem(run_module, docker, conf, monkeypatch):
    docker.add_container(mounts=[bind(conf, CONFIG)])
    real = os.statvfs

    def statvfs(path):
        result = real(path)
        if path == str(conf):
            return type('StatVFS', (), dict(f_flag=result.f_flag | os.ST_RDONLY))()
        return result
    monkeypatch.setattr(os, 'statvfs', statvfs)
    run = run_module(pgbackrest_target_info, dict(container='chronos-db'), container_answers()[:5])
    assert run.failed
    assert run.msg == ('%s, mounted into container chronos-db as %s, is on a read-only filesystem of this host: the '
                       'role cannot write the configuration. Nothing was changed.' % (conf, CONFIG))


def test_container_configuration_mount_that_is_not_a_file(run_module, docker, conf):
    conf.unlink()
    conf.mkdir()        # docker run -v creates a directory where the source was missing
    docker.add_container(mounts=[bind(conf, CONFIG)])
    run = run_module(pgbackrest_target_info, dict(container='chronos-db'), container_answers()[:5])
    assert run.failed
    assert run.msg == ('%s, bind-mounted into container chronos-db as %s, is not a file on this host. Nothing was '
                       'changed.' % (conf, CONFIG))


def test_container_configuration_on_another_host(run_module, docker, tmp_path):
    docker.add_container(mounts=[bind(tmp_path / 'missing.conf', CONFIG)])
    run = run_module(pgbackrest_target_info, dict(container='chronos-db'), container_answers()[:5])
    assert run.failed
    assert "is not on this host's disk" in run.msg and 'another Docker host' in run.msg


@pytest.mark.parametrize('requested', ['true', 'True', 'yes'])
def test_asynchronous_archiving_is_refused_where_postgresql_is_pid_1(run_module, docker, conf, requested):
    docker.add_container(**official(mounts=[bind(conf, CONFIG)]))
    run = run_module(pgbackrest_target_info, dict(container='chronos-db', archive_async=requested),
                     container_answers()[:5])
    assert run.failed
    assert run.msg.startswith("Asynchronous WAL archiving is refused on container 'chronos-db': PostgreSQL is PID 1 "
                              "there")
    assert 'docker run --init, or init: true in compose' in run.msg and run.msg.endswith('Nothing was changed.')


def test_asynchronous_archiving_where_an_init_reaps_orphans(run_module, docker, conf):
    """docker run --init: PID 1 is docker-init, PostgreSQL a child of it."""
    docker.add_container(mounts=[bind(conf, CONFIG)], files={
        '/var/lib/postgresql/data/postmaster.pid': (OFFICIAL_PID.replace(b'1\n', b'7\n', 1), 999, 999, 0o600)})
    run = run_module(pgbackrest_target_info, dict(container='chronos-db'), container_answers())
    assert (run.result['target']['archive']['async'], run.result['target']['archive']['postmaster_pid']) == (True, 7)


@pytest.mark.parametrize('requested, size', [('0', 0), ('', 0), ('4GiB', 4 * 2 ** 30), ('512MB', 512 * 2 ** 20),
                                             ('1048576', 2 ** 20), ('auto', QUEUE_MAX)])
def test_the_archive_queue_limit(run_module, requested, size):
    run = run_module(pgbackrest_target_info, dict(archive_push_queue_max=requested), host_answers())
    assert run.result['target']['archive']['queue_max'] == size


def test_a_malformed_archive_queue_limit_is_refused(run_module):
    run = run_module(pgbackrest_target_info, dict(archive_push_queue_max='lots'), host_answers()[:4])
    assert run.failed
    assert run.msg == ("Invalid archive push queue max: 'lots' is not a size: write it like 4GiB, 512MB or a number of "
                       "bytes. Nothing was changed.")
