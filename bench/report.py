# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The benchmark's arithmetic and its report: medians, ratios, target verdicts per release, archive lag, markdown.

Pure functions of the numbers bench.py measured (no clock, no lab), so tests/unit/bench/test_bench_report.py
checks them with fixed numbers. A results document holds `params` and `releases`: one document per Debian
release (bookworm, trixie) with that release's samples, sizes and readings; the report sets them side by side.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import statistics

# The targets, as limits on figures computed by figures(); the issue that set each.
FULL_BACKUP_MAX_RATIO = 0.15     # defaults / stock, full backup time (issue 22; issue 7 had asked for 0.4)
DIFF_MAX_SHARE = 0.20            # differential's repository bytes / the full's, after a 5 % update (issue 15)
RESTORE_MAX_FLOOR_RATIO = 3.0    # defaults restore / copy floor (issue 7)
MODULE_MAX_OVERHEAD_S = 0.5      # pgbackrest_info task - raw `pgbackrest info` (issue 7)
SITE_ONE_HOST_MAX_S = 20.0       # no-change site.yml, one host (issue 7)
SITE_PING_MAX_RATIO = 6.0        # no-change site.yml / ad-hoc `ansible -m ping` of the same host (issue 15)
SITE_FLEET_MAX_RATIO = 2.5       # eight hosts / one host (issue 15; issue 7 had asked for 2x)
ARCHIVE_MAX_LAG_S = 60.0         # oldest finished-but-unarchived WAL segment, under load (issue 7)
NETWORK_LATENCY_MS = 20          # per request, in the network phase (issue 22)
NETWORK_MAX_RATIO = 2.0          # defaults restore at NETWORK_LATENCY_MS / the same restore at 0 ms (issue 22)
BEST_MAX_RATIO = 1.5             # defaults restore / the best setting measured, at NETWORK_LATENCY_MS (issue 22)
RESTORE_PROCESS_TRIALS = (1, 2, 4, 8, 16)
BLOCK_INCREMENTAL_SINCE = '2.46'

# What each sample series is, in report order: (key, phase, contender).
SERIES = (
    ('full.defaults', 'full backup', 'pgBackRest, collection defaults'),
    ('full.stock', 'full backup', 'pgBackRest, stock settings'),
    ('full.basebackup', 'full backup', 'pg_basebackup -Ft -z'),
    ('full.unblocked', 'full backup', 'what-if: defaults with repo1-block=n'),
    ('full.blocked', 'full backup', 'what-if: defaults with repo1-block=y'),
    ('diff_range.defaults', 'differential, 5 % of rows in one range', 'pgBackRest, collection defaults'),
    ('diff_range.stock', 'differential, 5 % of rows in one range', 'pgBackRest, stock settings'),
    ('diff_range.unblocked', 'differential, 5 % of rows in one range', 'what-if: defaults with repo1-block=n'),
    ('diff_range.blocked', 'differential, 5 % of rows in one range', 'what-if: defaults with repo1-block=y'),
    ('diff_spread.defaults', 'differential, every 20th row', 'pgBackRest, collection defaults'),
    ('diff_spread.stock', 'differential, every 20th row', 'pgBackRest, stock settings'),
    ('diff_spread.unblocked', 'differential, every 20th row', 'what-if: defaults with repo1-block=n'),
    ('diff_spread.blocked', 'differential, every 20th row', 'what-if: defaults with repo1-block=y'),
    ('restore.defaults', 'restore latest', 'pgBackRest, collection defaults'),
    ('restore.stock', 'restore latest', 'pgBackRest, stock settings'),
    ('restore.unblocked', 'restore latest', 'what-if: defaults with repo1-block=n'),
    ('restore.blocked', 'restore latest', 'what-if: defaults with repo1-block=y'),
    ('restore.floor', 'restore latest', 'floor: cp -a + fsync'),
    ('restore.copy', 'restore latest', 'cp -a alone (no fsync)'),
    ('restore_network.defaults', 'restore latest, S3 %d ms away' % NETWORK_LATENCY_MS, 'pgBackRest, collection defaults'),
    ('restore_network.stock', 'restore latest, S3 %d ms away' % NETWORK_LATENCY_MS, 'pgBackRest, stock settings'),
    ('restore_network.unblocked', 'restore latest, S3 %d ms away' % NETWORK_LATENCY_MS,
     'what-if: defaults with repo1-block=n'),
    ('restore_network.blocked', 'restore latest, S3 %d ms away' % NETWORK_LATENCY_MS,
     'what-if: defaults with repo1-block=y'),
) + tuple(
    ('restore_network.defaults-p%d' % count, 'restore latest, S3 %d ms away' % NETWORK_LATENCY_MS,
     'defaults with --process-max=%d' % count) for count in RESTORE_PROCESS_TRIALS) + (
    ('full_network.defaults', 'full backup, S3 %d ms away' % NETWORK_LATENCY_MS, 'pgBackRest, collection defaults'),
    ('full_network.unblocked', 'full backup, S3 %d ms away' % NETWORK_LATENCY_MS,
     'what-if: defaults with repo1-block=n'),
    ('full_network.blocked', 'full backup, S3 %d ms away' % NETWORK_LATENCY_MS,
     'what-if: defaults with repo1-block=y'),
    ('info.module', 'stanza info', 'pgbackrest_info task (in a playbook)'),
    ('info.command', 'stanza info', 'command task running pgbackrest info'),
    ('info.raw', 'stanza info', 'raw pgbackrest info (docker exec)'),
    ('info.adhoc', 'stanza info', 'ansible ad-hoc pgbackrest_info (with start-up)'),
    ('site.one', 'site.yml, no change', 'one host'),
    ('site.fleet', 'site.yml, no change', 'eight hosts, forks 8'),
    ('site.ping', 'site.yml, no change', 'ad-hoc ansible -m ping, the same host'),
)
# The reference each series is compared with in the "ratio" column.
REFERENCE = {
    'full.defaults': 'full.stock', 'full.basebackup': 'full.stock', 'full.unblocked': 'full.stock',
    'diff_range.defaults': 'diff_range.stock', 'diff_range.unblocked': 'diff_range.stock',
    'diff_spread.defaults': 'diff_spread.stock', 'diff_spread.unblocked': 'diff_spread.stock',
    'restore.defaults': 'restore.floor', 'restore.stock': 'restore.floor', 'restore.unblocked': 'restore.floor',
    'restore.copy': 'restore.floor', 'restore_network.defaults': 'restore.defaults',
    'restore_network.unblocked': 'restore.unblocked', 'full_network.defaults': 'full.defaults',
    'full_network.unblocked': 'full.unblocked', 'full.blocked': 'full.stock', 'diff_range.blocked': 'diff_range.stock',
    'diff_spread.blocked': 'diff_spread.stock', 'restore.blocked': 'restore.floor',
    'restore_network.blocked': 'restore.blocked', 'restore_network.stock': 'restore.stock', 'full_network.blocked': 'full.blocked',
    'info.module': 'info.raw', 'info.command': 'info.raw', 'info.adhoc': 'info.raw',
    'site.one': 'site.ping', 'site.fleet': 'site.one',
}
REFERENCE.update(('restore_network.defaults-p%d' % count, 'restore_network.defaults') for count in RESTORE_PROCESS_TRIALS)
SHORT = {'full.stock': 'stock', 'diff_range.stock': 'stock', 'diff_spread.stock': 'stock', 'restore.floor': 'floor',
         'restore.defaults': 'at 0 ms', 'restore.unblocked': 'at 0 ms', 'full.defaults': 'at 0 ms',
         'full.unblocked': 'at 0 ms', 'restore_network.defaults': 'defaults', 'restore.blocked': 'at 0 ms',
         'full.blocked': 'at 0 ms',
         'info.raw': 'raw', 'site.one': 'one host', 'site.ping': 'ping'}
