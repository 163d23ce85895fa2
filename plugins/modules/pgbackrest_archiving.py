#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pgbackrest_archiving
short_description: Make PostgreSQL archive WAL through pgBackRest, restarting it only when it must
version_added: 0.2.0
description:
  - Sets C(archive_mode=on), I(archive_command), I(archive_timeout), and C(wal_level=replica) when it is C(minimal),
    with C(ALTER SYSTEM) through C(psql) as the superuser (the target needs no Python).
  - Judges what to do from PostgreSQL's real state - the values in C(postgresql.auto.conf) and the values the server
    runs with - so a run interrupted after C(ALTER SYSTEM) is finished by the next one; reloads when a reloadable
    setting differs from what runs, and restarts PostgreSQL (or its container) only while C(archive_mode) or
    C(wal_level) still waits for a restart, and I(restart) allows it.
  - With I(check), runs C(pgbackrest check) after a change (it forces a WAL switch, so not on a run that changed
    nothing), or always with I(check=always).
extends_documentation_fragment:
  - chronos.pgbackrest.pgbackrest
  - chronos.pgbackrest.attributes
options:
  archive_command:
    description:
      - The archive_command, for example C(pgbackrest --stanza=chronos-v2 archive-push %p).
    type: str
    required: true
  archive_timeout:
    description:
      - The archive_timeout, for example C(60s).
    type: str
    default: 60s
  restart:
    description:
      - Restart PostgreSQL when archive_mode or wal_level needs it. Without it the result says C(restart_needed).
    type: bool
    default: true
  check:
    description:
      - When to run C(pgbackrest check) - C(changed) (after a change), C(always) or C(never).
    type: str
    choices: [changed, always, never]
    default: changed
  pg_path:
    description:
      - The cluster's data directory (to tell whether PostgreSQL stopped during a restart).
    type: path
attributes:
  check_mode:
    support: full
    description: Reports what would change and whether a restart would follow.
  idempotent:
    support: full
    description: A run with nothing to change runs no ALTER SYSTEM, no reload, no restart and no check.
author:
  - Chronos platform team (@chronos-platform)
'''

EXAMPLES = r'''
- name: Archive WAL through pgBackRest
  chronos.pgbackrest.pgbackrest_archiving:
    stanza: chronos-v2
    container: chronos-db
    archive_command: pgbackrest --stanza=chronos-v2 archive-push %p
'''

RETURN = r'''
altered:
  description: The settings written with ALTER SYSTEM, by name.
  returned: always
  type: dict
reloaded:
  description: Whether the configuration was reloaded.
  returned: always
  type: bool
restarted:
  description: Whether PostgreSQL was restarted.
  returned: always
  type: bool
restart_needed:
  description: Whether archive_mode or wal_level still waits for a restart (with I(restart=false)).
  returned: always
  type: bool
checked:
  description: Whether pgbackrest check ran (and passed).
  returned: always
  type: bool
put_back: {type: list, elements: str, returned: when something was put back, description: "What the collection placed on the
  target and found missing or changed there (a container recreated from its image), put back first; C(changed)."}
executed_commands: {type: list, elements: str, returned: always, description: "Commands run, or in check mode the ones that would run."}
'''

from ansible_collections.chronos.pgbackrest.plugins.module_utils._module import ModuleRun
from ansible_collections.chronos.pgbackrest.plugins.module_utils._postgres import (
    apply_archive_settings, plan_archive_settings, read_archive_settings, setting_restart_needed)
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError


def main():
    run = ModuleRun(dict(
        archive_command=dict(type='str', required=True),
        archive_timeout=dict(type='str', default='60s'),
        restart=dict(type='bool', default=True),
        check=dict(type='str', choices=['changed', 'always', 'never'], default='changed'),
        pg_path=dict(type='path'),
    ), supports_check_mode=True, puts_back=True)
    with run:
        params, target = run.params, run.target
        try:
            alter, reload, restart = plan_archive_settings(read_archive_settings(target), params['archive_command'],
                                                           params['archive_timeout'])
        except ValueError as exc:
            raise ChronosError('Invalid archive_timeout: %s. Nothing was changed.' % exc)
        changed = bool(alter or reload or (restart and params['restart']))
        result = dict(altered=alter, reloaded=reload, restarted=False, restart_needed=restart, checked=False)
        if run.check_mode:
            run.exit(changed=changed, **result)
        apply_archive_settings(target, alter, reload)
        if restart and params['restart']:
            target.stop_postgresql(params['pg_path'] or target.pgdata or '')
            target.start_postgresql()
            if not target.wait_until_ready(120):
                raise ChronosError('PostgreSQL did not accept connections within 120 s of its restart on %s.'
                                   % target.describe())
            result['restarted'] = True
            result['restart_needed'] = setting_restart_needed(target)
            if result['restart_needed']:
                raise ChronosError('PostgreSQL on %s still runs without WAL archiving after its restart: check '
                                   'postgresql.conf for an archive_mode or wal_level that overrides ALTER SYSTEM.'
                                   % target.describe(), **result)
        # pgbackrest check would fail while archive_mode still waits for a restart the caller did not allow.
        if not result['restart_needed'] and (params['check'] == 'always' or (params['check'] == 'changed' and changed)):
            run.pgbackrest.run('check', attempt='check stanza %s' % run.pgbackrest.stanza)
            result['checked'] = True
        run.exit(changed=changed, **result)


if __name__ == '__main__':
    main()
