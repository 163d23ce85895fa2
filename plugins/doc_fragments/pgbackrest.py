# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    # Options shared by every module (plugins/module_utils/_module.py: common_argument_spec).
    DOCUMENTATION = r'''
options:
  stanza:
    description:
      - Name of the pgBackRest stanza, for example C(chronos-v2).
    type: str
    required: true
  config:
    description:
      - Path of the pgBackRest configuration file.
      - When omitted, pgBackRest uses its default, C(/etc/pgbackrest/pgbackrest.conf).
    type: path
  binary:
    description:
      - Path of the pgbackrest executable. When omitted it is looked up on the C(PATH).
    type: path
  repo_cipher_pass:
    description:
      - Passphrase of the encrypted repository, for when the configuration file does not hold it.
      - Passed to pgBackRest as the environment variable C(PGBACKREST_REPO1_CIPHER_PASS), never as an argument.
    type: str
  repo_s3_key:
    description:
      - S3 access key, for when the configuration file does not hold it.
      - Passed as C(PGBACKREST_REPO1_S3_KEY), never as an argument.
    type: str
  repo_s3_key_secret:
    description:
      - S3 secret key, for when the configuration file does not hold it.
      - Passed as C(PGBACKREST_REPO1_S3_KEY_SECRET), never as an argument.
    type: str
  container:
    description:
      - Name of the Docker container that holds PostgreSQL and pgBackRest (container mode). The module then runs on
        the container's Docker host and runs pgbackrest and psql in the container through the Docker API; paths such
        as I(config) and I(pg_path) are paths inside the container.
      - A missing container, or one on another Docker host, fails with a message saying so and changes nothing.
    type: str
  os_user:
    description:
      - The operating-system user PostgreSQL and pgBackRest run as on the target. Commands run as this user
        (through C(runuser) when the module runs as root on a host, as the exec's user in a container).
    type: str
    default: postgres
  pg_user:
    description:
      - The PostgreSQL superuser to connect as. By default C(postgres) on a host, and in container mode the
        container's C(POSTGRES_USER) (the official image's only superuser), else C(postgres).
    type: str
  pg_port:
    description:
      - PostgreSQL's port.
    type: int
    default: 5432
  pg_socket_path:
    description:
      - PostgreSQL's unix socket directory on the target.
    type: path
    default: /var/run/postgresql
  pg_bin_path:
    description:
      - Directory of PostgreSQL's programs (pg_ctl, pg_controldata, psql) on the target, when they are not on the
        C(PATH), as on Debian (C(/usr/lib/postgresql/<version>/bin)).
    type: path
  pg_service:
    description:
      - On a host, the service that starts and stops PostgreSQL.
    type: str
    default: postgresql
  stop_timeout:
    description:
      - Seconds PostgreSQL gets to shut down when a restore or a restart stops it; in container mode, what
        C(docker stop) waits before killing it.
    type: int
    default: 60
    aliases: [container_stop_timeout]
notes:
  - Run the module as root (C(become=true)) or as I(os_user). pgbackrest and psql always run as I(os_user), so the
    files pgBackRest writes (logs, locks, spool) belong to that user. In container mode root is needed for the Docker
    socket.
  - Every module reports what it ran in C(executed_commands), also when it fails.
requirements:
  - pgBackRest 2.45 or later on the managed host, or in the container with I(container); psql (PostgreSQL 12 or later).
  - With I(container), the Docker SDK for Python (C(docker), Debian package C(python3-docker)) on the Docker host.
'''
