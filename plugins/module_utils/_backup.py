# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup operation the module and the scheduled job share: which type the schedule takes, the locks, pgbackrest
backup itself, its metrics; and a backup as the play reports it: its duration and summary, and how far a running one
got."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
import time
from datetime import datetime

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _metrics
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError
from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import LOCK_ERROR, parse_error

# The scheduled job's exit codes beside pgBackRest's own: the stanza's lock is held (another run, a restore, a drill),
# or its place is not root's alone.
EXIT_BUSY = 75
EXIT_REFUSED = 3
LOCK_POLL_SECONDS = 5
# At detail level pgBackRest logs each file with the share of the backup done so far: backup_progress reads it.
BACKUP_OPTIONS = ('--log-level-file=detail',)


def scheduled_type(full_weekday, when=None):
    """The schedule's rule: a full backup on full_weekday (0 is Sunday, as cron counts), a differential otherwise."""
    when = when or datetime.now()
    return 'full' if int(when.strftime('%w')) == int(full_weekday) else 'diff'


def backup_options(backup_type):
    return ['--type=%s' % backup_type] + list(BACKUP_OPTIONS)


class Outcome(object):
    """What one backup run did: pgbackrest's Completed (None when it never started), the new backup (None unless it
    succeeded), and the exit code the scheduled job reports."""

    def __init__(self, backup_type, done=None, backup=None, exit_code=0, start=None, end=None):
        self.backup_type, self.done, self.backup, self.exit_code = backup_type, done, backup, exit_code
        self.start, self.end = start, end

    @property
    def busy(self):
        return self.exit_code == EXIT_BUSY


def _labels(pgbackrest):
    """The labels of the stanza's backups; None when the repository cannot be read now (pgbackrest backup then runs
    all the same, and fails with pgBackRest's own error code, which the metrics record)."""
    try:
        return set(backup['label'] for backup in pgbackrest.stanza_info()['backups'])
    except ChronosError:
        return None


def take_backup(target, pgbackrest, backup_type, purpose, metrics_dir=None, wait=0):
    """One backup of the stanza, as both the module and the scheduled job take it: under the stanza's lock and the lock
    on pgbackrest.conf (waiting up to `wait` seconds for them, and for pgBackRest's own lock when another backup holds
    it), its run recorded in the metrics (not a run that never started because another held the lock: that one is
    busy, exit 75), then the status metrics refreshed. Raises StanzaLock.Busy when the lock stays held, and the lock's
    ChronosError (refused) after recording it as a run with exit code 3."""
    lock = pgbackrest.lock('%s backup (%s)' % (backup_type, purpose), wait=wait)
    try:
        lock.__enter__()
    except ChronosError as exc:
        if exc.extra.get('refused') and metrics_dir:
            stamp = time.time()
            _metrics.write_run(metrics_dir, pgbackrest.stanza, backup_type, EXIT_REFUSED, stamp, stamp)
        raise
    try:
        before = _labels(pgbackrest)
        start = time.time()
        deadline = start + wait
        while True:
            done = pgbackrest.execute('backup', *backup_options(backup_type))
            locked = done.rc != 0 and parse_error(done.stdout, done.stderr)[0] == LOCK_ERROR
            if not locked or time.time() >= deadline:
                break
            time.sleep(LOCK_POLL_SECONDS)
        end = time.time()
        outcome = Outcome(backup_type, done, None, EXIT_BUSY if locked else done.rc, start, end)
        if metrics_dir and not locked:
            _metrics.write_run(metrics_dir, pgbackrest.stanza, backup_type, done.rc, start, end)
    finally:
        lock.__exit__(None, None, None)
    if done.rc == 0:
        made = [backup for backup in pgbackrest.stanza_info()['backups'] if backup['label'] not in (before or ())]
        if not made:
            raise ChronosError('pgbackrest backup succeeded, yet pgbackrest info lists no new backup of stanza %s.'
                               % pgbackrest.stanza)
        outcome.backup = with_duration(made[-1])
    if metrics_dir:
        _metrics.refresh(target, pgbackrest, metrics_dir)
    return outcome


def with_duration(backup):
    if backup is None:
        return None
    backup = dict(backup)
    backup['duration'] = backup['stop'] - backup['start'] if backup['start'] and backup['stop'] else None
    return backup


def summary(backup, reused):
    size = (backup['size'] or 0) / 2.0 ** 20
    stored = (backup['repo_delta'] or 0) / 2.0 ** 20
    return ('%s %s backup %s (prior %s): %s to %s (%s s), database %.1f MiB, %.1f MiB added to the repository, WAL %s to '
            '%s.' % ('Reused' if reused else 'Took', backup['type'], backup['label'], backup['prior'] or 'none',
                     backup['start_time'], backup['stop_time'], backup['duration'], size, stored, backup['wal_start'],
                     backup['wal_stop']))


def backup_progress(target, pgbackrest, log_path):
    """A sentence on the running backup: pgBackRest's figures in info (2.48+), else the last percentage in its log."""
    stanza = pgbackrest.stanza_info()
    if not stanza['backup_running']:
        return 'No backup of stanza %s runs now.' % pgbackrest.stanza
    total, done = stanza['backup_progress_total'], stanza['backup_progress_complete']
    if total:
        return 'Backing up: %d of %d MiB (%d %%).' % (done // 2 ** 20, total // 2 ** 20, 100 * done // total)
    tail = target.run(['tail', '-c', '65536', '%s/%s-backup.log' % (log_path, pgbackrest.stanza)]).stdout
    # Only this run's lines: the log holds every earlier backup too.
    tail = tail.rsplit('PROCESS START', 1)[-1]
    shares = re.findall(r'backup file (\S+) \(.*?([\d.]+)%\)', tail)
    if shares:
        return 'Backing up: %s %% done (last file %s).' % (shares[-1][1], shares[-1][0].rsplit('/', 1)[-1])
    return 'Backing up: started, no file copied yet.'
