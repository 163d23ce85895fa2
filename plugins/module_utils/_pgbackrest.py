# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place in this collection that runs pgbackrest and parses what it prints. pgbackrest runs on a
target (_target.py): this host or a container.

Secrets reach pgBackRest only through PGBACKREST_* environment variables: pgBackRest refuses
them on the command line, and process arguments are visible to every user on the host.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import time
from datetime import datetime, timezone

from ansible_collections.chronos.pgbackrest.plugins.module_utils._lock import StanzaLock
from ansible_collections.chronos.pgbackrest.plugins.module_utils._errors import ChronosError

# pgBackRest's stanza status codes (src/command/info/info.c).
STATUS_OK = 0
STATUS_MISSING_STANZA_PATH = 1
STATUS_NO_BACKUP = 2

# Option name -> environment variable. pgBackRest reads repo1 options from PGBACKREST_REPO1_*.
SECRET_ENVIRONMENT = {
    'repo_cipher_pass': 'PGBACKREST_REPO1_CIPHER_PASS',
    'repo_s3_key': 'PGBACKREST_REPO1_S3_KEY',
    'repo_s3_key_secret': 'PGBACKREST_REPO1_S3_KEY_SECRET',
}

# pgBackRest error codes (src/build/error/error.yaml), grouped by the part of the setup they point at,
# with what an operator should do about them.
ERROR_PARTS = {
    'configuration': (frozenset([27, 31, 32, 37, 72, 89]),
                      'Fix the option pgBackRest names in /etc/pgbackrest/pgbackrest.conf '
                      '(the pgbackrest role templates it) and run again.'),
    'repository': (frozenset([39, 41, 42, 49, 55, 73, 101, 103, 105]),
                   'Check that the repository is reachable from this host (S3 endpoint, port, bucket, '
                   'region, keys, CA file) and run again.'),
    # A wrong passphrase shows as a FormatError: the decrypted info file is not text.
    'encryption': (frozenset([29, 95]),
                   'The repository files cannot be decrypted: the cipher passphrase (repo1-cipher-pass) '
                   'is probably not the one this repository was created with.'),
    'stanza': (frozenset([28, 44, 51, 58]),
               'The repository stanza does not match this PostgreSQL cluster. After a major upgrade use '
               'pgbackrest_stanza state=upgraded; for a different cluster use a new stanza name.'),
    'archiving': (frozenset([68, 82, 87]),
                  'WAL archiving is not working: check archive_mode and archive_command in PostgreSQL '
                  'and the pgBackRest log in /var/log/pgbackrest.'),
    'database': (frozenset([38, 56, 57, 80, 81]),
                 'PostgreSQL could not be reached as configured by pg1-path, pg1-port and pg1-socket-path: '
                 'check that it is running.'),
    'ca_file': (frozenset(),
                'The CA file pgbackrest.conf names (repo1-storage-ca-file) cannot be read where pgBackRest runs: in a '
                'container recreated from its image it is gone with the old container - the next scheduled job, or a '
                'module that acts, puts it back; site.yml does too.'),
    'lock': (frozenset([50]),
             'Another pgBackRest command holds the stanza lock: wait for it to finish and run again '
             '(pgbackrest_backup can wait: wait_for_lock=true).'),
}

LOCK_ERROR = 50
DEFAULT_CONFIG = '/etc/pgbackrest/pgbackrest.conf'
_ERROR_LINE = re.compile(r'ERROR: \[(\d{3})\]: (.*)')
_DURATION = re.compile(r'^\s*(\d+)\s*([smhdw]?)\s*$')
_DURATION_UNITS = {'': 1, 's': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}
BACKUP_COVERS = {'full': ('full',), 'diff': ('full', 'diff'), 'incr': ('full', 'diff', 'incr')}

# Commands that take no option: pgBackRest 2.55 refuses --stanza or --log-level-console with `version`.
BARE_COMMANDS = ('version', 'help')


