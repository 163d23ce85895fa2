# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore code: the restore helpers of plugins/module_utils/_pgbackrest.py and pgbackrest_restore's main(),
against captured pgBackRest 2.45 output, files pgBackRest restores wrote, and PostgreSQL 15's reading of
target times (fixtures/README.md, section "Restore").

Fake data directories are built in tmp_path from those captured files (make_data_dir in conftest.py).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _pgbackrest as pgbr
from ansible_collections.chronos.pgbackrest.plugins.modules import pgbackrest_restore

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')

# The backups of info-after-pitr.json, oldest first: label, stop time, START WAL LOCATION (lsn.start).
F1 = '20261124-092101F'                      # stop 09:21:24, 0/2000028
F2 = '20261124-092311F'                      # stop 09:23:37, 0/6000028
D1 = '20261124-092311F_20261124-092341D'     # stop 09:23:43, 0/7000028
I1 = '20261124-092311F_20261124-092345I'     # stop 09:23:46, 0/9000028
D2 = '20261124-092311F_20261124-092445D'     # stop 09:24:47, 0/D000028
I2 = '20261124-092311F_20261124-095026I'     # stop 09:50:28, 0/10000028
LABELS = [F1, F2, D1, I1, D2, I2]

INFO = 'info-after-pitr.json'
REPO_LS = 'repo-ls-wal-tl2.json'               # the directory of info-after-pitr.json's newest archived segment
NEWEST_WAL_DIR = 'archive/chronos-v2/15-1/0000000200000000'
WINDOW_START = '2026-11-24 09:21:24+00'        # F1 stopped
WINDOW_END = '2026-11-24 09:52:51+00'          # 000000020000000000000012 was stored (repo-ls time 1795513971)
WINDOW = dict(start=WINDOW_START, end=WINDOW_END)

BINARY = '/usr/bin/pgbackrest'
PREFIX = [BINARY, '--stanza=chronos-v2', '--log-level-console=off', '--log-level-stderr=warn']


def ids(table):
    """Name parametrized rows after their first column."""
    return [row[0] for row in table]


def ok(name, captured_bytes):
    return (0, captured_bytes(name), b'')


def lookups(captured_bytes, restore_type, info=INFO):
    """What run_command answers before a restore: info, and for type=time the repo-ls of the newest WAL."""
    outputs = [ok(info, captured_bytes)]
    if restore_type == 'time':
        outputs.append(ok(REPO_LS, captured_bytes))
    return outputs


def stanza_of(captured, name):
    stanzas = pgbr.parse_info(captured(name))
    assert len(stanzas) == 1
    return stanzas[0]


def backup_of(captured, label):
    return [backup for backup in stanza_of(captured, INFO)['backups'] if backup['label'] == label][0]


def pid_file(captured_bytes, pid):
    """The lab's postmaster.pid (datadir-main.postmaster.pid) with its first line, the postmaster's pid, replaced."""
    lines = captured_bytes('datadir-main.postmaster.pid').split(b'\n')
    return b'\n'.join([str(pid).encode()] + lines[1:])


def dead_pid():
    """The pid of a process that has exited and been reaped: what a postmaster.pid left by a crash names."""
    child = subprocess.Popen([sys.executable, '-c', ''])
    child.wait()
    return child.pid


def assert_utf8(result):
    json.dumps(result, ensure_ascii=False).encode('utf-8')


# --- parse_target_time ------------------------------------------------------------------------------

def _target_times():
    """fixtures/target-times.tsv: time text <TAB> what PostgreSQL 15 made of it (epoch, or its ERROR line)."""
    with open(os.path.join(FIXTURES, 'target-times.tsv')) as handle:
        return [tuple(line.rstrip('\n').split('\t')) for line in handle if line.strip()]


TARGET_TIMES = _target_times()
ACCEPTED_BY_POSTGRESQL = [(text, float(answer)) for text, answer in TARGET_TIMES if not answer.startswith('ERROR')]
FIELD_OUT_OF_RANGE = [text for text, answer in TARGET_TIMES if 'date/time field value out of range' in answer]
DISPLACEMENT_OUT_OF_RANGE = [text for text, answer in TARGET_TIMES if 'time zone displacement out of range' in answer]


def test_target_times_fixture_holds_every_kind():
    """Guards the fixture: an empty or truncated target-times.tsv must not make the tables below vanish."""
    assert (len(ACCEPTED_BY_POSTGRESQL), len(FIELD_OUT_OF_RANGE), len(DISPLACEMENT_OUT_OF_RANGE)) == (18, 5, 3)
    assert len(TARGET_TIMES) == 26


@pytest.mark.parametrize('text, epoch', ACCEPTED_BY_POSTGRESQL, ids=[row[0] for row in ACCEPTED_BY_POSTGRESQL])
def test_parse_target_time_agrees_with_postgresql(text, epoch):
    """The epoch PostgreSQL 15 computes for the same text (SELECT extract(epoch FROM '<text>'::timestamptz))."""
    got = pgbr.parse_target_time(text)
    assert isinstance(got, float)
    assert got == pytest.approx(epoch, abs=1e-6)


