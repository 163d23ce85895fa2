# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The benchmark's arithmetic (bench/report.py) with fixed numbers: medians, ratios, verdicts per release,
differential shares, pg_stat_archiver, archive lag, and the side-by-side report.

Nothing here measures time: the benchmark itself runs only through `make bench`.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import os
import sys

import pytest

# tests/unit/bench/ -> the repository's bench/
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, os.pardir))
sys.path.insert(0, os.path.join(REPO, 'bench'))

import report  # noqa: E402  pylint: disable=wrong-import-position

TARGET_KEYS = [key for key, _issue, _text in report.TARGETS]

PASSING = dict(full_defaults=[3.0, 30.0, 3.5], full_stock=[30.0, 31.0, 29.0],
               restore_defaults=[5.0, 6.0, 7.0], restore_floor=[2.0, 2.5, 3.0],
               restore_network_defaults=[8.0, 9.0, 8.5], restore_network_defaults_p1=[20.0, 19.0, 21.0],
               info_module=[0.9, 0.8, 1.0], info_raw=[0.5, 0.6, 0.4],
               site_one=[8.0, 9.0, 40.0], site_ping=[2.0, 2.5, 2.1], site_fleet=[15.0, 18.0, 16.0])


def series(key):
    """The fixture's name of a series -> bench's: full_defaults -> full.defaults,
    restore_network_defaults_p1 -> restore_network.defaults-p1."""
    for phase in ('restore_network', 'full_network'):
        if key.startswith(phase + '_'):
            return phase + '.' + key[len(phase) + 1:].replace('_', '-')
    return key.replace('_', '.', 1)


def release(samples=None, block=True):
    """One release's document with the given sample series (keys use an underscore for the first dot: full_defaults)
    and sizes that meet the differential targets: a full of 100 MB, differentials of 10 MB (range) and 15 MB (spread)."""
    samples = PASSING if samples is None else samples
    return dict(
        samples=dict((series(key), value) for key, value in samples.items()),
        sizes={'full.defaults': [80e6, 80e6, 80e6], 'full.stock': [100e6, 100e6, 100e6],
               'diff_range.defaults': [8e6, 8e6, 9e6], 'diff_range.stock': [90e6] * 3,
               'diff_spread.defaults': [12e6, 12e6, 12e6], 'diff_spread.stock': [99e6] * 3},
        machine=dict(cores=2, memory_gib=23.5, os='Debian GNU/Linux 12 (bookworm)', postgresql='17.12',
                     pgbackrest='2.55.1' if block else '2.45', block_incremental=block),
        updates=dict(range=dict(condition='aid <= 150000', rows=150000, table_rows=3000000, pages=2460,
                                table_pages=49180),
                     spread=dict(condition='aid % 20 = 0', rows=150000, table_rows=3000000, pages=49100,
                                 table_pages=51640)),
        archiver=dict(one=dict(hosts=1, archived_before=12, archived_after=12, wal_bytes=0, runs=3),
                      fleet=dict(hosts=8, archived_before=40, archived_after=40, wal_bytes=0, runs=3)),
        archive_lag=dict(max_lag=12.0, median_lag=1.0),
        params=dict(database_bytes=512e6), settings={}, notes=[], network=dict(restore_process_max=8))


def verdicts(doc):
    rows = report.targets(doc)
    return [rows[key][1] for key in TARGET_KEYS]


def expected(**changes):
    """Every target met, except those named (by key) with their verdict."""
    return [changes.get(key, 'met') for key in TARGET_KEYS]


@pytest.mark.parametrize('values, result', [
    ([3.0, 1.0, 2.0], 2.0),
    ([1.0, 2.0, 3.0, 10.0], 2.5),
    ([None, 4.0], 4.0),
    ([], None),
])
def test_median(values, result):
    assert report.median(values) == result


@pytest.mark.parametrize('value, reference, result', [
    (10.0, 40.0, 0.25),
    (None, 40.0, None),
    (10.0, 0, None),
    (10.0, None, None),
])
def test_ratio(value, reference, result):
    assert report.ratio(value, reference) == result


def test_the_fixture_names_its_series_as_bench_does():
    assert set(release()['samples']) == {'full.defaults', 'full.stock', 'restore.defaults', 'restore.floor',
                                         'restore_network.defaults', 'restore_network.defaults-p1',
                                         'info.module', 'info.raw', 'site.one', 'site.ping', 'site.fleet'}


def test_every_target_met_with_the_medians_not_the_means():
    # Slow outliers (30 s, 40 s) move the means past their limits but not the medians.
    assert verdicts(release()) == expected()


