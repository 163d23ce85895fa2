#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pgbackrest_verify
short_description: Check that the backups of a stanza are fresh and working
version_added: 0.2.0
description:
  - Checks the newest backup's age against I(max_age), the last scheduled run (from the metrics the scheduled job
    writes in I(metrics_dir)), that the repository can be read, and that WAL archiving works (C(pg_stat_archiver)).
  - Fails with one message that lists every problem found, each with what to do; otherwise returns a one-line
    summary in C(msg).
  - Never changes anything.
extends_documentation_fragment:
  - chronos.pgbackrest.pgbackrest
  - chronos.pgbackrest.attributes
  - chronos.pgbackrest.attributes.read_only
options:
  max_age:
    description:
      - The newest backup may be this old; a number of seconds, or with C(s), C(m), C(h), C(d) or C(w).
    type: str
    default: 25h
  metrics_dir:
    description:
      - Where the scheduled job writes its metrics on the managed host. Empty to skip the last-run check.
    type: path
  repository:
    description:
      - How messages name the repository.
    type: str
    default: the repository
  schedule:
    description:
      - How messages name the schedule (the cron file).
    type: str
    default: the schedule
  log:
    description:
      - How messages name the backup log.
    type: str
    default: the backup log
author:
  - Chronos platform team (@chronos-platform)
'''

EXAMPLES = r'''
- name: Fail when the newest backup is older than 25 hours, or anything else is wrong
  chronos.pgbackrest.pgbackrest_verify:
    stanza: chronos-v2
    container: chronos-db
    metrics_dir: /var/lib/prometheus/node-exporter
'''

RETURN = r'''
verify:
  description: The figures (C(ok), C(problems), C(backup), C(archive), C(runs), C(last_run), C(repository_ok)).
  returned: always
  type: dict
msg:
  description: The one-line summary, or every problem found.
  returned: always
  type: str
executed_commands: {type: list, elements: str, returned: always, description: "Commands run."}
'''

from ansible_collections.chronos.pgbackrest.plugins.module_utils._module import ModuleRun
from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import parse_duration
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError
from ansible_collections.chronos.pgbackrest.plugins.module_utils._verify import report, summary, verify


def main():
    run = ModuleRun(dict(
        max_age=dict(type='str', default='25h'),
        metrics_dir=dict(type='path'),
        repository=dict(type='str', default='the repository'),
        schedule=dict(type='str', default='the schedule'),
        log=dict(type='str', default='the backup log'),
    ), supports_check_mode=True)
    with run:
        params = run.params
        try:
            max_age = parse_duration(params['max_age'])
        except ValueError as exc:
            raise ChronosError('Invalid max_age: %s. Nothing was checked.' % exc)
        result = verify(run.target, run.pgbackrest, max_age, params['metrics_dir'], params['repository'],
                        params['schedule'], params['log'])
        if not result['ok']:
            run.fail(report(result, run.target.describe()), verify=result)
        run.exit(changed=False, msg=summary(result), verify=result)


if __name__ == '__main__':
    main()
