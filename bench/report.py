# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The benchmark's arithmetic and its report: medians, ratios, target verdicts, archive lag, markdown.

Pure functions of the numbers bench.py measured (no clock, no lab), so tests/unit/test_bench_report.py
checks them with fixed numbers.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import statistics

# The targets of issue 7, as limits on figures computed by figures().
FULL_BACKUP_MAX_RATIO = 0.4      # defaults / stock, full backup time
RESTORE_MAX_FLOOR_RATIO = 3.0    # defaults restore / copy floor
MODULE_MAX_OVERHEAD_S = 0.5      # pgbackrest_info task - raw `pgbackrest info`
SITE_ONE_HOST_MAX_S = 20.0       # no-change site.yml, one host
SITE_FLEET_MAX_RATIO = 2.0       # eight hosts / one host
ARCHIVE_MAX_LAG_S = 60.0         # oldest finished-but-unarchived WAL segment, under load

# What each sample series is, in report order: (key, phase, contender).
SERIES = (
    ('full.defaults', 'full backup', 'pgBackRest, collection defaults'),
    ('full.stock', 'full backup', 'pgBackRest, stock settings'),
    ('full.basebackup', 'full backup', 'pg_basebackup -Ft -z'),
    ('full.unbundled', 'full backup', 'what-if: defaults with repo1-bundle=n'),
    ('diff.defaults', 'differential backup', 'pgBackRest, collection defaults'),
    ('diff.stock', 'differential backup', 'pgBackRest, stock settings'),
    ('diff.unbundled', 'differential backup', 'what-if: defaults with repo1-bundle=n'),
    ('restore.defaults', 'restore latest', 'pgBackRest, collection defaults'),
    ('restore.stock', 'restore latest', 'pgBackRest, stock settings'),
    ('restore.unbundled', 'restore latest', 'what-if: defaults with repo1-bundle=n'),
    ('restore.floor', 'restore latest', 'floor: cp -a + fsync'),
    ('restore.copy', 'restore latest', 'cp -a alone (no fsync)'),
    ('info.module', 'stanza info', 'pgbackrest_info task (in a playbook)'),
    ('info.command', 'stanza info', 'command task running pgbackrest info'),
    ('info.raw', 'stanza info', 'raw pgbackrest info (docker exec)'),
    ('info.adhoc', 'stanza info', 'ansible ad-hoc pgbackrest_info (with start-up)'),
    ('site.one', 'site.yml, no change', 'one host (inventories/lab)'),
    ('site.fleet', 'site.yml, no change', 'eight hosts, forks 8'),
)
# The reference each series is compared with in the "ratio" column.
REFERENCE = {
    'full.defaults': 'full.stock', 'full.basebackup': 'full.stock', 'full.unbundled': 'full.stock',
    'diff.defaults': 'diff.stock', 'diff.unbundled': 'diff.stock',
    'restore.defaults': 'restore.floor', 'restore.stock': 'restore.floor', 'restore.unbundled': 'restore.floor',
    'restore.copy': 'restore.floor',
    'info.module': 'info.raw', 'info.command': 'info.raw', 'info.adhoc': 'info.raw',
    'site.fleet': 'site.one',
}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(value, reference):
    if value is None or reference in (None, 0):
        return None
    return value / reference


def medians(samples):
    return dict((key, median(values)) for key, values in samples.items())


def wal_segment_number(name, segment_size=16 * 1024 * 1024):
    """'000000010000000A000000FF' -> its position in the WAL stream (timeline ignored)."""
    per_log = 0x100000000 // segment_size
    return int(name[8:16], 16) * per_log + int(name[16:24], 16)


