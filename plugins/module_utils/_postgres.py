# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the collection reads from and sets in PostgreSQL, on any target: the cluster's identity and control
data, what a pgBackRest restore left in a data directory, recovery targets, and the WAL archiving settings.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
import struct
from datetime import datetime

from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError

ARCHIVE_SETTINGS = ('archive_mode', 'archive_command', 'archive_timeout', 'wal_level')
# Read only at server start: a change needs a restart.
RESTART_SETTINGS = ('archive_mode', 'wal_level')

_TARGET_TIME = re.compile(r'^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2})(:\d{2}(\.\d{1,6})?)?\s*(Z|UTC|[+-]\d{2}(?::?\d{2})?)$')
_LSN = re.compile(r'^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$')
_SEGMENT = re.compile(r'^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})')
_TIME_UNITS = {'us': 1e-6, 'ms': 1e-3, 's': 1, 'min': 60, 'h': 3600, 'd': 86400, '': 1}


def parse_target_time(text):
    """'2026-11-24 08:22:18+00' -> epoch seconds (float). The time zone is required: without one PostgreSQL
    would read the target in the server's time zone, which may not be the operator's. Seconds may be left
    out ('08:22+00' is 08:22:00), as PostgreSQL allows; restore and drill read a target the same way."""
    match = _TARGET_TIME.match((text or '').strip())
    if not match:
        raise ValueError("'%s' is not a time with a time zone: write it like '2026-11-24 08:22:18+00'" % text)
    day, clock, seconds, fraction, zone = match.groups()
    try:
        moment = datetime.strptime('%s %s%s' % (day, clock, (seconds or ':00')[:3]), '%Y-%m-%d %H:%M:%S')
    except ValueError:
        raise ValueError("'%s' is not a valid date and time" % text)
    if zone in ('Z', 'UTC'):
        offset = 0
    else:
        digits = zone[1:].replace(':', '')
        hours, minutes = int(digits[:2]), int(digits[2:] or 0)
        if hours > 15 or minutes > 59:
            raise ValueError("'%s' is not a valid date and time: the time zone offset is out of range" % text)
        offset = hours * 3600 + minutes * 60
        offset = -offset if zone[0] == '-' else offset
    epoch = (moment - datetime(1970, 1, 1)).total_seconds() - offset
    return epoch + float(fraction or 0)


def check_target_text(kind, text):
    """A restore point name or an xid as pgBackRest writes it into postgresql.auto.conf: unescaped between
    single quotes, so a quote, a backslash or a line break would end the setting early or inject another."""
    if text is None or not text.strip():
        raise ValueError('the %s target is empty' % kind)
    if kind == 'xid' and not re.match(r'^\d+$', text.strip()):
        raise ValueError("'%s' is not a transaction id: write it as digits, e.g. 1234567" % text)
    if any(char in text for char in "'\\\n\r\0") or not text.isprintable():
        raise ValueError("the %s target %r holds a quote, a backslash or a control character, which pgBackRest "
                         "would write unescaped into postgresql.auto.conf" % (kind, text))
    return text


def parse_lsn(text):
    """'0/3000088' -> an integer that orders like the LSN."""
    match = _LSN.match((text or '').strip())
    if not match:
        raise ValueError("'%s' is not an LSN: write it like '0/3000088'" % text)
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def segment_timeline(name):
    """'000000020000000000000005' (or a repository file name starting with it) -> 2; None when not a segment."""
    match = _SEGMENT.match(name or '')
    return int(match.group(1), 16) if match else None


def time_setting_seconds(value, unit='s'):
    """A time setting as PostgreSQL reads it ('60s', '1min', '60' with unit s) -> seconds."""
    match = re.match(r'^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$', str(value))
    if not match or match.group(2) not in _TIME_UNITS:
        raise ValueError("'%s' is not a time setting: write it like 60s or 1min" % value)
    return float(match.group(1)) * _TIME_UNITS[match.group(2) or unit]


def format_lsn(value):
    """An LSN as an integer -> '0/3000088'."""
    return '%X/%X' % (value >> 32, value & 0xFFFFFFFF)


# ControlFileData's state (src/include/catalog/pg_control.h).
CONTROL_STATES = {0: 'starting up', 1: 'shut down', 2: 'shut down in recovery', 3: 'shutting down',
                  4: 'in crash recovery', 5: 'in archive recovery', 6: 'in production'}


def parse_control(raw):
    """The leading fields of global/pg_control, laid out the same from PostgreSQL 11 on (native byte order): the
    system identifier, the cluster's state, the latest checkpoint's location and its timeline - what pg_controldata
    reports as 'Latest checkpoint's TimeLineID'."""
    if len(raw) < 56:
        raise ValueError('pg_control is %d bytes long, too short' % len(raw))
    system_id, dummy, dummy, state = struct.unpack('=QIII', raw[:20])
    checkpoint, redo = struct.unpack('=QQ', raw[32:48])
    timeline, previous = struct.unpack('=II', raw[48:56])
    return dict(system_id=system_id, state=CONTROL_STATES.get(state, 'unknown (%d)' % state), checkpoint=checkpoint,
                redo=redo, timeline=timeline, previous_timeline=previous)


