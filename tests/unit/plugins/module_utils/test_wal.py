# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/module_utils/_wal.py: pg_waldump's output read (captured in the lab), commits since a position in the
cluster's own pg_wal, and name and xid targets found in archived WAL segment by segment (commands faked)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _wal
from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import PgBackRest
from ansible_collections.chronos.pgbackrest.plugins.module_utils._postgres import parse_lsn
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError

from ansible_collections.chronos.pgbackrest.tests.unit.harness import fails, fixture_text, ok, waldump


def test_parse_waldump_of_a_captured_segment():
    records = _wal.parse_waldump(fixture_text('waldump-segment.out'))
    assert [(record['rmgr'], record['xid'], record['lsn']) for record in records] == [
        ('Transaction', 726, parse_lsn('0/04015E18')), ('Transaction', 727, parse_lsn('0/04015FF0')),
        ('XLOG', 0, parse_lsn('0/04016030')), ('Transaction', 728, parse_lsn('0/040160D8'))]
    assert records[2]['desc'] == 'RESTORE_POINT before-mig'
    assert _wal.commit_time(records[0]) == '2026-12-03 12:20:32.989500 UTC'
    assert _wal.commit_time(records[2]) is None


def test_parse_waldump_skips_what_is_not_a_record():
    text = 'pg_waldump: first record is after 0/4000000, at 0/4000028, skipping over 40 bytes\n' + fixture_text(
        'waldump-segment.out')
    assert len(_wal.parse_waldump(text)) == 4


@pytest.mark.parametrize('kind, value, index', [('name', 'before-mig', 2), ('xid', '728', 3), ('xid', '727', 1)])
def test_matches(kind, value, index):
    records = _wal.parse_waldump(fixture_text('waldump-segment.out'))
    assert [record for record in records if _wal.matches(kind, value, record)] == [records[index]]


def test_a_similar_name_does_not_match():
    records = _wal.parse_waldump(fixture_text('waldump-segment.out'))
    assert not [record for record in records if _wal.matches('name', 'before', record)]


def test_committed_since_reads_the_clusters_own_wal(host, commands):
    commands.expect(ok(fixture_text('waldump-segment.out').encode()))
    commits = _wal.committed_since(host, '/var/lib/postgresql/15/main', 1, parse_lsn('0/4015E00'),
                                   parse_lsn('0/4016100'))
    assert [commit['xid'] for commit in commits] == [726, 727, 728]
    assert commands.calls[0]['argv'][1:] == ['-p', '/var/lib/postgresql/15/main/pg_wal', '-t', '1', '-s', '0/4015E00',
                                             '-e', '0/4016100', '-r', 'Transaction']


def test_committed_since_up_to_the_end_of_what_was_written(host, commands):
    commands.expect(fails(1, b'pg_waldump: error: error in WAL record at 0/4016100: invalid record length at '
                             b'0/4016100: expected at least 24, got 0\n', stdout=waldump(
                                 ('Transaction', 751, '0/04016000', 'COMMIT 2026-12-03 12:21:00.000001 UTC'))))
    assert [commit['xid'] for commit in _wal.committed_since(host, '/data', 1, 1, 2 ** 30)] == [751]


def test_committed_since_when_that_wal_is_gone(host, commands):
    commands.expect(fails(1, b'pg_waldump: error: could not find file "000000010000000000000004": No such file or '
                             b'directory\n'))
    assert _wal.committed_since(host, '/data', 1, 1, 2 ** 30) is None


def test_nothing_to_read_when_nothing_was_written(host, commands):
    assert _wal.committed_since(host, '/data', 1, 100, 100) == []
    assert commands.calls == []


def backup(label, wal_start, lsn_stop):
    return dict(label=label, wal_start=wal_start, lsn_stop=lsn_stop)


B1 = backup('B1', '000000010000000000000002', '0/2000100')
B2 = backup('B2', '000000010000000000000006', '0/6000100')
SEGMENTS = ['0000000100000000000000%02X' % number for number in range(2, 10)]


class Scan(object):
    """A WalScan whose segments hold the records given; records which segments were read."""

    def __init__(self, per_segment):
        self.per_segment = per_segment
        self.read = []

    def records(self, segment, rmgr):
        self.read.append(segment)
        return [record for record in self.per_segment.get(segment, []) if record['rmgr'] == rmgr]


