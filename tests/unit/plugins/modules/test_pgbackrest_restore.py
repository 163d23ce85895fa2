# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgbackrest_restore's main() against the lab's repository after its point-in-time restores (info-after-pitr.json,
conftest.wal_listing, HISTORY_2), fake data directories built from files pgBackRest restores wrote (fixtures/README.md,
"Restore"), and PostgreSQL's answers faked at the target seam."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils._lock import StanzaLock
from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import parse_info
from ansible_collections.chronos.pgbackrest.plugins.module_utils._restore import RESTORE_ADVICE
from ansible_collections.chronos.pgbackrest.plugins.modules import pgbackrest_restore

from ansible_collections.chronos.pgbackrest.tests.unit.harness import (
    HISTORY_2, PREFIX, SECRET_ENVIRONMENT, SECRETS, fails, fixture_text, ok, psql_rows, server_answers,
    start_postgresql, stop_postgresql, wal_listing, waldump, write_cluster)

F1 = '20261124-092101F'                      # stop 09:21:24, 0/2000028
F2 = '20261124-092311F'                      # stop 09:23:37, 0/6000028
D1 = '20261124-092311F_20261124-092341D'     # stop 09:23:43, 0/7000028
I1 = '20261124-092311F_20261124-092345I'     # stop 09:23:46, 0/9000028
D2 = '20261124-092311F_20261124-092445D'     # stop 09:24:47, 0/D000028
I2 = '20261124-092311F_20261124-095026I'     # stop 09:50:28, 0/10000028
LABELS = [F1, F2, D1, I1, D2, I2]
INFO = 'info-after-pitr.json'
WINDOW_START = '2026-11-24 09:21:24+00'        # F1 stopped
TL1_END = '2026-11-24 09:52:13+00'             # 000000010000000000000012 was stored
TL2_END = '2026-11-24 09:52:51+00'             # 000000020000000000000012 was stored

LAB_MAIN = {'backup_label.old': 'datadir-main.backup_label.old', 'postgresql.auto.conf': 'datadir-main.auto.conf',
            'PG_VERSION': b'15\n'}

pytestmark = pytest.mark.usefixtures('owned_by_this_user')


def ids(table):
    return [row[0] for row in table]


def backup_of(label):
    return [backup for backup in parse_info(fixture_text(INFO))[0]['backups'] if backup['label'] == label][0]


def lookups(timeline=2, info=INFO):
    """What the module reads from the repository: info, the archived WAL, and timeline 2's history when it follows
    timeline 2."""
    return [ok(info), ok(wal_listing())] + ([ok(HISTORY_2)] if timeline == 2 else [])


def running_lookups(timeline=2, ready=0):
    """What the module reads when PostgreSQL runs: info and the archived WAL, the server (pg_isready, then
    server_answers), then the followed timeline's history from the repository."""
    answers = [ok(INFO), ok(wal_listing()), ok()] + server_answers(timeline=timeline, ready=ready)
    return answers + ([ok(HISTORY_2)] if timeline == 2 else [])


def since_the_restore(*commits):
    """The commits since this restore ended: timeline 2's history from the server's pg_wal, then pg_waldump."""
    return [ok(psql_rows((HISTORY_2.decode(),))), ok(waldump(*commits))]


def running(pg_path):
    """postmaster.pid naming a live process (this one): PostgreSQL runs on pg_path."""
    return {'postmaster.pid': ('%d\n' % os.getpid()).encode()}


def recovered_and_checked(pg_path, timeline='00000003'):
    """The answers after pgBackRest restored: service start, promoted, the sanity query, then the timeline the
    cluster writes on and the backups (timeline_after)."""
    return [start_postgresql(pg_path), ok(psql_rows(('f', 'f'))), ok(psql_rows(('4',))),
            ok(psql_rows((timeline,))), ok(INFO)]


# --- check mode: the plan -----------------------------------------------------------------------------------

