# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What PostgreSQL's WAL says, read with pg_waldump where PostgreSQL lives: whether a transaction committed since a
position (the cluster's own pg_wal), and where a restore point or a transaction lies (the archived WAL, fetched
segment by segment with pgBackRest's archive-get). A restore is decided from these, not from statistics counters,
which a restore resets and which DROP, TRUNCATE and DDL do not move."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re

from ansible_collections.chronos.pgbackrest.plugins.module_utils._postgres import format_lsn, parse_lsn
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError

_RECORD = re.compile(r'^rmgr: (\S+)\s+len \(rec/tot\):\s*\d+/\s*\d+, tx:\s*(\d+), lsn: ([0-9A-F]+/[0-9A-F]+), '
                     r'prev [0-9A-F]+/[0-9A-F]+, desc: (.*)$')
_COMMIT = re.compile(r'^(COMMIT|COMMIT_PREPARED)\b')
_ABORT = re.compile(r'^(ABORT|ABORT_PREPARED)\b')
_WHEN = re.compile(r'(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)? [A-Za-z0-9+:-]+)')
# pg_waldump ends at the end of what was written with one of these; anything else means it could not read the WAL.
_END_OF_WAL = ('invalid record length', 'invalid magic number', 'record with incorrect prev-link',
               'contrecord is requested', 'invalid record offset', 'there is no contrecord')


def parse_waldump(text):
    """pg_waldump's output -> [{'rmgr', 'xid', 'lsn' (int), 'desc'}]."""
    records = []
    for line in (text or '').splitlines():
        match = _RECORD.match(line.strip())
        if match:
            records.append(dict(rmgr=match.group(1), xid=int(match.group(2)), lsn=parse_lsn(match.group(3)),
                                desc=match.group(4)))
    return records


def commit_time(record):
    """The time a COMMIT or ABORT record carries, as pg_waldump prints it, or None."""
    match = _WHEN.search(record['desc'])
    return match.group(1) if match else None


def committed_since(target, pg_path, timeline, start, end):
    """The transactions committed in the cluster's own pg_wal on timeline between LSNs start and end: [records], or
    None when that WAL is no longer there to read (recycled after a checkpoint)."""
    if end <= start:
        return []
    done = target.run([target.pg_tool('pg_waldump'), '-p', '%s/pg_wal' % pg_path.rstrip('/'), '-t', str(timeline),
                       '-s', format_lsn(start), '-e', format_lsn(end), '-r', 'Transaction'])
    records = parse_waldump(done.stdout)
    if done.rc != 0 and not any(marker in done.stderr for marker in _END_OF_WAL):
        return None
    return [record for record in records if _COMMIT.match(record['desc'])]


class WalScan(object):
    """Reads archived WAL segments on the target: each fetched with archive-get into a directory of its own there,
    dumped with pg_waldump, and removed."""

    def __init__(self, target, pgbackrest):
        self.target = target
        self.pgbackrest = pgbackrest
        self.directory = '/tmp/chronos-pgbackrest-wal-%d' % os.getpid()

    def __enter__(self):
        done = self.target.run(['mkdir', '-m', '0700', '-p', self.directory])
        if done.rc != 0:
            raise ChronosError('Unable to make %s on %s to read archived WAL: %s' % (
                self.directory, self.target.describe(), done.output))
        return self

    def __exit__(self, *exc):
        self.target.run(['rm', '-rf', self.directory])
        return False

    def records(self, segment, rmgr):
        """The records of one archived segment of that resource manager ('XLOG', 'Transaction')."""
        path = '%s/%s' % (self.directory, segment)
        self.pgbackrest.run('archive-get', '--no-archive-async', segment, path,
                            attempt='fetch archived WAL segment %s' % segment)
        try:
            done = self.target.run([self.target.pg_tool('pg_waldump'), '-r', rmgr, path])
        finally:
            self.target.run(['rm', '-f', path])
        return parse_waldump(done.stdout)


def matches(kind, value, record):
    """Whether a record is the target: a restore point of that name, or the end (commit or abort) of that xid."""
    if kind == 'name':
        return record['rmgr'] == 'XLOG' and record['desc'] == 'RESTORE_POINT %s' % value
    return record['rmgr'] == 'Transaction' and record['xid'] == int(value) and bool(
        _COMMIT.match(record['desc']) or _ABORT.match(record['desc']))


def on_line(segment, record, line):
    """Whether a record of that segment lies on the followed line: on its last timeline, or before the line left the
    segment's timeline."""
    if not line:
        return True
    switch = line.get(int(segment[:8], 16))
    return switch is None or record['lsn'] < switch


def locate(scan, kind, value, segments, backups, line=None):
    """Where a name or xid target lies in the archived WAL: {'lsn', 'desc', 'found': every matching record}.

    segments: the archived segment names on the followed timeline line, oldest first; backups: the usable backups on
    it, oldest first; line: {timeline: LSN where the line left it, None for the followed one}. The segments are read
    newest first. Once a match is found, the backup a restore would start from
    is the newest that ended before it, and recovery from that backup stops at the first match after its end: the
    scan goes on down to that backup's start, so an earlier restore point of the same name is not missed. Raises a
    ChronosError when the target is not in the archived WAL from the oldest backup on."""
    rmgr = 'XLOG' if kind == 'name' else 'Transaction'
    oldest = backups[0]['wal_start'] if backups else None
    found, backup = [], None
    for segment in reversed(segments):
        floor = (backup or {}).get('wal_start') or oldest
        if floor and segment < floor[:24]:
            break
        found.extend(record for record in scan.records(segment, rmgr)
                     if matches(kind, value, record) and on_line(segment, record, line))
        if found and backup is None:
            newest = max(record['lsn'] for record in found)
            before = [candidate for candidate in backups
                      if candidate['lsn_stop'] and parse_lsn(candidate['lsn_stop']) <= newest]
            backup = before[-1] if before else {}
            if kind == 'xid':
                break
    reachable = [record for record in found
                 if not backup or parse_lsn(backup['lsn_stop']) <= record['lsn']]
    if not reachable:
        what = "no restore point named '%s'" % value if kind == 'name' else 'no end of transaction %s' % value
        raise ChronosError('The archived WAL holds %s after the end of any backup (from %s on): the target cannot be '
                           'reached, so nothing was stopped. Nothing was changed.' % (what, oldest or 'no backup'))
    first = min(reachable, key=lambda record: record['lsn'])
    if kind == 'xid' and _ABORT.match(first['desc']):
        raise ChronosError('Transaction %s was rolled back (%s at %s): recovery never reaches a transaction that did '
                           'not commit. Nothing was changed.' % (value, first['desc'].split(';')[0],
                                                                 format_lsn(first['lsn'])))
    return dict(lsn=first['lsn'], desc=first['desc'], found=reachable)
