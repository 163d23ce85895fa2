# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scheduled jobs: one program, `chronos-pgbackrest`, on the managed host (the database host, or the
Docker host of the PostgreSQL container), run by cron as root:

    chronos-pgbackrest --stanza chronos-v2 backup [full|diff|incr]   a backup (the schedule's type for today unless
                                                                     given) and its metrics: _backup
    chronos-pgbackrest --stanza chronos-v2 metrics                   refresh the status metrics
    chronos-pgbackrest --stanza chronos-v2 drill [--target TIME]     the restore drill
    chronos-pgbackrest --stanza chronos-v2 verify                    pgbackrest verify, and its metrics
                                                                     (weekly, when scheduled)

It reads /etc/chronos-pgbackrest/<stanza>.json, written by the pgbackrest_schedule module (no secrets: those
stay in pgbackrest.conf), and is built on the same module_utils as the modules, which the module installs
beside it. In container mode it only execs pgbackrest, psql and a few tools in the container: the container
needs no Python. The backup wrapper it installs there is for people at a shell in the container; the jobs do not
run it.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _files, _metrics
from ansible_collections.chronos.pgbackrest.plugins.module_utils._backup import (
    EXIT_BUSY, EXIT_REFUSED, scheduled_type, summary, take_backup)
from ansible_collections.chronos.pgbackrest.plugins.module_utils._drill import Drill, Settings
from ansible_collections.chronos.pgbackrest.plugins.module_utils._lock import StanzaLock
from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import PgBackRest, parse_error, parse_verify
from ansible_collections.chronos.pgbackrest.plugins.module_utils._drivers import make_target
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError, untrusted_message
from ansible_collections.chronos.pgbackrest.plugins.module_utils._target import (
    put_back, SETTINGS_DIRECTORY, settings_path)

# Exit codes: pgBackRest's error code when a backup fails, _backup's busy (75) and refused (3), and usage.
EXIT_USAGE = 2
# pgbackrest_verify_status (the verify job exits 0, 1, or EXIT_REFUSED when it could not run).
VERIFY_OK, VERIFY_PROBLEMS, VERIFY_FAILED = 0, 1, 2


def load_settings(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError) as exc:
        raise ChronosError('Cannot read the settings %s: %s. Run site.yml (tag pgbackrest_schedule) to write them.'
                           % (path, exc))


def say(stanza, text, stream=None):
    stamp = datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')
    stream = stream or sys.stdout
    stream.write('%s %s: %s\n' % (stamp, stanza, text))
    stream.flush()