@pytest.mark.parametrize('change, missed', [
    (dict(full_defaults=[4.6, 4.6, 4.6]), 'full'),             # 4.6 / 30 = 0.153 > 0.15
    (dict(restore_defaults=[7.6, 7.6, 7.6], restore_network_defaults=[9.0] * 3), 'restore'),   # 7.6 / 2.5 = 3.04 > 3
    (dict(restore_network_defaults=[12.1] * 3), 'network'),    # 12.1 / 6 = 2.02 > 2
    (dict(restore_network_defaults_p4=[5.6] * 3), 'best'),     # 8.5 / 5.6 = 1.52 > 1.5
    (dict(info_module=[1.1, 1.1, 1.1]), 'info'),               # 1.1 - 0.5 = 0.6 s > 0.5 s
    (dict(site_one=[20.5, 20.5, 20.5], site_fleet=[40.0] * 3), 'site_one'),   # > 20 s
    (dict(site_ping=[1.4, 1.4, 1.4]), 'site_ping'),            # 9 / 1.4 = 6.4 > 6
    (dict(site_fleet=[23.0, 23.0, 23.0]), 'site_fleet'),       # 23 / 9 = 2.56 > 2.5
])
def test_one_missed_target(change, missed):
    doc = release(dict(PASSING, **change))
    if missed == 'site_one':
        doc['samples']['site.ping'] = [4.0] * 3    # keep the ping ratio met: 20.5 / 4 = 5.1
    assert verdicts(doc) == expected(**{missed: 'MISSED'})


def test_limits_are_inclusive_except_the_archive_lag():
    doc = release(dict(PASSING, full_defaults=[4.5] * 3, full_stock=[30.0] * 3, restore_defaults=[7.5] * 3,
                       restore_network_defaults=[15.0] * 3, restore_network_defaults_p4=[10.0] * 3,
                       info_module=[1.0] * 3, site_one=[20.0] * 3, site_ping=[20.0 / 6] * 3, site_fleet=[50.0] * 3))
    doc['sizes']['diff_range.defaults'] = doc['sizes']['diff_spread.defaults'] = [16e6] * 3   # 16 / 80 = 20 %
    doc['archive_lag']['max_lag'] = 60.0
    close = 'met, within 10 % of the limit'
    assert verdicts(doc) == [close] * 3 + ['met'] + [close] * 7 + ['met', 'MISSED']


def test_a_figure_near_its_limit_is_met_but_marked_close():
    doc = release(dict(PASSING, site_one=[18.1] * 3, site_ping=[4.0] * 3, site_fleet=[30.0] * 3))
    assert verdicts(doc)[TARGET_KEYS.index('site_one')] == 'met, within 10 % of the limit'
    assert verdicts(doc)[TARGET_KEYS.index('site_fleet')] == 'met'


def test_a_larger_repository_misses_the_full_backup_target_even_when_faster():
    doc = release()
    doc['sizes']['full.defaults'] = [101e6] * 3
    assert verdicts(doc)[0] == 'MISSED'


def test_unmeasured_targets_say_so():
    assert verdicts(dict(samples={}, sizes={})) == ['not measured'] * len(TARGET_KEYS)


@pytest.mark.parametrize('backup, stored', [
    # pgBackRest 2.45: no block map.
    ({'info': {'repository': {'delta': 4000, 'size': 9000}}}, 4000),
    # Block incremental: the map stored with the backup counts too.
    ({'info': {'repository': {'delta': 4000, 'size': 9000, 'delta-map': 300, 'size-map': 700}}}, 4300),
])
def test_stored_bytes(backup, stored):
    assert report.stored_bytes(backup) == stored


def test_diff_share_is_each_contenders_differential_over_its_own_full():
    doc = release()
    assert report.diff_share(doc, 'range') == pytest.approx(8e6 / 80e6)
    assert report.diff_share(doc, 'spread', 'stock') == pytest.approx(0.99)
    assert report.diff_share(doc, 'spread', 'unbundled') is None


@pytest.mark.parametrize('size, verdict', [(16e6, 'met, within 10 % of the limit'), (16.1e6, 'MISSED'),
                                           (4e6, 'met')])
def test_diff_share_target_is_twenty_percent_of_the_full(size, verdict):
    doc = release()
    doc['sizes']['diff_spread.defaults'] = [size] * 3
    assert report.targets(doc)['diff_spread'][1] == verdict


def test_diff_share_text_says_whether_block_incremental_was_on():
    assert report.targets(release())['diff_range'][0] == '10 %, block incremental'
    assert report.targets(release(block=False))['diff_range'][0] == '10 %, no block incremental'


