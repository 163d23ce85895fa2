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

Facts, not inference. A restore follows the timeline the cluster itself is on - the running server's, else its
pg_control's, else that of the data directory kept aside by an interrupted restore - checked against the
repository's history files: a point-in-time restore that was rolled back leaves its abandoned timeline there, and
PostgreSQL's default ('latest') would follow it. "Nothing to do" means the cluster runs this restore's result and its
own WAL holds no commit since the restore ended (pg_waldump, _wal.py). A restore point name or an xid is found in
the archived WAL before anything stops, and the backup chosen from before it. A `latest` restore of a running
cluster first proves that its WAL reaches the repository - a WAL switch archived, then after the stop every segment
archived - or refuses, saying what would be lost.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import os
import re
import time
from datetime import datetime, timezone

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _files
from ansible_collections.chronos.pgbackrest.plugins.module_utils._lock import StanzaLock
from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import PgBackRestError, parse_error, utc
from ansible_collections.chronos.pgbackrest.plugins.module_utils._postgres import (
    check_target_text, format_lsn, parse_control, parse_history, parse_lsn, parse_target_time, read_archive_queue,
    read_restored_state, segment_timeline, server_position, timeline_start)
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError
from ansible_collections.chronos.pgbackrest.plugins.module_utils._wal import WalScan, commit_time, committed_since, locate

RESTORE_TYPES = ('latest', 'time', 'set', 'immediate', 'xid', 'lsn', 'name', 'rollback', 'prune')
TARGET_SETTINGS = {'time': 'recovery_target_time', 'xid': 'recovery_target_xid', 'lsn': 'recovery_target_lsn',
                   'name': 'recovery_target_name'}
STEPS = ('stop', 'move_aside', 'restore', 'recover', 'check')
STEP_TEXT = {
    'archive': 'archive the WAL written so far (a WAL switch, archived before anything stops)',
    'stop': 'stop PostgreSQL',
    'move_aside': 'move the data directory aside (kept, never deleted)',
    'restore': 'restore the files with pgBackRest',
    'resume': 'resume the interrupted pgBackRest restore (--delta)',
    'recover': 'start PostgreSQL and wait for recovery',
    'check': 'run the sanity query',
    'put_back': 'put the kept data directory back (the current one is kept too)',
    'start': 'start PostgreSQL',
    'release': 'put back the restart policy an interrupted restore held off',
    'remove': 'delete the kept data directories named (for good)',
}
# On a restore, these codes mean something else than on other commands.
RESTORE_ADVICE = {
    38: 'PostgreSQL may still be running on the data directory: stop it. If it is not running, a stale '
        'postmaster.pid is left there: remove it.',
    40: 'The data directory is not empty: move it aside first, or restore with delta.',
}
# A WAL segment waiting to be archived, up to the one the archive step switched out.
READY_UP_TO = (r"SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name ~ '^[0-9A-F]{24}\.ready$' "
               r"AND name <= :'segment' || '.ready'")
NO_LIMIT = 10 * 365 * 86400
# Set only by tests: end the run right after this step, as an interruption would (CHRONOS_PGBACKREST_FAULT=after:stop).
FAULT_VARIABLE = 'CHRONOS_PGBACKREST_FAULT'


def stamp():
    return datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')


class Request(object):
    """What the operator asks for, checked before anything is read or touched."""

    def __init__(self, restore_type='latest', recovery_target=None, backup_set=None, target_action='promote',
                 timeline=None, pg_path=None, timeout=0, lock_wait=600, sanity_database='postgres',
                 sanity_query='SELECT count(*) FROM pg_database', accept_wal_loss=False, archive_wait=60):
        self.type = restore_type
        # The recovery target (a time, xid, lsn or restore point name); the target the restore runs on is a Target.
        self.recovery_target = recovery_target
        self.set = backup_set
        self.target_action = target_action
        self.timeline = timeline
        self.pg_path = pg_path
        # 0: no limit - nothing ends a long restore unless the operator set one.
        self.timeout = int(timeout) if timeout else NO_LIMIT
        self.lock_wait = lock_wait
        self.sanity_database = sanity_database
        self.sanity_query = sanity_query
        self.accept_wal_loss = accept_wal_loss
        self.archive_wait = archive_wait
        self.target_epoch = self.target_lsn = None
        self.validate()

    def validate(self):
        if self.type not in RESTORE_TYPES:
            raise ChronosError("Restore type '%s' is not one of %s. Nothing was changed." % (
                self.type, ', '.join(RESTORE_TYPES)))
        if self.type in TARGET_SETTINGS and not self.recovery_target:
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
                self.target_epoch = parse_target_time(self.recovery_target)
            elif self.type == 'lsn':
                self.target_lsn = parse_lsn(self.recovery_target)
            elif self.type in ('xid', 'name'):
                check_target_text(self.type, self.recovery_target)
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
    return parse_history(pgbackrest.run('repo-get', path, attempt='read the history of timeline %d' % timeline).stdout)


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


