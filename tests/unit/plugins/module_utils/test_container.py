# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/module_utils/_container.py against a fake Docker client (conftest.FakeDocker): what ContainerTarget
asks of the Docker API and what it makes of the answers. Bind mounts and volumes point into tmp_path, so the
files written "on the Docker host" are real. The real engine is exercised by the molecule scenario `container`."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import json
import os
import subprocess
import sys

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _container
from ansible_collections.chronos.pgbackrest.plugins.module_utils._container import ContainerTarget
from ansible_collections.chronos.pgbackrest.plugins.module_utils._places import (
    BindRootPlace, DirectoryPlace, VolumeRootPlace)
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError

from ansible_collections.chronos.pgbackrest.tests.unit.harness import SECRET_ENVIRONMENT, fails, ok

# Bound before the autouse fixture replaces it with a guard.
DOCKER_CLIENT = _container.docker_client

PGDATA = '/var/lib/postgresql/data'
CONFIG = '/etc/pgbackrest/pgbackrest.conf'
UID, GID = os.getuid(), os.getgid()


def bind(source, destination):
    return {'Type': 'bind', 'Source': str(source), 'Destination': destination, 'Mode': '', 'RW': True}


def volume(name, source, destination, driver='local'):
    return {'Type': 'volume', 'Name': name, 'Source': str(source), 'Destination': destination, 'Driver': driver,
            'RW': True}


@pytest.fixture
def layout(tmp_path, docker):
    """The official image's layout on this host: PGDATA the root of volume pgdata, pgbackrest.conf bind-mounted as a
    file, /etc/pgbackrest/conf.d as a directory."""
    data = docker.add_volume('pgdata')
    conf = tmp_path / 'host' / 'pgbackrest.conf'
    conf.parent.mkdir()
    conf.write_bytes(b'[global]\nrepo1-path=/var/lib/pgbackrest\n')
    os.chmod(str(conf), 0o600)
    conf_d = tmp_path / 'host' / 'conf.d'
    conf_d.mkdir()
    container = docker.add_container(mounts=[
        volume('pgdata', data.attrs['Mountpoint'], PGDATA), bind(conf, CONFIG), bind(conf_d, '/etc/pgbackrest/conf.d')])
    return dict(container=container, data=data.attrs['Mountpoint'], conf=str(conf), conf_d=str(conf_d))


def target(docker, **kwargs):
    return ContainerTarget('chronos-db', client=docker, **kwargs)


# --- finding the container and the engine -------------------------------------------------------------------

def test_docker_client_without_the_sdk(monkeypatch):
    monkeypatch.setitem(sys.modules, 'docker', None)
    with pytest.raises(ChronosError) as raised:
        DOCKER_CLIENT()
    assert 'apt install python3-docker' in raised.value.msg


def test_docker_client_without_an_engine(monkeypatch):
    def from_env():
        raise RuntimeError('Error while fetching server API version: connection refused')
    monkeypatch.setitem(sys.modules, 'docker', type('docker', (), {'from_env': staticmethod(from_env)}))
    with pytest.raises(ChronosError) as raised:
        DOCKER_CLIENT()
    assert raised.value.msg.startswith('Cannot reach the Docker engine: Error while fetching server API version: '
                                       'connection refused. Check that dockerd runs')


def test_a_missing_container_is_named(docker):
    with pytest.raises(ChronosError) as raised:
        target(docker)
    assert raised.value.msg.startswith("Container 'chronos-db' does not exist on this Docker host (docker ps -a does not "
                                       "list it)")
    assert raised.value.msg.endswith('Nothing was changed.')


def test_an_engine_error_while_finding_the_container(docker, monkeypatch):
    def get(name):
        raise RuntimeError('500 Server Error')
    monkeypatch.setattr(docker.containers, 'get', get)
    with pytest.raises(ChronosError, match='Cannot reach the Docker engine to find container chronos-db: 500 Server Error'):
        target(docker)


@pytest.mark.parametrize('docker_host', ['tcp://10.0.0.5:2376', 'ssh://admin@db1'])
def test_another_docker_host_is_refused(docker, monkeypatch, docker_host):
    docker.add_container()
    monkeypatch.setenv('DOCKER_HOST', docker_host)
    with pytest.raises(ChronosError) as raised:
        target(docker)
    assert raised.value.msg.startswith("Container 'chronos-db' is on the Docker engine at %s, not on this host" % docker_host)


