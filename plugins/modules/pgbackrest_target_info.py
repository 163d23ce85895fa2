#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pgbackrest_target_info
short_description: Read where PostgreSQL and pgBackRest live, and refuse a target that cannot be provisioned
version_added: 0.2.0
description:
  - Reads the target - this host, or with I(container) a Docker container on it - the way the server and the
    container answer - the data directory PostgreSQL runs with, its version, the superuser to connect as (in the
    official postgres image, C(POSTGRES_USER)), the PostgreSQL operating-system user's uid and gid, pgBackRest's
    version, the compression types it was built with, and where its configuration lies on this host's disk.
  - Fails with one message saying what to do, and changes nothing, when the container is missing, stopped or on
    another Docker host, PostgreSQL does not answer, the superuser does not exist, I(pg_path) is not the data
    directory PostgreSQL runs with, pgBackRest is missing, or (in container mode) the configuration is not
    bind-mounted from this host.
  - Decides how WAL archiving is set up there, from facts read there - see I(archive_async) and
    I(archive_push_queue_max) - and refuses asynchronous archiving where PostgreSQL is PID 1.
extends_documentation_fragment:
  - chronos.pgbackrest.pgbackrest
  - chronos.pgbackrest.attributes
  - chronos.pgbackrest.attributes.read_only
options:
  pg_path:
    description:
      - The data directory the inventory names; when set it must be the one PostgreSQL runs with.
    type: path
  pg_version:
    description:
      - The PostgreSQL major version the inventory names; when set, the server must run it.
    type: str
  config:
    description:
      - Path of pgBackRest's configuration on the target.
    type: path
    default: /etc/pgbackrest/pgbackrest.conf
  stanza:
    description:
      - Name of the stanza (only named in messages).
    type: str
    required: false
    default: ''
  archive_async:
    description:
      - Whether pgBackRest archives WAL asynchronously - C(auto), C(true) or C(false).
      - C(auto) is asynchronous only where PostgreSQL is not PID 1 of its PID namespace (read from
        C(postmaster.pid)). Where it is, as in the official postgres image, PostgreSQL reaps the process asynchronous
        archive-push detaches, and takes its failure during a repository outage for a crashed server process.
      - C(true) where PostgreSQL is PID 1 is refused.
    type: str
    default: auto
  archive_push_queue_max:
    description:
      - The most WAL that may wait in C(pg_wal) for the repository before pgBackRest drops it from the archive
        (C(archive-push-queue-max)) - C(auto) (a quarter of the filesystem that holds C(pg_wal)), a size such as
        C(4GiB), or C(0) for no limit.
    type: str
    default: auto
  compress_type:
    description: compress-type - C(auto) for the fastest this pgBackRest was built with (zst, lz4, gz in that order).
    type: str
    choices: [auto, zst, lz4, gz, bz2, none]
    default: auto
  repo_block:
    description: repo1-block - C(auto) turns block incremental on where pgBackRest has it (2.46 and later),
      I(repo_bundle) is on and the repository is a posix path (from S3 a restore fetches its blocks one request after
      another); C(true) or C(false) forces.
    type: str
    default: auto
  repo_bundle:
    description: Whether files are bundled (repo1-bundle), which block incremental needs.
    type: bool
    default: true
  process_max:
    description: process-max - C(0) for half the managed host's CPUs, at least 1.
    type: int
    default: 0
  repo_type:
    description: The repository's type, which decides block incremental when I(repo_block) is C(auto), and how many
      processes a restore runs when I(restore_process_max) is C(0).
    type: str
    choices: [s3, posix]
    default: s3
  restore_process_max:
    description: process-max of restore and archive-get - C(0) for 4 per CPU (at most 16) from an S3 repository, whose
      round trips the processes overlap, and one per CPU from a posix one.
    type: int
    default: 0
author:
  - Chronos platform team (@chronos-platform)
'''

EXAMPLES = r'''
- name: Read the chronos-db container
  chronos.pgbackrest.pgbackrest_target_info:
    container: chronos-db
  register: target
