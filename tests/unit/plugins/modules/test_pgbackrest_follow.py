# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgbackrest_follow's module part and _follow.py: a job's results file as Ansible's async_wrapper writes it, its
wrapper processes in a /proc of the test's own, the progress of a restore, and a job that died."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _follow
from ansible_collections.chronos.pgbackrest.plugins.module_utils._lock import StanzaLock
from ansible_collections.chronos.pgbackrest.plugins.modules import pgbackrest_follow

JOB_ID = 'j872563121004.3307'


@pytest.fixture
def job(tmp_path):
    """A job as async_wrapper left it at its start: {"started": 1, "finished": 0, ...} in its results file."""
    path = tmp_path / JOB_ID
    path.write_text(json.dumps({'started': 1, 'finished': 0, 'ansible_job_id': JOB_ID}))
    return dict(ansible_job_id=JOB_ID, results_file=str(path), started=1, finished=0)


def proc(tmp_path, *cmdlines):
    root = tmp_path / 'proc'
    root.mkdir()
    (root / 'self').mkdir()
    for pid, words in enumerate(cmdlines, 100):
        (root / str(pid)).mkdir()
        (root / str(pid) / 'cmdline').write_bytes(b'\0'.join(word.encode() for word in words) + b'\0')
    return str(root)


def test_wrapper_running_reads_the_process_table(tmp_path):
    # As ansible-core 2.19 starts it (seen in the lab): the job id without its '.<pid>'.
    wrapper = ['/usr/bin/python3.11', '/root/.ansible/tmp/ansible-tmp-1/async_wrapper.py', JOB_ID.split('.', maxsplit=1)[0],
               '315360000', '/root/.ansible/tmp/ansible-tmp-1/AnsiballZ_pgbackrest_restore.py', '_']
    assert _follow.wrapper_running(JOB_ID, proc(tmp_path, ['sleep', '1'], wrapper))
    assert not _follow.wrapper_running('j1.1', str(tmp_path / 'proc'))
    assert not _follow.wrapper_running('j872563121004999.3307', str(tmp_path / 'proc'))
    # The module itself does not name the job: without its wrapper, the job is gone.
    other = tmp_path / 'other'
    other.mkdir()
    assert not _follow.wrapper_running(JOB_ID, proc(other, ['/usr/bin/python3', 'AnsiballZ_pgbackrest_restore.py']))


def test_a_job_that_ended_returns_its_result(run_module, job, monkeypatch):
    with open(job['results_file'], 'w') as handle:
        json.dump({'changed': True, 'lines': ['Restored.'], 'executed_commands': []}, handle)
    monkeypatch.setattr(_follow, 'wrapper_running', lambda job_id: False)
    run = run_module(pgbackrest_follow, dict(stanza='chronos-v2', job=job, of='restore', every=5, pg_path='/data'))
    assert (run.result['finished'], run.result['result']['lines']) == (True, ['Restored.'])


def test_a_running_restore_reports_its_progress(run_module, job, monkeypatch, clock, make_data_dir):
    pg_path = make_data_dir({'base/1/1259': b'x' * 2 ** 20})
    monkeypatch.setattr(_follow, 'wrapper_running', lambda job_id: True)
    with StanzaLock('chronos-v2', 'restore into %s' % pg_path) as lock:
        lock.note('step 4 of 6, restore the files with pgBackRest; started %d; backup size %d' % (clock.now, 4 * 2 ** 20))
        run = run_module(pgbackrest_follow, dict(stanza='chronos-v2', job=job, of='restore', every=5, pg_path=pg_path))
    assert (run.result['finished'], run.result['alive']) == (False, True)
    assert run.result['progress'].startswith('Step 4 of 6, restore the files with pgBackRest: 1 of 4 MiB (25 %); 0 min')
    assert clock.slept == [1] * 5, 'waited `every` seconds for it to end'


def test_a_killed_job_is_reported_with_its_last_step(run_module, job, monkeypatch, lock_dir):
    monkeypatch.setattr(_follow, 'wrapper_running', lambda job_id: False)
    os.makedirs(lock_dir)
    with open(os.path.join(lock_dir, 'chronos-v2.lock'), 'w') as handle:
        handle.write('restore into /data pid 4242: step 4 of 6, restore the files with pgBackRest; started 1; backup '
                     'size 100\n')
    run = run_module(pgbackrest_follow, dict(stanza='chronos-v2', job=job, of='restore', every=30, pg_path='/data'))
    assert (run.result['finished'], run.result['alive']) == (False, False)
    assert run.result['progress'].startswith('restore into /data pid 4242: step 4 of 6, restore the files')


def test_a_module_that_outlived_its_wrapper_is_alive_while_it_holds_the_lock(run_module, job, monkeypatch, clock):
    monkeypatch.setattr(_follow, 'wrapper_running', lambda job_id: False)
    with StanzaLock('chronos-v2', 'restore into /data') as lock:
        lock.note('step 5 of 6, start PostgreSQL and wait for recovery; started %d; backup size 100' % clock.now)
        run = run_module(pgbackrest_follow, dict(stanza='chronos-v2', job=job, of='restore', every=2, pg_path='/data'))
    assert (run.result['finished'], run.result['alive']) == (False, True)
    assert run.result['progress'].startswith('Step 5 of 6, start PostgreSQL')


def test_a_job_killed_before_it_began_says_so(run_module, job, monkeypatch):
    monkeypatch.setattr(_follow, 'wrapper_running', lambda job_id: False)
    run = run_module(pgbackrest_follow, dict(stanza='chronos-v2', job=job, of='backup', every=30))
    assert (run.result['alive'], run.result['progress']) == (False, 'it had not started yet')


def test_a_results_file_being_written_is_not_an_end(tmp_path):
    path = tmp_path / 'half'
    path.write_text('{"changed": tr')
    assert _follow.read_result(str(path)) is None and not _follow.ended(None)
    assert _follow.ended({'changed': False}) and not _follow.ended({'started': 1, 'finished': 0})