def test_another_docker_host_is_refused_before_the_engine_is_asked(monkeypatch):
    """No client is made (conftest makes reaching for one fail the test): the refusal comes first."""
    monkeypatch.setenv('DOCKER_HOST', 'tcp://10.0.0.5:2376')
    with pytest.raises(ChronosError, match="^Container 'chronos-db' is on the Docker engine at tcp://10.0.0.5:2376"):
        ContainerTarget('chronos-db')


def test_the_local_socket_is_this_host(docker, monkeypatch):
    docker.add_container()
    monkeypatch.setenv('DOCKER_HOST', 'unix:///run/docker.sock')
    assert target(docker).describe() == "container 'chronos-db'"


# --- facts from the container's configuration ---------------------------------------------------------------

@pytest.mark.parametrize('env, superuser', [
    (['POSTGRES_USER=chronos', 'POSTGRES_PASSWORD=secret'], 'chronos'),
    (['POSTGRES_PASSWORD=secret'], 'postgres'),
    (['POSTGRES_USER='], 'postgres'),
    ([], 'postgres'),
])
def test_default_superuser_is_postgres_user(docker, env, superuser):
    docker.add_container(env=env)
    assert target(docker).pg_user == superuser


def test_a_set_superuser_wins(docker):
    docker.add_container(env=['POSTGRES_USER=chronos'])
    assert target(docker, pg_user='admin').pg_user == 'admin'


def test_environment_values_may_hold_equal_signs(docker):
    docker.add_container(env=['PGDATA=/var/lib/postgresql/data/pgdata', 'OPTIONS=a=b=c', 'EMPTY'])
    found = target(docker)
    assert (found.pgdata, found.environment['OPTIONS'], found.environment['EMPTY']) == (
        '/var/lib/postgresql/data/pgdata', 'a=b=c', '')


def test_restart_policy(docker):
    docker.add_container(host_config={})
    assert target(docker).restart_policy == {'Name': 'no'}


@pytest.mark.parametrize('entries, hosts', [
    (None, None),
    ([], None),
    (['s3.chronos.lab:172.18.0.2'], {'s3.chronos.lab': '172.18.0.2'}),
    (['a:10.0.0.1', 'b:fe80::1'], {'a': '10.0.0.1', 'b': 'fe80::1'}),
])
def test_extra_hosts_are_handed_on_as_docker_py_takes_them(entries, hosts):
    assert _container._extra_hosts(entries) == hosts


# --- mounts and host paths --------------------------------------------------------------------------------

def test_mount_for_is_the_deepest(tmp_path, docker):
    docker.add_container(mounts=[bind(tmp_path, '/var/lib/postgresql'), bind(tmp_path, PGDATA),
                                 bind(tmp_path, '/var/lib/postgresql/data2')])
    found = target(docker)
    assert found.mount_for(PGDATA + '/pg_wal')['Destination'] == PGDATA
    assert found.mount_for(PGDATA)['Destination'] == PGDATA
    assert found.mount_for(PGDATA + '/')['Destination'] == PGDATA
    # A sibling whose name starts the same is not below the mount.
    assert found.mount_for('/var/lib/postgresql/data3/x')['Destination'] == '/var/lib/postgresql'
    assert found.mount_for('/etc/pgbackrest/pgbackrest.conf') is None


def test_host_path(layout, docker):
    found = target(docker)
    assert found.host_path(PGDATA) == layout['data']
    assert found.host_path(PGDATA + '/global/pg_control') == os.path.join(layout['data'], 'global/pg_control')
    assert found.host_path(CONFIG) == layout['conf']
    assert found.host_path('/etc/pgbackrest/conf.d/s3.conf') == os.path.join(layout['conf_d'], 's3.conf')
    assert found.host_path('/usr/local/bin/pgbackrest-backup.sh') is None


def test_host_path_of_a_mount_on_another_host(tmp_path, docker):
    docker.add_container(mounts=[volume('pgdata', tmp_path / 'nowhere' / '_data', PGDATA)])
    with pytest.raises(ChronosError) as raised:
        target(docker).host_path(PGDATA)
    assert raised.value.msg.startswith("The volume pgdata of container 'chronos-db' is not on this host's disk (%s): "
                                       "is the container on another Docker host?" % PGDATA)


# --- commands -------------------------------------------------------------------------------------------

