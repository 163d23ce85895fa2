# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus metrics for node_exporter's textfile collector, written with prometheus_client (Debian's
python3-prometheus-client), each file replaced atomically.

Names and labels follow pgbackrest_exporter (woblerr/pgbackrest_exporter v0.23) where the meaning is the
same, so its Grafana dashboard and rules written for it work on these files. What it lacks keeps names of
our own: the scheduled runs (pgbackrest_backup_run_*), WAL archiving as PostgreSQL sees it
(pgbackrest_archive_*), pgbackrest verify (pgbackrest_verify_*), the restore drill (pgbackrest_drill_*) and
when the files were written (pgbackrest_metrics_last_update_timestamp_seconds).

Files, for stanza S in the metrics directory:
  pgbackrest_S_status.prom   the repository, the stanza, its backups and WAL archiving (every few minutes, and
                             after every backup)
  pgbackrest_S_runs.prom     the last scheduled run of each backup type
  pgbackrest_S_verify.prom   the last pgbackrest verify
  pgbackrest_S_drill.prom    the last restore drill
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re
import time
from datetime import datetime

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _files
from ansible_collections.chronos.pgbackrest.plugins.module_utils._archiving import missing_segments, parse_size
from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import read_config_options
from ansible_collections.chronos.pgbackrest.plugins.module_utils._places import disk_usage
from ansible_collections.chronos.pgbackrest.plugins.module_utils._postgres import read_archive_queue, read_archiver
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError, untrusted_message

BACKUP_TYPES = ('full', 'diff', 'incr')
# pgbackrest_exporter's "last backup" selection: full is the newest full, diff the newest full or diff,
# incr the newest of any type.
LAST_OF = {'full': ('full',), 'diff': ('full', 'diff'), 'incr': ('full', 'diff', 'incr')}


def _client():
    try:
        import prometheus_client
        import prometheus_client.parser  # noqa: F401 pylint: disable=unused-import
    except ImportError:
        raise ChronosError('prometheus_client is missing: install python3-prometheus-client (the pgbackrest role does).')
    return prometheus_client


def require_client():
    """Fail now, before anything changes, when the metrics could not be written later."""
    _client()


def file_path(directory, stanza, kind):
    return os.path.join(directory, 'pgbackrest_%s_%s.prom' % (stanza, kind))


class _Writer(object):
    """Gauges in one registry, written to one file."""

    def __init__(self):
        self.client = _client()
        self.registry = self.client.CollectorRegistry()
        self.gauges = {}
        self.counters = {}
        # Counters are read from PostgreSQL, never counted here: they are handed over as families.
        self.registry.register(self)

    def collect(self):
        return list(self.counters.values())

    def count(self, name, documentation, labels, value):
        """A counter read elsewhere (name without _total, which the text format adds)."""
        from prometheus_client.core import CounterMetricFamily
        if name not in self.counters:
            self.counters[name] = CounterMetricFamily(name, documentation, labels=sorted(labels))
        self.counters[name].add_metric([labels[key] for key in sorted(labels)], value)

    def set(self, name, documentation, labels, value):
        if name not in self.gauges:
            self.gauges[name] = self.client.Gauge(name, documentation, sorted(labels), registry=self.registry)
        gauge = self.gauges[name]
        (gauge.labels(**labels) if labels else gauge).set(value)

    def write(self, path):
        # Written beside the file and renamed over it (node_exporter never reads half a file), in a directory root
        # alone can write, never through a link: _files.
        try:
            _files.write_file(path, self.client.generate_latest(self.registry), mode=0o644)
        except _files.UntrustedPath as exc:
            raise ChronosError('The metrics of %s were not written: %s' % (path, untrusted_message(exc)), refused=True)


def _version_number(version):
    """'2.55.1' -> 2055001, as `pgbackrest version --output num` prints it."""
    parts = [int(part) for part in re.findall(r'\d+', version or '')[:3]] + [0, 0, 0]
    return parts[0] * 1000000 + parts[1] * 1000 + parts[2]


