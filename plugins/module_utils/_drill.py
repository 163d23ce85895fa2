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

import posixpath
import re
import time

from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import PgBackRestError
from ansible_collections.chronos.pgbackrest.plugins.module_utils._postgres import control_data
from ansible_collections.chronos.pgbackrest.plugins.module_utils._restore import (
    Request, archived_wal, choose_backup, followed_timeline, timeline_line)
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError
from ansible_collections.chronos.pgbackrest.plugins.module_utils._places import MARKER

CONTROL_SETTINGS = (('max_connections', 'max_connections'), ('max_worker_processes', 'max_worker_processes'),
                    ('max_wal_senders', 'max_wal_senders'), ('max_prepared_xacts', 'max_prepared_transactions'),
                    ('max_locks_per_xact', 'max_locks_per_transaction'))


class Settings(object):
    def __init__(self, path='/var/lib/postgresql/pgbackrest-drill', port=5433, database='postgres',
                 query='SELECT count(*) FROM pg_class', timeout=600, recovery_target=None, keep=False, stanza=None):
        self.path = path
        self.port = int(port)
        self.database = database
        self.query = query
        self.timeout = int(timeout)
        self.recovery_target = recovery_target or None
        self.keep = keep
        self.stanza = stanza


class Drill(object):
    def __init__(self, live, pgbackrest, live_pg_path, settings):
        self.live = live
        self.pgbackrest = pgbackrest
        self.live_pg_path = live_pg_path
        self.settings = settings
        self.stanza = settings.stanza or pgbackrest.stanza
        self.scratch = live.scratch_place(live_pg_path, settings)

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
            request = Request('time' if self.settings.recovery_target else 'latest', self.settings.recovery_target)
            segments, dummy = archived_wal(source, stanza)
            timeline = followed_timeline(request, segments)
            line = timeline_line(source, stanza, timeline) if timeline is not None else None
            backup = choose_backup(request, usable, line)
            if backup is None:
                raise ChronosError('No backup of stanza %s stopped before %s. Nothing was changed.' % (
                    self.stanza, self.settings.recovery_target))
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
            options += ['--type=time', '--target=%s' % request.recovery_target, '--target-action=promote']
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
                              str(self.settings.port), '-U', target.pg_user, '-d', self.settings.database])
        if amcheck.rc != 0:
            raise ChronosError('Restore drill failed: pg_amcheck %s in database %s of the restored copy: %s' % (
                'found corruption' if amcheck.rc == 2 else 'exited %d' % amcheck.rc, self.settings.database,
                ' '.join(amcheck.output.splitlines()[:3])))
        rows = target.sql(self.settings.query, database=self.settings.database, attempt='run the drill query')
        now = time.time()
        return dict(status='ok', stanza=self.stanza, backup_set=backup['label'], target=self.settings.recovery_target or 'latest',
                    timeline=timeline, restore_seconds=int(round(recovered - start)),
                    files_seconds=int(round(restored - start)), recovery_seconds=int(round(recovered - restored)),
                    newest_transaction_age_seconds=int(now - int(newest)) if newest else None, amcheck='ok',
                    query_result=[','.join(row) for row in rows][:20], scratch=self.scratch.describe(),
                    kept_running=bool(self.settings.keep),
                    connect=self.connect_command(target) if self.settings.keep else None)

    def report(self, result):
        """The lines the play prints for a drill's result."""
        lines = ['Backup set %(backup_set)s of stanza %(stanza)s (target %(target)s, timeline %(timeline_shown)s) restored '
                 'into %(scratch)s.' % dict(result, timeline_shown=result['timeline'] or 'latest'),
                 'Restore time: %(restore_seconds)s s (files %(files_seconds)s s, recovery %(recovery_seconds)s s)' % result,
                 'Age of the newest restored transaction: %s' % (
                     '%s s' % result['newest_transaction_age_seconds']
                     if result['newest_transaction_age_seconds'] is not None else 'none replayed'),
                 'pg_amcheck on %s: %s' % (self.settings.database, result['amcheck']),
                 'Query (%s) returned: %s' % (self.settings.query, ' ; '.join(result['query_result']))]
        if result['kept_running']:
            lines.append('The scratch cluster keeps running: %s on %s; remove it with the same playbook and '
                         '-e pgbackrest_drill_remove=true once done.' % (result['connect'], result['scratch']))
        else:
            lines.append('The scratch copy was removed; the live cluster was not touched.')
        return lines

    def connect_command(self, target):
        return 'psql -h %s -p %d -U %s -d %s' % (target.socket_path, self.settings.port, target.pg_user,
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
