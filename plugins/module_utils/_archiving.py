# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How WAL archiving is set up where PostgreSQL runs, decided from facts read there, and whether the repository holds
every segment since the newest backup.

Asynchronous or not. pgBackRest's asynchronous archive-push detaches a process (setsid, then a second fork) that
pushes the queue and exits. An orphan is reparented to PID 1 of its PID namespace. Where PostgreSQL is that PID 1
(the official postgres image), the postmaster reaps it, and any exit other than 0 or 1 is to PostgreSQL a crashed
server process: it terminates every connection and reinitialises. Measured in the lab (docs/archiving.md): a
repository that answers with errors for longer than pgBackRest retries (about 75 s) made PostgreSQL crash-restart
every 10 s, and reset pg_stat_archiver each time; synchronous archive-push, which starts no other process, rode out
the same outage with PostgreSQL untouched, and caught up 70 segments in 15 s once the repository answered.

The backlog's limit. While the repository is away, finished segments stay in pg_wal. archive-push-queue-max bounds
that backlog: past it pgBackRest reports the segment archived without storing it (a warning in PostgreSQL's log), so
PostgreSQL recycles it and keeps running; the archive has a gap from then on, which the metrics report
(pgbackrest_archive_missing_segments) until a new backup makes point-in-time recovery whole again.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.chronos.pgbackrest.plugins.module_utils._postgres import segment_timeline
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError

# auto: archive-push-queue-max is this fraction of the filesystem that holds pg_wal.
QUEUE_SHARE = 0.25
MIB = 1024 * 1024
_SIZE = re.compile(r'^\s*(\d+)\s*(b|kb|kib|mb|mib|gb|gib|tb|tib)?\s*$', re.I)
_SIZE_UNITS = {'b': 1, 'kb': 1024, 'mb': 1024 ** 2, 'gb': 1024 ** 3, 'tb': 1024 ** 4}


def parse_size(text):
    """'4GiB', '512MB', '1073741824' -> bytes; units are 1024-based, as pgBackRest reads them."""
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError("'%s' is not a size: write it like 4GiB, 512MB or a number of bytes" % text)
    unit = (match.group(2) or 'b').lower().replace('i', '')
    return int(match.group(1)) * _SIZE_UNITS[unit]


def human_size(size):
    for unit, factor in (('TiB', 1024 ** 4), ('GiB', 1024 ** 3), ('MiB', MIB)):
        if size >= factor:
            return '%g %s' % (round(size / float(factor), 1), unit)
    return '%d bytes' % size


def _flag(value):
    text = str(value).strip().lower()
    if text in ('auto', ''):
        return 'auto'
    if text in ('true', 'yes', 'on', '1', 'y'):
        return True
    if text in ('false', 'no', 'off', '0', 'n'):
        return False
    raise ChronosError("archive_async is auto, true or false, not '%s'. Nothing was changed." % value)


def archive_async(requested, pid, where):
    """(whether archive-push runs asynchronously, why) from the postmaster's process id (postmaster.pid); refuses
    asynchronous archiving where PostgreSQL is PID 1. `where` names the target in sentences."""
    requested = _flag(requested)
    if pid == 1:
        if requested is True:
            raise ChronosError(
                'Asynchronous WAL archiving is refused on %s: PostgreSQL is PID 1 there, so it reaps the process '
                "pgBackRest's asynchronous archive-push detaches, and a repository outage longer than pgBackRest's "
                'retries makes that process fail and PostgreSQL crash-restart, every 10 s, dropping every connection. '
                'Run the container with an init process (docker run --init, or init: true in compose) to archive '
                'asynchronously, or set pgbackrest_archive_async to auto or false. Nothing was changed.' % where)
        return False, ('PostgreSQL is PID 1 of %s: the process asynchronous archive-push detaches would be reaped by '
                       'PostgreSQL, which takes its failure for a crash and restarts' % where)
    if requested == 'auto':
        if pid is None:
            return False, 'postmaster.pid could not be read on %s: synchronous, which is safe everywhere' % where
        # No process id in the reason: it lands in pgbackrest.conf, which a restart must not change.
        return True, ('PostgreSQL is not PID 1 of %s: the process asynchronous archive-push detaches is reaped by '
                      'PID 1, not by PostgreSQL' % where)
    return requested, 'as set (pgbackrest_archive_async)'


def queue_max(requested, filesystem_size):
    """(archive-push-queue-max in bytes, 0 for none; why) from the size of the filesystem that holds pg_wal."""
    text = str(requested).strip().lower()
    if text in ('', '0', 'none'):
        return 0, ('no limit: while the repository is away pg_wal grows until its filesystem is full, and then '
                   'PostgreSQL stops')
    if text == 'auto':
        size = int(filesystem_size * QUEUE_SHARE) // MIB * MIB
        return size, ('a quarter of the %s filesystem that holds pg_wal' % human_size(filesystem_size))
    try:
        return parse_size(requested), 'as set (pgbackrest_archive_push_queue_max)'
    except ValueError as exc:
        raise ChronosError('Invalid archive push queue max: %s. Nothing was changed.' % exc)


# --- the archive's continuity ------------------------------------------------------------------------------------

def segment_number(name, segment_size):
    """'000000010000000200000003' -> the segment's position on its timeline (log 2, segment 3)."""
    per_log = 0x100000000 // segment_size
    return int(name[8:16], 16) * per_log + int(name[16:24], 16)


def segment_name(timeline, number, segment_size):
    per_log = 0x100000000 // segment_size
    return '%08X%08X%08X' % (timeline, number // per_log, number % per_log)


def missing_segments(pgbackrest, stanza, segment_size):
    """The WAL segments the repository lacks between the start of the newest backup and the newest segment archived
    on that backup's timeline: [names], read from the repository itself (repo-ls of the archive's directories from
    the backup's on). [] when there is no backup yet."""
    backups = [backup for backup in stanza['backups'] if not backup['error'] and backup['wal_start']]
    archives = [archive for archive in stanza['archive'] if archive['id']]
    if not backups or not archives:
        return []
    start = backups[-1]['wal_start']
    timeline = segment_timeline(start)
    base = 'archive/%s/%s' % (stanza['name'], archives[-1]['id'])
    directories = sorted(name for name, entry in pgbackrest.repo_ls(base, attempt='list the archived WAL').items()
                         if entry.get('type') == 'path' and len(name) == 16 and name[:8] == start[:8]
                         and name >= start[:16])
    present = set()
    for directory in directories:
        listing = pgbackrest.repo_ls('%s/%s' % (base, directory), attempt='list the archived WAL in %s' % directory)
        present.update(name[:24] for name, entry in listing.items()
                       if entry.get('type') == 'file' and re.match(r'^[0-9A-F]{24}-', name))
    if not present:
        return []
    first, last = segment_number(start, segment_size), segment_number(max(present), segment_size)
    return [segment_name(timeline, number, segment_size) for number in range(first, last + 1)
            if segment_name(timeline, number, segment_size) not in present]