PLANS = [
    # type=time: the newest backup that stopped at or before the target; the timeline production archived on then.
    ('time', dict(type='time', target='2026-11-24 09:23:44+00'), D1, 1,
     ['--set=' + D1, '--type=time', '--target=2026-11-24 09:23:44+00', '--target-action=promote',
      '--target-timeline=1']),
    ('time-at-a-stop', dict(type='time', target='2026-11-24 09:50:28+00'), I2, 1,
     ['--set=' + I2, '--type=time', '--target=2026-11-24 09:50:28+00', '--target-action=promote',
      '--target-timeline=1']),
    ('time-just-before-a-stop', dict(type='time', target='2026-11-24 09:50:27.999999+00'), D2, 1,
     ['--set=' + D2, '--type=time', '--target=2026-11-24 09:50:27.999999+00', '--target-action=promote',
      '--target-timeline=1']),
    ('time-window-start', dict(type='time', target='2026-11-24 09:21:24+00'), F1, 1,
     ['--set=' + F1, '--type=time', '--target=2026-11-24 09:21:24+00', '--target-action=promote',
      '--target-timeline=1']),
    ('time-window-end', dict(type='time', target='2026-11-24 10:52:51+01:00'), I2, 2,
     ['--set=' + I2, '--type=time', '--target=2026-11-24 10:52:51+01:00', '--target-action=promote',
      '--target-timeline=2']),
    ('time-on-timeline-2', dict(type='time', target='2026-11-24 09:52:48.817350+00'), I2, 2,
     ['--set=' + I2, '--type=time', '--target=2026-11-24 09:52:48.817350+00', '--target-action=promote',
      '--target-timeline=2']),
    ('time-iso', dict(type='time', target='2026-11-24T09:24:00Z'), I1, 1,
     ['--set=' + I1, '--type=time', '--target=2026-11-24T09:24:00Z', '--target-action=promote', '--target-timeline=1']),
    ('time-without-seconds', dict(type='time', target='2026-11-24 09:24+00'), I1, 1,
     ['--set=' + I1, '--type=time', '--target=2026-11-24 09:24+00', '--target-action=promote', '--target-timeline=1']),
    ('time-with-set', dict(type='time', target='2026-11-24 09:23:44+00', set=F2), F2, 1,
     ['--set=' + F2, '--type=time', '--target=2026-11-24 09:23:44+00', '--target-action=promote',
      '--target-timeline=1']),
    ('time-pause', dict(type='time', target='2026-11-24 09:23:44+00', target_action='pause'), D1, 1,
     ['--set=' + D1, '--type=time', '--target=2026-11-24 09:23:44+00', '--target-action=pause', '--target-timeline=1']),
    # Timeline 1 asked for where timeline 2 would be followed.
    ('lsn-timeline-asked', dict(type='lsn', target='0/D000200', target_timeline='1'), D2, 1,
     ['--set=' + D2, '--type=lsn', '--target=0/D000200', '--target-action=promote', '--target-timeline=1']),
    # type=latest is pgBackRest's default: no target, no target action.
    ('latest', dict(), I2, 2, ['--set=' + I2, '--type=default', '--target-timeline=2']),
    ('latest-with-set', dict(type='latest', set=D1), D1, 2, ['--set=' + D1, '--type=default', '--target-timeline=2']),
    ('latest-timeline-latest', dict(target_timeline='latest'), I2, None,
     ['--set=' + I2, '--type=default', '--target-timeline=latest']),
    ('lsn', dict(type='lsn', target='0/D000200'), D2, 2,
     ['--set=' + D2, '--type=lsn', '--target=0/D000200', '--target-action=promote', '--target-timeline=2']),
    # type=set is pgBackRest's immediate with that set: no --target-timeline (pgBackRest refuses it there).
    ('set', dict(type='set', set=F2), F2, 2, ['--set=' + F2, '--type=immediate', '--target-action=promote']),
    ('immediate', dict(type='immediate'), I2, 2, ['--set=' + I2, '--type=immediate', '--target-action=promote']),
]


def plan_restore(run_module, pg_path, args, timeline=2, state=()):
    """pgbackrest_restore in check mode on pg_path; asserts it succeeded and only read."""
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, **args),
                     lookups(timeline) + list(state), check_mode=True)
    assert not run.failed, run.msg
    assert run.commands[:3] == ['info', 'repo-ls', 'repo-get'][:2 + (timeline == 2)]
    assert 'restore' not in run.commands
    return run


@pytest.mark.parametrize('case, args, label, timeline, options', PLANS, ids=ids(PLANS))
def test_check_mode_returns_the_plan(run_module, make_data_dir, case, args, label, timeline, options):
    pg_path = make_data_dir()
    run = plan_restore(run_module, pg_path, args, timeline=timeline)
    assert run.result['changed'] is True
    plan = run.result['plan']
    assert plan['command'] == ' '.join(PREFIX + ['--pg1-path=' + pg_path] + options + ['restore'])
    # Recorded, not run (plan_restore): what a real run would execute.
    assert run.result['executed_commands'][-1] == plan['command']
    assert 'options' not in plan
    assert plan['set'] == label
    assert plan['backup'] == backup_of(label)
    assert (plan['type'], plan['target'], plan['pg_path'], plan['timeline']) == (
        args.get('type', 'latest'), args.get('target'), pg_path, timeline)
    assert plan['steps'] == ['restore', 'recover', 'check']
    assert plan['postgresql_running'] is False
    assert os.listdir(pg_path) == []


@pytest.mark.parametrize('args, timeline, window', [
    (dict(), 2, dict(start=WINDOW_START, end=TL2_END, timeline=2)),
    (dict(type='time', target='2026-11-24 09:30:00+00'), 1, dict(start=WINDOW_START, end=TL1_END, timeline=1)),
    (dict(target_timeline='latest'), None, dict(start=WINDOW_START, end=TL2_END, timeline=None)),
], ids=['latest', 'time-on-timeline-1', 'timeline-latest'])
def test_the_window_is_on_the_followed_timeline(run_module, make_data_dir, args, timeline, window):
    run = plan_restore(run_module, make_data_dir(), args, timeline=timeline)
    assert run.result['plan']['window'] == window


def test_check_mode_records_the_planned_restore(run_module, make_data_dir):
    run = plan_restore(run_module, make_data_dir(), dict())
    assert run.result['executed_commands'] == [
        ' '.join(PREFIX + ['--output=json', 'info']),
        ' '.join(PREFIX + ['--output=json', '--recurse', 'repo-ls', 'archive/chronos-v2/15-1']),
        ' '.join(PREFIX + ['repo-get', 'archive/chronos-v2/15-1/00000002.history']),
        run.result['plan']['command']]


