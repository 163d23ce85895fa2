# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A restore, on any target, decided from real state.

plan() reads the repository (backups, timelines, archived WAL) and the data directory (is PostgreSQL running,
what is in the directory, what a past restore left there) and returns what it would do, step by step, and
why. execute() does the remaining steps: stop PostgreSQL, move the data directory aside (never deleting it),
restore with pgBackRest, recover, and run a sanity query. A run interrupted at any step is finished by the
same request run again: each step's result is visible in the data directory (a moved-aside copy, pgBackRest's
backup.manifest while its restore is unfinished, recovery.signal while recovery is), and plan() reads it.

Timelines: a restore follows the timeline production archived last (pgBackRest's --target-timeline), so that
a point-in-time restore that was rolled back leaves no trap for the next one: the abandoned timeline's
history file stays in the repository, and PostgreSQL's default ('latest') would follow it.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re
import time
from datetime import datetime, timezone

from ansible_collections.chronos.pgbackrest.plugins.module_utils._lock import StanzaLock
from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import PgBackRestError, parse_error, utc
from ansible_collections.chronos.pgbackrest.plugins.module_utils._postgres import (
    check_target_text, parse_lsn, parse_target_time, read_restored_state, segment_timeline)
from ansible_collections.chronos.pgbackrest.plugins.module_utils._target import ChronosError

RESTORE_TYPES = ('latest', 'time', 'set', 'immediate', 'xid', 'lsn', 'name', 'rollback')
TARGET_SETTINGS = {'time': 'recovery_target_time', 'xid': 'recovery_target_xid', 'lsn': 'recovery_target_lsn',
                   'name': 'recovery_target_name'}
STEPS = ('stop', 'move_aside', 'restore', 'recover', 'check')
STEP_TEXT = {
    'stop': 'stop PostgreSQL',
    'move_aside': 'move the data directory aside (kept, never deleted)',
    'restore': 'restore the files with pgBackRest',
    'resume': 'resume the interrupted pgBackRest restore (--delta)',
    'recover': 'start PostgreSQL and wait for recovery',
    'check': 'run the sanity query',
    'put_back': 'put the kept data directory back (the current one is kept too)',
    'start': 'start PostgreSQL',
}
# On a restore, these codes mean something else than on other commands.
RESTORE_ADVICE = {
    38: 'PostgreSQL may still be running on the data directory: stop it. If it is not running, a stale '
        'postmaster.pid is left there: remove it.',
    40: 'The data directory is not empty: move it aside first, or restore with delta.',
}
# Rows written to user tables since the server started (a recovery resets the statistics); catalog writes (autovacuum's
# ANALYZE) do not count.
WRITES_QUERY = 'SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables'
# Set only by tests: end the run right after this step, as an interruption would (CHRONOS_PGBACKREST_FAULT=after:stop).
FAULT_VARIABLE = 'CHRONOS_PGBACKREST_FAULT'


def stamp():
    return datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')


class Request(object):
    """What the operator asks for, checked before anything is read or touched."""

    def __init__(self, restore_type='latest', target=None, backup_set=None, target_action='promote',
                 timeline=None, pg_path=None, timeout=900, lock_wait=600, sanity_database='postgres',
                 sanity_query='SELECT count(*) FROM pg_database'):
        self.type = restore_type
        self.target = target
        self.set = backup_set
        self.target_action = target_action
        self.timeline = timeline
        self.pg_path = pg_path
        self.timeout = timeout
        self.lock_wait = lock_wait
        self.sanity_database = sanity_database
        self.sanity_query = sanity_query
        self.target_epoch = self.target_lsn = None
        self.validate()

    def validate(self):
        if self.type not in RESTORE_TYPES:
            raise ChronosError("Restore type '%s' is not one of %s. Nothing was changed." % (
                self.type, ', '.join(RESTORE_TYPES)))
        if self.type in TARGET_SETTINGS and not self.target:
            raise ChronosError('A %s restore needs a target. Nothing was changed.' % self.type)
        if self.type == 'set' and not self.set:
            raise ChronosError('A set restore needs the backup set (its label). Nothing was changed.')
        if self.target_action not in ('promote', 'pause'):
            raise ChronosError("target_action is promote or pause, not '%s'. Nothing was changed." % self.target_action)
        if self.timeline is not None and not str(self.timeline).isdigit() and self.timeline not in ('latest', 'current'):
            raise ChronosError("The timeline is a number, 'latest' or 'current', not '%s'. Nothing was changed."
                               % self.timeline)
        try:
            if self.type == 'time':
                self.target_epoch = parse_target_time(self.target)
            elif self.type == 'lsn':
                self.target_lsn = parse_lsn(self.target)
            elif self.type in ('xid', 'name'):
                check_target_text(self.type, self.target)
        except ValueError as exc:
            raise ChronosError('Malformed target: %s. Nothing was changed.' % exc)

    @property
    def pause(self):
        return self.target_action == 'pause' and self.type != 'latest'


# --- the repository: timelines, WAL, backups ----------------------------------------------------------------

def archive_id(stanza):
    """The archive id of the stanza's current PostgreSQL ('15-1')."""
    archives = [archive for archive in stanza['archive'] if archive['id']]
    return archives[-1]['id'] if archives else None


def archived_wal(pgbackrest, stanza):
    """Every archived WAL segment of the current archive id: [{'name', 'timeline', 'time'}], and the
    timelines with a history file."""
    archive = archive_id(stanza)
    if archive is None:
        return [], set()
    listing = pgbackrest.repo_ls('archive/%s/%s' % (stanza['name'], archive), recurse=True,
                                 attempt='list the archived WAL')
    segments, histories = [], set()
    for path, entry in listing.items():
        name = path.rsplit('/', 1)[-1]
        if entry.get('type') != 'file':
            continue
        if name.endswith('.history'):
            histories.add(int(name[:8], 16))
        elif segment_timeline(name) is not None and '.partial' not in name and '.backup' not in name:
            segments.append(dict(name=name[:24], timeline=segment_timeline(name), time=entry.get('time')))
    return segments, histories


def read_history(pgbackrest, stanza, timeline):
    """The timeline's ancestry from its history file: [(parent timeline, switch LSN as int)], oldest first."""
    if timeline <= 1:
        return []
    path = 'archive/%s/%s/%08X.history' % (stanza['name'], archive_id(stanza), timeline)
    done = pgbackrest.run('repo-get', path, attempt='read the history of timeline %d' % timeline)
    history = []
    for line in done.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].isdigit():
            history.append((int(fields[0]), parse_lsn(fields[1])))
    return history


