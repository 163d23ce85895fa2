# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The factory above the two drivers: the target a module's options or a scheduled job's settings describe."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.chronos.pgbackrest.plugins.module_utils._container import ContainerTarget
from ansible_collections.chronos.pgbackrest.plugins.module_utils._host import HostTarget


def make_target(settings):
    """The target settings describe (the modules' shared options, or a scheduled job's settings file): the
    container named by `container`, or this host."""
    common = dict(os_user=settings.get('os_user') or 'postgres', pg_user=settings.get('pg_user') or None,
                  pg_port=settings.get('pg_port') or 5432,
                  socket_path=settings.get('pg_socket_path') or '/var/run/postgresql',
                  bin_path=settings.get('pg_bin_path') or None,
                  # Settings written before the option was named stop_timeout say container_stop_timeout.
                  stop_timeout=settings.get('stop_timeout') or settings.get('container_stop_timeout') or 60)
    if settings.get('container'):
        return ContainerTarget(settings['container'], config_path=settings.get('config') or '/etc/pgbackrest/pgbackrest.conf', **common)
    return HostTarget(pg_service=settings.get('pg_service') or 'postgresql', **common)