WORKLOADS = (('range', 'one range of accounts'), ('spread', 'every 20th account'))
CONTENDER_NAMES = (('defaults', 'collection defaults'), ('stock', 'stock settings'),
                   ('unblocked', 'what-if: defaults with repo1-block=n'),
                   ('blocked', 'what-if: defaults with repo1-block=y'))


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(value, reference):
    if value is None or reference in (None, 0):
        return None
    return value / reference


def medians(samples):
    return dict((key, median(values)) for key, values in samples.items())


def stored_bytes(backup):
    """What one backup added to the repository (`info --output=json`): its files, compressed and encrypted, and
    with block incremental (pgBackRest 2.46+) the block map stored with them."""
    repository = (backup.get('info') or {}).get('repository') or {}
    return repository.get('delta', 0) + (repository.get('delta-map') or 0)


def version_at_least(version, minimum):
    """'2.55.1' >= '2.46' -> True."""
    def parts(text):
        return [int(p) for p in text.split('.') if p.isdigit()]
    return parts(version) >= parts(minimum)


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


def diff_share(doc, workload, contender='defaults'):
    """The differential's repository bytes as a share of the full's, medians of the same contender."""
    sizes = medians(doc.get('sizes', {}))
    return ratio(sizes.get('diff_%s.%s' % (workload, contender)), sizes.get('full.%s' % contender))


def block_contender(doc):
    """The contender measured with block incremental on: the defaults where they have it, else the blocked what-if
    where it ran; None where this pgBackRest has none."""
    if (doc.get('machine') or {}).get('block_incremental'):
        return 'defaults'
    return 'blocked' if (doc.get('samples') or {}).get('diff_range.blocked') else None


def archived_growth(doc):
    """(segments archived, WAL bytes written) on every host during the no-change runs; None when not measured."""
    archiver = doc.get('archiver')
    if not archiver:
        return None, None
    return (sum(g['archived_after'] - g['archived_before'] for g in archiver.values()),
            sum(g['wal_bytes'] for g in archiver.values()))


def figures(doc):
    """The figures the targets are about, from one release's medians (None when not measured)."""
    m = medians(doc.get('samples', {}))
    sizes = medians(doc.get('sizes', {}))
    lag = doc.get('archive_lag') or {}
    archived, wal_bytes = archived_growth(doc)
    best = best_network_restore(m)
    return dict(
        full_ratio=ratio(m.get('full.defaults'), m.get('full.stock')),
        full_size_defaults=sizes.get('full.defaults'),
        full_size_stock=sizes.get('full.stock'),
        diff_share_range=diff_share(doc, 'range'),
        diff_share_spread=diff_share(doc, 'spread'),
        diff_share_range_block=diff_share(doc, 'range', block_contender(doc)) if block_contender(doc) else None,
        restore_floor_ratio=ratio(m.get('restore.defaults'), m.get('restore.floor')),
        module_overhead=(m['info.module'] - m['info.raw'])
        if m.get('info.module') is not None and m.get('info.raw') is not None else None,
        site_one=m.get('site.one'),
        site_ping=m.get('site.ping'),
        site_ping_ratio=ratio(m.get('site.one'), m.get('site.ping')),
        site_fleet=m.get('site.fleet'),
        site_fleet_ratio=ratio(m.get('site.fleet'), m.get('site.one')),
        archived=archived,
        archived_wal_bytes=wal_bytes,
        archive_max_lag=lag.get('max_lag'),
        network_ratio=ratio(m.get('restore_network.defaults'), m.get('restore.defaults')),
        best_ratio=ratio(m.get('restore_network.defaults'), best[1]) if best else None,
        best_setting=best[0] if best else None,
    )


