# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where pgBackRest and PostgreSQL live: a target.

A target is this host (HostTarget, below) or a Docker container on this host (ContainerTarget, in
_container.py). Everything else in the collection asks a target to run a command as a user, read or write
a file, run SQL, tell whether PostgreSQL runs, stop it or start it, and never asks which kind it is.

This file and the other module_utils do not import Ansible: the scheduled job program (_jobs.py) runs the
same code on the managed host. Errors are raised as ChronosError; modules turn them into fail_json
(_module.py), the job program into a message on stderr and an exit code.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import csv
import io
import json
import os
import re
import time

from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError

# Where site.yml records a stanza's settings on the managed host, for the scheduled jobs (and for restores while
# PostgreSQL is down).
SETTINGS_DIRECTORY = '/etc/chronos-pgbackrest'
# What the collection records on the managed host as it works (the drills' scratch places): root's alone.
STATE_DIRECTORY = '/var/lib/chronos-pgbackrest'


def settings_path(stanza):
    return os.path.join(SETTINGS_DIRECTORY, '%s.json' % stanza)


class Completed(object):
    """What one command did."""

    def __init__(self, argv, rc, stdout, stderr):
        self.argv = argv
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    @property
    def output(self):
        """stderr, else stdout, stripped: what to quote when the command failed."""
        return (self.stderr or '').strip() or (self.stdout or '').strip()


class Target(object):
    """Where PostgreSQL and pgBackRest live. Subclasses implement the _primitives; the rest is shared."""

    kind = None

    def __init__(self, os_user='postgres', pg_user=None, pg_port=5432, socket_path='/var/run/postgresql',
                 bin_path=None, stop_timeout=60):
        self.os_user = os_user
        self._pg_user = pg_user
        self.pg_port = int(pg_port)
        self.socket_path = socket_path
        self.bin_path = bin_path
        # How long stopping PostgreSQL may take: its shutdown, then (in a container) docker stop's kill.
        self.stop_timeout = int(stop_timeout)
        # Every command run (or, in check mode, planned), as the modules report it.
        self.executed_commands = []

    # --- what subclasses provide ------------------------------------------------------------------
    def describe(self):
        """'this host' or "container 'chronos-db'", for messages."""
        raise NotImplementedError

    def _run(self, argv, user, env, stdin):
        """Run argv as user with env added to the environment; returns (rc, stdout bytes, stderr bytes)."""
        raise NotImplementedError

    def read_file(self, path):
        """The bytes of a file; IOError/OSError when it cannot be read."""
        raise NotImplementedError

    def write_file(self, path, content, uid, gid, mode, check_mode=False):
        """Make path hold content (bytes) with that owner and mode; True when something changed."""
        raise NotImplementedError

    def remove_file(self, path):
        """Remove a file if it exists."""
        raise NotImplementedError

    def ensure_directory(self, path, uid, gid, mode, check_mode=False):
        """Create a directory (and its parents) owned by uid:gid when it is missing; True when it was."""
        raise NotImplementedError

    def postgresql_running(self, pg_path):
        raise NotImplementedError

    def stop_postgresql(self, pg_path):
        """Stop PostgreSQL, waiting up to stop_timeout (plus docker's kill, in a container)."""
        raise NotImplementedError

    def start_postgresql(self):
        raise NotImplementedError

    def user_ids(self, user):
        """(uid, gid) of an operating-system user of the target."""
        raise NotImplementedError

    @property
    def default_pg_user(self):
        return 'postgres'

    @property
    def pgdata(self):
        """The data directory the target itself names (a container's PGDATA), or None."""
        return None

    @property
    def install_advice(self):
        """How to install pgBackRest where it is missing, as a sentence."""
        return 'Install pgbackrest.'

    def refuse_unless_running(self):
        """Raise a ChronosError saying how to start what must run before anything is provisioned (a stopped
        container); a host has nothing of the kind."""

    def config_location(self, config):
        """('host' | 'file' | 'directory', where pgbackrest.conf lies on this machine's disk): on a host the file
        itself; in a container, the bind-mounted file or the mounted directory that holds it."""
        raise NotImplementedError

    def close(self):
        """Release what the target started for its work (a container's helper)."""

    def allow_commands_while_stopped(self):
        """A restore works while PostgreSQL is stopped: let commands run then (a container runs them in a helper)."""

    def held_restart_policy(self):
        """The restart policy a restore holds off (a container's), or None: a host has none."""
        return None

    def local_path(self, path):
        """Where a file of the target lies on this machine's disk, or None when it lies nowhere this machine can
        reach (a container's own layer)."""
        return path

    def hold_restart_policy(self):
        """Keep PostgreSQL from being started again behind a restore's back (a container's restart policy)."""

    def release_restart_policy(self):
        """Undo hold_restart_policy."""

    def scratch_place(self, live_pg_path, settings):
        """Where a restore drill restores (a scratch directory on a host, a scratch container beside a container):
        an object with describe, not_ours, kept, refusal, exists, free, create(stanza) -> (target, data path) and
        remove."""
        raise NotImplementedError

    # --- shared -----------------------------------------------------------------------------------
    @property
    def pg_user(self):
        """The PostgreSQL superuser the collection connects as (pg1-user): as set, or the target's own default."""
        return self._pg_user or self.default_pg_user

    def record(self, argv, user=None):
        self.executed_commands.append(' '.join(argv))

    def run(self, argv, user=None, env=None, stdin=None):
        """Run one command (an argument list, never a shell line) and return Completed, whatever its exit code.
        Secrets go in env: it reaches only that process, never its arguments."""
        argv = [str(arg) for arg in argv]
        self.record(argv, user)
        rc, stdout, stderr = self._run(argv, user or self.os_user, dict(env or {}), stdin)
        return Completed(argv, rc, _text(stdout), _text(stderr))

    def pg_tool(self, name):
        """The path of a PostgreSQL program (pg_ctl, psql, ...): in bin_path when set, else found on PATH."""
        return '%s/%s' % (self.bin_path.rstrip('/'), name) if self.bin_path else name

    def psql_argv(self, database='postgres', port=None, host=None, user=None):
        return [self.pg_tool('psql'), '-X', '-q', '-t', '--csv', '-v', 'ON_ERROR_STOP=1',
                '-h', host or self.socket_path, '-p', str(port or self.pg_port), '-U', user or self.pg_user,
                '-d', database]

    def sql(self, script, database='postgres', variables=None, port=None, host=None, attempt=None):
        """Run an SQL script with psql as the superuser; returns the rows it printed (lists of strings).
        variables become psql variables (:'name' in the script)."""
        argv = self.psql_argv(database, port, host)
        for name, value in sorted((variables or {}).items()):
            argv += ['-v', '%s=%s' % (name, value)]
        argv += ['-f', '-']
        done = self.run(argv, stdin=script)
        if done.rc != 0:
            raise ChronosError('Unable to %s: psql on %s exited %s: %s' % (
                attempt or 'query PostgreSQL', self.describe(), done.rc, done.output or 'no message'),
                rc=done.rc, stderr=done.stderr)
        return [row for row in csv.reader(io.StringIO(done.stdout)) if row]

    def pg_ready(self, port=None, host=None):
        """Whether PostgreSQL accepts connections (pg_isready)."""
        done = self.run([self.pg_tool('pg_isready'), '-q', '-h', host or self.socket_path, '-p',
                         str(port or self.pg_port)])
        return done.rc == 0

    def wait_for_recovery(self, timeout, pause, alive, why_stopped):
        """Wait until PostgreSQL left recovery (promoted), or with pause until it paused at the target.
        alive() tells whether the server still runs; why_stopped() what its log says when it stopped."""
        deadline = time.time() + timeout
        while True:
            if not alive():
                raise ChronosError('PostgreSQL stopped during recovery on %s: %s' % (self.describe(), why_stopped()),
                                   step='recover')
            done = self.run(self.psql_argv() + ['-c', 'SELECT pg_is_in_recovery(), pg_is_in_recovery() AND '
                                                      'pg_is_wal_replay_paused()'])
            if done.rc == 0:
                in_recovery, paused = done.stdout.strip().split(',')
                if (pause and paused == 't') or (not pause and in_recovery == 'f'):
                    return
            if time.time() >= deadline:
                raise ChronosError('PostgreSQL on %s was still recovering after %d s (the restore timeout).' % (
                    self.describe(), timeout), step='recover')
            time.sleep(1)

    def filesystem(self, path):
        """(size, available) in bytes of the filesystem that holds path on the target, as `df -Pk` reports it there
        (links followed: pg_wal may be one); the same command on a host, in a Debian image and with BusyBox."""
        done = self.run(['df', '-Pk', path])
        if done.rc != 0:
            raise ChronosError('Unable to read the free space of %s on %s: df exited %s: %s' % (
                path, self.describe(), done.rc, done.output))
        return parse_df(done.stdout, path)

    def wait_until_ready(self, timeout, interval=1):
        """Wait until PostgreSQL accepts connections; False when it did not within timeout seconds."""
        deadline = time.time() + timeout
        while True:
            if self.pg_ready():
                return True
            if time.time() >= deadline:
                return False
            time.sleep(interval)