def test_archiver_growth_on_any_host_misses_the_target():
    doc = release()
    assert report.targets(doc)['archived'] == ('12 -> 12 on one host, +0 on 8 hosts; 0 B of WAL written', 'met')
    doc['archiver']['fleet']['archived_after'] = 43
    doc['archiver']['fleet']['wal_bytes'] = 3 * 16 * 1024 * 1024
    assert report.archived_growth(doc) == (3, 3 * 16 * 1024 * 1024)
    assert report.targets(doc)['archived'][1] == 'MISSED'


def test_wal_written_without_a_segment_archived_is_reported_but_meets_the_target():
    doc = release()
    doc['archiver']['one']['wal_bytes'] = 96
    assert report.targets(doc)['archived'] == ('12 -> 12 on one host, +0 on 8 hosts; 96 B of WAL written', 'met')


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


def two_releases():
    bookworm = release(block=False)
    bookworm['machine'].update(postgresql='15.14', pgbackrest='2.45')
    bookworm['sizes']['diff_range.defaults'] = [75e6] * 3     # no block incremental: files copied whole
    bookworm['sizes']['diff_spread.defaults'] = [79e6] * 3
    bookworm['settings'] = dict(defaults='repo1-bundle=y compress-type=zst', stock='start-fast=y')
    bookworm['seconds'] = 1100
    trixie = copy.deepcopy(release())
    trixie['samples']['site.fleet'] = [30.0] * 3                # 30 / 9 = 3.3x
    trixie['samples']['restore.unblocked'] = [2.0] * 3
    trixie['requests'] = {'restore.defaults': [1317] * 3, 'restore.unblocked': [16] * 3}
    trixie['seconds'] = 1210
    trixie['errors'] = {'info': 'ansible-playbook failed (exit 2):\nok: [x]\n[ERROR]: Task failed: option not valid\n'}
    return dict(params=dict(scale=30, repeat=3, started='2026-11-29 18:00 UTC', args='', seconds=2310,
                            releases=['bookworm', 'trixie']),
                releases=dict(trixie=trixie, bookworm=bookworm))


def test_verdicts_per_release_side_by_side():
    text = report.markdown(two_releases())
    assert '| target | issue | bookworm | trixie |' in text
    assert ('| differential after updating 5 % of the rows, in one range: <= 20 % of the full\'s repository size | 15 | '
            '94 %, no block incremental: **MISSED** | 10 %, block incremental: met |') in text
    assert '| no-change site.yml, eight hosts <= 2.5x one host | 15 | 1.78x (16.0 s): met | 3.33x (30.0 s): **MISSED** |' \
        in text
    assert '| no-change site.yml <= 6x an ad-hoc ansible -m ping of the same host | 15 | 4.3x (9.00 s vs 2.10 s): met |' \
        in text
    assert 'the whole run took 38 min 30 s (bookworm 18 min 20 s, trixie 20 min 10 s)' in text


def test_report_lists_the_differential_shares_and_the_measurements_per_release():
    text = report.markdown(two_releases())
    assert '| one range of accounts | collection defaults | 94 % | 10 % |' in text
    assert '| every 20th account | stock settings | 99 % | 99 % |' in text
    assert '- one range of accounts: bookworm: 150000 rows (5 % of them) on 5 % of pgbench_accounts\' pages;' in text
    assert '| full backup | pgBackRest, collection defaults | 3.50 s | 0.12x stock | 80.0 MB |  | 3.50 s | 0.12x stock | ' \
        '80.0 MB |  |' in text
    assert '| restore latest, S3 20 ms away | pgBackRest, collection defaults | 8.50 s | 1.42x at 0 ms |' in text
    assert '| site.yml, no change | one host | 9.00 s | 4.29x ping |  |  | 9.00 s | 4.29x ping |  |  |' in text
    assert '| restore latest | what-if: defaults with repo1-block=n | - |  |  |  | 2.00 s | 0.80x floor |  | 16 |' in text
    assert '| restore latest | pgBackRest, collection defaults | 6.00 s | 2.40x floor |  |  | 6.00 s | 2.40x floor |  | 1317 |' \
        in text


def test_report_explains_each_missed_target_for_its_release():
    text = report.markdown(two_releases())
    assert '- bookworm: Differential after updating one range of accounts (94 % of the full): pgBackRest 2.45 has no ' \
        'block incremental' in text
    assert '- trixie: site.yml on eight hosts (3.33x one host)' in text
    assert 'trixie: Differential' not in text
    assert '- **trixie, the info measurements failed**: Task failed: option not valid' in text