def timeline_line(pgbackrest, stanza, timeline):
    """{timeline: LSN where the followed timeline left it (None for the followed one)}."""
    line = dict((parent, switch) for parent, switch in read_history(pgbackrest, stanza, timeline))
    line[timeline] = None
    return line


def backup_timeline(backup):
    return segment_timeline(backup['wal_start'] or '') or 1


def on_line(backup, line):
    """Whether recovery from backup can follow the line: the backup is on one of its timelines, and was
    consistent before the line left that timeline."""
    timeline = backup_timeline(backup)
    if timeline not in line:
        return False
    switch = line[timeline]
    return switch is None or (backup['lsn_stop'] is not None and parse_lsn(backup['lsn_stop']) <= switch)


def followed_timeline(request, segments):
    """The timeline a restore follows: as asked; else production's, read from when segments were archived - for a
    time target the timeline production archived on at that time, otherwise the one it archived on last. A
    point-in-time restore that was rolled back leaves its timeline in the repository: production's is the one that
    goes on."""
    if request.timeline is not None and str(request.timeline).isdigit():
        return int(request.timeline)
    timed = sorted((segment for segment in segments if segment['time'] is not None),
                   key=lambda segment: (segment['time'], segment['name']))
    if request.timeline in ('latest', 'current') or not timed:
        return None
    if request.target_epoch is not None:
        after = [segment for segment in timed if segment['time'] >= request.target_epoch]
        if after:
            return after[0]['timeline']
    return timed[-1]['timeline']