def test_the_archived_wal_is_listed_recursively(run_module, make_data_dir):
    run = plan_restore(run_module, make_data_dir(), dict(type='time', target='2026-11-24 09:23:44+00'), timeline=1)
    assert [call['argv'] for call in run.calls] == [
        PREFIX + ['--output=json', 'info'],
        PREFIX + ['--output=json', '--recurse', 'repo-ls', 'archive/chronos-v2/15-1'],
    ]


# --- refusals -------------------------------------------------------------------------------------------

REFUSALS = [
    ('malformed-time', dict(type='time', target='yesterday'), [],
     "Malformed target: 'yesterday' is not a time with a time zone: write it like '2026-11-24 08:22:18+00'. "
     "Nothing was changed.", None),
    ('time-without-zone', dict(type='time', target='2026-11-24 09:23:44'), [],
     "Malformed target: '2026-11-24 09:23:44' is not a time with a time zone: write it like "
     "'2026-11-24 08:22:18+00'. Nothing was changed.", None),
    ('impossible-date', dict(type='time', target='2026-02-30 10:00:00+00'), [],
     "Malformed target: '2026-02-30 10:00:00+00' is not a valid date and time. Nothing was changed.", None),
    ('name-with-a-quote', dict(type='name', target="before'upgrade"), [],
     "Malformed target: the name target \"before'upgrade\" holds a quote, a backslash or a control character, which "
     "pgBackRest would write unescaped into postgresql.auto.conf. Nothing was changed.", None),
    ('xid-not-digits', dict(type='xid', target='0x2EE'), [],
     "Malformed target: '0x2EE' is not a transaction id: write it as digits, e.g. 1234567. Nothing was changed.", None),
    ('set-without-set', dict(type='set'), [], 'A set restore needs the backup set (its label). Nothing was changed.',
     None),
    ('before-window', dict(type='time', target='2026-11-24 09:21:23+00'), ['info', 'repo-ls'],
     'Target 2026-11-24 09:21:23+00 is before the recoverable window on timeline 1, which starts when the oldest backup '
     'on it stopped: 2026-11-24 09:21:24+00. Nothing was changed.', dict(start=WINDOW_START, end=None, timeline=1)),
    ('after-window', dict(type='time', target='2026-11-24 09:52:51.5+00'), ['info', 'repo-ls', 'repo-get'],
     'Target 2026-11-24 09:52:51.5+00 is after the recoverable window on timeline 2, which ends with the newest '
     'archived WAL segment, stored at 2026-11-24 09:52:51+00. Recovery would stop short of it. Nothing was changed.',
     dict(start=WINDOW_START, end=TL2_END, timeline=2)),
    ('after-window-with-set', dict(type='time', target='2026-11-25 00:00:00+00', set=F1), ['info', 'repo-ls', 'repo-get'],
     'Target 2026-11-25 00:00:00+00 is after the recoverable window on timeline 2, which ends with the newest '
     'archived WAL segment, stored at 2026-11-24 09:52:51+00. Recovery would stop short of it. Nothing was changed.',
     dict(start=WINDOW_START, end=TL2_END, timeline=2)),
    ('unknown-set', dict(type='set', set='20261124-000000F'), ['info', 'repo-ls', 'repo-get'],
     "Backup set '20261124-000000F' is not in the stanza. Sets: %s. Nothing was changed." % ', '.join(LABELS), None),
    ('unknown-set-for-a-time', dict(type='time', target='2026-11-24 09:30:00+00', set=I2 + 'x'), ['info', 'repo-ls'],
     "Backup set '%s' is not in the stanza. Sets: %s. Nothing was changed." % (I2 + 'x', ', '.join(LABELS)), None),
    ('set-after-target', dict(type='time', target='2026-11-24 09:30:00+00', set=I2), ['info', 'repo-ls'],
     "Backup set '%s' stopped at 2026-11-24 09:50:28+00, after the target. Nothing was changed." % I2, None),
    ('set-one-second-after-target', dict(type='time', target='2026-11-24 09:23:42+00', set=D1), ['info', 'repo-ls'],
     "Backup set '%s' stopped at 2026-11-24 09:23:43+00, after the target. Nothing was changed." % D1, None),
]


@pytest.mark.parametrize('check_mode', [False, True], ids=['run', 'check'])
@pytest.mark.parametrize('case, args, names, msg, window', REFUSALS, ids=ids(REFUSALS))
def test_refuses(run_module, make_data_dir, case, args, names, msg, window, check_mode):
    pg_path = make_data_dir({'PG_VERSION': b'15\n'})
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, **args),
                     lookups(2 if 'repo-get' in names else 1)[:len(names)], check_mode=check_mode)
    assert run.failed
    assert run.msg == msg
    assert run.commands == names
    assert len(run.result['executed_commands']) == len(names)      # no restore, not even planned
    assert run.result.get('window') == window
    assert os.listdir(pg_path) == ['PG_VERSION']


@pytest.mark.parametrize('info, msg', [
    ('info-no-backup.json', 'Stanza chronos-v2 has no backup to restore. Nothing was changed.'),
], ids=['no-backup'])
def test_refuses_without_a_backup(run_module, make_data_dir, info, msg):
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=make_data_dir()), [ok(info)])
    assert (run.failed, run.msg, run.commands) == (True, msg, ['info'])