'''

RETURN = r'''
target:
  description: What the target is.
  returned: success
  type: dict
  contains:
    kind:
      description: C(host) or C(container).
      type: str
    pg_path:
      description: The data directory PostgreSQL runs with.
      type: str
    pg_version:
      description: PostgreSQL's major version.
      type: str
    pg_user:
      description: The PostgreSQL role the collection connects as (C(pg1-user)).
      type: str
    uid:
      description: The PostgreSQL operating-system user's uid on the target.
      type: int
    gid:
      description: Its gid.
      type: int
    pgbackrest_version:
      description: pgBackRest's version on the target.
      type: str
    compress_types:
      description: The compression types this pgBackRest was built with, fastest first.
      type: list
      elements: str
    block_incremental:
      description: Whether this pgBackRest supports block incremental backups (2.46 or later).
      type: bool
    config_mount:
      description: In container mode, how the configuration is mounted - C(file) or C(directory) - and C(host) on a host.
      type: str
    config_host_path:
      description: Where the configuration lies on the managed host's disk.
      type: str
    backup:
      description: How backups are set up - C(compress_type), C(repo_block), C(process_max) - as I(compress_type),
        I(repo_block) and I(process_max) ask, or chosen here for C(auto) (then with C(compress_reason) and
        C(repo_block_reason)).
      type: dict
    restore:
      description: How restores are set up - C(process_max), as I(restore_process_max) asks or chosen here (then with
        C(process_max_reason)).
      type: dict
    archive:
      description: How WAL archiving is set up, and the facts it was decided from.
      type: dict
      contains:
        async:
          description: Whether archive-push runs asynchronously.
          type: bool
        async_reason:
          description: Why.
          type: str
        queue_max:
          description: archive-push-queue-max in bytes, 0 for none.
          type: int
        queue_max_reason:
          description: Why.
          type: str
        postmaster_pid:
          description: The postmaster's process id where it runs (1 when it is PID 1 of its namespace).
          type: int
        wal_filesystem_size:
          description: Size in bytes of the filesystem that holds pg_wal.
          type: int