class Job(object):
    def __init__(self, settings):
        self.settings = settings
        self.stanza = settings['stanza']
        self._target = None

    @property
    def target(self):
        if self._target is None:
            self._target = make_target(self.settings)
        return self._target

    @property
    def pgbackrest(self):
        return PgBackRest(self.target, self.stanza, config=self.settings.get('config'), binary=self.settings.get('binary'))

    def put_back(self):
        """Put back what the collection placed on the target (the wrapper, the repository's CA file) where it is
        missing or changed: a container recreated from its image has lost what was copied into it, and backups and
        archiving would fail until site.yml ran again."""
        try:
            for path in put_back(self.target, self.settings.get('installed')):
                say(self.stanza, 'put back %s on %s: it was missing or changed (was the container recreated?)'
                    % (path, self.target.describe()))
        except (ChronosError, IOError, OSError) as exc:
            say(self.stanza, 'cannot put back what the collection installed on %s: %s' % (
                self.target.describe(), getattr(exc, 'msg', exc)), sys.stderr)

    def backup(self, backup_type=None):
        """pgbackrest backup through _backup.take_backup, as the module takes it: the type the schedule gives for today
        unless one is given, both locks (busy: 75), the run recorded in the metrics."""
        backup_type = backup_type or scheduled_type(self.settings.get('full_weekday', 0))
        try:
            target, pgbackrest = self.target, self.pgbackrest
            self.put_back()
            say(self.stanza, 'starting a %s backup' % backup_type)
            outcome = take_backup(target, pgbackrest, backup_type, 'scheduled', self.settings.get('metrics_dir'))
        except StanzaLock.Busy as exc:
            say(self.stanza, 'not starting a %s backup: %s' % (backup_type, exc.msg), sys.stderr)
            return EXIT_BUSY
        except ChronosError as exc:
            refused = exc.extra.get('refused')
            say(self.stanza, '%s backup %s: %s' % (backup_type, 'REFUSED' if refused else 'FAILED', exc.msg), sys.stderr)
            if not refused and self.settings.get('metrics_dir'):
                # Docker or the container gone, the repository unreadable before the backup began: a failed run.
                stamp = time.time()
                _metrics.write_run(self.settings['metrics_dir'], self.stanza, backup_type, 1, stamp, stamp)
            if not refused:
                self.metrics()
            return EXIT_REFUSED if refused else 1
        done = outcome.done
        if outcome.busy:
            say(self.stanza, 'not starting a %s backup: another pgBackRest backup of the stanza runs (%s)'
                % (backup_type, done.stderr.strip()), sys.stderr)
        elif done.rc == 0:
            say(self.stanza, '%s backup succeeded in %d s: %s' % (backup_type, outcome.end - outcome.start,
                                                                  summary(outcome.backup, False)))
        else:
            code = parse_error(done.stdout, done.stderr)[0]
            sys.stderr.write(done.output if done.output.endswith('\n') or not done.output else done.output + '\n')
            say(self.stanza, '%s backup FAILED with exit code %s%s (%s); see %s' % (
                backup_type, done.rc, ', pgBackRest error %s' % code if code else '',
                self.settings.get('repository', 'the repository'), self.settings.get('log', 'the log')), sys.stderr)
        return outcome.exit_code

    def metrics(self):
        if not self.settings.get('metrics_dir'):
            return 0
        try:
            target, pgbackrest = self.target, self.pgbackrest
        except ChronosError as exc:
            # The container is gone, or Docker does not answer: the metrics say nothing can be read.
            say(self.stanza, exc.msg, sys.stderr)
            _metrics.write_status(self.settings['metrics_dir'], self.stanza)
            return 0
        self.put_back()
        for problem in _metrics.refresh(target, pgbackrest, self.settings['metrics_dir'],
                                        pg_path=self.settings.get('pg_path')):
            say(self.stanza, problem, sys.stderr)
        return 0

    def drill(self, target_time=None):
        drill_settings = dict(self.settings.get('drill') or {}, recovery_target=target_time)
        try:
            self.put_back()
            result = Drill(self.target, self.pgbackrest, self.settings['pg_path'], Settings(**drill_settings)).run()
        except StanzaLock.Busy as exc:
            say(self.stanza, 'not starting the restore drill: %s' % exc.msg, sys.stderr)
            return EXIT_BUSY
        except (ChronosError, _files.UntrustedPath) as exc:
            refused = isinstance(exc, _files.UntrustedPath) or exc.extra.get('refused')
            say(self.stanza, untrusted_message(exc) if isinstance(exc, _files.UntrustedPath) else exc.msg, sys.stderr)
            rc = EXIT_REFUSED if refused else 1
            self._drill_metrics(rc, None)
            return rc
        say(self.stanza, 'restore drill passed: backup set %(backup_set)s restored to %(target)s in %(restore_seconds)s s '
                         '(files %(files_seconds)s s, recovery %(recovery_seconds)s s); newest restored transaction '
                         '%(newest_transaction_age_seconds)s s old; pg_amcheck found no corruption; query returned '
                         '%(query_result)s' % result)
        self._drill_metrics(0, result)
        return 0

    def verify(self):
        """pgbackrest verify: every file and WAL segment of the repository checked against its checksum."""
        start = time.time()
        try:
            with self.pgbackrest.lock('pgbackrest verify'):
                self.put_back()
                # --verbose: without it pgBackRest prints nothing when all is well, and only the non-zero counts.
                done = self.pgbackrest.execute('verify', '--output=text', '--verbose')
            report = parse_verify(done.stdout)
            status = VERIFY_FAILED if done.rc != 0 else VERIFY_OK if report['ok'] else VERIFY_PROBLEMS
            output = done.output
        except StanzaLock.Busy as exc:
            say(self.stanza, 'not starting pgbackrest verify: %s' % exc.msg, sys.stderr)
            return EXIT_BUSY
        except ChronosError as exc:
            status, report, output = VERIFY_FAILED, parse_verify(''), exc.msg
        if status == VERIFY_FAILED:
            say(self.stanza, 'pgbackrest verify could not run: %s' % output, sys.stderr)
        else:
            say(self.stanza, 'pgbackrest verify %s' % ('found no problem' if status == VERIFY_OK else
                                                       'found %d missing or invalid files:' % report['invalid']))
        for line in report['lines']:
            sys.stdout.write(line + '\n')
        if self.settings.get('metrics_dir'):
            _metrics.write_verify(self.settings['metrics_dir'], self.stanza, status, report['invalid'], start)
        return EXIT_REFUSED if status == VERIFY_FAILED else status

    def _drill_metrics(self, rc, result):
        if self.settings.get('metrics_dir'):
            _metrics.write_drill(self.settings['metrics_dir'], self.stanza, rc, result['restore_seconds'] if result else 0)


