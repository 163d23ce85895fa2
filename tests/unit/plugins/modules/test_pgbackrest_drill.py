# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgbackrest_drill's main(): its options handed to the drill, its refusals, and a drill run end to end on a host
(the drill itself is covered in tests/unit/plugins/module_utils/test_drill.py)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _places
from ansible_collections.chronos.pgbackrest.plugins.module_utils._host import HostTarget
from ansible_collections.chronos.pgbackrest.plugins.modules import pgbackrest_drill

from ansible_collections.chronos.pgbackrest.tests.unit.harness import HISTORY_2, ok, psql_rows, wal_listing

LIVE = '/var/lib/postgresql/15/main'


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    """Nothing listens on the drill's port; the postgres user is this process's user."""
    monkeypatch.setattr(_places, 'port_listening', lambda port: False)
    monkeypatch.setattr(HostTarget, 'user_ids', lambda self, user: (os.getuid(), os.getgid()))


class FakeDrill(object):
    built = []

    def __init__(self, target, pgbackrest, pg_path, settings):
        FakeDrill.built.append(dict(kind=target.kind, pg_path=pg_path, settings=vars(settings),
                                    stanza=pgbackrest.stanza))

    def refusal(self):
        return None

    def run(self):
        return dict(status='ok')

    def report(self, result):
        return ['drilled: %s' % result['status']]


def test_options_reach_the_drill(run_module, monkeypatch):
    monkeypatch.setattr(pgbackrest_drill, 'Drill', FakeDrill)
    FakeDrill.built = []
    run = run_module(pgbackrest_drill, dict(stanza='chronos-v2', pg_path=LIVE, path='/srv/drill', port=5499,
                                            database='app', query='SELECT 1', target='2026-11-24 09:23:44+00',
                                            timeout=60, from_stanza='chronos', keep=True))
    assert not run.failed, run.msg
    assert (run.result['changed'], run.result['drill']) == (True, dict(status='ok'))
    assert run.result['report'] == ['drilled: ok']
    assert FakeDrill.built == [dict(kind='host', pg_path=LIVE, stanza='chronos-v2', settings=dict(
        path='/srv/drill', port=5499, database='app', query='SELECT 1', timeout=60, recovery_target='2026-11-24 09:23:44+00',
        keep=True, stanza='chronos'))]


def test_a_drill_that_is_not_kept_changes_nothing(run_module, monkeypatch):
    monkeypatch.setattr(pgbackrest_drill, 'Drill', FakeDrill)
    run = run_module(pgbackrest_drill, dict(stanza='chronos-v2', pg_path=LIVE))
    assert run.result['changed'] is False


def test_pg_path_is_required_on_a_host(run_module, settings_dir):
    """Nothing recorded for the stanza (conftest.settings_dir is empty)."""
    run = run_module(pgbackrest_drill, dict(stanza='chronos-v2'))
    assert run.failed
    assert run.msg == ('pg_path is required: the data directory (site.yml has not recorded one for stanza chronos-v2 in '
                       '%s/chronos-v2.json). Nothing was changed.' % settings_dir)
    assert run.result['executed_commands'] == []


def test_pg_path_recorded_by_site_yml(run_module, settings_dir, monkeypatch):
    monkeypatch.setattr(pgbackrest_drill, 'Drill', FakeDrill)
    FakeDrill.built = []
    os.makedirs(settings_dir)
    with open(os.path.join(settings_dir, 'chronos-v2.json'), 'w') as handle:
        json.dump(dict(stanza='chronos-v2', pg_path=LIVE), handle)
    run = run_module(pgbackrest_drill, dict(stanza='chronos-v2'))
    assert not run.failed, run.msg
    assert FakeDrill.built[0]['pg_path'] == LIVE


def test_pg_path_defaults_to_the_containers_pgdata(run_module, docker, monkeypatch):
    monkeypatch.setattr(pgbackrest_drill, 'Drill', FakeDrill)
    FakeDrill.built = []
    docker.add_container(env=['PGDATA=/var/lib/postgresql/data/pgdata'])
    run = run_module(pgbackrest_drill, dict(stanza='chronos-v2', container='chronos-db'))
    assert not run.failed, run.msg
    assert (FakeDrill.built[0]['kind'], FakeDrill.built[0]['pg_path']) == ('container', '/var/lib/postgresql/data/pgdata')


