# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/module_utils/_restore.py: the request, timelines from the archived WAL and history files, the backup
and window chosen on the followed timeline, the data directory's real state and the steps left, and a restore or
rollback run on a host target (commands faked, files real in tmp_path).

The repository is the lab's after its point-in-time restores (info-after-pitr.json; conftest.wal_listing and
HISTORY_2): timeline 1 up to segment ...12, stored 09:52:13; timeline 2 from 0/120000A0, its segment ...12 stored
09:52:51."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _postgres, _restore
from ansible_collections.chronos.pgbackrest.plugins.module_utils._lock import StanzaLock
from ansible_collections.chronos.pgbackrest.plugins.module_utils._places import GUARD_NOTE
from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import (
    PgBackRest, PgBackRestError, parse_info)
from ansible_collections.chronos.pgbackrest.plugins.module_utils._postgres import parse_lsn, parse_target_time
from ansible_collections.chronos.pgbackrest.plugins.module_utils._restore import (
    Request, Restore, Rollback, choose_backup, followed_timeline, is_this_restore, on_line, remaining_steps,
    window_end)
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError
from ansible_collections.chronos.pgbackrest.plugins.module_utils._host import HostTarget

from ansible_collections.chronos.pgbackrest.tests.unit.harness import (
    CLOCK_START, HISTORY_2, PREFIX, fails, fixture_text, ok, psql_rows, start_postgresql, stop_postgresql,
    wal_listing)

# The backups of info-after-pitr.json, oldest first: label, stop time, START WAL LOCATION (lsn.start), lsn.stop.
F1 = '20261124-092101F'                      # stop 09:21:24, 0/2000028, 0/3000088
F2 = '20261124-092311F'                      # stop 09:23:37, 0/6000028, 0/6000138
D1 = '20261124-092311F_20261124-092341D'     # stop 09:23:43, 0/7000028, 0/8000050
I1 = '20261124-092311F_20261124-092345I'     # stop 09:23:46, 0/9000028, 0/A000088
D2 = '20261124-092311F_20261124-092445D'     # stop 09:24:47, 0/D000028, 0/D000138
I2 = '20261124-092311F_20261124-095026I'     # stop 09:50:28, 0/10000028, 0/10000100
LABELS = [F1, F2, D1, I1, D2, I2]
INFO = 'info-after-pitr.json'
SWITCH = parse_lsn('0/120000A0')             # where timeline 2 left timeline 1 (HISTORY_2)
TL1_END = 1795513933                         # 000000010000000000000012 stored, 09:52:13
TL2_END = 1795513971                         # 000000020000000000000012 stored, 09:52:51

pytestmark = pytest.mark.usefixtures('owned_by_this_user')


def ids(table):
    return [row[0] for row in table]


@pytest.fixture(scope='module')
def stanza():
    return parse_info(fixture_text(INFO))[0]


@pytest.fixture(scope='module')
def backups(stanza):
    return dict((backup['label'], backup) for backup in stanza['backups'])


@pytest.fixture
def pgbackrest(host):
    return PgBackRest(host, 'chronos-v2')


@pytest.fixture(scope='module')
def segments(stanza):
    import json
    from ansible_collections.chronos.pgbackrest.plugins.module_utils._postgres import segment_timeline
    found = []
    for path, entry in json.loads(wal_listing()).items():
        name = path.rsplit('/', 1)[-1]
        if entry['type'] == 'file' and segment_timeline(name) and '.backup' not in name:
            found.append(dict(name=name[:24], timeline=segment_timeline(name), time=entry['time']))
    return found


def server(timeline=2, lsn='0/14000060', in_recovery='f', ready=0):
    """The running server's answers to inspect() after pg_isready and the recovery query: its position, then (not in
    recovery) the archive queue."""
    answers = [ok(psql_rows((in_recovery, str(timeline), lsn)))]
    if in_recovery == 'f':
        oldest = str(int(CLOCK_START) - 600) if ready else '0'
        answers.append(ok(psql_rows((str(ready), oldest, '16777216', '/var/lib/postgresql/15/main'))))
    return answers


def request(restore_type='latest', target=None, **kwargs):
    kwargs.setdefault('pg_path', '/var/lib/postgresql/15/main')
    return Request(restore_type, target, **kwargs)


def synthetic(backups, of, **changes):
    """A backup of info-after-pitr.json with fields changed (a backup the lab did not take: on timeline 2, say)."""
    return dict(backups[of], **changes)


# --- Request -------------------------------------------------------------------------------------------

@pytest.mark.parametrize('args', [
    dict(), dict(restore_type='time', recovery_target='2026-11-24 09:23:44+00'), dict(restore_type='time', recovery_target='2026-11-24 09:23+00'),
    dict(restore_type='set', backup_set=F2), dict(restore_type='immediate'), dict(restore_type='xid', recovery_target='750'),
    dict(restore_type='lsn', recovery_target='0/D000200'), dict(restore_type='name', recovery_target='before-upgrade'),
    dict(timeline='2'), dict(timeline=3), dict(timeline='latest'), dict(timeline='current'),
    dict(target_action='pause'), dict(restore_type='rollback'),
], ids=['latest', 'time', 'time-without-seconds', 'set', 'immediate', 'xid', 'lsn', 'name', 'timeline-text',
        'timeline-number', 'timeline-latest', 'timeline-current', 'pause', 'rollback'])
def test_request_accepts(args):
    Request(**args)


def test_request_reads_its_target():
    assert Request('time', '2026-11-24 09:23+00').target_epoch == parse_target_time('2026-11-24 09:23:00+00')
    assert Request('lsn', '0/D000200').target_lsn == 0xD000200
    assert (Request().target_epoch, Request().target_lsn) == (None, None)


REQUEST_REFUSALS = [
    ('unknown-type', dict(restore_type='pitr'),
     "Restore type 'pitr' is not one of latest, time, set, immediate, xid, lsn, name, rollback, prune. Nothing was changed."),
    ('time-without-target', dict(restore_type='time'), 'A time restore needs a target. Nothing was changed.'),
    ('xid-without-target', dict(restore_type='xid', recovery_target=''), 'A xid restore needs a target. Nothing was changed.'),
    ('set-without-set', dict(restore_type='set'), 'A set restore needs the backup set (its label). Nothing was changed.'),
    ('shutdown', dict(target_action='shutdown'), "target_action is promote or pause, not 'shutdown'. Nothing was changed."),
    ('timeline-word', dict(timeline='newest'),
     "The timeline is a number, 'latest' or 'current', not 'newest'. Nothing was changed."),
    ('time-without-zone', dict(restore_type='time', recovery_target='2026-11-24 09:23:44'),
     "Malformed target: '2026-11-24 09:23:44' is not a time with a time zone: write it like '2026-11-24 08:22:18+00'. "
     "Nothing was changed."),
    ('impossible-date', dict(restore_type='time', recovery_target='2026-02-30 10:00:00+00'),
     "Malformed target: '2026-02-30 10:00:00+00' is not a valid date and time. Nothing was changed."),
    ('lsn', dict(restore_type='lsn', recovery_target='D000200'),
     "Malformed target: 'D000200' is not an LSN: write it like '0/3000088'. Nothing was changed."),
    ('xid-letters', dict(restore_type='xid', recovery_target='750a'),
     "Malformed target: '750a' is not a transaction id: write it as digits, e.g. 1234567. Nothing was changed."),
    ('name-quote', dict(restore_type='name', recovery_target="x'\nrecovery_target_action = 'shutdown"),
     "Malformed target: the name target \"x'\\nrecovery_target_action = 'shutdown\" holds a quote, a backslash or a "
     "control character, which pgBackRest would write unescaped into postgresql.auto.conf. Nothing was changed."),
    ('name-backslash', dict(restore_type='name', recovery_target='a\\b'), 'holds a quote, a backslash or a control character'),
    ('name-newline', dict(restore_type='name', recovery_target='a\nb'), 'holds a quote, a backslash or a control character'),
    ('xid-quote', dict(restore_type='xid', recovery_target="750'"), "'750'' is not a transaction id"),
]


