#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pgbackrest_restore
short_description: Restore a PostgreSQL cluster from pgBackRest, to the latest state, a point in time or a backup set
version_added: 0.1.0
description:
  - Checks the request against C(pgbackrest info) before touching anything, chooses the backup set, and runs
    C(pgbackrest restore) into I(pg_path).
  - Refuses, with one message and no change, a malformed time, a time outside the recoverable window (from the
    oldest backup's stop time to the newest archived WAL segment), a set that does not exist, a running
    PostgreSQL, and a non-empty I(pg_path) without I(delta).
  - When I(pg_path) already holds a pgBackRest restore of the same backup set with the same recovery target,
    reports no change and touches nothing.
  - Does not move the old data directory aside, stop or start PostgreSQL; C(playbooks/restore.yml) does that
    around this module.
extends_documentation_fragment:
  - chronos.pgbackrest.pgbackrest
options:
  type:
    description:
      - C(latest) replays archived WAL to its end. C(time), C(xid), C(lsn) and C(name) stop at I(target).
        C(immediate) stops as soon as the backup is consistent. C(set) restores the backup I(set) to its
        consistent point (C(immediate) with that set).
    type: str
    choices: [latest, time, set, immediate, xid, lsn, name]
    default: latest
  target:
    description:
      - Recovery target for I(type=time) (with a time zone, for example C(2026-11-24 08:22:18+00)), C(xid), C(lsn)
        or C(name).
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
    choices: [promote, pause, shutdown]
    default: promote
  delta:
    description:
      - Restore over the files in I(pg_path), replacing only what differs. Without it I(pg_path) must be empty.
    type: bool
    default: false
  pg_path:
    description:
      - Data directory to restore into.
    type: path
    required: true
attributes:
  check_mode:
    support: full
    description: Validates the request and returns the plan, including the command, without restoring.
  diff_mode:
    support: none
    description: Nothing to show as a diff.
  idempotent:
    support: full
    description: A restore that I(pg_path) already reflects is not run again.
author:
  - Chronos platform team (@chronos-platform)
'''

EXAMPLES = r'''
- name: Show what a point-in-time restore would do
  chronos.pgbackrest.pgbackrest_restore:
    stanza: chronos-v2
    pg_path: /var/lib/postgresql/16/main
    type: time
    target: "2026-11-24 08:22:18+00"
  become: true
  become_user: postgres
  check_mode: true
  register: plan

- name: Restore a named backup set into an empty data directory
  chronos.pgbackrest.pgbackrest_restore:
    stanza: chronos-v2
    pg_path: /var/lib/postgresql/16/main
    type: set
    set: 20261124-082154F
  become: true
  become_user: postgres
'''

RETURN = r'''
plan:
  description: What the restore does (or did).
  returned: success
  type: dict
  contains:
    type:
      description: Restore type.
      type: str
    target:
      description: Recovery target, or null.
      type: str
    set:
      description: Label of the backup set restored.
      type: str
    backup:
      description: The backup set, as M(chronos.pgbackrest.pgbackrest_info) returns backups.
      type: dict
    pg_path:
      description: Data directory restored into.
      type: str
    window:
      description: The recoverable window, C(start) (the oldest backup's stop time) and C(end) (when the newest
        archived WAL segment was stored), UTC.
      type: dict
    postgresql_running:
      description: Whether PostgreSQL was running on I(pg_path) when the plan was made.
      type: bool
    command:
      description: The pgbackrest command.
      type: str
executed_commands:
  description: The pgbackrest commands run, or in check mode the ones that would run.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import (
    PgBackRest, newest_backup, newest_wal_segment_path, parse_error, parse_lsn, parse_repo_ls, parse_target_time,
    pgbackrest_argument_spec, read_restored_state, stanza_problem, utc)

# On a restore, these codes mean something else than on other commands.
RESTORE_ADVICE = {
    38: 'PostgreSQL may still be running on the data directory: stop it. If it is not running, a stale '
        'postmaster.pid is left there: remove it.',
    40: 'The data directory is not empty: move it aside first, or restore with delta.',
}

TARGET_SETTINGS = {'time': 'recovery_target_time', 'xid': 'recovery_target_xid', 'lsn': 'recovery_target_lsn',
                   'name': 'recovery_target_name'}


def refuse(module, pgbackrest, message, **extra):
    module.fail_json(msg='%s Nothing was changed.' % message, executed_commands=pgbackrest.executed_commands, **extra)


def newest_wal_time(pgbackrest, stanza):
    """When the newest archived WAL segment was stored in the repository (epoch seconds), or None."""
    path, segment = newest_wal_segment_path(stanza)
    if path is None:
        return None
    stdout, dummy = pgbackrest.run('repo-ls', '--output=json', path, attempt='list the newest archived WAL')
    times = [entry.get('time') for name, entry in parse_repo_ls(stdout).items() if name.startswith(segment)]
    return max(times) if times else None


def choose_backup(module, pgbackrest, stanza, target_epoch, target_lsn, label):
    usable = [backup for backup in stanza['backups'] if not backup['error']]
    if label:
        chosen = [backup for backup in usable if backup['label'] == label]
        if not chosen:
            refuse(module, pgbackrest, "Backup set '%s' is not in stanza %s. Sets: %s." % (
                label, stanza['name'], ', '.join(backup['label'] for backup in usable) or 'none'))
        if target_epoch is not None and chosen[0]['stop'] > target_epoch:
            refuse(module, pgbackrest, "Backup set '%s' stopped at %s, after the target." % (label, chosen[0]['stop_time']))
        return chosen[0]
    if target_epoch is not None:
        before = [backup for backup in usable if backup['stop'] <= target_epoch]
        return before[-1] if before else None
    if target_lsn is not None:
        before = [backup for backup in usable if backup['lsn_stop'] and parse_lsn(backup['lsn_stop']) <= target_lsn]
        return before[-1] if before else None
    return newest_backup(stanza)


def reflects(pgbackrest, pg_path, backup, restore_type, target, target_action):
    """Whether pg_path already holds a pgBackRest restore of backup with this recovery target."""
    restored = read_restored_state(pg_path, pgbackrest.read_file)
    if restored is None or restored['start_lsn'] != backup['lsn_start']:
        return False
    settings = restored['settings']
    if restore_type == 'latest':
        return not any(key in settings for key in ['recovery_target'] + list(TARGET_SETTINGS.values()))
    if restore_type in ('immediate', 'set'):
        wanted = ('recovery_target', 'immediate')
    else:
        wanted = (TARGET_SETTINGS[restore_type], target)
    return settings.get(wanted[0]) == wanted[1] and settings.get('recovery_target_action', 'pause') == target_action


def main():
    argument_spec = pgbackrest_argument_spec()
    argument_spec.update(
        type=dict(type='str', choices=['latest', 'time', 'set', 'immediate', 'xid', 'lsn', 'name'], default='latest'),
        target=dict(type='str'),
        set=dict(type='str'),
        target_action=dict(type='str', choices=['promote', 'pause', 'shutdown'], default='promote'),
        delta=dict(type='bool', default=False),
        pg_path=dict(type='path', required=True),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[('type', 'time', ['target']), ('type', 'xid', ['target']), ('type', 'lsn', ['target']),
                     ('type', 'name', ['target']), ('type', 'set', ['set'])],
        supports_check_mode=True,
    )
    params = module.params
    restore_type, target, pg_path = params['type'], params['target'], params['pg_path']
    # In container mode PostgreSQL is stopped by stopping its container: pgbackrest then runs in a one-off
    # container from the same image, with the same volumes.
    pgbackrest = PgBackRest(module, one_off=True)

    target_epoch = target_lsn = None
    try:
        if restore_type == 'time':
            target_epoch = parse_target_time(target)
        elif restore_type == 'lsn':
            target_lsn = parse_lsn(target)
    except ValueError as exc:
        refuse(module, pgbackrest, 'Malformed target: %s.' % exc)

    stanza = pgbackrest.stanza_info()
    problem = stanza_problem(stanza)
    if problem:
        sentence, part, advice = problem
        refuse(module, pgbackrest, 'Cannot restore: %s. %s' % (sentence, advice), failed_part=part)

    usable = [backup for backup in stanza['backups'] if not backup['error']]
    if not usable:
        refuse(module, pgbackrest, 'Stanza %s has no backup to restore.' % stanza['name'])
    window = dict(start=usable[0]['stop_time'], end=None)
    backup = choose_backup(module, pgbackrest, stanza, target_epoch, target_lsn, params['set'])
    if backup is None:
        refuse(module, pgbackrest, 'Target %s is before the recoverable window, which starts when the oldest '
                                   'backup stopped: %s (LSN %s).' % (target, window['start'], usable[0]['lsn_stop']),
               window=window)
    if restore_type == 'time':
        wal_time = newest_wal_time(pgbackrest, stanza)
        window['end'] = utc(wal_time)
        if wal_time is None:
            refuse(module, pgbackrest, 'The repository holds no archived WAL for stanza %s, so no point in time can '
                                       'be recovered: check WAL archiving (pgbackrest_check).' % stanza['name'],
                   window=window)
        if target_epoch > wal_time:
            refuse(module, pgbackrest, 'Target %s is after the recoverable window, which ends with the newest '
                                       'archived WAL segment, stored at %s. Recovery would stop short of it.'
                   % (target, window['end']), window=window)

    options = ['--pg1-path=%s' % pg_path, '--set=%s' % backup['label']]
    if restore_type == 'latest':
        options.append('--type=default')
    else:
        options.append('--type=%s' % ('immediate' if restore_type == 'set' else restore_type))
        if restore_type in TARGET_SETTINGS:
            options.append('--target=%s' % target)
        options.append('--target-action=%s' % params['target_action'])
    if params['delta']:
        options.append('--delta')
    running = pgbackrest.postgresql_running(pg_path)
    plan = dict(type=restore_type, target=target, set=backup['label'], backup=backup, pg_path=pg_path,
                window=window, postgresql_running=running,
                command=' '.join(pgbackrest.command('restore', *options)))

    if reflects(pgbackrest, pg_path, backup, restore_type, target, params['target_action']):
        module.exit_json(changed=False, plan=plan, executed_commands=pgbackrest.executed_commands)
    if module.check_mode:
        pgbackrest.plan('restore', *options)
        module.exit_json(changed=True, plan=plan, executed_commands=pgbackrest.executed_commands)

    if running:
        refuse(module, pgbackrest, 'PostgreSQL is running on %s%s: stop it before restoring (playbooks/restore.yml '
                                   'does).' % (pg_path, ' (container %s runs)' % params['container'] if params['container'] else ''), plan=plan)
    if not params['delta'] and not pgbackrest.is_empty_directory(pg_path):
        refuse(module, pgbackrest, '%s is not empty: move it aside first (playbooks/restore.yml does), or set '
                                   'delta=true to restore over it.' % pg_path, plan=plan)
    rc, stdout, stderr, argv = pgbackrest.execute('restore', *options)
    if rc != 0:
        code = parse_error(stdout, stderr)[0]
        pgbackrest.fail('restore backup set %s into %s' % (backup['label'], pg_path), rc, stdout, stderr, argv,
                        advice=RESTORE_ADVICE.get(code))
    module.exit_json(changed=True, plan=plan, executed_commands=pgbackrest.executed_commands)


if __name__ == '__main__':
    main()
