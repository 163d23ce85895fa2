#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pgbackrest_check
short_description: Check that a pgBackRest stanza can back up and archive WAL
version_added: 0.1.0
description:
  - Runs C(pgbackrest check), which validates the configuration, reaches the repository, connects to
    PostgreSQL, and pushes one WAL segment through C(archive_command) to prove archiving works.
  - On failure, names the failing part (C(archiving), C(repository), C(encryption), C(configuration),
    C(database), C(stanza)) and says what to do.
  - Never reports a change.
extends_documentation_fragment:
  - chronos.pgbackrest.pgbackrest
  - chronos.pgbackrest.attributes
  - chronos.pgbackrest.attributes.idempotent
attributes:
  check_mode:
    support: full
    description: The check forces a WAL segment switch, so in check mode it is not run; the command is
      returned in I(executed_commands).
author:
  - Chronos platform team (@chronos-platform)
'''

EXAMPLES = r'''
- name: Prove the repository and WAL archiving work
  chronos.pgbackrest.pgbackrest_check:
    stanza: chronos-v2
  become: true
  become_user: postgres
'''

RETURN = r'''
ok:
  description: Whether the check passed. When it fails, the task fails with C(failed_part) and C(error_code).
  returned: success
  type: bool
failed_part:
  description: On failure, the part of the setup pgBackRest's error points at.
  returned: failure
  type: str
  sample: archiving
error_code:
  description: On failure, pgBackRest's error code.
  returned: failure
  type: int
  sample: 87
put_back: {type: list, elements: str, returned: when something was put back, description: "What the collection placed on the
  target and found missing or changed there (a container recreated from its image), put back first; C(changed)."}
executed_commands: {type: list, elements: str, returned: always, description: "The pgbackrest commands run, or in check mode the ones that would run."}
'''

from ansible_collections.chronos.pgbackrest.plugins.module_utils._module import ModuleRun


def main():
    run = ModuleRun(supports_check_mode=True, puts_back=True)
    with run:
        if run.check_mode:
            run.pgbackrest.plan('check')
            run.exit(changed=False, ok=None)
        run.pgbackrest.run('check', attempt='check stanza %s' % run.pgbackrest.stanza)
        run.exit(changed=False, ok=True)


if __name__ == '__main__':
    main()
