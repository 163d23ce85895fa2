#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pgbackrest_config
short_description: Install pgBackRest's configuration, proven against the repository before it replaces the live one
version_added: 0.2.0
description:
  - Writes I(content) to I(config) on the target, owned by the PostgreSQL operating-system user, mode C(0600),
    readable by root and that user only.
  - A changed configuration is first written beside the live one as C(<config>.candidate) and proven - the
    repository answers, its files decrypt, and an existing stanza belongs to the cluster in I(pg_path) - so a wrong
    passphrase or endpoint never replaces the configuration WAL archiving is using. The candidate is then removed.
  - In container mode a bind-mounted configuration is written on the Docker host. A file bind-mounted on its own (as
    the guide mounts C(/etc/pgbackrest/pgbackrest.conf)) is rewritten in place, keeping its inode, so the container
    sees the new content; it is never seen half-written.
  - An unchanged configuration is neither rewritten nor proven again.
extends_documentation_fragment:
  - chronos.pgbackrest.pgbackrest
  - chronos.pgbackrest.attributes
options:
  content:
    description:
      - The configuration file's content (it holds the secrets).
    type: str
    required: true
  config:
    description:
      - Path of the configuration file on the target.
    type: path
    default: /etc/pgbackrest/pgbackrest.conf
  ca_cert:
    description:
      - PEM of a private certificate authority for the repository's TLS endpoint, written to I(ca_path).
    type: str
  ca_path:
    description:
      - Where I(ca_cert) goes on the target.
    type: path
  directories:
    description:
      - Directories pgBackRest needs on the target (a posix repository), created owned by the PostgreSQL
        operating-system user, mode C(0750), when missing.
    type: list
    elements: path
    default: []
  pg_path:
    description:
      - The cluster's data directory, whose identity the stanza must match.
    type: path
    required: true
  state:
    description:
      - C(present), or C(upgraded) after a PostgreSQL major upgrade (the stanza may then differ from the cluster).
    type: str
    choices: [present, upgraded]
    default: present
attributes:
  check_mode:
    support: full
    description: Reports whether the file would change; proves nothing and writes nothing.
  diff_mode:
    support: none
    description: The file holds secrets; no diff is shown.
  idempotent:
    support: full
    description: An unchanged configuration is not rewritten.
author:
  - Chronos platform team (@chronos-platform)
'''

EXAMPLES = r'''
- name: Install the configuration
  chronos.pgbackrest.pgbackrest_config:
    stanza: chronos-v2
    container: chronos-db
    pg_path: /var/lib/postgresql/data
    content: "{{ lookup('ansible.builtin.template', 'pgbackrest.conf.j2') }}"
  no_log: true
'''

RETURN = r'''
changed_files:
  description: The files written on the target (or, in check mode, that would be).
  returned: always
  type: list
  elements: str
executed_commands: {type: list, elements: str, returned: always, description: "Commands run (the candidate's proof)."}
'''

from ansible_collections.chronos.pgbackrest.plugins.module_utils._module import ModuleRun
from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import stanza_action
from ansible_collections.chronos.pgbackrest.plugins.module_utils._postgres import read_cluster
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError

MODE = 0o600
# How long a change of the configuration waits for a backup, restore, drill or verify that holds the stanza.
LOCK_WAIT_SECONDS = 600


def main():
    run = ModuleRun(dict(
        content=dict(type='str', required=True, no_log=True),
        config=dict(type='path', default='/etc/pgbackrest/pgbackrest.conf'),
        ca_cert=dict(type='str'),
        ca_path=dict(type='path'),
        directories=dict(type='list', elements='path', default=[]),
        pg_path=dict(type='path', required=True),
        state=dict(type='str', choices=['present', 'upgraded'], default='present'),
    ), supports_check_mode=True)
    with run:
        params, target = run.params, run.target
        uid, gid = target.user_ids(target.os_user)
        changed = []
        for directory in params['directories']:
            if target.ensure_directory(directory, uid, gid, 0o750, run.check_mode):
                changed.append(directory)
        if params['ca_cert']:
            if not params['ca_path']:
                raise ChronosError('ca_path is required with ca_cert. Nothing was changed.')
            if target.write_file(params['ca_path'], params['ca_cert'].encode(), 0, gid, 0o644, run.check_mode):
                changed.append(params['ca_path'])
        config, content = params['config'], params['content'].encode()
        try:
            same = target.read_file(config) == content
        except (IOError, OSError):
            same = False
        if not same and not run.check_mode:
            candidate = config + '.candidate'
            target.write_file(candidate, content, uid, gid, MODE)
            try:
                prove(run, candidate)
            finally:
                target.remove_file(candidate)
            # Replaced under the stanza's lock: a backup, restore, drill or verify holding the file's lock (the wrapper
            # by hand) ends before the file - on a host, a new inode others will lock - takes its place.
            with run.pgbackrest.lock('pgbackrest.conf replaced (pgbackrest_config)', wait=LOCK_WAIT_SECONDS):
                target.write_file(config, content, uid, gid, MODE)
            changed.append(config)
        elif not same:
            changed.append(config)
        elif target.write_file(config, content, uid, gid, MODE, run.check_mode):
            changed.append(config)
        run.exit(changed=bool(changed), changed_files=changed)


def prove(run, candidate):
    """The candidate reaches and decrypts the repository, and an existing stanza belongs to this cluster."""
    candidate_pgbackrest = run.pgbackrest.on()
    candidate_pgbackrest.config = candidate
    try:
        stanza_action(candidate_pgbackrest, read_cluster(run.target, run.params['pg_path']), run.params['state'])
    except ChronosError as exc:
        raise ChronosError('The new configuration was not installed, the live one is unchanged: %s' % exc.msg,
                           **exc.extra)


if __name__ == '__main__':
    main()
