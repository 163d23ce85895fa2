# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""chronos.pgbackrest.schedule_refusal: the pgbackrest_schedule module's own validation, for the role's preflight."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.chronos.pgbackrest.plugins.module_utils._schedule import schedule_refusal


class FilterModule(object):
    def filters(self):
        return {'schedule_refusal': schedule_refusal}