def put_back(target, installed, check_mode=False):
    """Put back on the target what the collection placed there and recorded in the stanza's settings (the backup
    wrapper, the repository's CA file: [{path, content, uid, gid, mode}]) where it is missing or changed: a container
    recreated from its image has lost what was copied into it. Returns the paths put back (or, in check mode, that
    would be)."""
    done = []
    for item in installed or []:
        if target.write_file(item['path'], item['content'].encode('utf-8'), item['uid'], item['gid'],
                             int(item['mode'], 8), check_mode):
            done.append(item['path'])
    return done


def recorded_settings(stanza):
    """What site.yml recorded for the stanza (pgbackrest_schedule), or {} when nothing was."""
    try:
        with open(settings_path(stanza)) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return {}


def parse_df(text, path='the path'):
    """`df -Pk` output -> (size, available) in bytes. The mount point may hold spaces: the fields are counted from
    the capacity column ('42%')."""
    lines = [line for line in (text or '').splitlines() if line.strip()]
    fields = lines[-1].split() if len(lines) >= 2 else []
    capacity = [index for index, field in enumerate(fields) if re.match(r'^\d+%$', field)]
    if not capacity or capacity[0] < 3:
        raise ChronosError('Unable to read the free space of %s: df printed %r.' % (path, text))
    index = capacity[0]
    return int(fields[index - 3]) * 1024, int(fields[index - 1]) * 1024


def _bytes(data):
    if data is None or isinstance(data, bytes):
        return data
    return data.encode('utf-8')


def _text(data):
    if isinstance(data, bytes):
        # errors='replace': pgBackRest prints undecryptable bytes when the passphrase is wrong.
        return data.decode('utf-8', errors='replace')
    return data or ''