def test_commands_run_in_the_container_as_postgres_with_secrets_only_in_the_environment(layout, docker, commands):
    commands.expect(ok('version.out'))
    done = target(docker).run(['pgbackrest', 'version'], env=SECRET_ENVIRONMENT)
    assert done.stdout == 'pgBackRest 2.45\n'
    call = commands.calls[0]
    assert (call['where'], call['user'], call['argv']) == ('chronos-db', 'postgres', ['pgbackrest', 'version'])
    assert call['env'] == SECRET_ENVIRONMENT
    assert not [arg for arg in call['argv'] for secret in SECRET_ENVIRONMENT.values() if secret in arg]
    # Secrets never reach a container's configuration.
    assert docker.created == []


def test_empty_streams_are_empty(layout, docker, commands):
    commands.expect((3, b'', b''))
    done = target(docker).run(['false'])
    assert (done.rc, done.stdout, done.stderr) == (3, '', '')


def test_stdin_travels_in_the_environment(layout, docker, commands):
    script = "SELECT 'it''s', '%s', E'\\\\n';\n\\echo done\n"
    commands.expect(ok())
    target(docker).run(['psql', '-f', '-'], stdin=script)
    call = commands.calls[0]
    assert call['argv'] == ['sh', '-c', 'printf "%%s" "$%s" | "$@"' % _container.STDIN_VARIABLE, 'sh', 'psql', '-f', '-']
    assert call['env'] == {_container.STDIN_VARIABLE: script}
    # What that shell line feeds the command, run here with a real sh: the script, byte for byte.
    fed = subprocess.run(call['argv'][:4] + ['cat'], env=dict(os.environ, **call['env']), stdout=subprocess.PIPE,
                         check=True).stdout
    assert fed == script.encode()


def test_exec_failure_is_a_chronos_error(layout, docker, commands, monkeypatch):
    def exec_run(*args, **kwargs):
        raise RuntimeError('409 Client Error: container is restarting')
    monkeypatch.setattr(layout['container'], 'exec_run', exec_run)
    with pytest.raises(ChronosError, match="Cannot run pgbackrest in container 'chronos-db': 409 Client Error"):
        target(docker).run(['pgbackrest', 'info'])


def test_a_stopped_container_is_refused_with_how_to_start_it(layout, docker, commands):
    layout['container'].status = 'exited'
    with pytest.raises(ChronosError) as raised:
        target(docker).run(['pgbackrest', 'backup'])
    assert raised.value.msg == ("Container 'chronos-db' is not running (status: exited): start it (docker start "
                                "chronos-db) and run again. Nothing was changed.")
    assert commands.calls == [] and docker.created == []


def test_while_stopped_commands_run_in_a_helper(layout, docker, commands):
    container = layout['container']
    container.status = 'exited'
    container.attrs['Config']['Env'].append('POSTGRES_PASSWORD=the-superuser-password')
    leftover = docker.add_container(name='old-helper', labels={_container.HELPER_LABEL: 'chronos-db'})
    found = target(docker)
    found.allow_commands_while_stopped()
    commands.expect(fails(1, b'ERROR: [055]: unable to load info file\n'), ok())
    found.run(['pgbackrest', 'info'], env=SECRET_ENVIRONMENT)
    found.run(['ls', PGDATA])
    assert leftover.removed                      # a helper left by a killed run goes first
    assert len(docker.created) == 1              # one helper for every command
    created = docker.created[0]
    assert created == dict(
        image='sha256:5f1e0c', entrypoint=['sh'], command=_container.IDLE[1:], user='root',
        volumes_from=[container.id], network_mode='chronos-lab', extra_hosts={'s3.chronos.lab': '172.18.0.2'},
        dns=None, labels={_container.HELPER_LABEL: 'chronos-db'}, name='chronos-db-pgbackrest-helper')
    # Nothing from the container's environment (POSTGRES_PASSWORD) reaches the helper's configuration.
    assert 'environment' not in created
    assert [call['where'] for call in commands.calls[:2]] == ['chronos-db-pgbackrest-helper'] * 2
    assert commands.calls[0]['env'] == SECRET_ENVIRONMENT
    helper = docker.containers.get('chronos-db-pgbackrest-helper')
    assert helper.status == 'running'
    # The configuration names no CA file: nothing to copy in (the read went through the archive API).
    found.close()
    assert helper.removed and found._helper is None
    found.close()                                # twice: nothing left to remove


def crash_at_first_exec(container, rc=137, stderr=None):
    """A crash-looping container up for a moment: the command run in it is SIGKILLed as PostgreSQL dies (137), or
    the exec finds it gone, and the container is restarting afterwards."""
    real = container.exec_run

    def exec_run(argv, **kwargs):
        container.exec_run = real
        container.status = 'restarting'
        container.attrs['RestartCount'] = container.attrs.get('RestartCount', 0) + 1
        return rc, (None, stderr)
    container.exec_run = exec_run


