# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The unit tests' shared fixtures.

The code imports ansible_collections.chronos.pgbackrest..., so this checkout has to be reachable under that
name: .build/collections/ansible_collections/chronos/pgbackrest links it (scripts/bootstrap.sh makes the same
link). A link to another checkout is re-pointed here, and the tests stop when the code they would import is not
this checkout's: a worktree's tests must test the worktree's code.

The seams (plugins/module_utils/_target.py, _container.py), with the fakes in harness.py:
- commands: HostTarget._run answers from a list of (rc, stdout bytes, stderr bytes), in order, recording argv,
  user, environment and stdin of each command; a command more or less than listed fails the test. The
  `service` calls that start and stop PostgreSQL on a host are commands like any other (HostTarget._service runs
  them through Target.run, as the current user).
- docker: a fake Docker client (containers with exec_run answering from the same list, the archive API over
  in-memory files, helper containers, local volumes under tmp_path), handed to ContainerTarget as `client=` or
  returned by _container.docker_client().
- run_module: a module's main() through AnsibleModule, exit_json and fail_json captured.
Around every test: no real command, no real Docker engine, no real sleep (a fake clock), the stanza lock
directory and the settings directory (/etc/chronos-pgbackrest) in temporary directories of the test's own.

Fixtures in fixtures/ are captured pgBackRest output (fixtures/README.md).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import importlib
import itertools
import os
import pkgutil
import sys
import time

import pytest

UNIT = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(UNIT))
COLLECTIONS = os.path.join(REPO, '.build', 'collections')
LINK = os.path.join(COLLECTIONS, 'ansible_collections', 'chronos', 'pgbackrest')


def _link_collection():
    if os.path.islink(LINK) and os.path.realpath(LINK) != os.path.realpath(REPO):
        os.unlink(LINK)         # a link to another checkout: this one's tests test this one's code
    if not os.path.lexists(LINK):
        os.makedirs(os.path.dirname(LINK), exist_ok=True)
        os.symlink(REPO, LINK)
    if os.path.realpath(LINK) != os.path.realpath(REPO):
        raise pytest.UsageError('%s is not a link to this checkout (%s): remove it.' % (LINK, REPO))
    if COLLECTIONS in sys.path:
        sys.path.remove(COLLECTIONS)
    sys.path.insert(0, COLLECTIONS)


_link_collection()

# Imported only once the collection is reachable.
# pylint: disable=wrong-import-position
from ansible.module_utils import basic  # noqa: E402
from ansible.module_utils.testing import patch_module_args  # noqa: E402

from ansible_collections.chronos.pgbackrest.plugins import module_utils, modules  # noqa: E402
from ansible_collections.chronos.pgbackrest.plugins.module_utils import _container, _host, _lock, _target  # noqa: E402
from ansible_collections.chronos.pgbackrest.tests.unit.harness import (  # noqa: E402
    BIN, Clock, Commands, FakeDocker, ModuleExit, NoSubprocess, Run, fixture_bytes, fixture_text, write_cluster)
# pylint: enable=wrong-import-position

if not os.path.realpath(_target.__file__).startswith(os.path.realpath(REPO) + os.sep):
    raise pytest.UsageError('The tests in %s would test %s: another copy of chronos.pgbackrest comes first on '
                            'sys.path.' % (REPO, _target.__file__))


def collection_modules():
    """Every module of plugins/module_utils and plugins/modules, imported."""
    found = []
    for package in (module_utils, modules):
        for info in pkgutil.iter_modules(package.__path__):
            found.append(importlib.import_module('%s.%s' % (package.__name__, info.name)))
    return found


# --- around every test: no real command, engine, sleep or lock directory ------------------------------------------

@pytest.fixture(autouse=True)
def _no_real_commands(monkeypatch):
    """No test runs a real program or reaches a real Docker engine by accident."""
    monkeypatch.setattr(_host, 'subprocess', NoSubprocess())

    def no_engine():
        raise AssertionError('a unit test reached for the real Docker engine')
    monkeypatch.setattr(_container, 'docker_client', no_engine)


# --- the fakes at the seams --------------------------------------------------------------------------------------

@pytest.fixture
def commands(monkeypatch):
    """The Commands every HostTarget (and, with the docker fixture, every container) answers from. Add answers
    with commands.expect(...); the test fails when they are not all used, or when more were asked for."""
    fake = Commands()

    def run(self, argv, user, env, stdin):
        return fake.answer(argv, user, env, stdin, 'host')
    monkeypatch.setattr(_host.HostTarget, '_run', run)
    monkeypatch.setattr(_host, '_which', lambda name: '/usr/sbin/%s' % name)
    yield fake
    fake.assert_done()


@pytest.fixture
def host(commands):
    """A HostTarget whose commands answer from `commands` (bin_path set: psql is BIN/psql)."""
    return _host.HostTarget(bin_path=BIN)


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """No test sleeps or depends on the wall clock: the module_utils and modules that wait see this clock."""
    fake = Clock()
    for module in collection_modules():
        if getattr(module, 'time', None) is time:
            monkeypatch.setattr(module, 'time', fake)
    return fake


@pytest.fixture(scope='session')
def _run_dirs(tmp_path_factory):
    """(a directory for the tests' lock and settings directories, a counter naming them): cheaper than a tmp_path
    for every test."""
    return str(tmp_path_factory.mktemp('run')), itertools.count()