@pytest.mark.parametrize('case, args, message', REQUEST_REFUSALS, ids=ids(REQUEST_REFUSALS))
def test_request_refuses(case, args, message):
    with pytest.raises(ChronosError) as raised:
        Request(**args)
    assert message in raised.value.msg
    assert raised.value.msg.endswith('Nothing was changed.')


@pytest.mark.parametrize('restore_type, target, action, pause', [
    ('latest', None, 'pause', False),       # nothing to pause at: pgBackRest's default type has no target action
    ('time', '2026-11-24 09:23:44+00', 'pause', True),
    ('set', None, 'pause', True),
    ('time', '2026-11-24 09:23:44+00', 'promote', False)])
def test_request_pause(restore_type, target, action, pause):
    assert Request(restore_type, target, backup_set=F2, target_action=action).pause is pause


# --- the archived WAL and the timelines -------------------------------------------------------------------

def test_archive_id(stanza, captured):
    assert _restore.archive_id(stanza) == '15-1'
    assert _restore.archive_id(parse_info(captured('info-missing-stanza.json'))[0]) is None


def test_archived_wal(pgbackrest, commands, stanza):
    commands.expect(ok(wal_listing()))
    segments, histories = _restore.archived_wal(pgbackrest, stanza)
    assert commands.calls[0]['argv'] == PREFIX + ['--output=json', '--recurse', 'repo-ls', 'archive/chronos-v2/15-1']
    assert histories == {2}
    # Every segment once; the .backup files are not segments.
    assert [segment['name'] for segment in segments if segment['timeline'] == 1] == [
        '0000000100000000000000%02X' % number for number in range(1, 0x13)]
    assert [segment for segment in segments if segment['timeline'] == 2] == [
        dict(name='000000020000000000000012', timeline=2, time=TL2_END)]


def test_archived_wal_skips_partial_segments(pgbackrest, commands, stanza):
    """A promoted standby's last segment of the old timeline is archived as .partial: not a segment to replay."""
    import json
    listing = json.loads(wal_listing())
    listing['0000000100000000/000000010000000000000013.partial-0123456789abcdef0123456789abcdef01234567.zst'] = {
        'type': 'file', 'size': 100, 'time': TL2_END + 10}
    commands.expect(ok(json.dumps(listing).encode()))
    segments, dummy = _restore.archived_wal(pgbackrest, stanza)
    assert '000000010000000000000013' not in [segment['name'] for segment in segments]


def test_archived_wal_without_an_archive(pgbackrest, commands, captured):
    assert _restore.archived_wal(pgbackrest, parse_info(captured('info-missing-stanza.json'))[0]) == ([], set())
    assert commands.calls == []


def test_read_history(pgbackrest, commands, stanza):
    commands.expect(ok(HISTORY_2))
    assert _restore.read_history(pgbackrest, stanza, 2) == [(1, SWITCH)]
    assert commands.calls[0]['argv'] == PREFIX + ['repo-get', 'archive/chronos-v2/15-1/00000002.history']


def test_read_history_of_a_deeper_timeline(pgbackrest, commands, stanza):
    commands.expect(ok(b'1\t0/120000A0\tbefore 2026-11-24 09:52:10+00\n\n'
                       b'# a comment\n2\t0/14000000\tno recovery target specified\n'))
    assert _restore.read_history(pgbackrest, stanza, 0x0A) == [(1, SWITCH), (2, 0x14000000)]
    assert commands.calls[0]['argv'][-1] == 'archive/chronos-v2/15-1/0000000A.history'


def test_timeline_1_has_no_history(pgbackrest, commands, stanza):
    assert _restore.read_history(pgbackrest, stanza, 1) == []
    assert _restore.timeline_line(pgbackrest, stanza, 1) == {1: None}
    assert commands.calls == []


def test_timeline_line(pgbackrest, commands, stanza):
    commands.expect(ok(HISTORY_2))
    assert _restore.timeline_line(pgbackrest, stanza, 2) == {1: SWITCH, 2: None}


def test_a_missing_history_file(pgbackrest, commands, stanza):
    commands.expect(fails(1, b"ERROR: [055]: unable to open missing file "
                             b"'/var/lib/pgbackrest/archive/chronos-v2/15-1/00000003.history' for read\n"))
    with pytest.raises(PgBackRestError) as raised:
        _restore.timeline_line(pgbackrest, stanza, 3)
    assert raised.value.msg.startswith('Unable to read the history of timeline 3: pgBackRest error [055]: ')


FOLLOWED_TIMELINE = [
    ('latest', dict(), 2),                                             # the timeline archived on last
    ('immediate', dict(restore_type='immediate'), 2),
    ('lsn', dict(restore_type='lsn', target='0/D000200'), 2),
    # A time target: the timeline of the first segment stored at or after it.
    ('time-on-tl1', dict(restore_type='time', target='2026-11-24 09:30:00+00'), 1),
    ('time-at-tl1-last-segment', dict(restore_type='time', target='2026-11-24 09:52:13+00'), 1),
    ('time-after-tl1-last-segment', dict(restore_type='time', target='2026-11-24 09:52:14+00'), 2),
    ('time-at-tl2-segment', dict(restore_type='time', target='2026-11-24 09:52:51+00'), 2),
    ('time-after-everything', dict(restore_type='time', target='2026-11-24 10:00:00+00'), 2),
    ('time-before-everything', dict(restore_type='time', target='2026-11-24 09:00:00+00'), 1),
    # As asked.
    ('number', dict(timeline='1'), 1),
    ('number-for-a-time', dict(restore_type='time', target='2026-11-24 09:52:30+00', timeline=1), 1),
    ('latest-asked', dict(timeline='latest'), None),
    ('current-asked', dict(timeline='current'), None),
]


@pytest.mark.parametrize('case, args, timeline', FOLLOWED_TIMELINE, ids=ids(FOLLOWED_TIMELINE))
def test_followed_timeline(segments, case, args, timeline):
    assert followed_timeline(request(**args), segments) == timeline


def test_followed_timeline_without_times_leaves_it_to_postgresql(segments):
    untimed = [dict(segment, time=None) for segment in segments]
    assert followed_timeline(request(), untimed) is None
    assert followed_timeline(request(), []) is None


def test_followed_timeline_ties_go_to_the_later_name():
    same_second = [dict(name='000000020000000000000012', timeline=2, time=100),
                   dict(name='000000010000000000000012', timeline=1, time=100)]
    assert followed_timeline(request(), same_second) == 2


# --- on_line / choose_backup / window_end -----------------------------------------------------------------

def test_every_lab_backup_is_on_both_timelines(backups):
    for backup in backups.values():
        assert on_line(backup, {1: None}) and on_line(backup, {1: SWITCH, 2: None})


ON_LINE = [
    # A backup on timeline 2 is not usable when following timeline 1.
    ('tl2-backup-following-tl1', dict(wal_start='000000020000000000000013', lsn_stop='0/13000100'), {1: None}, False),
    ('tl2-backup-following-tl2', dict(wal_start='000000020000000000000013', lsn_stop='0/13000100'),
     {1: SWITCH, 2: None}, True),
    # A timeline 1 backup that stopped after timeline 2 left timeline 1 is not usable for timeline 2.
    ('tl1-backup-after-the-switch', dict(lsn_stop='0/12000100'), {1: SWITCH, 2: None}, False),
    ('tl1-backup-at-the-switch', dict(lsn_stop='0/120000A0'), {1: SWITCH, 2: None}, True),
    ('tl1-backup-after-the-switch-following-tl1', dict(lsn_stop='0/12000100'), {1: None}, True),
    ('tl3-backup-following-tl2', dict(wal_start='000000030000000000000015', lsn_stop='0/15000100'),
     {1: SWITCH, 2: None}, False),
    ('no-wal-start-is-tl1', dict(wal_start=None), {1: None}, True),
    ('no-lsn-stop-before-a-switch', dict(lsn_stop=None), {1: SWITCH, 2: None}, False),
]


