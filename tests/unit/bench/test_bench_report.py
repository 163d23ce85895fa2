# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The benchmark's arithmetic (bench/report.py) with fixed numbers: medians, ratios, verdicts, archive lag.

Nothing here measures time: the benchmark itself runs only through `make bench`.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import sys

import pytest

# tests/unit/bench/ -> the repository's bench/
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir))
sys.path.insert(0, os.path.join(REPO, 'bench'))

import report  # noqa: E402  pylint: disable=wrong-import-position


def results(samples):
    """A results document with the given sample series (keys use an underscore for the dot: full_defaults)."""
    base = dict(samples={}, sizes={'full.defaults': [80e6, 80e6, 80e6], 'full.stock': [100e6, 100e6, 100e6]},
                archive_lag=dict(max_lag=12.0, median_lag=1.0))
    base['samples'] = dict((key.replace('_', '.', 1), value) for key, value in samples.items())
    return base


PASSING = dict(full_defaults=[10.0, 30.0, 10.5], full_stock=[30.0, 31.0, 29.0],
               restore_defaults=[5.0, 6.0, 7.0], restore_floor=[2.0, 2.5, 3.0],
               info_module=[0.9, 0.8, 1.0], info_raw=[0.5, 0.6, 0.4],
               site_one=[15.0, 16.0, 40.0], site_fleet=[25.0, 30.0, 28.0])


@pytest.mark.parametrize('values, expected', [
    ([3.0, 1.0, 2.0], 2.0),
    ([1.0, 2.0, 3.0, 10.0], 2.5),
    ([None, 4.0], 4.0),
    ([], None),
])
def test_median(values, expected):
    assert report.median(values) == expected


@pytest.mark.parametrize('value, reference, expected', [
    (10.0, 40.0, 0.25),
    (None, 40.0, None),
    (10.0, 0, None),
    (10.0, None, None),
])
def test_ratio(value, reference, expected):
    assert report.ratio(value, reference) == expected


def verdicts(document):
    return [row[2] for row in report.targets(document)]


def test_every_target_met_with_the_medians_not_the_means():
    # A slow outlier (30 s, 40 s) moves the mean past the limit but not the median.
    assert verdicts(results(PASSING)) == ['met'] * 6


@pytest.mark.parametrize('change, missed', [
    (dict(full_defaults=[13.0, 13.0, 13.0]), 0),           # 13 / 30 = 0.43 > 0.4
    (dict(restore_defaults=[7.6, 7.6, 7.6]), 1),           # 7.6 / 2.5 = 3.04 > 3
    (dict(info_module=[1.1, 1.1, 1.1]), 2),                # 1.1 - 0.5 = 0.6 s > 0.5 s
    (dict(site_one=[20.5, 20.5, 20.5]), 3),                # > 20 s
    (dict(site_fleet=[33.0, 33.0, 33.0]), 4),              # 33 / 16 = 2.06 > 2
])
def test_one_missed_target(change, missed):
    document = results(dict(PASSING, **change))
    expected = ['met'] * 6
    expected[missed] = 'MISSED'
    assert verdicts(document) == expected


def test_limits_are_inclusive_except_the_archive_lag():
    document = results(dict(PASSING, full_defaults=[12.0] * 3, full_stock=[30.0] * 3,
                            restore_defaults=[7.5] * 3, info_module=[1.0] * 3, site_one=[20.0] * 3,
                            site_fleet=[40.0] * 3))
    document['archive_lag']['max_lag'] = 60.0
    assert verdicts(document) == ['met, within 10 % of the limit'] * 5 + ['MISSED']


def test_a_figure_near_its_limit_is_met_but_marked_close():
    document = results(dict(PASSING, site_one=[18.1] * 3, site_fleet=[30.0] * 3))
    assert verdicts(document)[3:5] == ['met, within 10 % of the limit', 'met']


def test_a_larger_repository_misses_the_full_backup_target_even_when_faster():
    document = results(PASSING)
    document['sizes']['full.defaults'] = [101e6] * 3
    assert verdicts(document)[0] == 'MISSED'


def test_unmeasured_targets_say_so():
    assert verdicts(dict(samples={}, sizes={})) == ['not measured'] * 6


SEGMENT = 16 * 1024 * 1024


@pytest.mark.parametrize('name, number', [
    ('000000010000000000000005', 5),
    ('0000000100000001000000FF', 0x1FF),
    ('000000020000000A00000000', 0xA00),
])
def test_wal_segment_number(name, number):
    assert report.wal_segment_number(name, SEGMENT) == number


def test_archive_lag_is_the_age_of_the_oldest_finished_unarchived_segment():
    samples = [
        (100.0, '000000010000000000000010', '00000001000000000000000F'),  # all finished segments archived
        (101.0, '000000010000000000000012', '00000001000000000000000F'),  # 10 and 11 finished at 101
        (104.0, '000000010000000000000013', '000000010000000000000010'),  # 11 waits since 101; 12 since 104
        (105.0, '000000010000000000000013', '000000010000000000000012'),  # caught up
    ]
    assert report.archive_lag(samples, SEGMENT) == [(100.0, 0.0, 0), (101.0, 0.0, 2), (104.0, 3.0, 2),
                                                    (105.0, 0.0, 0)]


def test_archive_lag_before_anything_was_archived_counts_from_the_first_sample():
    samples = [(10.0, '000000010000000000000001', None), (12.0, '000000010000000000000002', None),
               (20.0, '000000010000000000000003', None)]
    assert report.archive_lag(samples, SEGMENT)[-1] == (20.0, 8.0, 2)


def test_markdown_has_machine_table_and_verdicts():
    document = results(PASSING)
    document['machine'] = dict(cores=2, memory_gib=23.5, os='Debian GNU/Linux 12 (bookworm)',
                               postgresql='15.18', pgbackrest='2.45')
    document['params'] = dict(scale=61, repeat=3, database_bytes=1.02e9, started='2026-11-24 14:00 UTC')
    text = report.markdown(document, ['a reason'])
    assert '2 cores, 23.5 GiB memory' in text
    assert '| full backup | pgBackRest, collection defaults | 10.5 s | 3 | 0.35x stock | 80.0 MB |  |' in text
    assert '| restore, defaults <= 3x the copy floor | 2.40x | met |' in text
    assert '- a reason' in text


def test_explanations_only_for_missed_targets():
    assert report.explanations(results(PASSING)) == []
    document = results(dict(PASSING, full_defaults=[20.0] * 3, full_unbundled=[35.0] * 3))
    document['files'] = {'full.defaults': 1000}
    texts = report.explanations(document)
    assert len(texts) == 1
    assert '1000 files' in texts[0] and '15 ms per' in texts[0]
