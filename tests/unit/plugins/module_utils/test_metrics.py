# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/module_utils/_metrics.py: the textfiles node_exporter reads, written for real in tmp_path and parsed back
with prometheus_client's own parser. Names and labels are pgbackrest_exporter's (woblerr/pgbackrest_exporter v0.23)
where the meaning is the same."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _metrics
from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import parse_info
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError

from ansible_collections.chronos.pgbackrest.tests.unit.harness import fixture_text

STANZA = 'chronos-v2'
NOW = 1795520000.0
F2_STOP, D1_STOP, I1_STOP = 1795512217, 1795512223, 1795512226          # info-full-diff-incr.json
ARCHIVER = dict(archived_count=120, failed_count=2, last_archived_wal='00000001000000000000000A', last_failed_wal=None,
                last_archived=1795512226, last_failed=1795512000, failing=False, archive_mode='on',
                archive_command='pgbackrest --stanza=chronos-v2 archive-push %p')


def stanza_of(name):
    return parse_info(fixture_text(name))[0]


def families(path):
    """{metric family name: (type, {frozenset of label items: value})}, parsed as Prometheus would."""
    with open(path) as handle:
        text = handle.read()
    found = {}
    for family in text_string_to_metric_families(text):
        samples = dict((frozenset(sample.labels.items()), sample.value) for sample in family.samples)
        found[family.name] = (family.type, samples)
    return found


def value(found, name, **labels):
    return found[name][1][frozenset(labels.items())]


def status_file(directory, stanza=None, archiver=None, version='2.45', now=NOW):
    _metrics.write_status(str(directory), STANZA, stanza, archiver, version, now=now)
    return families(str(directory / ('pgbackrest_%s_status.prom' % STANZA)))


# --- the status file ----------------------------------------------------------------------------------

def test_status_of_a_working_stanza(tmp_path):
    found = status_file(tmp_path, stanza_of('info-full-diff-incr.json'), ARCHIVER)
    assert value(found, 'pgbackrest_exporter_status', stanza=STANZA) == 1
    assert value(found, 'pgbackrest_metrics_last_update_timestamp_seconds', stanza=STANZA) == NOW
    assert value(found, 'pgbackrest_version_info') == 2045000
    assert value(found, 'pgbackrest_stanza_status', stanza=STANZA) == 0
    assert value(found, 'pgbackrest_stanza_backup_lock_status', stanza=STANZA) == 0
    assert value(found, 'pgbackrest_repo_status', stanza=STANZA, repo_key='1', cipher='aes-256-cbc') == 0
    assert value(found, 'pgbackrest_wal_archive_status', stanza=STANZA, database_id='1', repo_key='1', pg_version='15',
                 wal_min='', wal_max='') == 1
    assert value(found, 'pgbackrest_postgresql_up', stanza=STANZA) == 1
    # Counters, as promtool check metrics wants for a _total name (the family's name has no _total).
    assert found['pgbackrest_archive_archived'][0] == found['pgbackrest_archive_failed'][0] == 'counter'
    assert value(found, 'pgbackrest_archive_archived', stanza=STANZA) == 120
    assert value(found, 'pgbackrest_archive_failed', stanza=STANZA) == 2
    assert value(found, 'pgbackrest_archive_last_archived_timestamp_seconds', stanza=STANZA) == 1795512226
    assert value(found, 'pgbackrest_archive_mode_enabled', stanza=STANZA) == 1
    assert all(kind == 'gauge' for name, (kind, dummy) in found.items()
               if name not in ('pgbackrest_archive_archived', 'pgbackrest_archive_failed'))
    with open(str(tmp_path / ('pgbackrest_%s_status.prom' % STANZA))) as handle:
        text = handle.read()
    assert '# TYPE pgbackrest_archive_archived_total counter' in text
    assert 'pgbackrest_archive_archived_total{stanza="chronos-v2"} 120.0' in text


@pytest.mark.parametrize('backup_type, stop', [
    ('full', F2_STOP),          # the newest full
    ('diff', D1_STOP),          # the newest full or diff: the incr after it does not count
    ('incr', I1_STOP),          # the newest of any type
])
def test_since_last_completion_uses_the_exporters_selection(tmp_path, backup_type, stop):
    found = status_file(tmp_path, stanza_of('info-full-diff-incr.json'), ARCHIVER)
    labels = dict(stanza=STANZA, backup_type=backup_type, block_incr='n')
    assert value(found, 'pgbackrest_backup_since_last_completion_seconds', **labels) == NOW - stop
    assert found['pgbackrest_backup_since_last_completion_seconds'][1].keys() == set(
        frozenset(dict(stanza=STANZA, backup_type=kind, block_incr='n').items()) for kind in ('full', 'diff', 'incr'))


