#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: pgbackrest_schedule
short_description: Schedule backups, metrics, verify and restore drills with one program on the managed host
version_added: 0.2.0
description:
  - Installs C(/usr/local/bin/chronos-pgbackrest), the scheduled jobs' program, on the managed host (the database
    host, or the Docker host of the PostgreSQL container), with the collection's module_utils it is built on, taken
    from this module itself so that both always match.
  - Writes its settings, C(/etc/chronos-pgbackrest/<stanza>.json) (no secrets), and the cron file
    C(/etc/cron.d/pgbackrest-<stanza>) (dots in the stanza name become underscores, as cron ignores file names with
    dots) that runs it as root.
  - Installs the backup wrapper on the target (on the host, or in the container, where it needs a shell,
    pgBackRest and flock only), so that C(docker exec chronos-db /usr/local/bin/pgbackrest-backup.sh [full|diff|incr])
    works as the guide says.
  - Records the files it and M(chronos.pgbackrest.pgbackrest_config) place on the target (the wrapper, the CA
    certificate), so that every job puts them back when they are gone - a container recreated from its image
    (C(docker compose pull && docker compose up -d)) goes on with backups and archiving without C(site.yml).
  - Rewrites nothing that is already as wanted.
extends_documentation_fragment:
  - chronos.pgbackrest.pgbackrest
  - chronos.pgbackrest.attributes
  - chronos.pgbackrest.attributes.idempotent
options:
  pg_path:
    description:
      - The live cluster's data directory (the restore drill keeps away from it).
    type: path
    required: true
  wrapper:
    description:
      - Content of the backup wrapper script.
    type: str
    required: true
  wrapper_path:
    description:
      - Where the wrapper goes on the target.
    type: path
    default: /usr/local/bin/pgbackrest-backup.sh
  enabled:
    description:
      - Whether the cron file schedules anything; without it the file is removed.
    type: bool
    default: true
  hour:
    description:
      - Hour of the daily backup, 0 to 23.
    type: int
    default: 2
  minute:
    description:
      - Minute of the daily backup, 0 to 59.
    type: int
    default: 0
  full_weekday:
    description:
      - Day of the full backup, 0 (Sunday) to 6; differential backups run the other days. One cron line runs the
        backup every day; the job takes the day's type.
    type: int
    default: 0
  metrics_dir:
    description:
      - node_exporter's textfile directory, where the jobs write their metrics. Empty for none.
    type: path
    default: /var/lib/prometheus/node-exporter
  metrics_every:
    description:
      - Minutes between refreshes of the status metrics, 1 to 59.
    type: int
    default: 5
  cron_log:
    description:
      - File the cron jobs append their output to.
    type: path
    default: /var/log/chronos-backup-cron.log
  repository:
    description:
      - "How messages name the repository, for example C(repo1: s3 bucket project-chronos-backups)."
    type: str
    default: the repository
  log:
    description:
      - pgBackRest's backup log on the target, named in failure messages; C(/var/log/pgbackrest/<stanza>-backup.log)
        when not set.
    type: str
  ca_cert:
    description:
      - The repository's CA certificate (PEM), which the jobs put back at I(ca_path) on the target when it is missing
        there - a container recreated from its image loses what was copied into it.
    type: str
  ca_path:
    description:
      - Where the CA certificate lies on the target (C(repo1-storage-ca-file)).
    type: path
  verify:
    description:
      - The weekly C(pgbackrest verify) of the whole repository (it reads every file, so it costs the repository's size
        in transfer). Keys C(enabled), C(weekday), C(hour), C(minute).
    type: dict
    default: {}
  drill:
    description:
      - The weekly restore drill. Keys C(enabled), C(weekday), C(hour), C(minute), and the drill's C(path), C(port),
        C(database), C(query), C(timeout).
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
    description: Reports what it would write.
  diff_mode:
    support: full
    description: Shows the changes to the cron file, the settings and the backup wrapper (none of them holds a secret).
author:
  - Chronos platform team (@chronos-platform)
'''

EXAMPLES = r'''
- name: Schedule the guide's backups for the chronos-db container
  chronos.pgbackrest.pgbackrest_schedule:
    stanza: chronos-v2
    container: chronos-db
    pg_path: /var/lib/postgresql/data
    wrapper: "{{ lookup('ansible.builtin.template', 'pgbackrest-backup.sh.j2') }}"
'''

RETURN = r'''
changed_files:
  description: The files written (or, in check mode, that would be).
  returned: always
  type: list
  elements: str