def line_segments(segments, line):
    """The archived segments on the timelines of the line, oldest first (locate() keeps only the records before the
    line left a timeline)."""
    return sorted(segment['name'] for segment in segments if line is None or segment['timeline'] in line)


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
    """What is in and around the data directory now, as the server, pg_control and the files there say."""
    running = target.postgresql_running(pg_path)
    guarded = place.guarded()
    state = dict(running=running, ready=False, in_recovery=None, paused=None, timeline=None, lsn=None, committed=None,
                 has_cluster=place.has_cluster() and not guarded, empty=place.is_empty(), guarded=guarded,
                 restoring=place.exists('backup.manifest'), recovering=place.exists('recovery.signal'),
                 restored=read_restored_state(lambda name: _read_local(place.local, name)), control=None,
                 kept=[kept.as_dict() for kept in place.kept()], queue=None)
    if state['has_cluster'] and not state['restoring']:
        try:
            state['control'] = parse_control(_read_local(place.local, 'global/pg_control'))
        except (IOError, OSError, ValueError):
            pass
    if running and _answers(target):
        state['ready'] = True
        in_recovery, paused = target.sql('SELECT pg_is_in_recovery(), pg_is_in_recovery() AND pg_is_wal_replay_paused()',
                                         attempt='ask PostgreSQL whether it recovers')[0]
        state['in_recovery'], state['paused'] = in_recovery == 't', paused == 't'
        position = server_position(target)
        state['timeline'], state['lsn'] = position['timeline'], position['lsn']
        if not state['in_recovery']:
            state['queue'] = read_archive_queue(target)
    return state


def _answers(target):
    """Whether PostgreSQL accepts connections; a container that is restarting or paused does not."""
    try:
        return target.pg_ready()
    except ChronosError:
        return False


def _read_local(directory, name):
    """A file the cluster's owner may have put there: not through a link, not a FIFO (either reads as unreadable)."""
    try:
        handle = _files.open_existing(os.path.join(directory, name))
    except _files.UntrustedPath as exc:
        raise OSError(errno.EPERM, str(exc))
    with os.fdopen(handle, 'rb') as stream:
        return stream.read()


def is_this_restore(restored, backup, request):
    """Whether what a past restore left (read_restored_state) is this request's restore: the same backup set and
    recovery target. (Not the timeline: the restore itself moved production to a new one.)"""
    if restored is None or restored['start_lsn'] != backup['lsn_start']:
        return False
    settings = restored['settings']
    if request.type == 'latest':
        return not any(key in settings for key in ['recovery_target'] + list(TARGET_SETTINGS.values()))
    wanted = ('recovery_target', 'immediate') if request.type in ('immediate', 'set') else (
        TARGET_SETTINGS[request.type], request.recovery_target)
    return settings.get(wanted[0]) == wanted[1] and settings.get('recovery_target_action', 'pause') == request.target_action


def committed_sentence(state):
    """What the server's own WAL says about commits since this restore ended."""
    if state['committed'] is None:
        return ('whether a transaction committed since cannot be told: the WAL since the restore ended is no longer in '
                'pg_wal')
    first = state['committed'][0]
    return '%d transaction%s committed since (the first, xid %d, at %s%s)' % (
        len(state['committed']), '' if len(state['committed']) == 1 else 's', first['xid'], format_lsn(first['lsn']),
        ', %s' % commit_time(first) if commit_time(first) else '')