@pytest.mark.parametrize('text, utc', [
    ('2026-11-24 08:22:18+00', '2026-11-24 08:22:18+00'),
    ('2026-11-24 08:22:18+02', '2026-11-24 06:22:18+00'),
    ('2026-11-24 08:22:18-05:00', '2026-11-24 13:22:18+00'),
    ('2026-11-24 08:22:18+0530', '2026-11-24 02:52:18+00'),
    ('2026-11-24 08:22:18Z', '2026-11-24 08:22:18+00'),
    ('2026-11-24 08:22:18 UTC', '2026-11-24 08:22:18+00'),
    ('2026-11-24T08:22:18+01:00', '2026-11-24 07:22:18+00'),
    ('2026-11-24 23:30:00-01', '2026-11-25 00:30:00+00'),        # crosses midnight
    ('  2026-11-24 08:22:18+00  ', '2026-11-24 08:22:18+00'),    # surrounding blanks are ignored
])
def test_parse_target_time_offsets(text, utc):
    assert pgbr.utc(pgbr.parse_target_time(text)) == utc


@pytest.mark.parametrize('text, fraction', [
    ('2026-11-24 08:22:18.5+00', 0.5),
    ('2026-11-24 08:22:18.817350+00', 0.81735),
    ('2026-11-24 08:22:18.000001Z', 0.000001),
])
def test_parse_target_time_keeps_fractions(text, fraction):
    assert pgbr.parse_target_time(text) - 1795508538 == pytest.approx(fraction, abs=1e-6)


NOT_A_TIME = "is not a time with a time zone: write it like '2026-11-24 08:22:18+00'"


@pytest.mark.parametrize('text', [
    '2026-11-24 08:22:18',          # no time zone: PostgreSQL would use the server's
    '2026-11-24T08:22:18',
    '2026-11-24 08:22:18.5',
    '2026-11-24 08:22:18 Europe/Paris',
    '2026-11-24 08:22:18 CET',
    '2026-11-24 08:22+00',          # no seconds
    '2026-11-24+00',
    '08:22:18+00',
    'yesterday',
    'now',
    'latest',
    '1795508538',
    '24/11/2026 08:22:18+00',
    '',
    None,
])
def test_parse_target_time_rejects_what_is_not_a_time_with_a_zone(text):
    with pytest.raises(ValueError) as raised:
        pgbr.parse_target_time(text)
    assert str(raised.value) == "'%s' %s" % (text, NOT_A_TIME)


@pytest.mark.parametrize('text', FIELD_OUT_OF_RANGE)
def test_parse_target_time_rejects_impossible_dates(text):
    """PostgreSQL rejects these too: 'date/time field value out of range' (target-times.tsv)."""
    with pytest.raises(ValueError) as raised:
        pgbr.parse_target_time(text)
    assert str(raised.value) == "'%s' is not a valid date and time" % text


# --- read_restored_state ----------------------------------------------------------------------------

RESTORE_COMMAND = 'pgbackrest --pg1-path=/tmp/unit-cap/%s --stanza=chronos-v2 archive-get %%f "%%p"'
LAB_RESTORE_COMMAND = ('/usr/bin/pgbackrest --config=/etc/pgbackrest/pgbackrest.conf '
                       '--pg1-path=/var/lib/postgresql/15/main --stanza=chronos-v2 archive-get %f "%p"')


def restored(name, label='backup_label'):
    """The files a scratch restore into /tmp/unit-cap/<name> left, under their names in a data directory."""
    return {label: 'restore-%s.backup_label' % name, 'postgresql.auto.conf': 'restore-%s.auto.conf' % name}


LAB_MAIN = {'backup_label.old': 'datadir-main.backup_label.old', 'postgresql.auto.conf': 'datadir-main.auto.conf'}
LAB_PRE_RESTORE = {'backup_label.old': 'datadir-pre-restore-095255Z.backup_label.old',
                   'postgresql.auto.conf': 'datadir-pre-restore-095255Z.auto.conf'}

