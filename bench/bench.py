# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark the collection's pgBackRest settings and its playbooks in the lab (issue 7).

Run through `make bench` (after `make lab`), which puts the virtualenv first on PATH, exports the lab's
secrets and sets ANSIBLE_CONFIG. Method and how to read the results: bench/README.md.

Everything the benchmark creates is removed at the end, also on failure or Ctrl-C: the database
chronos_bench, the stanzas bench-defaults, bench-stock and bench-unbundled (repository path /chronos-bench), their
configuration files, the scratch directory, and the eight hosts chronos-bench-1..8 with their stanzas.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import argparse
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import report  # noqa: E402  pylint: disable=wrong-import-position

DB_HOST = 'chronos-db'
S3_HOST = 'chronos-s3'
NETWORK = 'chronos-lab'
BASE_IMAGE = 'chronos-pgbackrest/base:bookworm'
LIVE_STANZA = 'chronos-v2'
LIVE_REPO_PATH = '/var/lib/pgbackrest'
PG_BIN = '/usr/lib/postgresql/15/bin'
PG_DATA = '/var/lib/postgresql/15/main'
SCRATCH = '/var/lib/postgresql/chronos-bench'
BENCH_REPO_PATH = '/chronos-bench'
DATABASE = 'chronos_bench'
# unbundled is a what-if (defaults with repo1-bundle=n), measured to show what bundling is worth; no target.
CONTENDERS = ('defaults', 'stock', 'unbundled')
CONFIG = dict((c, '/etc/pgbackrest/bench-%s.conf' % c) for c in CONTENDERS)
STANZA = dict((c, 'bench-' + c) for c in CONTENDERS)
FLEET_CONFIG = '/etc/pgbackrest/bench-fleet.conf'
FLEET_PREFIX = 'chronos-bench-'
FLEET_LABEL = 'chronos.bench=fleet'
MB_PER_SCALE = 16.8    # pgbench: one unit of scale is about 16.8 MB of tables and indexes
BUILD = os.path.join(ROOT, '.build', 'bench')
PHASES = ('full', 'diff', 'restore', 'info', 'lag', 'site')


class BenchError(Exception):
    pass


def log(message):
    print('[%s] %s' % (datetime.datetime.now().strftime('%H:%M:%S'), message), flush=True)


def run(args, timeout=3600, stdin=None, check=True, env=None, logfile=None):
    """Run a command (never through a shell on this side); return its CompletedProcess."""
    try:
        result = subprocess.run(args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                timeout=timeout, env=env, check=False, universal_newlines=True)
    except subprocess.TimeoutExpired:
        raise BenchError('%s did not finish within %d s' % (' '.join(args), timeout))
    if logfile:
        with open(logfile, 'a') as handle:
            handle.write('$ %s\n%s%s\n' % (' '.join(args), result.stdout, result.stderr))
    if check and result.returncode != 0:
        tail = '\n'.join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise BenchError('%s failed (exit %d):\n%s' % (' '.join(args), result.returncode, tail))
    return result


def cpu_times():
    """(busy, total) jiffies of the whole machine, all cores (/proc/stat)."""
    with open('/proc/stat') as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)   # idle + iowait
    return sum(values) - idle, sum(values)


def cpu_busy(since):
    """Fraction of the machine's CPU time that was busy since `since` (a cpu_times() value)."""
    busy, total = cpu_times()
    return (busy - since[0]) / float(max(1, total - since[1]))


def timed(args, **kwargs):
    """Wall-clock seconds of one command, and its result."""
    start = time.monotonic()
    result = run(args, **kwargs)
    return time.monotonic() - start, result


def dexec(args, user='postgres', host=DB_HOST, stdin=False):
    return ['docker', 'exec'] + (['-i'] if stdin else []) + ['-u', user, host] + list(args)