@pytest.mark.parametrize('case, changes, line, usable', ON_LINE, ids=ids(ON_LINE))
def test_on_line(backups, case, changes, line, usable):
    assert on_line(synthetic(backups, I2, **changes), line) is usable


def usable_backups(stanza):
    return [backup for backup in stanza['backups'] if not backup['error']]


CHOOSE_BACKUP = [
    ('latest', dict(), {1: SWITCH, 2: None}, I2),
    ('latest-no-line', dict(), None, I2),
    ('time', dict(restore_type='time', target='2026-11-24 09:23:44+00'), {1: None}, D1),
    ('time-at-a-stop', dict(restore_type='time', target='2026-11-24 09:50:28+00'), {1: SWITCH, 2: None}, I2),
    ('time-just-before-a-stop', dict(restore_type='time', target='2026-11-24 09:50:27.999999+00'), {1: None}, D2),
    ('time-window-start', dict(restore_type='time', target='2026-11-24 09:21:24+00'), {1: None}, F1),
    ('time-before-window', dict(restore_type='time', target='2026-11-24 09:21:23+00'), {1: None}, None),
    ('lsn', dict(restore_type='lsn', target='0/D000200'), {1: SWITCH, 2: None}, D2),
    ('lsn-at-a-stop', dict(restore_type='lsn', target='0/A000088'), {1: SWITCH, 2: None}, I1),
    ('lsn-before-everything', dict(restore_type='lsn', target='0/3000000'), None, None),
    ('set', dict(restore_type='set', backup_set=F2), {1: SWITCH, 2: None}, F2),
    ('time-with-set', dict(restore_type='time', target='2026-11-24 09:23:44+00', backup_set=F2), {1: None}, F2),
    ('xid-takes-the-newest', dict(restore_type='xid', target='750'), {1: SWITCH, 2: None}, I2),
]


@pytest.mark.parametrize('case, args, line, label', CHOOSE_BACKUP, ids=ids(CHOOSE_BACKUP))
def test_choose_backup(stanza, case, args, line, label):
    chosen = choose_backup(request(**args), usable_backups(stanza), line)
    assert (chosen['label'] if chosen else None) == label


def test_choose_backup_skips_backups_off_the_line(stanza, backups):
    """A newer backup taken on timeline 2 is not restored when following timeline 1, nor a timeline 1 backup that
    stopped after timeline 2 left it when following timeline 2."""
    on_tl2 = synthetic(backups, I2, label='20261124-092311F_20261124-100000I', wal_start='000000020000000000000013',
                       lsn_stop='0/13000100', stop=TL2_END + 60)
    late_tl1 = synthetic(backups, I2, label='20261124-092311F_20261124-095210I', lsn_stop='0/12000100', stop=TL1_END)
    usable = usable_backups(stanza) + [late_tl1, on_tl2]
    assert choose_backup(request(), usable, {1: None})['label'] == late_tl1['label']
    assert choose_backup(request(), usable, {1: SWITCH, 2: None})['label'] == on_tl2['label']
    assert choose_backup(request(), usable[:-1], {1: SWITCH, 2: None})['label'] == I2


def test_choose_backup_refuses_a_set_off_the_line(stanza, backups):
    on_tl2 = synthetic(backups, I2, label='20261124-092311F_20261124-100000I', wal_start='000000020000000000000013',
                       lsn_stop='0/13000100')
    with pytest.raises(ChronosError) as raised:
        choose_backup(request('set', backup_set=on_tl2['label']), usable_backups(stanza) + [on_tl2], {1: None})
    assert raised.value.msg == ("Backup set '%s' is on timeline 2, which the followed timeline does not descend from "
                                "after that backup. Nothing was changed." % on_tl2['label'])


def test_choose_backup_refuses_an_unknown_set(stanza):
    with pytest.raises(ChronosError) as raised:
        choose_backup(request('set', backup_set='20261124-000000F'), usable_backups(stanza), None)
    assert raised.value.msg == ("Backup set '20261124-000000F' is not in the stanza. Sets: %s. Nothing was changed."
                                % ', '.join(LABELS))


@pytest.mark.parametrize('label, target, stop', [
    (I2, '2026-11-24 09:30:00+00', '2026-11-24 09:50:28+00'),
    (D1, '2026-11-24 09:23:42+00', '2026-11-24 09:23:43+00')])       # one second after
def test_choose_backup_refuses_a_set_that_stopped_after_the_target(stanza, label, target, stop):
    with pytest.raises(ChronosError) as raised:
        choose_backup(request('time', target, backup_set=label), usable_backups(stanza), None)
    assert raised.value.msg == "Backup set '%s' stopped at %s, after the target. Nothing was changed." % (label, stop)


def test_window_end_of_a_timeline_left_behind():
    """Timeline 2 followed (asked for) while timeline 1 went on archiving (production was rolled back to it): the
    window ends with timeline 2's newest segment, not with the newer ones of timeline 1."""
    segments = [dict(name='000000010000000000000012', timeline=1, time=100),
                dict(name='000000020000000000000012', timeline=2, time=200),
                dict(name='000000010000000000000013', timeline=1, time=300)]
    assert window_end(segments, {1: SWITCH, 2: None}) == 200


def test_window_end(segments):
    assert window_end(segments, None) == TL2_END
    assert window_end(segments, {1: None}) == TL1_END
    assert window_end(segments, {1: SWITCH, 2: None}) == TL2_END
    # A followed timeline with nothing archived yet: the newest segment on the line.
    assert window_end(segments, {1: SWITCH, 2: SWITCH, 3: None}) == TL2_END
    assert window_end([], {1: None}) is None
    assert window_end([dict(name='x', timeline=1, time=None)], None) is None


# --- the data directory's real state ----------------------------------------------------------------------

def place_of(pg_path):
    return HostTarget().data_place(pg_path)


def test_inspect_a_stopped_empty_directory(host, commands, make_data_dir):
    pg_path = make_data_dir()
    state = _restore.inspect(host, place_of(pg_path), pg_path)
    assert state == dict(running=False, ready=False, in_recovery=None, paused=None, timeline=None, lsn=None,
                         committed=None, has_cluster=False, empty=True, guarded=False, restoring=False,
                         recovering=False, restored=None, control=None, kept=[], queue=None)
    assert commands.calls == []


def test_inspect_a_running_restored_cluster(host, commands, make_data_dir):
    pg_path = make_data_dir({'backup_label.old': 'datadir-main.backup_label.old',
                             'postgresql.auto.conf': 'datadir-main.auto.conf', 'PG_VERSION': b'15\n',
                             'postmaster.pid': ('%d\n' % os.getpid()).encode()})
    os.makedirs(pg_path + '.pre-restore-20261124T095255Z')
    commands.expect(ok(), ok(psql_rows(('f', 'f'))), *server(timeline=2, lsn='0/14000060'))
    state = _restore.inspect(host, place_of(pg_path), pg_path)
    assert commands.names == ['pg_isready', 'psql', 'psql', 'psql']
    assert commands.calls[2]['stdin'] == _postgres.SERVER_POSITION_QUERY
    assert commands.calls[3]['stdin'] == _postgres.ARCHIVE_QUEUE_QUERY
    assert (state['running'], state['ready'], state['in_recovery'], state['paused'], state['timeline'], state['lsn']) == (
        True, True, False, False, 2, parse_lsn('0/14000060'))
    assert state['queue']['ready_segments'] == 0
    assert (state['has_cluster'], state['empty'], state['restoring'], state['recovering']) == (True, False, False, False)
    assert state['restored']['start_lsn'] == '0/10000028'
    assert state['kept'] == [dict(name=pg_path + '.pre-restore-20261124T095255Z', bytes=0, age_seconds=24,
                                  path=pg_path + '.pre-restore-20261124T095255Z', stamp='20261124T095255Z')]