READ_RESTORED_STATE = [
    ('time', restored('time'), dict(start_lsn='0/7000028', settings=dict(
        restore_command=RESTORE_COMMAND % 'time2', recovery_target_time='2026-11-24 09:23:44+00',
        recovery_target_action='promote'))),
    ('time-iso', restored('time-iso'), dict(start_lsn='0/10000028', settings=dict(
        restore_command=RESTORE_COMMAND % 'time-iso', recovery_target_time='2026-11-24T09:52:00Z',
        recovery_target_action='promote'))),
    ('immediate', restored('immediate'), dict(start_lsn='0/6000028', settings=dict(
        restore_command=RESTORE_COMMAND % 'immediate', recovery_target='immediate', recovery_target_action='promote',
        recovery_target_timeline='current'))),
    # target-action=pause is pgBackRest's default: it writes no recovery_target_action.
    ('immediate-pause', restored('immediate-pause'), dict(start_lsn='0/2000028', settings=dict(
        restore_command=RESTORE_COMMAND % 'immediate-pause', recovery_target='immediate',
        recovery_target_timeline='current'))),
    ('default', restored('default'), dict(start_lsn='0/10000028', settings=dict(
        restore_command=RESTORE_COMMAND % 'default'))),
    ('xid', restored('xid'), dict(start_lsn='0/D000028', settings=dict(
        restore_command=RESTORE_COMMAND % 'xid', recovery_target_xid='750', recovery_target_action='shutdown'))),
    ('lsn', restored('lsn'), dict(start_lsn='0/D000028', settings=dict(
        restore_command=RESTORE_COMMAND % 'lsn', recovery_target_lsn='0/D000200', recovery_target_action='promote'))),
    ('name', restored('name'), dict(start_lsn='0/D000028', settings=dict(
        restore_command=RESTORE_COMMAND % 'name', recovery_target_name='before-upgrade'))),
    # --delta over the 'time' restore: pgBackRest put the backup's postgresql.auto.conf back, then one new block.
    ('delta', restored('delta'), dict(start_lsn='0/6000028', settings=dict(
        restore_command=RESTORE_COMMAND % 'time', recovery_target='immediate', recovery_target_action='promote',
        recovery_target_timeline='current'))),
    # The lab's data directory after recovery: backup_label became backup_label.old.
    ('lab-main', LAB_MAIN, dict(start_lsn='0/10000028', settings=dict(
        restore_command=LAB_RESTORE_COMMAND, recovery_target_time='2026-11-24 09:52:48.817350+00',
        recovery_target_action='promote'))),
    ('lab-pre-restore-095255Z', LAB_PRE_RESTORE, dict(start_lsn='0/10000028', settings=dict(
        restore_command=LAB_RESTORE_COMMAND, recovery_target_time='2026-11-24 09:52:10+00',
        recovery_target_action='promote'))),
    ('label-renamed-to-old', restored('time', 'backup_label.old'), dict(start_lsn='0/7000028', settings=dict(
        restore_command=RESTORE_COMMAND % 'time2', recovery_target_time='2026-11-24 09:23:44+00',
        recovery_target_action='promote'))),
    # While both exist, backup_label (the restore not yet recovered) is the one that counts.
    ('label-and-old-label', dict(restored('immediate'), **{'backup_label.old': 'datadir-main.backup_label.old'}),
     dict(start_lsn='0/6000028', settings=dict(
         restore_command=RESTORE_COMMAND % 'immediate', recovery_target='immediate',
         recovery_target_action='promote', recovery_target_timeline='current'))),
    # A data directory that no pgBackRest restore produced (the lab's first cluster, moved aside).
    ('never-restored', {'postgresql.auto.conf': 'datadir-pre-restore-095217Z.auto.conf'}, None),
    ('label-without-block', {'backup_label': 'restore-time.backup_label',
                             'postgresql.auto.conf': 'datadir-pre-restore-095217Z.auto.conf'}, None),
    ('block-without-label', {'postgresql.auto.conf': 'restore-time.auto.conf'}, None),
    ('label-without-auto-conf', {'backup_label': 'restore-time.backup_label'}, None),
    ('empty', {}, None),
]


@pytest.mark.parametrize('case, files, expected', READ_RESTORED_STATE, ids=ids(READ_RESTORED_STATE))
def test_read_restored_state(make_data_dir, case, files, expected):
    assert pgbr.read_restored_state(make_data_dir(files)) == expected


def test_read_restored_state_missing_dir(tmp_path):
    assert pgbr.read_restored_state(str(tmp_path / 'nowhere')) is None


def rerestored(captured_bytes, first, second, comment_out=True):
    """postgresql.auto.conf after restore `second` ran over a data directory whose postgresql.auto.conf already held
    restore `first`'s block: pgBackRest 2.45 prefixes the recovery settings it finds with
    '# Removed by pgBackRest restore on <time> # ' and appends a blank line and its own block (pgBackRest's
    test/src/module/command/restoreTest.c, "PG12 restore type standby and remove existing recovery settings").
    That needs a backup of a restored cluster; the lab has none, so it is assembled from two captured files.
    comment_out=False leaves the first block's settings as they were."""
    old = captured_bytes('restore-%s.auto.conf' % first).decode()
    new = captured_bytes('restore-%s.auto.conf' % second).decode()
    header = '# Recovery settings generated by pgBackRest restore'
    if comment_out:
        old = ''.join('# Removed by pgBackRest restore on 2026-11-24 10:30:00 # ' + line
                      if line.split('=')[0].strip() in ('restore_command', 'recovery_target', 'recovery_target_time',
                                                        'recovery_target_xid', 'recovery_target_lsn',
                                                        'recovery_target_name', 'recovery_target_action',
                                                        'recovery_target_timeline') else line
                      for line in old.splitlines(True))
    block = new[new.index(header):]
    return (old.rstrip('\n') + '\n\n' + block).encode()


@pytest.mark.parametrize('comment_out', [True, False], ids=['commented-out', 'left-as-is'])
@pytest.mark.parametrize('first, second', [('time', 'default'), ('default', 'xid'), ('xid', 'immediate-pause')])
def test_read_restored_state_last_block_wins(captured_bytes, make_data_dir, first, second, comment_out):
    conf = rerestored(captured_bytes, first, second, comment_out)
    assert conf.count(b'# Recovery settings generated by pgBackRest restore') == 2
    state = pgbr.read_restored_state(make_data_dir({'backup_label': 'restore-%s.backup_label' % second,
                                                    'postgresql.auto.conf': conf}))
    expected = [row[2] for row in READ_RESTORED_STATE if row[0] == second][0]
    assert state == expected


# --- postgresql_running -----------------------------------------------------------------------------

POSTGRESQL_RUNNING = [
    ('no-pid-file', lambda captured_bytes: None, False),
    ('own-pid', lambda captured_bytes: pid_file(captured_bytes, os.getpid()), True),
    ('pid-1', lambda captured_bytes: pid_file(captured_bytes, 1), True),      # alive; EPERM when not root
    ('dead-pid', lambda captured_bytes: pid_file(captured_bytes, dead_pid()), False),
    ('empty', lambda captured_bytes: b'', False),
    ('words', lambda captured_bytes: b'not a pid\n', False),
    ('digits-and-words', lambda captured_bytes: b'12abc\n/var/lib/postgresql/15/main\n', False),
    ('second-line-only', lambda captured_bytes: b'\n5348\n', False),
    ('not-utf8', lambda captured_bytes: b'\xff\xfe\x00\x01', False),
]


