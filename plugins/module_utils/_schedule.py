# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The schedule's one validation, for the pgbackrest_schedule module and the role's preflight (the filter
chronos.pgbackrest.schedule_refusal): each value a whole number in the range its name's end gives."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

# By the end of the name: pgbackrest_schedule_hour and the module's hour alike.
RANGES = (('hour', 0, 23), ('minute', 0, 59), ('weekday', 0, 6), ('every', 1, 59))


def _whole(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if text.isdigit() else None


def schedule_problems(values):
    """values: [(name, value)] or an ordered {name: value}; a sentence for each value out of its range, in order.
    None stands for a value not given."""
    items = values.items() if hasattr(values, 'items') else values
    problems = []
    for name, value in items:
        if value is None:
            continue
        for end, low, high in RANGES:
            if name.endswith(end):
                number = _whole(value)
                if number is None or not low <= number <= high:
                    problems.append('%s must be %d to %d (got %s)' % (name, low, high, value))
                break
        else:
            raise ValueError('no range is known for %s' % name)
    return problems


def schedule_refusal(values):
    """The one message refusing the schedule, or '' when cron would take it."""
    problems = schedule_problems(values)
    if not problems:
        return ''
    return ('Invalid schedule: %s; cron would reject the file and nothing would run. Nothing was changed.'
            % '; '.join(problems))