def best_network_restore(m):
    """(series, median) of the fastest restore measured with the S3 endpoint away; None when none was."""
    found = [(key, value) for key, value in m.items() if key.startswith('restore_network.') and value is not None]
    return min(found, key=lambda item: item[1]) if found else None


CLOSE = 0.9   # a met target whose figure is above this share of its limit is reported as close


def _verdict(measured, met, limit=None):
    if measured is None:
        return 'not measured'
    if not met:
        return 'MISSED'
    if limit is not None and measured > CLOSE * limit:
        return 'met, within %d %% of the limit' % round((1 - CLOSE) * 100)
    return 'met'


def _at_most(value, limit):
    return _verdict(value, value is not None and value <= limit, limit)


def _share_text(share, doc):
    if share is None:
        return None
    machine = doc.get('machine') or {}
    return '%.0f %%%s' % (share * 100, ', block incremental' if machine.get('block_incremental') else
                          ', no block incremental')


# The targets in report order: (key, issue, text).
TARGETS = (
    ('full', 22, 'full backup: defaults <= %.2fx the stock time, repository no larger' % FULL_BACKUP_MAX_RATIO),
    ('diff_range', 15, 'differential after updating 5 %% of the rows, in one range: <= %.0f %% of the full\'s '
                       'repository size' % (DIFF_MAX_SHARE * 100)),
    ('diff_spread', 15, 'differential after updating 5 %% of the rows, every 20th: <= %.0f %% of the full\'s '
                        'repository size' % (DIFF_MAX_SHARE * 100)),
    ('diff_block', 22, 'differential after updating 5 % of the rows, in one range: defaults no larger than with '
                       'block incremental'),
    ('restore', 7, 'restore: defaults <= %.0fx the copy floor' % RESTORE_MAX_FLOOR_RATIO),
    ('network', 22, 'restore with S3 %d ms away: defaults <= %.0fx the same restore at 0 ms' % (
        NETWORK_LATENCY_MS, NETWORK_MAX_RATIO)),
    ('best', 22, 'restore with S3 %d ms away: defaults <= %.1fx the best setting measured' % (
        NETWORK_LATENCY_MS, BEST_MAX_RATIO)),
    ('info', 7, 'pgbackrest_info overhead <= %.1f s' % MODULE_MAX_OVERHEAD_S),
    ('site_one', 7, 'no-change site.yml, one host <= %.0f s' % SITE_ONE_HOST_MAX_S),
    ('site_ping', 15, 'no-change site.yml <= %.0fx an ad-hoc ansible -m ping of the same host' % SITE_PING_MAX_RATIO),
    ('site_fleet', 15, 'no-change site.yml, eight hosts <= %.1fx one host' % SITE_FLEET_MAX_RATIO),
    ('archived', 15, 'pg_stat_archiver.archived_count unchanged by the no-change runs'),
    ('lag', 7, 'WAL archive lag under pgbench load < %.0f s' % ARCHIVE_MAX_LAG_S),
)


def targets(doc):
    """{key: (measured text, verdict)} for one release's targets (TARGETS)."""
    f = figures(doc)
    rows = {}
    size_ok = (f['full_size_defaults'] is not None and f['full_size_stock'] is not None
               and f['full_size_defaults'] <= f['full_size_stock'])
    rows['full'] = (None if f['full_ratio'] is None else '%.2fx, repository %s vs %s' % (
        f['full_ratio'], human_bytes(f['full_size_defaults']), human_bytes(f['full_size_stock'])),
        _verdict(f['full_ratio'], f['full_ratio'] is not None and f['full_ratio'] <= FULL_BACKUP_MAX_RATIO
                 and size_ok, FULL_BACKUP_MAX_RATIO))
    for workload in ('range', 'spread'):
        share = f['diff_share_' + workload]
        rows['diff_' + workload] = (_share_text(share, doc), _at_most(share, DIFF_MAX_SHARE))
    block_share = f['diff_share_range_block']
    rows['diff_block'] = (None if block_share is None or f['diff_share_range'] is None else '%.0f %% vs %.0f %%%s' % (
        f['diff_share_range'] * 100, block_share * 100,
        ' (the defaults are block incremental)' if block_contender(doc) == 'defaults' else ''),
        _verdict(block_share, block_share is not None and f['diff_share_range'] is not None
                 and f['diff_share_range'] <= block_share))
    rows['restore'] = (None if f['restore_floor_ratio'] is None else '%.2fx' % f['restore_floor_ratio'],
                       _at_most(f['restore_floor_ratio'], RESTORE_MAX_FLOOR_RATIO))
    rows['network'] = (None if f['network_ratio'] is None else '%.2fx' % f['network_ratio'],
                       _at_most(f['network_ratio'], NETWORK_MAX_RATIO))
    rows['best'] = (None if f['best_ratio'] is None else '%.2fx (best: %s)' % (
        f['best_ratio'], setting_text(f['best_setting'], doc)), _at_most(f['best_ratio'], BEST_MAX_RATIO))
    rows['info'] = (None if f['module_overhead'] is None else '%+.2f s' % f['module_overhead'],
                    _at_most(f['module_overhead'], MODULE_MAX_OVERHEAD_S))
    rows['site_one'] = (None if f['site_one'] is None else seconds_text(f['site_one']),
                        _at_most(f['site_one'], SITE_ONE_HOST_MAX_S))
    rows['site_ping'] = (None if f['site_ping_ratio'] is None else '%.1fx (%s vs %s)' % (
        f['site_ping_ratio'], seconds_text(f['site_one']), seconds_text(f['site_ping'])),
        _at_most(f['site_ping_ratio'], SITE_PING_MAX_RATIO))
    rows['site_fleet'] = (None if f['site_fleet_ratio'] is None else '%.2fx (%s)' % (
        f['site_fleet_ratio'], seconds_text(f['site_fleet'])), _at_most(f['site_fleet_ratio'], SITE_FLEET_MAX_RATIO))
    archiver = doc.get('archiver') or {}
    one = archiver.get('one')
    rows['archived'] = (None if f['archived'] is None else '%d -> %d on one host%s; %s of WAL written' % (
        one['archived_before'], one['archived_after'],
        '' if 'fleet' not in archiver else ', +%d on %d hosts' % (
            archiver['fleet']['archived_after'] - archiver['fleet']['archived_before'], archiver['fleet']['hosts']),
        human_bytes(f['archived_wal_bytes'])),
        _verdict(f['archived'], f['archived'] == 0))
    rows['lag'] = (None if f['archive_max_lag'] is None else 'max %.1f s' % f['archive_max_lag'],
                   _verdict(f['archive_max_lag'], f['archive_max_lag'] is not None
                            and f['archive_max_lag'] < ARCHIVE_MAX_LAG_S, ARCHIVE_MAX_LAG_S))
    return rows


