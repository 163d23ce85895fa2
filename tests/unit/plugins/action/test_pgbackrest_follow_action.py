# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pgbackrest_follow action: its module called again and again until the job ends, each progress line printed as
it comes, the job's own result returned; a job that died fails with what to run."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.chronos.pgbackrest.plugins.action import pgbackrest_follow


class Action(pgbackrest_follow.ActionModule):
    """The action with its task and its module calls faked: answers, in order."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []
        self._task = type('Task', (), {'args': {'job': {'ansible_job_id': 'j1'}, 'of': 'restore', 'every': 5},
                                       'async_val': 0, 'action': 'chronos.pgbackrest.pgbackrest_follow'})()

    def _execute_module(self, module_name=None, module_args=None, task_vars=None, **kwargs):
        self.calls.append((module_name, module_args))
        return self.answers.pop(0)


@pytest.fixture
def printed(monkeypatch):
    lines = []
    monkeypatch.setattr(pgbackrest_follow.display, 'display', lambda text, *args, **kwargs: lines.append(text))
    monkeypatch.setattr(pgbackrest_follow.ActionBase, 'run', lambda self, tmp=None, task_vars=None: {})
    return lines


def test_prints_progress_until_the_job_ends_then_returns_its_result(printed):
    action = Action([
        dict(finished=False, alive=True, progress='Step 4 of 6: 1 of 4 MiB (25 %)'),
        dict(finished=False, alive=True, progress='Step 4 of 6: 3 of 4 MiB (75 %)'),
        dict(finished=True, result=dict(changed=True, lines=['Restored.'], executed_commands=[], started=0,
                                        ansible_job_id='j1', finished=1))])
    result = action.run(task_vars={'inventory_hostname': 'db1'})
    assert printed == ['db1: Step 4 of 6: 1 of 4 MiB (25 %)', 'db1: Step 4 of 6: 3 of 4 MiB (75 %)']
    assert result == dict(changed=True, lines=['Restored.'], executed_commands=[])
    assert [name for name, args in action.calls] == ['chronos.pgbackrest.pgbackrest_follow'] * 3


def test_a_job_that_died_fails_at_once_with_what_to_run(printed):
    action = Action([dict(finished=False, alive=False, progress='restore into /data pid 7: step 4 of 6')])
    result = action.run(task_vars={'inventory_hostname': 'db1'})
    assert result['failed'] and result['died']
    assert result['msg'] == ('The restore job died on db1 (killed: its async wrapper is gone and it wrote no result); it '
                             'was at: restore into /data pid 7: step 4 of 6. Run the same command again: it finds what '
                             'the restore left and finishes it.')


def test_a_job_whose_module_was_killed_is_reported_as_such(printed):
    """async_wrapper survived its module: it writes a failure of its own, without the module's executed_commands."""
    action = Action([dict(finished=True, result=dict(
        failed=1, msg='Expecting value: line 1 column 1 (char 0)', cmd='AnsiballZ_pgbackrest_restore.py'))])
    result = action.run(task_vars={'inventory_hostname': 'db1'})
    assert result['died'] and result['msg'].startswith('The restore job died on db1 without a result (Expecting value')


def test_a_failed_job_keeps_its_own_message(printed):
    action = Action([dict(finished=True, result=dict(
        failed=True, msg='The restore failed at step restore: ...', executed_commands=['pgbackrest restore']))])
    result = action.run(task_vars={})
    assert result['msg'] == 'The restore failed at step restore: ...' and 'died' not in result


def test_a_module_failure_is_passed_on(printed):
    action = Action([dict(failed=True, msg='Container chronos-db does not exist')])
    assert action.run(task_vars={})['msg'] == 'Container chronos-db does not exist'