def test_since_last_completion_of_a_diff_is_the_full_when_newer(tmp_path):
    found = status_file(tmp_path, stanza_of('info-one-full.json'), ARCHIVER)
    for kind in ('full', 'diff', 'incr'):
        assert value(found, 'pgbackrest_backup_since_last_completion_seconds', stanza=STANZA, backup_type=kind,
                     block_incr='n') == NOW - 1795512084


def test_last_backup_figures(tmp_path):
    found = status_file(tmp_path, stanza_of('info-full-diff-incr.json'), ARCHIVER)
    full = dict(stanza=STANZA, backup_type='full', block_incr='n')
    assert value(found, 'pgbackrest_backup_last_duration_seconds', **full) == F2_STOP - 1795512191
    assert value(found, 'pgbackrest_backup_last_error_status', **full) == 0
    incr = dict(stanza=STANZA, backup_type='incr', block_incr='n')
    assert value(found, 'pgbackrest_backup_last_repo_delta_bytes', **incr) == 464
    assert value(found, 'pgbackrest_backup_last_size_bytes', **incr) == 30526408


def test_no_since_last_completion_without_a_full(tmp_path):
    found = status_file(tmp_path, stanza_of('info-no-backup.json'), ARCHIVER)
    assert 'pgbackrest_backup_since_last_completion_seconds' not in found
    assert 'pgbackrest_backup_info' not in found
    assert value(found, 'pgbackrest_stanza_status', stanza=STANZA) == 2


def test_no_since_last_completion_when_the_only_full_has_an_error(tmp_path):
    stanza = stanza_of('info-one-full.json')
    stanza['backups'][0]['error'] = True
    found = status_file(tmp_path, stanza, ARCHIVER)
    assert 'pgbackrest_backup_since_last_completion_seconds' not in found
    assert value(found, 'pgbackrest_backup_error_status', stanza=STANZA, backup_name='20261124-092101F',
                 backup_type='full', block_incr='n', database_id='1', repo_key='1') == 1


def test_backup_info_labels(tmp_path):
    found = status_file(tmp_path, stanza_of('info-full-diff-incr.json'), ARCHIVER)
    assert value(found, 'pgbackrest_backup_info', stanza=STANZA, backup_name='20261124-092311F_20261124-092341D',
                 backup_type='diff', block_incr='n', database_id='1', repo_key='1', backrest_ver='2.45',
                 lsn_start='0/7000028', lsn_stop='0/8000050', pg_version='15', prior='20261124-092311F',
                 wal_start='000000010000000000000007', wal_stop='000000010000000000000008') == 1
    assert len(found['pgbackrest_backup_info'][1]) == 4
    durations = found['pgbackrest_backup_duration_seconds'][1]
    assert sorted(durations.values()) == [1, 2, 23, 26]


def test_block_incremental_backups_are_labelled(tmp_path):
    raw = json.loads(fixture_text('info-one-full.json'))
    repository = raw[0]['backup'][0]['info']['repository']
    del repository['size']  # pgBackRest reports no repository size for a block incremental backup
    repository.update({'size-map': 300, 'delta-map': 200})
    found = status_file(tmp_path, parse_info(json.dumps(raw))[0], ARCHIVER)
    assert value(found, 'pgbackrest_backup_last_repo_size_map_bytes', stanza=STANZA, backup_type='full',
                 block_incr='y') == 300
    assert value(found, 'pgbackrest_backup_last_repo_size_bytes', stanza=STANZA, backup_type='full',
                 block_incr='y') == 0  # as pgbackrest_exporter has it


def test_a_running_backup(tmp_path):
    found = status_file(tmp_path, stanza_of('info-backup-running.json'), ARCHIVER)
    assert value(found, 'pgbackrest_stanza_backup_lock_status', stanza=STANZA) == 1


def test_an_unreadable_repository(tmp_path):
    found = status_file(tmp_path, stanza_of('info-unreachable.json'), ARCHIVER)
    assert value(found, 'pgbackrest_stanza_status', stanza=STANZA) == 99
    assert value(found, 'pgbackrest_repo_status', stanza=STANZA, repo_key='1', cipher='aes-256-cbc') == 99