def requests_text(doc, before=', ', after=''):
    """', 1318 requests to the S3 endpoint' for the defaults' restore with the endpoint away, when counted."""
    requests = medians(doc.get('requests', {})).get('restore_network.defaults')
    return '' if requests is None else '%s%d requests to the S3 endpoint%s' % (before, requests, after)


def setting_text(series, doc):
    """restore_network.defaults-p4 -> 'defaults, process-max 4'; the defaults with the process count they chose."""
    name = series.split('.', 1)[1]
    contender, _sep, count = name.partition('-p')
    if not count:
        count = str((doc.get('network') or {}).get('restore_process_max', '?'))
    return '%s, process-max %s' % (contender, count)


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


def minutes_text(seconds):
    return '-' if seconds is None else '%d min %02d s' % divmod(int(round(seconds)), 60)


def releases(results):
    """[(release, its document)] in the order they ran."""
    documents = results.get('releases') or {}
    order = (results.get('params') or {}).get('releases') or sorted(documents)
    return [(release, documents[release]) for release in order if release in documents]


def measurement_cells(doc, key):
    """(median, ratio, size, S3 requests) texts of one series on one release; None when not measured there."""
    samples = doc.get('samples', {})
    if not samples.get(key):
        return None
    m = medians(samples)
    sizes = doc.get('sizes', {})
    requests = doc.get('requests', {})
    reference = REFERENCE.get(key)
    r = ratio(m[key], m.get(reference)) if reference else None
    return (seconds_text(m[key]), '%.2fx %s' % (r, SHORT.get(reference, reference)) if r is not None else '',
            human_bytes(median(sizes[key])) if sizes.get(key) else '',
            '%d' % median(requests[key]) if requests.get(key) else '')


def _cell(verdict, measured):
    shown = '**MISSED**' if verdict == 'MISSED' else verdict
    return shown if measured is None else '%s: %s' % (measured, shown)


def _version_row(docs, name, key):
    return '| %s | %s |' % (name, ' | '.join(str((doc.get('machine') or {}).get(key, '?')) for _r, doc in docs))