@pytest.mark.parametrize('name, part, in_msg', [
    ('info-missing-stanza.json', 'stanza', "'missing stanza path' (status 1)"),
    ('info-unreachable.json', 'repository', "unable to get address for 'nowhere.chronos.lab'"),
    ('info-wrong-env.json', 'encryption', 'cipher passphrase (repo1-cipher-pass)'),
], ids=['missing-stanza', 'unreachable', 'wrong-passphrase'])
def test_refuses_an_unusable_stanza(run_module, make_data_dir, name, part, in_msg):
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=make_data_dir(), type='time',
                                              target='2026-11-24 09:30:00+00'), [ok(name)])
    assert run.failed
    assert run.result['failed_part'] == part
    assert run.msg.startswith("Cannot restore: pgBackRest reports stanza 'chronos-v2' as ")
    assert in_msg in run.msg
    assert run.commands == ['info']
    json.dumps(run.result, ensure_ascii=False).encode('utf-8')


def test_pg_path_is_required_on_a_host(run_module, settings_dir):
    """Nothing recorded for the stanza (conftest.settings_dir is empty)."""
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2'))
    assert run.failed
    assert run.msg == ('pg_path is required: the data directory (site.yml has not recorded one for stanza chronos-v2 in '
                       '%s/chronos-v2.json). Nothing was changed.' % settings_dir)
    assert run.result['executed_commands'] == []


def test_pg_path_recorded_by_site_yml(run_module, make_data_dir, settings_dir):
    """PostgreSQL may be down during an incident: the data directory comes from what site.yml recorded."""
    pg_path = make_data_dir()
    os.makedirs(settings_dir)
    with open(os.path.join(settings_dir, 'chronos-v2.json'), 'w') as handle:
        json.dump(dict(stanza='chronos-v2', pg_path=pg_path), handle)
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2'), lookups(), check_mode=True)
    assert not run.failed, run.msg
    assert run.result['plan']['pg_path'] == pg_path


def test_refuses_without_room(run_module, make_data_dir, monkeypatch):
    from ansible_collections.chronos.pgbackrest.plugins.module_utils import _places
    monkeypatch.setattr(_places, 'free_bytes', lambda path: 2 ** 20)
    pg_path = make_data_dir()
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path), lookups())
    assert run.failed
    assert run.msg.startswith('Not enough free space to restore beside the kept data directory: the backup holds 29 MB, '
                              '1 MB are free where %s lies.' % pg_path)


# --- the state of pg_path -----------------------------------------------------------------------------

def test_check_mode_plans_to_archive_then_stop_a_running_postgresql(run_module, make_data_dir):
    pg_path = make_data_dir(dict(LAB_MAIN, **running(None)))
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path), running_lookups(),
                     check_mode=True)
    assert not run.failed, run.msg
    assert run.result['changed'] is True
    plan = run.result['plan']
    assert plan['steps'] == ['archive', 'stop', 'move_aside', 'restore', 'recover', 'check']
    assert plan['postgresql_running'] is True
    assert plan['found'] == 'PostgreSQL runs on the data directory'
    assert plan['facts'] == ["timeline 2: the running server's"]
    assert plan['discards'] == 'The current data directory is kept, not deleted.'
    assert run.result['lines'][:3] == [
        'Found: PostgreSQL runs on the data directory.', "Decided from: timeline 2: the running server's.",
        'Restore latest from backup set %s (incr, stopped 2026-11-24 09:50:28+00) into %s, following timeline 2, '
        'recoverable from %s to %s.' % (I2, pg_path, WINDOW_START, TL2_END)]


@pytest.mark.parametrize('files, found', [
    ({'postgresql.auto.conf': 'datadir-pre-restore-095217Z.auto.conf', 'PG_VERSION': b'15\n'},
     'PostgreSQL is stopped and the data directory holds a cluster'),
    (LAB_MAIN, 'PostgreSQL is stopped and the data directory holds a cluster'),
    ({'postmaster.pid': 'datadir-main.postmaster.pid'}, 'PostgreSQL is stopped and the data directory holds files'),
], ids=['never-restored', 'restored-before', 'stale-pid-file'])
def test_check_mode_plans_to_move_a_stopped_cluster_aside(run_module, make_data_dir, files, found):
    pg_path = make_data_dir(files)
    run = plan_restore(run_module, pg_path, dict())
    assert run.result['plan']['steps'] == ['move_aside', 'restore', 'recover', 'check']
    assert run.result['plan']['found'] == found
    assert sorted(os.listdir(pg_path)) == sorted(files)


def test_check_mode_plans_to_resume_an_interrupted_restore(run_module, make_data_dir):
    pg_path = make_data_dir({'backup.manifest': b'{}', 'PG_VERSION': b'15\n'})
    run = plan_restore(run_module, pg_path, dict())
    assert run.result['plan']['steps'] == ['resume', 'recover', 'check']
    assert run.result['plan']['command'].endswith(' --target-timeline=2 --delta restore')
    assert run.result['executed_commands'][-1] == run.result['plan']['command']


def test_check_mode_records_no_restore_when_there_is_nothing_to_do(run_module, make_data_dir):
    """The running result of this very restore: nothing to do, so no restore command, not even planned."""
    pg_path = make_data_dir(dict(LAB_MAIN, **running(None)))
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, type='time',
                                              target='2026-11-24 09:52:48.817350+00', set=I2),
                     running_lookups() + since_the_restore(), check_mode=True)
    assert (run.result['changed'], run.result['plan']['steps']) == (False, [])
    assert not [command for command in run.result['executed_commands'] if command.endswith(' restore')]