def archive_lag(samples, segment_size=16 * 1024 * 1024):
    """Archive lag at each sample, from (seconds, current WAL file, last archived WAL file) samples.

    A segment is finished when the current WAL file first moves past it; the lag at a sample is the
    age of the oldest finished segment not archived yet (0 when every finished segment is archived):
    how much committed work a restore from the repository would miss at that moment. Returns a list
    of (seconds, lag seconds, finished segments waiting).
    """
    finished_at = {}
    result = []
    previous = first = None
    for seconds, current, archived in samples:
        now = wal_segment_number(current, segment_size)
        first = now if first is None else first
        if previous is not None:
            for segment in range(previous, now):
                finished_at.setdefault(segment, seconds)
        previous = now if previous is None else max(previous, now)
        done = wal_segment_number(archived, segment_size) if archived else None
        # Nothing archived yet: the segments written since the first sample are waiting.
        oldest_waiting = first if done is None else done + 1
        waiting = max(0, now - oldest_waiting)
        if waiting and oldest_waiting in finished_at:
            lag = seconds - finished_at[oldest_waiting]
        else:
            lag = 0.0
        result.append((seconds, lag, waiting))
    return result


def figures(results):
    """The figures the targets are about, from the medians (None when not measured)."""
    m = medians(results.get('samples', {}))
    sizes = medians(results.get('sizes', {}))
    lag = results.get('archive_lag') or {}
    return dict(
        full_ratio=ratio(m.get('full.defaults'), m.get('full.stock')),
        full_size_defaults=sizes.get('full.defaults'),
        full_size_stock=sizes.get('full.stock'),
        restore_floor_ratio=ratio(m.get('restore.defaults'), m.get('restore.floor')),
        module_overhead=(m['info.module'] - m['info.raw'])
        if m.get('info.module') is not None and m.get('info.raw') is not None else None,
        site_one=m.get('site.one'),
        site_fleet=m.get('site.fleet'),
        site_fleet_ratio=ratio(m.get('site.fleet'), m.get('site.one')),
        archive_max_lag=lag.get('max_lag'),
    )


CLOSE = 0.9   # a met target whose figure is above this share of its limit is reported as close


def _verdict(measured, met, limit=None):
    if measured is None:
        return 'not measured'
    if not met:
        return 'MISSED'
    if limit is not None and measured > CLOSE * limit:
        return 'met, within %d %% of the limit' % round((1 - CLOSE) * 100)
    return 'met'


def targets(results):
    """[(target, measured text, verdict)] for the targets of issue 7."""
    f = figures(results)
    rows = []
    size_ok = (f['full_size_defaults'] is not None and f['full_size_stock'] is not None
               and f['full_size_defaults'] <= f['full_size_stock'])
    rows.append(('full backup, defaults <= %.1fx stock time, repository no larger' % FULL_BACKUP_MAX_RATIO,
                 None if f['full_ratio'] is None else '%.2fx, repository %s vs %s' % (
                     f['full_ratio'], human_bytes(f['full_size_defaults']), human_bytes(f['full_size_stock'])),
                 _verdict(f['full_ratio'], f['full_ratio'] is not None
                          and f['full_ratio'] <= FULL_BACKUP_MAX_RATIO and size_ok, FULL_BACKUP_MAX_RATIO)))
    rows.append(('restore, defaults <= %.0fx the copy floor' % RESTORE_MAX_FLOOR_RATIO,
                 None if f['restore_floor_ratio'] is None else '%.2fx' % f['restore_floor_ratio'],
                 _verdict(f['restore_floor_ratio'], f['restore_floor_ratio'] is not None
                          and f['restore_floor_ratio'] <= RESTORE_MAX_FLOOR_RATIO, RESTORE_MAX_FLOOR_RATIO)))
    rows.append(('pgbackrest_info overhead <= %.1f s' % MODULE_MAX_OVERHEAD_S,
                 None if f['module_overhead'] is None else '%+.2f s' % f['module_overhead'],
                 _verdict(f['module_overhead'], f['module_overhead'] is not None
                          and f['module_overhead'] <= MODULE_MAX_OVERHEAD_S, MODULE_MAX_OVERHEAD_S)))
    rows.append(('no-change site.yml, one host <= %.0f s' % SITE_ONE_HOST_MAX_S,
                 None if f['site_one'] is None else '%.1f s' % f['site_one'],
                 _verdict(f['site_one'], f['site_one'] is not None and f['site_one'] <= SITE_ONE_HOST_MAX_S,
                          SITE_ONE_HOST_MAX_S)))
    rows.append(('no-change site.yml, eight hosts <= %.0fx one host' % SITE_FLEET_MAX_RATIO,
                 None if f['site_fleet_ratio'] is None else '%.1f s, %.2fx' % (f['site_fleet'], f['site_fleet_ratio']),
                 _verdict(f['site_fleet_ratio'], f['site_fleet_ratio'] is not None
                          and f['site_fleet_ratio'] <= SITE_FLEET_MAX_RATIO, SITE_FLEET_MAX_RATIO)))
    rows.append(('WAL archive lag under pgbench load < %.0f s' % ARCHIVE_MAX_LAG_S,
                 None if f['archive_max_lag'] is None else 'max %.1f s' % f['archive_max_lag'],
                 _verdict(f['archive_max_lag'], f['archive_max_lag'] is not None
                          and f['archive_max_lag'] < ARCHIVE_MAX_LAG_S, ARCHIVE_MAX_LAG_S)))
    return rows


