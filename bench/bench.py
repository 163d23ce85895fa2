# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark the collection's pgBackRest settings and its playbooks on both Debian releases (issues 7 and 15).

Run through `make bench`, which puts the virtualenv first on PATH, exports the lab's secrets and sets
ANSIBLE_CONFIG. Method and how to read the results: bench/README.md.

For each release in turn (bookworm, then trixie) the benchmark brings up a lab of its own with scripts/lab.sh,
the host layout on chronos-pgbackrest/base:<release>: chronos-bench-db and chronos-bench-s3 on the network
chronos-bench, and the eight hosts chronos-bench-1..8. It provisions them with site.yml, measures, and removes them
with everything in them (moto keeps the backups in memory), also on failure or Ctrl-C. The releases
run one after the other, never side by side, so each has the machine to itself. `make lab`'s chronos-db is not
touched.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import report  # noqa: E402  pylint: disable=wrong-import-position

RELEASES = ('bookworm', 'trixie')
DB_HOST = 'chronos-bench-db'
S3_HOST = 'chronos-bench-s3'
NETWORK = 'chronos-bench'
# scripts/lab.sh under the bench's names, so `make lab`'s chronos-db, chronos-s3 and chronos-lab stay as they are.
LAB_NAMES = dict(CHRONOS_LAB_DB=DB_HOST, CHRONOS_LAB_S3=S3_HOST, CHRONOS_LAB_NETWORK=NETWORK)
S3_IMAGE = 'chronos-pgbackrest/s3:bookworm'
LIVE_STANZA = 'chronos-v2'
SCRATCH = '/var/lib/postgresql/chronos-bench'
BENCH_REPO_PATH = '/chronos-bench'
DATABASE = 'chronos_bench'
# The pgBackRest contenders, and a what-if where this pgBackRest has block incremental (2.46+): the defaults with
# block incremental the other way round - unblocked (repo1-block=n) where the defaults have it, blocked (repo1-block=y)
# where they leave it off (an S3 repository) - to show what it costs and saves on the same release.
CONTENDERS = ('defaults', 'stock')
WHAT_IF_BLOCK = ('unblocked', 'blocked')
CONFIG = dict((c, '/etc/pgbackrest/bench-%s.conf' % c) for c in CONTENDERS + WHAT_IF_BLOCK)
STANZA = dict((c, 'bench-' + c) for c in CONTENDERS + WHAT_IF_BLOCK)
FLEET_PREFIX = 'chronos-bench-'
FLEET_LABEL = 'chronos.bench=fleet'
MB_PER_SCALE = 16.8    # pgbench: one unit of scale is about 16.8 MB of tables and indexes
ROWS_PER_SCALE = 100000
# The two updates of 5 % of pgbench_accounts' rows before the differential backups, in this order: one range of
# accounts (a workload whose changes cluster, as recent rows do), then every 20th account, which changes every page.
UPDATES = (('range', 'aid <= {last}'), ('spread', 'aid % 20 = 0'))
BUILD = os.path.join(ROOT, '.build', 'bench')
# The collection as it was when the run started: both releases measure the same code, whatever is edited meanwhile.
SNAPSHOT = os.path.join(BUILD, 'collection')
COLLECTION = os.path.join(SNAPSHOT, 'ansible_collections', 'chronos', 'pgbackrest')
SITE = os.path.join(COLLECTION, 'site.yml')
# What decides what a playbook run does; uncommitted changes there are recorded with the results.
MEASURED_PATHS = ('plugins', 'roles', 'playbooks', 'site.yml', 'meta', 'galaxy.yml', 'inventories', 'ansible.cfg')
PHASES = ('full', 'diff', 'restore', 'network', 'info', 'lag', 'site')
DATA_PHASES = ('full', 'diff', 'restore', 'network', 'lag')
# The network phase: the lab's S3 endpoint this far away and this fast per connection (lab/images/s3/s3-lab), as a
# bucket in the same region is; the restore repeated with these process counts, to find the best.
NETWORK_LATENCY_MS = report.NETWORK_LATENCY_MS
NETWORK_RATE = 40 * 1000 * 1000
RESTORE_PROCESS_TRIALS = (1, 2, 4, 8, 16)
# The no-change runs measure site.yml as it runs where PostgreSQL exists already, as in production's container: the
# lab's PostgreSQL installer (role chronos.pgbackrest.postgresql, postgresql_install) provisions the bench hosts only.
NO_CHANGE_SETTINGS = ['-e', 'postgresql_install=false']