def choose_backup(request, usable, line):
    """The backup set to restore from: the one asked for, else the newest on the line before the target."""
    candidates = [backup for backup in usable if line is None or on_line(backup, line)]
    if request.set:
        chosen = [backup for backup in usable if backup['label'] == request.set]
        if not chosen:
            raise ChronosError("Backup set '%s' is not in the stanza. Sets: %s. Nothing was changed." % (
                request.set, ', '.join(backup['label'] for backup in usable) or 'none'))
        if line is not None and not on_line(chosen[0], line):
            raise ChronosError("Backup set '%s' is on timeline %d, which the followed timeline does not descend from "
                               "after that backup. Nothing was changed." % (request.set, backup_timeline(chosen[0])))
        if request.target_epoch is not None and chosen[0]['stop'] > request.target_epoch:
            raise ChronosError("Backup set '%s' stopped at %s, after the target. Nothing was changed." % (
                request.set, chosen[0]['stop_time']))
        return chosen[0]
    if request.target_epoch is not None:
        candidates = [backup for backup in candidates if backup['stop'] <= request.target_epoch]
    elif request.target_lsn is not None:
        candidates = [backup for backup in candidates
                      if backup['lsn_stop'] and parse_lsn(backup['lsn_stop']) <= request.target_lsn]
    return candidates[-1] if candidates else None


def window_end(segments, line):
    """When the newest segment on the followed line was stored (epoch), or None."""
    times = [segment['time'] for segment in segments if segment['time'] is not None and (
        line is None or segment['timeline'] in line)]
    if line is not None:
        followed = [timeline for timeline, switch in line.items() if switch is None][0]
        on_followed = [segment['time'] for segment in segments
                       if segment['timeline'] == followed and segment['time'] is not None]
        times = on_followed or times
    return max(times) if times else None


# --- the data directory's real state ---------------------------------------------------------------------

def inspect(target, place, pg_path):
    """What is in and around the data directory now."""
    running = target.postgresql_running(pg_path)
    state = dict(running=running, ready=False, in_recovery=None, paused=None, writes=None,
                 has_cluster=place.has_cluster(), empty=place.is_empty(),
                 restoring=place.exists('backup.manifest'), recovering=place.exists('recovery.signal'),
                 restored=read_restored_state(lambda name: _read_local(place.local, name)),
                 kept=[kept.as_dict() for kept in place.kept()])
    if running and target.pg_ready():
        state['ready'] = True
        in_recovery, paused = target.sql('SELECT pg_is_in_recovery(), pg_is_in_recovery() AND pg_is_wal_replay_paused()',
                                         attempt='ask PostgreSQL whether it recovers')[0]
        state['in_recovery'], state['paused'] = in_recovery == 't', paused == 't'
        state['writes'] = rows_written(target)
    return state


def rows_written(target):
    """Rows written to user tables in every database since PostgreSQL started."""
    databases = target.sql('SELECT datname FROM pg_database WHERE datallowconn', attempt='list the databases')
    return sum(int(target.sql(WRITES_QUERY, database=name, attempt='count the rows written to %s' % name)[0][0])
               for (name,) in databases)


def _read_local(directory, name):
    with open(os.path.join(directory, name), 'rb') as handle:
        return handle.read()


def is_this_restore(restored, backup, request):
    """Whether what a past restore left (read_restored_state) is this request's restore: the same backup set and
    recovery target. (Not the timeline: the restore itself moved production to a new one.)"""
    if restored is None or restored['start_lsn'] != backup['lsn_start']:
        return False
    settings = restored['settings']
    if request.type == 'latest':
        return not any(key in settings for key in ['recovery_target'] + list(TARGET_SETTINGS.values()))
    wanted = ('recovery_target', 'immediate') if request.type in ('immediate', 'set') else (
        TARGET_SETTINGS[request.type], request.target)
    return settings.get(wanted[0]) == wanted[1] and settings.get('recovery_target_action', 'pause') == request.target_action