def test_inspect_a_running_server_that_does_not_answer(host, commands, make_data_dir):
    pg_path = make_data_dir({'postmaster.pid': ('%d\n' % os.getpid()).encode(), 'recovery.signal': b'',
                             'backup.manifest': b'{}'})
    commands.expect(fails(1))
    state = _restore.inspect(host, place_of(pg_path), pg_path)
    assert (state['running'], state['ready'], state['committed'], state['recovering'], state['restoring']) == (
        True, False, None, True, True)


# --- is_this_restore ------------------------------------------------------------------------------------

def restored(name, label='backup_label'):
    return {label: 'restore-%s.backup_label' % name, 'postgresql.auto.conf': 'restore-%s.auto.conf' % name}


LAB_MAIN = {'backup_label.old': 'datadir-main.backup_label.old', 'postgresql.auto.conf': 'datadir-main.auto.conf'}
LAB_PRE_RESTORE = {'backup_label.old': 'datadir-pre-restore-095255Z.backup_label.old',
                   'postgresql.auto.conf': 'datadir-pre-restore-095255Z.auto.conf'}

# (case, files in the data directory, request, backup the request restores, whether it is that restore)
IS_THIS_RESTORE = [
    # The lab's live data directory: a PITR to 09:52:48.817350 from the newest backup, recovered and promoted.
    ('lab-main', LAB_MAIN, dict(restore_type='time', target='2026-11-24 09:52:48.817350+00'), I2, True),
    ('lab-main-other-target', LAB_MAIN, dict(restore_type='time', target='2026-11-24 09:52:10+00'), I2, False),
    ('lab-main-other-action', LAB_MAIN, dict(restore_type='time', target='2026-11-24 09:52:48.817350+00',
                                             target_action='pause'), I2, False),
    ('lab-main-as-latest', LAB_MAIN, dict(), I2, False),
    ('lab-pre-restore', LAB_PRE_RESTORE, dict(restore_type='time', target='2026-11-24 09:52:10+00'), I2, True),
    ('lab-pre-restore-other-target', LAB_PRE_RESTORE,
     dict(restore_type='time', target='2026-11-24 09:52:48.817350+00'), I2, False),
    ('never-restored', {'postgresql.auto.conf': 'datadir-pre-restore-095217Z.auto.conf'}, dict(), I2, False),
    # Scratch restores (fixtures/README.md): each is the restore it was made with.
    ('time', restored('time'), dict(restore_type='time', target='2026-11-24 09:23:44+00'), D1, True),
    ('time-recovered', restored('time', 'backup_label.old'), dict(restore_type='time', target='2026-11-24 09:23:44+00'),
     D1, True),
    ('time-other-target-same-set', restored('time'), dict(restore_type='time', target='2026-11-24 09:23:45+00'), D1,
     False),
    ('time-other-set', restored('time'), dict(restore_type='time', target='2026-11-24 09:23:44+00'), F2, False),
    ('time-as-latest', restored('time'), dict(), D1, False),
    ('time-iso', restored('time-iso'), dict(restore_type='time', target='2026-11-24T09:52:00Z'), I2, True),
    ('immediate-as-set', restored('immediate'), dict(restore_type='set', backup_set=F2), F2, True),
    ('immediate', restored('immediate'), dict(restore_type='immediate'), F2, True),
    ('immediate-other-set', restored('immediate'), dict(restore_type='set', backup_set=F1), F1, False),
    ('immediate-other-action', restored('immediate'), dict(restore_type='set', backup_set=F2, target_action='pause'),
     F2, False),
    ('immediate-newest-set', restored('immediate'), dict(restore_type='immediate'), I2, False),
    # pgBackRest writes no recovery_target_action for pause, its default.
    ('immediate-pause', restored('immediate-pause'), dict(restore_type='set', backup_set=F1, target_action='pause'),
     F1, True),
    ('immediate-pause-as-promote', restored('immediate-pause'), dict(restore_type='set', backup_set=F1), F1, False),
    ('default', restored('default'), dict(), I2, True),
    ('default-as-immediate', restored('default'), dict(restore_type='immediate'), I2, False),
    # Made with target-action=shutdown, which the module no longer offers: never this request's restore.
    ('xid-shutdown', restored('xid'), dict(restore_type='xid', target='750'), D2, False),
    ('xid-other-xid', restored('xid'), dict(restore_type='xid', target='751'), D2, False),
    ('xid-as-lsn', restored('xid'), dict(restore_type='lsn', target='0/750'), D2, False),
    ('lsn', restored('lsn'), dict(restore_type='lsn', target='0/D000200'), D2, True),
    ('lsn-other-lsn', restored('lsn'), dict(restore_type='lsn', target='0/D000201'), D2, False),
    ('name', restored('name'), dict(restore_type='name', target='before-upgrade', target_action='pause'), D2, True),
    ('name-as-promote', restored('name'), dict(restore_type='name', target='before-upgrade'), D2, False),
    ('delta', restored('delta'), dict(restore_type='set', backup_set=F2), F2, True),
    ('empty', {}, dict(), I2, False),
]


@pytest.mark.parametrize('case, files, args, label, expected', IS_THIS_RESTORE, ids=ids(IS_THIS_RESTORE))
def test_is_this_restore(make_data_dir, backups, case, files, args, label, expected):
    pg_path = make_data_dir(files)
    restored_state = _restore.inspect(HostTarget(), place_of(pg_path), pg_path)['restored']
    assert is_this_restore(restored_state, backups[label], request(**args)) is expected


# --- remaining_steps ------------------------------------------------------------------------------------

STATE = dict(running=False, ready=False, in_recovery=None, paused=None, committed=None, has_cluster=False, empty=False,
             guarded=False, restoring=False, recovering=False, timeline=None)
RUNNING = dict(STATE, running=True, ready=True, in_recovery=False, paused=False, committed=[], has_cluster=True,
               timeline=3)
# A commit in the server's own WAL since the restore ended, as _wal.parse_waldump reads it.
COMMIT = dict(rmgr='Transaction', xid=751, lsn=parse_lsn('0/14000150'), desc='COMMIT 2026-11-24 10:01:02.123456 UTC')
ALL = ['stop', 'move_aside', 'restore', 'recover', 'check']

REMAINING_STEPS = [
    ('running-this-restore-no-writes', RUNNING, True, dict(), []),
    ('running-this-restore-paused-as-asked', dict(RUNNING, in_recovery=True, paused=True), True,
     dict(restore_type='time', target='2026-11-24 09:23:44+00', target_action='pause'), []),
    ('running-this-restore-promoted-but-pause-asked', RUNNING, True,
     dict(restore_type='time', target='2026-11-24 09:23:44+00', target_action='pause'), ALL),
    ('running-this-restore-with-a-commit', dict(RUNNING, committed=[COMMIT]), True, dict(), ALL),
    ('running-this-restore-its-wal-gone', dict(RUNNING, committed=None), True, dict(), ALL),
    ('running-this-restore-still-recovering', dict(RUNNING, in_recovery=True, recovering=True), True, dict(),
     ['recover', 'check']),
    ('running-this-restore-not-answering', dict(RUNNING, ready=False, committed=None), True, dict(), ALL),
    ('running-another-cluster', RUNNING, False, dict(), ALL),
    ('stopped-empty', dict(STATE, empty=True), False, dict(), ['restore', 'recover', 'check']),
    ('stopped-empty-this-restore', dict(STATE, empty=True), True, dict(), ['restore', 'recover', 'check']),
    ('stopped-guarded', dict(STATE, guarded=True), False, dict(), ['restore', 'recover', 'check']),
    ('stopped-interrupted-restore', dict(STATE, restoring=True, has_cluster=True), False, dict(),
     ['resume', 'recover', 'check']),
    ('stopped-this-restore-not-recovered', dict(STATE, recovering=True, has_cluster=True), True, dict(),
     ['recover', 'check']),
    ('stopped-other-restore-not-recovered', dict(STATE, recovering=True, has_cluster=True), False, dict(),
     ['move_aside', 'restore', 'recover', 'check']),
    ('stopped-with-a-cluster', dict(STATE, has_cluster=True), False, dict(), ['move_aside', 'restore', 'recover', 'check']),
    ('stopped-this-restore-recovered', dict(STATE, has_cluster=True), True, dict(),
     ['move_aside', 'restore', 'recover', 'check']),
    ('stopped-with-files', STATE, False, dict(), ['move_aside', 'restore', 'recover', 'check']),
]