@pytest.mark.parametrize('case, content, running', POSTGRESQL_RUNNING, ids=ids(POSTGRESQL_RUNNING))
def test_postgresql_running(captured_bytes, make_data_dir, case, content, running):
    pid = content(captured_bytes)
    pg_path = make_data_dir(restored('time') if pid is None else dict(restored('time'), **{'postmaster.pid': pid}))
    assert pgbr.postgresql_running(pg_path) is running


def test_postgresql_running_missing_dir(tmp_path):
    assert pgbr.postgresql_running(str(tmp_path / 'nowhere')) is False


# --- newest_wal_segment_path / parse_repo_ls ----------------------------------------------------------

NEWEST_WAL_SEGMENT_PATH = [
    ('info-after-pitr.json', NEWEST_WAL_DIR, '000000020000000000000012'),     # timeline 2, after the lab's PITR
    ('info-full-diff-incr.json', 'archive/chronos-v2/15-1/0000000100000000', '00000001000000000000000A'),
    ('info-full-and-diff.json', 'archive/chronos-v2/15-1/0000000100000000', '000000010000000000000005'),
    ('info-no-backup.json', None, None),          # an archive id, nothing archived yet
    ('info-missing-stanza.json', None, None),     # no archive at all
]


@pytest.mark.parametrize('name, path, segment', NEWEST_WAL_SEGMENT_PATH, ids=ids(NEWEST_WAL_SEGMENT_PATH))
def test_newest_wal_segment_path(captured, name, path, segment):
    assert pgbr.newest_wal_segment_path(stanza_of(captured, name)) == (path, segment)


def test_parse_repo_ls_newest_wal_directory(captured):
    assert pgbr.parse_repo_ls(captured(REPO_LS)) == {
        '.': {'type': 'path'},
        '000000020000000000000012-89abf6e099f285dd73019e5bf92697bc228502ac.zst': {
            'type': 'file', 'size': 51232, 'time': 1795513971},
    }


def test_parse_repo_ls_timeline_1_directory(captured):
    listing = pgbr.parse_repo_ls(captured('repo-ls-wal-tl1.json'))
    assert len(listing) == 25
    assert listing['.'] == {'type': 'path'}
    names = sorted(name for name in listing if name != '.')
    segments = [name[:24] for name in names if name.endswith('.zst')]
    assert segments == ['0000000100000000000000%02X' % number for number in range(1, 0x13)]
    # pgBackRest also keeps each backup's .backup history file there.
    assert [name for name in names if name.endswith('.backup')] == [
        '000000010000000000000002.00000028.backup', '000000010000000000000006.00000028.backup',
        '000000010000000000000007.00000028.backup', '000000010000000000000009.00000028.backup',
        '00000001000000000000000D.00000028.backup', '000000010000000000000010.00000028.backup']
    assert listing['00000001000000000000000A-51425090f77e1f3ce284b42df868778c2588a144.zst'] == {
        'type': 'file', 'size': 656, 'time': 1795512226}


def test_repo_ls_fixture_lists_the_directory_newest_wal_segment_path_names(captured):
    """Guards the pairing the module tests rely on: REPO_LS answers the path computed from INFO."""
    path, segment = pgbr.newest_wal_segment_path(stanza_of(captured, INFO))
    assert path.rsplit('/', 1)[1] == segment[:16]
    assert [name for name in pgbr.parse_repo_ls(captured(REPO_LS)) if name.startswith(segment)]


# --- pgbackrest_restore: check mode returns the plan ------------------------------------------------

PLANS = [
    # type=time: the newest backup that stopped at or before the target.
    ('time', dict(type='time', target='2026-11-24 09:23:44+00'), D1,
     ['--set=' + D1, '--type=time', '--target=2026-11-24 09:23:44+00', '--target-action=promote']),
    ('time-at-a-stop', dict(type='time', target='2026-11-24 09:50:28+00'), I2,
     ['--set=' + I2, '--type=time', '--target=2026-11-24 09:50:28+00', '--target-action=promote']),
    ('time-just-before-a-stop', dict(type='time', target='2026-11-24 09:50:27.999999+00'), D2,
     ['--set=' + D2, '--type=time', '--target=2026-11-24 09:50:27.999999+00', '--target-action=promote']),
    ('time-window-start', dict(type='time', target='2026-11-24 09:21:24+00'), F1,
     ['--set=' + F1, '--type=time', '--target=2026-11-24 09:21:24+00', '--target-action=promote']),
    ('time-window-end', dict(type='time', target='2026-11-24 10:52:51+01:00'), I2,
     ['--set=' + I2, '--type=time', '--target=2026-11-24 10:52:51+01:00', '--target-action=promote']),
    ('time-iso', dict(type='time', target='2026-11-24T09:24:00Z'), I1,
     ['--set=' + I1, '--type=time', '--target=2026-11-24T09:24:00Z', '--target-action=promote']),
    ('time-with-set', dict(type='time', target='2026-11-24 09:23:44+00', set=F2), F2,
     ['--set=' + F2, '--type=time', '--target=2026-11-24 09:23:44+00', '--target-action=promote']),
    ('time-pause', dict(type='time', target='2026-11-24 09:23:44+00', target_action='pause'), D1,
     ['--set=' + D1, '--type=time', '--target=2026-11-24 09:23:44+00', '--target-action=pause']),
    ('time-delta', dict(type='time', target='2026-11-24 09:23:44+00', delta=True), D1,
     ['--set=' + D1, '--type=time', '--target=2026-11-24 09:23:44+00', '--target-action=promote', '--delta']),
    # type=set is pgBackRest's immediate with that set.
    ('set', dict(type='set', set=F2), F2, ['--set=' + F2, '--type=immediate', '--target-action=promote']),
    ('set-shutdown', dict(type='set', set=D1, target_action='shutdown'), D1,
     ['--set=' + D1, '--type=immediate', '--target-action=shutdown']),
    ('immediate', dict(type='immediate'), I2, ['--set=' + I2, '--type=immediate', '--target-action=promote']),
    # type=latest is pgBackRest's default: no target, no target action.
    ('latest', dict(), I2, ['--set=' + I2, '--type=default']),
    ('latest-with-set', dict(type='latest', set=D1, target_action='shutdown'), D1, ['--set=' + D1, '--type=default']),
    ('latest-delta', dict(type='latest', delta=True), I2, ['--set=' + I2, '--type=default', '--delta']),
    ('xid', dict(type='xid', target='750', set=D2, target_action='shutdown'), D2,
     ['--set=' + D2, '--type=xid', '--target=750', '--target-action=shutdown']),
    ('xid-without-set', dict(type='xid', target='750'), I2,
     ['--set=' + I2, '--type=xid', '--target=750', '--target-action=promote']),
    ('lsn', dict(type='lsn', target='0/D000200', set=D2), D2,
     ['--set=' + D2, '--type=lsn', '--target=0/D000200', '--target-action=promote']),
    ('name', dict(type='name', target='before-upgrade', set=D2, target_action='pause'), D2,
     ['--set=' + D2, '--type=name', '--target=before-upgrade', '--target-action=pause']),
]