def human_bytes(value):
    if value is None:
        return '-'
    for unit in ('B', 'kB', 'MB', 'GB'):
        if abs(value) < 1000 or unit == 'GB':
            return ('%d %s' % (value, unit)) if unit == 'B' else ('%.1f %s' % (value, unit))
        value /= 1000.0
    return None  # not reached


def seconds_text(value):
    if value is None:
        return '-'
    return '%.2f s' % value if value < 10 else '%.1f s' % value


def measurement_rows(results):
    """[(phase, contender, median text, runs, ratio text, size text, CPU busy text)] in report order."""
    samples = results.get('samples', {})
    sizes = results.get('sizes', {})
    busy = results.get('cpu_busy', {})
    m = medians(samples)
    rows = []
    for key, phase, contender in SERIES:
        if not samples.get(key):
            continue
        reference = REFERENCE.get(key)
        r = ratio(m[key], m.get(reference)) if reference else None
        ratio_text = '%.2fx %s' % (r, _short(reference)) if r is not None else ''
        rows.append((phase, contender, seconds_text(m[key]), len(samples[key]), ratio_text,
                     human_bytes(median(sizes[key])) if sizes.get(key) else '',
                     '%.0f %%' % (median(busy[key]) * 100) if busy.get(key) else ''))
    return rows


def _short(key):
    return {'full.stock': 'stock', 'diff.stock': 'stock', 'restore.floor': 'floor', 'info.raw': 'raw',
            'site.one': 'one host'}.get(key, key)