class BenchError(Exception):
    pass


def log(message):
    print('[%s] %s' % (datetime.datetime.now().strftime('%H:%M:%S'), message), flush=True)


def run(args, timeout=3600, stdin=None, check=True, env=None, logfile=None, cwd=None):
    """Run a command (never through a shell on this side); return its CompletedProcess."""
    try:
        result = subprocess.run(args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                timeout=timeout, env=env, check=False, universal_newlines=True, cwd=cwd)
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


def psql(sql, database=DATABASE, host=DB_HOST):
    return run(dexec(['psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-d', database, '-c', sql],
                     host=host)).stdout.strip()


def rotation(items, round_number):
    """ABAB...: each round starts with the next contender, so none always runs first."""
    shift = round_number % len(items)
    return list(items[shift:]) + list(items[:shift])


def snapshot_collection():
    """Copy the checkout's files (tracked, and new ones not ignored) to SNAPSHOT; return what was copied:
    the commit, and the measured paths that differ from it."""
    shutil.rmtree(SNAPSHOT, ignore_errors=True)
    for path in run(['git', '-C', ROOT, 'ls-files', '-co', '--exclude-standard', '-z']).stdout.split('\0'):
        source = os.path.join(ROOT, path)
        if path and (os.path.isfile(source) or os.path.islink(source)):
            target = os.path.join(COLLECTION, path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
    commit = run(['git', '-C', ROOT, 'rev-parse', '--short', 'HEAD']).stdout.strip()
    changed = run(['git', '-C', ROOT, 'status', '--porcelain', '--'] + list(MEASURED_PATHS)).stdout.splitlines()
    return dict(commit=commit, uncommitted=sorted(line[3:] for line in changed))


def lsn_bytes(lsn):
    """'1/2A000060' -> its byte position in the WAL stream."""
    high, low = lsn.split('/')
    return (int(high, 16) << 32) + int(low, 16)


class ReleaseBench:
    """Every measurement on one Debian release, in a bench lab of its own."""

    def __init__(self, options, release):
        self.options = options
        self.release = release
        self.results = dict(release=release, samples={}, sizes={}, notes=[], settings={}, params={})
        self.fleet = ['%s%d' % (FLEET_PREFIX, n) for n in range(1, options.hosts + 1)]
        self.build = os.path.join(BUILD, release)
        os.makedirs(os.path.join(self.build, 'logs'), exist_ok=True)
        self.logfile = os.path.join(self.build, 'logs', 'bench.log')
        open(self.logfile, 'w').close()
        self.pg_bin = self.pg_data = None
        self.contenders = CONTENDERS

    # --- bookkeeping ---------------------------------------------------------------------------
    def sample(self, key, seconds, size=None, cpu_since=None):
        """Record one run; cpu_since (cpu_times() taken just before it) adds how busy the machine was."""
        self.results['samples'].setdefault(key, []).append(seconds)
        if size is not None:
            self.results['sizes'].setdefault(key, []).append(size)
        busy = cpu_busy(cpu_since) if cpu_since else None
        if busy is not None:
            self.results.setdefault('cpu_busy', {}).setdefault(key, []).append(round(busy, 3))
        log('  %-24s %8.2f s%s%s' % (key, seconds, '  %s' % report.human_bytes(size) if size is not None else '',
                                     '  CPU %.0f%%' % (busy * 100) if busy is not None else ''))

    def note(self, text):
        self.results['notes'].append(text)
        log('note: ' + text)

    def ansible_env(self, timer_output=None):
        env = dict(os.environ)
        env['ANSIBLE_CONFIG'] = os.path.join(COLLECTION, 'ansible.cfg')
        env['ANSIBLE_COLLECTIONS_PATH'] = SNAPSHOT
        env['ANSIBLE_CALLBACK_PLUGINS'] = os.path.join(HERE, 'callback_plugins')
        env['ANSIBLE_CALLBACKS_ENABLED'] = 'bench_timer'
        env['ANSIBLE_DEPRECATION_WARNINGS'] = 'false'
        if timer_output:
            env['BENCH_TIMER_OUTPUT'] = timer_output
        return env

    def playbook(self, args, name, timeout=3600):
        """Run ansible-playbook from the repository root; return (seconds, bench_timer JSON)."""
        output = os.path.join(self.build, '%s.timer.json' % name)
        if os.path.exists(output):
            os.remove(output)
        seconds, _result = timed(['ansible-playbook'] + args, timeout=timeout, env=self.ansible_env(output),
                                 logfile=os.path.join(self.build, 'logs', '%s.log' % name), cwd=COLLECTION)
        with open(output) as handle:
            return seconds, json.load(handle)

    # --- the lab -------------------------------------------------------------------------------
    def lab_script(self, action, *args):
        env = dict(os.environ, CHRONOS_LAB_RELEASE=self.release, **LAB_NAMES)
        return run([os.path.join(ROOT, 'scripts', 'lab.sh'), action] + list(args), env=env, logfile=self.logfile)

    def inventory(self, name, hosts):
        """An inventory in .build/bench/<release>/<name>: the lab's group variables, one stanza per host."""
        directory = os.path.join(self.build, name)
        os.makedirs(os.path.join(directory, 'group_vars'), exist_ok=True)
        link = os.path.join(directory, 'group_vars', 'pgbackrest_databases.yml')
        if not os.path.islink(link):
            os.symlink(os.path.join(COLLECTION, 'inventories', 'lab', 'group_vars', 'pgbackrest_databases.yml'), link)
        lines = ''.join('    %s:\n      ansible_connection: community.docker.docker\n%s' % (
            host, '' if stanza is None else '      pgbackrest_stanza: %s\n' % stanza) for host, stanza in hosts)
        with open(os.path.join(directory, 'hosts.yml'), 'w') as handle:
            handle.write('---\n# Generated by bench/bench.py: the lab settings on the bench lab.\n'
                         'pgbackrest_databases:\n  hosts:\n' + lines)
        return directory

    def lab_inventory(self):
        return self.inventory('lab', [(DB_HOST, None)])

    def fleet_hosts(self):
        return [(host, 'bench-' + host[len(FLEET_PREFIX):]) for host in self.fleet]

    def fleet_inventory(self):
        return self.inventory('fleet', self.fleet_hosts())

    def lab_up(self):
        for name in ('CHRONOS_LAB_CIPHER_PASS', 'CHRONOS_LAB_S3_KEY', 'CHRONOS_LAB_CA_FILE'):
            if not os.environ.get(name):
                raise BenchError('%s is not set: run through `make bench`, which exports the lab secrets' % name)
        for image in ('chronos-pgbackrest/base:' + self.release, S3_IMAGE):
            if run(['docker', 'image', 'inspect', image], check=False).returncode != 0:
                raise BenchError('image %s is missing: run `scripts/bootstrap.sh images` (make bench does)' % image)
        self.remove_lab(quiet=True)   # what an interrupted run left
        log('%s: bringing up %s and %s on chronos-pgbackrest/base:%s' % (self.release, DB_HOST, S3_HOST,
                                                                         self.release))
        self.lab_script('up', 'host')
        # The eight hosts of the no-change runs are provisioned with chronos-bench-db, in one run: they idle until then
        # (no cron daemon runs in these containers, and PostgreSQL writes no WAL while nothing happens).
        hosts = [(DB_HOST, None)]
        if 'site' in self.options.phases:
            for host in self.fleet:
                run(['docker', 'run', '-d', '--name', host, '--hostname', host, '--network', NETWORK,
                     '--label', FLEET_LABEL, 'chronos-pgbackrest/base:' + self.release])
            hosts += self.fleet_hosts()
        log('provisioning %d host(s) with site.yml, forks %d (not measured)' % (len(hosts), len(hosts)))
        seconds, timer = self.playbook(['-i', self.inventory('provision', hosts), '-f', str(len(hosts)), SITE],
                                       'site-provision')
        self.check_recap(timer, 'provisioning', allow_changes=True)
        self.note('provisioning %d host(s) with site.yml (forks %d) took %.0f s' % (len(hosts), len(hosts), seconds))
        version = int(psql('SHOW server_version_num', database='postgres'))
        self.pg_bin = '/usr/lib/postgresql/%d/bin' % (version // 10000)
        self.pg_data = psql('SHOW data_directory', database='postgres')
        info = json.loads(run(dexec(['pgbackrest', '--stanza=' + LIVE_STANZA, '--output=json', 'info'])).stdout)
        if info[0]['status']['code'] != 0:
            raise BenchError('stanza %s is not healthy after provisioning (%s)' % (
                LIVE_STANZA, info[0]['status']['message']))

    def remove_lab(self, quiet=False):
        fleet = run(['docker', 'ps', '-a', '--filter', 'label=' + FLEET_LABEL, '--format', '{{.Names}}'],
                    check=False).stdout.split()
        lab = [name for name in (DB_HOST, S3_HOST)
               if run(['docker', 'inspect', name], check=False).returncode == 0]
        if not quiet or fleet or lab:
            log('removing the bench lab: %s' % ', '.join(sorted(fleet) + lab or ['nothing left']))
        if fleet:
            run(['docker', 'rm', '-f'] + sorted(fleet), check=False)
        self.lab_script('down')

    def machine(self):
        with open('/proc/meminfo') as handle:
            mem_kb = int(re.search(r'MemTotal:\s+(\d+)', handle.read()).group(1))
        pretty = 'Linux'
        if os.path.exists('/etc/os-release'):
            with open('/etc/os-release') as handle:
                found = re.search(r'^PRETTY_NAME="?([^"\n]*)', handle.read(), re.M)
                pretty = found.group(1) if found else pretty
        # grep answers with a count, so nothing of the live file (which holds the secrets) leaves the container.
        block = run(dexec(['grep', '-cx', r'repo1-block=y\s*', '/etc/pgbackrest/pgbackrest.conf'], user='root'),
                    check=False).stdout.strip()
        version = run(dexec(['pgbackrest', 'version'])).stdout.split()[-1]
        return dict(cores=os.cpu_count(), memory_gib=mem_kb / 1024.0 / 1024.0, os=pretty,
                    postgresql=psql('SHOW server_version', database='postgres').split()[0],
                    pgbackrest=version, block_incremental=block not in ('', '0'),
                    block_supported=report.version_at_least(version, report.BLOCK_INCREMENTAL_SINCE))

    def pgbackrest(self, contender, *args):
        return dexec(['pgbackrest', '--config=' + CONFIG[contender], '--stanza=' + STANZA[contender]] + list(args))

    def write_config(self, contender):
        """Derive a contender's configuration from the live one inside chronos-bench-db (bench/confgen.py)."""
        with open(os.path.join(HERE, 'confgen.py')) as handle:
            script = handle.read()
        args = ['python3', '-', contender, CONFIG[contender], STANZA[contender], BENCH_REPO_PATH, SCRATCH + '/log']
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
        self.results['machine'] = self.machine()
        if self.results['machine']['block_supported']:
            self.contenders = CONTENDERS + (WHAT_IF_BLOCK[0] if self.results['machine']['block_incremental']
                                            else WHAT_IF_BLOCK[1],)
        run(sh('mkdir -p %s/log && chmod 0700 %s' % (SCRATCH, SCRATCH)))
        for contender in self.contenders:
            options = self.write_config(contender)
            shown = [line for line in options.splitlines() if line.split('=')[0] in (
                'compress-type', 'compress-level', 'process-max', 'start-fast', 'archive-check', 'archive-async',
                'repo1-bundle', 'repo1-block', 'repo1-cipher-type')]
            self.results['settings'][contender] = ' '.join(shown)
            if contender == 'defaults':
                found = re.search(r'^process-max=(\d+)', options, re.M)
                self.results['process_max'] = found.group(1) if found else '1'
                found = re.search(r'^\[global:restore\] process-max=(\d+)', options, re.M)
                self.results['restore_process_max'] = found.group(1) if found else self.results['process_max']
            run(self.pgbackrest(contender, 'stanza-create'), logfile=self.logfile)
        if not set(DATA_PHASES) & set(self.options.phases):
            return
        log('generating the dataset: pgbench scale %d' % self.options.scale)
        run(dexec(['createdb', DATABASE]))
        seconds, _result = timed(dexec([self.pg_bin + '/pgbench', '-i', '-q', '-s', str(self.options.scale),
                                        DATABASE]), logfile=self.logfile)
        psql('CHECKPOINT')
        self.results['params']['database_bytes'] = int(psql('SELECT pg_database_size(current_database())'))
        log('dataset ready in %.0f s: %s; waiting for WAL archiving to catch up' % (
            seconds, report.human_bytes(self.results['params']['database_bytes'])))
        self.wait_archived()

    # --- backups and restores ------------------------------------------------------------------
    def newest_backup(self, contender):
        info = json.loads(run(self.pgbackrest(contender, '--output=json', 'info')).stdout)
        return info[0]['backup'][-1]

    def backup_round(self, round_number, phase, contenders=None):
        """One backup of each contender; phase is full, diff_range, diff_spread or full_network (the key of the
        samples)."""
        kind = phase.split('_')[0]
        if contenders is None:
            contenders = self.contenders + (('basebackup',) if kind == 'full' else ())
        for contender in rotation(contenders, round_number):
            if contender == 'basebackup':
                target = SCRATCH + '/basebackup'
                run(sh('rm -rf %s' % target))
                since = cpu_times()
                seconds, _result = timed(dexec([self.pg_bin + '/pg_basebackup', '-D', target, '-Ft', '-z', '-c',
                                                'fast']), logfile=self.logfile)
                size = int(run(dexec(['du', '-sb', target])).stdout.split()[0])
                run(sh('rm -rf %s' % target))
            else:
                requests = self.s3_requests()
                since = cpu_times()
                seconds, _result = timed(self.pgbackrest(contender, '--type=' + kind, 'backup'), logfile=self.logfile)
                self.record_requests('%s.%s' % (phase, contender), requests)
                backup = self.newest_backup(contender)
                if backup['type'] != kind:
                    raise BenchError('%s: expected a %s backup, found %s' % (STANZA[contender], kind, backup['type']))
                size = report.stored_bytes(backup)
            self.sample('%s.%s' % (phase, contender), seconds, size, cpu_since=since)

    def s3_requests(self):
        """Requests the S3 endpoint has served for the benchmark's repository path so far (moto's request log)."""
        return int(run(sh("grep -c '%s/.* HTTP/1' /var/log/moto.log || true" % BENCH_REPO_PATH.strip('/'), user='root',
                          host=S3_HOST)).stdout.strip() or 0)

    def record_requests(self, key, before):
        self.results.setdefault('requests', {}).setdefault(key, []).append(self.s3_requests() - before)

    def change_rows(self, workload, condition):
        """Update 5 % of the accounts, and record how many of the table's pages hold one of them."""
        condition = condition.format(last=self.options.scale * ROWS_PER_SCALE // 20)
        start = time.monotonic()
        pages = int(psql('SELECT count(DISTINCT (ctid::text::point)[0]) FROM pgbench_accounts WHERE ' + condition))
        table_pages = int(psql("SELECT pg_relation_size('pgbench_accounts') / current_setting('block_size')::int"))
        count = int(psql('WITH changed AS (UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE %s '
                         'RETURNING 1) SELECT count(*) FROM changed' % condition))
        psql('CHECKPOINT')
        log('%s update: %d rows (%s) on %d of %d pages in %.0f s' % (workload, count, condition, pages, table_pages,
                                                                     time.monotonic() - start))
        self.results.setdefault('updates', {})[workload] = dict(
            condition=condition, rows=count, table_rows=self.options.scale * ROWS_PER_SCALE, pages=pages,
            table_pages=table_pages)
        self.wait_archived()

    def restore_round(self, round_number, phase='restore', trials=None):
        """One restore of each trial, (name, contender, extra pgbackrest options); by default every contender
        and the floor."""
        target = SCRATCH + '/restore'
        if trials is None:
            trials = [(contender, contender, ()) for contender in self.contenders + ('floor',)]
        for name, contender, extra in rotation(trials, round_number):
            run(sh('rm -rf {0} && mkdir -m 0700 {0}'.format(target)))
            since = cpu_times()
            if contender == 'floor':
                # The files a restore writes: the data directory without pg_wal's contents (a restore
                # brings none back), each file fsynced afterwards as pgBackRest's restore does.
                copy, _result = timed(sh('cd %s && cp -a $(ls -A | grep -vx pg_wal) %s/ && mkdir -m 0700 %s/pg_wal' % (
                    self.pg_data, target, target)))
                flush, _result = timed(sh('find %s -type f -exec sync --data {} +' % target))
                self.sample('restore.copy', copy)
                seconds = copy + flush
            else:
                requests = self.s3_requests()
                seconds, _result = timed(self.pgbackrest(contender, '--pg1-path=' + target, *(list(extra) + ['restore'])),
                                         logfile=self.logfile)
                self.record_requests('%s.%s' % (phase, name), requests)
            size = int(run(dexec(['du', '-sb', target])).stdout.split()[0])
            self.sample('%s.%s' % (phase, name), seconds, size, cpu_since=since)
        run(sh('rm -rf %s' % target))

    def s3_lab(self, *args):
        run(['docker', 'exec', S3_HOST, 's3-lab'] + list(args), logfile=self.logfile)

    def network(self):
        """The latest backup restored with the S3 endpoint NETWORK_LATENCY_MS away by every contender (stock: what
        one object per file costs there) and by the defaults with each process count of RESTORE_PROCESS_TRIALS; then
        full backups of the contenders whose settings are the collection's."""
        chosen = int(self.results.get('restore_process_max') or 1)
        trials = [(contender, contender, ()) for contender in self.contenders]
        trials += [('defaults-p%d' % count, 'defaults', ('--process-max=%d' % count,))
                   for count in RESTORE_PROCESS_TRIALS if count != chosen]
        log('the S3 endpoint %d ms away, %s/s per connection: restores (defaults: process-max %d), then full '
            'backups' % (NETWORK_LATENCY_MS, report.human_bytes(NETWORK_RATE), chosen))
        self.results['network'] = dict(latency_ms=NETWORK_LATENCY_MS, rate=NETWORK_RATE, restore_process_max=chosen)
        self.s3_lab('latency', str(NETWORK_LATENCY_MS))
        self.s3_lab('rate', str(NETWORK_RATE))
        try:
            for round_number in range(self.options.repeat):
                self.restore_round(round_number, 'restore_network', trials)
            for round_number in range(self.options.repeat):
                self.backup_round(round_number, 'full_network', tuple(
                    contender for contender in self.contenders if contender != 'stock'))
        finally:
            self.s3_lab('latency', '0')
            self.s3_lab('rate', '0')

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
        path = os.path.join(self.build, 'info.yml')
        with open(path, 'w') as handle:
            handle.write('---\n- name: Read the stanza, timed per task\n  hosts: %s\n  gather_facts: false\n'
                         '  tasks:\n%s' % (DB_HOST, ''.join(tasks)))
        return path

    def info_round(self, round_number):
        raw = dexec(['pgbackrest', '--stanza=' + LIVE_STANZA, '--output=json', 'info'])
        adhoc = ['ansible', '-i', self.lab_inventory(), DB_HOST, '-m', 'chronos.pgbackrest.pgbackrest_info',
                 '-a', 'stanza=' + LIVE_STANZA, '--become', '--become-user', 'postgres']
        for contender in rotation(('raw', 'playbook', 'adhoc'), round_number):
            if contender == 'raw':
                self.sample('info.raw', timed(raw)[0])
            elif contender == 'adhoc':
                self.sample('info.adhoc', timed(adhoc, env=self.ansible_env(), cwd=COLLECTION)[0])
            else:
                _seconds, timer = self.playbook(['-i', self.lab_inventory(), self.info_playbook(round_number)], 'info')
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
        load = subprocess.Popen(dexec([self.pg_bin + '/pgbench', '-n', '-c', str(clients), '-j', str(clients),
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
    @staticmethod
    def check_recap(timer, what, allow_changes=False):
        changed = 0
        for host, stats in timer['stats'].items():
            if stats.get('failures') or stats.get('unreachable'):
                raise BenchError('%s: %s failed (see .build/bench/<release>/logs)' % (what, host))
            changed += stats.get('changed', 0)
        if changed and not allow_changes:
            raise BenchError('%s changed %d things: not a no-change run (see .build/bench/<release>/logs)' % (
                what, changed))
        return changed

    def archiver(self, hosts):
        """{host: (WAL insert position in bytes, archived_count)}, read from pg_stat_archiver."""
        state = {}
        for host in hosts:
            lsn, archived = psql('SELECT pg_current_wal_insert_lsn(), archived_count FROM pg_stat_archiver',
                                 database='postgres', host=host).split('|')
            state[host] = (lsn_bytes(lsn), int(archived))
        return state

    def quiet_wal(self, hosts, limit=600):
        """Bring every host's WAL to rest before the no-change runs, so what they write is theirs alone.

        A checkpoint now means no timed one is due later (PostgreSQL skips a checkpoint when no WAL that counts was
        written since the last), and archive_timeout then closes the segment the checkpoint record went into. Rest
        is reached when neither the WAL position nor archived_count moved for archive_timeout plus 15 s.
        """
        for host in hosts:
            psql('CHECKPOINT', database='postgres', host=host)
        still_for = int(psql("SELECT setting FROM pg_settings WHERE name = 'archive_timeout'",
                             database='postgres')) + 15
        start = time.monotonic()
        state, since = self.archiver(hosts), time.monotonic()
        while time.monotonic() - since < still_for:
            if time.monotonic() - start > limit:
                self.note('WAL did not come to rest within %d s before the no-change runs' % limit)
                break
            time.sleep(5)
            now = self.archiver(hosts)
            if now != state:
                state, since = now, time.monotonic()
        log('WAL at rest on %d host(s) after %.0f s' % (len(hosts), time.monotonic() - start))
        return state

    def site_round(self, round_number):
        for contender in rotation(('one', 'fleet', 'ping'), round_number):
            since = cpu_times()
            if contender == 'ping':
                seconds, _result = timed(['ansible', '-i', self.lab_inventory(), DB_HOST, '-m', 'ansible.builtin.ping'],
                                         env=self.ansible_env(), logfile=os.path.join(self.build, 'logs', 'ping.log'),
                                         cwd=COLLECTION)
                self.sample('site.ping', seconds, cpu_since=since)
                continue
            if contender == 'one':
                seconds, timer = self.playbook(['-i', self.lab_inventory()] + NO_CHANGE_SETTINGS + [SITE], 'site-one')
            else:
                seconds, timer = self.playbook(['-i', self.fleet_inventory(), '-f', str(len(self.fleet))]
                                               + NO_CHANGE_SETTINGS + [SITE], 'site-fleet')
            self.check_recap(timer, 'site.yml (%s)' % contender)
            self.sample('site.' + contender, seconds, cpu_since=since)
            if contender == 'one':
                ran = [t for t in timer['tasks'] if t['status'] == 'ok' and t['seconds'] is not None]
                self.results['site_tasks'] = len(ran)
                self.results['site_skipped'] = len([t for t in timer['tasks'] if t['status'] == 'skipped'])
                self.results['site_slowest'] = [(t['name'], round(t['seconds'], 2)) for t in
                                                sorted(ran, key=lambda t: -t['seconds'])[:5]]

    def site(self):
        if set(DATA_PHASES) & set(self.options.phases):
            # The dataset is not needed any more, and autovacuum after the pgbench load would write WAL.
            run(dexec(['dropdb', '--force', DATABASE]))
        hosts = [DB_HOST] + self.fleet
        before = self.quiet_wal(hosts)
        log('site.yml with nothing to change (%s): one host, %d hosts; ad-hoc ping' % (
            ' '.join(NO_CHANGE_SETTINGS), len(self.fleet)))
        self.results['site_settings'] = ' '.join(NO_CHANGE_SETTINGS)
        for round_number in range(self.options.repeat):
            self.site_round(round_number)
        after = self.archiver(hosts)
        groups = dict(one=[DB_HOST], fleet=self.fleet)
        self.results['archiver'] = dict(
            (group, dict(hosts=len(members),
                         archived_before=sum(before[h][1] for h in members),
                         archived_after=sum(after[h][1] for h in members),
                         wal_bytes=sum(after[h][0] - before[h][0] for h in members),
                         runs=self.options.repeat))
            for group, members in groups.items())
        for group, figures in self.results['archiver'].items():
            log('  archived_count (%s): %d -> %d, %s of WAL written' % (
                group, figures['archived_before'], figures['archived_after'], report.human_bytes(figures['wal_bytes'])))

    # --- the whole run on one release ----------------------------------------------------------
    def phase(self, name, function):
        """Run one group of measurements; a failure is recorded and the independent groups after it still run."""
        try:
            function()
        except BenchError as error:
            self.results.setdefault('errors', {})[name] = str(error)
            log('%s: the %s measurements failed: %s' % (self.release, name, error))

    def backups(self):
        phases = self.options.phases
        if not {'full', 'diff', 'restore', 'network'} & set(phases):
            return
        log('full backups')
        for round_number in range(self.options.repeat):
            self.backup_round(round_number, 'full')
        if {'diff', 'restore', 'network'} & set(phases):
            for workload, condition in UPDATES:
                self.change_rows(workload, condition)
                log('differential backups after the %s update' % workload)
                for round_number in range(self.options.repeat):
                    self.backup_round(round_number, 'diff_' + workload)
        if 'restore' in phases:
            log('restores of the latest backup')
            for round_number in range(self.options.repeat):
                self.restore_round(round_number)
        if 'network' in phases:
            self.network()

    def info(self):
        log('pgbackrest_info through Ansible vs pgbackrest info')
        for round_number in range(self.options.repeat):
            self.info_round(round_number)

    def run(self):
        options = self.options
        start = time.monotonic()
        try:
            self.phase('lab', self.lab_up)
            if not self.results.get('errors'):
                self.phase('setup', self.setup)
            if not self.results.get('errors'):
                self.phase('backups', self.backups)
                for name, function in (('info', self.info), ('lag', self.archive_lag), ('site', self.site)):
                    if name in options.phases:
                        self.phase(name, function)
        finally:
            if options.keep_lab and self.release == options.releases[-1]:
                log('keeping the bench lab (--keep-lab); the next run removes it')
            else:
                self.remove_lab()
            self.results['seconds'] = round(time.monotonic() - start)
        return self.results


def write_results(results, directory):
    # matplotlib is imported only when there is something to draw.
    import chart  # pylint: disable=import-outside-toplevel
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, 'results.json'), 'w') as handle:
        json.dump(results, handle, indent=1, sort_keys=True)
    with open(os.path.join(directory, 'results.md'), 'w') as handle:
        handle.write(report.markdown(results))
    with open(os.path.join(directory, 'README-section.md'), 'w') as handle:
        handle.write(report.readme_section(results))
    chart.draw(results, os.path.join(directory, 'results.png'))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument('--size', default='512MB',
                      help='dataset size, e.g. 100MB or 1GB (default 512MB), turned into a pgbench scale')
    size.add_argument('--scale', type=int, help='pgbench scale (about 16.8 MB each), instead of --size')
    parser.add_argument('--releases', default=','.join(RELEASES),
                        help='Debian releases to measure, one after the other (default %s)' % ','.join(RELEASES))
    parser.add_argument('--repeat', type=int, default=3, help='runs of each contender (default 3, at least 1)')
    parser.add_argument('--hosts', type=int, default=8, help='hosts of the fleet for site.yml (default 8)')
    parser.add_argument('--lag-seconds', type=int, default=60, help='pgbench load for the archive lag (default 60)')
    parser.add_argument('--lag-clients', type=int, default=2, help='pgbench clients for the archive lag (default 2)')
    parser.add_argument('--phases', default=','.join(PHASES),
                        help='comma-separated subset of %s (default all)' % ','.join(PHASES))
    parser.add_argument('--output', default=os.path.join(HERE, 'results'),
                        help='directory for results.md, results.png, results.json and README-section.md '
                             '(default bench/results)')
    parser.add_argument('--keep-lab', action='store_true',
                        help='leave the last release\'s bench lab running, to look into it (development)')
    parser.add_argument('--report-only', action='store_true',
                        help='rewrite results.md, results.png and README-section.md from the results.json in --output')
    options = parser.parse_args(argv)
    if options.scale is None:
        found = re.match(r'^\s*(\d+(?:\.\d+)?)\s*([MG])i?B?\s*$', options.size, re.I)
        if not found:
            parser.error('--size: use a number with MB or GB, e.g. 100MB')
        megabytes = float(found.group(1)) * (1024 if found.group(2).upper() == 'G' else 1)
        options.scale = max(1, int(round(megabytes / MB_PER_SCALE)))
    options.phases = [p.strip() for p in options.phases.split(',') if p.strip()]
    options.releases = [r.strip() for r in options.releases.split(',') if r.strip()]
    unknown = (set(options.phases) - set(PHASES)) | (set(options.releases) - set(RELEASES))
    if unknown or not options.releases or options.repeat < 1 or options.hosts < 1:
        parser.error('bad --phases or --releases (%s), --repeat or --hosts' % ', '.join(sorted(unknown)))
    return options


def main(argv=None):
    options = parse_args(sys.argv[1:] if argv is None else argv)
    if options.report_only:
        with open(os.path.join(options.output, 'results.json')) as handle:
            results = json.load(handle)
    else:
        os.chdir(ROOT)
        signal.signal(signal.SIGTERM, lambda *_args: sys.exit(143))   # so the clean-up runs on `kill` too
        start = time.monotonic()
        collection = snapshot_collection()
        log('measuring the collection at %s%s (a copy in %s)' % (
            collection['commit'], ' with uncommitted changes in %s' % ', '.join(collection['uncommitted'])
            if collection['uncommitted'] else '', os.path.relpath(SNAPSHOT)))
        params = dict(collection=collection, scale=options.scale, repeat=options.repeat, phases=list(options.phases),
                      hosts=options.hosts, releases=list(options.releases),
                      started=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
                      args=' '.join(sys.argv[1:] if argv is None else argv))
        results = dict(params=params, releases={})
        for release in options.releases:
            results['releases'][release] = ReleaseBench(options, release).run()
        results['params']['seconds'] = round(time.monotonic() - start)
    write_results(results, options.output)
    print('\n' + report.summary(results))
    print('\nResults: %s/results.md, results.png, results.json, README-section.md' % os.path.relpath(options.output))
    failed = ['%s (%s)' % (release, ', '.join(sorted(document['errors'])))
              for release, document in results['releases'].items() if document.get('errors')]
    if failed:
        log('measurements failed on %s: see the errors above and in results.md' % '; '.join(failed))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