def plan_restore(run_module, captured_bytes, pg_path, args):
    """pgbackrest_restore in check mode on pg_path; asserts it succeeded and ran only info (and for a time,
    repo-ls): the restore itself is planned, never run."""
    restore_type = args.get('type', 'latest')
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, **args),
                     lookups(captured_bytes, restore_type), check_mode=True)
    assert not run.failed, run.result.get('msg')
    assert run.commands == (['info', 'repo-ls'] if restore_type == 'time' else ['info'])
    return run


@pytest.mark.parametrize('case, args, label, options', PLANS, ids=ids(PLANS))
def test_restore_check_mode_returns_the_plan(run_module, captured, captured_bytes, make_data_dir, case, args, label,
                                             options):
    pg_path = make_data_dir()
    restore_type = args.get('type', 'latest')
    run = plan_restore(run_module, captured_bytes, pg_path, args)
    assert run.result['changed'] is True
    plan = run.result['plan']
    command = ' '.join(PREFIX + ['--pg1-path=' + pg_path] + options + ['restore'])
    assert plan['command'] == command
    assert run.result['executed_commands'][-1] == command
    assert len(run.result['executed_commands']) == len(run.calls) + 1
    assert plan['set'] == label
    assert plan['backup'] == backup_of(captured, label)
    assert (plan['type'], plan['target'], plan['pg_path']) == (restore_type, args.get('target'), pg_path)
    assert plan['window'] == dict(start=WINDOW_START, end=WINDOW_END if restore_type == 'time' else None)
    assert plan['postgresql_running'] is False
    assert os.listdir(pg_path) == []


def test_restore_time_lists_the_directory_of_the_newest_wal(run_module, captured_bytes, make_data_dir):
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=make_data_dir(), type='time',
                                              target='2026-11-24 09:23:44+00'),
                     lookups(captured_bytes, 'time'), check_mode=True)
    assert [call['argv'] for call in run.calls] == [
        PREFIX + ['--output=json', 'info'],
        PREFIX + ['--output=json', 'repo-ls', NEWEST_WAL_DIR],
    ]


# --- pgbackrest_restore: refusals -------------------------------------------------------------------

REFUSALS = [
    ('malformed-time', dict(type='time', target='yesterday'), None, [],
     "Malformed target: 'yesterday' is not a time with a time zone: write it like '2026-11-24 08:22:18+00'. "
     "Nothing was changed.", None),
    ('time-without-zone', dict(type='time', target='2026-11-24 09:23:44'), None, [],
     "Malformed target: '2026-11-24 09:23:44' is not a time with a time zone: write it like "
     "'2026-11-24 08:22:18+00'. Nothing was changed.", None),
    ('impossible-date', dict(type='time', target='2026-02-30 10:00:00+00'), None, [],
     "Malformed target: '2026-02-30 10:00:00+00' is not a valid date and time. Nothing was changed.", None),
    ('before-window', dict(type='time', target='2026-11-24 09:21:23+00'), INFO, ['info'],
     'Target 2026-11-24 09:21:23+00 is before the recoverable window, which starts when the oldest backup stopped: '
     '2026-11-24 09:21:24+00 (LSN 0/3000088). Nothing was changed.', dict(WINDOW, end=None)),
    ('after-window', dict(type='time', target='2026-11-24 09:52:51.5+00'), INFO, ['info', 'repo-ls'],
     'Target 2026-11-24 09:52:51.5+00 is after the recoverable window, which ends with the newest archived WAL '
     'segment, stored at 2026-11-24 09:52:51+00. Recovery would stop short of it. Nothing was changed.', WINDOW),
    ('after-window-with-set', dict(type='time', target='2026-11-25 00:00:00+00', set=F1), INFO, ['info', 'repo-ls'],
     'Target 2026-11-25 00:00:00+00 is after the recoverable window, which ends with the newest archived WAL '
     'segment, stored at 2026-11-24 09:52:51+00. Recovery would stop short of it. Nothing was changed.', WINDOW),
    ('unknown-set', dict(type='set', set='20261124-000000F'), INFO, ['info'],
     "Backup set '20261124-000000F' is not in stanza chronos-v2. Sets: %s. Nothing was changed." % ', '.join(LABELS),
     None),
    ('unknown-set-for-a-time', dict(type='time', target='2026-11-24 09:30:00+00', set=I2 + 'x'), INFO, ['info'],
     "Backup set '%s' is not in stanza chronos-v2. Sets: %s. Nothing was changed." % (I2 + 'x', ', '.join(LABELS)),
     None),
    ('set-after-target', dict(type='time', target='2026-11-24 09:30:00+00', set=I2), INFO, ['info'],
     "Backup set '%s' stopped at 2026-11-24 09:50:28+00, after the target. Nothing was changed." % I2, None),
    ('set-one-second-after-target', dict(type='time', target='2026-11-24 09:23:42+00', set=D1), INFO, ['info'],
     "Backup set '%s' stopped at 2026-11-24 09:23:43+00, after the target. Nothing was changed." % D1, None),
    ('no-backup', dict(), 'info-no-backup.json', ['info'],
     'Stanza chronos-v2 has no backup to restore. Nothing was changed.', None),
    ('no-backup-for-a-time', dict(type='time', target='2026-11-24 09:30:00+00'), 'info-no-backup.json', ['info'],
     'Stanza chronos-v2 has no backup to restore. Nothing was changed.', None),
]


