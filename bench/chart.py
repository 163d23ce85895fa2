# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The benchmark's chart: one panel per phase (median bars, every run as a dot) and the archive lag."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=wrong-import-position

import report  # noqa: E402  pylint: disable=wrong-import-position

PANELS = ('full backup', 'differential backup', 'restore latest', 'stanza info', 'site.yml, no change')
LIMITS = {'full.defaults': ('full.stock', report.FULL_BACKUP_MAX_RATIO),
          'restore.defaults': ('restore.floor', report.RESTORE_MAX_FLOOR_RATIO),
          'site.fleet': ('site.one', report.SITE_FLEET_MAX_RATIO)}


def draw(results, path):
    samples = results.get('samples', {})
    m = report.medians(samples)
    figure, axes = plt.subplots(3, 2, figsize=(13, 11))
    axes = axes.flatten()
    for axis, phase in zip(axes, PANELS):
        series = [(key, contender) for key, p, contender in report.SERIES if p == phase and samples.get(key)]
        axis.set_title(phase)
        axis.set_xlabel('seconds (bar: median, dots: each run)')
        if not series:
            axis.text(0.5, 0.5, 'not measured', ha='center', va='center', transform=axis.transAxes)
            continue
        labels = [contender for _key, contender in series]
        positions = list(range(len(series)))[::-1]
        medians = [m[key] for key, _contender in series]
        colours = ['tab:green' if 'defaults' in key or key in ('info.module', 'site.one', 'site.fleet')
                   else 'tab:grey' for key, _contender in series]
        axis.barh(positions, medians, color=colours, alpha=0.8)
        for position, (key, _contender) in zip(positions, series):
            axis.plot(samples[key], [position] * len(samples[key]), 'k.', markersize=5)
            text = report.seconds_text(m[key])
            reference = report.REFERENCE.get(key)
            if reference and m.get(reference):
                text += '  (%.2fx %s)' % (m[key] / m[reference], report._short(reference))  # pylint: disable=protected-access
            axis.text(max(samples[key]), position, '  ' + text, va='center', fontsize=8)
            if key in LIMITS and m.get(LIMITS[key][0]):
                limit = m[LIMITS[key][0]] * LIMITS[key][1]
                axis.plot([limit, limit], [position - 0.4, position + 0.4], color='tab:red', linewidth=2)
        if phase == 'stanza info' and m.get('info.raw') is not None:
            limit = m['info.raw'] + report.MODULE_MAX_OVERHEAD_S
            axis.axvline(limit, color='tab:red', linestyle=':', linewidth=1)
        if phase == 'site.yml, no change':
            axis.axvline(report.SITE_ONE_HOST_MAX_S, color='tab:red', linestyle=':', linewidth=1)
        axis.set_yticks(positions)
        axis.set_yticklabels(labels, fontsize=8)
        axis.set_xlim(0, max(max(samples[key]) for key, _contender in series) * 1.5)
    lag_axis = axes[len(PANELS)]
    lag = results.get('archive_lag')
    lag_axis.set_title('WAL archive lag under pgbench load')
    if lag and lag.get('series'):
        times = [row[0] for row in lag['series']]
        lag_axis.plot(times, [row[1] for row in lag['series']], color='tab:green', label='lag (s)')
        lag_axis.axhline(report.ARCHIVE_MAX_LAG_S, color='tab:red', linestyle=':', linewidth=1, label='target')
        lag_axis.axvline(lag['duration'], color='tab:grey', linestyle='--', linewidth=1, label='load ends')
        lag_axis.set_xlabel('seconds since the load started')
        lag_axis.set_ylabel('oldest unarchived finished segment, age (s)')
        lag_axis.legend(fontsize=8)
    else:
        lag_axis.text(0.5, 0.5, 'not measured', ha='center', va='center', transform=lag_axis.transAxes)
    machine = results.get('machine', {})
    params = results.get('params', {})
    figure.suptitle('chronos.pgbackrest benchmark, %s: %s cores, %.0f GiB, pgbench scale %s (%s), %s runs each; '
                    'red marks: targets' % (params.get('started', '?'), machine.get('cores', '?'),
                                            machine.get('memory_gib', 0), params.get('scale', '?'),
                                            report.human_bytes(params.get('database_bytes')),
                                            params.get('repeat', '?')), fontsize=10)
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    figure.savefig(path, dpi=90)
    plt.close(figure)
