# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Following a restore or backup that runs in the background (Ansible's async) on the managed host: whether it
ended - its result is in its results file -, whether it still runs - Ansible's async wrapper processes for its job id
are in the process table, or the stanza's lock is held (an flock, released by the kernel when its holder dies) - and
how far it got."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import time

from ansible_collections.chronos.pgbackrest.plugins.module_utils._backup import backup_progress
from ansible_collections.chronos.pgbackrest.plugins.module_utils._lock import StanzaLock
from ansible_collections.chronos.pgbackrest.plugins.module_utils._module import resolve_pg_path
from ansible_collections.chronos.pgbackrest.plugins.module_utils._restore import progress as restore_progress


def read_result(path):
    """The job's results file: None while it is missing or being written."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return None


def ended(result):
    """async_wrapper writes {"started": 1, ...} first, and the module's own result, without it, at the end."""
    return result is not None and 'started' not in result


def wrapper_running(job_id, proc='/proc'):
    """Whether one of Ansible's async_wrapper processes for the job runs: they live as long as the job does. Their
    command line names the job id without the '.<pid>' the job id ends with (j302028657798 of j302028657798.2885)."""
    wanted = job_id.split('.')[0].encode()
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        try:
            with open(os.path.join(proc, pid, 'cmdline'), 'rb') as handle:
                words = handle.read().split(b'\0')
        except (IOError, OSError):
            continue
        if any(word.endswith(b'async_wrapper.py') for word in words) and wanted in words:
            return True
    return False


def follow(run, job, of, every):
    """Wait up to `every` seconds for the job to end: {'finished': True, 'result'}, or {'finished': False, 'alive',
    'progress'} - alive False when its async wrapper is gone and no result was written (the job was killed)."""
    job_id, path = job.get('ansible_job_id'), job.get('results_file')
    deadline = time.time() + every
    while True:
        result = read_result(path)
        if ended(result):
            return dict(finished=True, result=result)
        lock = StanzaLock(run.params['stanza'], 'follow')
        # Alive while its async wrapper runs, or while the stanza's lock is held (the module outlived its wrapper).
        if not wrapper_running(job_id) and not lock.holder():
            result = read_result(path)
            if ended(result):
                return dict(finished=True, result=result)
            return dict(finished=False, alive=False, progress=lock.left_behind() or 'it had not started yet')
        if time.time() >= deadline:
            break
        time.sleep(1)
    if of == 'restore':
        text = restore_progress(run.target, run.pgbackrest, resolve_pg_path(run.params, run.target))
    else:
        text = backup_progress(run.target, run.pgbackrest, run.params['log_path'])
    return dict(finished=False, alive=True, progress=text)
