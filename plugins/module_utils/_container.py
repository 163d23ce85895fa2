# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A target that is a Docker container on this host, reached through the Docker API (the `docker` Python
package), never through a shell. The layout is the official postgres image's: PostgreSQL is the container's
main process, PGDATA and POSTGRES_USER come from the container's environment, and pgbackrest.conf is
bind-mounted from this host (as a file or within a directory).

While the container runs, commands are exec'd in it. When it is stopped (a restore stops PostgreSQL, which
stops the container), they run in a helper container from the same image with the same volumes and network,
which the caller removes when done (close()). Nothing secret is ever put into a container's configuration:
secrets reach exec'd processes through their environment only, which Docker does not keep.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import io
import json
import os
import posixpath
import tarfile
import time

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _target
from ansible_collections.chronos.pgbackrest.plugins.module_utils import _places
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError
from ansible_collections.chronos.pgbackrest.plugins.module_utils._files import (
    make_local_directory, remove_local_file, write_local_file)
from ansible_collections.chronos.pgbackrest.plugins.module_utils._places import (
    DRILL_LABEL, KEEP_LABEL, KEPT_MESSAGE, BindRootPlace, DirectoryPlace, VolumeRootPlace)
from ansible_collections.chronos.pgbackrest.plugins.module_utils._target import _text, Target

HELPER_LABEL = 'chronos.pgbackrest.helper-for'
# A container in one of these states is stopped: Docker starts it again only when asked (or, with restart policy
# always, when the engine restarts). Running, restarting (crash-looping) and paused containers are not.
STOPPED = ('created', 'exited', 'dead')
# A command in a container that crash-loops dies with it: SIGKILLed (137), or its exec finds the container gone (126).
# The engine may record the restart a moment after the exec returned: this long is waited for it to.
KILLED_EXITS = (126, 137)
RESTART_SETTLE_SECONDS = 5
# A helper idles until it is removed; `sleep 1` in a loop works with coreutils and BusyBox alike.
IDLE = ['sh', '-c', 'trap "exit 0" INT TERM; while :; do sleep 1; done']
# exec_run takes no input: a script for stdin travels in this environment variable instead.
STDIN_VARIABLE = 'CHRONOS_PGBACKREST_STDIN'


def docker_client():
    """docker.from_env(), or a ChronosError saying what to install."""
    try:
        import docker
    except ImportError:
        raise ChronosError('The Docker SDK for Python (docker) is missing on this Docker host: install it '
                           '(apt install python3-docker; the pgbackrest role does) and run again.')
    try:
        return docker.from_env()
    except Exception as exc:  # docker.errors.DockerException, or a socket error
        raise ChronosError('Cannot reach the Docker engine: %s. Check that dockerd runs and that this user may '
                           'use its socket (run as root). Nothing was changed.' % exc)


def _not_found(exc):
    return type(exc).__name__ in ('NotFound', 'ImageNotFound')


