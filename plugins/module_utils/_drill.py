# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore drill: restore a backup into a scratch place, start it on another port with WAL archiving off,
check it (pg_amcheck and a query), report how long it took and how old the newest restored transaction is,
and remove the scratch place, also on failure. The live cluster is never touched.

The scratch place is a directory on the database host, or in container mode a scratch container from the
live container's image (its own anonymous volumes, the same network, pgbackrest.conf copied in, nothing
secret in its configuration). With keep=True the scratch cluster is left running instead, to pull data out
of it: that is how an older stanza (the guide's `chronos`) is restored without touching production.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import posixpath
import re
import shutil
import time

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _files, _target
from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import PgBackRestError
from ansible_collections.chronos.pgbackrest.plugins.module_utils._postgres import control_data
from ansible_collections.chronos.pgbackrest.plugins.module_utils._restore import (
    Request, archived_wal, choose_backup, followed_timeline, timeline_line)
from ansible_collections.chronos.pgbackrest.plugins.module_utils._target import ChronosError, HostTarget

MARKER = '# pgbackrest restore drill'
DRILL_LABEL = 'chronos.pgbackrest.drill-for'
# Whether the drill that made a scratch container keeps it: 'yes' or 'no'.
KEEP_LABEL = 'chronos.pgbackrest.drill-keep'
CONTROL_SETTINGS = (('max_connections', 'max_connections'), ('max_worker_processes', 'max_worker_processes'),
                    ('max_wal_senders', 'max_wal_senders'), ('max_prepared_xacts', 'max_prepared_transactions'),
                    ('max_locks_per_xact', 'max_locks_per_transaction'))


class Settings(object):
    def __init__(self, path='/var/lib/postgresql/pgbackrest-drill', port=5433, database='postgres',
                 query='SELECT count(*) FROM pg_class', timeout=600, target=None, keep=False, stanza=None):
        self.path = path
        self.port = int(port)
        self.database = database
        self.query = query
        self.timeout = int(timeout)
        self.target = target or None
        self.keep = keep
        self.stanza = stanza


def _port_listening(port):
    """Whether something on this machine listens on a TCP port, or has a PostgreSQL socket for it."""
    wanted = ':%04X' % port
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            with open(table) as handle:
                next(handle)
                for line in handle:
                    fields = line.split()
                    if fields[3] == '0A' and fields[1].endswith(wanted):
                        return True
        except (IOError, OSError, StopIteration):
            continue
    try:
        with open('/proc/net/unix') as handle:
            return any(line.rstrip().endswith('/.s.PGSQL.%d' % port) for line in handle)
    except (IOError, OSError):
        return False


KEPT_MESSAGE = ('%s was kept by an earlier drill (keep)%s: a drill never removes what it did not create. Remove it '
                'with playbooks/restore_drill.yml -e pgbackrest_drill_remove=true once done with it, or drill into '
                'another pgbackrest_drill_path and pgbackrest_drill_port')


class HostScratch(object):
    """A scratch directory on the database host, with its sockets in a private directory. What a drill made is
    recorded on this host, root's alone (STATE_DIRECTORY/drills): a later drill removes a scratch place an interrupted
    drill left, never one kept on purpose."""

    def __init__(self, live, live_pg_path, settings):
        self.live = live
        self.live_pg_path = live_pg_path
        self.settings = settings
        self.path = os.path.normpath(settings.path)
        self.target = None
        self.created = False

    def describe(self):
        return self.path

    def not_ours(self):
        """Why the scratch path is not the drill's own to create or remove, or None."""
        path, live = os.path.realpath(self.path), os.path.realpath(self.live_pg_path)
        if not self.settings.path.startswith('/') or path.count('/') < 2:
            return "the drill path '%s' must be an absolute path at least two levels deep" % self.settings.path
        if path == live or (path + '/').startswith(live + '/') or (live + '/').startswith(path + '/'):
            return 'the drill path %s and the live data directory %s are the same or lie inside one another' % (
                self.path, self.live_pg_path)
        if os.path.lexists(self.path) and self.record() is None and not self._empty() \
                and not os.path.exists(os.path.join(self.path, 'drill.conf')):
            return '%s exists and is not a drill\'s scratch directory (no drill.conf): move it away' % self.path
        return None

    def _empty(self):
        return os.path.isdir(self.path) and not os.path.islink(self.path) and not os.listdir(self.path)

    def refusal(self):
        if self.settings.port == self.live.pg_port:
            return 'the drill port %d is the live cluster\'s port' % self.settings.port
        return self.not_ours() or self.kept() or ('something already listens on port %d' % self.settings.port
                                                  if _port_listening(self.settings.port) else None)

    def _record_path(self):
        return os.path.join(_target.STATE_DIRECTORY, 'drills', '%s.json' % self.path.strip('/').replace('/', '_'))

    def record(self):
        """What the drill that made this scratch place recorded ({keep, stanza, created}), or None."""
        try:
            handle = _files.open_existing(self._record_path(), owners=(0,))
            with os.fdopen(handle) as stream:
                return json.load(stream)
        except (IOError, OSError, ValueError, _files.UntrustedPath):
            return None

    def kept(self):
        """Why this scratch place is not the drill's to remove (a drill kept it), or None."""
        if not os.path.lexists(self.path) or self._empty():
            return None
        record = self.record()
        if record is not None and not record.get('keep'):
            return None
        return KEPT_MESSAGE % (self.path, ' (stanza %s)' % record['stanza'] if record and record.get('stanza') else '')

    def exists(self):
        return os.path.lexists(self.path)

    def free(self):
        parent = self.path
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        stat = os.statvfs(parent)
        return stat.f_bavail * stat.f_frsize

    def create(self, stanza):
        if os.path.lexists(self.path):
            # Left by a drill that was interrupted (refusal() let no kept place through).
            self.remove()
        _files.write_file(self._record_path(), json.dumps(dict(
            keep=bool(self.settings.keep), stanza=stanza, created=int(time.time()))).encode(), 0, 0, 0o600,
            create_mode=0o700)
        uid, gid = self.live.user_ids(self.live.os_user)
        # Made as pgBackRest's user where that user owns the parent (/var/lib/postgresql): _files.
        _files.make_directory(self.path, uid, gid, 0o700)
        self.created = True
        socket_dir = os.path.join(self.path, 'socket')
        self.target = HostTarget(os_user=self.live.os_user, superuser=self.live.superuser, pg_port=self.settings.port,
                                 socket_path=socket_dir, bin_path=self.live.bin_path)
        self.target.executed_commands = self.live.executed_commands
        return self.target, os.path.join(self.path, 'data')

    def remove(self):
        data = os.path.join(self.path, 'data')
        if os.path.exists(os.path.join(data, 'postmaster.pid')):
            target = self.target or self.live
            target.run([target.pg_tool('pg_ctl'), '-D', data, '-m', 'immediate', '-w', 'stop'])
        # rmtree follows no link, the top one included.
        shutil.rmtree(self.path, ignore_errors=True)
        _files.remove_file(self._record_path())


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
        if network == 'host' and _port_listening(self.settings.port):
            return 'something already listens on port %d of this host' % self.settings.port
        return None

    def exists(self):
        return self._existing() is not None

    def free(self):
        root = self.live.client.info().get('DockerRootDir') or '/var/lib/docker'
        stat = os.statvfs(root)
        return stat.f_bavail * stat.f_frsize

    def create(self, stanza):
        from ansible_collections.chronos.pgbackrest.plugins.module_utils._container import (
            IDLE, ContainerTarget, copy_outside_mounts, put_file, read_container_member)
        # One left by an interrupted drill (refusal() let no kept one through).
        self.remove()
        host_config = self.live.container.attrs.get('HostConfig') or {}
        self.container = self.live.client.containers.create(
            self.live.image_id, name=self.name, entrypoint=IDLE[:1], command=IDLE[1:], user='root',
            network_mode=host_config.get('NetworkMode') or 'default',
            labels={DRILL_LABEL: self.live.name, KEEP_LABEL: 'yes' if self.settings.keep else 'no',
                    'chronos.pgbackrest.drill-stanza': stanza},
            extra_hosts=dict(entry.partition(':')[::2] for entry in host_config.get('ExtraHosts') or []) or None)
        self.container.start()
        for path in (self.live.config_path,):
            content, member = read_container_member(self.live.container, path)
            put_file(self.container, path, content, member.uid, member.gid, member.mode)
        copy_outside_mounts(self.live, self.container)
        self.target = ContainerTarget(self.name, client=self.live.client, config_path=self.live.config_path,
                                      os_user=self.live.os_user, superuser=self.live.superuser,
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


class Drill(object):
    def __init__(self, live, pgbackrest, live_pg_path, settings):
        self.live = live
        self.pgbackrest = pgbackrest
        self.live_pg_path = live_pg_path
        self.settings = settings
        self.stanza = settings.stanza or pgbackrest.stanza
        self.scratch = (ContainerScratch if live.kind == 'container' else HostScratch)(live, live_pg_path, settings)

    def refusal(self):
        return self.scratch.refusal()

    def remove(self, check_mode=False):
        """Remove a scratch place a drill left running (keep); True when there was one."""
        refusal = self.scratch.not_ours()
        if refusal:
            raise ChronosError('Not removed: %s. Nothing was changed.' % refusal)
        if not self.scratch.exists():
            return False
        if not check_mode:
            self.scratch.remove()
        return True

    def run(self):
        refusal = self.refusal()
        if refusal:
            raise ChronosError('Restore drill refused: %s. Nothing was changed.' % refusal, refused=True)
        with self.pgbackrest.lock('restore drill', wait=0):
            source = self.pgbackrest.on(stanza=self.stanza)
            stanza = source.usable_stanza('drill a restore')
            usable = [backup for backup in stanza['backups'] if not backup['error']]
            if not usable:
                raise ChronosError('Stanza %s has no backup to drill. Nothing was changed.' % self.stanza)
            request = Request('time' if self.settings.target else 'latest', self.settings.target)
            segments, dummy = archived_wal(source, stanza)
            timeline = followed_timeline(request, segments)
            line = timeline_line(source, stanza, timeline) if timeline is not None else None
            backup = choose_backup(request, usable, line)
            if backup is None:
                raise ChronosError('No backup of stanza %s stopped before %s. Nothing was changed.' % (
                    self.stanza, self.settings.target))
            free = self.scratch.free()
            if free < (backup['size'] or 0) * 1.1:
                raise ChronosError('Restore drill refused: the backup holds %d MB and only %d MB are free for %s. '
                                   'Nothing was changed.' % ((backup['size'] or 0) // 2 ** 20, free // 2 ** 20,
                                                             self.scratch.describe()), refused=True)
            try:
                result = self._drill(backup, timeline, request)
            except BaseException:
                self.scratch.remove()
                raise
            if not self.settings.keep:
                self.scratch.remove()
            return result

    def _drill(self, backup, timeline, request):
        target, data = self.scratch.create(self.stanza)
        scratch_pgbackrest = self.pgbackrest.on(target=target, stanza=self.stanza)
        start = time.time()
        restore_command = '%s%s --stanza=%s --pg1-path=%s --no-archive-async archive-get %%f "%%p"' % (
            scratch_pgbackrest.binary, ' --config=%s' % self.pgbackrest.config if self.pgbackrest.config else '',
            self.stanza, data)
        options = ['--pg1-path=%s' % data, '--set=%s' % backup['label'], '--archive-mode=off',
                   '--tablespace-map-all=%s/tablespaces' % data, '--recovery-option=restore_command=%s' % restore_command]
        if request.type == 'time':
            options += ['--type=time', '--target=%s' % request.target, '--target-action=promote']
        else:
            options.append('--type=default')
        if timeline is not None:
            options.append('--target-timeline=%d' % timeline)
        done = scratch_pgbackrest.execute('restore', *options)
        if done.rc != 0:
            raise PgBackRestError('restore backup set %s into the drill\'s %s' % (backup['label'], self.scratch.describe()),
                                  done)
        restored = time.time()
        self._configure(target, data)
        pg_ctl = target.pg_tool('pg_ctl')
        # The command line wins over postgresql.auto.conf, which comes from the live cluster.
        server = "-p %d -c listen_addresses='' -c unix_socket_directories=%s -c archive_mode=off -c hot_standby=off" % (
            self.settings.port, target.socket_path)
        target.run(['mkdir', '-p', '-m', '0700', target.socket_path])
        started = target.run([pg_ctl, '-D', data, '-l', '%s/drill.log' % data, '-o', server, '-w', '-t',
                              str(self.settings.timeout), 'start'])

        def alive():
            return target.run([pg_ctl, '-D', data, 'status']).rc == 0

        def why_stopped():
            lines = target.run(['tail', '-n', '40', '%s/drill.log' % data]).stdout.splitlines()
            errors = [line for line in lines if ('FATAL' in line or 'PANIC' in line) and 'not accepting' not in line]
            text = ' '.join(errors[-3:]) or started.output or 'see %s/drill.log' % data
            if 'recovery ended before configured recovery target was reached' in text:
                text += (' (the target lies after the last transaction in the archived WAL: pick an earlier time, or '
                         'drill the latest)')
            return text
        try:
            target.wait_for_recovery(self.settings.timeout, False, alive, why_stopped)
        except ChronosError as exc:
            raise ChronosError('Restore drill failed: the scratch cluster did not recover: %s' % exc.msg.split(': ', 1)[-1])
        recovered = time.time()
        newest = target.sql("SELECT coalesce(extract(epoch FROM pg_last_xact_replay_timestamp())::bigint::text, 'none')",
                            attempt='read the newest restored transaction')[0][0]
        newest = '' if newest == 'none' else newest
        amcheck = target.run([target.pg_tool('pg_amcheck'), '--install-missing', '-h', target.socket_path, '-p',
                              str(self.settings.port), '-U', target.superuser, '-d', self.settings.database])
        if amcheck.rc != 0:
            raise ChronosError('Restore drill failed: pg_amcheck %s in database %s of the restored copy: %s' % (
                'found corruption' if amcheck.rc == 2 else 'exited %d' % amcheck.rc, self.settings.database,
                ' '.join(amcheck.output.splitlines()[:3])))
        rows = target.sql(self.settings.query, database=self.settings.database, attempt='run the drill query')
        now = time.time()
        return dict(status='ok', stanza=self.stanza, backup_set=backup['label'], target=self.settings.target or 'latest',
                    timeline=timeline, restore_seconds=int(round(recovered - start)),
                    files_seconds=int(round(restored - start)), recovery_seconds=int(round(recovered - restored)),
                    newest_transaction_age_seconds=int(now - int(newest)) if newest else None, amcheck='ok',
                    query_result=[','.join(row) for row in rows][:20], scratch=self.scratch.describe(),
                    kept_running=bool(self.settings.keep),
                    connect=self.connect_command(target) if self.settings.keep else None)

    def connect_command(self, target):
        return 'psql -h %s -p %d -U %s -d %s' % (target.socket_path, self.settings.port, target.superuser,
                                                 self.settings.database)

    def _configure(self, target, data):
        """Replace the restored server configuration with the scratch one: unix socket only, no archiving."""
        for name in ('postgresql.conf', 'pg_hba.conf', 'pg_ident.conf'):
            target.run(['sh', '-c', 'test ! -e "$1" || mv "$1" "$1.restored"', 'sh', '%s/%s' % (data, name)])
        control = control_data(target, data) or {}
        lines = [MARKER, "port = %d" % self.settings.port, "listen_addresses = ''",
                 "unix_socket_directories = '%s'" % target.socket_path, 'unix_socket_permissions = 0700',
                 'archive_mode = off', 'hot_standby = off', "cluster_name = 'pgbackrest-drill'"]
        for field, setting in CONTROL_SETTINGS:
            value = control.get('%s setting' % field)
            if value and re.match(r'^\d+$', value):
                lines.append('%s = %s' % (setting, value))
        uid, gid = target.user_ids(target.os_user)
        target.write_file('%s/postgresql.conf' % data, ('\n'.join(lines) + '\n').encode(), uid, gid, 0o600)
        # Only the drill's own user reaches the socket (its directory is 0700): trust is safe, and the restored
        # cluster's roles are whatever production has.
        target.write_file('%s/pg_hba.conf' % data, b'local all all trust\n', uid, gid, 0o600)
        target.write_file('%s/pg_ident.conf' % data, b'', uid, gid, 0o600)
        target.write_file(posixpath.join(posixpath.dirname(data), 'drill.conf'), (MARKER + '\n').encode(), uid, gid,
                          0o600)
