# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgbackrest_verify's main() from captured info output and pg_stat_archiver rows; "now" is the fake clock."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _metrics
from ansible_collections.chronos.pgbackrest.plugins.modules import pgbackrest_verify

from ansible_collections.chronos.pgbackrest.tests.unit.harness import ok, psql_rows

I1_STOP = 1795512226
ARCHIVING = ok(psql_rows(('120', '0', '00000001000000000000000A', '', str(I1_STOP), '0', 'on', 'x')))


def test_fresh_backups(run_module, clock):
    clock.now = I1_STOP + 3600
    run = run_module(pgbackrest_verify, dict(stanza='chronos-v2'), [ok('info-full-diff-incr.json'), ARCHIVING],
                     check_mode=True)
    assert not run.failed, run.msg
    assert run.result['changed'] is False
    assert run.msg.startswith('Stanza chronos-v2 OK: newest backup 20261124-092311F_20261124-092345I (incr) stopped '
                              '2026-11-24 09:23:46+00, 1h00m ago (limit 25h00m)')
    assert run.result['verify']['ok'] is True
    assert run.commands == ['info', 'psql']


def test_problems_fail_with_every_one_listed(run_module, clock, tmp_path):
    clock.now = I1_STOP + 8 * 86400
    _metrics.write_run(str(tmp_path), 'chronos-v2', 'diff', 87, I1_STOP, I1_STOP + 5)
    run = run_module(pgbackrest_verify, dict(stanza='chronos-v2', max_age='7d', metrics_dir=str(tmp_path),
                                             repository='s3://chronos-backups', schedule='cron', log='backup.log'),
                     [ok('info-full-diff-incr.json'), ARCHIVING])
    assert run.failed
    assert run.msg.startswith('Backups of stanza chronos-v2 on this host need attention (2 problems):\n- The newest backup')
    assert 'older than the limit (168h00m)' in run.msg
    assert 'failed with exit code 87' in run.msg
    assert run.result['verify']['problems'][1].startswith('The last scheduled backup run, diff at ')
    assert len(run.result['executed_commands']) == 2


def test_an_unreadable_repository(run_module):
    run = run_module(pgbackrest_verify, dict(stanza='chronos-v2', repository='s3://chronos-backups'),
                     [ok('info-unreachable.json'), ARCHIVING])
    assert run.failed
    assert '- The repository (s3://chronos-backups) cannot be read: ' in run.msg
    assert run.result['verify']['repository_ok'] is False


@pytest.mark.parametrize('max_age', ['a day', '1.5d'])
def test_a_malformed_max_age(run_module, max_age):
    run = run_module(pgbackrest_verify, dict(stanza='chronos-v2', max_age=max_age))
    assert run.failed
    assert run.msg.startswith("Invalid max_age: '%s' is not a duration" % max_age)
    assert run.msg.endswith('Nothing was checked.')
    assert run.result['executed_commands'] == []
