# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    # Every module: what pgBackRest and PostgreSQL change has no file diff to show. A module says its own
    # check_mode and idempotent, or takes one of the sets below.
    DOCUMENTATION = r'''
attributes:
  diff_mode:
    support: none
    description: Nothing to show as a diff.
'''

    # Modules that only read.
    READ_ONLY = r'''
attributes:
  check_mode:
    support: full
    description: Reading is safe; the module runs in check mode as it does otherwise.
  idempotent:
    support: full
    description: Changes nothing.
'''

    # Modules whose second run with the same arguments finds the work done in the real state.
    IDEMPOTENT = r'''
attributes:
  idempotent:
    support: full
    description: A second run with the same arguments changes nothing.
'''
