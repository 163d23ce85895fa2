# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The benchmark's chart: one panel per phase with both releases (median bars, every run as a dot), the
differentials' share of the full backup, and the archive lag."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=wrong-import-position

import report  # noqa: E402  pylint: disable=wrong-import-position

PANELS = ('full backup', 'differential, 5 % of rows in one range', 'differential, every 20th row', 'restore latest',
          'stanza info', 'site.yml, no change')
COLOURS = ('tab:blue', 'tab:orange', 'tab:green', 'tab:purple')
# Series whose target is a ratio to another series: the red mark is the limit on that reference's median.
LIMITS = {'full.defaults': ('full.stock', report.FULL_BACKUP_MAX_RATIO),
          'restore.defaults': ('restore.floor', report.RESTORE_MAX_FLOOR_RATIO),
          'site.one': ('site.ping', report.SITE_PING_MAX_RATIO),
          'site.fleet': ('site.one', report.SITE_FLEET_MAX_RATIO)}


def _timing_panel(axis, phase, docs):
    axis.set_title(phase)
    axis.set_xlabel('seconds (bar: median, dots: each run)')
    rows = []   # (label, colour, samples, median, ratio text, limit)
    for key, series_phase, contender in report.SERIES:
        if series_phase != phase:
            continue
        for number, (release, doc) in enumerate(docs):
            samples = doc.get('samples', {}).get(key)
            if not samples:
                continue
            m = report.medians(doc['samples'])
            reference = report.REFERENCE.get(key)
            text = report.seconds_text(m[key])
            if reference and m.get(reference):
                text += '  (%.2fx %s)' % (m[key] / m[reference], report.SHORT.get(reference, reference))
            limit = None
            if key in LIMITS and m.get(LIMITS[key][0]):
                limit = m[LIMITS[key][0]] * LIMITS[key][1]
            rows.append(('%s, %s' % (contender, release), COLOURS[number % len(COLOURS)], samples, m[key], text,
                         limit))
    if not rows:
        axis.text(0.5, 0.5, 'not measured', ha='center', va='center', transform=axis.transAxes)
        return
    positions = list(range(len(rows)))[::-1]
    axis.barh(positions, [row[3] for row in rows], color=[row[1] for row in rows], alpha=0.7)
    for position, (_label, _colour, samples, _median, text, limit) in zip(positions, rows):
        axis.plot(samples, [position] * len(samples), 'k.', markersize=4)
        axis.text(max(samples), position, '  ' + text, va='center', fontsize=7)
        if limit is not None:
            axis.plot([limit, limit], [position - 0.4, position + 0.4], color='tab:red', linewidth=2)
    if phase == 'site.yml, no change':
        axis.axvline(report.SITE_ONE_HOST_MAX_S, color='tab:red', linestyle=':', linewidth=1)
    axis.set_yticks(positions)
    axis.set_yticklabels([row[0] for row in rows], fontsize=7)
    axis.set_xlim(0, max(max(row[2]) for row in rows) * 1.6)


def _share_panel(axis, docs):
    axis.set_title('differential repository size, share of the full backup\'s')
    rows = []
    for workload, label in report.WORKLOADS:
        for contender, contender_label in report.CONTENDER_NAMES:
            for number, (release, doc) in enumerate(docs):
                share = report.diff_share(doc, workload, contender)
                if share is not None:
                    rows.append(('%s: %s, %s' % (label, contender_label, release), COLOURS[number % len(COLOURS)],
                                 share * 100))
    if not rows:
        axis.text(0.5, 0.5, 'not measured', ha='center', va='center', transform=axis.transAxes)
        return
    positions = list(range(len(rows)))[::-1]
    axis.barh(positions, [row[2] for row in rows], color=[row[1] for row in rows], alpha=0.7)
    for position, row in zip(positions, rows):
        axis.text(row[2], position, '  %.0f %%' % row[2], va='center', fontsize=7)
    axis.axvline(report.DIFF_MAX_SHARE * 100, color='tab:red', linestyle=':', linewidth=1)
    axis.set_yticks(positions)
    axis.set_yticklabels([row[0] for row in rows], fontsize=7)
    axis.set_xlim(0, 125)
    axis.set_xlabel('% of the full backup\'s repository bytes (red: the 20 % target)')


def _lag_panel(axis, docs):
    axis.set_title('WAL archive lag under pgbench load')
    drawn = False
    for number, (release, doc) in enumerate(docs):
        lag = doc.get('archive_lag')
        if not lag or not lag.get('series'):
            continue
        drawn = True
        axis.plot([row[0] for row in lag['series']], [row[1] for row in lag['series']],
                  color=COLOURS[number % len(COLOURS)], label='%s lag (s)' % release)
        axis.axvline(lag['duration'], color='tab:grey', linestyle='--', linewidth=1)
    if not drawn:
        axis.text(0.5, 0.5, 'not measured', ha='center', va='center', transform=axis.transAxes)
        return
    axis.axhline(report.ARCHIVE_MAX_LAG_S, color='tab:red', linestyle=':', linewidth=1, label='target')
    axis.set_xlabel('seconds since the load started (dashed: load ends)')
    axis.set_ylabel('oldest unarchived finished segment, age (s)')
    axis.legend(fontsize=8)


def draw(results, path):
    docs = report.releases(results)
    figure, axes = plt.subplots(4, 2, figsize=(15, 17))
    axes = axes.flatten()
    for axis, phase in zip(axes, PANELS):
        _timing_panel(axis, phase, docs)
    _share_panel(axes[len(PANELS)], docs)
    _lag_panel(axes[len(PANELS) + 1], docs)
    params = results.get('params', {})
    machine = next((doc['machine'] for _r, doc in docs if doc.get('machine')), {})
    figure.suptitle('chronos.pgbackrest benchmark, %s: %s\n%s cores, %.0f GiB, pgbench scale %s, %s runs each; '
                    'red marks: targets' % (
                        params.get('started', '?'), ', '.join(
                            '%s (PostgreSQL %s, pgBackRest %s)' % (release, (doc.get('machine') or {}).get(
                                'postgresql', '?'), (doc.get('machine') or {}).get('pgbackrest', '?'))
                            for release, doc in docs),
                        machine.get('cores', '?'), machine.get('memory_gib', 0), params.get('scale', '?'),
                        params.get('repeat', '?')), fontsize=10)
    figure.tight_layout(rect=(0, 0, 1, 0.96))
    figure.savefig(path, dpi=80)
    plt.close(figure)