executed_commands: {type: list, elements: str, returned: always, description: "Commands run."}
'''

import os

from ansible_collections.chronos.pgbackrest.plugins.module_utils._archiving import archive_async, queue_max
from ansible_collections.chronos.pgbackrest.plugins.module_utils._module import ModuleRun
from ansible_collections.chronos.pgbackrest.plugins.module_utils._postgres import postmaster_pid
from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import (
    BLOCK_INCREMENTAL_SINCE, COMPRESS_PREFERENCE, backup_settings, restore_settings, version_at_least)
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError
# pgBackRest checks compress-type before anything else: 32 when the build lacks it, 37 (pg1-path missing) when not.
UNSUPPORTED_OPTION_VALUE = 32


def compress_types(target, binary):
    supported = []
    for kind in COMPRESS_PREFERENCE:
        done = target.run([binary, '--stanza=probe', '--compress-type=%s' % kind, '--log-level-console=error',
                           '--log-level-file=off', '--log-level-stderr=off', 'backup'])
        if done.rc != UNSUPPORTED_OPTION_VALUE:
            supported.append(kind)
    return supported


def server_facts(target):
    try:
        rows = target.sql("SELECT current_setting('data_directory'), current_setting('server_version_num'), "
                          "rolsuper FROM pg_roles WHERE rolname = current_user", attempt='connect to PostgreSQL')
    except ChronosError as exc:
        if 'does not exist' in exc.msg and 'role' in exc.msg:
            raise ChronosError('PostgreSQL on %s has no role %s to connect as: set pgbackrest_pg_user to a superuser '
                               '(in the official postgres image, the container\'s POSTGRES_USER). Nothing was changed.'
                               % (target.describe(), target.pg_user))
        raise
    data_directory, version_num, is_superuser = rows[0]
    if is_superuser != 't':
        raise ChronosError('Role %s on %s is not a superuser: pgBackRest and ALTER SYSTEM need one. Set pgbackrest_pg_user '
                           'to a superuser. Nothing was changed.' % (target.pg_user, target.describe()))
    return data_directory, str(int(version_num) // 10000)


def archive_facts(target, data_directory, params):
    """How WAL archiving is set up on the target, and the facts it is decided from."""
    pid = postmaster_pid(target, data_directory)
    asynchronous, async_reason = archive_async(params['archive_async'], pid, target.describe())
    size, dummy = target.filesystem('%s/pg_wal' % data_directory)
    limit, limit_reason = queue_max(params['archive_push_queue_max'], size)
    return {'async': asynchronous, 'async_reason': async_reason, 'queue_max': limit, 'queue_max_reason': limit_reason,
            'postmaster_pid': pid, 'wal_filesystem_size': size}


def main():
    run = ModuleRun(dict(
        stanza=dict(type='str', required=False, default=''),
        pg_path=dict(type='path'),
        pg_version=dict(type='str'),
        config=dict(type='path', default='/etc/pgbackrest/pgbackrest.conf'),
        archive_async=dict(type='str', default='auto'),
        archive_push_queue_max=dict(type='str', default='auto'),
        compress_type=dict(type='str', default='auto', choices=['auto', 'zst', 'lz4', 'gz', 'bz2', 'none']),
        repo_block=dict(type='str', default='auto'),
        repo_bundle=dict(type='bool', default=True),
        process_max=dict(type='int', default=0),
        repo_type=dict(type='str', default='s3', choices=['s3', 'posix']),
        restore_process_max=dict(type='int', default=0),
    ), supports_check_mode=True)
    with run:
        params, target = run.params, run.target
        target.refuse_unless_running()
        if not target.pg_ready():
            raise ChronosError('PostgreSQL does not accept connections on %s (socket directory %s, port %d): start it, '
                               'or set pgbackrest_pg_port and pgbackrest_pg_socket_path, and run again. Nothing was '
                               'changed.' % (target.describe(), target.socket_path, target.pg_port))
        data_directory, pg_version = server_facts(target)
        if params['pg_path'] and os.path.normpath(params['pg_path']) != os.path.normpath(data_directory):
            raise ChronosError('pgbackrest_pg_path %s is not the data directory PostgreSQL runs with on %s (%s): set it '
                               'to that, or leave it unset. Nothing was changed.' % (
                                   params['pg_path'], target.describe(), data_directory))
        if params['pg_version'] and params['pg_version'] != pg_version:
            raise ChronosError('The inventory says PostgreSQL %s (pgbackrest_pg_version), but %s runs PostgreSQL %s: '
                               'correct it, or leave it unset. Nothing was changed.' % (
                                   params['pg_version'], target.describe(), pg_version))
        binary = params['binary'] or 'pgbackrest'
        version = target.run([binary, 'version'])
        if version.rc != 0:
            raise ChronosError('pgBackRest does not run on %s (%s). %s Nothing was changed.' % (
                target.describe(), version.output or 'exit %d' % version.rc, target.install_advice))
        pgbackrest_version = version.stdout.strip().split()[-1]
        uid, gid = target.user_ids(target.os_user)
        mount, host_path = target.config_location(params['config'])
        archive = archive_facts(target, data_directory, params)
        built_with = compress_types(target, binary)
        backup = backup_settings(pgbackrest_version, built_with, os.cpu_count(), params['compress_type'],
                                 params['repo_block'], params['repo_bundle'], params['process_max'],
                                 params['repo_type'])
        restore = restore_settings(params['repo_type'], os.cpu_count(), params['restore_process_max'])
        run.exit(changed=False, target=dict(
            kind=target.kind, name=target.describe(), pg_path=data_directory, pg_version=pg_version,
            pg_user=target.pg_user, os_user=target.os_user, uid=uid, gid=gid,
            pgbackrest_version=pgbackrest_version, compress_types=built_with,
            block_incremental=version_at_least(pgbackrest_version, BLOCK_INCREMENTAL_SINCE),
            config_mount=mount, config_host_path=host_path, archive=archive, backup=backup,
            restore=restore))


if __name__ == '__main__':
    main()