def remaining_steps(state, this_restore, request):
    """(steps still to do, sentence saying what was found)."""
    if state['running']:
        if this_restore and state['recovering']:
            return ['recover', 'check'], 'PostgreSQL runs and is recovering this restore'
        if this_restore and state['ready'] and state['committed'] == [] and (
                state['paused'] if request.pause else state['in_recovery'] is False):
            return [], ('PostgreSQL runs the result of this restore (timeline %d), and its WAL holds no commit since the '
                        'restore ended' % state['timeline'])
        if this_restore and state['ready'] and state['committed'] == []:
            return list(STEPS), 'PostgreSQL runs a cluster restored from this backup, in another state than asked'
        if this_restore and state['ready']:
            return list(STEPS), 'PostgreSQL runs a cluster restored from this backup, but %s' % committed_sentence(state)
        return list(STEPS), 'PostgreSQL runs on the data directory'
    if state['empty'] or state['guarded']:
        return ['restore', 'recover', 'check'], ('PostgreSQL is stopped and the data directory is %s' % (
            'empty' if state['empty'] else 'emptied by a restore (guarded against a new cluster)'))
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
        state = inspect(self.target, self.place, request.pg_path)
        facts = []
        timeline, source = self.production_timeline(state, segments)
        if timeline is not None:
            facts.append('timeline %d: %s' % (timeline, source))
        line = self.timeline_line(stanza, timeline, histories, state) if timeline is not None else None
        on_the_line = [backup for backup in usable if line is None or on_line(backup, line)]
        window = dict(start=(on_the_line or usable)[0]['stop_time'], end=None, timeline=timeline)
        located = None
        if request.type in ('name', 'xid'):
            with WalScan(self.target, pgbackrest) as scan:
                located = locate(scan, request.type, request.recovery_target, line_segments(segments, line), on_the_line, line)
            request.target_lsn = located['lsn']
            facts.append('%s at %s in the archived WAL%s' % (
                "restore point '%s'" % request.recovery_target if request.type == 'name' else 'transaction %s, %s' % (
                    request.recovery_target, located['desc'].split(';')[0].split(' ')[0].lower() + 'ted'),
                format_lsn(located['lsn']), ' (%d restore points of that name: recovery stops at the first)' % len(
                    located['found']) if len(located['found']) > 1 else ''))
        backup = choose_backup(request, usable, line)
        if backup is None:
            raise ChronosError('Target %s is before the recoverable window on timeline %s, which starts when the oldest '
                               'backup on it stopped: %s. Nothing was changed.' % (
                                   request.recovery_target, timeline or 'latest', window['start']), window=window)
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
                                   'changed.' % (request.recovery_target, timeline, window['end']), window=window)

        this_restore = is_this_restore(state['restored'], backup, request)
        if this_restore and state['ready']:
            state['committed'] = [] if state['in_recovery'] else self.committed_since_restore(state)
            facts.append('the WAL since this restore ended: %s' % (
                'no commit' if state['committed'] == [] else committed_sentence(state)))
        steps, found = remaining_steps(state, this_restore, request)
        if 'stop' in steps and (request.type == 'latest' or (timeline or 1) > 1 and timeline not in histories):
            if request.accept_wal_loss:
                facts.append('WAL not yet archived is given up (accept_wal_loss)')
            else:
                steps.insert(0, 'archive')
        if state['queue'] and state['queue']['ready_segments']:
            facts.append('%d WAL segment%s wait%s in pg_wal to be archived, the oldest since %s' % (
                state['queue']['ready_segments'], '' if state['queue']['ready_segments'] == 1 else 's',
                's' if state['queue']['ready_segments'] == 1 else '', utc(state['queue']['oldest_ready'])))
        held = self.target.held_restart_policy()
        if held:
            steps.append('release')
            facts.append("the container's restart policy %s is held off by an interrupted restore" % held)
        options = self.restore_options(backup, timeline, resume='resume' in steps,
                                       guarded='move_aside' in steps or state['guarded'])
        if 'restore' in steps or 'resume' in steps:
            # The kept data stays where it is: the restored files need room of their own.
            needed = (backup['size'] or 0) * 1.05 - (0 if 'move_aside' in steps else self.place.usage())
            free = self.place.free()
            if free < needed:
                raise ChronosError('Not enough free space to restore beside the kept data directory: the backup holds '
                                   '%d MB, %d MB are free where %s lies. Free space, then run again. Nothing was changed.'
                                   % ((backup['size'] or 0) // 2 ** 20, free // 2 ** 20, request.pg_path))
        return dict(
            type=request.type, target=request.recovery_target, set=backup['label'], backup=backup, pg_path=request.pg_path,
            window=window, timeline=timeline, steps=steps, found=found, state=state, facts=facts,
            located=dict(lsn=format_lsn(located['lsn']), desc=located['desc']) if located else None,
            postgresql_running=state['running'], discards=self.discards(state, this_restore, steps),
            command=' '.join(pgbackrest.command('restore', *options)), options=options,
            new_timeline_note=None)

    def production_timeline(self, state, segments):
        """(the timeline a restore follows, where that was read): as asked; else the cluster's own - the running
        server's, its pg_control's, or that of the data directory an interrupted restore kept aside -; else, with no
        cluster to ask, the timeline the repository archived on last."""
        request = self.request
        if request.timeline is not None and str(request.timeline).isdigit():
            return int(request.timeline), 'as asked'
        if request.timeline in ('latest', 'current'):
            return None, None
        if state['ready'] and state['timeline']:
            return state['timeline'], "the running server's"
        if state['control']:
            return state['control']['timeline'], "pg_control's in %s (%s)" % (request.pg_path, state['control']['state'])
        for kept in reversed(self.place.kept()):
            try:
                control = parse_control(_read_local(kept.local, 'global/pg_control'))
            except (IOError, OSError, ValueError):
                continue
            return control['timeline'], "pg_control's in the data directory kept aside as %s" % kept.name
        timeline = followed_timeline(request, segments)
        return timeline, 'the one the repository archived on last (there is no cluster to ask)'

    def timeline_line(self, stanza, timeline, histories, state):
        """The followed timeline's ancestry, from the repository's history file, or - not archived yet - from the
        running server's pg_wal (the archive step stores it before anything stops)."""
        if timeline <= 1 or timeline in histories or not state['ready']:
            if timeline > 1 and timeline not in histories:
                raise ChronosError('Timeline %d, the one the cluster is on, has no history file in the repository: WAL '
                                   'archiving never stored it, and recovery cannot follow it. Check WAL archiving '
                                   '(pgbackrest_check), or name the timeline to follow (target_timeline). Nothing was '
                                   'changed.' % timeline)
            return timeline_line(self.pgbackrest, stanza, timeline)
        text = self.target.sql("SELECT pg_read_file('pg_wal/' || :'name')", variables={'name': '%08X.history' % timeline},
                               attempt='read the history of timeline %d' % timeline)[0][0]
        line = dict((parent, switch) for parent, switch in parse_history(text))
        line[timeline] = None
        return line

    def committed_since_restore(self, state):
        """The commits in the server's own WAL since this restore ended (where its timeline began), or None when that
        WAL is no longer there to read."""
        start = timeline_start(self.target, state['timeline'])
        if start is None:
            return None
        return committed_since(self.target, self.request.pg_path, state['timeline'], start, state['lsn'])

    def restore_options(self, backup, timeline, resume=False, guarded=False):
        request = self.request
        options = ['--pg1-path=%s' % self.place.restore_path(request.pg_path), '--set=%s' % backup['label']]
        if request.type == 'latest':
            options.append('--type=default')
        else:
            options.append('--type=%s' % ('immediate' if request.type == 'set' else request.type))
            if request.type in TARGET_SETTINGS:
                options.append('--target=%s' % request.recovery_target)
            options.append('--target-action=%s' % request.target_action)
        # pgBackRest takes --target-timeline only with these types (immediate and set stay on the backup's timeline).
        if request.type in ('latest', 'time', 'xid', 'lsn', 'name'):
            if timeline is not None:
                options.append('--target-timeline=%d' % timeline)
            elif request.timeline in ('latest', 'current'):
                options.append('--target-timeline=%s' % request.timeline)
        if self.place.linked():
            options.append('--link-all')
        # --delta: the data directory holds the guard that keeps an entrypoint from making a new cluster in it, or the
        # files of an interrupted restore.
        if resume or guarded:
            options.append('--delta')
        return options

    def discards(self, state, this_restore, steps):
        """What the restore would leave behind in the live cluster: a sentence, or None."""
        if 'move_aside' not in steps:
            return None
        parts = []
        if this_restore and state['committed'] and self.request.type != 'latest':
            parts.append('%s: they are not in the restored cluster' % committed_sentence(state))
        if self.request.type != 'latest':
            parts.append('changes after the target are not in the restored cluster')
        elif 'archive' not in steps and state['running']:
            queue = state['queue'] or {}
            parts.append('WAL not archived (%d segments waiting, and what is written until the stop) is not in the '
                         'restored cluster' % queue.get('ready_segments', 0))
        text = '; '.join(parts + ['the current data directory is kept, not deleted.'])
        return text[0].upper() + text[1:]

    def execute(self, plan):
        """Do the plan's steps, holding the stanza's lock; returns the result. A container's restart policy is held off
        from the stop until the restore is done (and put back by the same command after an interruption)."""
        request, target = self.request, self.target
        steps = plan['steps']
        with self.pgbackrest.lock('restore into %s' % request.pg_path, wait=request.lock_wait) as lock:
            self.marks = [('start', time.time())]
            kept = step = None
            try:
                for number, step in enumerate(steps, 1):
                    lock.note('step %d of %d, %s; started %d; backup size %d' % (
                        number, len(steps), STEP_TEXT[step], self.marks[0][1], plan['backup']['size'] or 0))
                    if step == 'archive':
                        if plan['state']['ready']:
                            self.archive_before_stop()
                    elif step == 'stop':
                        target.hold_restart_policy()
                        target.stop_postgresql(request.pg_path)
                        if 'archive' in steps:
                            self.archive_after_stop()
                    elif step == 'move_aside':
                        kept = self.place.move_aside(stamp())
                        self.place.guard(kept)
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
                    elif step == 'release':
                        target.release_restart_policy()
                    self.marks.append((step, time.time()))
                    _fault_after(step)
            except ChronosError as exc:
                exc.extra.setdefault('step', step)
                exc.extra['kept'] = (kept or (self.place.kept() or [None])[-1]).as_dict() if (
                    kept or self.place.kept()) else None
                exc.extra['plan'] = _public(plan)
                if target.held_restart_policy():
                    exc.msg += (" The container's restart policy stays off until the restore is done: the same command "
                                "puts it back.")
                raise
            target.release_restart_policy()
        return dict(plan=_public(plan), kept=kept.as_dict() if kept else None, timings=self.timings(),
                    sanity=plan.get('sanity'))

    def archive_before_stop(self):
        """Switch to a new WAL segment and wait until it and every segment before it is archived. Refuses, with
        PostgreSQL still running, when none gets archived for archive_wait seconds."""
        target = self.target
        segment = target.sql('SELECT pg_walfile_name(pg_switch_wal())', attempt='switch to a new WAL segment')[0][0]
        left, last_change = None, time.time()
        while True:
            count = int(target.sql(READY_UP_TO, variables={'segment': segment},
                                   attempt='count the WAL segments waiting to be archived')[0][0])
            if count == 0:
                return
            if count != left:
                left, last_change = count, time.time()
            elif time.time() - last_change >= self.request.archive_wait:
                queue = read_archive_queue(target)
                raise ChronosError(
                    'WAL archiving does not reach the repository: %d segment%s (%d MB) wait in pg_wal, the oldest since '
                    '%s, and none was archived in %d s. A latest restore now would lose every transaction in them. '
                    'PostgreSQL was not stopped; nothing was changed. Fix archiving (pgbackrest_check names the failing '
                    'part) and run again, or give that WAL up with accept_wal_loss (pgbackrest_restore_accept_wal_loss).'
                    % (queue['ready_segments'], '' if queue['ready_segments'] == 1 else 's',
                       queue['ready_bytes'] // 2 ** 20, utc(queue['oldest_ready']), self.request.archive_wait),
                    refused=True, queue=queue)
            time.sleep(1)

    def archive_after_stop(self):
        """PostgreSQL archives what it finished before it stops; push whatever it left waiting (the repository may
        have stopped answering meanwhile). When that fails, PostgreSQL is started again and nothing is moved."""
        target, pg_wal = self.target, '%s/pg_wal' % self.request.pg_path.rstrip('/')
        listed = target.run(['find', '%s/archive_status' % pg_wal, '-name', '*.ready'])
        waiting = sorted(line.rsplit('/', 1)[-1][:-len('.ready')] for line in listed.stdout.split() if line)
        for name in waiting:
            pushed = self.pgbackrest.execute('archive-push', '--no-archive-async', '%s/%s' % (pg_wal, name))
            if pushed.rc != 0:
                target.start_postgresql()
                target.wait_until_ready(120)
                raise PgBackRestError('archive %s, which PostgreSQL left unarchived when it stopped (%d waiting)' % (
                    name, len(waiting)), pushed, advice='PostgreSQL was started again; nothing was moved. Fix WAL '
                    'archiving and run again, or give that WAL up with accept_wal_loss.', refused=True)

    def timings(self):
        """Seconds each step took, in order, and the total (the RTO of the steps run)."""
        timings = [(step, round(at - self.marks[index][1], 1)) for index, (step, at) in enumerate(self.marks[1:])]
        return dict(timings, total=round(self.marks[-1][1] - self.marks[0][1], 1))


def progress(target, pgbackrest, pg_path):
    """How far a running restore got, as a sentence: its step (from the stanza lock it holds), and while pgBackRest
    restores, the bytes already in the data directory, read on this machine's disk: nothing runs where the restore
    runs (in container mode, the helper container doing the restore is never touched)."""
    holder = StanzaLock(pgbackrest.stanza, 'progress').holder()
    match = re.search(r'step (\d+) of (\d+), ([^;]+); started (\d+); backup size (\d+)', holder)
    if not match:
        return 'No restore holds the stanza lock now%s.' % (' (%s)' % holder if holder else '')
    number, count, text, started, total = match.groups()
    done = target.data_place(pg_path).usage() if 'pgBackRest' in text else None
    elapsed = int(time.time() - int(started))
    figures = ''
    if done is not None and int(total):
        figures = ': %d of %d MiB (%d %%)' % (done // 2 ** 20, int(total) // 2 ** 20, min(100, 100 * done // int(total)))
    return 'Step %s of %s, %s%s; %d min %02d s since the restore started.' % (
        number, count, text, figures, elapsed // 60, elapsed % 60)


def describe_kept(kept):
    """'name (12 MiB, 3 h old)' for a kept copy (Kept.as_dict)."""
    age = kept.get('age_seconds')
    when = '%d min' % (age // 60) if age is not None and age < 7200 else '%d h' % (age // 3600) if age is not None else '?'
    return '%s (%d MiB, %s old)' % (kept['name'], (kept.get('bytes') or 0) // 2 ** 20, when)


def plan_lines(plan):
    """The plan, as the play prints it."""
    if plan['type'] == 'rollback':
        lines = ['Found: %s.' % plan['found'], 'Put back %s as %s.' % (plan['kept']['name'], plan['pg_path'])]
    elif plan['type'] == 'prune':
        lines = ['Found: %s.' % plan['found']]
    else:
        lines = ['Found: %s.' % plan['found']]
        if plan.get('facts'):
            lines.append('Decided from: %s.' % '; '.join(plan['facts']))
        lines.append('Restore %s%s from backup set %s (%s, stopped %s) into %s, following timeline %s, recoverable from '
                     '%s to %s.' % (plan['type'], ' to %s' % plan['target'] if plan['target'] else '', plan['set'],
                                    plan['backup']['type'], plan['backup']['stop_time'], plan['pg_path'],
                                    plan['timeline'] or 'latest', plan['window']['start'],
                                    plan['window']['end'] or 'the newest archived WAL'))
    lines.append('Steps: %s.' % ', '.join(plan['steps']) if plan['steps'] else 'Nothing to do: %s.' % plan['found'])
    if plan.get('discards'):
        lines.append(plan['discards'])
    kept = (plan.get('state') or {}).get('kept') or plan.get('available') or []
    if kept:
        lines.append('Kept data directories: %s.' % ', '.join(describe_kept(copy) for copy in kept))
    if plan.get('command'):
        lines.append('Command: %s' % plan['command'])
    return lines


def result_lines(result):
    """What a restore or rollback did, as the play prints it."""
    plan, lines = result['plan'], []
    if plan['type'] == 'prune':
        return ['Deleted %s.' % ', '.join(result['removed'])]
    if plan['type'] == 'rollback':
        lines.append('Put back %s into %s.' % (plan['kept']['name'], plan['pg_path']))
    else:
        lines.append('Restored backup set %s (%s%s) into %s.' % (
            plan['set'], plan['type'], ' to %s' % plan['target'] if plan['target'] else '', plan['pg_path']))
    timings = result['timings']
    lines.append('Seconds per step: %s; total (RTO) %s s.' % (
        ', '.join('%s %s' % (step, timings[step]) for step in plan['steps'] if step in timings), timings['total']))
    if result.get('sanity') is not None:
        lines.append('Sanity query returned: %s' % ' ; '.join(','.join(row) for row in result['sanity']))
    if result.get('kept'):
        lines.append('The old data directory is kept as %s; put it back with playbooks/rollback.yml, or remove it with '
                     'playbooks/prune.yml once you no longer need it.' % result['kept']['name'])
    after = result.get('timeline_after')
    if after and not after['has_backup']:
        lines.append('PostgreSQL now writes timeline %d, which has no backup yet: take a full one (playbooks/backup.yml '
                     '-e pgbackrest_backup_type=full), or let the restore do it (pgbackrest_restore_backup_after).'
                     % after['timeline'])
    return lines


def failure_message(exc):
    """A failed restore's message, completed with where it stopped, what it kept and what to run."""
    kept = exc.extra.get('kept')
    text = 'The restore failed%s: %s' % (' at step %s' % exc.extra['step'] if exc.extra.get('step') else '', exc.msg)
    if kept:
        text += (' The old data directory is kept as %s. To put it back: ansible-playbook playbooks/rollback.yml -e '
                 'pgbackrest_restore_kept=%s -e pgbackrest_restore_confirm=true.' % (kept['name'], kept['name']))
    if not exc.extra.get('refused'):
        text += ' Running the same command again finishes the restore from where it stopped.'
    return text


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

    def __init__(self, target, pgbackrest, request, kept_name=None):
        self.target = target
        self.pgbackrest = pgbackrest
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
        with self.pgbackrest.lock('rollback of %s' % request.pg_path, wait=request.lock_wait):
            self.marks = [('start', time.time())]
            replaced = None
            for step in plan['steps']:
                if step == 'stop':
                    target.hold_restart_policy()
                    target.stop_postgresql(request.pg_path)
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
            target.release_restart_policy()
        return dict(plan=plan, kept=replaced.as_dict() if replaced else None, sanity=plan.get('sanity'),
                    timings=Restore.timings(self))


class Prune(object):
    """Delete kept data directories (or volumes) left by restores and rollbacks: only those the operator names, each
    one that kept() lists. Every kept copy costs as much disk as the cluster did."""

    def __init__(self, target, pgbackrest, request, names):
        self.target = target
        self.pgbackrest = pgbackrest
        self.request = request
        self.names = [name for name in names or [] if name]
        self.place = target.data_place(request.pg_path)
        self.marks = []

    def plan(self):
        kept = self.place.kept()
        listed = ', '.join(describe_kept(copy.as_dict()) for copy in kept) or 'none'
        if not self.names:
            return dict(type='prune', pg_path=self.request.pg_path, steps=[], remove=[], postgresql_running=None,
                        available=[copy.as_dict() for copy in kept], discards=None,
                        found='%d kept data director%s; name those to delete with pgbackrest_restore_prune' % (
                            len(kept), 'y' if len(kept) == 1 else 'ies'))
        unknown = [name for name in self.names if not any(name in (copy.name, copy.local, copy.stamp) for copy in kept)]
        if unknown:
            raise ChronosError('No kept data directory %s. Kept: %s. Nothing was changed.' % (', '.join(unknown), listed))
        chosen = [self.place.find_kept(name).as_dict() for name in self.names]
        return dict(type='prune', pg_path=self.request.pg_path, steps=['remove'], remove=chosen,
                    available=[copy.as_dict() for copy in kept], postgresql_running=None,
                    found='%d kept data director%s' % (len(kept), 'y' if len(kept) == 1 else 'ies'),
                    discards='Deleted for good: %s.' % ', '.join(describe_kept(copy) for copy in chosen))

    def execute(self, plan):
        with self.pgbackrest.lock('prune of %s' % self.request.pg_path, wait=self.request.lock_wait):
            self.marks = [('start', time.time())]
            for copy in plan['remove']:
                self.place.remove_kept(self.place.find_kept(copy['name']))
            self.marks.append(('remove', time.time()))
        return dict(plan=plan, removed=[copy['name'] for copy in plan['remove']], timings=Restore.timings(self))