@pytest.mark.parametrize('rc, stderr', [(137, None), (126, b'OCI runtime exec failed: cannot exec in a deleted state')])
def test_a_restore_reads_a_crash_looping_container_from_the_helper(layout, docker, commands, rc, stderr):
    container = layout['container']
    crash_at_first_exec(container, rc, stderr)
    found = target(docker)
    found.allow_commands_while_stopped()
    commands.expect(ok(b'[]'))
    assert found.run(['pgbackrest', 'info']).stdout == '[]'
    assert [call['where'] for call in commands.calls] == ['chronos-db-pgbackrest-helper']
    found.close()


def test_a_restart_the_engine_records_after_the_exec_returned_still_sends_the_command_to_the_helper(
        layout, docker, commands, clock):
    """The exec ends with 137 while the engine still shows the container running: its restart is seen a moment
    later, and the command is run in the helper."""
    container = layout['container']
    reloads = []

    def reload():
        reloads.append(1)
        if len(reloads) == 4:        # the engine records the restart at the third look after the exec
            container.status = 'restarting'
            container.attrs['RestartCount'] = container.attrs.get('RestartCount', 0) + 1
    container.reload = reload
    found = target(docker)
    found.allow_commands_while_stopped()
    commands.expect(fails(137), ok(b'[]'))
    assert found.run(['pgbackrest', 'info']).stdout == '[]'
    assert [call['where'] for call in commands.calls] == ['chronos-db', 'chronos-db-pgbackrest-helper']
    assert 0 < sum(clock.slept) < _container.RESTART_SETTLE_SECONDS
    found.close()


def test_a_command_killed_for_another_reason_is_not_run_again(layout, docker, commands, clock):
    """137 in a container that kept running (the OOM killer took the command alone): its own answer, once the
    engine had time to record a restart that did not come."""
    found = target(docker)
    found.allow_commands_while_stopped()
    commands.expect(fails(137))
    assert found.run(['pgbackrest', 'info']).rc == 137
    assert [call['where'] for call in commands.calls] == ['chronos-db'] and docker.created == []
    assert sum(clock.slept) >= _container.RESTART_SETTLE_SECONDS


def test_outside_a_restore_a_crash_looping_container_is_not_read_elsewhere(layout, docker, commands):
    crash_at_first_exec(layout['container'])
    assert target(docker).run(['pgbackrest', 'info']).rc == 137
    assert docker.created == []


def test_a_helper_gets_the_ca_files_that_lie_outside_the_mounts(tmp_path, docker, commands):
    conf = tmp_path / 'pgbackrest.conf'
    conf.write_bytes(b'[global]\nrepo1-type=s3\nrepo1-storage-ca-file=/etc/ssl/chronos/ca.crt\n'
                     b'repo2-s3-ca-file = /etc/pgbackrest/conf.d/ca2.crt\nrepo3-storage-ca-file=/etc/ssl/gone.crt\n')
    container = docker.add_container(status='exited', mounts=[bind(conf, CONFIG),
                                                              bind(tmp_path, '/etc/pgbackrest/conf.d')],
                                     files={CONFIG: (conf.read_bytes(), 999, 999, 0o600),
                                            '/etc/ssl/chronos/ca.crt': (b'-----BEGIN CERTIFICATE-----\n', 0, 999, 0o640),
                                            '/etc/pgbackrest/conf.d/ca2.crt': (b'mounted', 0, 0, 0o644)})
    found = target(docker)
    found.allow_commands_while_stopped()
    commands.expect(ok())
    found.run(['true'])
    helper = docker.containers.get('chronos-db-pgbackrest-helper')
    # Owner and mode kept; the mounted one comes with the mount; the missing one is skipped.
    assert helper.files == {'/etc/ssl/chronos/ca.crt': (b'-----BEGIN CERTIFICATE-----\n', 0, 999, 0o640)}
    assert container.status == 'exited'


def test_user_ids(layout, docker, commands):
    commands.expect(ok(b'999\n'), ok(b'998\n'))
    assert target(docker).user_ids('postgres') == (999, 998)
    assert [call['argv'] for call in commands.calls] == [['id', '-u', 'postgres'], ['id', '-g', 'postgres']]
    assert [call['user'] for call in commands.calls] == ['root', 'root']