def remaining_steps(state, this_restore, request):
    """(steps still to do, sentence saying what was found)."""
    if state['running']:
        if this_restore and state['recovering']:
            return ['recover', 'check'], 'PostgreSQL runs and is recovering this restore'
        if this_restore and state['ready'] and state['writes'] == 0 and (
                state['paused'] if request.pause else state['in_recovery'] is False):
            return [], 'PostgreSQL runs the result of this restore, and nothing was written since it started'
        if this_restore and state['ready']:
            return list(STEPS), ('PostgreSQL runs a cluster restored from this backup, but %s rows were written since '
                                 'it started' % state['writes'] if state['writes'] else
                                 'PostgreSQL runs a cluster restored from this backup, in another state than asked')
        return list(STEPS), 'PostgreSQL runs on the data directory'
    if state['empty']:
        return ['restore', 'recover', 'check'], 'PostgreSQL is stopped and the data directory is empty'
    if state['restoring']:
        return ['resume', 'recover', 'check'], ("PostgreSQL is stopped and pgBackRest's restore into the data directory "
                                                "did not finish (backup.manifest is there)")
    if this_restore and state['recovering']:
        return ['recover', 'check'], 'PostgreSQL is stopped and the data directory holds this restore, not yet recovered'
    return ['move_aside', 'restore', 'recover', 'check'], (
        'PostgreSQL is stopped and the data directory holds %s' % ('a cluster' if state['has_cluster'] else 'files'))


# --- plan and execute --------------------------------------------------------------------------------------