@pytest.mark.parametrize('case, state, this_restore, args, steps', REMAINING_STEPS, ids=ids(REMAINING_STEPS))
def test_remaining_steps(case, state, this_restore, args, steps):
    assert remaining_steps(state, this_restore, request(**args))[0] == steps


@pytest.mark.parametrize('state, this_restore, found', [
    (RUNNING, True, 'PostgreSQL runs the result of this restore (timeline 3), and its WAL holds no commit since the '
                    'restore ended'),
    (dict(RUNNING, committed=[COMMIT, dict(COMMIT, xid=752)]), True,
     'PostgreSQL runs a cluster restored from this backup, but 2 transactions committed since (the first, xid 751, at '
     '0/14000150, 2026-11-24 10:01:02.123456 UTC)'),
    (dict(RUNNING, committed=None), True,
     'PostgreSQL runs a cluster restored from this backup, but whether a transaction committed since cannot be told: '
     'the WAL since the restore ended is no longer in pg_wal'),
    (dict(RUNNING, in_recovery=True), True,
     'PostgreSQL runs a cluster restored from this backup, in another state than asked'),
    (RUNNING, False, 'PostgreSQL runs on the data directory'),
    (dict(STATE, empty=True), False, 'PostgreSQL is stopped and the data directory is empty'),
    (dict(STATE, guarded=True), False,
     'PostgreSQL is stopped and the data directory is emptied by a restore (guarded against a new cluster)'),
    (dict(STATE, has_cluster=True), False, 'PostgreSQL is stopped and the data directory holds a cluster'),
    (STATE, False, 'PostgreSQL is stopped and the data directory holds files'),
])
def test_remaining_steps_say_what_was_found(state, this_restore, found):
    assert remaining_steps(state, this_restore, request())[1] == found


# --- restore options --------------------------------------------------------------------------------------

RESTORE_OPTIONS = [
    ('latest', dict(), 2, ['--set=' + I2, '--type=default', '--target-timeline=2']),
    ('latest-no-timeline', dict(), None, ['--set=' + I2, '--type=default']),
    ('time', dict(restore_type='time', target='2026-11-24 09:23:44+00'), 1,
     ['--set=' + I2, '--type=time', '--target=2026-11-24 09:23:44+00', '--target-action=promote',
      '--target-timeline=1']),
    ('time-pause', dict(restore_type='time', target='2026-11-24 09:23:44+00', target_action='pause'), 2,
     ['--set=' + I2, '--type=time', '--target=2026-11-24 09:23:44+00', '--target-action=pause',
      '--target-timeline=2']),
    ('xid', dict(restore_type='xid', target='750'), 2,
     ['--set=' + I2, '--type=xid', '--target=750', '--target-action=promote', '--target-timeline=2']),
    ('lsn', dict(restore_type='lsn', target='0/D000200'), 2,
     ['--set=' + I2, '--type=lsn', '--target=0/D000200', '--target-action=promote', '--target-timeline=2']),
    ('name', dict(restore_type='name', target='before-upgrade'), 2,
     ['--set=' + I2, '--type=name', '--target=before-upgrade', '--target-action=promote', '--target-timeline=2']),
    ('timeline-latest-asked', dict(timeline='latest'), None, ['--set=' + I2, '--type=default', '--target-timeline=latest']),
    ('immediate-no-timeline', dict(restore_type='immediate'), None,
     ['--set=' + I2, '--type=immediate', '--target-action=promote']),
    # pgBackRest takes --target-timeline only with types default, time, xid, lsn and name (and standby): immediate
    # and set stay on the backup's timeline, whatever was followed or asked.
    ('immediate', dict(restore_type='immediate'), 2, ['--set=' + I2, '--type=immediate', '--target-action=promote']),
    ('set', dict(restore_type='set', backup_set=I2), 2, ['--set=' + I2, '--type=immediate', '--target-action=promote']),
    ('set-current-asked', dict(restore_type='set', backup_set=I2, timeline='current'), None,
     ['--set=' + I2, '--type=immediate', '--target-action=promote']),
    ('immediate-number-asked', dict(restore_type='immediate', timeline='1'), 1,
     ['--set=' + I2, '--type=immediate', '--target-action=promote']),
    ('time-current-asked', dict(restore_type='time', target='2026-11-24 09:23:44+00', timeline='current'), None,
     ['--set=' + I2, '--type=time', '--target=2026-11-24 09:23:44+00', '--target-action=promote',
      '--target-timeline=current']),
]


@pytest.mark.parametrize('case, args, timeline, options', RESTORE_OPTIONS, ids=ids(RESTORE_OPTIONS))
def test_restore_options(host, backups, make_data_dir, case, args, timeline, options):
    pg_path = make_data_dir()
    restore = Restore(host, PgBackRest(host, 'chronos-v2'), request(pg_path=pg_path, **args))
    assert restore.restore_options(backups[I2], timeline) == ['--pg1-path=' + pg_path] + options


def test_restore_options_link_all_and_delta(host, backups, tmp_path):
    """Linked pg_wal or tablespaces are restored as links (--link-all); an interrupted restore resumes with --delta."""
    pg_path = tmp_path / 'main'
    pg_path.mkdir()
    (tmp_path / 'wal').mkdir()
    os.symlink(str(tmp_path / 'wal'), str(pg_path / 'pg_wal'))
    restore = Restore(host, PgBackRest(host, 'chronos-v2'), request(pg_path=str(pg_path)))
    assert restore.restore_options(backups[I2], 2, resume=True)[-2:] == ['--link-all', '--delta']


# --- plan --------------------------------------------------------------------------------------------------

def lookups(timeline=2, info=INFO):
    """What plan() reads from the repository: info, the archived WAL, the followed timeline's history."""
    answers = [ok(info), ok(wal_listing())]
    if timeline == 2:
        answers.append(ok(HISTORY_2))
    return answers


def test_plan_latest_into_an_empty_directory(host, commands, make_data_dir, backups):
    pg_path = make_data_dir()
    commands.expect(*lookups())
    plan = Restore(host, PgBackRest(host, 'chronos-v2'), request(pg_path=pg_path)).plan()
    assert commands.names == ['info', 'repo-ls', 'repo-get']
    options = ['--pg1-path=' + pg_path, '--set=' + I2, '--type=default', '--target-timeline=2']
    assert plan['options'] == options
    assert plan['command'] == ' '.join(PREFIX + options + ['restore'])
    assert (plan['set'], plan['backup'], plan['timeline'], plan['steps']) == (
        I2, backups[I2], 2, ['restore', 'recover', 'check'])
    assert plan['window'] == dict(start='2026-11-24 09:21:24+00', end='2026-11-24 09:52:51+00', timeline=2)
    assert plan['found'] == 'PostgreSQL is stopped and the data directory is empty'
    assert (plan['postgresql_running'], plan['discards']) == (False, None)
    # Planning records only what it read.
    assert len(host.executed_commands) == 3


def test_plan_a_time_on_timeline_1(host, commands, make_data_dir):
    pg_path = make_data_dir({'PG_VERSION': b'15\n'})
    commands.expect(*lookups(timeline=1))
    plan = Restore(host, PgBackRest(host, 'chronos-v2'),
                   request('time', '2026-11-24 09:30:00+00', pg_path=pg_path)).plan()
    assert commands.names == ['info', 'repo-ls']
    assert (plan['set'], plan['timeline']) == (D2, 1)
    assert plan['window'] == dict(start='2026-11-24 09:21:24+00', end='2026-11-24 09:52:13+00', timeline=1)
    assert plan['steps'] == ['move_aside', 'restore', 'recover', 'check']
    assert plan['discards'] == ('Changes after the target are not in the restored cluster; the current data directory '
                                'is kept, not deleted.')


