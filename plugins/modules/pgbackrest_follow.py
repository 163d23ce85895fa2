#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pgbackrest_follow
short_description: Follow a restore or backup that runs in the background until it ends, printing its progress
version_added: 0.2.0
description:
  - Follows a restore (M(chronos.pgbackrest.pgbackrest_restore)) or a backup (M(chronos.pgbackrest.pgbackrest_backup))
    started with C(async) and C(poll 0), however long it lasts - no recursion and no loop in the play, so a job of
    hours or days is followed to its end.
  - Every I(every) seconds it prints, live, how far the job got (the restore's step and the bytes restored, read on
    the managed host without touching what runs the restore; the backup's share done).
  - When the job has ended it returns the job's own result (failed when the job failed). When the job died on the
    managed host - killed, as the OOM killer or a reboot does, so that Ansible's async wrapper is gone and no result
    was written - it fails at the next check, saying at which step and what to run to finish it.
  - The module part runs on the managed host and waits there up to I(every) seconds at a time; the action plugin
    calls it again until the job ends.
extends_documentation_fragment:
  - chronos.pgbackrest.pgbackrest
  - chronos.pgbackrest.attributes
  - chronos.pgbackrest.attributes.read_only
options:
  job:
    description:
      - The registered result of the task that started the job with C(async) (its C(ansible_job_id) and
        C(results_file)).
    type: dict
    required: true
  of:
    description:
      - What the job is.
    type: str
    choices: [restore, backup]
    required: true
  every:
    description:
      - Seconds between progress lines, and the longest a job that died goes unnoticed (twice that at most).
    type: int
    default: 30
  pg_path:
    description:
      - The data directory (the restore's progress reads its size).
    type: path
  log_path:
    description:
      - pgBackRest's log directory on the target (the backup's progress reads its log).
    type: path
    default: /var/log/pgbackrest
author:
  - Chronos platform team (@chronos-platform)
'''

EXAMPLES = r'''
- name: Restore in the background
  chronos.pgbackrest.pgbackrest_restore:
    stanza: chronos-v2
  async: 315360000
  poll: 0
  register: job

- name: Print progress until it ends
  chronos.pgbackrest.pgbackrest_follow:
    stanza: chronos-v2
    job: "{{ job }}"
    of: restore
    every: 30
'''

RETURN = r'''
finished:
  description: Whether the job ended (the module part; the action plugin returns the job's result once it did).
  returned: always
  type: bool
result:
  description: The job's own result, once it ended.
  returned: when finished
  type: dict
alive:
  description: Whether the job still runs on the managed host (its async wrapper is there).
  returned: when not finished
  type: bool
progress:
  description: How far the job got, as a sentence.
  returned: when not finished
  type: str
executed_commands: {type: list, elements: str, returned: always, description: "Commands run."}
'''

from ansible_collections.chronos.pgbackrest.plugins.module_utils._follow import follow
from ansible_collections.chronos.pgbackrest.plugins.module_utils._module import ModuleRun


def main():
    run = ModuleRun(dict(
        job=dict(type='dict', required=True),
        of=dict(type='str', choices=['restore', 'backup'], required=True),
        every=dict(type='int', default=30),
        pg_path=dict(type='path'),
        log_path=dict(type='path', default='/var/log/pgbackrest'),
    ), supports_check_mode=True)
    with run:
        run.exit(changed=False, **follow(run, run.params['job'], run.params['of'], run.params['every']))


if __name__ == '__main__':
    main()