def read_cluster_identity(target, pg_path):
    """(major version, system identifier) of the cluster in pg_path, read as pgBackRest reads them:
    PG_VERSION, and the first 8 bytes of global/pg_control (native byte order)."""
    version = target.read_file('%s/PG_VERSION' % pg_path).decode('ascii', 'replace').strip()
    system_id = struct.unpack('=Q', target.read_file('%s/global/pg_control' % pg_path)[:8])[0]
    return version, system_id


def read_cluster(target, pg_path):
    """{'version', 'system_id'} of the cluster in pg_path, or a ChronosError saying what to check."""
    try:
        version, system_id = read_cluster_identity(target, pg_path)
    except (IOError, OSError) as exc:
        raise ChronosError('Unable to read the PostgreSQL cluster in %s on %s: %s. Check pg_path, and run the module '
                           'as root (become: true) or as the cluster owner.' % (pg_path, target.describe(), exc))
    return dict(version=version, system_id=system_id)


def control_data(target, pg_path):
    """pg_controldata of pg_path as a dict ('Database cluster state', "Latest checkpoint's TimeLineID", ...),
    or None when there is no cluster there."""
    done = target.run([target.pg_tool('pg_controldata'), pg_path], env={'LC_ALL': 'C', 'LANG': 'C'})
    if done.rc != 0:
        return None
    data = {}
    for line in done.stdout.splitlines():
        name, dummy, value = line.partition(':')
        if value:
            data[name.strip()] = value.strip()
    return data


def read_restored_state(read):
    """What a past pgBackRest restore left in a data directory: the start LSN of the backup it restored (from
    backup_label, or backup_label.old once recovery began) and the recovery settings pgBackRest wrote
    last into postgresql.auto.conf. None when the directory shows no pgBackRest restore.
    read('backup_label') returns a file's bytes, or raises IOError/OSError."""
    start_lsn = None
    for name in ('backup_label', 'backup_label.old'):
        try:
            label = read(name).decode('utf-8', 'replace')
        except (IOError, OSError):
            continue
        for line in label.splitlines():
            if line.startswith('START WAL LOCATION:'):
                start_lsn = line.split()[3]
        break
    settings = None
    try:
        auto_conf = read('postgresql.auto.conf').decode('utf-8', 'replace')
    except (IOError, OSError):
        auto_conf = ''
    lines = auto_conf.splitlines()
    headers = [index for index, line in enumerate(lines)
               if line.startswith('# Recovery settings generated by pgBackRest restore')]
    # After ALTER SYSTEM, PostgreSQL rewrites the file without comments: pgBackRest's settings are still there.
    if headers or any(line.startswith('restore_command') for line in lines):
        settings = {}
        for line in lines[headers[-1] + 1 if headers else 0:]:
            key, separator, value = line.partition('=')
            key = key.strip()
            if separator and not line.startswith('#') and (
                    headers or key == 'restore_command' or key.startswith('recovery_')):
                settings[key] = value.strip().strip("'")
    if start_lsn is None or settings is None:
        return None
    return dict(start_lsn=start_lsn, settings=settings)


# --- WAL archiving settings ----------------------------------------------------------------------------

_READ_ARCHIVE_SETTINGS = """
SELECT s.name, s.setting, coalesce(s.unit, ''), coalesce(f.setting, ''), f.setting IS NOT NULL
  FROM pg_settings s
  LEFT JOIN (SELECT DISTINCT ON (name) name, setting FROM pg_file_settings
              WHERE sourcefile LIKE '%/postgresql.auto.conf' ORDER BY name, seqno DESC) f USING (name)
 WHERE s.name IN ('archive_mode', 'archive_command', 'archive_timeout', 'wal_level')
"""


def read_archive_settings(target):
    """{name: {'running': value PostgreSQL uses now, 'unit', 'auto': value in postgresql.auto.conf or None}}."""
    rows = target.sql(_READ_ARCHIVE_SETTINGS, attempt='read the WAL archiving settings')
    return dict((name, dict(running=running, unit=unit, auto=auto if in_auto == 't' else None))
                for name, running, unit, auto, in_auto in rows)


def plan_archive_settings(current, archive_command, archive_timeout):
    """What to change so that PostgreSQL archives through pgBackRest, judged from its real state:
    (settings to write with ALTER SYSTEM {name: value}, reload needed, restart needed after that)."""
    wanted_timeout = time_setting_seconds(archive_timeout)  # a malformed value is refused before anything changes
    wanted = {'archive_command': archive_command, 'archive_timeout': archive_timeout}
    # 'always' archives too (also during recovery): keep it, where nothing in postgresql.auto.conf says otherwise.
    mode = current['archive_mode']
    if mode['auto'] not in ('on', 'always') and not (mode['auto'] is None and mode['running'] == 'always'):
        wanted['archive_mode'] = 'on'
    if current['wal_level']['running'] == 'minimal' and current['wal_level']['auto'] in (None, 'minimal'):
        wanted['wal_level'] = 'replica'
    alter = dict((name, value) for name, value in wanted.items() if current[name]['auto'] != value)
    timeout = current['archive_timeout']
    reload = bool(alter) or current['archive_command']['running'] != archive_command or (
        time_setting_seconds(timeout['running'], timeout['unit']) != wanted_timeout)
    restart = current['archive_mode']['running'] not in ('on', 'always') or current['wal_level']['running'] == 'minimal'
    return alter, reload, restart


