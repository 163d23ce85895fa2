# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The schedule_refusal filter: the role's preflight refuses what the pgbackrest_schedule module would, in the same
words, before anything changes."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.chronos.pgbackrest.plugins.filter.schedule_refusal import FilterModule
from ansible_collections.chronos.pgbackrest.plugins.module_utils._schedule import schedule_problems

refusal = FilterModule().filters()['schedule_refusal']


def test_a_valid_schedule_is_not_refused():
    assert refusal({'pgbackrest_schedule_hour': 2, 'pgbackrest_schedule_minute': '0', 'pgbackrest_metrics_every': 5,
                    'pgbackrest_schedule_full_weekday': 0, 'pgbackrest_drill_schedule_weekday': None}) == ''


def test_every_problem_in_one_message_in_order():
    assert refusal({'pgbackrest_schedule_hour': '24', 'pgbackrest_schedule_minute': 'half', 'pgbackrest_metrics_every': 0,
                    'pgbackrest_verify_schedule_weekday': -1}) == (
        'Invalid schedule: pgbackrest_schedule_hour must be 0 to 23 (got 24); pgbackrest_schedule_minute must be 0 to '
        '59 (got half); pgbackrest_metrics_every must be 1 to 59 (got 0); pgbackrest_verify_schedule_weekday must be '
        '0 to 6 (got -1); cron would reject the file and nothing would run. Nothing was changed.')


@pytest.mark.parametrize('value', [True, 2.5, '', ' ', '-3', '1e1'])
def test_what_is_not_a_whole_number_is_refused(value):
    assert schedule_problems([('hour', value)]) == ['hour must be 0 to 23 (got %s)' % value]


def test_a_name_without_a_known_range_is_a_mistake_of_the_caller():
    with pytest.raises(ValueError):
        schedule_problems({'pgbackrest_schedule_day': 3})