def _block_incr(backup):
    return 'y' if backup.get('repo_size_map') is not None and backup.get('repo_delta_map') is not None else 'n'


def refresh(target, pgbackrest, directory, config=None, pg_path=None):
    """Read the repository, PostgreSQL's archiver, the WAL waiting in pg_wal and (with pg_path) the data directories
    restores kept, and write the status file; a part that cannot be read shows in it as such. Returns sentences saying
    what could not be read."""
    problems = []
    stanza = archiver = version = queue = None
    wal = dict(missing=None, filesystem=None, queue_max=None)
    try:
        version = pgbackrest.version()
        stanza = pgbackrest.stanza_info()
    except ChronosError as exc:
        problems.append('the repository cannot be read: %s' % exc.msg)
    try:
        archiver = read_archiver(target)
        queue = read_archive_queue(target)
    except ChronosError as exc:
        problems.append('PostgreSQL cannot be asked about WAL archiving: %s' % exc.msg)
    if queue:
        try:
            wal['filesystem'] = target.filesystem(queue['pg_wal'])
        except ChronosError as exc:
            problems.append(exc.msg)
        options = read_config_options(target, config or pgbackrest.config)
        limit = options.get(('global', 'archive-push-queue-max')) or options.get(
            ('global:archive-push', 'archive-push-queue-max'))
        wal['queue_max'] = parse_size(limit) if limit else 0
        if stanza:
            try:
                wal['missing'] = len(missing_segments(pgbackrest, stanza, queue['segment_size']))
            except ChronosError as exc:
                problems.append('the archived WAL cannot be listed: %s' % exc.msg)
    kept = None
    if pg_path:
        try:
            kept = read_kept(target, pg_path)
        except (ChronosError, IOError, OSError) as exc:
            problems.append('the kept data directories cannot be read: %s' % getattr(exc, 'msg', exc))
    try:
        held = pgbackrest.lock('metrics').held_seconds()
    except (ChronosError, IOError, OSError) as exc:
        held = None
        problems.append('the stanza lock cannot be read: %s' % getattr(exc, 'msg', exc))
    write_status(directory, pgbackrest.stanza, stanza, archiver, version, queue=queue, wal=wal, kept=kept,
                 lock_held=held)
    return problems


def read_kept(target, pg_path):
    """The data directories restores kept, read on this machine's disk: their count and bytes, and the filesystem they
    share with the data directory (size, available)."""
    place = target.data_place(pg_path)
    copies = place.kept()
    stat = os.statvfs(place.local if os.path.isdir(place.local) else os.path.dirname(place.local))
    return dict(count=len(copies), bytes=sum(disk_usage(copy.local) for copy in copies),
                filesystem=(stat.f_blocks * stat.f_frsize, stat.f_bavail * stat.f_frsize))