def test_a_running_restore_result_is_left_alone(run_module, make_data_dir):
    """The lab's live data directory: a PITR to 09:52:48.817350 from the newest backup, recovered, promoted, nothing
    written since. Outside check mode too, it is not restored again."""
    pg_path = make_data_dir(dict(LAB_MAIN, **running(None)))
    # Autovacuum's records, and a transaction that never wrote (no xid): no commit.
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, type='time',
                                              target='2026-11-24 09:52:48.817350+00', set=I2),
                     running_lookups() + since_the_restore(('Standby', 0, '0/14000028', 'RUNNING_XACTS nextXid 752')))
    assert not run.failed, run.msg
    assert run.result['changed'] is False
    assert run.commands == ['info', 'repo-ls', 'pg_isready', 'psql', 'psql', 'psql', 'repo-get', 'psql', 'pg_waldump']
    waldump_call = run.calls[-1]['argv']
    assert waldump_call[1:] == ['-p', pg_path + '/pg_wal', '-t', '2', '-s', '0/120000A0', '-e', '0/14000060', '-r',
                                'Transaction']
    assert run.result['plan']['steps'] == []
    assert run.result['plan']['found'] == ('PostgreSQL runs the result of this restore (timeline 2), and its WAL holds no '
                                           'commit since the restore ended')


@pytest.mark.parametrize('desc', ['COMMIT 2026-11-24 10:01:02.123456 UTC', 'COMMIT 2026-11-24 10:01:02.123456 UTC; rels: '
                                  'base/16384/16400; inval msgs: catcache 55 relcache 16400'],
                         ids=['rows', 'drop-table'])
def test_a_restore_result_committed_to_is_restored_again(run_module, make_data_dir, desc):
    """Any commit since the restore ended - rows, or a DROP TABLE, which no row counter sees - makes it due again."""
    pg_path = make_data_dir(dict(LAB_MAIN, **running(None)))
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, type='time',
                                              target='2026-11-24 09:52:48.817350+00'),
                     running_lookups() + since_the_restore(('Transaction', 751, '0/14000150', desc)), check_mode=True)
    assert run.result['changed'] is True
    assert run.result['plan']['steps'] == ['stop', 'move_aside', 'restore', 'recover', 'check']
    assert run.result['plan']['discards'].startswith(
        '1 transaction committed since (the first, xid 751, at 0/14000150, 2026-11-24 10:01:02.123456 UTC): they are '
        'not in the restored cluster; changes after the target are not in the restored cluster')


def test_a_restore_result_whose_wal_is_gone_is_restored_again(run_module, make_data_dir):
    """The WAL since the restore ended was recycled: whether anything committed cannot be told, so it restores."""
    pg_path = make_data_dir(dict(LAB_MAIN, **running(None)))
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, type='time',
                                              target='2026-11-24 09:52:48.817350+00'),
                     running_lookups() + [ok(psql_rows((HISTORY_2.decode(),))),
                                          fails(1, b'pg_waldump: error: could not find file "000000020000000000000012": '
                                                   b'No such file or directory\n')], check_mode=True)
    assert run.result['plan']['steps'][:1] == ['stop']
    assert 'the WAL since the restore ended is no longer in pg_wal' in run.result['plan']['found']


# --- name and xid targets: found in the archived WAL before anything stops ---------------------------------

def scan_segment(*records):
    """The answers for one archived segment read by _wal.WalScan: archive-get, pg_waldump, rm."""
    return [ok(), ok(waldump(*records)), ok()]


TL2_SEGMENTS = ['000000020000000000000012']
TL1_NEWEST_FIRST = ['0000000100000000000000%02X' % number for number in range(0x12, 0, -1)]


def test_a_restore_point_before_the_newest_backup_gets_the_backup_before_it(run_module, make_data_dir):
    """'before-upgrade' was created at 0/E000060, after D2 ended and before I2 began: D2 is the backup, and nothing
    the archived WAL holds before D2's start is read."""
    pg_path = make_data_dir()
    answers = [ok('info-after-pitr.json'), ok(wal_listing()), ok(HISTORY_2), ok()]
    for segment in TL2_SEGMENTS + TL1_NEWEST_FIRST:
        if segment == '00000001000000000000000E':
            answers += scan_segment(('XLOG', 0, '0/0E000060', 'RESTORE_POINT before-upgrade'))
        else:
            answers += scan_segment()
        if segment == '00000001000000000000000D':
            break
    answers.append(ok())
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, type='name',
                                              target='before-upgrade'), answers, check_mode=True)
    assert not run.failed, run.msg
    plan = run.result['plan']
    assert plan['set'] == D2
    assert plan['located'] == dict(lsn='0/E000060', desc='RESTORE_POINT before-upgrade')
    assert "restore point 'before-upgrade' at 0/E000060 in the archived WAL" in plan['facts']
    gets = [call['argv'][-2] for call in run.calls if 'archive-get' in call['argv']]
    assert gets == TL2_SEGMENTS + TL1_NEWEST_FIRST[:TL1_NEWEST_FIRST.index('00000001000000000000000D') + 1]