class ContainerTarget(Target):
    """One Docker container on this host that holds PostgreSQL and pgBackRest."""

    kind = 'container'

    def __init__(self, name, config_path='/etc/pgbackrest/pgbackrest.conf', client=None, **settings):
        super(ContainerTarget, self).__init__(**settings)
        self.name = name
        self.config_path = config_path
        # Only a restore runs commands while the container is stopped (in a helper); anything else is refused.
        self.helper_when_stopped = False
        self.refuse_remote_engine()
        self.client = client or docker_client()
        try:
            self.container = self.client.containers.get(name)
        except Exception as exc:
            if _not_found(exc):
                raise ChronosError("Container '%s' does not exist on this Docker host (docker ps -a does not list "
                                   "it): set the container option (pgbackrest_container) to the name of the "
                                   "PostgreSQL container. Nothing was changed." % name)
            raise ChronosError('Cannot reach the Docker engine to find container %s: %s. Nothing was changed.'
                               % (name, exc))
        self._helper = None

    # --- facts from the container's configuration --------------------------------------------------
    def describe(self):
        return "container '%s'" % self.name

    @property
    def environment(self):
        pairs = (item.partition('=') for item in self.container.attrs.get('Config', {}).get('Env') or [])
        return dict((name, value) for name, dummy, value in pairs)

    @property
    def default_pg_user(self):
        # The official image's initdb --username="$POSTGRES_USER": without it the superuser is postgres.
        return self.environment.get('POSTGRES_USER') or 'postgres'

    @property
    def pgdata(self):
        return self.environment.get('PGDATA')

    @property
    def mounts(self):
        return self.container.attrs.get('Mounts') or []

    @property
    def image_id(self):
        return self.container.attrs.get('Image') or self.container.image.id

    @property
    def restart_policy(self):
        return (self.container.attrs.get('HostConfig') or {}).get('RestartPolicy') or {'Name': 'no'}

    @property
    def status(self):
        self.container.reload()
        return self.container.status

    @property
    def running(self):
        return self.status == 'running'

    @property
    def stopped(self):
        return self.status in STOPPED

    def refuse_remote_engine(self):
        """The collection reads and writes the container's bind mounts and volumes on this host's disk: the
        engine must be this host's."""
        host = os.environ.get('DOCKER_HOST', '')
        if host and not host.startswith('unix://'):
            raise ChronosError("Container '%s' is on the Docker engine at %s, not on this host: run the collection "
                               "on that Docker host itself (put it in the inventory). Nothing was changed."
                               % (self.name, host))

    def mount_for(self, path):
        """The mount that holds path in the container (the deepest one), or None."""
        path = posixpath.normpath(path)
        holding = [mount for mount in self.mounts
                   if path == mount.get('Destination') or path.startswith(mount.get('Destination', '').rstrip('/') + '/')]
        return max(holding, key=lambda mount: len(mount['Destination'])) if holding else None

    def host_path(self, path):
        """Where a path of the container lies on this host's disk (through its bind mount or volume), or None
        when it lies in the container's own filesystem."""
        mount = self.mount_for(path)
        if mount is None:
            return None
        relative = posixpath.relpath(posixpath.normpath(path), mount['Destination'])
        source = mount.get('Source') or ''
        if not source or not os.path.exists(source):
            raise ChronosError("The %s %s of container '%s' is not on this host's disk (%s): is the container on "
                               "another Docker host? Run the collection on that host. Nothing was changed." % (
                                   mount.get('Type'), mount.get('Name') or source, self.name, path))
        return source if relative == '.' else os.path.join(source, relative)

    # --- processes ----------------------------------------------------------------------------------
    def allow_commands_while_stopped(self):
        self.helper_when_stopped = True

    def _run(self, argv, user, env, stdin):
        if stdin is not None:
            env = dict(env, **{STDIN_VARIABLE: _text(stdin)})
            argv = ['sh', '-c', 'printf "%%s" "$%s" | "$@"' % STDIN_VARIABLE, 'sh'] + argv
        status, restarts = self.status, None
        if status == 'running':
            where = self.container
            restarts = self.container.attrs.get('RestartCount')
        elif self.helper_when_stopped:
            # A restore: a stopped container's data, or a crash-looping or paused one's, is read from a helper (whose
            # pg_isready never reaches the container's socket: not on a volume).
            where = self.helper()
        elif status in STOPPED:
            raise ChronosError("Container '%s' is not running (status: %s): start it (docker start %s) and run again. "
                               "Nothing was changed." % (self.name, status, self.name))
        else:
            raise ChronosError("Container '%s' is %s: PostgreSQL in it does not answer. A restore stops it whatever its "
                               "state; anything else waits until it runs. Nothing was changed." % (self.name, status))
        try:
            rc, (stdout, stderr) = where.exec_run(argv, user=user or '', environment=env, demux=True)
        except Exception as exc:
            if where is self.container and self.helper_when_stopped and self._restarted_since(restarts, killed=True):
                return self._run_in_helper(argv, user, env)
            raise ChronosError("Cannot run %s in %s: %s" % (argv[0], self.describe(), exc))
        if rc != 0 and where is self.container and self.helper_when_stopped and self._restarted_since(
                restarts, killed=rc in KILLED_EXITS):
            # A crash-looping container was up for a moment, and its end killed the command (137) or the exec found
            # it gone ('cannot exec in a deleted state'): a restore reads it from the helper instead (what it runs
            # there reads and makes nothing a second run would not).
            return self._run_in_helper(argv, user, env)
        return rc, stdout or b'', stderr or b''

    def _restarted_since(self, restarts, killed=False):
        """Whether the container stopped or started again since RestartCount was restarts. For a command that was
        killed (or whose exec failed), the engine is given RESTART_SETTLE_SECONDS to see that the container's main
        process died with it: the exec can end before the engine records the restart."""
        deadline = time.time() + (RESTART_SETTLE_SECONDS if killed else 0)
        while True:
            if self.status != 'running' or self.container.attrs.get('RestartCount') != restarts:
                return True
            if time.time() >= deadline:
                return False
            time.sleep(0.2)

    def _run_in_helper(self, argv, user, env):
        try:
            rc, (stdout, stderr) = self.helper().exec_run(argv, user=user or '', environment=env, demux=True)
        except Exception as exc:
            raise ChronosError("Cannot run %s in %s: %s" % (argv[0], self.describe(), exc))
        return rc, stdout or b'', stderr or b''

    def helper(self):
        """A container from the same image, with the same volumes and network, idling until close(): where
        commands run while the container is stopped. Files pgbackrest.conf points at outside the mounts (a CA
        file the collection copied in) are copied along."""
        if self._helper is not None:
            return self._helper
        for leftover in self.client.containers.list(all=True, filters={'label': '%s=%s' % (HELPER_LABEL, self.name)}):
            leftover.remove(force=True)
        self._helper = self.sibling('%s-pgbackrest-helper' % self.name, {HELPER_LABEL: self.name}, share_volumes=True)
        return self._helper

    def sibling(self, name, labels, share_volumes=False):
        """A container from this one's image, on its network (with its extra hosts and DNS), idling as root until it
        is removed, with the files pgbackrest.conf points at outside the mounts copied in: with share_volumes this
        one's volumes too (the restore helper), else none of them (the drill's scratch container)."""
        host_config = self.container.attrs.get('HostConfig') or {}
        created = self.client.containers.create(
            self.image_id, entrypoint=IDLE[:1], command=IDLE[1:], user='root',
            volumes_from=[self.container.id] if share_volumes else None,
            network_mode=host_config.get('NetworkMode') or 'default',
            extra_hosts=_extra_hosts(host_config.get('ExtraHosts')), dns=host_config.get('Dns') or None,
            labels=labels, name=name)
        created.start()
        copy_outside_mounts(self, created)
        return created

    def close(self):
        if self._helper is not None:
            try:
                self._helper.remove(force=True)
            finally:
                self._helper = None

    # --- files --------------------------------------------------------------------------------------
    def read_file(self, path):
        return read_container_file(self.container, path, self.name)

    def write_file(self, path, content, uid, gid, mode, check_mode=False):
        """Bind-mounted paths are written on this host (a file mounted on its own in place, keeping its inode);
        anything else is copied into the container (lost if it is recreated: the role puts it back)."""
        mount = self.mount_for(path)
        if mount is not None and mount.get('Type') == 'bind':
            host_path = self.host_path(path)
            try:
                return write_local_file(host_path, content, uid, gid, mode, check_mode,
                                        in_place=posixpath.normpath(path) == mount['Destination'])
            except (IOError, OSError) as exc:
                raise ChronosError("Cannot write %s, bind-mounted into container '%s' as %s: %s. Make it writable "
                                   "by root on this host. Nothing was changed." % (host_path, self.name, path, exc))
        try:
            current = read_container_member(self.container, path)
        except IOError:
            current = None
        if current is not None and (current[0], current[1].uid, current[1].gid, current[1].mode & 0o7777) == (
                content, uid, gid, mode):
            return False
        if check_mode:
            return True
        put_file(self.container, path, content, uid, gid, mode)
        return True

    def remove_file(self, path):
        mount = self.mount_for(path)
        if mount is not None and mount.get('Type') == 'bind':
            # The name only, through its directory's descriptor: the mount's source may lie in its user's directory.
            remove_local_file(self.host_path(path), any_owner=True)
        else:
            self.run(['rm', '-f', path], user='root')

    def ensure_directory(self, path, uid, gid, mode, check_mode=False):
        if self.run(['test', '-d', path], user='root').rc == 0:
            return False
        if not check_mode:
            done = self.run(['install', '-d', '-o', str(uid), '-g', str(gid), '-m', '%o' % mode, path], user='root')
            if done.rc != 0:
                raise ChronosError('Cannot create %s in %s: %s' % (path, self.describe(), done.output))
        return True

    # --- PostgreSQL ---------------------------------------------------------------------------------
    def postgresql_running(self, pg_path):
        """PostgreSQL is the container's main process: it runs, or is about to again, unless the container is
        stopped - a restarting (crash-looping) or paused container must be stopped before its data is touched."""
        return not self.stopped

    def stop_postgresql(self, pg_path):
        """Stop the container whatever its state (running, restarting, paused)."""
        if self.status == 'paused':
            self.record(['docker', 'unpause', self.name])
            self.container.unpause()
        self.record(['docker', 'stop', '--time', str(self.stop_timeout), self.name])
        self.container.stop(timeout=self.stop_timeout)
        deadline = time.time() + self.stop_timeout + 30
        while not self.stopped:
            if time.time() >= deadline:
                raise ChronosError("Container '%s' is still %s %d s after docker stop." % (
                    self.name, self.status, self.stop_timeout + 30))
            time.sleep(0.5)

    # --- the restart policy, held off while a restore works on the data -------------------------------------------
    def _held_policy_path(self):
        return os.path.join(_target.SETTINGS_DIRECTORY, 'held-restart-policies', '%s.json' % self.name)

    def _held_policy(self):
        """The restart policy a restore set aside for this very container, or None. A record of another container of
        the same name (recreated since: it took its policy from whoever recreated it) is not this one's."""
        try:
            with open(self._held_policy_path()) as handle:
                policy = json.load(handle)
        except (IOError, OSError, ValueError):
            return None
        if policy.get('Container', self.container.id) != self.container.id:
            return None
        return dict((key, value) for key, value in policy.items() if key != 'Container')

    def held_restart_policy(self):
        """The restart policy a restore set aside (its name), or None."""
        return (self._held_policy() or {}).get('Name')

    def hold_restart_policy(self):
        """Record the container's restart policy on this host (root's only) and set it to no, so that Docker does not
        start the container again - a crash-looping one, or on its own after docker stop with always - while a
        restore works on its data. Done once: an interrupted restore keeps the first record."""
        policy = dict(self.restart_policy)
        if policy.get('Name') in (None, '', 'no') or self.held_restart_policy():
            return
        path = self._held_policy_path()
        make_local_directory(os.path.dirname(path), 0, 0, 0o700)
        record = dict(policy, Container=self.container.id)
        write_local_file(path, (json.dumps(record, sort_keys=True) + '\n').encode(), 0, 0, 0o600)
        self.record(['docker', 'update', '--restart=no', self.name])
        self.container.update(restart_policy={'Name': 'no'})

    def release_restart_policy(self):
        """Put back the restart policy hold_restart_policy set aside, if any."""
        path = self._held_policy_path()
        policy = self._held_policy()
        if policy is None:
            if os.path.lexists(path):
                remove_local_file(path)      # another container's, of the same name: nothing to put back here
            return
        restart = policy['Name'] + (':%d' % policy['MaximumRetryCount'] if policy.get('MaximumRetryCount') else '')
        self.record(['docker', 'update', '--restart=%s' % restart, self.name])
        self.container.update(restart_policy=policy)
        remove_local_file(path)

    def scratch_place(self, live_pg_path, settings):
        return ContainerScratch(self, live_pg_path, settings)

    @property
    def install_advice(self):
        return ("Install it in the container's image (for example apt-get install pgbackrest in its Dockerfile) and "
                "recreate the container.")

    def refuse_unless_running(self):
        if not self.running:
            raise ChronosError("Container '%s' is not running (status %s): start it (docker start %s) and run again. "
                               "Nothing was changed." % (self.name, self.status, self.name))

    def config_location(self, config):
        mount = self.mount_for(config)
        if mount is None or mount.get('Type') not in ('bind', 'volume'):
            raise ChronosError("Container '%s' does not mount %s from this host: the role writes it on the Docker host. "
                               "Recreate the container with it bind-mounted, as the guide does (docker run -v "
                               "/path/on/host/pgbackrest.conf:%s ...) or with its directory mounted. Nothing was "
                               "changed." % (self.name, config, config))
        host_path = self.host_path(config)
        kind = 'file' if os.path.normpath(config) == mount['Destination'] else 'directory'
        checked = host_path if kind == 'file' else os.path.dirname(host_path)
        if os.path.exists(checked) and os.statvfs(checked).f_flag & os.ST_RDONLY:
            raise ChronosError('%s, mounted into container %s as %s, is on a read-only filesystem of this host: the role '
                               'cannot write the configuration. Nothing was changed.' % (checked, self.name, config))
        if kind == 'file' and not os.path.isfile(host_path):
            raise ChronosError('%s, bind-mounted into container %s as %s, is not a file on this host. Nothing was '
                               'changed.' % (host_path, self.name, config))
        return kind, host_path

    def start_postgresql(self):
        self.record(['docker', 'start', self.name])
        self.container.start()

    def recover(self, pg_path, timeout, pause):
        """Recover a restored data directory in the helper, stop it there cleanly, then start the container on
        the recovered cluster. Recovery never runs as the container's main process, so a recovery that fails
        never makes Docker restart the container over and over (restart policies always, unless-stopped,
        on-failure): the container stays stopped and the error says why."""
        log = '/tmp/chronos-pgbackrest-recovery.log'
        pg_ctl = self.pg_tool('pg_ctl')
        options = "-c listen_addresses='' -c unix_socket_directories=%s -p %d" % (self.socket_path, self.pg_port)
        self.run([pg_ctl, '-D', pg_path, '-l', log, '-o', options, '-w', '-t', str(timeout), 'start'])

        def alive():
            return self.run([pg_ctl, '-D', pg_path, 'status']).rc == 0

        def why_stopped():
            lines = self.run(['tail', '-n', '40', log]).stdout.splitlines()
            return ' '.join([line for line in lines if 'FATAL' in line or 'PANIC' in line][-3:]) or 'see %s' % log
        self.wait_for_recovery(timeout, pause, alive, why_stopped)
        stopped = self.run([pg_ctl, '-D', pg_path, '-m', 'fast', '-w', '-t', '120', 'stop'])
        if stopped.rc != 0:
            raise ChronosError('PostgreSQL recovered in the helper container but did not stop there: %s'
                               % stopped.output, step='recover')
        self.start_postgresql()
        if not self.wait_until_running(30) or not self.wait_until_ready(timeout):
            raise ChronosError("Container '%s' did not come back after the recovery: %s" % (
                self.name, self.logs_errors()), step='start')
        if pause:
            self.wait_for_recovery(timeout, pause, lambda: self.running, self.logs_errors)

    def local_path(self, path):
        return self._host_path_or_none(path)

    def _host_path_or_none(self, path):
        try:
            return self.host_path(path)
        except ChronosError:
            return None

    def logs_errors(self):
        lines = _text(self.container.logs(tail=40)).splitlines()
        return ' '.join([line for line in lines if 'FATAL' in line or 'PANIC' in line][-3:]) or 'see docker logs %s' % self.name

    def data_place(self, pg_path):
        """Where the data directory's files lie on this host, and so how a restore keeps them."""
        mount = self.mount_for(pg_path)
        if mount is None:
            raise ChronosError("In container '%s', %s is on no volume: the data lives in the container's own "
                               "filesystem and would not survive the restore. Nothing was changed." % (self.name, pg_path))
        local = self.host_path(pg_path)
        if posixpath.normpath(pg_path) != mount['Destination']:
            return DirectoryPlace(local, self._host_path_or_none, owner=lambda: self.user_ids(self.os_user)[0])
        if mount.get('Type') == 'volume':
            if mount.get('Driver', 'local') != 'local':
                raise ChronosError("In container '%s', %s is the root of volume %s of driver %s: only local volumes "
                                   "can have their files moved aside. Nothing was changed." % (
                                       self.name, pg_path, mount.get('Name'), mount.get('Driver')))
            return VolumeRootPlace(self.client, mount['Name'], local, self.name)
        return BindRootPlace(local)

    def user_ids(self, user):
        done = self.run(['id', '-u', user], user='root')
        group = self.run(['id', '-g', user], user='root')
        if done.rc != 0 or group.rc != 0:
            raise ChronosError("There is no user '%s' in %s: %s" % (user, self.describe(), done.output))
        return int(done.stdout.strip()), int(group.stdout.strip())

    def wait_until_running(self, timeout):
        deadline = time.time() + timeout
        while not self.running:
            if time.time() >= deadline:
                return False
            time.sleep(0.5)
        return True