def write_status(directory, stanza_name, stanza=None, archiver=None, version=None, now=None, queue=None, wal=None,
                 kept=None, lock_held=None):
    """The status file. stanza is _pgbackrest.parse_stanza's (None when pgbackrest info failed); archiver is
    _postgres.read_archiver's and queue read_archive_queue's (None when PostgreSQL could not be asked); wal holds the
    filesystem of pg_wal (size, available), archive-push-queue-max and the segments missing from the archive."""
    now = time.time() if now is None else now
    out = _Writer()
    name = {'stanza': stanza_name}
    out.set('pgbackrest_exporter_status', 'pgBackRest exporter get data status.', name, 1 if stanza else 0)
    out.set('pgbackrest_metrics_last_update_timestamp_seconds', 'When these metrics were written.', name, now)
    if version:
        out.set('pgbackrest_version_info', 'Information about pgBackRest version.', {}, _version_number(version))
    if stanza:
        _stanza_metrics(out, stanza, now)
    if archiver:
        out.count('pgbackrest_archive_archived', 'WAL segments PostgreSQL archived (pg_stat_archiver).', name,
                  archiver['archived_count'])
        out.count('pgbackrest_archive_failed', 'Failed WAL archiving attempts (pg_stat_archiver).', name,
                  archiver['failed_count'])
        out.set('pgbackrest_archive_last_archived_timestamp_seconds', 'When PostgreSQL last archived a WAL segment.',
                name, archiver['last_archived'] or 0)
        out.set('pgbackrest_archive_last_failed_timestamp_seconds', 'When WAL archiving last failed.', name,
                archiver['last_failed'] or 0)
        out.set('pgbackrest_archive_mode_enabled', "Whether PostgreSQL's archive_mode is on.", name,
                1 if archiver['archive_mode'] in ('on', 'always') else 0)
    if queue:
        _queue_metrics(out, name, queue, wal or {}, now)
    if kept:
        out.set('pgbackrest_kept_copies', 'Data directories (or volumes) restores and rollbacks kept.', name, kept['count'])
        out.set('pgbackrest_kept_copies_bytes', 'Bytes the kept data directories hold.', name, kept['bytes'])
        out.set('pgbackrest_data_filesystem_size_bytes', 'Size of the filesystem of the data directory and its kept '
                'copies.', name, kept['filesystem'][0])
        out.set('pgbackrest_data_filesystem_avail_bytes', 'Bytes available there.', name, kept['filesystem'][1])
    out.set('pgbackrest_postgresql_up', 'Whether PostgreSQL answered for the archiving statistics.', name,
            1 if archiver else 0)
    if lock_held is not None:
        out.set('pgbackrest_lock_held_seconds', 'How long the process holding the stanza lock (a backup, restore, drill '
                'or verify) has run; 0 when no one holds it.', name, lock_held)
    out.write(file_path(directory, stanza_name, 'status'))


def _queue_metrics(out, name, queue, wal, now):
    """The backlog in pg_wal, read from PostgreSQL's archive_status: a crash-restart does not reset it."""
    out.set('pgbackrest_archive_ready_segments', 'WAL segments finished and waiting in pg_wal to be archived.', name,
            queue['ready_segments'])
    out.set('pgbackrest_archive_ready_bytes', 'Bytes of WAL waiting in pg_wal to be archived.', name, queue['ready_bytes'])
    out.set('pgbackrest_archive_ready_oldest_age_seconds',
            'How long the oldest WAL segment waiting to be archived has waited (0 when none waits).', name,
            max(0, now - queue['oldest_ready']) if queue['oldest_ready'] else 0)
    if wal.get('filesystem'):
        size, available = wal['filesystem']
        out.set('pgbackrest_wal_filesystem_size_bytes', 'Size of the filesystem that holds pg_wal.', name, size)
        out.set('pgbackrest_wal_filesystem_avail_bytes', 'Bytes available on the filesystem that holds pg_wal.', name,
                available)
    if wal.get('queue_max') is not None:
        out.set('pgbackrest_archive_push_queue_max_bytes',
                'archive-push-queue-max: past this backlog pgBackRest drops WAL from the archive (0: no limit).', name,
                wal['queue_max'])
    if wal.get('missing') is not None:
        out.set('pgbackrest_archive_missing_segments',
                'WAL segments missing from the repository between the start of the newest backup and the newest '
                'segment archived on its timeline.', name, wal['missing'])