def markdown(results):
    """The results page: machine, releases, targets per release, measurements, differentials, archiver, lag."""
    params = results.get('params', {})
    docs = releases(results)
    machine = next((doc['machine'] for _r, doc in docs if doc.get('machine')), {})
    names = [release for release, _doc in docs]
    lines = ['# Benchmark results', '',
             'Run %s: `make bench BENCH_ARGS="%s"`, %s, one after the other, each in a bench lab of its own; the '
             'whole run took %s (%s). Machine: %s cores, %.1f GiB memory, %s. Dataset: pgbench scale %s (%s). '
             'Each contender ran %s times, alternating; medians shown (method: bench/README.md).' % (
                 params.get('started', '?'), params.get('args', ''), ' and '.join(names),
                 minutes_text(params.get('seconds')),
                 ', '.join('%s %s' % (release, minutes_text(doc.get('seconds'))) for release, doc in docs),
                 machine.get('cores', '?'), machine.get('memory_gib', 0.0), machine.get('os', '?'),
                 params.get('scale', '?'),
                 ' / '.join(human_bytes((doc.get('params') or {}).get('database_bytes')) for _r, doc in docs),
                 params.get('repeat', '?')),
             '', '| | %s |' % ' | '.join(names), '| --- |%s' % (' --- |' * len(docs)),
             _version_row(docs, 'PostgreSQL', 'postgresql'), _version_row(docs, 'pgBackRest', 'pgbackrest')]
    lines.append('| block incremental in the collection defaults | %s |' % ' | '.join(
        block_text(doc.get('machine') or {}) for _r, doc in docs))
    for name, label in (('defaults', 'collection defaults'), ('stock', 'stock settings')):
        settings = ['`%s`' % (doc.get('settings') or {}).get(name, '-') for _r, doc in docs]
        lines.append('| %s | %s |' % (label, ' | '.join(settings)))
    failures = [(release, name, error_summary(error)) for release, doc in docs
                for name, error in sorted((doc.get('errors') or {}).items())]
    if failures:
        lines += ['']
        lines += ['- **%s, the %s measurements failed**: %s (the whole message: results.json)' % failure
                  for failure in failures]

    lines += ['', '## Targets', '', '| target | issue | %s |' % ' | '.join(names),
              '| --- | ---: |%s' % (' --- |' * len(docs))]
    verdicts = [targets(doc) for _r, doc in docs]
    for key, issue, text in TARGETS:
        lines.append('| %s | %d | %s |' % (text, issue, ' | '.join(_cell(v[key][1], v[key][0]) for v in verdicts)))

    texts = [(release, text) for release, doc in docs for text in explanations(doc)]
    if texts:
        lines += ['', '## Missed targets: why, and what would close them', '']
        lines += ['- %s: %s' % (release, text) for release, text in texts]

    lines += ['', '## Differential backups: repository size as a share of the full backup\'s', '',
              'The differential\'s repository bytes (`info`: `repository.delta`, plus `delta-map` with block '
              'incremental) over the full backup\'s, each contender against its own full backup. The updates ran in '
              'this order, so the second differential also holds the first update\'s pages.', '']
    for workload, label in WORKLOADS:
        updates = ['%s: %s' % (release, update_text((doc.get('updates') or {}).get(workload)))
                   for release, doc in docs if (doc.get('updates') or {}).get(workload)]
        if updates:
            lines.append('- %s: %s.' % (label, '; '.join(updates)))
    lines += ['', '| update | contender | %s |' % ' | '.join(names), '| --- | --- |%s' % (' ---: |' * len(docs))]
    for workload, label in WORKLOADS:
        for contender, contender_label in CONTENDER_NAMES:
            shares = [diff_share(doc, workload, contender) for _r, doc in docs]
            if any(share is not None for share in shares):
                lines.append('| %s | %s | %s |' % (label, contender_label, ' | '.join(
                    '-' if share is None else '%.0f %%' % (share * 100) for share in shares)))

    lines += ['', '## Measurements', '',
              'Size: what the backup added to the repository, pg_basebackup\'s tar files, or what a restore wrote. '
              'Requests: those the S3 endpoint served for the backup or restore.', '',
              '| phase | contender | %s |' % ' | '.join('%s median | ratio | size | requests' % r for r in names),
              '| --- | --- |%s' % (' ---: | --- | ---: | ---: |' * len(docs))]
    for key, phase, contender in SERIES:
        cells = [measurement_cells(doc, key) for _r, doc in docs]
        if any(cells):
            lines.append('| %s | %s | %s |' % (phase, contender, ' | '.join(
                ' | '.join(cell or ('-', '', '', '')) for cell in cells)))

    for release, doc in docs:
        archiver = doc.get('archiver')
        if archiver:
            lines += ['', '%s, pg_stat_archiver during the no-change runs (%d of site.yml on one host, %d on %d '
                      'hosts, after the WAL of every host had come to rest): %s.' % (
                          release, archiver['one']['runs'], archiver.get('fleet', {}).get('runs', 0),
                          archiver.get('fleet', {}).get('hosts', 0), '; '.join(
                              '%s: archived_count %d -> %d, %s of WAL written' % (
                                  group, figures_['archived_before'], figures_['archived_after'],
                                  human_bytes(figures_['wal_bytes']))
                              for group, figures_ in sorted(archiver.items(), key=lambda item: item[0] != 'one')))]
        lag = doc.get('archive_lag')
        if lag:
            lines += ['', '%s, WAL archive lag under `pgbench -c %s -T %s` (%s tps, %s of WAL, %s segments), sampled '
                      'every %.1f s: max %.1f s, median %.1f s, at most %d finished segment(s) waiting; %d archive '
                      'failure(s). A lag of 0 means every finished segment was archived by the next sample.' % (
                          release, lag.get('clients'), lag.get('duration'),
                          '%.0f' % lag['tps'] if lag.get('tps') else '?', human_bytes(lag.get('wal_bytes')),
                          lag.get('segments'), lag.get('interval') or 0.0, lag.get('max_lag', 0.0),
                          lag.get('median_lag', 0.0), lag.get('max_waiting', 0), lag.get('failed', 0))]
    notes = [(release, note) for release, doc in docs for note in observations(doc) + (doc.get('notes') or [])]
    if notes:
        lines += ['', '## Notes from this run', ''] + ['- %s: %s' % note for note in notes]
    return '\n'.join(lines) + '\n'


def block_text(machine):
    if machine.get('block_incremental'):
        return 'yes (repo1-block=y)'
    if machine.get('block_supported'):
        return 'no: an S3 repository (what-if: repo1-block=y)'
    return 'no (needs pgBackRest %s)' % BLOCK_INCREMENTAL_SINCE


def error_summary(error, limit=400):
    """What went wrong, in a sentence: the first of Ansible's [ERROR] line when there is one, else the first line."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    found = [line for line in lines if line.startswith('[ERROR]:')]
    text = found[0][len('[ERROR]:'):].strip().split('. ')[0] if found else (lines[0] if lines else '')
    return text if len(text) <= limit else text[:limit - 3] + '...'


def update_text(update):
    return '%d rows (%.0f %% of them) on %.0f %% of pgbench_accounts\' pages' % (
        update['rows'], 100.0 * update['rows'] / update['table_rows'],
        100.0 * update['pages'] / update['table_pages'])


def summary(results):
    """A few lines for the terminal: each target's verdict per release."""
    docs = releases(results)
    verdicts = [targets(doc) for _r, doc in docs]
    lines = ['%-78s %s' % ('target', '   '.join('%-34s' % release for release, _doc in docs))]
    for key, _issue, text in TARGETS:
        lines.append('%-78s %s' % (text[:78], '   '.join('%-34s' % _cell(v[key][1], v[key][0])[:34]
                                                         for v in verdicts)))
    for release, doc in docs:
        for name, error in sorted((doc.get('errors') or {}).items()):
            lines.append('%s, the %s measurements failed: %s' % (release, name, error_summary(error)))
    return '\n'.join(lines)