def running_lookups(timeline=2, ready=0):
    """What plan() reads when PostgreSQL runs: info and the archived WAL, the server (inspect), then the followed
    timeline's history from the repository."""
    answers = [ok(INFO), ok(wal_listing()), ok(), ok(psql_rows(('f', 'f')))] + server(timeline=timeline, ready=ready)
    if timeline == 2:
        answers.append(ok(HISTORY_2))
    return answers


def test_plan_latest_of_a_running_cluster_archives_first(host, commands, make_data_dir):
    """A latest restore stops production only once its WAL is in the repository: a step of its own comes first."""
    pg_path = make_data_dir({'PG_VERSION': b'15\n', 'postmaster.pid': ('%d\n' % os.getpid()).encode()})
    commands.expect(*running_lookups(ready=3))
    plan = Restore(host, PgBackRest(host, 'chronos-v2'), request(pg_path=pg_path)).plan()
    assert plan['steps'] == ['archive'] + ALL
    assert plan['timeline'] == 2
    assert plan['facts'] == ["timeline 2: the running server's",
                             '3 WAL segments wait in pg_wal to be archived, the oldest since 2026-11-24 09:43:19+00']
    assert plan['discards'] == 'The current data directory is kept, not deleted.'


def test_plan_latest_giving_unarchived_wal_up(host, commands, make_data_dir):
    pg_path = make_data_dir({'PG_VERSION': b'15\n', 'postmaster.pid': ('%d\n' % os.getpid()).encode()})
    commands.expect(*running_lookups(ready=3))
    plan = Restore(host, PgBackRest(host, 'chronos-v2'), request(pg_path=pg_path, accept_wal_loss=True)).plan()
    assert plan['steps'] == ALL
    assert 'WAL not yet archived is given up (accept_wal_loss)' in plan['facts']
    assert plan['discards'] == ('WAL not archived (3 segments waiting, and what is written until the stop) is not in the '
                                'restored cluster; the current data directory is kept, not deleted.')


def test_plan_follows_the_running_servers_timeline_not_the_newest_archived(host, commands, make_data_dir):
    """The repository's newest segment is on timeline 2 (an abandoned point-in-time restore's); production runs on 1."""
    pg_path = make_data_dir({'PG_VERSION': b'15\n', 'postmaster.pid': ('%d\n' % os.getpid()).encode()})
    commands.expect(*running_lookups(timeline=1))
    plan = Restore(host, PgBackRest(host, 'chronos-v2'), request(pg_path=pg_path)).plan()
    assert (plan['timeline'], plan['set']) == (1, I2)
    assert '--target-timeline=1' in plan['options']


@pytest.mark.parametrize('args, info, names, message, window', [
    (dict(restore_type='time', target='2026-11-24 09:21:23+00'), INFO, ['info', 'repo-ls'],
     'Target 2026-11-24 09:21:23+00 is before the recoverable window on timeline 1, which starts when the oldest backup '
     'on it stopped: 2026-11-24 09:21:24+00. Nothing was changed.',
     dict(start='2026-11-24 09:21:24+00', end=None, timeline=1)),
    (dict(restore_type='time', target='2026-11-24 09:52:51.5+00'), INFO, ['info', 'repo-ls', 'repo-get'],
     'Target 2026-11-24 09:52:51.5+00 is after the recoverable window on timeline 2, which ends with the newest archived '
     'WAL segment, stored at 2026-11-24 09:52:51+00. Recovery would stop short of it. Nothing was changed.',
     dict(start='2026-11-24 09:21:24+00', end='2026-11-24 09:52:51+00', timeline=2)),
    (dict(restore_type='time', target='2026-11-24 09:52:13.5+00', timeline='1'), INFO, ['info', 'repo-ls'],
     'Target 2026-11-24 09:52:13.5+00 is after the recoverable window on timeline 1, which ends with the newest archived '
     'WAL segment, stored at 2026-11-24 09:52:13+00. Recovery would stop short of it. Nothing was changed.',
     dict(start='2026-11-24 09:21:24+00', end='2026-11-24 09:52:13+00', timeline=1)),
    (dict(), 'info-no-backup.json', ['info'], 'Stanza chronos-v2 has no backup to restore. Nothing was changed.', None),
], ids=['before-window', 'after-window', 'after-window-on-timeline-1', 'no-backup'])
def test_plan_refusals(host, commands, make_data_dir, args, info, names, message, window):
    pg_path = make_data_dir()
    commands.expect(*lookups(timeline=2 if 'repo-get' in names else 1, info=info)[:len(names)])
    with pytest.raises(ChronosError) as raised:
        Restore(host, PgBackRest(host, 'chronos-v2'), request(pg_path=pg_path, **args)).plan()
    assert raised.value.msg == message
    assert raised.value.extra.get('window') == window
    assert commands.names == names


def test_plan_time_without_archived_wal(host, commands, make_data_dir):
    commands.expect(ok(INFO), ok(b'{".":{"type":"path"}}'))
    with pytest.raises(ChronosError) as raised:
        Restore(host, PgBackRest(host, 'chronos-v2'), request('time', '2026-11-24 09:30:00+00',
                                                              pg_path=make_data_dir())).plan()
    assert raised.value.msg == ('The repository holds no archived WAL for stanza chronos-v2, so no point in time can be '
                                'recovered: check WAL archiving (pgbackrest_check). Nothing was changed.')


def test_plan_refuses_without_room(host, commands, make_data_dir, monkeypatch):
    pg_path = make_data_dir()
    commands.expect(*lookups())
    restore = Restore(host, PgBackRest(host, 'chronos-v2'), request(pg_path=pg_path))
    monkeypatch.setattr(restore.place, 'free', lambda: 20 * 2 ** 20)
    with pytest.raises(ChronosError) as raised:
        restore.plan()
    assert raised.value.msg == ('Not enough free space to restore beside the kept data directory: the backup holds 29 MB, '
                                '20 MB are free where %s lies. Free space, then run again. Nothing was changed.' % pg_path)


def test_plan_refuses_a_mount_point(host, commands, make_data_dir, monkeypatch):
    pg_path = make_data_dir()
    restore = Restore(host, PgBackRest(host, 'chronos-v2'), request(pg_path=pg_path))
    monkeypatch.setattr(restore.place, 'refusal', lambda: '%s is a mount point.' % pg_path)
    with pytest.raises(ChronosError, match=r'is a mount point. Nothing was changed.$'):
        restore.plan()
    assert commands.calls == []


# --- execute ----------------------------------------------------------------------------------------------

def holder_says(texts):
    """An answer that records what the stanza lock's holder says while the command runs."""
    def answer(call):
        texts.append(StanzaLock('chronos-v2', 'progress').holder())
        return 0, b'', b''
    return answer


def run_restore(host, commands, pg_path, args=None, answers=()):
    restore = Restore(host, PgBackRest(host, 'chronos-v2'), request(pg_path=pg_path, **(args or {})))
    commands.expect(*lookups())
    plan = restore.plan()
    commands.expect(*answers)
    return restore, plan, restore.execute(plan)


def test_execute_into_an_empty_directory(host, commands, make_data_dir, clock):
    pg_path = make_data_dir()
    said = []
    restore, plan, result = run_restore(host, commands, pg_path, answers=[
        holder_says(said), start_postgresql(pg_path), ok(psql_rows(('f', 'f'))), ok(psql_rows(('4',)))])
    assert commands.names[3:] == ['restore', 'service', 'psql', 'psql']
    assert commands.calls[3]['argv'] == PREFIX + plan['options'] + ['restore']
    assert commands.calls[-1]['stdin'] == 'SELECT count(*) FROM pg_database'
    assert said == ['restore into %s pid %d since %d: step 1 of 3, restore the files with pgBackRest; started %d; '
                    'backup size 30526410' % (pg_path, os.getpid(), CLOCK_START, CLOCK_START)]
    assert result['sanity'] == [['4']] and result['kept'] is None
    assert result['plan']['steps'] == ['restore', 'recover', 'check'] and 'options' not in result['plan']
    assert result['timings'] == dict(restore=0.0, recover=0.0, check=0.0, total=0.0)
    # The lock is released.
    with StanzaLock('chronos-v2', 'next', wait=0):
        pass


