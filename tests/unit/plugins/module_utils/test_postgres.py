# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugins/module_utils/_postgres.py: recovery targets as PostgreSQL reads them (fixtures/target-times.tsv), the
cluster's identity, what a pgBackRest restore left in a data directory (captured files, fixtures/README.md
section "Restore"), and the WAL archiving settings judged from PostgreSQL's real state."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _postgres as pg
from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import utc
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError
from ansible_collections.chronos.pgbackrest.plugins.module_utils._host import HostTarget

from ansible_collections.chronos.pgbackrest.tests.unit.harness import BIN, FIXTURES, fails, fixture_bytes, ok, psql_rows

LAB_SYSID = 7711665496204834485
OLD_LAB_SYSID = 7711661904765073182


def ids(table):
    return [row[0] for row in table]


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
    got = pg.parse_target_time(text)
    assert isinstance(got, float)
    assert got == pytest.approx(epoch, abs=1e-6)


@pytest.mark.parametrize('text, expected', [
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
def test_parse_target_time_offsets(text, expected):
    assert utc(pg.parse_target_time(text)) == expected


@pytest.mark.parametrize('without, with_seconds', [
    ('2026-11-24 08:22+00', '2026-11-24 08:22:00+00'),
    ('2026-11-24T08:22Z', '2026-11-24T08:22:00Z'),
    ('2026-11-24 08:22 UTC', '2026-11-24 08:22:00 UTC'),
    ('2026-11-24 08:22-05:30', '2026-11-24 08:22:00-05:30'),
])
def test_parse_target_time_without_seconds_is_the_full_minute(without, with_seconds):
    """As PostgreSQL reads '08:22+00': 08:22:00."""
    assert pg.parse_target_time(without) == pg.parse_target_time(with_seconds)


@pytest.mark.parametrize('text, fraction', [
    ('2026-11-24 08:22:18.5+00', 0.5),
    ('2026-11-24 08:22:18.817350+00', 0.81735),
    ('2026-11-24 08:22:18.000001Z', 0.000001),
])
def test_parse_target_time_keeps_fractions(text, fraction):
    assert pg.parse_target_time(text) - 1795508538 == pytest.approx(fraction, abs=1e-6)


NOT_A_TIME = "is not a time with a time zone: write it like '2026-11-24 08:22:18+00'"


@pytest.mark.parametrize('text', [
    '2026-11-24 08:22:18',          # no time zone: PostgreSQL would use the server's
    '2026-11-24T08:22:18',
    '2026-11-24 08:22:18.5',
    '2026-11-24 08:22',
    '2026-11-24 08:22:18 Europe/Paris',
    '2026-11-24 08:22:18 CET',
    '2026-11-24 08+00',             # an hour alone
    '2026-11-24 08:22:18.1234567+00',
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
        pg.parse_target_time(text)
    assert str(raised.value) == "'%s' %s" % (text, NOT_A_TIME)


@pytest.mark.parametrize('text', FIELD_OUT_OF_RANGE)
def test_parse_target_time_rejects_impossible_dates(text):
    """PostgreSQL rejects these too: 'date/time field value out of range' (target-times.tsv)."""
    with pytest.raises(ValueError) as raised:
        pg.parse_target_time(text)
    assert str(raised.value) == "'%s' is not a valid date and time" % text


@pytest.mark.parametrize('text', DISPLACEMENT_OUT_OF_RANGE)
def test_parse_target_time_refuses_offsets_postgresql_refuses(text):
    with pytest.raises(ValueError) as raised:
        pg.parse_target_time(text)
    assert str(raised.value) == "'%s' is not a valid date and time: the time zone offset is out of range" % text


# --- check_target_text / parse_lsn / segment_timeline / time_setting_seconds -------------------------------

@pytest.mark.parametrize('kind, text', [
    ('name', 'before-upgrade'), ('name', 'release 2.3 (Monday)'), ('name', 'été'), ('xid', '750'),
    ('xid', '18446744073709551615')])
def test_check_target_text_accepts(kind, text):
    assert pg.check_target_text(kind, text) == text


@pytest.mark.parametrize('kind, text, message', [
    ('name', '', 'the name target is empty'),
    ('name', '   ', 'the name target is empty'),
    ('xid', None, 'the xid target is empty'),
    ('xid', '75O', "'75O' is not a transaction id: write it as digits, e.g. 1234567"),
    ('xid', '-1', "'-1' is not a transaction id"),
    ('xid', '0x2EE', "'0x2EE' is not a transaction id"),
    ('name', "before'upgrade", 'holds a quote, a backslash or a control character'),
    ('name', 'before\\upgrade', 'holds a quote, a backslash or a control character'),
    ('name', 'before\nrecovery_target_action = shutdown', 'holds a quote, a backslash or a control character'),
    ('name', 'before\rupgrade', 'holds a quote, a backslash or a control character'),
    ('name', 'before\0upgrade', 'holds a quote, a backslash or a control character'),
    ('name', 'before\tupgrade', 'holds a quote, a backslash or a control character'),
], ids=['empty', 'blank', 'no-xid', 'letter-in-xid', 'negative-xid', 'hex-xid', 'quote', 'backslash', 'newline',
        'carriage-return', 'nul', 'tab'])
def test_check_target_text_refuses(kind, text, message):
    with pytest.raises(ValueError) as raised:
        pg.check_target_text(kind, text)
    assert message in str(raised.value)


@pytest.mark.parametrize('text, value', [
    ('0/3000088', 0x3000088), ('0/0', 0), ('1/0', 1 << 32), ('FFFFFFFF/FFFFFFFF', (1 << 64) - 1),
    ('0/d000200', 0xD000200), (' 0/10000028 ', 0x10000028)])
def test_parse_lsn(text, value):
    assert pg.parse_lsn(text) == value


def test_parse_lsn_orders_like_the_lsn():
    assert pg.parse_lsn('0/A000088') > pg.parse_lsn('0/9000028') and pg.parse_lsn('1/0') > pg.parse_lsn('0/FFFFFFFF')


@pytest.mark.parametrize('text', ['', None, '0x3000088', '0/', '/3000088', '0/3000088/1', '0/G', '123456789/0'])
def test_parse_lsn_refuses(text):
    with pytest.raises(ValueError, match="is not an LSN: write it like '0/3000088'"):
        pg.parse_lsn(text)


@pytest.mark.parametrize('name, timeline', [
    ('000000020000000000000012', 2),
    ('000000020000000000000012-89abf6e099f285dd73019e5bf92697bc228502ac.zst', 2),
    ('0000000A0000000000000001', 10),
    ('000000010000000000000002.00000028.backup', 1),
    ('00000002.history', None),
    ('0000000200000000', None),
    ('', None),
    (None, None),
])
def test_segment_timeline(name, timeline):
    assert pg.segment_timeline(name) == timeline


@pytest.mark.parametrize('value, unit, seconds', [
    ('60s', 's', 60), ('60', 's', 60), ('1min', 's', 60), ('500ms', 's', 0.5), ('2h', 's', 7200), ('1d', 's', 86400),
    ('0', 's', 0), (' 60 s ', 's', 60), ('60', 'min', 3600), ('1.5min', 's', 90), (60, 's', 60)])
def test_time_setting_seconds(value, unit, seconds):
    assert pg.time_setting_seconds(value, unit) == seconds


@pytest.mark.parametrize('value', ['', 'sixty', '60 seconds', '-60s', '60S', '1m'])
def test_time_setting_seconds_refuses(value):
    with pytest.raises(ValueError, match='is not a time setting'):
        pg.time_setting_seconds(value)


# --- the cluster: identity and control data ---------------------------------------------------------------

@pytest.mark.parametrize('system_id, version', [
    (LAB_SYSID, '15'),
    (OLD_LAB_SYSID, '16'),
    (1, '17'),
    (2 ** 64 - 1, '15'),
])
def test_read_cluster_identity(make_cluster, system_id, version):
    assert pg.read_cluster_identity(HostTarget(), make_cluster(system_id, version)) == (version, system_id)


def test_read_cluster_identity_missing_dir(tmp_path):
    with pytest.raises((IOError, OSError)):
        pg.read_cluster_identity(HostTarget(), str(tmp_path / 'nowhere'))


def test_read_cluster(make_cluster):
    assert pg.read_cluster(HostTarget(), make_cluster(LAB_SYSID)) == dict(version='15', system_id=LAB_SYSID)


def test_read_cluster_says_what_to_check(tmp_path):
    with pytest.raises(ChronosError) as raised:
        pg.read_cluster(HostTarget(), str(tmp_path / 'nowhere'))
    assert raised.value.msg.startswith('Unable to read the PostgreSQL cluster in %s on this host: ' % (tmp_path / 'nowhere'))
    assert raised.value.msg.endswith('Check pg_path, and run the module as root (become: true) or as the cluster owner.')


PG_CONTROLDATA = b"""pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7711665496204834485
Database cluster state:               shut down
Latest checkpoint's TimeLineID:       2
max_connections setting:              100
max_worker_processes setting:         8
"""


def test_control_data(host, commands):
    commands.expect(ok(PG_CONTROLDATA))
    data = pg.control_data(host, '/var/lib/postgresql/15/main')
    assert data['Database cluster state'] == 'shut down'
    assert data["Latest checkpoint's TimeLineID"] == '2'
    assert data['max_connections setting'] == '100'
    assert data['Database system identifier'] == '7711665496204834485'
    call = commands.calls[0]
    assert call['argv'] == [BIN + '/pg_controldata', '/var/lib/postgresql/15/main']
    # Its labels are translated otherwise.
    assert call['env'] == {'LC_ALL': 'C', 'LANG': 'C'}


def test_control_data_without_a_cluster(host, commands):
    commands.expect(fails(1, b'pg_controldata: error: could not open file "global/pg_control"\n'))
    assert pg.control_data(host, '/nowhere') is None


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


def reader(directory):
    """read(name) for read_restored_state: the bytes of a file in directory."""
    def read(name):
        with open(os.path.join(directory, name), 'rb') as handle:
            return handle.read()
    return read


@pytest.mark.parametrize('case, files, expected', READ_RESTORED_STATE, ids=ids(READ_RESTORED_STATE))
def test_read_restored_state(make_data_dir, case, files, expected):
    assert pg.read_restored_state(reader(make_data_dir(files))) == expected


def test_read_restored_state_missing_dir(tmp_path):
    assert pg.read_restored_state(reader(str(tmp_path / 'nowhere'))) is None


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
    state = pg.read_restored_state(reader(make_data_dir({'backup_label': 'restore-%s.backup_label' % second,
                                                         'postgresql.auto.conf': conf})))
    expected = [row[2] for row in READ_RESTORED_STATE if row[0] == second][0]
    assert state == expected


def altered(captured_bytes, name, setting="archive_timeout = '60s'"):
    """postgresql.auto.conf of a restored cluster after ALTER SYSTEM: PostgreSQL rewrites the file with its own two
    header lines and every setting as name = 'value', dropping the comments (pgBackRest's header among them), the new
    setting last (write_auto_conf_file in PostgreSQL's guc.c). Assembled from a captured file: the lab ran no
    ALTER SYSTEM on a restored cluster."""
    lines = captured_bytes(name).decode().splitlines()
    kept = [line for line in lines if line.strip() and not line.startswith('#')]
    return ('\n'.join(lines[:2] + kept + [setting]) + '\n').encode()


ALTERED = [
    ('lab-main', 'datadir-main', LAB_MAIN),
    ('time', 'restore-time', restored('time')),
    ('immediate', 'restore-immediate', restored('immediate')),
    ('default', 'restore-default', restored('default')),
]


@pytest.mark.parametrize('case, name, files', ALTERED, ids=ids(ALTERED))
def test_read_restored_state_after_alter_system(captured_bytes, make_data_dir, case, name, files):
    """The settings pgBackRest wrote are still recognised without its header: restore_command and recovery_*."""
    conf = altered(captured_bytes, name + '.auto.conf')
    assert b'pgBackRest' not in conf and conf.startswith(b'# Do not edit this file manually!\n')
    state = pg.read_restored_state(reader(make_data_dir(dict(files, **{'postgresql.auto.conf': conf}))))
    assert state == [row[2] for row in READ_RESTORED_STATE if row[0] == case][0]


def test_read_restored_state_after_alter_system_of_a_cluster_never_restored(captured_bytes, make_data_dir):
    conf = altered(captured_bytes, 'datadir-pre-restore-095217Z.auto.conf', "work_mem = '8MB'")
    assert pg.read_restored_state(reader(make_data_dir({'backup_label.old': 'datadir-main.backup_label.old',
                                                        'postgresql.auto.conf': conf}))) is None


# --- WAL archiving settings -------------------------------------------------------------------------------

COMMAND = 'pgbackrest --stanza=chronos-v2 archive-push %p'
OLD_COMMAND = '/bin/true'


def settings(mode=('on', 'on'), command=(COMMAND, COMMAND), timeout=('60', 's', '60s'), wal_level=('replica', None)):
    """read_archive_settings' answer: (running, value in postgresql.auto.conf) per setting; timeout has its unit."""
    return dict(archive_mode=dict(running=mode[0], unit='', auto=mode[1]),
                archive_command=dict(running=command[0], unit='', auto=command[1]),
                archive_timeout=dict(running=timeout[0], unit=timeout[1], auto=timeout[2]),
                wal_level=dict(running=wal_level[0], unit='', auto=wal_level[1]))


PLAN_ARCHIVE_SETTINGS = [
    ('nothing-to-do', settings(), '60s', ({}, False, False)),
    # PostgreSQL reports archive_timeout as '60' with unit 's': the same as the wanted '60s'.
    ('same-timeout-other-spelling', settings(timeout=('60', 's', '1min')), '1min', ({}, False, False)),
    ('archive-command-differs', settings(command=(OLD_COMMAND, OLD_COMMAND)), '60s',
     ({'archive_command': COMMAND}, True, False)),
    ('archive-timeout-differs', settings(timeout=('300', 's', '5min')), '60s', ({'archive_timeout': '60s'}, True, False)),
    # Set in postgresql.conf only: written with ALTER SYSTEM too, so that the role owns it; no reload is needed
    # for a value PostgreSQL already runs with... but ALTER SYSTEM is followed by one.
    ('only-in-postgresql-conf', settings(mode=('on', None), command=(COMMAND, None), timeout=('60', 's', None)), '60s',
     ({'archive_mode': 'on', 'archive_command': COMMAND, 'archive_timeout': '60s'}, True, False)),
    ('archive-mode-off', settings(mode=('off', None), command=('', None), timeout=('0', 's', None)), '60s',
     ({'archive_mode': 'on', 'archive_command': COMMAND, 'archive_timeout': '60s'}, True, True)),
    ('wal-level-minimal', settings(mode=('off', None), command=('', None), timeout=('0', 's', None),
                                   wal_level=('minimal', None)), '60s',
     ({'archive_mode': 'on', 'archive_command': COMMAND, 'archive_timeout': '60s', 'wal_level': 'replica'}, True, True)),
    ('wal-level-minimal-in-auto-conf', settings(wal_level=('minimal', 'minimal')), '60s',
     ({'wal_level': 'replica'}, True, True)),
    ('wal-level-logical-kept', settings(wal_level=('logical', None)), '60s', ({}, False, False)),
    # 'always' archives too (also during recovery): kept, from postgresql.conf or postgresql.auto.conf.
    ('archive-mode-always-kept', settings(mode=('always', None)), '60s', ({}, False, False)),
    ('archive-mode-always-in-auto-conf', settings(mode=('always', 'always')), '60s', ({}, False, False)),
    ('archive-mode-always-pending', settings(mode=('off', 'always')), '60s', ({}, False, True)),
    # An interrupted run: postgresql.auto.conf already holds the values, the server still runs without them.
    ('interrupted-before-reload', settings(mode=('off', 'on'), command=('', COMMAND), timeout=('0', 's', '60s')), '60s',
     ({}, True, True)),
    ('interrupted-before-restart', settings(mode=('off', 'on')), '60s', ({}, False, True)),
    ('interrupted-wal-level', settings(wal_level=('minimal', 'replica')), '60s', ({}, False, True)),
]


@pytest.mark.parametrize('case, current, timeout, expected', PLAN_ARCHIVE_SETTINGS, ids=ids(PLAN_ARCHIVE_SETTINGS))
def test_plan_archive_settings(case, current, timeout, expected):
    assert pg.plan_archive_settings(current, COMMAND, timeout) == expected


def test_plan_archive_settings_refuses_a_malformed_timeout():
    """Refused first, whatever else differs: nothing is altered with it."""
    with pytest.raises(ValueError, match="'a minute' is not a time setting"):
        pg.plan_archive_settings(settings(mode=('off', None)), COMMAND, 'a minute')


def test_plan_archive_settings_replaces_a_pending_archive_mode_off():
    alter = pg.plan_archive_settings(settings(mode=('always', 'off')), COMMAND, '60s')[0]
    assert alter.get('archive_mode') in ('on', 'always')


def test_plan_archive_settings_refuses_a_malformed_running_timeout():
    """The parse is reached when nothing is altered: here the running value cannot be read."""
    current = settings(timeout=('sixty', 's', '60s'))
    with pytest.raises(ValueError, match="'sixty' is not a time setting"):
        pg.plan_archive_settings(current, COMMAND, '60s')


def test_read_archive_settings(host, commands):
    commands.expect(ok(psql_rows(
        ('archive_command', COMMAND, '', COMMAND, 't'),
        ('archive_mode', 'off', '', '', 'f'),
        ('archive_timeout', '60', 's', '1min', 't'),
        ('wal_level', 'replica', '', '', 'f'))))
    assert pg.read_archive_settings(host) == dict(
        archive_command=dict(running=COMMAND, unit='', auto=COMMAND),
        archive_mode=dict(running='off', unit='', auto=None),
        archive_timeout=dict(running='60', unit='s', auto='1min'),
        wal_level=dict(running='replica', unit='', auto=None))
    call = commands.calls[0]
    assert call['argv'][-2:] == ['-f', '-'] and 'pg_file_settings' in call['stdin']


def test_apply_archive_settings_passes_values_as_psql_variables(host, commands):
    commands.expect(ok())
    pg.apply_archive_settings(host, {'archive_command': COMMAND + " 'quoted'", 'archive_mode': 'on'}, True)
    call = commands.calls[0]
    # The values never become SQL text: psql quotes them (:'name').
    assert call['stdin'] == ("ALTER SYSTEM SET archive_command = :'archive_command';\n"
                             "ALTER SYSTEM SET archive_mode = :'archive_mode';\n"
                             "SELECT pg_reload_conf();\n")
    assert call['argv'][-6:] == ['-v', "archive_command=%s 'quoted'" % COMMAND, '-v', 'archive_mode=on', '-f', '-']


def test_apply_archive_settings_reload_only(host, commands):
    commands.expect(ok())
    pg.apply_archive_settings(host, {}, True)
    assert commands.calls[0]['stdin'] == 'SELECT pg_reload_conf();\n'


def test_apply_archive_settings_nothing_to_do_runs_nothing(host, commands):
    pg.apply_archive_settings(host, {}, False)
    assert commands.calls == []


def test_apply_archive_settings_failure(host, commands):
    commands.expect(fails(3, b'psql:<stdin>:1: ERROR:  must be superuser to execute ALTER SYSTEM command\n'))
    with pytest.raises(ChronosError) as raised:
        pg.apply_archive_settings(host, {'archive_mode': 'on'}, True)
    assert raised.value.msg == ('Unable to set the WAL archiving settings: psql on this host exited 3: psql:<stdin>:1: '
                                'ERROR:  must be superuser to execute ALTER SYSTEM command')


@pytest.mark.parametrize('mode, wal_level, needed', [
    ('on', 'replica', False), ('always', 'logical', False), ('off', 'replica', True), ('on', 'minimal', True)])
def test_setting_restart_needed(host, commands, mode, wal_level, needed):
    commands.expect(ok(psql_rows(('archive_command', COMMAND, '', '', 'f'), ('archive_mode', mode, '', '', 'f'),
                                 ('archive_timeout', '60', 's', '', 'f'), ('wal_level', wal_level, '', '', 'f'))))
    assert pg.setting_restart_needed(host) is needed


# --- pg_stat_archiver ---------------------------------------------------------------------------------

ARCHIVER = [
    ('archiving', ('120', '0', '000000020000000000000012', '', '1795513971', '0', 'on', COMMAND),
     dict(archived_count=120, failed_count=0, last_archived_wal='000000020000000000000012', last_failed_wal=None,
          last_archived=1795513971, last_failed=None, failing=False, archive_mode='on', archive_command=COMMAND)),
    ('failing', ('120', '7', '000000020000000000000012', '000000020000000000000013', '1795513971', '1795514031', 'on',
                 COMMAND),
     dict(archived_count=120, failed_count=7, last_archived_wal='000000020000000000000012',
          last_failed_wal='000000020000000000000013', last_archived=1795513971, last_failed=1795514031, failing=True,
          archive_mode='on', archive_command=COMMAND)),
    ('failed-then-recovered', ('121', '7', '000000020000000000000013', '000000020000000000000013', '1795514091',
                               '1795514031', 'on', COMMAND),
     dict(archived_count=121, failed_count=7, last_archived_wal='000000020000000000000013',
          last_failed_wal='000000020000000000000013', last_archived=1795514091, last_failed=1795514031,
          failing=False, archive_mode='on', archive_command=COMMAND)),
    ('never-archived', ('0', '0', '', '', '0', '0', 'off', ''),
     dict(archived_count=0, failed_count=0, last_archived_wal=None, last_failed_wal=None, last_archived=None,
          last_failed=None, failing=False, archive_mode='off', archive_command='')),
    ('failing-never-archived', ('0', '3', '', '000000010000000000000001', '0', '1795514031', 'on', COMMAND),
     dict(archived_count=0, failed_count=3, last_archived_wal=None, last_failed_wal='000000010000000000000001',
          last_archived=None, last_failed=1795514031, failing=True, archive_mode='on', archive_command=COMMAND)),
]


@pytest.mark.parametrize('case, row, expected', ARCHIVER, ids=ids(ARCHIVER))
def test_read_archiver(host, commands, case, row, expected):
    commands.expect(ok(psql_rows(row)))
    assert pg.read_archiver(host) == expected


def test_read_archiver_without_row(host, commands):
    commands.expect(ok(b''))
    with pytest.raises(ChronosError, match='pg_stat_archiver returned no row on this host.'):
        pg.read_archiver(host)


def test_read_archiver_when_postgresql_is_down(host, commands):
    commands.expect(fails(2, b'psql: error: connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" '
                             b'failed: No such file or directory\n'))
    with pytest.raises(ChronosError) as raised:
        pg.read_archiver(host)
    assert raised.value.msg.startswith('Unable to read pg_stat_archiver: psql on this host exited 2: psql: error: ')


# --- the archive queue ------------------------------------------------------------------------------------------

def test_read_archive_queue_while_the_repository_is_away(host, commands):
    commands.expect(ok('archive-queue.csv'))
    assert pg.read_archive_queue(host) == dict(ready_segments=3, ready_bytes=3 * 16777216, oldest_ready=1796295504,
                                               segment_size=16777216, pg_wal='/var/lib/postgresql/data/pg_wal')
    assert 'pg_ls_archive_statusdir()' in commands.calls[0]['stdin']


def test_read_archive_queue_when_nothing_waits(host, commands):
    commands.expect(ok(psql_rows(('0', '0', '16777216', '/var/lib/postgresql/15/main'))))
    queue = pg.read_archive_queue(host)
    assert (queue['ready_segments'], queue['ready_bytes'], queue['oldest_ready']) == (0, 0, None)


def test_postmaster_pid(tmp_path, host):
    (tmp_path / 'postmaster.pid').write_bytes(fixture_bytes('datadir-main.postmaster.pid'))
    assert pg.postmaster_pid(host, str(tmp_path)) == 5348
    (tmp_path / 'postmaster.pid').write_bytes(b'1\n/var/lib/postgresql/data\n')
    assert pg.postmaster_pid(host, str(tmp_path)) == 1


@pytest.mark.parametrize('content', [None, b'', b'not a number\n'])
def test_postmaster_pid_unreadable(tmp_path, host, content):
    if content is not None:
        (tmp_path / 'postmaster.pid').write_bytes(content)
    assert pg.postmaster_pid(host, str(tmp_path)) is None