def markdown(results, explanations=None):
    """The results page: machine, dataset, measurements, archive lag, targets and what missed ones need."""
    machine = results.get('machine', {})
    params = results.get('params', {})
    lines = ['# Benchmark results', '',
             'Run %s: `make bench BENCH_ARGS="%s"`. Machine: %s cores, %.1f GiB memory, %s; '
             'PostgreSQL %s, pgBackRest %s. Dataset: pgbench scale %s, database %s. '
             'Each contender ran %s times, alternating; medians shown (method: bench/README.md).' % (
                 params.get('started', '?'), params.get('args', ''), machine.get('cores', '?'),
                 machine.get('memory_gib', 0.0), machine.get('os', '?'), machine.get('postgresql', '?'),
                 machine.get('pgbackrest', '?'), params.get('scale', '?'),
                 human_bytes(params.get('database_bytes')), params.get('repeat', '?')),
             '']
    settings = results.get('settings') or {}
    for name in ('defaults', 'stock'):
        if settings.get(name):
            lines.append('- %s: `%s`' % ('collection defaults' if name == 'defaults' else 'stock settings',
                                         settings[name]))
    if settings:
        lines.append('')
    lines += ['| phase | contender | median | runs | ratio | repository / output size | machine CPU busy |',
              '| --- | --- | ---: | ---: | --- | ---: | ---: |']
    for row in measurement_rows(results):
        lines.append('| %s | %s | %s | %d | %s | %s | %s |' % row)
    lag = results.get('archive_lag')
    if lag:
        lines += ['', 'WAL archive lag under `pgbench -c %s -T %s` (%s tps, %s of WAL, %s segments), sampled every '
                  '%.1f s: max %.1f s, median %.1f s, at most %d finished segment(s) waiting; %d archive failure(s). '
                  'A lag of 0 means every finished segment was archived by the next sample.' % (
                      lag.get('clients'), lag.get('duration'), '%.0f' % lag['tps'] if lag.get('tps') else '?',
                      human_bytes(lag.get('wal_bytes')), lag.get('segments'), lag.get('interval') or 0.0,
                      lag.get('max_lag', 0.0), lag.get('median_lag', 0.0), lag.get('max_waiting', 0),
                      lag.get('failed', 0))]
    lines += ['', '## Targets', '', '| target | measured | verdict |', '| --- | --- | --- |']
    for target, measured, verdict in targets(results):
        lines.append('| %s | %s | %s |' % (target, measured or '-', '**%s**' % verdict if verdict == 'MISSED'
                                           else verdict))
    if explanations:
        lines += ['', '## Missed targets: why, and what would close them', '']
        lines += ['- %s' % text for text in explanations]
    notes = observations(results) + (results.get('notes') or [])
    if notes:
        lines += ['', '## Notes from this run', ''] + ['- %s' % note for note in notes]
    return '\n'.join(lines) + '\n'


def summary(results):
    """A few lines for the terminal."""
    lines = ['%-20s %-46s %9s  %s' % (phase, contender, median_text, ratio_text)
             for phase, contender, median_text, _runs, ratio_text, _size, _busy in measurement_rows(results)]
    lines.append('')
    for target, measured, verdict in targets(results):
        lines.append('%s: %s -> %s' % (target, measured or '-', verdict))
    return '\n'.join(lines)