def log_to(path):
    """Send this process's stdout and stderr, and its children's (the wrapper's output), to the end of path."""
    handle = _files.open_append(path)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(handle, 1)
    os.dup2(handle, 2)
    os.close(handle)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='chronos-pgbackrest', description='Scheduled pgBackRest jobs (chronos.pgbackrest).')
    parser.add_argument('--stanza', help='read %s/<stanza>.json' % SETTINGS_DIRECTORY)
    parser.add_argument('--settings', help='a settings file instead')
    parser.add_argument('--log', help='append what the job prints to this file (cron\'s log), opened by the job itself: '
                                      'never through a link, in a directory root alone can write')
    commands = parser.add_subparsers(dest='command')
    backup = commands.add_parser('backup', help='a backup (without a type, the one the schedule takes today), then '
                                                'the metrics')
    backup.add_argument('type', nargs='?', choices=['full', 'diff', 'incr'])
    commands.add_parser('metrics', help='refresh the status metrics')
    commands.add_parser('verify', help='pgbackrest verify, and its metrics')
    drill = commands.add_parser('drill', help='restore drill into a scratch place')
    drill.add_argument('--target', help="a time with a zone, e.g. '2026-11-24 08:22:18+00'")
    arguments = parser.parse_args(argv)
    if not arguments.command or not (arguments.stanza or arguments.settings):
        parser.print_usage(sys.stderr)
        return EXIT_USAGE
    if arguments.log:
        try:
            log_to(arguments.log)
        except (_files.UntrustedPath, IOError, OSError) as exc:
            # Cron mails or logs what reaches its stderr: the job does not run blind.
            say(arguments.stanza or arguments.settings, 'not running %s: cannot open the log: %s' % (
                arguments.command, exc), sys.stderr)
            return EXIT_REFUSED
    try:
        job = Job(load_settings(arguments.settings or settings_path(arguments.stanza)))
        if arguments.command == 'backup':
            return job.backup(arguments.type)
        if arguments.command == 'metrics':
            return job.metrics()
        if arguments.command == 'verify':
            return job.verify()
        return job.drill(arguments.target)
    except ChronosError as exc:
        say(arguments.stanza or arguments.settings, exc.msg, sys.stderr)
        return 1
    except _files.UntrustedPath as exc:
        say(arguments.stanza or arguments.settings, untrusted_message(exc), sys.stderr)
        return EXIT_REFUSED