def test_check_mode_only_checks_the_refusals(run_module, tmp_path):
    run = run_module(pgbackrest_drill, dict(stanza='chronos-v2', pg_path=LIVE, path=str(tmp_path / 'drill')),
                     check_mode=True)
    assert (run.failed, run.result['changed'], run.result['drill'], run.result['executed_commands']) == (
        False, False, None, [])
    assert not os.path.exists(str(tmp_path / 'drill'))


def test_check_mode_refusal(run_module):
    run = run_module(pgbackrest_drill, dict(stanza='chronos-v2', pg_path=LIVE, port=5432), check_mode=True)
    assert run.failed
    assert run.msg == "Restore drill refused: the drill port 5432 is the live cluster's port. Nothing was changed."


def test_a_drill_on_a_host(run_module, tmp_path):
    scratch = tmp_path / 'drill'
    run = run_module(pgbackrest_drill, dict(stanza='chronos-v2', pg_path=LIVE, path=str(scratch)), [
        ok('info-after-pitr.json'), ok(wal_listing()), ok(HISTORY_2), ok(),        # read, then restore
        ok(), ok(), ok(), ok(b'max_connections setting: 100\n'), ok(),             # configure, socket directory
        ok(), ok(), ok(psql_rows(('f', 'f'))), ok(psql_rows(('',))), ok(), ok(psql_rows(('271',)))])
    assert not run.failed, run.msg
    assert run.result['drill']['backup_set'] == '20261124-092311F_20261124-095026I'
    assert run.result['drill']['query_result'] == ['271']
    assert run.result['changed'] is False
    assert not scratch.exists()
    assert len(run.result['executed_commands']) == 15


# --- remove ----------------------------------------------------------------------------------------------------

def kept_drill(scratch):
    """A drill left running with keep=True: its scratch directory, drill.conf, the cluster in data/."""
    os.makedirs(str(scratch / 'data'))
    (scratch / 'drill.conf').write_text(_places.MARKER + '\n')
    (scratch / 'data' / 'postmaster.pid').write_text('%d\n' % os.getpid())


def test_remove_a_kept_drill(run_module, tmp_path):
    scratch = tmp_path / 'drill'
    kept_drill(scratch)
    run = run_module(pgbackrest_drill, dict(stanza='chronos-v2', pg_path=LIVE, path=str(scratch), remove=True), [ok()])
    assert not run.failed, run.msg
    assert (run.result['changed'], run.result['drill']) == (True, None)
    assert run.commands == ['pg_ctl']
    assert not scratch.exists()
    # Nothing was restored: no pgbackrest command ran.
    assert not [command for command in run.result['executed_commands'] if 'pgbackrest' in command]


def test_remove_in_check_mode(run_module, tmp_path):
    scratch = tmp_path / 'drill'
    kept_drill(scratch)
    run = run_module(pgbackrest_drill, dict(stanza='chronos-v2', pg_path=LIVE, path=str(scratch), remove=True),
                     check_mode=True)
    assert (run.failed, run.result['changed'], run.result['executed_commands']) == (False, True, [])
    assert scratch.is_dir()


def test_remove_when_there_is_nothing_to_remove(run_module, tmp_path):
    run = run_module(pgbackrest_drill, dict(stanza='chronos-v2', pg_path=LIVE, path=str(tmp_path / 'drill'),
                                            remove=True))
    assert (run.failed, run.result['changed'], run.result['executed_commands']) == (False, False, [])


def test_remove_refuses_what_no_drill_made(run_module, tmp_path):
    (tmp_path / 'drill').mkdir()
    (tmp_path / 'drill' / 'precious').write_text('x')
    run = run_module(pgbackrest_drill, dict(stanza='chronos-v2', pg_path=LIVE, path=str(tmp_path / 'drill'),
                                            remove=True))
    assert run.failed
    assert run.msg.startswith("Not removed: %s exists and is not a drill's scratch directory" % (tmp_path / 'drill'))
    assert (tmp_path / 'drill' / 'precious').exists()