def _stanza_metrics(out, stanza, now):
    name = {'stanza': stanza['name']}
    out.set('pgbackrest_stanza_status', 'Current stanza status.', name, stanza['status']['code'])
    out.set('pgbackrest_stanza_backup_lock_status', 'Current stanza backup lock status.', name,
            1 if stanza['backup_running'] else 0)
    out.set('pgbackrest_stanza_backup_total_bytes', 'Total size for backup in progress.', name,
            stanza.get('backup_progress_total') or 0)
    out.set('pgbackrest_stanza_backup_complete_bytes', 'Completed size for backup in progress.', name,
            stanza.get('backup_progress_complete') or 0)
    for repo in stanza['repos']:
        out.set('pgbackrest_repo_status', 'Current repository status.',
                dict(name, repo_key=str(repo['key']), cipher=repo['cipher'] or 'none'), repo['status']['code'])
    versions = dict(((db['id'], db['repo_key']), str(db['version'])) for db in stanza['db'])
    for archive in stanza['archive']:
        database = archive.get('database') or {}
        out.set('pgbackrest_wal_archive_status', 'Current WAL archive status.', dict(
            name, database_id=str(database.get('id', '')), repo_key=str(database.get('repo_key', '')),
            pg_version=versions.get((database.get('id'), database.get('repo_key')), ''), wal_min='', wal_max=''),
            1 if archive['min'] and archive['max'] else 0)
    for backup in stanza['backups']:
        labels = dict(name, backup_name=backup['label'], backup_type=backup['type'], block_incr=_block_incr(backup),
                      database_id=str(backup['database_id'] or ''), repo_key=str(backup['repo_key'] or ''))
        out.set('pgbackrest_backup_info', 'Backup info.', dict(
            labels, backrest_ver=backup['backrest_version'] or '', lsn_start=backup['lsn_start'] or '-',
            lsn_stop=backup['lsn_stop'] or '-', pg_version=versions.get((backup['database_id'], backup['repo_key']), ''),
            prior=backup['prior'] or '', wal_start=backup['wal_start'] or '', wal_stop=backup['wal_stop'] or ''), 1)
        out.set('pgbackrest_backup_duration_seconds', 'Backup duration.', dict(
            labels, start_time=_local(backup['start']), stop_time=_local(backup['stop'])),
            (backup['stop'] or 0) - (backup['start'] or 0))
        _sizes(out, 'pgbackrest_backup_', labels, backup, '')
    if any(backup['type'] == 'full' and not backup['error'] for backup in stanza['backups']):
        for backup_type in BACKUP_TYPES:
            last = [backup for backup in stanza['backups'] if backup['type'] in LAST_OF[backup_type]]
            backup = max(last, key=lambda item: item['stop'] or 0)
            labels = dict(name, backup_type=backup_type, block_incr=_block_incr(backup))
            out.set('pgbackrest_backup_since_last_completion_seconds',
                    'Seconds since the last completed full, differential or incremental backup.', labels,
                    max(0, now - (backup['stop'] or 0)))
            out.set('pgbackrest_backup_last_duration_seconds',
                    'Backup duration for the last full, differential or incremental backup.', labels,
                    (backup['stop'] or 0) - (backup['start'] or 0))
            _sizes(out, 'pgbackrest_backup_last_', labels, backup,
                   ' in the last full, differential or incremental backup')


def _sizes(out, prefix, labels, backup, suffix):
    for field, metric, text in (
            ('size', 'size_bytes', 'Full uncompressed size of the database'),
            ('delta', 'delta_bytes', 'Amount of data in the database to actually backup'),
            ('repo_size', 'repo_size_bytes', 'Full compressed files size to restore the database from backup'),
            ('repo_delta', 'repo_delta_bytes', 'Compressed files size in backup'),
            ('repo_size_map', 'repo_size_map_bytes', 'Size of block incremental map'),
            ('repo_delta_map', 'repo_delta_map_bytes', 'Size of block incremental delta map')):
        out.set(prefix + metric, text + suffix + '.', labels, backup.get(field) or 0)
    out.set(prefix + 'error_status', 'Backup error status' + suffix + '.', labels, 1 if backup['error'] else 0)


def _local(epoch):
    return datetime.fromtimestamp(epoch or 0).strftime('%Y-%m-%d %H:%M:%S')