def point(lsn, name='x'):
    return dict(rmgr='XLOG', xid=0, lsn=parse_lsn(lsn), desc='RESTORE_POINT %s' % name)


def test_locate_reads_newest_first_down_to_the_chosen_backups_start():
    scan = Scan({'000000010000000000000007': [point('0/7000100')]})
    found = _wal.locate(scan, 'name', 'x', SEGMENTS, [B1, B2])
    assert found['lsn'] == parse_lsn('0/7000100')
    assert scan.read == ['000000010000000000000009', '000000010000000000000008', '000000010000000000000007',
                         '000000010000000000000006']


def test_locate_a_restore_point_before_the_newest_backup():
    scan = Scan({'000000010000000000000004': [point('0/4000100')]})
    found = _wal.locate(scan, 'name', 'x', SEGMENTS, [B1, B2])
    assert found['lsn'] == parse_lsn('0/4000100')
    assert scan.read[-1] == '000000010000000000000002', 'down to B1, the backup before it'


def test_locate_the_first_of_two_restore_points_of_one_name_after_the_backup():
    scan = Scan({'000000010000000000000007': [point('0/7000100')], '000000010000000000000008': [point('0/8000100')]})
    found = _wal.locate(scan, 'name', 'x', SEGMENTS, [B1, B2])
    assert found['lsn'] == parse_lsn('0/7000100') and len(found['found']) == 2


def test_locate_ignores_a_restore_point_inside_the_backup():
    """Recovery from B2 starts after its end: a point during the backup cannot be reached from it, but from B1."""
    scan = Scan({'000000010000000000000006': [point('0/6000050')]})
    found = _wal.locate(scan, 'name', 'x', SEGMENTS, [B1, B2])
    assert found['lsn'] == parse_lsn('0/6000050')
    assert scan.read[-1] == '000000010000000000000002'


def test_locate_on_the_line_only():
    """A restore point on timeline 1 after the line left it (at 0/5000000) is not on the line."""
    scan = Scan({'000000010000000000000007': [point('0/7000100')]})
    with pytest.raises(ChronosError):
        _wal.locate(scan, 'name', 'x', SEGMENTS, [B1, B2], line={1: parse_lsn('0/5000000'), 2: None})


def test_locate_an_xid_stops_at_its_end():
    commit = dict(rmgr='Transaction', xid=900, lsn=parse_lsn('0/8000100'), desc='COMMIT 2026-12-03 12:21:00.1 UTC')
    scan = Scan({'000000010000000000000008': [commit]})
    found = _wal.locate(scan, 'xid', '900', SEGMENTS, [B1, B2])
    assert found['lsn'] == commit['lsn']
    assert scan.read == ['000000010000000000000009', '000000010000000000000008']


def test_locate_refuses_a_target_the_archive_does_not_hold():
    scan = Scan({})
    with pytest.raises(ChronosError) as raised:
        _wal.locate(scan, 'name', 'nowhere', SEGMENTS, [B1, B2])
    assert raised.value.msg.startswith("The archived WAL holds no restore point named 'nowhere' after the end of any "
                                       "backup (from 000000010000000000000002 on)")
    assert scan.read == list(reversed(SEGMENTS))


def test_wal_scan_fetches_dumps_and_removes_each_segment(host, commands):
    commands.expect(ok(), ok(), ok(fixture_text('waldump-segment.out').encode()), ok(), ok())
    with _wal.WalScan(host, PgBackRest(host, 'chronos-v2')) as scan:
        records = scan.records('000000010000000000000004', 'XLOG')
    assert len(records) == 4
    directory = scan.directory
    assert commands.calls[0]['argv'] == ['mkdir', '-m', '0700', '-p', directory]
    assert commands.calls[1]['argv'][-3:] == ['archive-get', '000000010000000000000004',
                                              directory + '/000000010000000000000004']
    assert '--no-archive-async' in commands.calls[1]['argv']
    assert commands.calls[2]['argv'][-3:] == ['-r', 'XLOG', directory + '/000000010000000000000004']
    assert commands.calls[3]['argv'] == ['rm', '-f', directory + '/000000010000000000000004']
    assert commands.calls[4]['argv'] == ['rm', '-rf', directory]
    assert all(call['user'] == 'postgres' for call in commands.calls)
