#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pgbackrest_drill
short_description: Restore a backup into a scratch place, check it, and remove it (a restore drill)
version_added: 0.2.0
description:
  - Restores the latest backup, or a point in time, into a scratch place, starts it on another port with WAL archiving
    off, runs C(pg_amcheck) and a query, and reports how long the restore took and how old the newest restored
    transaction is. Then removes the scratch place, also on failure. The live cluster is never touched.
  - On a database host the scratch place is a directory (I(path)); in container mode it is a scratch container from
    the live container's image, named C(<container>-pgbackrest-drill), with its own anonymous volumes, on the same
    network, with C(pgbackrest.conf) copied in, never put in its configuration.
  - Refuses a path that is or overlaps the live data directory, a directory or container that is not a drill's own,
    a port in use, and too little free space; follows the timeline production archived last.
  - With I(from_stanza) and I(keep), restores another stanza (such as an older one kept after a migration) into the
    scratch place and leaves it running, to pull data out of it.
extends_documentation_fragment:
  - chronos.pgbackrest.pgbackrest
  - chronos.pgbackrest.attributes
options:
  pg_path:
    description:
      - The live cluster's data directory, which the drill keeps away from. In container mode, defaults to C(PGDATA).
    type: path
  path:
    description:
      - The scratch directory (in the scratch container, in container mode).
    type: path
    default: /var/lib/postgresql/pgbackrest-drill
  port:
    description:
      - Port of the scratch cluster (it listens on a unix socket only).
    type: int
    default: 5433
  database:
    description:
      - Database that C(pg_amcheck) and I(query) run in.
    type: str
    default: postgres
  query:
    description:
      - Query run on the restored copy; its rows are returned.
    type: str
    default: SELECT count(*) FROM pg_class
  target:
    description:
      - Restore to this time (with a time zone) instead of the latest state.
    type: str
  timeout:
    description:
      - Seconds to wait for the scratch cluster to recover.
    type: int
    default: 600
  from_stanza:
    description:
      - Restore this stanza's backups instead of I(stanza)'s (for example the guide's old C(chronos)).
    type: str
  keep:
    description:
      - Leave the scratch cluster running instead of removing it; the result says how to connect and remove it.
      - Until it is removed (I(remove)), every drill into the same place is refused, the scheduled one included. A drill
        never removes what another drill kept.
    type: bool
    default: false
  remove:
    description:
      - Only remove a scratch place left running (with I(keep)), and restore nothing.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Checks the refusals and returns without restoring.
  idempotent:
    support: full
    description: Leaves nothing behind (unless I(keep)).
author:
  - Chronos platform team (@chronos-platform)
'''

EXAMPLES = r'''
- name: Restore drill of the chronos-db container
  chronos.pgbackrest.pgbackrest_drill:
    stanza: chronos-v2
    container: chronos-db
    database: chronos_db

- name: Bring back the old chronos stanza in a scratch container to pull data from it
  chronos.pgbackrest.pgbackrest_drill:
    stanza: chronos-v2
    from_stanza: chronos
    container: chronos-db
    keep: true
'''

RETURN = r'''
drill:
  description: C(backup_set), C(target), C(timeline), C(restore_seconds), C(files_seconds), C(recovery_seconds),
    C(newest_transaction_age_seconds), C(amcheck), C(query_result), C(scratch), C(kept_running), C(connect).
  returned: success
  type: dict
report:
  description: The lines the play prints - what was restored, its figures, and what became of the scratch place.
  returned: always
  type: list
  elements: str
put_back: {type: list, elements: str, returned: when something was put back, description: "What the collection placed on the
  target and found missing or changed there (a container recreated from its image), put back first; C(changed)."}
executed_commands: {type: list, elements: str, returned: always, description: "Commands run."}
'''

from ansible_collections.chronos.pgbackrest.plugins.module_utils._drill import Drill, Settings
from ansible_collections.chronos.pgbackrest.plugins.module_utils._module import ModuleRun, resolve_pg_path
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError


def main():
    run = ModuleRun(dict(
        pg_path=dict(type='path'),
        path=dict(type='path', default='/var/lib/postgresql/pgbackrest-drill'),
        port=dict(type='int', default=5433),
        database=dict(type='str', default='postgres'),
        query=dict(type='str', default='SELECT count(*) FROM pg_class'),
        target=dict(type='str'),
        timeout=dict(type='int', default=600),
        from_stanza=dict(type='str'),
        keep=dict(type='bool', default=False),
        remove=dict(type='bool', default=False),
    ), supports_check_mode=True, puts_back=True)
    with run:
        params = run.params
        pg_path = resolve_pg_path(params, run.target)
        settings = Settings(params['path'], params['port'], params['database'], params['query'], params['timeout'],
                            params['target'], params['keep'], params['from_stanza'])
        drill = Drill(run.target, run.pgbackrest, pg_path, settings)
        if params['remove']:
            removed = drill.remove(run.check_mode)
            run.exit(changed=removed, drill=None, report=['The scratch place a drill left running was removed.' if removed
                                                          else 'No scratch place was left running.'])
        if run.check_mode:
            refusal = drill.refusal()
            if refusal:
                raise ChronosError('Restore drill refused: %s. Nothing was changed.' % refusal)
            run.exit(changed=False, drill=None, report=['A restore drill would run now; check mode restores nothing.'])
        result = drill.run()
        run.exit(changed=bool(params['keep']), drill=result, report=drill.report(result))


if __name__ == '__main__':
    main()