def parse_error(stdout, stderr):
    """Return (code, text) of the first ERROR pgBackRest printed, or (None, None)."""
    for stream in (stderr or '', stdout or ''):
        lines = stream.splitlines()
        for index, line in enumerate(lines):
            match = _ERROR_LINE.search(line)
            if match:
                # pgBackRest continues a message on indented lines (HINT:, nested causes).
                text = [match.group(2).strip()]
                for more in lines[index + 1:]:
                    if not more.startswith(' ') or _ERROR_LINE.search(more):
                        break
                    text.append(more.strip())
                return int(match.group(1)), ' '.join(text)
    return None, None


def error_part(code):
    """Name the part of the setup an error code points at, and what to do: (part, advice)."""
    for part, (codes, advice) in ERROR_PARTS.items():
        if code in codes:
            return part, advice
    return 'pgbackrest', 'Read the pgBackRest log in /var/log/pgbackrest for details.'


def parse_duration(value):
    """'24h' -> 86400. Accepts a whole number of seconds or a number with s, m, h, d or w."""
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError("'%s' is not a duration: use a number with s, m, h, d or w, e.g. 24h" % value)
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


def utc(epoch):
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime('%Y-%m-%d %H:%M:%S+00')


def _status(raw):
    raw = raw or {}
    return dict(code=raw.get('code'), message=raw.get('message'))


def parse_backup(raw):
    """One backup of `info --output=json`, flattened. Fields pgBackRest added after 2.45 are None when absent."""
    timestamp = raw.get('timestamp') or {}
    info = raw.get('info') or {}
    repository = info.get('repository') or {}
    archive = raw.get('archive') or {}
    lsn = raw.get('lsn') or {}
    database = raw.get('database') or {}
    return dict(
        label=raw.get('label'),
        type=raw.get('type'),
        prior=raw.get('prior'),
        start=timestamp.get('start'),
        stop=timestamp.get('stop'),
        start_time=utc(timestamp.get('start')),
        stop_time=utc(timestamp.get('stop')),
        size=info.get('size'),
        delta=info.get('delta'),
        repo_size=repository.get('size'),
        repo_delta=repository.get('delta'),
        # Block incremental (2.46+; reported since 2.44): the maps' sizes.
        repo_size_map=repository.get('size-map'),
        repo_delta_map=repository.get('delta-map'),
        wal_start=archive.get('start'),
        wal_stop=archive.get('stop'),
        lsn_start=lsn.get('start'),
        lsn_stop=lsn.get('stop'),
        repo_key=database.get('repo-key'),
        database_id=database.get('id'),
        backrest_version=(raw.get('backrest') or {}).get('version'),
        error=raw.get('error'),
    )


def parse_stanza(raw):
    """One stanza of `info --output=json`, flattened; backups oldest first, as pgBackRest lists them."""
    status = raw.get('status') or {}
    lock = (status.get('lock') or {}).get('backup') or {}
    restore_lock = (status.get('lock') or {}).get('restore') or {}
    return dict(
        name=raw.get('name'),
        status=_status(status),
        backup_running=lock.get('held'),
        # A running backup's progress (2.48+).
        backup_progress_total=lock.get('size'),
        backup_progress_complete=lock.get('size-cplt'),
        # A running restore's progress (2.56+).
        restore_progress_total=restore_lock.get('size'),
        restore_progress_complete=restore_lock.get('size-cplt'),
        cipher=raw.get('cipher'),
        repos=[dict(key=repo.get('key'), cipher=repo.get('cipher'), status=_status(repo.get('status')))
               for repo in raw.get('repo') or []],
        db=[dict(id=db.get('id'), system_id=db.get('system-id'), version=db.get('version'),
                 repo_key=db.get('repo-key'))
            for db in raw.get('db') or []],
        archive=[dict(id=archive.get('id'), min=archive.get('min'), max=archive.get('max'),
                      database=dict(id=(archive.get('database') or {}).get('id'),
                                    repo_key=(archive.get('database') or {}).get('repo-key')))
                 for archive in raw.get('archive') or []],
        backups=[parse_backup(backup) for backup in raw.get('backup') or []],
    )


