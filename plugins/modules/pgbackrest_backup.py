#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pgbackrest_backup
short_description: Take a pgBackRest backup, or reuse a fresh enough one
version_added: 0.1.0
description:
  - Runs C(pgbackrest backup) with the requested I(type) and returns the backup it made, read back from
    C(pgbackrest info).
  - With I(max_age), first looks for a completed backup of that type, or of a type that covers it (a full
    covers a diff, a full or a diff covers an incr), that stopped within I(max_age); when there is one it
    returns that backup and does not back up.
  - pgBackRest takes a full backup when a diff or incr is asked for and the stanza has no full backup yet.
  - pgBackRest expires old backups after each backup, following the repository's retention options.
  - Long backups can run under Ansible C(async).
extends_documentation_fragment:
  - chronos.pgbackrest.pgbackrest
  - chronos.pgbackrest.attributes
options:
  type:
    description: Backup type (C(full), C(diff) or C(incr)).
    type: str
    choices: [full, diff, incr]
    default: diff
  max_age:
    description:
      - Reuse a backup that stopped within this age instead of taking one. A number of seconds, or a number
        followed by C(s), C(m), C(h), C(d) or C(w), for example C(24h).
      - When omitted, the module always backs up.
    type: str
  wait_for_lock:
    description:
      - When another backup or expire holds the stanza's lock, wait for it to finish (up to I(lock_timeout))
        instead of failing.
    type: bool
    default: false
  lock_timeout:
    description:
      - With I(wait_for_lock), how long to wait for the lock, in the form of I(max_age).
    type: str
    default: 1h
  metrics_dir:
    description:
      - Update the metrics in this directory on the managed host afterwards (node_exporter's textfile directory), as a
        scheduled run does - the last run of this type and the repository's status - so an alert about a failed
        scheduled backup resolves once a backup by hand succeeds.
    type: path
  progress:
    description:
      - Only report how far a backup that runs now got (for example one started with C(async)), in C(progress), from
        pgBackRest's own figures - C(info) on 2.48 and later, else the percentages its log file records at detail level
        for backups this module starts.
    type: bool
    default: false
  log_path:
    description:
      - pgBackRest's log directory on the target, where I(progress) reads the backup's log.
    type: path
    default: /var/log/pgbackrest
  if_none:
    description:
      - Back up only when the stanza has no backup at all; otherwise return the newest backup and change nothing.
        The role's first backup uses it.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reads the repository and returns the command that would run in I(executed_commands).
  idempotent:
    support: partial
    description: Idempotent only with I(max_age); without it every run takes a backup.
author:
  - Chronos platform team (@chronos-platform)
'''

EXAMPLES = r'''
- name: Take a full backup
  chronos.pgbackrest.pgbackrest_backup:
    stanza: chronos-v2
    type: full
  # As root: the stanza's lock is root's alone; pgBackRest itself runs as PostgreSQL's user.
  become: true

- name: Take a differential backup unless one (or a full) finished in the last 24 hours
  chronos.pgbackrest.pgbackrest_backup:
    stanza: chronos-v2
    type: diff
    max_age: 24h
  become: true
  register: result
'''

RETURN = r'''
backup:
  description: The backup taken, or the fresh one reused. Same fields as the backups of
    M(chronos.pgbackrest.pgbackrest_info), plus C(duration) in seconds. Null in check mode when a backup would run.
  returned: success
  type: dict
  sample:
    label: 20261124-090723F_20261124-090742D
    type: diff
    prior: 20261124-090723F
    start_time: "2026-11-24 09:07:42+00"
    stop_time: "2026-11-24 09:07:51+00"
    duration: 9
    size: 23243118
    repo_size: 2839952
    wal_start: "000000010000000000000005"
    wal_stop: "000000010000000000000005"
progress:
  description: With I(progress), how far the running backup got, as a sentence.
  returned: when progress is set
  type: str
summary:
  description: The backup in one sentence.
  returned: success
  type: str
reused:
  description: Whether an existing backup within I(max_age) was returned instead of taking one.
  returned: success
  type: bool
put_back: {type: list, elements: str, returned: when something was put back, description: "What the collection placed on the
  target and found missing or changed there (a container recreated from its image), put back first; C(changed)."}
executed_commands: {type: list, elements: str, returned: always, description: "The pgbackrest commands run, or in check mode the ones that would run."}
'''

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _metrics
from ansible_collections.chronos.pgbackrest.plugins.module_utils._backup import (
    backup_options, backup_progress, summary, take_backup, with_duration)
from ansible_collections.chronos.pgbackrest.plugins.module_utils._module import ModuleRun
from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import (
    BACKUP_COVERS, PgBackRestError, newest_backup, now, parse_duration)
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError


def main():
    run = ModuleRun(dict(
        type=dict(type='str', choices=['full', 'diff', 'incr'], default='diff'),
        max_age=dict(type='str'),
        if_none=dict(type='bool', default=False),
        metrics_dir=dict(type='path'),
        progress=dict(type='bool', default=False),
        log_path=dict(type='path', default='/var/log/pgbackrest'),
        wait_for_lock=dict(type='bool', default=False),
        lock_timeout=dict(type='str', default='1h'),
    ), supports_check_mode=True, puts_back=True)
    with run:
        params, pgbackrest = run.params, run.pgbackrest
        backup_type = params['type']
        try:
            max_age = parse_duration(params['max_age']) if params['max_age'] is not None else None
            lock_timeout = parse_duration(params['lock_timeout'])
        except ValueError as exc:
            raise ChronosError('Invalid duration: %s. Nothing was run.' % exc)

        if params['progress']:
            run.exit(changed=False, progress=backup_progress(run.target, pgbackrest, params['log_path']))
        if params['metrics_dir']:
            _metrics.require_client()
        stanza = pgbackrest.usable_stanza('back up')
        fresh = newest_backup(stanza) if params['if_none'] else None
        if max_age is not None:
            fresh = newest_backup(stanza, BACKUP_COVERS[backup_type], newer_than=now() - max_age)
        if fresh:
            fresh = with_duration(fresh)
            run.exit(changed=False, reused=True, backup=fresh, summary=summary(fresh, True))

        if run.check_mode:
            pgbackrest.plan('backup', *backup_options(backup_type))
            run.exit(changed=True, reused=False, backup=None)

        outcome = take_backup(run.target, pgbackrest, backup_type, 'pgbackrest_backup', params['metrics_dir'],
                              wait=lock_timeout if params['wait_for_lock'] else 0)
        if outcome.done.rc != 0:
            raise PgBackRestError('take a %s backup of stanza %s' % (backup_type, pgbackrest.stanza), outcome.done)
        run.exit(changed=True, reused=False, backup=outcome.backup, summary=summary(outcome.backup, False))


if __name__ == '__main__':
    main()