class Restore(object):
    """One restore request against one target."""

    def __init__(self, target, pgbackrest, request):
        self.target = target
        self.pgbackrest = pgbackrest
        self.request = request
        target.allow_commands_while_stopped()
        self.place = target.data_place(request.pg_path)
        self.marks = []

    def plan(self):
        request, pgbackrest = self.request, self.pgbackrest
        refusal = self.place.refusal()
        if refusal:
            raise ChronosError('%s Nothing was changed.' % refusal)
        stanza = pgbackrest.usable_stanza('restore')
        usable = [backup for backup in stanza['backups'] if not backup['error']]
        if not usable:
            raise ChronosError('Stanza %s has no backup to restore. Nothing was changed.' % stanza['name'])
        segments, histories = archived_wal(pgbackrest, stanza)
        timeline = followed_timeline(request, segments)
        line = timeline_line(pgbackrest, stanza, timeline) if timeline is not None else None
        on_the_line = [backup for backup in usable if line is None or on_line(backup, line)]
        window = dict(start=(on_the_line or usable)[0]['stop_time'], end=None, timeline=timeline)
        backup = choose_backup(request, usable, line)
        if backup is None:
            raise ChronosError('Target %s is before the recoverable window on timeline %s, which starts when the oldest '
                               'backup on it stopped: %s. Nothing was changed.' % (
                                   request.target, timeline or 'latest', window['start']), window=window)
        end = window_end(segments, line)
        window['end'] = utc(end)
        if request.type == 'time':
            if end is None:
                raise ChronosError('The repository holds no archived WAL for stanza %s, so no point in time can be '
                                   'recovered: check WAL archiving (pgbackrest_check). Nothing was changed.'
                                   % stanza['name'], window=window)
            if request.target_epoch > end:
                raise ChronosError('Target %s is after the recoverable window on timeline %s, which ends with the newest '
                                   'archived WAL segment, stored at %s. Recovery would stop short of it. Nothing was '
                                   'changed.' % (request.target, timeline, window['end']), window=window)

        state = inspect(self.target, self.place, request.pg_path)
        this_restore = is_this_restore(state['restored'], backup, request)
        steps, found = remaining_steps(state, this_restore, request)
        options = self.restore_options(backup, timeline, resume='resume' in steps)
        if 'restore' in steps or 'resume' in steps:
            # The kept data stays where it is: the restored files need room of their own.
            needed = (backup['size'] or 0) * 1.05 - (0 if 'move_aside' in steps else self.place.usage())
            free = self.place.free()
            if free < needed:
                raise ChronosError('Not enough free space to restore beside the kept data directory: the backup holds '
                                   '%d MB, %d MB are free where %s lies. Free space, then run again. Nothing was changed.'
                                   % ((backup['size'] or 0) // 2 ** 20, free // 2 ** 20, request.pg_path))
        return dict(
            type=request.type, target=request.target, set=backup['label'], backup=backup, pg_path=request.pg_path,
            window=window, timeline=timeline, steps=steps, found=found, state=state,
            postgresql_running=state['running'], discards=self.discards(state, this_restore, steps),
            command=' '.join(pgbackrest.command('restore', *options)), options=options,
            new_timeline_note=None)

    def restore_options(self, backup, timeline, resume=False):
        request = self.request
        options = ['--pg1-path=%s' % self.place.restore_path(request.pg_path), '--set=%s' % backup['label']]
        if request.type == 'latest':
            options.append('--type=default')
        else:
            options.append('--type=%s' % ('immediate' if request.type == 'set' else request.type))
            if request.type in TARGET_SETTINGS:
                options.append('--target=%s' % request.target)
            options.append('--target-action=%s' % request.target_action)
        # pgBackRest takes --target-timeline only with these types (immediate and set stay on the backup's timeline).
        if request.type in ('latest', 'time', 'xid', 'lsn', 'name'):
            if timeline is not None:
                options.append('--target-timeline=%d' % timeline)
            elif request.timeline in ('latest', 'current'):
                options.append('--target-timeline=%s' % request.timeline)
        if self.place.kind == 'directory' and self.place.linked():
            options.append('--link-all')
        if resume:
            options.append('--delta')
        return options

    def discards(self, state, this_restore, steps):
        """What the restore would leave behind in the live cluster: a sentence, or None."""
        if 'move_aside' not in steps:
            return None
        parts = []
        if state['running'] and state['writes']:
            parts.append('%d rows written since PostgreSQL %s' % (
                state['writes'], 'was restored' if this_restore else 'started'))
        what = 'changes after the target' if self.request.type != 'latest' else 'WAL not yet archived'
        parts.append('%s are not in the restored cluster' % what)
        text = '%s; the current data directory is kept, not deleted.' % '; '.join(parts)
        return text[0].upper() + text[1:]

    def execute(self, plan):
        """Do the plan's steps, holding the stanza's lock; returns the result."""
        request, target = self.request, self.target
        steps = plan['steps']
        with StanzaLock(self.pgbackrest.stanza, 'restore into %s' % request.pg_path, wait=request.lock_wait) as lock:
            self.marks = [('start', time.time())]
            kept = step = None
            try:
                for number, step in enumerate(steps, 1):
                    lock.note('step %d of %d, %s; started %d; backup size %d' % (
                        number, len(steps), STEP_TEXT[step], self.marks[0][1], plan['backup']['size'] or 0))
                    if step == 'stop':
                        target.stop_postgresql(request.pg_path, timeout=120)
                    elif step == 'move_aside':
                        kept = self.place.move_aside(stamp())
                    elif step in ('restore', 'resume'):
                        done = self.pgbackrest.execute('restore', *plan['options'])
                        if done.rc != 0:
                            raise PgBackRestError('restore backup set %s into %s' % (plan['set'], request.pg_path), done,
                                                  advice=RESTORE_ADVICE.get(parse_error(done.stdout, done.stderr)[0]))
                    elif step == 'recover':
                        if target.postgresql_running(request.pg_path):
                            target.wait_for_recovery(request.timeout, request.pause, lambda: True, lambda: '')
                        else:
                            target.recover(request.pg_path, request.timeout, request.pause)
                    elif step == 'check':
                        plan['sanity'] = target.sql(request.sanity_query, database=request.sanity_database,
                                                    attempt='run the sanity query')
                    self.marks.append((step, time.time()))
                    _fault_after(step)
            except ChronosError as exc:
                exc.extra.setdefault('step', step)
                exc.extra['kept'] = (kept or (self.place.kept() or [None])[-1]).as_dict() if (
                    kept or self.place.kept()) else None
                exc.extra['plan'] = _public(plan)
                raise
        return dict(plan=_public(plan), kept=kept.as_dict() if kept else None, timings=self.timings(),
                    sanity=plan.get('sanity'))

    def timings(self):
        """Seconds each step took, in order, and the total (the RTO of the steps run)."""
        timings = [(step, round(at - self.marks[index][1], 1)) for index, (step, at) in enumerate(self.marks[1:])]
        return dict(timings, total=round(self.marks[-1][1] - self.marks[0][1], 1))


def progress(target, pgbackrest, pg_path):
    """How far a running restore got, as a sentence: its step (from the stanza lock it holds), and the bytes restored -
    from pgBackRest itself where it reports them (2.56+), else the bytes in the data directory."""
    holder = StanzaLock(pgbackrest.stanza, 'progress').holder()
    match = re.search(r'step (\d+) of (\d+), ([^;]+); started (\d+); backup size (\d+)', holder)
    if not match:
        return 'No restore holds the stanza lock now%s.' % (' (%s)' % holder if holder else '')
    number, count, text, started, total = match.groups()
    done = None
    if 'pgBackRest' in text:
        target.allow_commands_while_stopped()
        try:
            stanza = pgbackrest.stanza_info()
            if stanza.get('restore_progress_total'):
                done, total = stanza['restore_progress_complete'] or 0, stanza['restore_progress_total']
        except ChronosError:
            pass
        if done is None:
            done = target.data_place(pg_path).usage()
    elapsed = int(time.time() - int(started))
    figures = ''
    if done is not None and int(total):
        figures = ': %d of %d MiB (%d %%)' % (done // 2 ** 20, int(total) // 2 ** 20, min(100, 100 * done // int(total)))
    return 'Step %s of %s, %s%s; %d min %02d s since the restore started.' % (
        number, count, text, figures, elapsed // 60, elapsed % 60)


def _public(plan):
    """The plan as the module returns it (without the pgbackrest option list)."""
    return dict((key, value) for key, value in plan.items() if key != 'options')


def _fault_after(step):
    if os.environ.get(FAULT_VARIABLE) == 'after:%s' % step:
        os._exit(130)


class Rollback(object):
    """Put a kept data directory back in place (undo a restore), keeping the current one as
    <...>.rolled-back-<stamp>. The kept copy was stopped cleanly before it was moved aside, so it starts as
    it was, on its own timeline."""

    def __init__(self, target, stanza, request, kept_name=None):
        self.target = target
        self.stanza = stanza
        self.request = request
        self.kept_name = kept_name
        target.allow_commands_while_stopped()
        self.place = target.data_place(request.pg_path)
        self.marks = []

    def plan(self):
        refusal = self.place.refusal()
        if refusal:
            raise ChronosError('%s Nothing was changed.' % refusal)
        kept = self.place.kept()
        if self.kept_name:
            chosen = self.place.find_kept(self.kept_name)
        else:
            before_restores = [copy for copy in kept if '-pre-restore-' in copy.name.replace('.', '-')]
            if not before_restores:
                raise ChronosError('There is no kept data directory of %s to put back (none named *.pre-restore-*). '
                                   'Nothing was changed.' % self.request.pg_path)
            chosen = before_restores[-1]
        running = self.target.postgresql_running(self.request.pg_path)
        return dict(type='rollback', pg_path=self.request.pg_path, kept=chosen.as_dict(),
                    available=[copy.as_dict() for copy in kept], postgresql_running=running,
                    steps=(['stop'] if running else []) + ['put_back', 'start', 'check'],
                    found='PostgreSQL %s; %d kept data director%s' % (
                        'runs' if running else 'is stopped', len(kept), 'y' if len(kept) == 1 else 'ies'),
                    discards=None)

    def execute(self, plan):
        request, target = self.request, self.target
        with StanzaLock(self.stanza, 'rollback of %s' % request.pg_path, wait=request.lock_wait):
            self.marks = [('start', time.time())]
            replaced = None
            for step in plan['steps']:
                if step == 'stop':
                    target.stop_postgresql(request.pg_path, timeout=120)
                elif step == 'put_back':
                    kept = self.place.find_kept(plan['kept']['name'])
                    replaced = self.place.put_back(kept, stamp())
                elif step == 'start':
                    target.start_postgresql()
                    if not target.wait_until_ready(request.timeout):
                        raise ChronosError('PostgreSQL did not accept connections %d s after the rollback on %s.' % (
                            request.timeout, target.describe()), step=step)
                elif step == 'check':
                    plan['sanity'] = target.sql(request.sanity_query, database=request.sanity_database,
                                                attempt='run the sanity query')
                self.marks.append((step, time.time()))
        return dict(plan=plan, kept=replaced.as_dict() if replaced else None, sanity=plan.get('sanity'),
                    timings=Restore.timings(self))