def parse_info(text):
    """Parse `pgbackrest info --output=json` into a list of stanzas."""
    # strict=False: with a wrong passphrase pgBackRest 2.45 puts the undecryptable bytes, control
    # characters included, unescaped into a status message.
    data = json.loads(text, strict=False)
    if not isinstance(data, list):
        raise ValueError('expected a JSON list of stanzas')
    return [parse_stanza(stanza) for stanza in data]


# `info` names the error class inside a repo's status message, e.g. "[HostConnectError] unable to ...".
_REPO_MESSAGE_PARTS = (
    (('HostConnectError', 'ProtocolError', 'ServiceError', 'AccessError', 'HTTP request failed'), 'repository'),
    (('FormatError', 'CryptoError'), 'encryption'),
    # Checked last, it wins: a missing CA file is a CryptoError too.
    (('CA certificate location',), 'ca_file'),
)


def _first_line(message):
    """The first line of a status message, printable characters only (it may quote undecryptable bytes)."""
    line = (message or '').split('\n')[0]
    return ''.join(char for char in line if char.isprintable() and char != '\ufffd').strip()


def stanza_problem(stanza):
    """(sentence, part, advice) saying why a stanza is not usable, or None when it is usable:
    ok, or created with no backup yet."""
    code = stanza['status']['code']
    if code in (STATUS_OK, STATUS_NO_BACKUP):
        return None
    failing = [repo for repo in stanza['repos'] if repo['status']['code'] not in (STATUS_OK, STATUS_NO_BACKUP)]
    details = ['repo%s: %s' % (repo['key'], _first_line(repo['status']['message'])) for repo in failing]
    part, advice = 'pgbackrest', 'Read the pgBackRest log in /var/log/pgbackrest for details.'
    if code == STATUS_MISSING_STANZA_PATH:
        part, advice = 'stanza', 'Create the stanza first: pgbackrest_stanza with state=present (the pgbackrest role does).'
    for repo in failing:
        for markers, candidate in _REPO_MESSAGE_PARTS:
            if any(marker in (repo['status']['message'] or '') for marker in markers):
                part, advice = candidate, ERROR_PARTS[candidate][1]
    sentence = "pgBackRest reports stanza '%s' as '%s' (status %s)%s" % (
        stanza['name'], stanza['status']['message'], code, ': ' + '; '.join(details) if details else '')
    return sentence, part, advice


def current_db(stanza):
    """The repository's current PostgreSQL identity: the db entry with the highest id."""
    if not stanza['db']:
        return None
    return max(stanza['db'], key=lambda db: db['id'])


def newest_backup(stanza, types=None, newer_than=None):
    """Newest completed backup of one of `types` that stopped at or after epoch `newer_than`."""
    for backup in reversed(stanza['backups']):
        if types and backup['type'] not in types:
            continue
        if backup['error']:
            continue
        if newer_than is not None and (backup['stop'] or 0) < newer_than:
            continue
        return backup
    return None


class PgBackRestError(ChronosError):
    """pgBackRest failed: the message names what was attempted, pgBackRest's error and what to do."""

    def __init__(self, attempt, completed, advice=None, **extra):
        code, text = parse_error(completed.stdout, completed.stderr)
        part, default_advice = error_part(code)
        if code is None:
            text = completed.output or 'no error message'
        msg = 'Unable to %s: pgBackRest %s%s. %s' % (
            attempt, 'error [%03d]: ' % code if code is not None else 'exited %s: ' % completed.rc, text,
            advice or default_advice)
        super(PgBackRestError, self).__init__(
            msg, rc=completed.rc, stdout=completed.stdout, stderr=completed.stderr, error_code=code,
            failed_part=part, cmd=' '.join(completed.argv), **extra)
        self.code = code
        self.part = part


