# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Are the backups fresh and working? Every problem found, each with what to do: the newest backup is older than
the limit (or there is none), the last scheduled run failed, the repository cannot be read, WAL archiving is
failing or off."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _metrics
from ansible_collections.chronos.pgbackrest.plugins.module_utils._pgbackrest import newest_backup, stanza_problem, utc
from ansible_collections.chronos.pgbackrest.plugins.module_utils._postgres import read_archiver
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError


def _age(seconds):
    return '%dh%02dm' % (seconds // 3600, seconds % 3600 // 60)


def verify(target, pgbackrest, max_age, metrics_dir=None, repository='the repository', schedule='the schedule',
           log='the backup log', backup_command='ansible-playbook playbooks/backup.yml', now=None):
    now = int(time.time() if now is None else now)
    problems = []
    result = dict(stanza=pgbackrest.stanza, checked_at=now, max_age_seconds=max_age, repository=repository,
                  repository_ok=False, backup=None, archive=None, runs={}, last_run=None)

    stanza = None
    try:
        stanza = pgbackrest.stanza_info()
        problem = stanza_problem(stanza)
        if problem:
            raise ChronosError('%s. %s' % (problem[0], problem[2]))
        result['repository_ok'] = True
    except ChronosError as exc:
        problems.append('The repository (%s) cannot be read: %s' % (repository, ' '.join(exc.msg.split())))
    if result['repository_ok']:
        latest = newest_backup(stanza)
        if latest is None:
            problems.append('Stanza %s has no completed backup. Take a full one now: %s -e pgbackrest_backup_type=full.'
                            % (pgbackrest.stanza, backup_command))
        else:
            age = now - (latest['stop'] or 0)
            result['backup'] = dict(label=latest['label'], type=latest['type'], stop=latest['stop'],
                                    stop_time=latest['stop_time'], age_seconds=age)
            if age > max_age:
                problems.append('The newest backup of stanza %s, %s (%s), stopped at %s, %s ago: older than the limit '
                                '(%s). Check that %s runs and read %s, then take a backup now: %s.' % (
                                    pgbackrest.stanza, latest['label'], latest['type'], latest['stop_time'], _age(age),
                                    _age(max_age), schedule, log, backup_command))

    if metrics_dir:
        runs = _metrics.read_runs(metrics_dir, pgbackrest.stanza)
        result['runs'] = dict((kind, dict(run, last_run_time=utc(run['last_run']))) for kind, run in runs.items())
        if runs:
            kind, run = max(runs.items(), key=lambda item: item[1]['last_run'])
            result['last_run'] = kind
            if run['exit_code'] != 0:
                problems.append('The last scheduled backup run, %s at %s, failed with exit code %s (from %s). Read %s for '
                                'the cause, fix it, then run chronos-pgbackrest --stanza %s backup %s (or %s) and check '
                                'it succeeds.' % (kind, utc(run['last_run']), run['exit_code'],
                                                  _metrics.file_path(metrics_dir, pgbackrest.stanza, 'runs'), log,
                                                  pgbackrest.stanza, kind, backup_command))

    try:
        archive = read_archiver(target)
        result['archive'] = dict(archive, last_archived_time=utc(archive['last_archived']),
                                 last_failed_time=utc(archive['last_failed']))
    except ChronosError as exc:
        problems.append('PostgreSQL cannot be queried for pg_stat_archiver on %s: %s Check that PostgreSQL is running.'
                        % (target.describe(), ' '.join(exc.msg.split())))
    else:
        if archive['archive_mode'] == 'off':
            problems.append('WAL archiving is off (archive_mode=off): nothing after the newest backup can be restored. '
                            'Run site.yml (tag pgbackrest_archiving).')
        elif archive['failing']:
            problems.append('WAL archiving is failing: the last failure (%s at %s) is newer than the last success (%s at '
                            '%s), %s failures since the statistics were reset. Check archive_command (%r), the '
                            'PostgreSQL log and pgBackRest\'s archive-push log; pgbackrest --stanza=%s check names the '
                            'failing part. WAL piles up in pg_wal until archiving works again.' % (
                                archive['last_failed_wal'], utc(archive['last_failed']),
                                archive['last_archived_wal'] or 'none', utc(archive['last_archived']) or 'never',
                                archive['failed_count'], archive['archive_command'], pgbackrest.stanza))
    result['problems'] = problems
    result['ok'] = not problems
    return result


def summary(result):
    """One line for a healthy stanza."""
    backup, archive = result['backup'], result['archive']
    last = result['runs'].get(result['last_run']) if result['last_run'] else None
    return ('Stanza %s OK: newest backup %s (%s) stopped %s, %s ago (limit %s); WAL archived up to %s at %s; %s.' % (
        result['stanza'], backup['label'], backup['type'], backup['stop_time'], _age(backup['age_seconds']),
        _age(result['max_age_seconds']), archive['last_archived_wal'] or 'none',
        archive['last_archived_time'] or 'never',
        'last scheduled run %s at %s, exit 0' % (result['last_run'], last['last_run_time']) if last
        else 'no scheduled run recorded yet'))


def report(result, where):
    count = len(result['problems'])
    return 'Backups of stanza %s on %s need attention (%d problem%s):\n%s' % (
        result['stanza'], where, count, 's' if count > 1 else '',
        '\n'.join('- %s' % problem for problem in result['problems']))
