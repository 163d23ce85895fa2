# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared helpers for the unit tests.

The modules import ansible_collections.chronos.pgbackrest..., so the repository has to be reachable
under that name: scripts/bootstrap.sh links it as .build/collections/ansible_collections/chronos/pgbackrest.
This file makes the same link when it is missing (a fresh clone) and puts .build/collections on sys.path.

Fixtures in fixtures/ are captured pgBackRest output (see fixtures/README.md). They are read as the
modules receive them from AnsibleModule.run_command: UTF-8 decoded with surrogateescape, because
pgBackRest can print undecodable bytes (a wrong cipher passphrase decrypts to garbage).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import struct
import sys

import pytest

UNIT = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(UNIT))
FIXTURES = os.path.join(UNIT, 'fixtures')
COLLECTIONS = os.path.join(REPO, '.build', 'collections')
LINK = os.path.join(COLLECTIONS, 'ansible_collections', 'chronos', 'pgbackrest')


def _link_collection():
    if not os.path.lexists(LINK):
        os.makedirs(os.path.dirname(LINK), exist_ok=True)
        os.symlink(REPO, LINK)
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)


_link_collection()

# Imported only once the collection is reachable.
from ansible.module_utils import basic  # noqa: E402  pylint: disable=wrong-import-position
from ansible.module_utils.common.text.converters import to_text  # noqa: E402  pylint: disable=wrong-import-position
from ansible.module_utils.testing import patch_module_args  # noqa: E402  pylint: disable=wrong-import-position


def fixture_bytes(name):
    with open(os.path.join(FIXTURES, name), 'rb') as handle:
        return handle.read()


def fixture_text(name):
    """A captured output as AnsibleModule.run_command returns it (text, undecodable bytes surrogate-escaped)."""
    return fixture_bytes(name).decode('utf-8', 'surrogateescape')


@pytest.fixture
def captured():
    """captured('info-no-backup.json') -> the file's text, read as run_command would return it."""
    return fixture_text


@pytest.fixture
def captured_bytes():
    """captured_bytes('info-wrong.json') -> the file's bytes."""
    return fixture_bytes


@pytest.fixture
def make_cluster(tmp_path):
    """Write a fake PostgreSQL data directory (PG_VERSION, global/pg_control) and return its path."""
    def make(system_id, version='15'):
        (tmp_path / 'global').mkdir()
        (tmp_path / 'PG_VERSION').write_text('%s\n' % version)
        # pg_control starts with the system identifier, a uint64 in native byte order; the rest is padding.
        (tmp_path / 'global' / 'pg_control').write_bytes(struct.pack('=Q', system_id) + b'\0' * 8184)
        return str(tmp_path)
    return make


@pytest.fixture
def make_data_dir(tmp_path):
    """make_data_dir({'backup_label': 'restore-time.backup_label', 'postmaster.pid': b'...'}) -> the path of a new
    fake data directory holding those files: a str value names a captured file, bytes are written as they are.
    make_data_dir() makes an empty one. Each call makes another directory."""
    made = []

    def make(files=None):
        path = tmp_path / ('data%d' % len(made))
        path.mkdir(mode=0o700)
        made.append(path)
        for name, content in (files or {}).items():
            (path / name).write_bytes(fixture_bytes(content) if isinstance(content, str) else content)
        return str(path)
    return make


class ModuleExit(Exception):
    """Raised instead of exit_json/fail_json: carries the module's result."""

    def __init__(self, failed, result):
        super(ModuleExit, self).__init__(result.get('msg'))
        self.failed = failed
        self.result = result


class Run(object):
    """What one module run did: its result and every command it handed to run_command."""

    def __init__(self, failed, result, calls):
        self.failed = failed
        self.result = result
        self.calls = calls

    @property
    def commands(self):
        """The pgbackrest command of each call, e.g. ['info', 'repo-ls', 'restore']: the first argument after the
        binary that is not an option (repo-ls's path comes after the command)."""
        return [next(arg for arg in call['argv'][1:] if not arg.startswith('-')) for call in self.calls]


@pytest.fixture
def run_module(monkeypatch):
    """run_module(module, args, outputs, check_mode=False) -> Run.

    outputs are the (rc, stdout, stderr) run_command returns, in order; the test fails when the module
    runs more commands than that, or fewer. Bytes are decoded as AnsibleModule.run_command decodes a
    process's output, with the encoding and errors the module asks for (surrogateescape by default).
    """
    def run(module, args, outputs, check_mode=False):
        pending = list(outputs)
        calls = []

        def run_command(self, argv, **kwargs):
            calls.append(dict(argv=list(argv), environ_update=kwargs.get('environ_update')))
            if not pending:
                raise AssertionError('unexpected command: %s' % ' '.join(argv))
            rc, stdout, stderr = pending.pop(0)
            decode = dict(encoding=kwargs.get('encoding', 'utf-8'), errors=kwargs.get('errors', 'surrogate_or_strict'))
            return rc, to_text(stdout, **decode), to_text(stderr, **decode)

        def exit_json(self, **result):
            raise ModuleExit(False, result)

        def fail_json(self, **result):
            raise ModuleExit(True, result)

        monkeypatch.setattr(basic.AnsibleModule, 'run_command', run_command)
        monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path', lambda self, *a, **k: '/usr/bin/pgbackrest')
        monkeypatch.setattr(basic.AnsibleModule, 'exit_json', exit_json)
        monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)
        args = dict(args)
        if check_mode:
            args['_ansible_check_mode'] = True
        with patch_module_args(args):
            with pytest.raises(ModuleExit) as raised:
                module.main()
        assert not pending, 'commands expected but not run: %d more' % len(pending)
        return Run(raised.value.failed, raised.value.result, calls)
    return run