def read_container_member(container, path):
    """(content bytes, TarInfo) of one file in a container, running or not (the Docker archive API)."""
    try:
        stream, dummy = container.get_archive(path)
    except Exception as exc:
        raise IOError('cannot read %s: %s' % (path, exc))
    archive = tarfile.open(fileobj=io.BytesIO(b''.join(stream)))
    member = archive.next()
    if member is None or not member.isfile():
        raise IOError('%s is not a file' % path)
    return archive.extractfile(member).read(), member


def read_container_file(container, path, name):
    try:
        return read_container_member(container, path)[0]
    except IOError as exc:
        raise IOError('%s in container %s' % (exc, name))


def put_file(container, path, content, uid, gid, mode):
    """Copy one file into a container (the Docker archive API), with its owner and mode."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode='w') as archive:
        info = tarfile.TarInfo(name=posixpath.basename(path))
        info.size, info.uid, info.gid, info.mode, info.mtime = len(content), uid, gid, mode, int(time.time())
        archive.addfile(info, io.BytesIO(content))
    directory = posixpath.dirname(path)
    try:
        copied = container.put_archive(directory, data.getvalue())
    except Exception as exc:
        if not _not_found(exc):
            raise
        # The directory is not in the container (a scratch container from an image without it): make it.
        container.exec_run(['mkdir', '-p', directory], user='root')
        copied = container.put_archive(directory, data.getvalue())
    if not copied:
        raise ChronosError('Docker refused to copy %s into container %s.' % (path, container.name))


def copy_outside_mounts(target, into):
    """Copy the files pgbackrest.conf names (repo*-ca-file) that the target holds outside its mounts into another
    container made from the same image: a helper or a drill's scratch container."""
    for path in ca_files(target):
        if target.mount_for(path) is None:
            try:
                content, member = read_container_member(target.container, path)
            except IOError:
                continue
            put_file(into, path, content, member.uid, member.gid, member.mode)