def test_execute_moves_the_old_cluster_aside(host, commands, make_data_dir, clock):
    pg_path = make_data_dir({'PG_VERSION': b'15\n', 'base/1/1259': b'old'})
    clock.now = 1795520000.0
    restore, plan, result = run_restore(host, commands, pg_path, answers=[
        ok(), start_postgresql(pg_path), ok(psql_rows(('f', 'f'))), ok(psql_rows(('4',)))])
    assert plan['steps'] == ['move_aside', 'restore', 'recover', 'check']
    stamp = _restore.stamp()
    assert result['kept']['name'] == pg_path + '.pre-restore-' + stamp
    assert sorted(os.listdir(result['kept']['path'])) == ['PG_VERSION', 'base']
    # pgBackRest restored into the emptied directory with --delta, over the guard (postmaster.pid: what the start
    # wrote; the fake restore leaves the guard).
    assert sorted(os.listdir(pg_path)) == sorted([GUARD_NOTE, 'PG_VERSION', 'postmaster.pid'])
    assert commands.calls[3]['argv'][-2:] == ['--delta', 'restore']


def test_execute_archives_then_stops_a_running_postgresql_first(host, commands, make_data_dir):
    pg_path = make_data_dir({'PG_VERSION': b'15\n', 'postmaster.pid': ('%d\n' % os.getpid()).encode()})
    restore = Restore(host, PgBackRest(host, 'chronos-v2'), request(pg_path=pg_path))
    commands.expect(*running_lookups())
    plan = restore.plan()
    commands.expect(ok(psql_rows(('000000020000000000000014',))), ok(psql_rows(('1',))), ok(psql_rows(('0',))),
                    stop_postgresql(pg_path), ok(b''), ok(), start_postgresql(pg_path), ok(psql_rows(('f', 'f'))),
                    ok(psql_rows(('4',))))
    restore.execute(plan)
    assert commands.names[7:] == ['psql', 'psql', 'psql', 'service', 'find', 'restore', 'service', 'psql', 'psql']
    assert commands.calls[7]['stdin'] == 'SELECT pg_walfile_name(pg_switch_wal())'
    assert '-v' in commands.calls[8]['argv'] and 'segment=000000020000000000000014' in commands.calls[8]['argv']
    assert commands.calls[11]['argv'] == ['find', pg_path + '/pg_wal/archive_status', '-name', '*.ready']
    assert [call['argv'][1:] for call in commands.calls if call['argv'][0].endswith('service')] == [
        ['postgresql', 'stop'], ['postgresql', 'start']]


def test_execute_refuses_to_stop_when_archiving_makes_no_progress(host, commands, make_data_dir, clock):
    pg_path = make_data_dir({'PG_VERSION': b'15\n', 'postmaster.pid': ('%d\n' % os.getpid()).encode()})
    restore = Restore(host, PgBackRest(host, 'chronos-v2'), request(pg_path=pg_path, archive_wait=3))
    commands.expect(*running_lookups())
    plan = restore.plan()
    commands.expect(ok(psql_rows(('000000020000000000000014',))), *[ok(psql_rows(('2',)))] * 4,
                    ok(psql_rows(('2', str(int(CLOCK_START) - 600), '16777216', pg_path))))
    with pytest.raises(ChronosError) as raised:
        restore.execute(plan)
    assert raised.value.msg.startswith('WAL archiving does not reach the repository: 2 segments (32 MB) wait in pg_wal, '
                                       'the oldest since 2026-11-24 09:43:19+00, and none was archived in 3 s.')
    assert 'PostgreSQL was not stopped; nothing was changed.' in raised.value.msg
    assert raised.value.extra['refused'] is True
    assert 'service' not in commands.names


def test_execute_pushes_what_postgresql_left_unarchived_at_its_stop(host, commands, make_data_dir):
    pg_path = make_data_dir({'PG_VERSION': b'15\n', 'postmaster.pid': ('%d\n' % os.getpid()).encode()})
    restore = Restore(host, PgBackRest(host, 'chronos-v2'), request(pg_path=pg_path))
    commands.expect(*running_lookups())
    plan = restore.plan()
    left = ('%s/pg_wal/archive_status/000000020000000000000015.ready\n' % pg_path).encode()
    commands.expect(ok(psql_rows(('000000020000000000000014',))), ok(psql_rows(('0',))), stop_postgresql(pg_path),
                    ok(left), ok(), ok(), start_postgresql(pg_path), ok(psql_rows(('f', 'f'))), ok(psql_rows(('4',))))
    restore.execute(plan)
    pushed = [call for call in commands.calls if 'archive-push' in call['argv']][0]
    assert [arg for arg in pushed['argv'] if not arg.startswith('--stanza') and 'log-level' not in arg] == [
        'pgbackrest', '--no-archive-async', 'archive-push', pg_path + '/pg_wal/000000020000000000000015']


def test_execute_starts_postgresql_again_when_what_it_left_cannot_be_archived(host, commands, make_data_dir):
    pg_path = make_data_dir({'PG_VERSION': b'15\n', 'postmaster.pid': ('%d\n' % os.getpid()).encode()})
    restore = Restore(host, PgBackRest(host, 'chronos-v2'), request(pg_path=pg_path))
    commands.expect(*running_lookups())
    plan = restore.plan()
    left = ('%s/pg_wal/archive_status/000000020000000000000015.ready\n' % pg_path).encode()
    commands.expect(ok(psql_rows(('000000020000000000000014',))), ok(psql_rows(('0',))), stop_postgresql(pg_path),
                    ok(left), fails(103, b'ERROR: [103]: unable to find a valid repository\n'),
                    start_postgresql(pg_path), ok())
    with pytest.raises(PgBackRestError) as raised:
        restore.execute(plan)
    assert 'PostgreSQL was started again; nothing was moved.' in raised.value.msg
    assert os.path.exists(os.path.join(pg_path, 'postmaster.pid')) and restore.place.kept() == []


@pytest.mark.parametrize('rc, name, advice', [
    (38, 'restore-stale-pid.err', _restore.RESTORE_ADVICE[38]),
    (40, 'restore-not-empty.err', _restore.RESTORE_ADVICE[40]),
])
def test_execute_restore_failure_says_what_to_do(host, commands, make_data_dir, rc, name, advice):
    pg_path = make_data_dir({'PG_VERSION': b'15\n'})
    with pytest.raises(PgBackRestError) as raised:
        run_restore(host, commands, pg_path, answers=[fails(rc, name)])
    error = raised.value
    assert error.msg.startswith('Unable to restore backup set %s into %s: pgBackRest error [%03d]: ' % (I2, pg_path, rc))
    assert error.msg.endswith(advice)
    assert error.extra['step'] == 'restore'
    assert error.extra['kept']['name'].startswith(pg_path + '.pre-restore-')
    assert error.extra['plan']['steps'] == ['move_aside', 'restore', 'recover', 'check']
    assert 'options' not in error.extra['plan']


def test_execute_failure_names_the_kept_copy_of_an_earlier_run(host, commands, make_data_dir):
    """The run that moved the data aside was interrupted; this one resumes and fails: the kept copy is still named."""
    pg_path = make_data_dir({'backup.manifest': b'{}', 'PG_VERSION': b'15\n'})
    os.makedirs(pg_path + '.pre-restore-20261124T095255Z')
    with pytest.raises(PgBackRestError) as raised:
        run_restore(host, commands, pg_path, answers=[fails(40, 'restore-not-empty.err')])
    assert raised.value.extra['kept']['stamp'] == '20261124T095255Z'
    assert commands.calls[-1]['argv'][-2:] == ['--delta', 'restore']


