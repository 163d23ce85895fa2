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
  diff_mode:
    support: none
    description: Nothing to show as a diff.
  idempotent:
    support: full
    description: A second run with the same arguments changes nothing.
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
executed_commands:
  description: The pgbackrest commands run, or in check mode the ones that would run.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import (
    STATUS_MISSING_STANZA_PATH, PgBackRest, current_db, pgbackrest_argument_spec, read_cluster_identity,
    stanza_problem)


def read_cluster(module, pgbackrest, pg_path):
    try:
        version, system_id = read_cluster_identity(pg_path, pgbackrest.read_file)
    except (IOError, OSError) as exc:
        module.fail_json(msg='Unable to read the PostgreSQL cluster in %s: %s. Check pg_path, and run the module '
                             'as the cluster owner (become_user: postgres), or with container as root on the '
                             'Docker host.' % (pg_path, exc))
    return dict(version=version, system_id=system_id)


def mismatch(stanza, cluster):
    """A sentence when the stanza's current PostgreSQL identity is not the cluster's, else None."""
    db = current_db(stanza)
    if db is None or (str(db['version']), db['system_id']) == (cluster['version'], cluster['system_id']):
        return None
    return ("stanza '%s' belongs to PostgreSQL %s with system-id %s, but the cluster is PostgreSQL %s with "
            "system-id %s" % (stanza['name'], db['version'], db['system_id'], cluster['version'], cluster['system_id']))


def main():
    argument_spec = pgbackrest_argument_spec()
    argument_spec.update(
        state=dict(type='str', choices=['present', 'upgraded'], default='present'),
        pg_path=dict(type='path', required=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    state = module.params['state']
    pgbackrest = PgBackRest(module)
    cluster = read_cluster(module, pgbackrest, module.params['pg_path'])
    stanza = pgbackrest.stanza_info()
    missing = stanza['status']['code'] == STATUS_MISSING_STANZA_PATH
    problem = None if missing else stanza_problem(stanza)
    if problem:
        sentence, part, advice = problem
        module.fail_json(msg='%s. %s' % (sentence, advice), failed_part=part, stanza=stanza, cluster=cluster,
                         executed_commands=pgbackrest.executed_commands)

    if missing and state == 'upgraded':
        module.fail_json(msg="Stanza '%s' does not exist, so there is nothing to upgrade: create it with "
                             "state=present." % pgbackrest.stanza, stanza=stanza, cluster=cluster,
                         executed_commands=pgbackrest.executed_commands)
    different = None if missing else mismatch(stanza, cluster)
    if different and state == 'present':
        module.fail_json(msg='%s. If PostgreSQL was upgraded to a new major version, run pgbackrest_stanza with '
                             'state=upgraded (pgbackrest_stanza_state: upgraded in the role). If this is another '
                             'cluster, give it a new stanza name: pgBackRest keeps a stanza to one cluster.' % different,
                         failed_part='stanza', stanza=stanza, cluster=cluster,
                         executed_commands=pgbackrest.executed_commands)

    command = 'stanza-create' if missing else 'stanza-upgrade' if different else None
    if command is None:
        module.exit_json(changed=False, stanza=stanza, cluster=cluster, executed_commands=pgbackrest.executed_commands)
    if module.check_mode:
        pgbackrest.plan(command)
        module.exit_json(changed=True, stanza=stanza, cluster=cluster, executed_commands=pgbackrest.executed_commands)

    pgbackrest.run(command, attempt='%s for stanza %s' % (command, pgbackrest.stanza))
    stanza = pgbackrest.stanza_info()
    still_wrong = stanza_problem(stanza) or mismatch(stanza, cluster)
    if still_wrong:
        module.fail_json(msg='pgbackrest %s succeeded, yet the repository still does not match the cluster: %s'
                             % (command, still_wrong[0] if isinstance(still_wrong, tuple) else still_wrong),
                         stanza=stanza, cluster=cluster, executed_commands=pgbackrest.executed_commands)
    module.exit_json(changed=True, stanza=stanza, cluster=cluster, executed_commands=pgbackrest.executed_commands)


if __name__ == '__main__':
    main()
