# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgbackrest_stanza's main() with its commands answered from captured pgBackRest 2.45 output (fixtures/README.md)
and the cluster's identity read from a fake data directory (conftest.make_cluster)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import struct

import pytest

from ansible_collections.chronos.pgbackrest.plugins.modules import pgbackrest_stanza

from ansible_collections.chronos.pgbackrest.tests.unit.harness import PREFIX, SECRET_ENVIRONMENT, SECRETS, fails, fixture_text, ok

LAB_SYSID = 7711665496204834485        # the cluster of info-one-full.json ... info-after-diff.json
OLD_LAB_SYSID = 7711661904765073182    # the cluster of info-no-backup.json
OTHER_SYSID = 7711666316191427927      # the second cluster stanza-create-mismatch.err was captured with


def assert_utf8(result):
    """ansible-core 2.19 refuses a module result holding text that is not valid UTF-8."""
    json.dumps(result, ensure_ascii=False).encode('utf-8')


def test_creates_a_missing_stanza(run_module, make_cluster):
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', pg_path=make_cluster(OLD_LAB_SYSID)), [
        ok('info-missing-stanza.json'),
        ok(),                                    # stanza-create prints nothing with --log-level-console=off
        ok('info-no-backup.json'),
    ])
    assert not run.failed, run.msg
    assert run.result['changed'] is True
    assert run.commands == ['info', 'stanza-create', 'info']
    assert run.result['executed_commands'][1] == ' '.join(PREFIX + ['stanza-create'])
    assert run.result['stanza']['status']['code'] == 2
    assert run.result['cluster'] == dict(version='15', system_id=OLD_LAB_SYSID)


@pytest.mark.parametrize('name', ['info-no-backup.json', 'info-full-and-diff.json'])
def test_unchanged_when_it_matches_the_cluster(run_module, make_cluster, name):
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', pg_path=make_cluster(OLD_LAB_SYSID)), [ok(name)])
    assert not run.failed, run.msg
    assert run.result['changed'] is False
    assert run.commands == ['info']


@pytest.mark.parametrize('state', ['present', 'upgraded'])
def test_unchanged_for_both_states_on_the_lab(run_module, make_cluster, state):
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', state=state, pg_path=make_cluster(LAB_SYSID)),
                     [ok('info-after-diff.json')])
    assert (run.failed, run.result['changed'], run.commands) == (False, False, ['info'])


@pytest.mark.parametrize('system_id, version', [(OTHER_SYSID, '15'), (LAB_SYSID, '16')])
def test_present_fails_on_another_cluster(run_module, make_cluster, system_id, version):
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', pg_path=make_cluster(system_id, version)),
                     [ok('info-full-diff-incr.json')])
    assert run.failed
    assert run.result['failed_part'] == 'stanza'
    assert 'state=upgraded' in run.msg
    assert "stanza 'chronos-v2' belongs to PostgreSQL 15 with system-id %s" % LAB_SYSID in run.msg
    assert 'PostgreSQL %s with system-id %s' % (version, system_id) in run.msg
    assert run.commands == ['info']


def test_check_mode_plans_stanza_create(run_module, make_cluster):
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', pg_path=make_cluster(LAB_SYSID)),
                     [ok('info-missing-stanza.json')], check_mode=True)
    assert not run.failed, run.msg
    assert run.result['changed'] is True
    assert run.commands == ['info']          # stanza-create is not run...
    assert run.result['executed_commands'] == [   # ...but is reported
        ' '.join(PREFIX + ['--output=json', 'info']),
        ' '.join(PREFIX + ['stanza-create']),
    ]


def test_upgraded_check_mode_plans_stanza_upgrade(run_module, make_cluster):
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', state='upgraded', pg_path=make_cluster(OTHER_SYSID)),
                     [ok('info-full-diff-incr.json')], check_mode=True)
    assert (run.failed, run.result['changed'], run.commands) == (False, True, ['info'])
    assert run.result['executed_commands'][-1].endswith(' stanza-upgrade')


def upgraded_info():
    """info-full-diff-incr.json as pgBackRest lists it after stanza-upgrade to PostgreSQL 16: db id 2 added."""
    raw = json.loads(fixture_text('info-full-diff-incr.json'))
    raw[0]['db'].append({'id': 2, 'repo-key': 1, 'system-id': LAB_SYSID, 'version': '16'})
    return raw