def test_nothing_could_be_read(tmp_path):
    found = status_file(tmp_path, None, None, version=None)
    assert value(found, 'pgbackrest_exporter_status', stanza=STANZA) == 0
    assert value(found, 'pgbackrest_postgresql_up', stanza=STANZA) == 0
    assert set(found) == {'pgbackrest_exporter_status', 'pgbackrest_metrics_last_update_timestamp_seconds',
                          'pgbackrest_postgresql_up'}


def test_archiving_off(tmp_path):
    found = status_file(tmp_path, None, dict(ARCHIVER, archive_mode='off', last_archived=None, last_failed=None))
    assert value(found, 'pgbackrest_archive_mode_enabled', stanza=STANZA) == 0
    assert value(found, 'pgbackrest_archive_last_archived_timestamp_seconds', stanza=STANZA) == 0


def test_status_file_is_replaced_whole(tmp_path):
    directory = tmp_path / 'node-exporter'
    status_file(directory, stanza_of('info-full-diff-incr.json'), ARCHIVER)
    path = directory / ('pgbackrest_%s_status.prom' % STANZA)
    inode = path.stat().st_ino
    status_file(directory, None, None)
    # Renamed over (node_exporter never reads half a file), readable by node_exporter, nothing left beside it.
    assert path.stat().st_ino != inode
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    assert os.listdir(str(directory)) == [path.name]


@pytest.mark.parametrize('version, number', [('2.45', 2045000), ('2.55.1', 2055001), ('2.60dev', 2060000), ('', 0)])
def test_version_number(version, number):
    assert _metrics._version_number(version) == number


# --- the runs file ----------------------------------------------------------------------------------------

def runs_file(directory):
    return families(str(directory / ('pgbackrest_%s_runs.prom' % STANZA)))


def test_write_run(tmp_path):
    _metrics.write_run(str(tmp_path), STANZA, 'full', 0, NOW - 30, NOW)
    found = runs_file(tmp_path)
    labels = dict(stanza=STANZA, backup_type='full')
    assert value(found, 'pgbackrest_backup_run_last_timestamp_seconds', **labels) == NOW
    assert value(found, 'pgbackrest_backup_run_exit_code', **labels) == 0
    assert value(found, 'pgbackrest_backup_run_duration_seconds', **labels) == 30
    assert value(found, 'pgbackrest_backup_run_last_success_timestamp_seconds', **labels) == NOW


def test_write_run_keeps_the_other_types_and_the_last_success(tmp_path):
    _metrics.write_run(str(tmp_path), STANZA, 'full', 0, NOW - 30, NOW)
    _metrics.write_run(str(tmp_path), STANZA, 'diff', 0, NOW + 3600, NOW + 3610)
    _metrics.write_run(str(tmp_path), STANZA, 'full', 50, NOW + 7200, NOW + 7201)
    assert _metrics.read_runs(str(tmp_path), STANZA) == {
        'full': dict(exit_code=50, last_run=int(NOW + 7201), duration=1, last_success=int(NOW)),
        'diff': dict(exit_code=0, last_run=int(NOW + 3610), duration=10, last_success=int(NOW + 3610))}
    found = runs_file(tmp_path)
    assert value(found, 'pgbackrest_backup_run_exit_code', stanza=STANZA, backup_type='full') == 50


def test_a_first_run_that_failed_has_never_succeeded(tmp_path):
    _metrics.write_run(str(tmp_path), STANZA, 'diff', 87, NOW - 5, NOW)
    assert _metrics.read_runs(str(tmp_path), STANZA)['diff']['last_success'] == 0


def test_read_runs_round_trip_and_other_stanzas(tmp_path):
    _metrics.write_run(str(tmp_path), STANZA, 'incr', 0, 100, 160)
    _metrics.write_run(str(tmp_path), 'chronos', 'full', 1, 100, 160)
    assert _metrics.read_runs(str(tmp_path), STANZA) == {
        'incr': dict(exit_code=0, last_run=160, duration=60, last_success=160)}
    assert list(_metrics.read_runs(str(tmp_path), 'chronos')) == ['full']


