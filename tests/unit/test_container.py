# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Container mode (the `container` option): what the modules ask of the Docker API, and what they make of
its answers. The Docker SDK is replaced by a recorder that answers with captured pgBackRest output; the
real engine is exercised by the molecule scenario `container`.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import io
import struct
import tarfile

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _container
from ansible_collections.chronos.pgbackrest.plugins.modules import (
    pgbackrest_backup, pgbackrest_info, pgbackrest_restore, pgbackrest_stanza)

PG_PATH = '/var/lib/postgresql/data'
IMAGE_ID = 'sha256:5f1e0c'
CIPHER_PASS = 'a-cipher-passphrase-from-the-vault'


class NotFound(Exception):
    pass


class FakeContainer(object):
    """A container as docker-py shows it; exec_run and one-off runs answer from `outputs` in order."""

    def __init__(self, engine, status, files):
        self.engine = engine
        self.status = status
        self.files = files
        self.id = 'c0ffee'
        self.image = type('Image', (), {'id': IMAGE_ID})()
        self.attrs = {
            'Config': {'Env': ['PGDATA=%s' % PG_PATH, 'PATH=/usr/local/bin:/usr/bin:/bin']},
            'HostConfig': {'NetworkMode': 'chronos-lab', 'ExtraHosts': ['s3.example:10.0.0.5'], 'Dns': []},
        }

    def reload(self):
        pass

    def exec_run(self, argv, user=None, environment=None, demux=False):
        self.engine.calls.append(dict(how='exec', argv=list(argv), user=user, environment=dict(environment)))
        rc, stdout, stderr = self.engine.answer()
        return rc, (stdout, stderr)

    def get_archive(self, path):
        if path not in self.files:
            raise NotFound(path)
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode='w') as archive:
            info = tarfile.TarInfo(name=path.rsplit('/', 1)[-1])
            info.size = len(self.files[path])
            archive.addfile(info, io.BytesIO(self.files[path]))
        return [data.getvalue()], {}


class FakeOneOff(object):
    def __init__(self, engine, kwargs):
        self.engine = engine
        self.kwargs = kwargs
        self.removed = False

    def start(self):
        self.rc, self.stdout, self.stderr = self.engine.answer()

    def wait(self):
        return {'StatusCode': self.rc}

    def logs(self, stdout, stderr):
        return self.stdout if stdout else self.stderr

    def remove(self, force=False):
        self.removed = True


class FakeEngine(object):
    """docker.from_env() for one test: one container named chronos-db, or none."""

    def __init__(self, status='running', outputs=(), files=None, exists=True):
        self.container = FakeContainer(self, status, files or {}) if exists else None
        self.outputs = list(outputs)
        self.calls = []
        self.one_offs = []
        engine = self

        class Containers(object):
            def get(self, name):
                if engine.container is None or name != 'chronos-db':
                    raise NotFound(name)
                return engine.container

            def create(self, image, **kwargs):
                one_off = FakeOneOff(engine, dict(kwargs, image=image))
                engine.calls.append(dict(how='one-off', argv=kwargs['entrypoint'] + kwargs['command'],
                                         user=kwargs['user'], environment=kwargs['environment']))
                engine.one_offs.append(one_off)
                return one_off

        self.containers = Containers()

    def answer(self):
        if not self.outputs:
            raise AssertionError('unexpected command in the container: %s' % self.calls[-1]['argv'])
        rc, stdout, stderr = self.outputs.pop(0)
        return rc, stdout, stderr


@pytest.fixture
def engine(monkeypatch):
    """engine(status=..., outputs=[(rc, stdout bytes, stderr bytes)], files={path: bytes}) installs a fake
    Docker SDK and returns it."""
    def install(**kwargs):
        fake = FakeEngine(**kwargs)
        sdk = type('docker', (), {'from_env': staticmethod(lambda: fake)})
        monkeypatch.setattr(_container, 'docker', sdk, raising=False)
        monkeypatch.setattr(_container, 'NotFound', NotFound, raising=False)
        monkeypatch.setattr(_container, 'DockerException', RuntimeError, raising=False)
        monkeypatch.setattr(_container, 'DOCKER_IMPORT_ERROR', None)
        return fake
    return install


def test_commands_run_in_the_container_as_postgres_with_secrets_only_in_the_environment(
        engine, run_module, captured_bytes):
    fake = engine(outputs=[(0, b'pgBackRest 2.45\n', b''), (0, captured_bytes('info-one-full.json'), b'')])
    run = run_module(pgbackrest_info, dict(stanza='chronos-v2', container='chronos-db', repo_cipher_pass=CIPHER_PASS),
                     outputs=[])
    assert not run.failed, run.result['msg']
    assert run.result['latest_backup']['type'] == 'full' and run.result['pgbackrest_version'] == '2.45'
    assert [call['argv'][-1] for call in fake.calls] == ['version', 'info']
    for call in fake.calls:
        assert call['how'] == 'exec' and call['user'] == 'postgres' and call['argv'][0] == 'pgbackrest'
        assert call['environment'] == {'PGBACKREST_REPO1_CIPHER_PASS': CIPHER_PASS}
        assert not any(CIPHER_PASS in arg for arg in call['argv'])