class PgBackRest(object):
    """Runs pgbackrest on a target for one stanza, as the target's PostgreSQL user.

    Secrets reach pgBackRest only through PGBACKREST_REPO1_* environment variables: pgBackRest refuses them
    on the command line, and process arguments are visible to every user."""

    def __init__(self, target, stanza, config=None, binary=None, secrets=None):
        self.target = target
        self.stanza = stanza
        self.config = config
        self.binary = binary or 'pgbackrest'
        self.environment = dict((SECRET_ENVIRONMENT[option], value) for option, value in (secrets or {}).items()
                                if value and option in SECRET_ENVIRONMENT)

    @property
    def executed_commands(self):
        return self.target.executed_commands

    def on(self, target=None, stanza=None):
        """The same pgBackRest (binary, configuration, secrets) on another target or for another stanza."""
        other = PgBackRest(target or self.target, stanza or self.stanza, self.config, self.binary)
        other.environment = self.environment
        return other

    def command(self, command, *options):
        if command in BARE_COMMANDS:
            return [self.binary, command]
        argv = [self.binary]
        if self.stanza:
            argv.append('--stanza=%s' % self.stanza)
        if self.config:
            argv.append('--config=%s' % self.config)
        # Console logging off keeps stdout to what the command returns (JSON for info);
        # warnings and errors still arrive on stderr.
        argv.extend(['--log-level-console=off', '--log-level-stderr=warn'])
        # Options before the command, arguments (such as repo-ls's path) after it.
        argv.extend(option for option in options if option.startswith('-'))
        argv.append(command)
        argv.extend(option for option in options if not option.startswith('-'))
        return argv

    def lock(self, purpose, wait=0):
        """The stanza's lock, shared with whatever locks this pgbackrest.conf where pgBackRest runs (the backup wrapper
        run by hand in a container): _lock.StanzaLock."""
        shared = self.target.local_path(self.config or DEFAULT_CONFIG)
        # No file, nothing to share: the wrapper cannot run without it either. A link there is refused.
        return StanzaLock(self.stanza, purpose, wait, shared=shared if shared and os.path.lexists(shared) else None)

    def plan(self, command, *options):
        """Record a command without running it (check mode)."""
        argv = self.command(command, *options)
        self.target.record(argv)
        return argv

    def execute(self, command, *options):
        """Run one pgbackrest command; returns Completed, whatever its exit code. pgBackRest options set in this
        process's environment (PGBACKREST_IO_TIMEOUT, say) reach it too, in a container as on a host."""
        environment = dict((name, value) for name, value in os.environ.items() if name.startswith('PGBACKREST_'))
        environment.update(self.environment)
        return self.target.run(self.command(command, *options), env=environment)

    def run(self, command, *options, **kwargs):
        """Run one pgbackrest command; raise PgBackRestError when it fails. `attempt` is a sentence fragment
        like 'create stanza chronos-v2'."""
        done = self.execute(command, *options)
        if done.rc != 0:
            raise PgBackRestError(kwargs.get('attempt') or command, done, advice=kwargs.get('advice'))
        return done

    def info(self):
        """All stanzas `info` reports (only self.stanza when set), parsed."""
        done = self.run('info', '--output=json', attempt='read the repository with pgbackrest info')
        try:
            return parse_info(done.stdout)
        except ValueError as exc:
            raise ChronosError('Unable to parse the output of pgbackrest info --output=json: %s' % exc,
                               stdout=done.stdout)

    def stanza_info(self):
        """The parsed info of self.stanza (pgBackRest reports a missing stanza with status 1)."""
        for stanza in self.info():
            if stanza['name'] == self.stanza:
                return stanza
        raise ChronosError("pgbackrest info did not report stanza '%s'" % self.stanza)

    def usable_stanza(self, doing):
        """The stanza's info, or a ChronosError saying why it cannot be used for `doing` ('back up')."""
        stanza = self.stanza_info()
        problem = stanza_problem(stanza)
        if problem:
            sentence, part, advice = problem
            raise ChronosError('Cannot %s: %s. %s' % (doing, sentence, advice), failed_part=part, stanza=stanza)
        return stanza

    def version(self):
        words = self.run('version', attempt='read the pgBackRest version').stdout.split()
        if not words:
            raise ChronosError('pgbackrest version printed nothing on %s.' % self.target.describe())
        return words[-1]

    def repo_ls(self, path, recurse=False, attempt='list the repository'):
        """`repo-ls --output=json path` -> {name: {type, size, time}} (names relative to path)."""
        options = ['--output=json'] + (['--recurse'] if recurse else [])
        done = self.run('repo-ls', *(options + [path]), attempt=attempt)
        try:
            return json.loads(done.stdout)
        except ValueError as exc:
            raise ChronosError('Unable to parse the output of pgbackrest repo-ls --output=json %s: %s' % (path, exc),
                               stdout=done.stdout)