def test_an_xid_is_found_by_its_commit(run_module, make_data_dir):
    pg_path = make_data_dir()
    answers = [ok('info-after-pitr.json'), ok(wal_listing()), ok(HISTORY_2), ok()]
    answers += scan_segment() + scan_segment() + scan_segment(
        ('Transaction', 750, '0/11000150', 'COMMIT 2026-11-24 09:51:00.000001 UTC')) + [ok()]
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, type='xid', target='750'),
                     answers, check_mode=True)
    assert not run.failed, run.msg
    assert run.result['plan']['set'] == I2
    assert run.result['plan']['located']['lsn'] == '0/11000150'


def test_a_rolled_back_xid_is_refused_before_anything_stops(run_module, make_data_dir):
    pg_path = make_data_dir(dict(running(None), **{'PG_VERSION': b'15\n'}))
    answers = running_lookups() + [ok()] + scan_segment(
        ('Transaction', 750, '0/12000150', 'ABORT 2026-11-24 09:52:00.000001 UTC')) + [ok()]
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, type='xid', target='750'), answers)
    assert run.failed
    assert run.msg.startswith('Transaction 750 was rolled back (ABORT 2026-11-24 09:52:00.000001 UTC at 0/12000150)')
    assert 'service' not in run.commands


def test_an_unknown_restore_point_is_refused_before_anything_stops(run_module, make_data_dir):
    pg_path = make_data_dir(dict(running(None), **{'PG_VERSION': b'15\n'}))
    answers = running_lookups() + [ok()]
    for dummy in TL2_SEGMENTS + TL1_NEWEST_FIRST[:-1]:
        answers += scan_segment()
    answers.append(ok())
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, type='name', target='nowhere'),
                     answers)
    assert run.failed
    assert run.msg == ("The archived WAL holds no restore point named 'nowhere' after the end of any backup (from "
                       "000000010000000000000002 on): the target cannot be reached, so nothing was stopped. Nothing was "
                       "changed.")
    assert 'service' not in run.commands and os.path.exists(os.path.join(pg_path, 'postmaster.pid'))


# --- real runs --------------------------------------------------------------------------------------------

REAL_RUNS = [
    ('latest', dict(), {}, 2, ['--set=' + I2, '--type=default', '--target-timeline=2']),
    ('time', dict(type='time', target='2026-11-24 09:23:44+00'), {}, 1,
     # One argv element: the target's blank reaches pgBackRest unsplit.
     ['--set=' + D1, '--type=time', '--target=2026-11-24 09:23:44+00', '--target-action=promote',
      '--target-timeline=1']),
    ('over-a-restore', dict(type='lsn', target='0/D000200'), LAB_MAIN, 2,
     ['--set=' + D2, '--type=lsn', '--target=0/D000200', '--target-action=promote', '--target-timeline=2']),
]


@pytest.mark.parametrize('case, args, files, timeline, options', REAL_RUNS, ids=ids(REAL_RUNS))
def test_runs_the_restore(run_module, make_data_dir, case, args, files, timeline, options):
    pg_path = make_data_dir(files)
    # A restore prints nothing with --log-level-console=off (rc 0, stdout and stderr empty in the lab).
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, **args),
                     lookups(timeline) + [ok()] + recovered_and_checked(pg_path))
    assert not run.failed, run.msg
    assert run.result['changed'] is True
    # Over a data directory moved aside, pgBackRest restores over the guard it leaves (--delta).
    argv = PREFIX + ['--pg1-path=' + pg_path] + options + (['--delta'] if files else []) + ['restore']
    restore = run.commands.index('restore')
    assert run.calls[restore]['argv'] == argv
    assert run.commands[restore:] == ['restore', 'service', 'psql', 'psql', 'psql', 'info']
    assert run.result['plan']['command'] == ' '.join(argv)
    assert ' '.join(argv) in run.result['executed_commands']
    assert run.result['sanity'] == [['4']]
    assert run.result['timeline_after'] == dict(timeline=3, has_backup=False)
    if files:
        assert run.result['kept']['name'].startswith(pg_path + '.pre-restore-')
        assert sorted(os.listdir(run.result['kept']['path'])) == sorted(files)
    else:
        assert run.result['kept'] is None


def test_into_a_missing_pg_path(run_module, tmp_path):
    """pgBackRest 2.45 creates a missing pg1-path (rc 0 in the lab)."""
    pg_path = str(tmp_path / 'missing')

    def restore(call):
        os.mkdir(pg_path, 0o700)
        return 0, b'', b''
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, type='set', set=D2,
                                              target_timeline='current'),
                     [ok(INFO), ok(wal_listing()), restore] + recovered_and_checked(pg_path))
    assert not run.failed, run.msg
    assert run.result['plan']['steps'] == ['restore', 'recover', 'check']


def test_pause_at_the_target_reads_no_timeline(run_module, make_data_dir):
    pg_path = make_data_dir()
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, type='time',
                                              target='2026-11-24 09:23:44+00', target_action='pause'),
                     lookups(1) + [ok(), start_postgresql(pg_path), ok(psql_rows(('t', 't'))), ok(psql_rows(('4',)))])
    assert not run.failed, run.msg
    assert 'timeline_after' not in run.result