def test_upgraded_runs_stanza_upgrade(run_module, make_cluster):
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', state='upgraded', pg_path=make_cluster(LAB_SYSID, '16')), [
        ok('info-full-diff-incr.json'), ok(),
        # After the upgrade pgBackRest lists the new PostgreSQL as db id 2.
        ok(json.dumps(upgraded_info()).encode())])
    assert not run.failed, run.msg
    assert (run.result['changed'], run.commands) == (True, ['info', 'stanza-upgrade', 'info'])


def test_upgraded_fails_when_the_repository_still_differs(run_module, make_cluster):
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', state='upgraded', pg_path=make_cluster(OTHER_SYSID)), [
        ok('info-full-diff-incr.json'),
        ok(),
        ok('info-full-diff-incr.json'),
    ])
    assert run.failed
    assert run.commands == ['info', 'stanza-upgrade', 'info']
    assert run.msg.startswith('pgbackrest stanza-upgrade succeeded, yet the repository still does not match the cluster: '
                              "stanza 'chronos-v2' belongs to PostgreSQL 15")
    assert run.result['cluster'] == dict(version='15', system_id=OTHER_SYSID)


def test_upgraded_fails_when_missing(run_module, make_cluster):
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', state='upgraded', pg_path=make_cluster(LAB_SYSID)),
                     [ok('info-missing-stanza.json')])
    assert run.failed
    assert 'nothing to upgrade' in run.msg and 'state=present' in run.msg
    assert run.commands == ['info']


def test_create_error_is_reported(run_module, make_cluster):
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', pg_path=make_cluster(OTHER_SYSID)), [
        ok('info-missing-stanza.json'),
        fails(28, 'stanza-create-mismatch.err'),
    ])
    assert run.failed
    assert (run.result['error_code'], run.result['failed_part'], run.result['rc']) == (28, 'stanza', 28)
    assert run.msg.startswith(
        'Unable to stanza-create for stanza chronos-v2: pgBackRest error [028]: backup and archive info files exist '
        'but do not match the database HINT: is this the correct stanza?')
    assert run.result['cmd'].endswith(' stanza-create')


@pytest.mark.parametrize('name, part', [
    ('info-unreachable.json', 'repository'),
    ('info-wrong.json', 'encryption'),
])
def test_fails_on_an_unusable_repository(run_module, make_cluster, name, part):
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', pg_path=make_cluster(LAB_SYSID)), [ok(name)])
    assert run.failed
    assert run.result['failed_part'] == part
    assert run.commands == ['info']


def test_result_on_a_wrong_passphrase_is_valid_utf8(run_module, make_cluster):
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', pg_path=make_cluster(LAB_SYSID)),
                     [ok('info-wrong-env.json')])
    assert run.failed
    assert_utf8(run.result)


def test_fails_on_an_unreadable_pg_path(run_module, tmp_path):
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', pg_path=str(tmp_path / 'missing')), [])
    assert run.failed
    assert run.msg.startswith('Unable to read the PostgreSQL cluster in %s' % (tmp_path / 'missing'))


def test_secrets_reach_pgbackrest_through_the_environment_only(run_module, make_cluster):
    args = dict(stanza='chronos-v2', pg_path=make_cluster(OLD_LAB_SYSID), **SECRETS)
    run = run_module(pgbackrest_stanza, args, [ok('info-missing-stanza.json'), ok(), ok('info-no-backup.json')])
    assert not run.failed, run.msg
    for call in run.calls:
        assert not [part for part in call['argv'] for secret in SECRETS.values() if secret in part]
        assert call['env'] == SECRET_ENVIRONMENT


def test_the_cluster_identity_is_read_through_the_archive_api(run_module, docker):
    """In a container the cluster's files are read with the Docker archive API, PostgreSQL running or not."""
    system_id = 7440897062178037016
    pg_path = '/var/lib/postgresql/data'
    docker.add_container(files={pg_path + '/PG_VERSION': (b'15\n', 999, 999, 0o600),
                                pg_path + '/global/pg_control': (struct.pack('=Q', system_id) + b'\0' * 8184, 999, 999,
                                                                 0o600)})
    run = run_module(pgbackrest_stanza, dict(stanza='chronos-v2', container='chronos-db', pg_path=pg_path),
                     [ok('info-one-full.json')], check_mode=True)
    # info-one-full.json's stanza belongs to another cluster: the module must have read this one's identity.
    assert run.failed and str(system_id) in run.msg
    assert run.commands == ['info'] and run.calls[0]['where'] == 'chronos-db'