def test_user_ids_of_a_missing_user(layout, docker, commands):
    commands.expect(fails(1, b"id: 'pg': no such user\n"), fails(1, b"id: 'pg': no such user\n"))
    with pytest.raises(ChronosError, match="There is no user 'pg' in container 'chronos-db': id: 'pg': no such user"):
        target(docker).user_ids('pg')


# --- files ------------------------------------------------------------------------------------------------

def test_read_file_through_the_archive_api(docker):
    docker.add_container(status='exited', files={PGDATA + '/PG_VERSION': (b'15\n', 999, 999, 0o600)})
    assert target(docker).read_file(PGDATA + '/PG_VERSION') == b'15\n'


def test_read_a_missing_file(docker):
    docker.add_container()
    with pytest.raises(IOError) as raised:
        target(docker).read_file('/nowhere')
    assert 'cannot read /nowhere' in str(raised.value) and 'in container chronos-db' in str(raised.value)


def test_write_a_file_mounted_on_its_own_in_place(layout, docker):
    """The container keeps the inode it was started with: a rename would leave it the old file."""
    inode = os.stat(layout['conf']).st_ino
    changed = target(docker).write_file(CONFIG, b'[global]\n', UID, GID, 0o600)
    assert changed is True
    with open(layout['conf'], 'rb') as handle:
        assert handle.read() == b'[global]\n'
    assert os.stat(layout['conf']).st_ino == inode
    assert target(docker).write_file(CONFIG, b'[global]\n', UID, GID, 0o600) is False


def test_write_into_a_mounted_directory_atomically(layout, docker):
    path = os.path.join(layout['conf_d'], 's3.conf')
    with open(path, 'wb') as handle:
        handle.write(b'old\n')
    inode = os.stat(path).st_ino
    assert target(docker).write_file('/etc/pgbackrest/conf.d/s3.conf', b'new\n', UID, GID, 0o640) is True
    with open(path, 'rb') as handle:
        assert handle.read() == b'new\n'
    assert os.stat(path).st_ino != inode
    assert os.listdir(layout['conf_d']) == ['s3.conf']


def test_write_a_mounted_file_in_check_mode(layout, docker):
    assert target(docker).write_file(CONFIG, b'changed\n', UID, GID, 0o600, check_mode=True) is True
    with open(layout['conf'], 'rb') as handle:
        assert handle.read() == b'[global]\nrepo1-path=/var/lib/pgbackrest\n'


def test_a_mounted_file_that_cannot_be_written(layout, docker, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, 'Read-only file system')
    monkeypatch.setattr(_container, 'write_local_file', refuse)
    with pytest.raises(ChronosError) as raised:
        target(docker).write_file(CONFIG, b'x', UID, GID, 0o600)
    assert raised.value.msg == ("Cannot write %s, bind-mounted into container 'chronos-db' as %s: [Errno 30] Read-only "
                                "file system. Make it writable by root on this host. Nothing was changed."
                                % (layout['conf'], CONFIG))


def test_write_elsewhere_through_the_archive_api(layout, docker):
    found = target(docker)
    assert found.write_file('/usr/local/bin/pgbackrest-backup.sh', b'#!/bin/sh\n', 0, 0, 0o755) is True
    assert layout['container'].files['/usr/local/bin/pgbackrest-backup.sh'] == (b'#!/bin/sh\n', 0, 0, 0o755)
    puts = [event for event in docker.events if event[0] == 'put_archive']
    # Unchanged: read back through the archive API, not copied again.
    assert found.write_file('/usr/local/bin/pgbackrest-backup.sh', b'#!/bin/sh\n', 0, 0, 0o755) is False
    # Only the mode differs: copied again.
    assert found.write_file('/usr/local/bin/pgbackrest-backup.sh', b'#!/bin/sh\n', 0, 0, 0o700) is True
    assert len([event for event in docker.events if event[0] == 'put_archive']) == len(puts) + 1


def test_write_elsewhere_in_check_mode(layout, docker):
    assert target(docker).write_file('/usr/local/bin/x.sh', b'x', 0, 0, 0o755, check_mode=True) is True
    assert '/usr/local/bin/x.sh' not in layout['container'].files


def test_put_refused_by_docker(layout, docker, monkeypatch):
    monkeypatch.setattr(layout['container'], 'put_archive', lambda directory, data: False)
    with pytest.raises(ChronosError, match='Docker refused to copy /usr/local/bin/x.sh into container chronos-db.'):
        target(docker).write_file('/usr/local/bin/x.sh', b'x', 0, 0, 0o755)