def explanations(results):
    """Why each missed target was missed and what would close it, from this run's own figures."""
    f = figures(results)
    m = medians(results.get('samples', {}))
    files = results.get('files') or {}
    busy = medians(results.get('cpu_busy', {}))
    cores = (results.get('machine') or {}).get('cores', '?')
    texts = []
    if f['full_ratio'] is not None and not (f['full_ratio'] <= FULL_BACKUP_MAX_RATIO
                                            and (f['full_size_defaults'] or 0) <= (f['full_size_stock'] or 0)):
        text = ('Full backup (%.2fx stock): the defaults bundle small files into few repository objects and '
                'compress with zst, with process-max %s on this machine; what is left is reading, compressing and '
                'encrypting the data on the cores the database shares. ' % (f['full_ratio'], results.get('process_max', '1')))
        count = median([n for n in [files.get('full.defaults')] if n])
        if m.get('full.unbundled') is not None and count:
            per_object = (m['full.unbundled'] - (m.get('full.defaults') or 0)) / count
            text += ('Without bundling (one object per file, %d files) they take %s (%.2fx stock), about %.0f ms per '
                     'object. ' % (count, seconds_text(m['full.unbundled']), ratio(m['full.unbundled'], m['full.stock']),
                                   per_object * 1000))
        text += ('What would close it: more backup processes (pgbackrest_process_max) on a host with cores to spare, '
                 'or a faster compression level.')
        if (f['full_size_defaults'] or 0) > (f['full_size_stock'] or 0):
            text += ' The repository is also larger with the defaults (%s vs %s).' % (
                human_bytes(f['full_size_defaults']), human_bytes(f['full_size_stock']))
        texts.append(text)
    if f['restore_floor_ratio'] is not None and f['restore_floor_ratio'] > RESTORE_MAX_FLOOR_RATIO:
        text = ('Restore (%.2fx the floor): the floor copies files already in the page cache on the same disk; the '
                'restore fetches the backup from the S3 endpoint (process-max %s), then '
                'decrypts and decompresses it. ' % (f['restore_floor_ratio'], results.get('process_max', '1')))
        if m.get('restore.unbundled') is not None:
            text += 'Without bundling it takes %s (%.2fx the floor). ' % (
                seconds_text(m['restore.unbundled']), ratio(m['restore.unbundled'], m['restore.floor']))
        text += ('What would close it: more parallel fetches for the restore itself (`--process-max` on the restore '
                 'command line: during an incident the database is down and every core is free for it).')
        texts.append(text)
    if f['module_overhead'] is not None and f['module_overhead'] > MODULE_MAX_OVERHEAD_S:
        own = (m['info.module'] - m['info.command']) if m.get('info.command') is not None else None
        texts.append('pgbackrest_info overhead (%+.2f s): Ansible\'s own cost per task (a command task running the '
                     'same pgbackrest info) is %s of it%s. What would close it: fewer round trips per task '
                     '(pipelining is on already); the module itself adds only what is left.' % (
                         f['module_overhead'], seconds_text((m.get('info.command') or 0) - m['info.raw']),
                         '' if own is None else ', the module\'s own code %+.2f s' % own))
    slowest = results.get('site_slowest') or []
    slow_text = ', '.join('%s (%s)' % (name, seconds_text(seconds)) for name, seconds in slowest[:3])
    if f['site_one'] is not None and f['site_one'] > SITE_ONE_HOST_MAX_S:
        texts.append('No-change site.yml on one host (%s): %d tasks ran, each paying a connection and a Python '
                     'start in the container; the slowest: %s. What would close it: fewer tasks that only read '
                     'state (one module reading all of it), and fact gathering limited to what the roles use.' % (
                         seconds_text(f['site_one']), results.get('site_tasks') or 0, slow_text or '-'))
    if f['site_fleet_ratio'] is not None and f['site_fleet_ratio'] > SITE_FLEET_MAX_RATIO:
        text = ('site.yml on eight hosts (%.2fx one host): with forks 8 every task runs on eight hosts at once, but '
                'the controller, the eight managed hosts (containers) and the S3 endpoint share this machine\'s %s '
                'cores. ' % (f['site_fleet_ratio'], cores))
        if busy.get('site.one') is not None and busy.get('site.fleet') is not None:
            cpu_seconds = busy['site.one'] * f['site_one'] * (cores if isinstance(cores, int) else 1)
            text += ('One host\'s run keeps the machine %.0f %% busy (about %.0f CPU-seconds); the eight-host run '
                     'keeps it %.0f %% busy: eight times the work queues for the CPU. ' % (
                         busy['site.one'] * 100, cpu_seconds, busy['site.fleet'] * 100))
        text += ('What would close it: managed hosts on machines of their own, as in production, and a controller '
                 'with a core per fork; fewer tasks per host would cut both runs.')
        texts.append(text)
    if f['archive_max_lag'] is not None and f['archive_max_lag'] >= ARCHIVE_MAX_LAG_S:
        texts.append('WAL archive lag (max %.1f s): archiving fell behind the WAL the load wrote. What would close '
                     'it: more archive-push processes (pgbackrest_archive_process_max) or a faster repository.'
                     % f['archive_max_lag'])
    return texts


def observations(results):
    """Findings without a target that the figures show (listed with the run's notes)."""
    sizes = medians(results.get('sizes', {}))
    texts = []
    full, diff = sizes.get('full.defaults'), sizes.get('diff.defaults')
    if full and diff and diff > full / 2:
        texts.append('The differential backup stored %s, %.0f %% of the full backup: pgBackRest copies every changed '
                     'file whole, and changing %s rows spread over pgbench_accounts changes every 1 GB segment file '
                     'of the table. Block incremental (repo1-block, which needs repo1-bundle; beta in pgBackRest '
                     '2.45) would copy only the changed blocks; not measured here.' % (
                         human_bytes(diff), 100.0 * diff / full,
                         (results.get('params') or {}).get('changed_rows', 'the')))
    return texts