@pytest.fixture(autouse=True)
def lock_dir(_run_dirs, monkeypatch):
    """The stanza locks of the test, in a directory of its own (a lock file outlives its holder). StanzaLock reads
    _lock.LOCK_DIRECTORY when it is built, so setting it reaches every lock the code takes."""
    parent, counter = _run_dirs
    directory = os.path.join(parent, str(next(counter)))
    monkeypatch.setattr(_lock, 'LOCK_DIRECTORY', directory)
    monkeypatch.setattr(_lock, 'SEEN_DIRECTORY', directory + '-seen')
    return directory


@pytest.fixture(autouse=True)
def settings_dir(_run_dirs, monkeypatch):
    """Where site.yml records a stanza's settings (/etc/chronos-pgbackrest): a directory of the test's own, empty and
    not created, so that no test reads this machine's /etc. _target.settings_path reads SETTINGS_DIRECTORY when
    called."""
    parent, counter = _run_dirs
    directory = os.path.join(parent, 'settings-%d' % next(counter))
    monkeypatch.setattr(_target, 'SETTINGS_DIRECTORY', directory)
    return directory


@pytest.fixture(autouse=True)
def state_dir(_run_dirs, monkeypatch):
    """What the collection records as it works (/var/lib/chronos-pgbackrest): a directory of the test's own."""
    parent, counter = _run_dirs
    directory = os.path.join(parent, 'state-%d' % next(counter))
    monkeypatch.setattr(_target, 'STATE_DIRECTORY', directory)
    return directory


# --- captured output and data directories -----------------------------------------------------------------------

@pytest.fixture
def owned_by_this_user(monkeypatch):
    """The cluster owner, on a host and in a container, is this process's user: the data directories tests make in
    tmp_path are theirs, as a cluster's are its owner's (a restore moves only directories of the cluster's owner)."""
    from ansible_collections.chronos.pgbackrest.plugins.module_utils._container import ContainerTarget
    from ansible_collections.chronos.pgbackrest.plugins.module_utils._host import HostTarget

    def this_user(self, user):
        return os.getuid(), os.getgid()
    monkeypatch.setattr(HostTarget, 'user_ids', this_user)
    monkeypatch.setattr(ContainerTarget, 'user_ids', this_user)


@pytest.fixture
def captured():
    """captured('info-no-backup.json') -> the file's text, as a target returns it."""
    return fixture_text


@pytest.fixture
def captured_bytes():
    """captured_bytes('info-wrong.json') -> the file's bytes."""
    return fixture_bytes


@pytest.fixture
def make_cluster(tmp_path):
    """make_cluster(system_id, version='15') -> the path of a new fake cluster (PG_VERSION, global/pg_control)."""
    made = []

    def make(system_id, version='15'):
        made.append(1)
        return write_cluster(str(tmp_path / ('cluster%d' % len(made))), system_id, version)
    return make


@pytest.fixture
def make_data_dir(tmp_path):
    """make_data_dir({'backup_label': 'restore-time.backup_label', 'postmaster.pid': b'...'}) -> the path of a new
    fake data directory holding those files: a str value names a captured file, bytes are written as they are.
    make_data_dir() makes an empty one. Each call makes another directory."""
    made = []

    def make(files=None, name=None):
        path = tmp_path / (name or 'data%d' % len(made))
        path.mkdir(mode=0o700, parents=True)
        made.append(path)
        for entry, content in (files or {}).items():
            (path / entry).parent.mkdir(parents=True, exist_ok=True)
            (path / entry).write_bytes(fixture_bytes(content) if isinstance(content, str) else content)
        return str(path)
    return make


# --- modules ----------------------------------------------------------------------------------------------------

@pytest.fixture
def run_module(monkeypatch, commands):
    """run_module(module, args, outputs, check_mode=False) -> Run.

    outputs are what the target's commands answer, in order (see Commands); the test fails when the module runs
    more commands than that, or fewer. Every fail_json must carry executed_commands."""
    def run(module, args, outputs=(), check_mode=False):
        commands.expect(*outputs)

        def exit_json(self, **result):
            raise ModuleExit(False, result)

        def fail_json(self, msg, **result):
            raise ModuleExit(True, dict(result, msg=msg, failed=True))

        monkeypatch.setattr(basic.AnsibleModule, 'exit_json', exit_json)
        monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)
        args = dict(args)
        if check_mode:
            args['_ansible_check_mode'] = True
        with patch_module_args(args):
            with pytest.raises(ModuleExit) as raised:
                module.main()
        result = raised.value.result
        if commands.pending and raised.value.failed:
            raise AssertionError('the module failed before the answers ran out: %s' % result['msg'])
        commands.assert_done()
        if raised.value.failed:
            assert 'executed_commands' in result, 'fail_json without executed_commands: %s' % result['msg']
        return Run(raised.value.failed, result, commands)
    return run


# --- docker -----------------------------------------------------------------------------------------------------

@pytest.fixture
def docker(commands, tmp_path, monkeypatch):
    """A FakeDocker that _container.docker_client() returns; its containers' commands answer from `commands`."""
    engine = FakeDocker(commands, str(tmp_path / 'docker-volumes'))
    os.makedirs(engine.volumes_root)
    monkeypatch.setattr(_container, 'docker_client', lambda: engine)
    monkeypatch.delenv('DOCKER_HOST', raising=False)
    return engine