def config_options(text):
    """pgbackrest.conf's text -> {(section, option): value}, the last value of an option winning, as pgBackRest reads it."""
    options, section = {}, None
    for line in (text or '').splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        if line.startswith('[') and line.endswith(']'):
            section = line[1:-1].strip()
            continue
        name, separator, value = line.partition('=')
        if separator:
            options[(section, name.strip())] = value.strip()
    return options


def read_config_options(target, config):
    """The options of the configuration file pgBackRest reads on the target; {} when it cannot be read."""
    try:
        raw = target.read_file(config or DEFAULT_CONFIG)
    except (IOError, OSError):
        return {}
    return config_options(raw.decode('utf-8', 'replace'))


def stanza_mismatch(stanza, cluster):
    """A sentence when the stanza's current PostgreSQL identity is not the cluster's (version, system_id), else None."""
    db = current_db(stanza)
    if db is None or (str(db['version']), db['system_id']) == (cluster['version'], cluster['system_id']):
        return None
    return ("stanza '%s' belongs to PostgreSQL %s with system-id %s, but the cluster is PostgreSQL %s with "
            "system-id %s" % (stanza['name'], db['version'], db['system_id'], cluster['version'], cluster['system_id']))


def stanza_action(pgbackrest, cluster, state='present'):
    """What the stanza needs for this cluster: (stanza info, 'stanza-create' | 'stanza-upgrade' | None), or a
    ChronosError saying why the repository cannot serve it (unreachable, undecryptable, another cluster)."""
    stanza = pgbackrest.stanza_info()
    missing = stanza['status']['code'] == STATUS_MISSING_STANZA_PATH
    problem = None if missing else stanza_problem(stanza)
    if problem:
        sentence, part, advice = problem
        raise ChronosError('%s. %s' % (sentence, advice), failed_part=part, stanza=stanza, cluster=cluster)
    if missing and state == 'upgraded':
        raise ChronosError("Stanza '%s' does not exist, so there is nothing to upgrade: create it with state=present."
                           % pgbackrest.stanza, stanza=stanza, cluster=cluster)
    different = None if missing else stanza_mismatch(stanza, cluster)
    if different and state == 'present':
        raise ChronosError('%s. If PostgreSQL was upgraded to a new major version, run pgbackrest_stanza with '
                           'state=upgraded (pgbackrest_stanza_state: upgraded in the role). If this is another cluster, '
                           'give it a new stanza name: pgBackRest keeps a stanza to one cluster.' % different,
                           failed_part='stanza', stanza=stanza, cluster=cluster)
    return stanza, 'stanza-create' if missing else 'stanza-upgrade' if different else None


_VERIFY_COUNT = re.compile(r'\b(missing|checksum invalid|size invalid|other): (\d+)')


def parse_verify(text):
    """`verify --output=text --verbose` -> {'ok': bool, 'invalid': files and WAL found missing or invalid, 'lines': the
    report}. pgBackRest exits 0 even when it finds problems: the report's status lines and counts tell."""
    statuses = re.findall(r'^\s*status: (\S+)', text or '', re.M)
    invalid = sum(int(count) for dummy, count in _VERIFY_COUNT.findall(text or ''))
    return dict(ok=bool(statuses) and all(status == 'ok' for status in statuses) and invalid == 0, invalid=invalid,
                lines=[line.rstrip() for line in (text or '').splitlines() if line.strip()])


