# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgbackrest_follow on the controller: calls its module on the managed host again and again, each time for up to
`every` seconds, printing the progress it reports as it comes, until the job ends; then returns the job's own result.
A loop here instead of a task that includes itself (which stopped at Python's recursion limit after about 245
polls): a job of days is followed to its end."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()
MODULE = 'chronos.pgbackrest.pgbackrest_follow'


class ActionModule(ActionBase):
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        super(ActionModule, self).run(tmp, task_vars)
        args = dict(self._task.args)
        host = (task_vars or {}).get('inventory_hostname', 'the managed host')
        of = args.get('of', 'job')
        while True:
            status = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
            if status.get('failed'):
                return status
            if status.get('finished'):
                return self._ended(of, host, status['result'])
            if not status.get('alive'):
                return dict(failed=True, changed=True, died=True, msg=(
                    'The %s job died on %s (killed: its async wrapper is gone and it wrote no result); it was at: %s. '
                    'Run the same command again: it finds what the %s left and finishes it.' % (
                        of, host, status.get('progress'), of)))
            display.display('%s: %s' % (host, status.get('progress')))

    @staticmethod
    def _ended(of, host, result):
        result = dict(result)
        for key in ('ansible_job_id', 'finished', 'results_file', 'started'):
            result.pop(key, None)
        if result.get('failed') and 'executed_commands' not in result:
            # async_wrapper's own report: the module process ended without a result (killed).
            result.update(died=True, msg='The %s job died on %s without a result (%s). Run the same command again: it '
                          'finds what the %s left and finishes it.' % (of, host, result.get('msg') or 'killed', of))
        return result