def test_remove_a_mounted_file_on_this_host(layout, docker, commands):
    path = os.path.join(layout['conf_d'], 'pgbackrest.conf.candidate')
    open(path, 'w').close()
    target(docker).remove_file('/etc/pgbackrest/conf.d/pgbackrest.conf.candidate')
    assert not os.path.exists(path)
    assert commands.calls == []


def test_remove_a_file_of_the_container(layout, docker, commands):
    commands.expect(ok())
    target(docker).remove_file('/etc/pgbackrest/pgbackrest.conf.candidate')
    assert (commands.calls[0]['argv'], commands.calls[0]['user']) == (
        ['rm', '-f', '/etc/pgbackrest/pgbackrest.conf.candidate'], 'root')


def test_ensure_directory_already_there(layout, docker, commands):
    commands.expect(ok())
    assert target(docker).ensure_directory('/var/lib/pgbackrest', 999, 999, 0o750) is False
    assert (commands.calls[0]['argv'], commands.calls[0]['user']) == (['test', '-d', '/var/lib/pgbackrest'], 'root')


def test_ensure_directory_made_with_owner_and_mode(layout, docker, commands):
    commands.expect(fails(1), ok())
    found = target(docker)
    assert found.ensure_directory('/var/lib/pgbackrest', 999, 998, 0o750) is True
    assert (commands.calls[1]['argv'], commands.calls[1]['user']) == (
        ['install', '-d', '-o', '999', '-g', '998', '-m', '750', '/var/lib/pgbackrest'], 'root')
    assert found.executed_commands == ['test -d /var/lib/pgbackrest',
                                       'install -d -o 999 -g 998 -m 750 /var/lib/pgbackrest']


def test_ensure_directory_in_check_mode_only_looks(layout, docker, commands):
    commands.expect(fails(1))
    assert target(docker).ensure_directory('/var/lib/pgbackrest', 999, 999, 0o750, check_mode=True) is True
    assert commands.names == ['test']


def test_ensure_directory_that_cannot_be_made(layout, docker, commands):
    commands.expect(fails(1), fails(1, b"install: cannot create directory '/var/lib/pgbackrest': Read-only file "
                                       b"system\n"))
    with pytest.raises(ChronosError) as raised:
        target(docker).ensure_directory('/var/lib/pgbackrest', 999, 999, 0o750)
    assert raised.value.msg == ("Cannot create /var/lib/pgbackrest in container 'chronos-db': install: cannot create "
                                "directory '/var/lib/pgbackrest': Read-only file system")


# --- PostgreSQL ------------------------------------------------------------------------------------------

@pytest.mark.parametrize('status, running', [('running', True), ('restarting', True), ('paused', True),
                                             ('exited', False), ('created', False), ('dead', False)])
def test_postgresql_runs_unless_the_container_is_stopped(layout, docker, status, running):
    """A crash-looping (restarting) or paused container is not stopped: Docker starts it again, or it resumes."""
    found = target(docker)
    layout['container'].status = status
    assert found.postgresql_running(PGDATA) is running


@pytest.mark.parametrize('status', ['restarting', 'paused'])
def test_nothing_runs_in_a_restarting_or_paused_container(layout, docker, status):
    found = target(docker)
    layout['container'].status = status
    with pytest.raises(ChronosError) as raised:
        found.run(['pg_isready'])
    assert raised.value.msg.startswith("Container 'chronos-db' is %s: PostgreSQL in it does not answer." % status)
    assert [event for event in docker.events if event[0] == 'create'] == []


def test_stop_holds_the_restart_policy_off_and_release_puts_it_back(layout, docker, settings_dir):
    found = target(docker, stop_timeout=30)
    found.hold_restart_policy()
    found.stop_postgresql(PGDATA)
    found.start_postgresql()
    assert docker.events[-3:] == [('update', 'chronos-db', {'Name': 'no'}), ('stop', 'chronos-db', 30),
                                  ('start', 'chronos-db')]
    assert layout['container'].attrs['HostConfig']['RestartPolicy'] == {'Name': 'no'}
    assert found.executed_commands == ['docker update --restart=no chronos-db', 'docker stop --time 30 chronos-db',
                                       'docker start chronos-db']
    assert found.held_restart_policy() == 'unless-stopped'
    record = os.path.join(settings_dir, 'held-restart-policies', 'chronos-db.json')
    assert oct(os.stat(record).st_mode & 0o777) == oct(0o600)
    assert oct(os.stat(os.path.dirname(record)).st_mode & 0o777) == oct(0o700)
    # An interrupted restore's next run: a new target reads the record, and puts the policy back.
    again = target(docker)
    again.hold_restart_policy()                     # already held: the first record stays
    again.release_restart_policy()
    assert docker.events[-1] == ('update', 'chronos-db', {'Name': 'unless-stopped'})
    assert again.held_restart_policy() is None and not os.path.exists(record)
    assert layout['container'].attrs['HostConfig']['RestartPolicy'] == {'Name': 'unless-stopped'}