@pytest.mark.parametrize('check_mode', [False, True], ids=['run', 'check'])
@pytest.mark.parametrize('case, args, info, commands, msg, window', REFUSALS, ids=ids(REFUSALS))
def test_restore_refuses(run_module, captured_bytes, make_data_dir, case, args, info, commands, msg, window,
                         check_mode):
    pg_path = make_data_dir()
    outputs = [ok(info, captured_bytes)] if info else []
    if 'repo-ls' in commands:
        outputs.append(ok(REPO_LS, captured_bytes))
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, **args), outputs,
                     check_mode=check_mode)
    assert run.failed
    assert run.result['msg'] == msg
    assert run.commands == commands
    assert len(run.result['executed_commands']) == len(commands)      # no restore, not even planned
    assert run.result.get('window') == window
    assert os.listdir(pg_path) == []


@pytest.mark.parametrize('name, part, in_msg', [
    ('info-missing-stanza.json', 'stanza', "'missing stanza path' (status 1)"),
    ('info-unreachable.json', 'repository', "unable to get address for 'nowhere.chronos.lab'"),
    ('info-wrong-env.json', 'encryption', 'cipher passphrase (repo1-cipher-pass)'),
], ids=['missing-stanza', 'unreachable', 'wrong-passphrase'])
def test_restore_refuses_an_unusable_stanza(run_module, captured_bytes, make_data_dir, name, part, in_msg):
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=make_data_dir(), type='time',
                                              target='2026-11-24 09:30:00+00'), [ok(name, captured_bytes)])
    assert run.failed
    assert run.result['failed_part'] == part
    assert run.result['msg'].startswith("Cannot restore: pgBackRest reports stanza 'chronos-v2' as ")
    assert run.result['msg'].endswith(' Nothing was changed.')
    assert in_msg in run.result['msg']
    assert run.commands == ['info']
    assert_utf8(run.result)


# --- pgbackrest_restore: the state of pg_path --------------------------------------------------------

@pytest.mark.parametrize('args', [dict(), dict(delta=True), dict(type='set', set=F2)], ids=['latest', 'delta', 'set'])
def test_restore_refuses_while_postgresql_runs(run_module, captured_bytes, make_data_dir, args):
    pg_path = make_data_dir(dict(restored('time'), **{'postmaster.pid': pid_file(captured_bytes, os.getpid())}))
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, **args),
                     [ok(INFO, captured_bytes)])
    assert run.failed
    assert run.result['msg'] == ('PostgreSQL is running on %s: stop it before restoring (playbooks/restore.yml does). '
                                 'Nothing was changed.' % pg_path)
    assert run.commands == ['info']
    assert run.result['plan']['postgresql_running'] is True
    assert len(run.result['executed_commands']) == 1


def test_restore_check_mode_reports_a_running_postgresql(run_module, captured_bytes, make_data_dir):
    """playbooks/restore.yml plans while PostgreSQL still runs, then stops it: the plan only says so."""
    pg_path = make_data_dir(dict(restored('time'), **{'postmaster.pid': pid_file(captured_bytes, os.getpid())}))
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path),
                     [ok(INFO, captured_bytes)], check_mode=True)
    assert (run.failed, run.result['changed']) == (False, True)
    assert run.result['plan']['postgresql_running'] is True
    assert run.result['executed_commands'][-1].endswith(' --type=default restore')


@pytest.mark.parametrize('files', [
    {'postgresql.auto.conf': 'datadir-pre-restore-095217Z.auto.conf'},
    LAB_MAIN,
    {'postmaster.pid': 'datadir-main.postmaster.pid'},     # names a pid that is not alive here
], ids=['never-restored', 'restored-before', 'stale-pid-file'])
def test_restore_refuses_a_non_empty_pg_path_without_delta(run_module, captured_bytes, make_data_dir, files):
    pg_path = make_data_dir(files)
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path),
                     [ok(INFO, captured_bytes)])
    assert run.failed
    assert run.result['msg'] == ('%s is not empty: move it aside first (playbooks/restore.yml does), or set '
                                 'delta=true to restore over it. Nothing was changed.' % pg_path)
    assert run.commands == ['info']
    assert sorted(os.listdir(pg_path)) == sorted(files)