def test_read_runs_without_a_file_or_from_garbage(tmp_path):
    assert _metrics.read_runs(str(tmp_path), STANZA) == {}
    (tmp_path / ('pgbackrest_%s_runs.prom' % STANZA)).write_text('this is { not the text format\n')
    assert _metrics.read_runs(str(tmp_path), STANZA) == {}
    with pytest.raises(ValueError):
        _metrics.read_samples(str(tmp_path / ('pgbackrest_%s_runs.prom' % STANZA)))


def test_write_drill(tmp_path):
    _metrics.write_drill(str(tmp_path), STANZA, 0, 42)
    found = families(str(tmp_path / ('pgbackrest_%s_drill.prom' % STANZA)))
    assert value(found, 'pgbackrest_drill_restore_seconds', stanza=STANZA) == 42
    assert value(found, 'pgbackrest_drill_exit_code', stanza=STANZA) == 0


def test_write_verify_at_a_given_end(tmp_path):
    _metrics.write_verify(str(tmp_path), STANZA, 1, 3, 1000, end=1060)
    found = families(str(tmp_path / ('pgbackrest_%s_verify.prom' % STANZA)))
    assert value(found, 'pgbackrest_verify_last_run_timestamp_seconds', stanza=STANZA) == 1060
    assert value(found, 'pgbackrest_verify_duration_seconds', stanza=STANZA) == 60
    assert value(found, 'pgbackrest_verify_status', stanza=STANZA) == 1
    assert value(found, 'pgbackrest_verify_errors', stanza=STANZA) == 3


def test_without_prometheus_client(monkeypatch):
    monkeypatch.setitem(sys.modules, 'prometheus_client', None)
    with pytest.raises(ChronosError, match='install python3-prometheus-client'):
        _metrics.require_client()


# --- the backlog in pg_wal --------------------------------------------------------------------------------------

QUEUE = dict(ready_segments=3, ready_bytes=3 * 16777216, oldest_ready=NOW - 420, segment_size=16777216,
             pg_wal='/var/lib/postgresql/data/pg_wal')


def test_the_backlog_and_the_disk_that_holds_it(tmp_path):
    _metrics.write_status(str(tmp_path), STANZA, stanza_of('info-full-diff-incr.json'), ARCHIVER, '2.45', now=NOW,
                          queue=QUEUE, wal=dict(filesystem=(1000 * 2 ** 20, 400 * 2 ** 20), queue_max=250 * 2 ** 20,
                                                missing=2))
    found = families(str(tmp_path / ('pgbackrest_%s_status.prom' % STANZA)))
    assert value(found, 'pgbackrest_archive_ready_segments', stanza=STANZA) == 3
    assert value(found, 'pgbackrest_archive_ready_bytes', stanza=STANZA) == 3 * 16777216
    assert value(found, 'pgbackrest_archive_ready_oldest_age_seconds', stanza=STANZA) == 420
    assert value(found, 'pgbackrest_wal_filesystem_size_bytes', stanza=STANZA) == 1000 * 2 ** 20
    assert value(found, 'pgbackrest_wal_filesystem_avail_bytes', stanza=STANZA) == 400 * 2 ** 20
    assert value(found, 'pgbackrest_archive_push_queue_max_bytes', stanza=STANZA) == 250 * 2 ** 20
    assert value(found, 'pgbackrest_archive_missing_segments', stanza=STANZA) == 2
    assert found['pgbackrest_archive_ready_segments'][0] == 'gauge'


def test_nothing_waits(tmp_path):
    _metrics.write_status(str(tmp_path), STANZA, None, ARCHIVER, '2.45', now=NOW,
                          queue=dict(QUEUE, ready_segments=0, ready_bytes=0, oldest_ready=None), wal={})
    found = families(str(tmp_path / ('pgbackrest_%s_status.prom' % STANZA)))
    assert value(found, 'pgbackrest_archive_ready_oldest_age_seconds', stanza=STANZA) == 0
    # What was not read is left out, not written as 0: no alert reads a made-up value.
    for name in ('pgbackrest_wal_filesystem_avail_bytes', 'pgbackrest_archive_push_queue_max_bytes',
                 'pgbackrest_archive_missing_segments'):
        assert name not in found


def test_no_backlog_metrics_without_postgresql(tmp_path):
    found = status_file(tmp_path, stanza_of('info-full-diff-incr.json'), None)
    assert 'pgbackrest_archive_ready_segments' not in found
    assert value(found, 'pgbackrest_postgresql_up', stanza=STANZA) == 0
