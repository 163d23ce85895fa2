#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
module: pgbackrest_restore
short_description: Restore a PostgreSQL cluster from pgBackRest, or put a kept data directory back
version_added: 0.1.0
description:
  - Decides from real state what a restore still has to do, then does it. It reads the repository (backups,
    timelines, archived WAL) and the data directory (whether PostgreSQL runs, what a past restore left there), and
    plans the remaining steps - stop PostgreSQL, move the data directory aside, restore with pgBackRest, start
    PostgreSQL and wait for recovery, run a sanity query.
  - Nothing is deleted. The old data directory is renamed to C(<pg_path>.pre-restore-<UTC time>) (in container
    mode, when PGDATA is the root of its volume, its files move into a new volume C(<volume>-pre-restore-<UTC time>)).
  - Run again after an interruption at any step, the same request finishes the restore. It reports no change only
    when PostgreSQL runs the result of this restore and nothing was written since it started.
  - Follows the timeline production archived last (pgBackRest's C(--target-timeline)), and computes the
    recoverable window on that timeline, so that a rolled-back point-in-time restore leaves no trap.
  - Refuses, with one message and no change, a malformed target (an C(xid) or C(name) target with a quote,
    backslash or line break, a time without a time zone), a target outside the recoverable window, a set that does
    not exist, a data directory that cannot be moved aside, and too little free space.
  - I(type=rollback) puts a kept data directory back (by default the newest C(*.pre-restore-*)), keeping the current
    one as C(*.rolled-back-<UTC time>).
  - Holds the stanza's lock on the managed host while it works, so scheduled backups and restore drills wait;
    waits up to I(lock_wait) for one that runs.
  - In container mode the container is stopped, pgBackRest restores and PostgreSQL recovers in a helper container
    from the same image with the same volumes, then the container is started on the recovered cluster. A recovery
    that fails never runs as the container's main process, so no restart policy can make it loop.
extends_documentation_fragment:
  - chronos.pgbackrest.pgbackrest
  - chronos.pgbackrest.attributes
options:
  type:
    description:
      - C(latest) replays archived WAL to its end. C(time), C(xid), C(lsn) and C(name) stop at I(target).
        C(immediate) stops as soon as the backup is consistent. C(set) restores the backup I(set) to its
        consistent point. C(rollback) puts a kept data directory back. C(prune) deletes the kept data directories
        I(prune) names.
      - For C(name) and C(xid), the target is found in the archived WAL before anything stops, and the backup is
        chosen from before it; a target the archived WAL does not hold is refused.
    type: str
    choices: [latest, time, set, immediate, xid, lsn, name, rollback, prune]
    default: latest
  target:
    description:
      - Recovery target for I(type=time) (with a time zone, for example C(2026-11-24 08:22:18+00); seconds may be
        left out), C(xid), C(lsn) or C(name).
    type: str
  set:
    description:
      - Label of the backup set to restore, for example C(20261124-082154F). Required with I(type=set); with other
        types it picks the base backup instead of letting the module choose the newest suitable one.
    type: str
  target_action:
    description:
      - What PostgreSQL does when it reaches the target.
    type: str
    choices: [promote, pause]
    default: promote
  target_timeline:
    description:
      - The timeline recovery follows. By default the one production archived last. A number, C(latest) (the newest
        timeline in the repository, PostgreSQL's default) or C(current) (the backup's own).
    type: str
  prune:
    description:
      - With I(type=prune), the kept data directories (or volumes) to delete for good, by name or stamp, each one a
        restore or rollback kept. The plan lists every kept one with its size and age.
    type: list
    elements: str
    default: []
  kept:
    description:
      - With I(type=rollback), the kept data directory to put back (its name, path or UTC time). By default the
        newest C(*.pre-restore-*).
    type: str
  pg_path:
    description:
      - Data directory to restore into. In container mode, defaults to the container's C(PGDATA).
    type: path
  timeout:
    description:
      - Seconds to wait for recovery to reach its target, and for PostgreSQL to accept connections; C(0) for no limit
        (a restore of a large cluster from a distant repository takes what it takes).
    type: int
    default: 0
  accept_wal_loss:
    description:
      - For a C(latest) restore of a running cluster, give up the WAL that is not in the repository yet instead of
        refusing. Without it the restore first switches WAL and waits until it is archived, then after the stop
        archives whatever PostgreSQL left, and refuses - PostgreSQL left running, or started again - when archiving
        does not reach the repository, saying how much WAL waits.
    type: bool
    default: false
  archive_wait:
    description:
      - Seconds without any WAL segment archived after which that check gives up and refuses.
    type: int
    default: 60
  lock_wait:
    description:
      - Seconds to wait for a scheduled backup or drill that holds the stanza's lock before refusing.
    type: int
    default: 600
  sanity_database:
    description:
      - Database the sanity query runs in.
    type: str
    default: postgres
  sanity_query:
    description:
      - Query run once PostgreSQL is back; its rows are returned.
    type: str
    default: SELECT count(*) FROM pg_database
  progress:
    description:
      - Only report how far a restore that runs now got (for example one started with C(async)), in C(progress).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Validates the request, reads the real state and returns the plan with its remaining steps.
  idempotent:
    support: full
    description: A restore whose result runs untouched is not run again.
author:
  - Chronos platform team (@chronos-platform)
"""

EXAMPLES = r"""
- name: Show what a point-in-time restore would do
  chronos.pgbackrest.pgbackrest_restore:
    stanza: chronos-v2
    pg_path: /var/lib/postgresql/16/main
    type: time
    target: "2026-11-24 08:22:18+00"
  check_mode: true
  register: plan

- name: Restore the latest state of the container's cluster
  chronos.pgbackrest.pgbackrest_restore:
    stanza: chronos-v2
    container: chronos-db

- name: Put back the data directory the last restore kept
  chronos.pgbackrest.pgbackrest_restore:
    stanza: chronos-v2
    container: chronos-db
    type: rollback
"""

RETURN = r"""
plan:
  description: What the restore does (or did).
  returned: success
  type: dict
  contains:
    type:
      description: Restore type.
      type: str
    set:
      description: Label of the backup set restored.
      type: str
    backup:
      description: The backup set, as M(chronos.pgbackrest.pgbackrest_info) returns backups.
      type: dict
    timeline:
      description: The timeline recovery follows (null when PostgreSQL chooses).
      type: int
    window:
      description: The recoverable window on that timeline, C(start) (the oldest backup's stop time) and C(end)
        (when the newest archived WAL segment was stored), UTC.
      type: dict
    steps:
      description: The steps still to do, in order (C(stop), C(move_aside), C(restore) or C(resume), C(recover),
        C(check); for a rollback C(stop), C(put_back), C(start), C(check)). Empty when nothing is left to do.
      type: list
      elements: str
    found:
      description: What the module found in the data directory, as a sentence.
      type: str
    facts:
      description: The facts the plan was decided from, as sentences - the timeline and where it was read (the
        running server, pg_control), where a name or xid target lies in the archived WAL, the commits in the cluster's
        own WAL since a past restore ended, the WAL waiting to be archived.
      type: list
      elements: str
    located:
      description: For a name or xid target, where it lies in the archived WAL (C(lsn), C(desc)), or null.
      type: dict
    discards:
      description: What the restored cluster will not have, as a sentence, or null.
      type: str
    command:
      description: The pgbackrest restore command.
      type: str
kept:
  description: The data directory moved aside by this run (C(name), C(path), C(stamp)), or null.
  returned: success
  type: dict
timings:
  description: Seconds each step took, and C(total).
  returned: success
  type: dict
sanity:
  description: Rows of the sanity query.
  returned: success
  type: list
lines:
  description: What the play prints - the plan, or what the restore, rollback or prune did.
  returned: success
  type: list
  elements: str
removed:
  description: With I(type=prune), the kept data directories deleted.
  returned: with type prune
  type: list
  elements: str
progress:
  description: With I(progress), how far the running restore got, as a sentence.
  returned: when progress is set
  type: str
timeline_after:
  description: The timeline PostgreSQL is on after the restore, and whether the repository holds a backup of it
    (C(has_backup)); a point-in-time restore starts a timeline with no backup yet.
  returned: success
  type: dict
put_back: {type: list, elements: str, returned: when something was put back, description: "What the collection placed on the
  target and found missing or changed there (a container recreated from its image), put back first; C(changed)."}
executed_commands: {type: list, elements: str, returned: always, description: "The commands run, or in check mode the ones that would run."}
"""

from ansible_collections.chronos.pgbackrest.plugins.module_utils._module import ModuleRun, resolve_pg_path
from ansible_collections.chronos.pgbackrest.plugins.module_utils._restore import (
    RESTORE_TYPES, Prune, Request, Restore, Rollback, backup_timeline, failure_message, plan_lines, progress,
    result_lines)
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError


def main():
    run = ModuleRun(dict(
        type=dict(type='str', choices=list(RESTORE_TYPES), default='latest'),
        target=dict(type='str'),
        set=dict(type='str'),
        target_action=dict(type='str', choices=['promote', 'pause'], default='promote'),
        target_timeline=dict(type='str'),
        kept=dict(type='str'),
        prune=dict(type='list', elements='str', default=[]),
        pg_path=dict(type='path'),
        timeout=dict(type='int', default=0),
        accept_wal_loss=dict(type='bool', default=False),
        archive_wait=dict(type='int', default=60),
        lock_wait=dict(type='int', default=600),
        sanity_database=dict(type='str', default='postgres'),
        sanity_query=dict(type='str', default='SELECT count(*) FROM pg_database'),
        progress=dict(type='bool', default=False),
    ), supports_check_mode=True, puts_back=True)
    with run:
        params, target = run.params, run.target
        pg_path = resolve_pg_path(params, run.target)
        if params['progress']:
            run.exit(changed=False, progress=progress(target, run.pgbackrest, pg_path))
        request = Request(params['type'] if params['type'] not in ('rollback', 'prune') else 'latest', params['target'],
                          params['set'], params['target_action'], params['target_timeline'], pg_path,
                          params['timeout'], params['lock_wait'], params['sanity_database'], params['sanity_query'],
                          params['accept_wal_loss'], params['archive_wait'])
        if params['type'] == 'rollback':
            procedure = Rollback(target, run.pgbackrest, request, params['kept'])
        elif params['type'] == 'prune':
            procedure = Prune(target, run.pgbackrest, request, params['prune'])
        else:
            procedure = Restore(target, run.pgbackrest, request)
        plan = procedure.plan()
        if run.check_mode and ('restore' in plan['steps'] or 'resume' in plan['steps']):
            run.pgbackrest.plan('restore', *plan['options'])
        if not plan['steps'] or run.check_mode:
            run.exit(changed=bool(plan['steps']), plan=_without_options(plan), lines=plan_lines(plan))
        try:
            result = procedure.execute(plan)
        except ChronosError as exc:
            exc.msg = failure_message(exc)
            raise
        if params['type'] not in ('rollback', 'prune') and not request.pause:
            result['timeline_after'] = timeline_after(run, plan)
        run.exit(changed=True, lines=result_lines(result), **result)


def timeline_after(run, plan):
    # The current WAL file's name starts with the timeline PostgreSQL writes on (pg_control's may lag until the
    # first checkpoint after promotion).
    timeline = int(run.target.sql('SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)',
                                  attempt='read the timeline after the restore')[0][0], 16)
    backups = run.pgbackrest.stanza_info()['backups']
    return dict(timeline=timeline, has_backup=any(backup_timeline(backup) == timeline for backup in backups))


def _without_options(plan):
    return dict((key, value) for key, value in plan.items() if key != 'options')


if __name__ == '__main__':
    main()