REAL_RUNS = [
    ('latest', dict(), [], ['--set=' + I2, '--type=default']),
    ('time', dict(type='time', target='2026-11-24 09:23:44+00'), [],
     # One argv element: the target's blank reaches pgBackRest unsplit.
     ['--set=' + D1, '--type=time', '--target=2026-11-24 09:23:44+00', '--target-action=promote']),
    ('set', dict(type='set', set=F2), [], ['--set=' + F2, '--type=immediate', '--target-action=promote']),
    ('delta-over-a-restore', dict(type='set', set=F1, delta=True), LAB_MAIN,
     ['--set=' + F1, '--type=immediate', '--target-action=promote', '--delta']),
]


@pytest.mark.parametrize('case, args, files, options', REAL_RUNS, ids=ids(REAL_RUNS))
def test_restore_runs_restore(run_module, captured_bytes, make_data_dir, case, args, files, options):
    pg_path = make_data_dir(files)
    restore_type = args.get('type', 'latest')
    # A restore prints nothing with --log-level-console=off (rc 0, stdout and stderr empty in the lab).
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, **args),
                     lookups(captured_bytes, restore_type) + [(0, b'', b'')])
    assert not run.failed, run.result.get('msg')
    assert run.result['changed'] is True
    assert run.commands == (['info', 'repo-ls', 'restore'] if restore_type == 'time' else ['info', 'restore'])
    argv = PREFIX + ['--pg1-path=' + pg_path] + options + ['restore']
    assert run.calls[-1]['argv'] == argv
    assert run.result['executed_commands'][-1] == run.result['plan']['command'] == ' '.join(argv)


def test_restore_into_a_missing_pg_path(run_module, captured_bytes, tmp_path):
    """pgBackRest 2.45 creates a missing pg1-path (rc 0 in the lab), so the module lets it."""
    pg_path = str(tmp_path / 'missing')
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, type='set', set=D2),
                     [ok(INFO, captured_bytes), (0, b'', b'')])
    assert (run.failed, run.result['changed'], run.commands) == (False, True, ['info', 'restore'])
    assert run.calls[-1]['argv'][-4:] == ['--set=' + D2, '--type=immediate', '--target-action=promote', 'restore']


@pytest.mark.parametrize('rc, name, code, part, text', [
    # A postmaster.pid whose process is gone passes the module's check, not pgBackRest's.
    (38, 'restore-stale-pid.err', 38, 'database',
     "unable to restore while PostgreSQL is running HINT: presence of 'postmaster.pid' in "
     "'/tmp/unit-cap/immediate-pause' indicates PostgreSQL is running. "
     "HINT: remove 'postmaster.pid' only if PostgreSQL is not running."),
    (40, 'restore-not-empty.err', 40, 'pgbackrest',
     "unable to restore to path '/tmp/unit-cap/time' because it contains files "
     "HINT: try using --delta if this is what you intended."),
], ids=['stale-pid', 'not-empty'])
def test_restore_failure_is_reported(run_module, captured_bytes, make_data_dir, rc, name, code, part, text):
    pg_path = make_data_dir({'postmaster.pid': pid_file(captured_bytes, dead_pid())})
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, type='set', set=F1, delta=True),
                     [ok(INFO, captured_bytes), (rc, b'', captured_bytes(name))])
    assert run.failed
    assert (run.result['error_code'], run.result['failed_part'], run.result['rc']) == (code, part, rc)
    assert run.result['msg'].startswith('Unable to restore backup set %s into %s: pgBackRest error [%03d]: %s. '
                                        % (F1, pg_path, code, text))
    assert run.result['cmd'] == run.result['executed_commands'][-1]
    assert run.result['cmd'].endswith(' --delta restore')


# --- pgbackrest_restore: a pg_path that already reflects the restore ----------------------------------