def write_run(directory, stanza, backup_type, exit_code, start, end):
    """The runs file: the last scheduled run of backup_type (the other types' lines are kept)."""
    runs = read_runs(directory, stanza)
    runs[backup_type] = dict(exit_code=exit_code, last_run=end, duration=end - start,
                             last_success=end if exit_code == 0 else runs.get(backup_type, {}).get('last_success', 0))
    out = _Writer()
    for kind, run in sorted(runs.items()):
        labels = {'stanza': stanza, 'backup_type': kind}
        out.set('pgbackrest_backup_run_last_timestamp_seconds', 'When the last scheduled backup of this type ended.',
                labels, run['last_run'])
        out.set('pgbackrest_backup_run_exit_code', 'Exit code of the last scheduled backup of this type (0 is success).',
                labels, run['exit_code'])
        out.set('pgbackrest_backup_run_duration_seconds', 'Duration of the last scheduled backup of this type.',
                labels, run['duration'])
        out.set('pgbackrest_backup_run_last_success_timestamp_seconds',
                'When the last successful scheduled backup of this type ended.', labels, run['last_success'] or 0)
    out.write(file_path(directory, stanza, 'runs'))


def write_verify(directory, stanza, status, invalid, start, end=None):
    """The verify job's file: status 0 no problem, 1 missing or invalid files, 2 it could not run; end is when it
    ended (now unless given)."""
    end = time.time() if end is None else end
    _write_single(directory, stanza, 'verify', {
        'pgbackrest_verify_last_run_timestamp_seconds': ('When pgbackrest verify last ran.', end),
        'pgbackrest_verify_status': ('What pgbackrest verify found: 0 no problem, 1 missing or invalid files, '
                                     '2 it could not run.', status),
        'pgbackrest_verify_errors': ('Files and WAL segments pgbackrest verify found missing or invalid.', invalid),
        'pgbackrest_verify_duration_seconds': ('How long the last pgbackrest verify took.', end - start)})


def write_drill(directory, stanza, exit_code, restore_seconds):
    """The drill job's file."""
    _write_single(directory, stanza, 'drill', {
        'pgbackrest_drill_last_run_timestamp_seconds': ('When the last restore drill ended.', time.time()),
        'pgbackrest_drill_exit_code': ('Exit code of the last restore drill (0 is success).', exit_code),
        'pgbackrest_drill_restore_seconds': ('Restore time of the last restore drill.', restore_seconds)})


def _write_single(directory, stanza, kind, values):
    """A small file of our own (verify, drill): {metric name: (help, value)} labelled with the stanza."""
    out = _Writer()
    for name, (text, value) in sorted(values.items()):
        out.set(name, text, {'stanza': stanza}, value)
    out.write(file_path(directory, stanza, kind))


def read_samples(path):
    """{(metric name, frozenset of label items): value} from a textfile; {} when it is missing.
    Raises ValueError when the file is not in the text format."""
    try:
        with open(path) as handle:
            text = handle.read()
    except (IOError, OSError):
        return {}
    parser = _client().parser
    samples = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def read_runs(directory, stanza):
    """{backup type: {exit_code, last_run, duration, last_success}} from the runs file."""
    try:
        samples = read_samples(file_path(directory, stanza, 'runs'))
    except ValueError:
        return {}
    runs = {}
    fields = {'pgbackrest_backup_run_last_timestamp_seconds': 'last_run', 'pgbackrest_backup_run_exit_code': 'exit_code',
              'pgbackrest_backup_run_duration_seconds': 'duration',
              'pgbackrest_backup_run_last_success_timestamp_seconds': 'last_success'}
    for (metric, labels), value in samples.items():
        labels = dict(labels)
        if metric in fields and labels.get('stanza') == stanza and labels.get('backup_type') in BACKUP_TYPES:
            field = fields[metric]
            runs.setdefault(labels['backup_type'], {})[field] = int(value) if field == 'exit_code' else value
    return dict((kind, run) for kind, run in runs.items() if 'exit_code' in run and 'last_run' in run)