def test_a_record_of_a_container_since_recreated_is_not_this_ones(layout, docker, settings_dir):
    """docker compose up -d after an interrupted restore: a new container of the same name took its policy from compose;
    the old one's record neither shows in its plan nor overrides its policy, and goes."""
    target(docker).hold_restart_policy()
    record = os.path.join(settings_dir, 'held-restart-policies', 'chronos-db.json')
    with open(record) as handle:
        assert json.load(handle)['Container'] == layout['container'].id
    layout['container'].id = 'recreated-%s' % layout['container'].id
    layout['container'].attrs['HostConfig']['RestartPolicy'] = {'Name': 'always'}
    again = target(docker)
    assert again.held_restart_policy() is None
    updates = [event for event in docker.events if event[0] == 'update']
    again.release_restart_policy()
    assert [event for event in docker.events if event[0] == 'update'] == updates and not os.path.exists(record)
    assert layout['container'].attrs['HostConfig']['RestartPolicy'] == {'Name': 'always'}


def test_a_paused_container_is_unpaused_then_stopped(layout, docker, settings_dir):
    layout['container'].status = 'paused'
    target(docker).stop_postgresql(PGDATA)
    assert [event[0] for event in docker.events[-2:]] == ['unpause', 'stop']


def test_a_container_without_a_restart_policy_holds_nothing(layout, docker, settings_dir):
    layout['container'].attrs['HostConfig']['RestartPolicy'] = {'Name': 'no'}
    found = target(docker)
    found.hold_restart_policy()
    found.release_restart_policy()
    assert [event[0] for event in docker.events if event[0] == 'update'] == []


def recovery(in_recovery, paused):
    return ok(('%s,%s\n' % (in_recovery, paused)).encode())


@pytest.mark.parametrize('pause', [False, True], ids=['promote', 'pause'])
def test_recover_in_the_helper_then_start_the_container(layout, docker, commands, pause):
    """Recovery never runs as the container's main process: a failing one would make Docker restart it over and over."""
    layout['container'].status = 'exited'
    found = target(docker, bin_path='/usr/lib/postgresql/15/bin')
    found.allow_commands_while_stopped()
    pg_ctl = '/usr/lib/postgresql/15/bin/pg_ctl'
    commands.expect(ok(), ok(), recovery('t', 't') if pause else recovery('f', 'f'), ok(), ok())
    if pause:
        commands.expect(recovery('t', 't'))
    found.recover(PGDATA, 600, pause)
    argv = [call['argv'] for call in commands.calls]
    assert argv[0] == [pg_ctl, '-D', PGDATA, '-l', '/tmp/chronos-pgbackrest-recovery.log', '-o',
                       "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql -p 5432", '-w', '-t',
                       '600', 'start']
    assert argv[1] == [pg_ctl, '-D', PGDATA, 'status']
    assert argv[3] == [pg_ctl, '-D', PGDATA, '-m', 'fast', '-w', '-t', '120', 'stop']
    assert [call['where'] for call in commands.calls[:4]] == ['chronos-db-pgbackrest-helper'] * 4
    # Then the container itself, on the recovered cluster.
    assert ('start', 'chronos-db') in docker.events
    assert commands.names[4] == 'pg_isready' and commands.calls[4]['where'] == 'chronos-db'


def test_recover_when_the_helper_cannot_stop_postgresql(layout, docker, commands):
    layout['container'].status = 'exited'
    found = target(docker)
    found.allow_commands_while_stopped()
    commands.expect(ok(), ok(), recovery('f', 'f'), fails(1, b'pg_ctl: server does not shut down\n'))
    with pytest.raises(ChronosError) as raised:
        found.recover(PGDATA, 600, False)
    assert raised.value.msg == ('PostgreSQL recovered in the helper container but did not stop there: pg_ctl: server '
                                'does not shut down')
    assert raised.value.extra == dict(step='recover')
    assert ('start', 'chronos-db') not in docker.events