REFLECTS = [
    # The lab's live data directory: a PITR to 09:52:48.817350 from the newest backup, recovered and promoted.
    ('lab-main', LAB_MAIN, dict(type='time', target='2026-11-24 09:52:48.817350+00'), False),
    ('lab-main-other-target', LAB_MAIN, dict(type='time', target='2026-11-24 09:52:10+00'), True),
    ('lab-main-other-action', LAB_MAIN, dict(type='time', target='2026-11-24 09:52:48.817350+00',
                                             target_action='pause'), True),
    ('lab-main-as-latest', LAB_MAIN, dict(), True),
    ('lab-pre-restore', LAB_PRE_RESTORE, dict(type='time', target='2026-11-24 09:52:10+00'), False),
    ('lab-pre-restore-other-target', LAB_PRE_RESTORE, dict(type='time', target='2026-11-24 09:52:48.817350+00'),
     True),
    ('never-restored', {'postgresql.auto.conf': 'datadir-pre-restore-095217Z.auto.conf'}, dict(), True),
    # Scratch restores (fixtures/README.md): each reflects the request it was made with.
    ('time', restored('time'), dict(type='time', target='2026-11-24 09:23:44+00'), False),
    ('time-recovered', restored('time', 'backup_label.old'), dict(type='time', target='2026-11-24 09:23:44+00'),
     False),
    ('time-other-target-same-set', restored('time'), dict(type='time', target='2026-11-24 09:23:45+00'), True),
    ('time-other-set', restored('time'), dict(type='time', target='2026-11-24 09:23:44+00', set=F2), True),
    ('time-as-latest', restored('time'), dict(type='latest', set=D1), True),
    ('time-iso', restored('time-iso'), dict(type='time', target='2026-11-24T09:52:00Z'), False),
    ('immediate-as-set', restored('immediate'), dict(type='set', set=F2), False),
    ('immediate', restored('immediate'), dict(type='immediate', set=F2), False),
    ('immediate-other-set', restored('immediate'), dict(type='set', set=F1), True),
    ('immediate-other-action', restored('immediate'), dict(type='set', set=F2, target_action='pause'), True),
    ('immediate-newest-set', restored('immediate'), dict(type='immediate'), True),
    ('immediate-pause', restored('immediate-pause'), dict(type='set', set=F1, target_action='pause'), False),
    ('immediate-pause-as-promote', restored('immediate-pause'), dict(type='set', set=F1), True),
    ('default', restored('default'), dict(), False),
    ('default-with-set', restored('default'), dict(type='latest', set=I2), False),
    ('default-as-immediate', restored('default'), dict(type='immediate'), True),
    ('xid', restored('xid'), dict(type='xid', target='750', set=D2, target_action='shutdown'), False),
    ('xid-other-xid', restored('xid'), dict(type='xid', target='751', set=D2, target_action='shutdown'), True),
    ('xid-newest-set', restored('xid'), dict(type='xid', target='750', target_action='shutdown'), True),
    ('xid-as-lsn', restored('xid'), dict(type='lsn', target='0/750', set=D2, target_action='shutdown'), True),
    ('lsn', restored('lsn'), dict(type='lsn', target='0/D000200', set=D2), False),
    ('lsn-other-lsn', restored('lsn'), dict(type='lsn', target='0/D000201', set=D2), True),
    ('name', restored('name'), dict(type='name', target='before-upgrade', set=D2, target_action='pause'), False),
    ('name-as-promote', restored('name'), dict(type='name', target='before-upgrade', set=D2), True),
    ('delta', restored('delta'), dict(type='set', set=F2), False),
]


@pytest.mark.parametrize('case, files, args, changed', REFLECTS, ids=ids(REFLECTS))
def test_restore_reflects(run_module, captured_bytes, make_data_dir, case, files, args, changed):
    run = plan_restore(run_module, captured_bytes, make_data_dir(files), args)
    assert run.result['changed'] is changed
    planned = [cmd for cmd in run.result['executed_commands'] if cmd.endswith(' restore')]
    assert planned == ([run.result['plan']['command']] if changed else [])


def test_restore_not_rerun_on_the_running_lab_data_directory(run_module, captured_bytes, make_data_dir):
    """Outside check mode too: a data directory that reflects the request is left alone, PostgreSQL running or not."""
    pg_path = make_data_dir(dict(LAB_MAIN, **{'postmaster.pid': pid_file(captured_bytes, os.getpid())}))
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, type='time',
                                              target='2026-11-24 09:52:48.817350+00', set=I2),
                     lookups(captured_bytes, 'time'))
    assert not run.failed, run.result.get('msg')
    assert run.result['changed'] is False
    assert run.commands == ['info', 'repo-ls']
    assert run.result['plan']['set'] == I2
    assert run.result['plan']['postgresql_running'] is True


# --- secrets ------------------------------------------------------------------------------------------

def test_restore_secrets_reach_pgbackrest_through_the_environment_only(run_module, captured_bytes, make_data_dir):
    secrets = dict(repo_cipher_pass='cipher-secret-1', repo_s3_key='s3-key-2', repo_s3_key_secret='s3-secret-3')
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=make_data_dir(), type='time',
                                              target='2026-11-24 09:23:44+00', **secrets),
                     lookups(captured_bytes, 'time') + [(0, b'', b'')])
    assert not run.failed, run.result.get('msg')
    assert run.commands == ['info', 'repo-ls', 'restore']
    for call in run.calls:
        assert not [arg for arg in call['argv'] for secret in secrets.values() if secret in arg]
        assert call['environ_update'] == {'PGBACKREST_REPO1_CIPHER_PASS': 'cipher-secret-1',
                                          'PGBACKREST_REPO1_S3_KEY': 's3-key-2',
                                          'PGBACKREST_REPO1_S3_KEY_SECRET': 's3-secret-3'}
    assert not [secret for secret in secrets.values() if secret in json.dumps(run.result)]


# --- edge cases found by these tests and fixed in the plugins ---

@pytest.mark.parametrize('text', DISPLACEMENT_OUT_OF_RANGE)
def test_parse_target_time_refuses_offsets_postgresql_refuses(text):
    with pytest.raises(ValueError):
        pgbr.parse_target_time(text)


@pytest.mark.parametrize('content', [b'0\n', b'-1\n', b'99999999999\n'], ids=['zero', 'minus-one', 'huge'])
def test_postgresql_running_is_false_for_impossible_pids(make_data_dir, content):
    assert pgbr.postgresql_running(make_data_dir({'postmaster.pid': content})) is False


def test_restore_stale_pid_gets_restore_advice(run_module, captured_bytes, make_data_dir):
    pg_path = make_data_dir({'postmaster.pid': pid_file(captured_bytes, dead_pid())})
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, type='set', set=F1, delta=True),
                     [ok(INFO, captured_bytes), (38, b'', captured_bytes('restore-stale-pid.err'))])
    assert run.failed
    assert 'check that it is running' not in run.result['msg']