def test_stops_a_running_postgresql_and_keeps_its_data(run_module, make_data_dir):
    pg_path = make_data_dir({'PG_VERSION': b'15\n', 'postmaster.pid': ('%d\n' % os.getpid()).encode()})
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path),
                     running_lookups() + [ok(psql_rows(('000000020000000000000014',))), ok(psql_rows(('0',))),
                                          stop_postgresql(pg_path), ok(b''), ok()]
                     + recovered_and_checked(pg_path, '00000002'))
    assert not run.failed, run.msg
    assert run.result['plan']['steps'] == ['archive', 'stop', 'move_aside', 'restore', 'recover', 'check']
    assert sorted(os.listdir(run.result['kept']['path'])) == ['PG_VERSION']
    assert run.result['timeline_after'] == dict(timeline=2, has_backup=False)
    assert run.result['lines'][0] == 'Restored backup set %s (latest) into %s.' % (I2, pg_path)
    assert run.result['lines'][1].startswith('Seconds per step: archive 0.0, stop 0.0, move_aside 0.0, restore 0.0, ')


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
def test_restore_failure_is_reported_with_restore_advice(run_module, make_data_dir, rc, name, code, part, text):
    pg_path = make_data_dir({'PG_VERSION': b'15\n'})
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, type='lsn', target='0/D000200'),
                     lookups() + [fails(rc, name)])
    assert run.failed
    assert (run.result['error_code'], run.result['failed_part'], run.result['rc']) == (code, part, rc)
    kept = run.result['kept']['name']
    assert run.msg == (
        'The restore failed at step restore: Unable to restore backup set %s into %s: pgBackRest error [%03d]: %s. %s '
        'The old data directory is kept as %s. To put it back: ansible-playbook playbooks/rollback.yml -e '
        'pgbackrest_restore_kept=%s -e pgbackrest_restore_confirm=true. Running the same command again finishes the '
        'restore from where it stopped.' % (D2, pg_path, code, text, RESTORE_ADVICE[code], kept, kept))
    # On a restore, 38 is not "check that it is running".
    assert 'check that it is running' not in run.msg
    assert run.result['cmd'] == run.result['executed_commands'][-1]
    assert run.result['step'] == 'restore'
    # The old data directory was moved aside before the restore failed: the failure names it.
    assert run.result['kept']['name'].startswith(pg_path + '.pre-restore-')
    assert os.listdir(run.result['kept']['path']) == ['PG_VERSION']
    assert run.result['plan']['steps'] == ['move_aside', 'restore', 'recover', 'check']


def test_secrets_reach_pgbackrest_through_the_environment_only(run_module, make_data_dir):
    pg_path = make_data_dir()
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, type='time',
                                              target='2026-11-24 09:23:44+00', **SECRETS),
                     lookups(1) + [ok()] + recovered_and_checked(pg_path))
    assert not run.failed, run.msg
    pgbackrest_calls = [call for call in run.calls if call['argv'][0] == 'pgbackrest']
    assert [call['argv'][-1] for call in pgbackrest_calls][:2] == ['info', 'archive/chronos-v2/15-1']
    for call in run.calls:
        assert not [arg for arg in call['argv'] for secret in SECRETS.values() if secret in arg]
    for call in pgbackrest_calls:
        assert call['env'] == SECRET_ENVIRONMENT
    # psql and the service never get them.
    assert all(call['env'] == {} for call in run.calls if call['argv'][0] != 'pgbackrest')
    assert not [secret for secret in SECRETS.values() if secret in json.dumps(run.result)]


# --- progress and rollback ------------------------------------------------------------------------------------

def test_progress(run_module, make_data_dir, clock):
    pg_path = make_data_dir()
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, progress=True))
    assert (run.failed, run.result['changed'], run.result['progress']) == (
        False, False, 'No restore holds the stanza lock now.')
    with StanzaLock('chronos-v2', 'restore into %s' % pg_path) as lock:
        lock.note('step 4 of 4, run the sanity query; started %d; backup size 100' % (clock.now - 5))
        run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, progress=True))
    assert run.result['progress'] == 'Step 4 of 4, run the sanity query; 0 min 05 s since the restore started.'


def test_rollback(run_module, make_data_dir):
    pg_path = make_data_dir({'PG_VERSION': b'restored'})
    kept = make_data_dir({'PG_VERSION': b'original'}, name=os.path.basename(pg_path) + '.pre-restore-20261124T095217Z')
    check = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, type='rollback'), check_mode=True)
    assert (check.failed, check.result['changed'], check.result['plan']['kept']['path']) == (False, True, kept)
    assert check.result['executed_commands'] == []
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=pg_path, type='rollback'),
                     [ok(), ok(), ok(psql_rows(('4',)))])
    assert not run.failed, run.msg
    assert run.commands == ['service', 'pg_isready', 'psql']
    with open(os.path.join(pg_path, 'PG_VERSION')) as handle:
        assert handle.read() == 'original'
    assert run.result['kept']['name'].startswith(pg_path + '.rolled-back-')
    assert 'timeline_after' not in run.result


def test_rollback_of_an_unknown_copy(run_module, make_data_dir):
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', pg_path=make_data_dir(), type='rollback',
                                              kept='20261124T000000Z'))
    assert run.failed and run.msg == "No kept data directory '20261124T000000Z'. Kept: none."


# --- container mode -------------------------------------------------------------------------------------------