def apply_archive_settings(target, alter, reload):
    lines = ["ALTER SYSTEM SET %s = :'%s';" % (name, name) for name in sorted(alter)]
    if reload:
        lines.append('SELECT pg_reload_conf();')
    if lines:
        target.sql('\n'.join(lines) + '\n', variables=alter, attempt='set the WAL archiving settings')


def setting_restart_needed(target):
    """Whether PostgreSQL still runs without WAL archiving and needs a restart for it."""
    running = read_archive_settings(target)
    return running['archive_mode']['running'] not in ('on', 'always') or running['wal_level']['running'] == 'minimal'


ARCHIVER_QUERY = """
SELECT archived_count, failed_count, coalesce(last_archived_wal, ''), coalesce(last_failed_wal, ''),
       coalesce(extract(epoch FROM last_archived_time)::bigint, 0),
       coalesce(extract(epoch FROM last_failed_time)::bigint, 0),
       current_setting('archive_mode'), current_setting('archive_command')
  FROM pg_stat_archiver
"""


SERVER_POSITION_QUERY = r"""
SELECT pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint())
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
       CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_flush_lsn() END
"""


def server_position(target):
    """Where the running server is: {'in_recovery', 'timeline' (the one it writes, or replays), 'lsn' (flushed, or
    replayed)}. The current WAL file's name carries the timeline at once; pg_control's lags until the first
    checkpoint after a promotion."""
    in_recovery, timeline, lsn = target.sql(SERVER_POSITION_QUERY, attempt='read the server\'s timeline and WAL position')[0]
    return dict(in_recovery=in_recovery == 't', timeline=int(timeline), lsn=parse_lsn(lsn))


def parse_history(text):
    """A timeline history file -> [(parent timeline, switch LSN as int)], oldest first."""
    history = []
    for line in (text or '').splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].isdigit():
            history.append((int(fields[0]), parse_lsn(fields[1])))
    return history


def timeline_start(target, timeline):
    """The LSN where the server's timeline began (the last switch point of its history file in pg_wal), or None on
    timeline 1."""
    if timeline <= 1:
        return None
    rows = target.sql("SELECT pg_read_file('pg_wal/' || :'name')", variables={'name': '%08X.history' % timeline},
                      attempt='read the history of timeline %d' % timeline)
    history = parse_history(rows[0][0] if rows else '')
    return history[-1][1] if history else None


def read_archiver(target):
    """pg_stat_archiver and the settings it is judged by, as a dict."""
    rows = target.sql(ARCHIVER_QUERY, attempt='read pg_stat_archiver')
    if not rows:
        raise ChronosError('pg_stat_archiver returned no row on %s.' % target.describe())
    archived, failed, last_wal, failed_wal, last_time, failed_time, mode, command = rows[0]
    last_time, failed_time = int(last_time), int(failed_time)
    return dict(archived_count=int(archived), failed_count=int(failed), last_archived_wal=last_wal or None,
                last_failed_wal=failed_wal or None, last_archived=last_time or None, last_failed=failed_time or None,
                failing=bool(failed_time) and failed_time > last_time, archive_mode=mode, archive_command=command)


# --- the archive queue: what waits in pg_wal to be archived -------------------------------------------------------

ARCHIVE_QUEUE_QUERY = r"""
SELECT count(*), coalesce(extract(epoch FROM min(modification))::bigint, 0),
       (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'),
       current_setting('data_directory')
  FROM pg_ls_archive_statusdir()
 WHERE name ~ '^[0-9A-F]{24}\.ready$'
"""


def read_archive_queue(target):
    """The WAL segments PostgreSQL has finished and not yet archived (archive_status/*.ready), read from the server:
    {'ready_segments', 'ready_bytes', 'oldest_ready' (epoch when the oldest was finished, or None), 'segment_size',
    'pg_wal'}. Unlike pg_stat_archiver's counters, which a crash-restart resets, these files are the backlog itself."""
    rows = target.sql(ARCHIVE_QUEUE_QUERY, attempt='read the WAL segments waiting to be archived')
    count, oldest, segment_size, data_directory = rows[0]
    count, segment_size = int(count), int(segment_size)
    return dict(ready_segments=count, ready_bytes=count * segment_size, oldest_ready=int(oldest) or None,
                segment_size=segment_size, pg_wal='%s/pg_wal' % data_directory.rstrip('/'))


def postmaster_pid(target, pg_path):
    """The postmaster's process id as PostgreSQL wrote it into postmaster.pid (1 when PostgreSQL is the first process of
    its PID namespace, as in the official postgres image), or None when no postmaster.pid can be read."""
    try:
        first = target.read_file('%s/postmaster.pid' % pg_path).decode('ascii', 'replace').splitlines()[0]
        return int(first.strip())
    except (IOError, OSError, IndexError, ValueError):
        return None
