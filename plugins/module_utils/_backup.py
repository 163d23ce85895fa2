# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A backup as the play reports it: its duration and summary, and how far a running one got."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re


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