def sh(script, user='postgres', host=DB_HOST):
    """A shell script inside a lab container. Arguments are constants of this file, never secrets."""
    return dexec(['sh', '-ec', script], user=user, host=host)


def psql(sql, database=DATABASE):
    return run(dexec(['psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-d', database, '-c', sql])).stdout.strip()


def rotation(items, round_number):
    """ABAB...: each round starts with the next contender, so none always runs first."""
    shift = round_number % len(items)
    return list(items[shift:]) + list(items[:shift])


class Bench:
    def __init__(self, options):
        self.options = options
        self.results = dict(samples={}, sizes={}, notes=[], settings={})
        self.fleet = ['%s%d' % (FLEET_PREFIX, n) for n in range(1, options.hosts + 1)]
        os.makedirs(os.path.join(BUILD, 'logs'), exist_ok=True)
        self.logfile = os.path.join(BUILD, 'logs', 'bench.log')
        open(self.logfile, 'w').close()

    # --- bookkeeping ---------------------------------------------------------------------------
    def sample(self, key, seconds, size=None, cpu_since=None):
        """Record one run; cpu_since (cpu_times() taken just before it) adds how busy the machine was."""
        self.results['samples'].setdefault(key, []).append(seconds)
        if size is not None:
            self.results['sizes'].setdefault(key, []).append(size)
        busy = cpu_busy(cpu_since) if cpu_since else None
        if busy is not None:
            self.results.setdefault('cpu_busy', {}).setdefault(key, []).append(round(busy, 3))
        log('  %-18s %8.2f s%s%s' % (key, seconds, '  %s' % report.human_bytes(size) if size is not None else '',
                                     '  CPU %.0f%%' % (busy * 100) if busy is not None else ''))

    def note(self, text):
        self.results['notes'].append(text)
        log('note: ' + text)

    def ansible_env(self, timer_output=None):
        env = dict(os.environ)
        env.setdefault('ANSIBLE_CONFIG', os.path.join(ROOT, 'ansible.cfg'))
        env['ANSIBLE_CALLBACK_PLUGINS'] = os.path.join(HERE, 'callback_plugins')
        env['ANSIBLE_CALLBACKS_ENABLED'] = 'bench_timer'
        env['ANSIBLE_DEPRECATION_WARNINGS'] = 'false'
        if timer_output:
            env['BENCH_TIMER_OUTPUT'] = timer_output
        return env

    def playbook(self, args, name, timeout=3600):
        """Run ansible-playbook from the repository root; return (seconds, bench_timer JSON)."""
        output = os.path.join(BUILD, '%s.timer.json' % name)
        if os.path.exists(output):
            os.remove(output)
        seconds, _result = timed(['ansible-playbook'] + args, timeout=timeout, env=self.ansible_env(output),
                                 logfile=os.path.join(BUILD, 'logs', '%s.log' % name))
        with open(output) as handle:
            return seconds, json.load(handle)

    # --- the lab -------------------------------------------------------------------------------
    def check_lab(self):
        for host in (DB_HOST, S3_HOST):
            state = run(['docker', 'inspect', '-f', '{{ .State.Running }}', host], check=False)
            if state.stdout.strip() != 'true':
                raise BenchError('%s is not running: run `make lab` first' % host)
        for name in ('CHRONOS_LAB_CIPHER_PASS', 'CHRONOS_LAB_S3_KEY', 'CHRONOS_LAB_CA_FILE'):
            if not os.environ.get(name):
                raise BenchError('%s is not set: run through `make bench`, which exports the lab secrets' % name)
        info = json.loads(run(dexec(['pgbackrest', '--stanza=' + LIVE_STANZA, '--output=json', 'info'])).stdout)
        if info[0]['status']['code'] != 0:
            raise BenchError('stanza %s is not healthy (%s): run `make lab` first' % (
                LIVE_STANZA, info[0]['status']['message']))

    def machine(self):
        with open('/proc/meminfo') as handle:
            mem_kb = int(re.search(r'MemTotal:\s+(\d+)', handle.read()).group(1))
        pretty = 'Linux'
        if os.path.exists('/etc/os-release'):
            with open('/etc/os-release') as handle:
                found = re.search(r'^PRETTY_NAME="?([^"\n]*)', handle.read(), re.M)
                pretty = found.group(1) if found else pretty
        return dict(cores=os.cpu_count(), memory_gib=mem_kb / 1024.0 / 1024.0, os=pretty,
                    postgresql=re.search(r'\) ([\d.]+)', run(dexec([PG_BIN + '/postgres', '--version'])).stdout).group(1),
                    pgbackrest=run(dexec(['pgbackrest', 'version'])).stdout.split()[-1])

    def pgbackrest(self, contender, *args):
        return dexec(['pgbackrest', '--config=' + CONFIG[contender], '--stanza=' + STANZA[contender]] + list(args))

    def write_config(self, contender, output, stanza, repo_path, pg_path=None):
        """Derive a configuration from the live one inside chronos-db (bench/confgen.py)."""
        with open(os.path.join(HERE, 'confgen.py')) as handle:
            script = handle.read()
        args = ['python3', '-', contender, output, stanza, repo_path, SCRATCH + '/log'] + ([pg_path] if pg_path else [])
        return run(dexec(args, user='root', stdin=True), stdin=script).stdout

    def wait_archived(self, timeout=900):
        """Switch WAL and wait until the live stanza has archived it, so backlog does not skew a timing."""
        target = psql('SELECT pg_walfile_name(pg_switch_wal())', database='postgres')
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            archived = psql('SELECT coalesce(last_archived_wal, \'\') FROM pg_stat_archiver', database='postgres')
            if archived and archived[8:] >= target[8:]:
                return
            time.sleep(1)
        raise BenchError('WAL archiving of %s did not catch up with %s within %d s' % (LIVE_STANZA, target, timeout))

    # --- setup ---------------------------------------------------------------------------------
    def setup(self):
        self.check_lab()
        self.results['machine'] = self.machine()
        # The live configuration is what "collection defaults" copies, and a role changed since `make lab` would
        # also make the first timed no-change run a converge: converge the lab first (not measured).
        log('converging the lab with site.yml (not measured)')
        _seconds, timer = self.playbook(['-i', 'inventories/lab', 'site.yml'], 'site-one-converge')
        changed = self.check_recap(timer, 'converging chronos-db', allow_changes=True)
        if changed:
            self.note('site.yml changed %d things on chronos-db before the run: the role changed since '
                      'the lab was provisioned' % changed)
        self.cleanup_chronos_db(quiet=True)
        run(sh('mkdir -p %s/log %s/empty && chmod 0700 %s' % (SCRATCH, SCRATCH, SCRATCH)))
        for contender in CONTENDERS:
            options = self.write_config(contender, CONFIG[contender], STANZA[contender], BENCH_REPO_PATH)
            shown = [line for line in options.splitlines() if line.split('=')[0] in (
                'compress-type', 'compress-level', 'process-max', 'start-fast', 'archive-check', 'archive-async',
                'repo1-bundle', 'repo1-cipher-type')]
            self.results['settings'][contender] = ' '.join(shown)
            if contender == 'defaults':
                found = re.search(r'^process-max=(\d+)', options, re.M)
                self.results['process_max'] = found.group(1) if found else '1'
            run(self.pgbackrest(contender, 'stanza-create'), logfile=self.logfile)
        log('generating the dataset: pgbench scale %d' % self.options.scale)
        run(dexec(['createdb', DATABASE]))
        seconds, _result = timed(dexec([PG_BIN + '/pgbench', '-i', '-q', '-s', str(self.options.scale), DATABASE]),
                                 logfile=self.logfile)
        psql('CHECKPOINT')
        self.results['params']['database_bytes'] = int(psql('SELECT pg_database_size(current_database())'))
        log('dataset ready in %.0f s: %s; waiting for WAL archiving to catch up' % (
            seconds, report.human_bytes(self.results['params']['database_bytes'])))
        self.wait_archived()

    # --- backups and restores ------------------------------------------------------------------
    def newest_backup(self, contender):
        info = json.loads(run(self.pgbackrest(contender, '--output=json', 'info')).stdout)
        return info[0]['backup'][-1]

    def backup_round(self, round_number, kind):
        contenders = CONTENDERS + (('basebackup',) if kind == 'full' else ())
        for contender in rotation(contenders, round_number):
            if contender == 'basebackup':
                target = SCRATCH + '/basebackup'
                run(sh('rm -rf %s' % target))
                since = cpu_times()
                seconds, _result = timed(dexec([PG_BIN + '/pg_basebackup', '-D', target, '-Ft', '-z', '-c', 'fast']),
                                         logfile=self.logfile)
                size = int(run(dexec(['du', '-sb', target])).stdout.split()[0])
                run(sh('rm -rf %s' % target))
            else:
                since = cpu_times()
                seconds, _result = timed(self.pgbackrest(contender, '--type=' + kind, 'backup'), logfile=self.logfile)
                backup = self.newest_backup(contender)
                if backup['type'] != kind:
                    raise BenchError('%s: expected a %s backup, found %s' % (STANZA[contender], kind, backup['type']))
                size = backup['info']['repository']['delta']
                self.results.setdefault('files', {})['%s.%s' % (kind, contender)] = self.backup_files(contender)
            self.sample('%s.%s' % (kind, contender), seconds, size, cpu_since=since)

    def backup_files(self, contender):
        """Files the newest backup copied, from its log line `... backup size = 29.1MB, file total = 1259`."""
        lines = run(dexec(['grep', '-h', 'file total = ', '%s/log/%s-backup.log' % (SCRATCH, STANZA[contender])]),
                    check=False).stdout.strip().splitlines()
        found = re.search(r'file total = (\d+)', lines[-1]) if lines else None
        return int(found.group(1)) if found else None

    def change_rows(self):
        """Update every 20th account (5% of the rows, spread over the table as a real workload's are)."""
        start = time.monotonic()
        count = psql('WITH changed AS (UPDATE pgbench_accounts SET abalance = abalance + 1 '
                     'WHERE aid % 20 = 0 RETURNING 1) SELECT count(*) FROM changed')
        psql('CHECKPOINT')
        log('changed %s rows in %.0f s' % (count, time.monotonic() - start))
        self.results['params']['changed_rows'] = int(count)
        self.wait_archived()

    def restore_round(self, round_number):
        target = SCRATCH + '/restore'
        for contender in rotation(CONTENDERS + ('floor',), round_number):
            run(sh('rm -rf {0} && mkdir -m 0700 {0}'.format(target)))
            since = cpu_times()
            if contender == 'floor':
                # The files a restore writes: the data directory without pg_wal's contents (a restore
                # brings none back), each file fsynced afterwards as pgBackRest's restore does.
                copy, _result = timed(sh('cd %s && cp -a $(ls -A | grep -vx pg_wal) %s/ && mkdir -m 0700 %s/pg_wal' % (
                    PG_DATA, target, target)))
                flush, _result = timed(sh('find %s -type f -exec sync --data {} +' % target))
                self.sample('restore.copy', copy)
                seconds = copy + flush
            else:
                seconds, _result = timed(self.pgbackrest(contender, '--pg1-path=' + target, 'restore'), logfile=self.logfile)
            size = int(run(dexec(['du', '-sb', target])).stdout.split()[0])
            self.sample('restore.%s' % contender, seconds, size, cpu_since=since)
        run(sh('rm -rf %s' % target))

    # --- pgbackrest_info through Ansible -------------------------------------------------------
    def info_playbook(self, round_number):
        become = '      become: true\n      become_user: postgres\n'
        tasks = ['    - name: Warm up the connection (not measured)\n'
                 '      ansible.builtin.command: pgbackrest version\n' + become + '      changed_when: false\n']
        for contender in rotation(('module', 'command'), round_number):
            if contender == 'module':
                tasks.append('    - name: module\n      chronos.pgbackrest.pgbackrest_info:\n'
                             '        stanza: %s\n' % LIVE_STANZA + become)
            else:
                tasks.append('    - name: command\n      ansible.builtin.command: pgbackrest --stanza=%s '
                             '--output=json info\n' % LIVE_STANZA + become + '      changed_when: false\n')
        path = os.path.join(BUILD, 'info.yml')
        with open(path, 'w') as handle:
            handle.write('---\n- name: Read the stanza, timed per task\n  hosts: %s\n  gather_facts: false\n'
                         '  tasks:\n%s' % (DB_HOST, ''.join(tasks)))
        return path

    def info_round(self, round_number):
        raw = dexec(['pgbackrest', '--stanza=' + LIVE_STANZA, '--output=json', 'info'])
        adhoc = ['ansible', '-i', 'inventories/lab', DB_HOST, '-m', 'chronos.pgbackrest.pgbackrest_info',
                 '-a', 'stanza=' + LIVE_STANZA, '--become', '--become-user', 'postgres']
        for contender in rotation(('raw', 'playbook', 'adhoc'), round_number):
            if contender == 'raw':
                self.sample('info.raw', timed(raw)[0])
            elif contender == 'adhoc':
                self.sample('info.adhoc', timed(adhoc, env=self.ansible_env())[0])
            else:
                _seconds, timer = self.playbook(['-i', 'inventories/lab', self.info_playbook(round_number)], 'info')
                for task in timer['tasks']:
                    if task['name'] in ('module', 'command'):
                        if task['status'] != 'ok':
                            raise BenchError('the %s task of the info playbook ended %s' % (task['name'], task['status']))
                        self.sample('info.' + task['name'], task['seconds'])

    # --- WAL archive lag -----------------------------------------------------------------------
    def archive_lag(self):
        duration, clients = self.options.lag_seconds, self.options.lag_clients
        log('WAL archive lag: pgbench -c %d -T %d' % (clients, duration))
        self.wait_archived()
        segment_size = int(psql("SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'"))
        query = ("SELECT extract(epoch FROM clock_timestamp()), pg_walfile_name(pg_current_wal_lsn()), "
                 "coalesce(last_archived_wal, ''), failed_count, pg_current_wal_lsn() - '0/0' FROM pg_stat_archiver")
        samples, raw = [], []
        load = subprocess.Popen(dexec([PG_BIN + '/pgbench', '-n', '-c', str(clients), '-j', str(clients),
                                       '-T', str(duration), DATABASE]),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        try:
            drain_deadline = None
            while True:
                row = psql(query).split('|')
                raw.append(row)
                samples.append((float(row[0]), row[1], row[2] or None))
                if load.poll() is not None:
                    # After the load, until every finished segment is archived: the lag's tail counts too.
                    drain_deadline = drain_deadline or time.monotonic() + 180
                    if row[2] and report.wal_segment_number(row[2], segment_size) + 1 >= \
                            report.wal_segment_number(row[1], segment_size):
                        break
                    if time.monotonic() > drain_deadline:
                        self.note('WAL archiving had not caught up 180 s after the load ended')
                        break
                time.sleep(0.5)
        finally:
            if load.poll() is None:
                load.terminate()
            output = load.communicate()[0]
        with open(self.logfile, 'a') as handle:
            handle.write('pgbench (archive lag)\n%s\n' % output)
        if load.returncode != 0:
            raise BenchError('pgbench under the archive lag measurement failed:\n%s' % output[-2000:])
        lags = report.archive_lag(samples, segment_size)
        start = samples[0][0]
        tps = re.search(r'tps = ([\d.]+)', output)
        self.results['archive_lag'] = dict(
            clients=clients, duration=duration, tps=float(tps.group(1)) if tps else None,
            wal_bytes=int(float(raw[-1][4]) - float(raw[0][4])),
            segments=report.wal_segment_number(raw[-1][1], segment_size)
            - report.wal_segment_number(raw[0][1], segment_size),
            failed=int(raw[-1][3]) - int(raw[0][3]),
            max_lag=max(row[1] for row in lags), median_lag=report.median([row[1] for row in lags]),
            max_waiting=max(row[2] for row in lags),
            interval=report.median([b[0] - a[0] for a, b in zip(samples, samples[1:])]),
            series=[(round(t - start, 2), round(lag, 2), waiting) for t, lag, waiting in lags])
        lag = self.results['archive_lag']
        log('  max lag %.1f s, median %.1f s, %s of WAL' % (
            lag['max_lag'], lag['median_lag'], report.human_bytes(lag['wal_bytes'])))

    # --- site.yml with nothing to change -------------------------------------------------------
    def fleet_inventory(self):
        directory = os.path.join(BUILD, 'fleet')
        os.makedirs(os.path.join(directory, 'group_vars'), exist_ok=True)
        link = os.path.join(directory, 'group_vars', 'pgbackrest_databases.yml')
        if not os.path.islink(link):
            os.symlink(os.path.join(ROOT, 'inventories', 'lab', 'group_vars', 'pgbackrest_databases.yml'), link)
        hosts = ''.join('    %s:\n      ansible_connection: community.docker.docker\n      pgbackrest_stanza: %s\n'
                        % (host, self.fleet_stanza(host)) for host in self.fleet)
        with open(os.path.join(directory, 'hosts.yml'), 'w') as handle:
            handle.write('---\n# Generated by bench/bench.py: the lab settings, one stanza per host.\n'
                         'pgbackrest_databases:\n  hosts:\n' + hosts)
        return directory

    @staticmethod
    def fleet_stanza(host):
        return 'bench-' + host[len(FLEET_PREFIX):]

    def provision_fleet(self):
        existing = set(run(['docker', 'ps', '-a', '--filter', 'label=' + FLEET_LABEL, '--format', '{{.Names}}'])
                       .stdout.split())
        for host in self.fleet:
            if host in existing:
                run(['docker', 'start', host])
                continue
            # A stanza left by an interrupted run belongs to another cluster: stanza-create would refuse it.
            self.delete_fleet_stanza(host)
            run(['docker', 'run', '-d', '--name', host, '--hostname', host, '--network', NETWORK,
                 '--label', FLEET_LABEL, BASE_IMAGE])
        log('provisioning %d hosts with site.yml (not measured)' % len(self.fleet))
        seconds, timer = self.playbook(['-i', self.fleet_inventory(), '-f', str(len(self.fleet)), 'site.yml'],
                                       'fleet-provision', timeout=3600)
        self.check_recap(timer, 'provisioning the fleet', allow_changes=True)
        self.note('provisioning %d hosts with site.yml (forks %d) took %.0f s' % (
            len(self.fleet), len(self.fleet), seconds))

    @staticmethod
    def check_recap(timer, what, allow_changes=False):
        changed = 0
        for host, stats in timer['stats'].items():
            if stats.get('failures') or stats.get('unreachable'):
                raise BenchError('%s: %s failed (see .build/bench/logs)' % (what, host))
            changed += stats.get('changed', 0)
        if changed and not allow_changes:
            raise BenchError('%s changed %d things: not a no-change run (see .build/bench/logs)' % (what, changed))
        return changed

    def site_round(self, round_number):
        for contender in rotation(('one', 'fleet'), round_number):
            since = cpu_times()
            if contender == 'one':
                seconds, timer = self.playbook(['-i', 'inventories/lab', 'site.yml'], 'site-one')
            else:
                seconds, timer = self.playbook(['-i', self.fleet_inventory(), '-f', str(len(self.fleet)),
                                                'site.yml'], 'site-fleet')
            self.check_recap(timer, 'site.yml (%s)' % contender)
            self.sample('site.' + contender, seconds, cpu_since=since)
            if contender == 'one':
                ran = [t for t in timer['tasks'] if t['status'] == 'ok' and t['seconds'] is not None]
                self.results['site_tasks'] = len(ran)
                self.results['site_skipped'] = len([t for t in timer['tasks'] if t['status'] == 'skipped'])
                self.results['site_slowest'] = [(t['name'], round(t['seconds'], 2)) for t in
                                                sorted(ran, key=lambda t: -t['seconds'])[:5]]

    # --- cleanup -------------------------------------------------------------------------------
    def delete_stanza(self, config, stanza):
        """stop + stanza-delete, with pg1-path pointing at an empty directory so the check that PostgreSQL
        is stopped looks there, not at the running live cluster."""
        if not stanza.startswith('bench-'):
            raise BenchError('refusing to delete stanza %s: not a benchmark stanza' % stanza)
        base = ['pgbackrest', '--config=' + config, '--stanza=' + stanza]
        run(dexec(base + ['stop']), check=False)
        run(dexec(base + ['--pg1-path=%s/empty' % SCRATCH, 'stanza-delete', '--force']), check=False,
            logfile=self.logfile)
        run(dexec(base + ['start']), check=False)

    def delete_fleet_stanza(self, host):
        run(sh('mkdir -p %s/log %s/empty' % (SCRATCH, SCRATCH)))
        self.write_config('defaults', FLEET_CONFIG, self.fleet_stanza(host), LIVE_REPO_PATH, SCRATCH + '/empty')
        self.delete_stanza(FLEET_CONFIG, self.fleet_stanza(host))

    def cleanup_chronos_db(self, quiet=False):
        if not quiet:
            log('cleaning up chronos-db')
        run(sh('mkdir -p %s/log %s/empty' % (SCRATCH, SCRATCH)), check=False)
        for contender in CONTENDERS:
            if run(dexec(['test', '-f', CONFIG[contender]]), check=False).returncode == 0:
                self.delete_stanza(CONFIG[contender], STANZA[contender])
        run(dexec(['dropdb', '--if-exists', '--force', DATABASE]), check=False)
        run(sh('rm -f %s %s' % (' '.join(CONFIG.values()), FLEET_CONFIG), user='root'), check=False)
        run(sh('rm -rf %s' % SCRATCH, user='root'), check=False)

    def cleanup_fleet(self):
        existing = run(['docker', 'ps', '-a', '--filter', 'label=' + FLEET_LABEL, '--format', '{{.Names}}'],
                       check=False).stdout.split()
        if not existing:
            return
        log('removing %s and their stanzas' % ', '.join(sorted(existing)))
        run(['docker', 'rm', '-f'] + sorted(existing), check=False)
        for host in existing:
            if host.startswith(FLEET_PREFIX):
                self.delete_fleet_stanza(host)
        run(sh('rm -f %s' % FLEET_CONFIG, user='root'), check=False)

    # --- the whole run -------------------------------------------------------------------------
    def run(self):
        options = self.options
        phases = options.phases
        self.results['params'] = dict(
            scale=options.scale, repeat=options.repeat, phases=list(phases), hosts=options.hosts,
            started=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
            args=' '.join(sys.argv[1:]))
        try:
            self.setup()
            for kind in ('full', 'diff'):
                if kind not in phases and not (kind == 'full' and {'diff', 'restore'} & set(phases)):
                    continue
                if kind == 'diff':
                    self.change_rows()
                log('%s backups' % kind)
                for round_number in range(options.repeat):
                    self.backup_round(round_number, kind)
            if 'restore' in phases:
                log('restores of the latest backup')
                for round_number in range(options.repeat):
                    self.restore_round(round_number)
            if 'info' in phases:
                log('pgbackrest_info through Ansible vs pgbackrest info')
                for round_number in range(options.repeat):
                    self.info_round(round_number)
            if 'lag' in phases:
                self.archive_lag()
            if 'site' in phases:
                self.provision_fleet()
                log('site.yml with nothing to change: one host, %d hosts' % len(self.fleet))
                for round_number in range(options.repeat):
                    self.site_round(round_number)
        finally:
            if not options.keep_fleet:
                self.cleanup_fleet()
            self.cleanup_chronos_db()
        return self.results


def write_results(results, directory):
    # matplotlib is imported only when there is something to draw.
    import chart  # pylint: disable=import-outside-toplevel
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, 'results.json'), 'w') as handle:
        json.dump(results, handle, indent=1, sort_keys=True)
    with open(os.path.join(directory, 'results.md'), 'w') as handle:
        handle.write(report.markdown(results, report.explanations(results)))
    chart.draw(results, os.path.join(directory, 'results.png'))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument('--size', default='1GB',
                      help='dataset size, e.g. 100MB or 1GB (default 1GB), turned into a pgbench scale')
    size.add_argument('--scale', type=int, help='pgbench scale (about 16.8 MB each), instead of --size')
    parser.add_argument('--repeat', type=int, default=3, help='runs of each contender (default 3, at least 1)')
    parser.add_argument('--hosts', type=int, default=8, help='hosts of the fleet for site.yml (default 8)')
    parser.add_argument('--lag-seconds', type=int, default=60, help='pgbench load for the archive lag (default 60)')
    parser.add_argument('--lag-clients', type=int, default=2, help='pgbench clients for the archive lag (default 2)')
    parser.add_argument('--phases', default=','.join(PHASES),
                        help='comma-separated subset of %s (default all)' % ','.join(PHASES))
    parser.add_argument('--output', default=os.path.join(HERE, 'results'),
                        help='directory for results.md, results.png and results.json (default bench/results)')
    parser.add_argument('--keep-fleet', action='store_true',
                        help='leave the fleet hosts running for the next run (development)')
    parser.add_argument('--report-only', action='store_true',
                        help='rewrite results.md and results.png from the results.json in --output')
    options = parser.parse_args(argv)
    if options.scale is None:
        found = re.match(r'^\s*(\d+(?:\.\d+)?)\s*([MG])i?B?\s*$', options.size, re.I)
        if not found:
            parser.error('--size: use a number with MB or GB, e.g. 100MB')
        megabytes = float(found.group(1)) * (1024 if found.group(2).upper() == 'G' else 1)
        options.scale = max(1, int(round(megabytes / MB_PER_SCALE)))
    options.phases = [p.strip() for p in options.phases.split(',') if p.strip()]
    unknown = set(options.phases) - set(PHASES)
    if unknown or options.repeat < 1 or options.hosts < 1:
        parser.error('bad --phases (%s), --repeat or --hosts' % ', '.join(sorted(unknown)))
    return options


def main(argv=None):
    options = parse_args(sys.argv[1:] if argv is None else argv)
    if options.report_only:
        with open(os.path.join(options.output, 'results.json')) as handle:
            results = json.load(handle)
    else:
        os.chdir(ROOT)
        signal.signal(signal.SIGTERM, lambda *_args: sys.exit(143))   # so cleanup runs on `kill` too
        try:
            results = Bench(options).run()
        except BenchError as error:
            log('benchmark failed: %s' % error)
            return 1
    write_results(results, options.output)
    print('\n' + report.summary(results))
    print('\nResults: %s/results.md, results.png, results.json' % os.path.relpath(options.output))
    return 0


if __name__ == '__main__':
    sys.exit(main())
