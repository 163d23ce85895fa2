#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pgbackrest_stanza
short_description: Create a pgBackRest stanza, or upgrade it after a PostgreSQL major upgrade
version_added: 0.1.0
description:
  - Compares the stanza in the repository (C(pgbackrest info)) with the PostgreSQL cluster in I(pg_path)
    (its C(PG_VERSION) and the system identifier in C(global/pg_control)), and acts only on a difference.
  - With I(state=present), creates the stanza when the repository has none. When the stanza exists and
    belongs to this cluster, does nothing. When it belongs to another cluster or another PostgreSQL version,
    fails and says what to do; it never runs C(stanza-upgrade) by itself.
  - With I(state=upgraded), runs C(stanza-upgrade) when the cluster's version or system identifier differs
    from the stanza's, for example after C(pg_upgrade).
  - After a change, reads the repository again to confirm it.
extends_documentation_fragment:
  - chronos.pgbackrest.pgbackrest
  - chronos.pgbackrest.attributes
  - chronos.pgbackrest.attributes.idempotent
options:
  state:
    description:
      - C(present) creates a missing stanza; C(upgraded) records the cluster's new version and system identifier.
    type: str
    choices: [present, upgraded]
    default: present
  pg_path:
    description:
      - Data directory of the PostgreSQL cluster (pgBackRest's C(pg1-path)).
    type: path
    required: true
attributes:
  check_mode:
    support: full
    description: Reads the repository and the cluster, and returns the command it would run in I(executed_commands).
author:
  - Chronos platform team (@chronos-platform)
'''

EXAMPLES = r'''
- name: Create the stanza when the repository has none
  chronos.pgbackrest.pgbackrest_stanza:
    stanza: chronos-v2
    pg_path: /var/lib/postgresql/16/main
  become: true
  become_user: postgres

- name: After pg_upgrade, record the new cluster in the stanza
  chronos.pgbackrest.pgbackrest_stanza:
    stanza: chronos-v2
    pg_path: /var/lib/postgresql/17/main
    state: upgraded
  become: true
  become_user: postgres
'''

RETURN = r'''
stanza:
  description: The stanza as pgBackRest reports it after the module ran (see M(chronos.pgbackrest.pgbackrest_info)).
    In check mode, as it was before.
  returned: success
  type: dict
cluster:
  description: The cluster in I(pg_path).
  returned: success
  type: dict
  contains:
    version:
      description: PostgreSQL major version.
      type: str
      sample: "16"
    system_id:
      description: The cluster's system identifier.
      type: int
      sample: 7711661904765073182
put_back: {type: list, elements: str, returned: when something was put back, description: "What the collection placed on the
  target and found missing or changed there (a container recreated from its image), put back first; C(changed)."}
executed_commands: {type: list, elements: str, returned: always, description: "The pgbackrest commands run, or in check mode the ones that would run."}
'''

from ansible_collections.chronos.pgbackrest.plugins.module_utils._module import ModuleRun
from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import (
    stanza_action, stanza_mismatch, stanza_problem)
from ansible_collections.chronos.pgbackrest.plugins.module_utils._postgres import read_cluster


def main():
    run = ModuleRun(dict(
        state=dict(type='str', choices=['present', 'upgraded'], default='present'),
        pg_path=dict(type='path', required=True),
    ), supports_check_mode=True, puts_back=True)
    with run:
        pgbackrest = run.pgbackrest
        cluster = read_cluster(run.target, run.params['pg_path'])
        stanza, command = stanza_action(pgbackrest, cluster, run.params['state'])
        if command is None:
            run.exit(changed=False, stanza=stanza, cluster=cluster)
        if run.check_mode:
            pgbackrest.plan(command)
            run.exit(changed=True, stanza=stanza, cluster=cluster)
        pgbackrest.run(command, attempt='%s for stanza %s' % (command, pgbackrest.stanza))
        stanza = pgbackrest.stanza_info()
        still_wrong = stanza_problem(stanza) or stanza_mismatch(stanza, cluster)
        if still_wrong:
            run.fail('pgbackrest %s succeeded, yet the repository still does not match the cluster: %s'
                     % (command, still_wrong[0] if isinstance(still_wrong, tuple) else still_wrong),
                     stanza=stanza, cluster=cluster)
        run.exit(changed=True, stanza=stanza, cluster=cluster)


if __name__ == '__main__':
    main()
