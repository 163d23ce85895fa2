# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Container mode: PostgreSQL and pgBackRest live in a Docker container and the modules run on its
Docker host. Commands reach the container through the Docker API (the `docker` Python package), never
through a shell, and secrets only through the exec's environment.

While the container runs, commands are exec'd in it. A restore needs PostgreSQL stopped, and PostgreSQL
is the container's main process, so then the command runs in a one-off container from the same image
with the same volumes, network and environment, which is removed afterwards.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import io
import tarfile
import traceback

from ansible.module_utils.basic import missing_required_lib

DOCKER_IMPORT_ERROR = None
try:
    import docker
    from docker.errors import DockerException, NotFound
except ImportError:
    DOCKER_IMPORT_ERROR = traceback.format_exc()

ONE_OFF_LABEL = 'chronos.pgbackrest.one-off-for'


class Container(object):
    """One Docker container that holds PostgreSQL and pgBackRest."""

    def __init__(self, module, name, user):
        self.module = module
        self.name = name
        self.user = user
        if DOCKER_IMPORT_ERROR:
            module.fail_json(msg=missing_required_lib('docker (the Docker SDK for Python)') +
                             ' On a Debian Docker host: apt install python3-docker (the pgbackrest role does).',
                             exception=DOCKER_IMPORT_ERROR)
        try:
            self.client = docker.from_env()
            self.container = self.client.containers.get(name)
        except NotFound:
            module.fail_json(msg="Container '%s' does not exist on this Docker host (docker ps -a does not list it): "
                                 "set the container option (pgbackrest_container) to the name of the PostgreSQL "
                                 "container. Nothing was changed." % name)
        except DockerException as exc:
            module.fail_json(msg='Cannot reach the Docker engine to find container %s: %s. Check that dockerd runs '
                                 'and that this user may use its socket. Nothing was changed.' % (name, exc))

    @property
    def running(self):
        self.container.reload()
        return self.container.status == 'running'

    def require_running(self):
        if not self.running:
            self.module.fail_json(msg="Container '%s' is not running (status: %s): start it (docker start %s) and "
                                      "run again. Nothing was changed." % (self.name, self.container.status, self.name))

    def run(self, argv, environment=None, one_off=False):
        """Run argv as self.user: exec'd in the running container, or with one_off=True in a one-off container
        when it is stopped. Returns (rc, stdout, stderr) as text."""
        if self.running:
            rc, (stdout, stderr) = self.container.exec_run(argv, user=self.user, environment=environment or {},
                                                           demux=True)
            return rc, _text(stdout), _text(stderr)
        if not one_off:
            self.require_running()
        return self._run_one_off(argv, environment or {})

    def _run_one_off(self, argv, environment):
        host_config = self.container.attrs.get('HostConfig') or {}
        network_mode = host_config.get('NetworkMode') or 'default'
        env = list(self.container.attrs.get('Config', {}).get('Env') or [])
        env.extend('%s=%s' % item for item in sorted(environment.items()))
        one_off = self.client.containers.create(
            self.container.image.id, command=argv[1:], entrypoint=argv[:1], user=self.user, environment=env,
            volumes_from=[self.container.id], network_mode=network_mode,
            extra_hosts=_extra_hosts(host_config.get('ExtraHosts')), dns=host_config.get('Dns') or None,
            labels={ONE_OFF_LABEL: self.name})
        try:
            one_off.start()
            rc = one_off.wait().get('StatusCode')
            stdout = one_off.logs(stdout=True, stderr=False)
            stderr = one_off.logs(stdout=False, stderr=True)
        finally:
            one_off.remove(force=True)
        return rc, _text(stdout), _text(stderr)

    def read_file(self, path):
        """The bytes of one file in the container, running or not (the Docker archive API)."""
        try:
            stream, dummy = self.container.get_archive(path)
        except NotFound:
            raise IOError('%s does not exist in container %s' % (path, self.name))
        except DockerException as exc:
            raise IOError('cannot read %s in container %s: %s' % (path, self.name, exc))
        archive = tarfile.open(fileobj=io.BytesIO(b''.join(stream)))
        member = archive.next()
        if member is None or not member.isfile():
            raise IOError('%s is not a file in container %s' % (path, self.name))
        return archive.extractfile(member).read()

    def is_empty_directory(self, path):
        """Whether path is missing or an empty directory in the container."""
        rc, stdout, dummy = self.run(['ls', '-A', path], one_off=True)
        return rc != 0 or not stdout.strip()


def _text(data):
    return (data or b'').decode('utf-8', errors='replace')


def _extra_hosts(entries):
    """HostConfig.ExtraHosts ("name:address") as docker-py wants them."""
    hosts = {}
    for entry in entries or []:
        name, dummy, address = entry.partition(':')
        hosts[name] = address
    return hosts or None