# Fastest first: zst compresses about as well as gz at several times its speed; lz4 is faster still but compresses
# less; gz is always there.
COMPRESS_PREFERENCE = ('zst', 'lz4', 'gz')
BLOCK_INCREMENTAL_SINCE = '2.46'


def backup_settings(version, compress_types, cpus, compress_type='auto', repo_block='auto', repo_bundle=True,
                    process_max=0, repo_type='s3'):
    """compress-type, repo1-block and process-max as pgbackrest.conf gets them, each with the reason when it was
    chosen here (auto): the fastest compression this build has; block incremental where the version has it, files
    are bundled and the repository is a posix path (from S3 a restore fetches a block-incremental file's blocks one
    request after another, so its time grows with the round trip: bench/results/results.md); half the CPUs (at
    least 1)."""
    settings = dict(compress_type=compress_type, compress_reason=None, repo_block=None, repo_block_reason=None,
                    process_max=process_max)
    if compress_type == 'auto':
        settings['compress_type'] = compress_types[0] if compress_types else 'gz'
        settings['compress_reason'] = 'The fastest compression this pgBackRest was built with (%s)' % ', '.join(
            compress_types or ['gz'])
    supported = version_at_least(version, BLOCK_INCREMENTAL_SINCE)
    if repo_block == 'auto':
        settings['repo_block'] = bool(supported and repo_bundle and repo_type != 's3')
        if not supported:
            settings['repo_block_reason'] = 'it needs pgBackRest %s or later, this is %s' % (
                BLOCK_INCREMENTAL_SINCE, version)
        elif not repo_bundle:
            settings['repo_block_reason'] = 'it needs bundling (pgbackrest_repo_bundle)'
        elif repo_type == 's3':
            settings['repo_block_reason'] = (
                'from S3 a restore fetches a block-incremental file\'s blocks one request after another, so its time '
                'grows with the round trip to the bucket (docs/benchmark.md); set pgbackrest_repo_block: true where '
                'the repository\'s size matters more than restore time')
    else:
        settings['repo_block'] = str(repo_block).lower() in ('true', 'yes', 'y', '1', 'on')
    if settings['repo_block']:
        settings['repo_block_reason'] = 'a changed file stores only its changed blocks (pgBackRest %s)' % version
    if not process_max:
        settings['process_max'] = max(1, (cpus or 2) // 2)
    return settings


# A restore from an object store waits on the network, request by request, not on the CPU (the cluster is stopped,
# nothing else needs the CPUs): this many processes per CPU, up to RESTORE_PROCESS_CAP (bench/results/results.md).
RESTORE_PROCESSES_PER_CPU = 4
RESTORE_PROCESS_CAP = 16


def restore_settings(repo_type, cpus, process_max=0):
    """process-max for restore and archive-get, as pgbackrest.conf's [global:restore] and [global:archive-get] get
    it, with the reason when it was chosen here (0): an S3 repository is a network away, so the processes overlap
    its round trips; a posix repository is read as fast as the CPUs decompress."""
    if process_max:
        return dict(process_max=process_max, process_max_reason=None)
    cpus = cpus or 2
    if repo_type == 's3':
        chosen = min(RESTORE_PROCESS_CAP, max(RESTORE_PROCESSES_PER_CPU, RESTORE_PROCESSES_PER_CPU * cpus))
        reason = ('a restore from S3 waits on round trips to the bucket, not on the CPUs: %d processes for %d CPU%s '
                  '(%d per CPU, at most %d)' % (
                      chosen, cpus, '' if cpus == 1 else 's', RESTORE_PROCESSES_PER_CPU, RESTORE_PROCESS_CAP))
    else:
        chosen = cpus
        reason = 'a restore runs while PostgreSQL is stopped: one process per CPU (%d)' % cpus
    return dict(process_max=chosen, process_max_reason=reason)


def version_at_least(version, wanted):
    """'2.55.1' >= '2.46' -> True."""
    def numbers(text):
        return tuple(int(part) for part in re.findall(r'\d+', text)[:3])
    return numbers(version) >= numbers(wanted)


def now():
    return time.time()