def test_explanations_only_for_missed_targets():
    assert report.explanations(release()) == []
    doc = release(dict(PASSING, full_defaults=[20.0] * 3))
    texts = report.explanations(doc)
    assert len(texts) == 1 and texts[0].startswith('Full backup (0.67x stock)')


def test_a_restore_slowed_by_the_network_names_the_best_setting_and_the_requests():
    doc = release(dict(PASSING, restore_network_defaults=[14.0] * 3, restore_network_defaults_p16=[7.0] * 3))
    doc['requests'] = {'restore_network.defaults': [1318] * 3, 'restore.defaults': [1318] * 3}
    assert report.targets(doc)['best'] == ('2.00x (best: defaults, process-max 16)', 'MISSED')
    texts = report.explanations(doc)
    assert len(texts) == 2
    assert texts[0].startswith('Restore with S3 20 ms away (2.33x the same restore at 0 ms): each of its 1318 requests')
    assert 'defaults, process-max 16 restored in 7.00 s' in texts[1]
    assert report.short_reasons(doc)[1] == (
        'the restore with S3 20 ms away took 2.00x the best setting measured (defaults, process-max 16: 7.00 s)')


def test_a_slow_restore_with_block_incremental_is_set_against_the_what_if_without_it():
    doc = release(dict(PASSING, restore_defaults=[13.0] * 3, restore_unblocked=[2.0] * 3,
                       restore_network_defaults=[14.0] * 3))
    doc['requests'] = {'restore.defaults': [1319, 1320, 1324], 'restore.unblocked': [9, 9, 10]}
    texts = report.explanations(doc)
    assert len(texts) == 1
    assert 'Without block incremental the same settings restore in 2.00 s (0.80x the floor), with 9 S3 requests ' \
        'against 1320: with repo1-block=y this pgBackRest fetched' in texts[0]
    assert 'pgbackrest_repo_block: false' in texts[0]


def test_defaults_without_block_incremental_on_s3_are_set_against_the_blocked_what_if():
    doc = release()
    doc['machine'].update(block_incremental=False, block_supported=True)
    doc['sizes'].update({'full.blocked': [80e6] * 3, 'diff_range.blocked': [1e6] * 3})
    doc['samples']['diff_range.blocked'] = [1.0] * 3
    assert report.targets(doc)['diff_block'] == ('10 % vs 1 %', 'MISSED')
    texts = report.explanations(doc)
    assert len(texts) == 1
    assert texts[0].startswith('Differential after updating one range of accounts: 10 % of the full with the defaults, '
                               '1 % with block incremental (the what-if), which the defaults leave off for an S3 '
                               'repository')
    assert report.short_reasons(doc) == [
        'the differential after the range update stored 10 % of the full, against 1 % with block incremental, which '
        'the defaults leave off for S3: it made the restore with S3 20 ms away slower']
    assert 'no: an S3 repository (what-if: repo1-block=y)' in report.markdown(dict(params={}, releases=dict(x=doc)))


def test_a_spread_update_misses_even_with_block_incremental_and_says_why():
    doc = release()
    doc['sizes']['diff_spread.defaults'] = [60e6] * 3
    texts = report.explanations(doc)
    assert len(texts) == 1
    assert texts[0].startswith('Differential after updating every 20th account (75 % of the full, with block '
                               'incremental; 99 % without it (stock)): the update changed 150000 rows (5 % of them) '
                               'on 95 % of pgbench_accounts\' pages.')


def test_readme_section_has_both_releases_and_the_reasons():
    text = report.readme_section(two_releases())
    assert 'bookworm (PostgreSQL 15.14, pgBackRest 2.45) and trixie (PostgreSQL 17.12, pgBackRest 2.55.1)' in text
    assert '| target | bookworm | trixie |' in text
    assert '| pg_stat_archiver.archived_count unchanged by the no-change runs (issue 15) | 12 -> 12 on one host, ' \
        '+0 on 8 hosts; 0 B of WAL written: met |' in text
    assert 'pgBackRest 2.45 has no block incremental (2.46+), so each changed file is copied whole' in text
    assert '- trixie: eight hosts took 3.33x one host' in text
    assert 'Not measured: the info measurements failed on trixie: Task failed: option not valid.' in text


@pytest.mark.parametrize('error, summary', [
    ('x failed (exit 2):\nok: [h]\n[ERROR]: Task failed: Module failed: no. Fix it.\nmore', 'Task failed: Module failed: no'),
    ('WAL archiving did not catch up\nsecond line', 'WAL archiving did not catch up'),
])
def test_error_summary(error, summary):
    assert report.error_summary(error) == summary
