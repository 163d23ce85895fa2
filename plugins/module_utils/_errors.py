# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's one error: ChronosError, a failure with a complete message. Modules turn it into fail_json
(_module.py), the scheduled program into a message on stderr and an exit code (_jobs.py). The ground floor of
module_utils, with _files: it imports nothing of the collection."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ChronosError(Exception):
    """A failure with a complete message: what was attempted, what was found, what to do. `extra` lands in the
    module's result (fail_json) beside msg."""

    def __init__(self, msg, **extra):
        super(ChronosError, self).__init__(msg)
        self.msg = msg
        self.extra = extra


def untrusted_message(exc):
    text = str(exc)
    return text if 'Nothing was changed' in text else text + ' Nothing was changed.'
