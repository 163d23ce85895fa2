# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Aggregate callback for bench/bench.py: the wall-clock time of each task and the play recap.

Writes one JSON document to the file named by BENCH_TIMER_OUTPUT when the playbook ends:
{"tasks": [{"name", "seconds", "status"}], "stats": {host: {"ok", "changed", "failures", ...}}}.
A task's time runs from its start to its last host result, so with one host it is that host's time.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r'''
name: bench_timer
type: aggregate
short_description: Task wall-clock times for the benchmark
description:
  - Writes task durations and the play recap as JSON to the file named by BENCH_TIMER_OUTPUT.
requirements:
  - BENCH_TIMER_OUTPUT set in the environment
'''


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'bench_timer'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self._tasks = []
        self._current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._current = dict(name=task.get_name(), start=time.time(), end=None, status='started')
        self._tasks.append(self._current)

    def _result(self, status):
        if self._current is not None:
            self._current['end'] = time.time()
            self._current['status'] = status

    def v2_runner_on_ok(self, result):
        self._result('ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result('failed')

    def v2_runner_on_skipped(self, result):
        self._result('skipped')

    def v2_runner_on_unreachable(self, result):
        self._result('unreachable')

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get('BENCH_TIMER_OUTPUT')
        if not path:
            return
        tasks = [dict(name=t['name'], status=t['status'],
                      seconds=(t['end'] - t['start']) if t['end'] else None) for t in self._tasks]
        summary = dict((host, stats.summarize(host)) for host in sorted(stats.processed))
        with open(path, 'w') as handle:
            json.dump(dict(tasks=tasks, stats=summary), handle)