def readme_section(results):
    """The body of docs/benchmark.md: what `make bench` does, the targets per release, and why
    the missed ones were missed."""
    params = results.get('params', {})
    docs = releases(results)
    machine = next((doc['machine'] for _r, doc in docs if doc.get('machine')), {})
    names = [release for release, _doc in docs]
    lines = ['`make bench` measures, on %s, each in a lab of its own brought up for the run: full and differential '
             'backups with the collection\'s settings against pgBackRest\'s stock settings and `pg_basebackup`, the '
             'differential\'s repository size after updating 5 %% of the rows, restores against a `cp -a` floor, '
             'the same restores and full backups with the S3 endpoint %d ms away per request (the restore also with '
             '1 to 16 processes), `pgbackrest_info` against the raw command, a no-change `site.yml` (where '
             'PostgreSQL exists) against an ad-hoc `ansible -m ping` '
             'of the same host and on eight hosts against one, `pg_stat_archiver` across those no-change runs, and '
             'WAL archive lag under pgbench load. Each contender runs %s times, alternating; medians, a chart and '
             'every sample go to `bench/results/` (method and options: [bench/README.md](../bench/README.md); '
             '`make bench BENCH_ARGS="--size 100MB --repeat 1"` for a quick look). No test depends on these timings. '
             'Latest run, %s (%s cores, %.1f GiB, pgbench scale %s; the whole run took %s):' % (
                 ' and '.join('%s (PostgreSQL %s, pgBackRest %s)' % (
                     release, (doc.get('machine') or {}).get('postgresql', '?'),
                     (doc.get('machine') or {}).get('pgbackrest', '?')) for release, doc in docs),
                 NETWORK_LATENCY_MS, params.get('repeat', '?'), params.get('started', '?'), machine.get('cores', '?'),
                 machine.get('memory_gib', 0.0), params.get('scale', '?'), minutes_text(params.get('seconds'))),
             '', '| target | %s |' % ' | '.join(names), '| --- |%s' % (' --- |' * len(docs))]
    verdicts = [targets(doc) for _r, doc in docs]
    for key, issue, text in TARGETS:
        cells = [_cell(v[key][1], v[key][0]) for v in verdicts]
        lines.append('| %s (issue %d) | %s |' % (text, issue, ' | '.join(cells)))
    reasons = [(release, short_reasons(doc)) for release, doc in docs]
    if any(texts for _release, texts in reasons):
        lines += ['', 'Why the missed targets were missed:', '']
        lines += ['- %s: %s.' % (release, text) for release, texts in reasons for text in texts]
    failures = ['the %s measurements failed on %s: %s' % (name, release, error_summary(error))
                for release, doc in docs for name, error in sorted((doc.get('errors') or {}).items())]
    if failures:
        lines += ['', 'Not measured: %s.' % '; '.join(failures)]
    lines += ['', '[bench/results/results.md](bench/results/results.md) has every measurement, the reasons in full and '
              'what would close each missed target; [results.png](bench/results/results.png) the chart.']
    return '\n'.join(lines) + '\n'


def short_reasons(doc):
    """One sentence per missed target of one release, for docs/benchmark.md."""
    f = figures(doc)
    verdicts = targets(doc)
    machine = doc.get('machine') or {}
    cores = machine.get('cores', '?')
    texts = []
    if verdicts['full'][1] == 'MISSED':
        texts.append('the full backup with the defaults took %.2fx the stock time' % f['full_ratio'])
    for workload in ('range', 'spread'):
        if verdicts['diff_' + workload][1] != 'MISSED':
            continue
        update = (doc.get('updates') or {}).get(workload)
        pages = '' if not update else ', the update having touched %.0f %% of the table\'s pages' % (
            100.0 * update['pages'] / update['table_pages'])
        if not machine.get('block_incremental') and machine.get('block_supported'):
            blocked = diff_share(doc, workload, 'blocked')
            texts.append('the differential after the %s update stored %.0f %% of the full: the defaults leave block '
                         'incremental off for S3%s%s' % (
                             workload, f['diff_share_' + workload] * 100,
                             '' if blocked is None else ' (with it: %.0f %%)' % (blocked * 100), pages))
        elif not machine.get('block_incremental'):
            texts.append('the differential after the %s update stored %.0f %% of the full: pgBackRest %s has no block '
                         'incremental (%s+), so each changed file is copied whole%s' % (
                             workload, f['diff_share_' + workload] * 100, machine.get('pgbackrest', '?'),
                             BLOCK_INCREMENTAL_SINCE, pages))
        else:
            texts.append('the differential after the %s update stored %.0f %% of the full even with block '
                         'incremental%s: blocks that hold a changed row are stored whole' % (
                             workload, f['diff_share_' + workload] * 100, pages))
    if verdicts['diff_block'][1] == 'MISSED':
        texts.append('the differential after the range update stored %.0f %% of the full, against %.0f %% with block '
                     'incremental, which the defaults leave off for S3: it made the restore with S3 %d ms away slower'
                     % (f['diff_share_range'] * 100, f['diff_share_range_block'] * 100, NETWORK_LATENCY_MS))
    if verdicts['restore'][1] == 'MISSED':
        m = medians(doc.get('samples', {}))
        requests = medians(doc.get('requests', {}))
        text = 'the restore took %.2fx the copy floor' % f['restore_floor_ratio']
        if m.get('restore.unblocked') is not None and requests.get('restore.defaults') is not None \
                and requests.get('restore.unblocked') is not None:
            text += (', against %.2fx without block incremental: with it, pgBackRest made %d requests to the S3 '
                     'endpoint instead of %d' % (ratio(m['restore.unblocked'], m['restore.floor']),
                                                 requests['restore.defaults'], requests['restore.unblocked']))
        texts.append(text)
    if verdicts['network'][1] == 'MISSED':
        texts.append('the restore with S3 %d ms away took %.2fx the same restore at 0 ms%s' % (
            NETWORK_LATENCY_MS, f['network_ratio'], requests_text(doc)))
    if verdicts['best'][1] == 'MISSED':
        texts.append('the restore with S3 %d ms away took %.2fx the best setting measured (%s: %s)' % (
            NETWORK_LATENCY_MS, f['best_ratio'], setting_text(f['best_setting'], doc),
            seconds_text(medians(doc.get('samples', {}))[f['best_setting']])))
    if verdicts['info'][1] == 'MISSED':
        texts.append('the pgbackrest_info task cost %+.2f s over the raw command, mostly Ansible\'s own per-task cost'
                     % f['module_overhead'])
    if verdicts['site_one'][1] == 'MISSED':
        texts.append('the no-change site.yml took %s' % seconds_text(f['site_one']))
    if verdicts['site_ping'][1] == 'MISSED':
        texts.append('the no-change site.yml took %.1fx the ping: %d tasks each pay a module start in the '
                     'container, the ping one' % (f['site_ping_ratio'], doc.get('site_tasks') or 0))
    if verdicts['site_fleet'][1] == 'MISSED':
        texts.append('eight hosts took %.2fx one host because the controller, the eight host containers and the S3 '
                     'endpoint share this machine\'s %s cores' % (f['site_fleet_ratio'], cores))
    if verdicts['archived'][1] == 'MISSED':
        texts.append('the no-change runs archived %d WAL segment(s) and wrote %s of WAL' % (
            f['archived'], human_bytes(f['archived_wal_bytes'])))
    if verdicts['lag'][1] == 'MISSED':
        texts.append('WAL archiving lagged up to %.1f s' % f['archive_max_lag'])
    return texts