def test_a_missing_container_is_named_and_nothing_runs(engine, run_module):
    fake = engine(exists=False)
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', container='chronos-db'), outputs=[])
    assert run.failed
    assert "Container 'chronos-db' does not exist on this Docker host" in run.result['msg']
    assert 'Nothing was changed' in run.result['msg']
    assert fake.calls == []


def test_a_stopped_container_is_refused_with_how_to_start_it(engine, run_module):
    fake = engine(status='exited')
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', container='chronos-db', type='full'), outputs=[])
    assert run.failed
    assert "Container 'chronos-db' is not running (status: exited): start it (docker start chronos-db)" in run.result['msg']
    assert fake.calls == []


def test_without_the_docker_sdk_the_module_says_what_to_install(monkeypatch, run_module):
    monkeypatch.setattr(_container, 'DOCKER_IMPORT_ERROR', 'ImportError: No module named docker')
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', container='chronos-db'), outputs=[])
    assert run.failed and 'python3-docker' in run.result['msg']


def test_pgbackrest_errors_in_the_container_read_as_on_a_host(engine, run_module, captured_bytes):
    engine(outputs=[(87, captured_bytes('check-archive-off.out'), captured_bytes('check-archive-off.err'))])
    run = run_module(pgbackrest_backup, dict(stanza='chronos-v2', container='chronos-db', type='full'), outputs=[])
    assert run.failed
    assert run.result['failed_part'] == 'archiving'
    assert run.result['rc'] == 87


def test_the_cluster_identity_is_read_through_the_archive_api(engine, run_module, captured_bytes):
    system_id = 7440897062178037016
    files = {PG_PATH + '/PG_VERSION': b'15\n',
             PG_PATH + '/global/pg_control': struct.pack('=Q', system_id) + b'\0' * 8184}
    fake = engine(outputs=[(0, captured_bytes('info-one-full.json'), b'')], files=files)
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', container='chronos-db', pg_path=PG_PATH),
                     outputs=[], check_mode=True)
    # info-one-full.json's stanza belongs to another cluster: the module must have read this one's identity.
    assert run.failed and str(system_id) in run.result['msg']
    assert [call['argv'][-1] for call in fake.calls] == ['info']


def test_restore_with_the_container_stopped_runs_pgbackrest_in_a_one_off_container(
        engine, run_module, captured_bytes):
    fake = engine(status='exited', outputs=[
        (0, captured_bytes('info-one-full.json'), b''),   # info, planning
        (0, b'', b''),                                     # ls -A: the data directory is empty
        (0, b'', b''),                                     # restore
    ])
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', container='chronos-db', pg_path=PG_PATH,
                                              repo_cipher_pass=CIPHER_PASS, _ansible_check_mode=False),
                     outputs=[])
    assert not run.failed, run.result['msg']
    assert run.result['changed'] and run.result['plan']['postgresql_running'] is False
    assert [call['argv'][:1] + call['argv'][-1:] for call in fake.calls] == [
        ['pgbackrest', 'info'], ['ls', PG_PATH], ['pgbackrest', 'restore']]
    restore = fake.one_offs[-1].kwargs
    assert restore['image'] == IMAGE_ID and restore['volumes_from'] == ['c0ffee']
    assert restore['user'] == 'postgres' and restore['network_mode'] == 'chronos-lab'
    assert restore['extra_hosts'] == {'s3.example': '10.0.0.5'}
    assert 'PGDATA=%s' % PG_PATH in restore['environment']
    assert 'PGBACKREST_REPO1_CIPHER_PASS=%s' % CIPHER_PASS in restore['environment']
    assert not any(CIPHER_PASS in arg for arg in restore['entrypoint'] + restore['command'])
    assert all(one_off.removed for one_off in fake.one_offs)


def test_restore_refuses_while_the_container_runs(engine, run_module, captured_bytes):
    fake = engine(outputs=[(0, captured_bytes('info-one-full.json'), b'')])
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', container='chronos-db', pg_path=PG_PATH),
                     outputs=[])
    assert run.failed
    assert 'PostgreSQL is running on %s (container chronos-db runs)' % PG_PATH in run.result['msg']
    assert [call['argv'][-1] for call in fake.calls] == ['info']


def test_restore_refuses_a_data_directory_that_is_not_empty(engine, run_module, captured_bytes):
    engine(status='exited', outputs=[(0, captured_bytes('info-one-full.json'), b''), (0, b'PG_VERSION\nbase\n', b'')])
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', container='chronos-db', pg_path=PG_PATH),
                     outputs=[])
    assert run.failed and '%s is not empty' % PG_PATH in run.result['msg']


@pytest.mark.parametrize('entries, hosts', [
    (None, None),
    ([], None),
    (['s3.chronos.lab:172.18.0.2'], {'s3.chronos.lab': '172.18.0.2'}),
    (['a:10.0.0.1', 'b:fe80::1'], {'a': '10.0.0.1', 'b': 'fe80::1'}),
])
def test_extra_hosts_are_handed_on_as_docker_py_takes_them(entries, hosts):
    assert _container._extra_hosts(entries) == hosts
