#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pgbackrest_info
short_description: Read a pgBackRest stanza and its backups
version_added: 0.1.0
description:
  - Runs C(pgbackrest info --output=json) and returns the stanza, its repositories and its backups.
  - Fails with one message when pgBackRest reports the stanza as unusable (missing, repository unreachable,
    files that cannot be decrypted). A stanza that exists but has no backup yet is usable.
  - Never changes anything.
extends_documentation_fragment:
  - chronos.pgbackrest.pgbackrest
  - chronos.pgbackrest.attributes
  - chronos.pgbackrest.attributes.read_only
author:
  - Chronos platform team (@chronos-platform)
'''

EXAMPLES = r'''
- name: Read the chronos-v2 stanza
  chronos.pgbackrest.pgbackrest_info:
    stanza: chronos-v2
  become: true
  become_user: postgres
  register: backups

- name: Show the newest backup
  ansible.builtin.debug:
    msg: "{{ backups.latest_backup.label }} stopped at {{ backups.latest_backup.stop_time }}"
  when: backups.latest_backup is not none
'''

RETURN = r'''
stanza:
  description: The stanza as pgBackRest reports it.
  returned: success
  type: dict
  contains:
    name:
      description: Stanza name.
      type: str
    status:
      description: pgBackRest's status code and message (0 ok, 2 no valid backups).
      type: dict
    backup_running:
      description: Whether a backup or expire holds the stanza's lock.
      type: bool
    cipher:
      description: Repository cipher, C(aes-256-cbc) or C(none).
      type: str
    repos:
      description: Each repository's key, cipher and status.
      type: list
      elements: dict
    db:
      description: PostgreSQL versions and system identifiers the stanza has held, oldest first.
      type: list
      elements: dict
    archive:
      description: Archived WAL range per PostgreSQL history entry (C(id), C(min), C(max)).
      type: list
      elements: dict
    backups:
      description: Backups, oldest first. Each has C(label), C(type) (full, diff, incr), C(prior), C(start),
        C(stop) (epoch seconds), C(start_time), C(stop_time) (UTC), C(size), C(delta), C(repo_size),
        C(repo_delta) (bytes), C(wal_start), C(wal_stop), C(lsn_start), C(lsn_stop), C(repo_key) and
        C(error). Fields a pgBackRest release does not report are null.
      type: list
      elements: dict
backups:
  description: Shortcut to I(stanza.backups).
  returned: success
  type: list
  elements: dict
latest_backup:
  description: The newest backup without error, or null when there is none.
  returned: success
  type: dict
  sample:
    label: 20261124-090723F
    type: full
    stop_time: "2026-11-24 09:07:41+00"
pgbackrest_version:
  description: Version of pgBackRest on the managed host.
  returned: success
  type: str
  sample: "2.45"
executed_commands: {type: list, elements: str, returned: always, description: "The pgbackrest commands run."}
'''

from ansible_collections.chronos.pgbackrest.plugins.module_utils._module import ModuleRun
from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import newest_backup


def main():
    run = ModuleRun(supports_check_mode=True)
    with run:
        version = run.pgbackrest.version()
        stanza = run.pgbackrest.usable_stanza('read the backups')
        run.exit(changed=False, stanza=stanza, backups=stanza['backups'], latest_backup=newest_backup(stanza),
                 pgbackrest_version=version)


if __name__ == '__main__':
    main()