def explanations(doc):
    """Why each missed target of one release was missed and what would close it, from that release's figures."""
    f = figures(doc)
    m = medians(doc.get('samples', {}))
    busy = medians(doc.get('cpu_busy', {}))
    machine = doc.get('machine') or {}
    cores = machine.get('cores', '?')
    verdicts = targets(doc)
    texts = []
    if verdicts['full'][1] == 'MISSED':
        text = ('Full backup (%.2fx stock): the defaults bundle small files into few repository objects and '
                'compress with zst, with process-max %s on this machine; what is left is reading, compressing and '
                'encrypting the data on the cores the database shares. ' % (
                    f['full_ratio'], doc.get('process_max', '1')))
        text += ('What would close it: more backup processes (pgbackrest_process_max) on a host with cores to spare, '
                 'or a faster compression level.')
        if (f['full_size_defaults'] or 0) > (f['full_size_stock'] or 0):
            text += ' The repository is also larger with the defaults (%s vs %s).' % (
                human_bytes(f['full_size_defaults']), human_bytes(f['full_size_stock']))
        texts.append(text)
    for workload, label in WORKLOADS:
        if verdicts['diff_' + workload][1] != 'MISSED':
            continue
        update = (doc.get('updates') or {}).get(workload)
        share = f['diff_share_' + workload]
        touched = ('the update changed %s' % update_text(update)) if update else 'the update'
        if not machine.get('block_incremental') and machine.get('block_supported'):
            blocked = diff_share(doc, workload, 'blocked')
            texts.append('Differential after updating %s (%.0f %% of the full): the defaults leave block incremental '
                         'off for an S3 repository, so a differential copies every changed file whole; %s%s. What '
                         'would close it: pgbackrest_repo_block: true, at the cost in restore time the network '
                         'measurements show.' % (
                             label, share * 100, touched,
                             '' if blocked is None else '; with block incremental (the what-if) it stored %.0f %%' % (
                                 blocked * 100)))
        elif not machine.get('block_incremental'):
            texts.append('Differential after updating %s (%.0f %% of the full): pgBackRest %s has no block incremental '
                         '(repo1-block, %s and later, with bundling), so a differential copies every changed file '
                         'whole; %s, and every file of the table and its index that holds one of those pages is '
                         'stored whole. What would close it: pgBackRest %s or later, where the collection turns block '
                         'incremental on by itself.' % (
                             label, share * 100, machine.get('pgbackrest', '?'), BLOCK_INCREMENTAL_SINCE, touched,
                             BLOCK_INCREMENTAL_SINCE))
        else:
            stock = diff_share(doc, workload, 'stock')
            texts.append('Differential after updating %s (%.0f %% of the full, with block incremental%s): %s. Block '
                         'incremental stores the blocks that changed, and a block that holds one changed row has '
                         'changed; no file- or block-level backup can store less than the changed pages. What would '
                         'close it: nothing in the backup settings; changes that cluster, as in the range update, '
                         'are what block incremental saves.' % (
                             label, share * 100, '' if stock is None else '; %.0f %% without it (stock)' % (stock * 100),
                             touched))
    if verdicts['diff_block'][1] == 'MISSED':
        blocked = medians(doc.get('samples', {})).get('restore_network.blocked')
        texts.append('Differential after updating one range of accounts: %.0f %% of the full with the defaults, %.0f %% '
                     'with block incremental (the what-if), which the defaults leave off for an S3 repository: '
                     'with it a restore fetches a file\'s blocks one request after another%s. What would close it: '
                     'pgbackrest_repo_block: true where the repository\'s size matters more than restore time.' % (
                         f['diff_share_range'] * 100, f['diff_share_range_block'] * 100,
                         '' if blocked is None or m.get('restore_network.defaults') is None else
                         ' (with S3 %d ms away: %s against the defaults\' %s)' % (
                             NETWORK_LATENCY_MS, seconds_text(blocked), seconds_text(m['restore_network.defaults']))))
    if verdicts['restore'][1] == 'MISSED':
        text = ('Restore (%.2fx the floor): the floor copies files already in the page cache on the same disk; the '
                'restore fetches the backup from the S3 endpoint (process-max %s), then '
                'decrypts and decompresses it. ' % (f['restore_floor_ratio'], doc.get('process_max', '1')))
        requests = medians(doc.get('requests', {}))
        if m.get('restore.unblocked') is not None:
            with_block, without = requests.get('restore.defaults'), requests.get('restore.unblocked')
            text += 'Without block incremental the same settings restore in %s (%.2fx the floor)' % (
                seconds_text(m['restore.unblocked']), ratio(m['restore.unblocked'], m['restore.floor']))
            if with_block is not None and without is not None:
                text += ', with %d S3 requests against %d' % (without, with_block)
                if with_block > 10 * max(1, without):
                    text += (': with repo1-block=y this pgBackRest fetched the backup\'s files one request each '
                             'rather than its bundles whole, and every request to the S3 endpoint has a cost')
            text += '. '
            text += ('What would close it: more parallel fetches for the restore itself (`--process-max` on the '
                     'restore command line: during an incident the database is down and every core is free for it), '
                     'or block incremental off (pgbackrest_repo_block: false) where restore time matters more than '
                     'the differentials\' size.')
        else:
            text += ('What would close it: more parallel fetches for the restore itself (`--process-max` on the '
                     'restore command line: during an incident the database is down and every core is free for it).')
        texts.append(text)
    if verdicts['network'][1] == 'MISSED':
        requests = medians(doc.get('requests', {})).get('restore_network.defaults')
        texts.append('Restore with S3 %d ms away (%.2fx the same restore at 0 ms): each of its %s requests to the S3 '
                     'endpoint waits a round trip, and the restore overlaps them with %s processes. What would close '
                     'it: fewer requests (block incremental off, pgbackrest_repo_block: false, where restore time '
                     'matters more than the differentials\' size), or more processes '
                     '(pgbackrest_restore_process_max).' % (
                         NETWORK_LATENCY_MS, f['network_ratio'], '?' if requests is None else '%d' % requests,
                         (doc.get('network') or {}).get('restore_process_max', '?')))
    if verdicts['best'][1] == 'MISSED':
        texts.append('Restore with S3 %d ms away against the best setting measured (%.2fx): %s restored in %s. What '
                     'would close it: that setting as the default, if it holds on other machines '
                     '(pgbackrest_restore_process_max, pgbackrest_repo_block).' % (
                         NETWORK_LATENCY_MS, f['best_ratio'], setting_text(f['best_setting'], doc),
                         seconds_text(m[f['best_setting']])))
    if verdicts['info'][1] == 'MISSED':
        own = (m['info.module'] - m['info.command']) if m.get('info.command') is not None else None
        texts.append('pgbackrest_info overhead (%+.2f s): Ansible\'s own cost per task (a command task running the '
                     'same pgbackrest info) is %s of it%s. What would close it: fewer round trips per task '
                     '(pipelining is on already); the module itself adds only what is left.' % (
                         f['module_overhead'], seconds_text((m.get('info.command') or 0) - m['info.raw']),
                         '' if own is None else ', the module\'s own code %+.2f s' % own))
    slowest = doc.get('site_slowest') or []
    slow_text = ', '.join('%s (%s)' % (name, seconds_text(seconds)) for name, seconds in slowest[:3])
    if verdicts['site_one'][1] == 'MISSED':
        texts.append('No-change site.yml on one host (%s): %d tasks ran, each paying a connection and a Python '
                     'start in the container; the slowest: %s. What would close it: fewer tasks that only read '
                     'state (one module reading all of it).' % (
                         seconds_text(f['site_one']), doc.get('site_tasks') or 0, slow_text or '-'))
    if verdicts['site_ping'][1] == 'MISSED':
        texts.append('No-change site.yml against ping (%.1fx, %s vs %s): the ping is one module on one host, with '
                     'Ansible\'s start-up; site.yml ran %d tasks (%d skipped), each a module start in the container; '
                     'the slowest: %s. What would close it: fewer tasks per run, each doing more.' % (
                         f['site_ping_ratio'], seconds_text(f['site_one']), seconds_text(f['site_ping']),
                         doc.get('site_tasks') or 0, doc.get('site_skipped') or 0, slow_text or '-'))
    if verdicts['site_fleet'][1] == 'MISSED':
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
    if verdicts['archived'][1] == 'MISSED':
        texts.append('pg_stat_archiver (%d segment(s) archived, %s of WAL written during the no-change runs): a run '
                     'that changes nothing still made PostgreSQL write WAL, and archive_timeout then closes and '
                     'archives the segment. What would close it: find the task that writes (a pgbackrest check, a '
                     'CHECKPOINT or an ALTER SYSTEM run although nothing changed) and run it only after a change.' % (
                         f['archived'], human_bytes(f['archived_wal_bytes'])))
    if verdicts['lag'][1] == 'MISSED':
        texts.append('WAL archive lag (max %.1f s): archiving fell behind the WAL the load wrote. What would close '
                     'it: more archive-push processes (pgbackrest_archive_process_max) or a faster repository.'
                     % f['archive_max_lag'])
    return texts


def observations(doc):
    """Findings without a target that the figures show (listed with the run's notes)."""
    texts = []
    m = medians(doc.get('samples', {}))
    if m.get('site.one') is not None and doc.get('site_tasks') is not None:
        texts.append('the no-change site.yml on one host (%s) ran %d tasks (%d skipped); the slowest: %s' % (
            doc.get('site_settings') or 'the lab\'s settings', doc['site_tasks'], doc.get('site_skipped') or 0, ', '.join(
                '%s (%s)' % (name, seconds_text(seconds)) for name, seconds in (doc.get('site_slowest') or [])[:3])))
    return texts
