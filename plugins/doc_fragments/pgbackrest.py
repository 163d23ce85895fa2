# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    # Options shared by every module (plugins/module_utils/_pgbackrest.py: pgbackrest_argument_spec).
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
      - Name of a running Docker container that holds PostgreSQL and pgBackRest (container mode). The module
        then runs on the Docker host and runs pgbackrest inside the container as C(postgres) through the Docker
        API; paths such as I(config) and I(pg_path) are paths inside the container.
      - A missing or stopped container fails with a message saying so, and changes nothing.
    type: str
notes:
  - Run the module as the user that owns the PostgreSQL cluster (C(become_user=postgres)), so that the files
    pgBackRest writes (logs, locks, spool) belong to that user. With I(container), run it as a user that may
    use the Docker socket (root); pgbackrest itself still runs as C(postgres) in the container.
requirements:
  - pgBackRest 2.45 or later on the managed host, or in the container with I(container).
  - With I(container), the Docker SDK for Python (C(docker), Debian package C(python3-docker)) on the Docker host.
'''