def ca_files(target):
    try:
        text = _text(target.read_file(target.config_path))
    except (IOError, OSError):
        return []
    files = []
    for line in text.splitlines():
        name, dummy, value = line.partition('=')
        if name.strip().endswith(('-ca-file', '-storage-ca-file')) and value.strip():
            files.append(value.strip())
    return files


def _extra_hosts(entries):
    """HostConfig.ExtraHosts ("name:address") as docker-py wants them."""
    hosts = {}
    for entry in entries or []:
        name, dummy, address = entry.partition(':')
        hosts[name] = address
    return hosts or None


class ContainerScratch(object):
    """A scratch container from the live container's image: its own anonymous volumes, the same network,
    pgbackrest.conf and its CA file copied in (never in its configuration)."""

    def __init__(self, live, live_pg_path, settings):
        self.live = live
        self.settings = settings
        self.name = '%s-pgbackrest-drill' % live.name
        self.container = None
        self.target = None

    def describe(self):
        return "container '%s'" % self.name

    def _existing(self):
        try:
            return self.live.client.containers.get(self.name)
        except Exception as exc:
            if type(exc).__name__ == 'NotFound':
                return None
            raise

    def not_ours(self):
        existing = self._existing()
        if existing is not None and (existing.labels or {}).get(DRILL_LABEL) != self.live.name:
            return "a container named %s exists and is not this drill's: remove or rename it" % self.name
        return None

    def kept(self):
        """Why the scratch container is not the drill's to remove (a drill kept it, or made it before drills said
        whether they keep theirs), or None."""
        existing = self._existing()
        if existing is None or (existing.labels or {}).get(KEEP_LABEL) == 'no':
            return None
        return KEPT_MESSAGE % ("Container '%s'" % self.name, '')

    def refusal(self):
        if self.not_ours() or self.kept():
            return self.not_ours() or self.kept()
        network = (self.live.container.attrs.get('HostConfig') or {}).get('NetworkMode')
        if network == 'host' and _places.port_listening(self.settings.port):
            return 'something already listens on port %d of this host' % self.settings.port
        return None

    def exists(self):
        return self._existing() is not None

    def free(self):
        root = self.live.client.info().get('DockerRootDir') or '/var/lib/docker'
        stat = os.statvfs(root)
        return stat.f_bavail * stat.f_frsize

    def create(self, stanza):
        # One left by an interrupted drill (refusal() let no kept one through).
        self.remove()
        self.container = self.live.sibling(self.name, {
            DRILL_LABEL: self.live.name, KEEP_LABEL: 'yes' if self.settings.keep else 'no',
            'chronos.pgbackrest.drill-stanza': stanza})
        # No volume of the live container: its configuration comes along as a copy.
        content, member = read_container_member(self.live.container, self.live.config_path)
        put_file(self.container, self.live.config_path, content, member.uid, member.gid, member.mode)
        self.target = ContainerTarget(self.name, client=self.live.client, config_path=self.live.config_path,
                                      os_user=self.live.os_user, pg_user=self.live.pg_user,
                                      pg_port=self.settings.port, socket_path='/tmp', bin_path=self.live.bin_path)
        self.target.executed_commands = self.live.executed_commands
        path = posixpath.normpath(self.settings.path)
        self.target.run(['install', '-d', '-o', self.live.os_user, '-m', '0700', path], user='root')
        return self.target, posixpath.join(path, 'data')

    def remove(self):
        existing = self.container or self._existing()
        if existing is not None:
            existing.remove(force=True, v=True)
        self.container = None
