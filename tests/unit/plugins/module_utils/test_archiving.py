# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/module_utils/_archiving.py: asynchronous archiving or not from the postmaster's process id, the archive
queue's limit from the filesystem's size, and the segments missing from the repository, read from captured listings."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _archiving
from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import PgBackRest, parse_info
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError

from ansible_collections.chronos.pgbackrest.tests.unit.harness import (
    archive_directories, fixture_bytes, fixture_text, ok)

SEGMENT = 16 * 1024 * 1024


@pytest.mark.parametrize('text, size', [('0', 0), ('1048576', 1048576), ('4GiB', 4 * 2 ** 30), ('4GB', 4 * 2 ** 30),
                                        ('512mb', 512 * 2 ** 20), (' 2 TiB ', 2 * 2 ** 40), ('16KB', 16384)])
def test_parse_size(text, size):
    assert _archiving.parse_size(text) == size


@pytest.mark.parametrize('text', ['', 'lots', '4.5GiB', '-1', '4 PB', '4GiBs'])
def test_parse_size_refuses(text):
    with pytest.raises(ValueError):
        _archiving.parse_size(text)


@pytest.mark.parametrize('requested, pid, expected', [
    ('auto', 1, False), ('auto', 5348, True), ('auto', None, False), ('false', 5348, False), ('False', 1, False),
    ('true', 5348, True), (True, 5348, True), ('no', 5348, False), ('', 5348, True)])
def test_archive_async(requested, pid, expected):
    assert _archiving.archive_async(requested, pid, 'this host')[0] is expected


@pytest.mark.parametrize('requested', ['true', True, 'yes', 'on'])
def test_asynchronous_archiving_is_refused_where_postgresql_is_pid_1(requested):
    with pytest.raises(ChronosError) as raised:
        _archiving.archive_async(requested, 1, "container 'chronos-db'")
    assert 'PostgreSQL is PID 1 there' in raised.value.msg and raised.value.msg.endswith('Nothing was changed.')


def test_archive_async_refuses_what_is_not_a_flag():
    with pytest.raises(ChronosError) as raised:
        _archiving.archive_async('sometimes', 5348, 'this host')
    assert raised.value.msg == "archive_async is auto, true or false, not 'sometimes'. Nothing was changed."


@pytest.mark.parametrize('requested, size, expected', [
    ('auto', 100 * 2 ** 30, 25 * 2 ** 30),
    ('auto', 512 * 2 ** 20 + 12345, 128 * 2 ** 20),      # whole MiB
    ('auto', 3 * 2 ** 20, 0),                             # a filesystem too small for a whole MiB of limit
    ('0', 100 * 2 ** 30, 0), ('none', 100 * 2 ** 30, 0), ('2GiB', 100 * 2 ** 30, 2 * 2 ** 30)])
def test_queue_max(requested, size, expected):
    assert _archiving.queue_max(requested, size)[0] == expected


def test_queue_max_says_why():
    assert _archiving.queue_max('auto', 100 * 2 ** 30)[1] == 'a quarter of the 100 GiB filesystem that holds pg_wal'
    assert _archiving.queue_max('0', 100)[1].startswith('no limit: while the repository is away pg_wal grows')


@pytest.mark.parametrize('name, number', [('000000010000000000000001', 1), ('0000000100000001000000FF', 511),
                                          ('000000030000000200000000', 512)])
def test_segment_numbers_cross_log_ids(name, number):
    assert _archiving.segment_number(name, SEGMENT) == number
    assert _archiving.segment_name(int(name[:8], 16), number, SEGMENT) == name


def test_segment_numbers_of_another_segment_size():
    size = 64 * 1024 * 1024             # 64 segments per 4 GiB log
    assert _archiving.segment_number('00000001000000010000003F', size) == 127
    assert _archiving.segment_name(1, 128, size) == '000000010000000200000000'


def stanza():
    # Newest backup 20261124-092311F_20261124-092345I: WAL from 000000010000000000000009 on.
    return parse_info(fixture_text('info-full-diff-incr.json'))[0]


def without(names):
    """The captured listing of timeline 1's WAL directory, with some segments removed (dropped, or deleted)."""
    listing = json.loads(fixture_bytes('repo-ls-wal-tl1.json'))
    return json.dumps(dict((name, entry) for name, entry in listing.items() if name[:24] not in names)).encode()


def test_no_segment_missing(host, commands):
    commands.expect(ok(archive_directories()), ok('repo-ls-wal-tl1.json'))
    assert _archiving.missing_segments(PgBackRest(host, 'chronos-v2'), stanza(), SEGMENT) == []
    assert [call['argv'][-1] for call in commands.calls] == ['archive/chronos-v2/15-1',
                                                             'archive/chronos-v2/15-1/0000000100000000']


def test_segments_dropped_after_the_newest_backup(host, commands):
    dropped = ['00000001000000000000000C', '00000001000000000000000D']
    commands.expect(ok(archive_directories()), ok(without(dropped)))
    assert _archiving.missing_segments(PgBackRest(host, 'chronos-v2'), stanza(), SEGMENT) == dropped


def test_a_gap_before_the_newest_backup_does_not_count(host, commands):
    commands.expect(ok(archive_directories()), ok(without(['000000010000000000000004'])))
    assert _archiving.missing_segments(PgBackRest(host, 'chronos-v2'), stanza(), SEGMENT) == []


def test_only_the_newest_backups_timeline_is_listed(host, commands):
    """Timeline 2's directory is not listed: the newest backup is on timeline 1."""
    commands.expect(ok(archive_directories(('0000000100000000', '0000000200000000'), history=True)),
                    ok('repo-ls-wal-tl1.json'))
    assert _archiving.missing_segments(PgBackRest(host, 'chronos-v2'), stanza(), SEGMENT) == []


def test_no_backup_no_listing(host, commands):
    assert _archiving.missing_segments(PgBackRest(host, 'chronos-v2'),
                                       parse_info(fixture_text('info-no-backup.json'))[0], SEGMENT) == []
    assert commands.calls == []