def test_execute_stops_after_a_step_when_a_fault_is_injected(host, commands, make_data_dir, monkeypatch):
    """The interruption tests (molecule) end a run right after a step: CHRONOS_PGBACKREST_FAULT=after:<step>."""
    pg_path = make_data_dir({'PG_VERSION': b'15\n'})

    class Interrupted(BaseException):
        pass

    def exit_now(code):
        raise Interrupted(code)
    monkeypatch.setattr(os, '_exit', exit_now)
    monkeypatch.setenv(_restore.FAULT_VARIABLE, 'after:move_aside')
    with pytest.raises(Interrupted) as raised:
        run_restore(host, commands, pg_path)
    assert raised.value.args == (130,)
    assert sorted(os.listdir(pg_path)) == sorted([GUARD_NOTE, 'PG_VERSION'])


def test_execute_while_another_holds_the_stanza(host, commands, make_data_dir, clock):
    pg_path = make_data_dir()
    restore = Restore(host, PgBackRest(host, 'chronos-v2'), request(pg_path=pg_path, lock_wait=3))
    commands.expect(*lookups())
    plan = restore.plan()
    with StanzaLock('chronos-v2', 'scheduled diff backup'):
        with pytest.raises(StanzaLock.Busy, match='scheduled diff backup pid'):
            restore.execute(plan)
    assert clock.slept == [1, 1, 1]


# --- progress -----------------------------------------------------------------------------------------------

def test_progress_without_a_restore(host, commands):
    assert _restore.progress(host, PgBackRest(host, 'chronos-v2'), '/data') == 'No restore holds the stanza lock now.'


def test_progress_while_a_backup_holds_the_lock(host, commands):
    with StanzaLock('chronos-v2', 'scheduled full backup'):
        text = _restore.progress(host, PgBackRest(host, 'chronos-v2'), '/data')
    assert text == 'No restore holds the stanza lock now (scheduled full backup pid %d since %d).' % (
        os.getpid(), CLOCK_START)


def test_progress_of_the_files_from_the_data_directory(host, commands, make_data_dir, clock):
    """pgBackRest 2.45 does not report a restore's progress: the bytes in the data directory stand for it."""
    pg_path = make_data_dir({'base/1/1259': b'x' * (3 * 2 ** 20)})
    with StanzaLock('chronos-v2', 'restore into %s' % pg_path) as lock:
        lock.note('step 2 of 4, restore the files with pgBackRest; started %d; backup size %d' % (
            clock.now - 125, 12 * 2 ** 20))
        text = _restore.progress(host, PgBackRest(host, 'chronos-v2'), pg_path)
    assert text == 'Step 2 of 4, restore the files with pgBackRest: 3 of 12 MiB (25 %); 2 min 05 s since the restore started.'


def test_progress_of_another_step(host, commands, clock):
    with StanzaLock('chronos-v2', 'restore into /data') as lock:
        lock.note('step 3 of 4, start PostgreSQL and wait for recovery; started %d; backup size 100' % (clock.now - 61))
        text = _restore.progress(host, PgBackRest(host, 'chronos-v2'), '/data')
    assert text == 'Step 3 of 4, start PostgreSQL and wait for recovery; 1 min 01 s since the restore started.'


def test_progress_after_the_restore_ended(host, commands, clock):
    with StanzaLock('chronos-v2', 'restore into /data') as lock:
        lock.note('step 5 of 5, run the sanity query; started %d; backup size 100' % clock.now)
    assert _restore.progress(host, PgBackRest(host, 'chronos-v2'), '/data') == 'No restore holds the stanza lock now.'


def test_progress_after_the_restore_was_killed(host, commands, lock_dir):
    """A killed restore leaves its last note in the lock file, but no longer holds the lock."""
    os.makedirs(lock_dir)
    with open(os.path.join(lock_dir, 'chronos-v2.lock'), 'w') as handle:
        handle.write('restore into /data pid 4242: step 3 of 5, restore the files with pgBackRest; started %d; backup '
                     'size 100\n' % CLOCK_START)
    assert _restore.progress(host, PgBackRest(host, 'chronos-v2'), '/data') == 'No restore holds the stanza lock now.'


# --- rollback ------------------------------------------------------------------------------------------------

@pytest.fixture
def rolled(tmp_path):
    """/pg/main (a restored cluster) beside two kept copies and a rolled-back one."""
    main = tmp_path / 'pg' / 'main'
    for name, content in (('main', 'restored'), ('main.pre-restore-20261124T095217Z', 'original'),
                          ('main.pre-restore-20261124T095255Z', 'first restore'),
                          ('main.rolled-back-20261124T100000Z', 'rolled back')):
        (tmp_path / 'pg' / name).mkdir(parents=True)
        (tmp_path / 'pg' / name / 'PG_VERSION').write_text(content)
    return main


def test_rollback_plan_takes_the_newest_kept_copy(host, commands, rolled):
    plan = Rollback(host, PgBackRest(host, 'chronos-v2'), request(pg_path=str(rolled))).plan()
    assert plan['kept']['stamp'] == '20261124T095255Z'
    assert [copy['stamp'] for copy in plan['available']] == ['20261124T095217Z', '20261124T095255Z', '20261124T100000Z']
    assert plan['steps'] == ['put_back', 'start', 'check']
    assert plan['found'] == 'PostgreSQL is stopped; 3 kept data directories'
    assert commands.calls == []


def test_rollback_plan_of_a_named_copy_while_running(host, commands, rolled):
    (rolled / 'postmaster.pid').write_text('%d\n' % os.getpid())
    plan = Rollback(host, PgBackRest(host, 'chronos-v2'), request(pg_path=str(rolled)), kept_name='20261124T095217Z').plan()
    assert plan['kept']['name'] == str(rolled) + '.pre-restore-20261124T095217Z'
    assert (plan['steps'], plan['postgresql_running']) == (['stop', 'put_back', 'start', 'check'], True)


def test_rollback_without_a_kept_copy(host, commands, make_data_dir):
    pg_path = make_data_dir()
    with pytest.raises(ChronosError) as raised:
        Rollback(host, PgBackRest(host, 'chronos-v2'), request(pg_path=pg_path)).plan()
    assert raised.value.msg == ('There is no kept data directory of %s to put back (none named *.pre-restore-*). '
                                'Nothing was changed.' % pg_path)


def test_rollback_execute(host, commands, rolled):
    rollback = Rollback(host, PgBackRest(host, 'chronos-v2'), request(pg_path=str(rolled)))
    plan = rollback.plan()
    commands.expect(ok(), ok(), ok(psql_rows(('4',))))
    result = rollback.execute(plan)
    assert commands.names == ['service', 'pg_isready', 'psql']
    assert (rolled / 'PG_VERSION').read_text() == 'first restore'
    assert result['kept']['name'].startswith(str(rolled) + '.rolled-back-')
    assert (rolled.parent / os.path.basename(result['kept']['name']) / 'PG_VERSION').read_text() == 'restored'
    assert not (rolled.parent / 'main.pre-restore-20261124T095255Z').exists()
    assert result['sanity'] == [['4']]
    assert set(result['timings']) == {'put_back', 'start', 'check', 'total'}


def test_rollback_when_postgresql_does_not_come_back(host, commands, rolled):
    rollback = Rollback(host, PgBackRest(host, 'chronos-v2'), request(pg_path=str(rolled), timeout=2))
    plan = rollback.plan()
    commands.expect(ok(), fails(2), fails(2), fails(2))
    with pytest.raises(ChronosError) as raised:
        rollback.execute(plan)
    assert raised.value.msg == 'PostgreSQL did not accept connections 2 s after the rollback on this host.'
    assert raised.value.extra == dict(step='start')