cron_file:
  description: The cron file.
  returned: always
  type: str
executed_commands: {type: list, elements: str, returned: always, description: "Commands run on the target."}
'''

import ast
import importlib
import json
import os
import shlex
import sys

# The program (_jobs) and, through its imports, every module_utils file it needs: Ansible ships them with this
# module, which installs them from its own copy.
from ansible_collections.chronos.pgbackrest.plugins.module_utils import _jobs, _metrics
from ansible_collections.chronos.pgbackrest.plugins.module_utils._module import ModuleRun
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError
from ansible_collections.chronos.pgbackrest.plugins.module_utils._files import (
    UntrustedPath, make_local_directory, open_existing, remove_local_file, write_local_file)
from ansible_collections.chronos.pgbackrest.plugins.module_utils._schedule import schedule_refusal
from ansible_collections.chronos.pgbackrest.plugins.module_utils._target import settings_path

LIBRARY = '/usr/local/lib/chronos-pgbackrest'
PROGRAM = '/usr/local/bin/chronos-pgbackrest'
PACKAGE = 'ansible_collections.chronos.pgbackrest.plugins.module_utils'


def job_modules():
    """_jobs and every module_utils file it imports, directly or through another, read from their sources."""
    found, todo = {}, [_jobs.__name__]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        # importlib: a module another imports inside a function (_target's _container) is shipped, not yet loaded.
        module = importlib.import_module(name)
        found[name] = module
        for node in ast.walk(ast.parse(module.__loader__.get_source(name))):
            if isinstance(node, ast.ImportFrom) and node.module == PACKAGE:
                todo.extend('%s.%s' % (PACKAGE, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith(PACKAGE + '._'):
                todo.append(node.module)
    return [found[name] for name in sorted(found)]


PROGRAM_TEXT = '''#!%s
# Scheduled pgBackRest jobs; installed by chronos.pgbackrest (pgbackrest_schedule). Usage: chronos-pgbackrest --help
import sys
sys.path.insert(0, %r)
from ansible_collections.chronos.pgbackrest.plugins.module_utils._jobs import main
raise SystemExit(main())
'''


def library_files():
    """{path: bytes} of the program's library, from this module's own copy of the collection's module_utils."""
    files = {}
    parts = PACKAGE.split('.')
    for depth in range(1, len(parts) + 1):
        files[os.path.join(LIBRARY, *parts[:depth]) + '/__init__.py'] = b''
    for module in job_modules():
        source = module.__loader__.get_source(module.__name__)
        files[os.path.join(LIBRARY, *parts) + '/%s.py' % module.__name__.rsplit('.', 1)[1]] = source.encode('utf-8')
    return files


def cron_text(params, stanza):
    # The job opens its log itself (no shell redirection, which would follow a link planted there as root).
    program = '%s --stanza %s --log %s' % (PROGRAM, shlex.quote(stanza), shlex.quote(params['cron_log']))
    # One backup line: the job takes the type the schedule gives for the day (_backup.scheduled_type), full on
    # full_weekday, written into its settings.
    lines = ['# Scheduled pgBackRest jobs of stanza %s; written by chronos.pgbackrest (pgbackrest_schedule).' % stanza,
             'SHELL=/bin/sh', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
             '%d %d * * * root %s backup' % (params['minute'], params['hour'], program)]
    if params['metrics_dir']:
        lines.append('*/%d * * * * root %s metrics' % (params['metrics_every'], program))
    for job, hour in (('verify', 4), ('drill', 5)):
        schedule = params[job] or {}
        if schedule.get('enabled'):
            when = (int(schedule.get('minute', 0)), int(schedule.get('hour', hour)), int(schedule.get('weekday', 6)))
            lines.append('%d %d * * %d root %s %s' % (when + (program, job)))
    return '\n'.join(lines) + '\n'


def read_local(path):
    handle = open_existing(path)
    with os.fdopen(handle, 'rb') as stream:
        return stream.read()


def current(read, path):
    """What path holds now, b'' when it is missing or cannot be read."""
    try:
        return read(path)
    except (IOError, OSError, ChronosError, UntrustedPath):
        return b''


def text_diff(path, before, after):
    return dict(before_header=path, after_header=path, before=before.decode('utf-8', 'replace'),
                after=after.decode('utf-8', 'replace'))


def installed_files(run):
    """The files the collection places on the target, as the jobs put them back: path, content, owner and mode."""
    params = run.params
    files = [dict(path=params['wrapper_path'], content=params['wrapper'], uid=0, gid=0, mode='0755')]
    if params['ca_cert'] and params['ca_path']:
        dummy, gid = run.target.user_ids(run.target.os_user)
        files.append(dict(path=params['ca_path'], content=params['ca_cert'], uid=0, gid=gid, mode='0644'))
    return files


def check_schedule(params):
    values = [(name, params[name]) for name in ('hour', 'minute', 'full_weekday', 'metrics_every')]
    for job in ('verify', 'drill'):
        schedule = params[job] or {}
        values.extend(('%s %s' % (job, name), schedule.get(name)) for name in ('hour', 'minute', 'weekday'))
    refusal = schedule_refusal(values)
    if refusal:
        raise ChronosError(refusal)


def main():
    run = ModuleRun(dict(
        pg_path=dict(type='path', required=True),
        wrapper=dict(type='str', required=True),
        wrapper_path=dict(type='path', default='/usr/local/bin/pgbackrest-backup.sh'),
        enabled=dict(type='bool', default=True),
        hour=dict(type='int', default=2),
        minute=dict(type='int', default=0),
        full_weekday=dict(type='int', default=0),
        metrics_dir=dict(type='path', default='/var/lib/prometheus/node-exporter'),
        metrics_every=dict(type='int', default=5),
        cron_log=dict(type='path', default='/var/log/chronos-backup-cron.log'),
        repository=dict(type='str', default='the repository'),
        log=dict(type='str'),
        verify=dict(type='dict', default={}),
        drill=dict(type='dict', default={}),
        ca_cert=dict(type='str'),
        ca_path=dict(type='path'),
    ), supports_check_mode=True)
    with run:
        params, stanza = run.params, run.params['stanza']
        check_schedule(params)
        changed = []
        settings = dict((name, params.get(name)) for name in (
            'stanza', 'config', 'binary', 'container', 'os_user', 'pg_user', 'pg_port', 'pg_socket_path', 'pg_bin_path',
            'pg_service', 'stop_timeout', 'pg_path', 'metrics_dir', 'repository', 'log', 'full_weekday'))
        settings.update(log=params['log'] or '/var/log/pgbackrest/%s-backup.log' % stanza,
                        wrapper=params['wrapper_path'], drill=dict(
            (key, value) for key, value in (params['drill'] or {}).items()
            if key in ('path', 'port', 'database', 'query', 'timeout')), installed=installed_files(run))
        interpreter = '/usr/bin/python3' if os.path.exists('/usr/bin/python3') else sys.executable
        files = library_files()
        files[PROGRAM] = (PROGRAM_TEXT % (interpreter, LIBRARY)).encode()
        files[settings_path(stanza)] = (json.dumps(settings, indent=2, sort_keys=True) + '\n').encode()
        cron_file = '/etc/cron.d/pgbackrest-%s' % stanza.replace('.', '_')
        cron_content = cron_text(params, stanza).encode() if params['enabled'] else b''
        diffs = []
        if run.module._diff:
            shown = [(settings_path(stanza), files[settings_path(stanza)], read_local),
                     (cron_file, cron_content, read_local),
                     (params['wrapper_path'], params['wrapper'].encode(), run.target.read_file)]
            diffs = [text_diff(path, before, after) for path, after, read in shown
                     for before in [current(read, path)] if before != after]
        for path, content in sorted(files.items()):
            mode = 0o755 if path == PROGRAM else 0o644
            if write_local_file(path, content, 0, 0, mode, run.check_mode):
                changed.append(path)
        if params['metrics_dir'] and make_local_directory(params['metrics_dir'], 0, 0, 0o755, run.check_mode):
            changed.append(params['metrics_dir'])
        if params['enabled']:
            if write_local_file(cron_file, cron_content, 0, 0, 0o644, run.check_mode):
                changed.append(cron_file)
        elif os.path.lexists(cron_file):
            changed.append(cron_file)
            if not run.check_mode:
                remove_local_file(cron_file)
        if run.target.write_file(params['wrapper_path'], params['wrapper'].encode(), 0, 0, 0o755, run.check_mode):
            changed.append('%s on %s' % (params['wrapper_path'], run.target.describe()))
        # The status metrics from the start, before cron first runs the job: a host without them is not silent.
        if params['metrics_dir'] and not run.check_mode and \
                not os.path.exists(_metrics.file_path(params['metrics_dir'], stanza, 'status')):
            _metrics.refresh(run.target, run.pgbackrest, params['metrics_dir'])
        run.exit(changed=bool(changed), changed_files=changed, cron_file=cron_file, diff=diffs)


if __name__ == '__main__':
    main()