@pytest.fixture
def container(docker):
    """The official image up to PostgreSQL 17: PGDATA the root of volume pgdata (in tmp_path), empty."""
    data = docker.add_volume('pgdata').attrs['Mountpoint']
    return docker.add_container(status='exited', env=['PGDATA=/var/lib/postgresql/data', 'POSTGRES_PASSWORD=pw'],
                                mounts=[{'Type': 'volume', 'Name': 'pgdata', 'Source': data,
                                         'Destination': '/var/lib/postgresql/data', 'Driver': 'local'}]), data


def test_in_a_stopped_container_pgbackrest_runs_in_a_helper(run_module, docker, container):
    live, data = container
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', container='chronos-db', **SECRETS),
                     lookups() + [ok(),                                     # restore
                                  ok(), ok(), ok(psql_rows(('f', 'f'))), ok(),   # pg_ctl start, status, psql, stop
                                  ok(),                                     # pg_isready in the started container
                                  ok(psql_rows(('4',))), ok(psql_rows(('00000003',))), ok(INFO)])
    assert not run.failed, run.msg
    helper = 'chronos-db-pgbackrest-helper'
    assert [call['where'] for call in run.calls] == [helper] * 8 + ['chronos-db'] * 4
    restore = run.calls[3]
    assert restore['argv'] == PREFIX + ['--pg1-path=/var/lib/postgresql/data', '--set=' + I2, '--type=default',
                                        '--target-timeline=2', 'restore']
    assert restore['env'] == SECRET_ENVIRONMENT
    # The helper: same image and volumes, no environment from the container, removed at the end.
    assert len(docker.created) == 1 and 'environment' not in docker.created[0]
    assert docker.created[0]['volumes_from'] == [live.id]
    assert ('remove', helper) in docker.events
    assert live.status == 'running'
    assert run.result['plan']['pg_path'] == '/var/lib/postgresql/data'


def test_a_crash_looping_container_is_stopped_its_policy_held_then_put_back(run_module, docker, container, settings_dir):
    """Restart policy always, PostgreSQL failing at each start (status restarting): taken for running, stopped, its
    policy held off while the volume is emptied and filled, and put back at the end."""
    live, data = container
    live.status = 'restarting'
    live.attrs['HostConfig']['RestartPolicy'] = {'Name': 'always', 'MaximumRetryCount': 0}
    write_cluster(data, 7711665496204834485, timeline=2)
    # pg_isready in the helper: the crash-looping server does not answer.
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', container='chronos-db'),
                     lookups()[:2] + [fails(2)] + lookups()[2:] + [
                         ok(b''),                                       # find what PostgreSQL left unarchived
                         ok(),                                          # restore
                         ok(), ok(), ok(psql_rows(('f', 'f'))), ok(),   # pg_ctl start, status, psql, stop
                         ok(),                                          # pg_isready in the started container
                         ok(psql_rows(('4',))), ok(psql_rows(('00000003',))), ok(INFO)])
    assert not run.failed, run.msg
    plan = run.result['plan']
    assert plan['steps'] == ['archive', 'stop', 'move_aside', 'restore', 'recover', 'check']
    assert "timeline 2: pg_control's in /var/lib/postgresql/data (shut down)" in plan['facts']
    updates = [event for event in docker.events if event[0] in ('update', 'stop', 'start') and event[1] == 'chronos-db']
    assert updates == [('update', 'chronos-db', {'Name': 'no'}), ('stop', 'chronos-db', 60), ('start', 'chronos-db'),
                       ('update', 'chronos-db', {'Name': 'always', 'MaximumRetryCount': 0})]
    assert live.attrs['HostConfig']['RestartPolicy']['Name'] == 'always' and live.status == 'running'
    restore = [call for call in run.calls if call['argv'][-1] == 'restore'][0]
    assert restore['argv'][-2] == '--delta' and restore['where'] == 'chronos-db-pgbackrest-helper'


def test_an_interrupted_restore_puts_the_held_policy_back(run_module, docker, container, settings_dir):
    """The record an interrupted restore left: the next plan says so, and the run puts the policy back."""
    live, data = container
    live.attrs['HostConfig']['RestartPolicy'] = {'Name': 'no'}
    os.makedirs(os.path.join(settings_dir, 'held-restart-policies'))
    with open(os.path.join(settings_dir, 'held-restart-policies', 'chronos-db.json'), 'w') as handle:
        json.dump({'Name': 'unless-stopped', 'MaximumRetryCount': 0}, handle)
    plan = run_module(pgbackrest_restore, dict(stanza='chronos-v2', container='chronos-db'),
                      lookups(), check_mode=True)
    assert plan.result['plan']['steps'][-1] == 'release'
    assert "the container's restart policy unless-stopped is held off by an interrupted restore" in \
        plan.result['plan']['facts']


def test_in_a_running_container_the_plan_stops_it(run_module, docker, container):
    live, data = container
    live.status = 'running'
    with open(os.path.join(data, 'PG_VERSION'), 'w') as handle:
        handle.write('15\n')
    before = list(docker.events)
    run = run_module(pgbackrest_restore, dict(stanza='chronos-v2', container='chronos-db'),
                     running_lookups(), check_mode=True)
    assert not run.failed, run.msg
    assert run.result['plan']['steps'] == ['archive', 'stop', 'move_aside', 'restore', 'recover', 'check']
    # Nothing stopped, no volume made, no helper: a plan only reads.
    assert docker.events == before and docker.created == []