def test_recover_reports_why_recovery_stopped(layout, docker, commands):
    layout['container'].status = 'exited'
    found = target(docker)
    found.allow_commands_while_stopped()
    log = b'LOG:  starting\nFATAL:  recovery ended before configured recovery target was reached\nLOG:  shut down\n'
    commands.expect(ok(), fails(3), ok(log))
    with pytest.raises(ChronosError) as raised:
        found.recover(PGDATA, 600, False)
    assert raised.value.msg == ("PostgreSQL stopped during recovery on container 'chronos-db': FATAL:  recovery ended "
                                "before configured recovery target was reached")
    assert commands.calls[-1]['argv'] == ['tail', '-n', '40', '/tmp/chronos-pgbackrest-recovery.log']


def test_recover_when_the_container_does_not_come_back(layout, docker, commands, monkeypatch):
    container = layout['container']
    container.status = 'exited'
    monkeypatch.setattr(container, 'start', lambda: docker.events.append(('start', 'chronos-db')))
    container.logs_text = b'LOG:  x\nFATAL:  could not load server certificate file\n'
    found = target(docker)
    found.allow_commands_while_stopped()
    commands.expect(ok(), ok(), recovery('f', 'f'), ok())
    with pytest.raises(ChronosError) as raised:
        found.recover(PGDATA, 600, False)
    assert raised.value.msg == ("Container 'chronos-db' did not come back after the recovery: FATAL:  could not load "
                                "server certificate file")
    assert raised.value.extra == dict(step='start')


# --- where the data directory lies ---------------------------------------------------------------------------

def test_data_place_volume_root(layout, docker):
    place = target(docker).data_place(PGDATA)
    assert isinstance(place, VolumeRootPlace)
    assert (place.volume, place.local, place.container, place.client) == ('pgdata', layout['data'], 'chronos-db', docker)


def test_data_place_volume_of_another_driver(tmp_path, docker):
    docker.add_container(mounts=[volume('pgdata', tmp_path, PGDATA, driver='rexray/ebs')])
    with pytest.raises(ChronosError) as raised:
        target(docker).data_place(PGDATA)
    assert raised.value.msg == ("In container 'chronos-db', %s is the root of volume pgdata of driver rexray/ebs: only "
                                "local volumes can have their files moved aside. Nothing was changed." % PGDATA)


def test_data_place_bind_root(tmp_path, docker):
    docker.add_container(mounts=[bind(tmp_path, PGDATA)])
    place = target(docker).data_place(PGDATA)
    assert isinstance(place, BindRootPlace) and place.local == str(tmp_path)


def test_data_place_below_the_mount(tmp_path, docker):
    """PostgreSQL 18's image: the volume at /var/lib/postgresql, PGDATA a directory inside it."""
    (tmp_path / '18' / 'docker').mkdir(parents=True)
    docker.add_container(mounts=[volume('pgdata', tmp_path, '/var/lib/postgresql')])
    place = target(docker).data_place('/var/lib/postgresql/18/docker')
    assert isinstance(place, DirectoryPlace) and place.local == str(tmp_path / '18' / 'docker')


def test_data_place_below_the_mount_follows_links_through_the_mounts(tmp_path, docker):
    """The links of PGDATA name the container's paths: the place finds them on this host through the mounts."""
    (tmp_path / 'volume' / '18' / 'docker').mkdir(parents=True)
    (tmp_path / 'wal').mkdir()
    docker.add_container(mounts=[volume('pgdata', tmp_path / 'volume', '/var/lib/postgresql'),
                                 bind(tmp_path / 'wal', '/srv/wal'),
                                 bind(tmp_path / 'gone', '/srv/gone')])
    place = target(docker).data_place('/var/lib/postgresql/18/docker')
    assert place.local_path('/var/lib/postgresql/wal/18') == str(tmp_path / 'volume' / 'wal' / '18')
    assert place.local_path('/srv/wal/18') == str(tmp_path / 'wal' / '18')
    # Outside every mount, or in a mount whose source is not on this host's disk: nowhere this machine can reach.
    assert place.local_path('/srv/other') is None
    assert place.local_path('/srv/gone/18') is None


def test_data_place_without_a_mount(docker):
    docker.add_container(mounts=[])
    with pytest.raises(ChronosError) as raised:
        target(docker).data_place(PGDATA)
    assert raised.value.msg == ("In container 'chronos-db', %s is on no volume: the data lives in the container's own "
                                "filesystem and would not survive the restore. Nothing was changed." % PGDATA)
