# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place in this collection that runs pgbackrest and parses what it prints.

Secrets reach pgBackRest only through PGBACKREST_* environment variables: pgBackRest refuses
them on the command line, and process arguments are visible to every user on the host.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import json
import os
import re
import struct
import time
from datetime import datetime, timezone

from ansible_collections.chronos.pgbackrest.plugins.module_utils._container import Container

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
    'lock': (frozenset([50]),
             'Another pgBackRest command holds the stanza lock: wait for it to finish and run again '
             '(pgbackrest_backup can wait: wait_for_lock=true).'),
}

LOCK_ERROR = 50
# The user pgbackrest runs as inside a container: the official postgres image's, and Debian's.
CONTAINER_USER = 'postgres'
_ERROR_LINE = re.compile(r'ERROR: \[(\d{3})\]: (.*)')
_DURATION = re.compile(r'^\s*(\d+)\s*([smhdw]?)\s*$')
_DURATION_UNITS = {'': 1, 's': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}
BACKUP_COVERS = {'full': ('full',), 'diff': ('full', 'diff'), 'incr': ('full', 'diff', 'incr')}


def pgbackrest_argument_spec():
    """Options every module of this collection shares (documented in the pgbackrest doc fragment)."""
    return dict(
        stanza=dict(type='str', required=True),
        config=dict(type='path'),
        binary=dict(type='path'),
        repo_cipher_pass=dict(type='str', no_log=True),
        repo_s3_key=dict(type='str', no_log=True),
        repo_s3_key_secret=dict(type='str', no_log=True),
        container=dict(type='str'),
    )


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
        wal_start=archive.get('start'),
        wal_stop=archive.get('stop'),
        lsn_start=lsn.get('start'),
        lsn_stop=lsn.get('stop'),
        repo_key=database.get('repo-key'),
        error=raw.get('error'),
    )


def parse_stanza(raw):
    """One stanza of `info --output=json`, flattened; backups oldest first, as pgBackRest lists them."""
    status = raw.get('status') or {}
    lock = ((status.get('lock') or {}).get('backup') or {}).get('held')
    return dict(
        name=raw.get('name'),
        status=_status(status),
        backup_running=lock,
        cipher=raw.get('cipher'),
        repos=[dict(key=repo.get('key'), cipher=repo.get('cipher'), status=_status(repo.get('status')))
               for repo in raw.get('repo') or []],
        db=[dict(id=db.get('id'), system_id=db.get('system-id'), version=db.get('version'),
                 repo_key=db.get('repo-key'))
            for db in raw.get('db') or []],
        archive=[dict(id=archive.get('id'), min=archive.get('min'), max=archive.get('max'))
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


_TARGET_TIME = re.compile(r'^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(\.\d{1,6})?\s*(Z|UTC|[+-]\d{2}(?::?\d{2})?)$')


def parse_target_time(text):
    """'2026-11-24 08:22:18+00' -> epoch seconds (float). The time zone is required: without one
    PostgreSQL would read the target in the server's time zone, which may not be the operator's."""
    match = _TARGET_TIME.match((text or '').strip())
    if not match:
        raise ValueError("'%s' is not a time with a time zone: write it like '2026-11-24 08:22:18+00'" % text)
    day, clock, fraction, zone = match.groups()
    try:
        moment = datetime.strptime('%s %s' % (day, clock), '%Y-%m-%d %H:%M:%S')
    except ValueError:
        raise ValueError("'%s' is not a valid date and time" % text)
    if zone in ('Z', 'UTC'):
        offset = 0
    else:
        digits = zone[1:].replace(':', '')
        hours, minutes = int(digits[:2]), int(digits[2:] or 0)
        if hours > 15 or minutes > 59:
            raise ValueError("'%s' is not a valid date and time: the time zone offset is out of range" % text)
        offset = hours * 3600 + minutes * 60
        offset = -offset if zone[0] == '-' else offset
    epoch = (moment - datetime(1970, 1, 1)).total_seconds() - offset
    return epoch + float(fraction or 0)


def newest_wal_segment_path(stanza):
    """Repository path of the directory holding the newest archived WAL segment, and its name; (None, None)
    when nothing is archived."""
    archives = [archive for archive in stanza['archive'] if archive['max']]
    if not archives:
        return None, None
    archive = archives[-1]
    return 'archive/%s/%s/%s' % (stanza['name'], archive['id'], archive['max'][:16]), archive['max']


_LSN = re.compile(r'^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$')


def parse_lsn(text):
    """'0/3000088' -> an integer that orders like the LSN."""
    match = _LSN.match((text or '').strip())
    if not match:
        raise ValueError("'%s' is not an LSN: write it like '0/3000088'" % text)
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def parse_repo_ls(text):
    """`repo-ls --output=json` -> {name: {type, size, time}}."""
    return json.loads(text)


def read_local_file(path):
    with open(path, 'rb') as handle:
        return handle.read()


def read_restored_state(pg_path, read=read_local_file):
    """What a past pgBackRest restore left in pg_path: the start LSN of the backup it restored (from
    backup_label, or backup_label.old once recovery began) and the recovery settings pgBackRest wrote
    last into postgresql.auto.conf. None when pg_path shows no pgBackRest restore.
    `read` returns a file's bytes (PgBackRest.read_file reads through a container)."""
    start_lsn = None
    for name in ('backup_label', 'backup_label.old'):
        try:
            label = read('%s/%s' % (pg_path, name)).decode('utf-8', 'replace')
        except (IOError, OSError):
            continue
        for line in label.splitlines():
            if line.startswith('START WAL LOCATION:'):
                start_lsn = line.split()[3]
        break
    settings = None
    try:
        auto_conf = read('%s/postgresql.auto.conf' % pg_path).decode('utf-8', 'replace')
    except (IOError, OSError):
        auto_conf = ''
    for line in auto_conf.splitlines():
        if line.startswith('# Recovery settings generated by pgBackRest restore'):
            settings = {}
        elif settings is not None and '=' in line and not line.startswith('#'):
            key, value = line.split('=', 1)
            settings[key.strip()] = value.strip().strip("'")
    if start_lsn is None or settings is None:
        return None
    return dict(start_lsn=start_lsn, settings=settings)


def postgresql_running(pg_path):
    """Whether a postmaster runs on pg_path: postmaster.pid names a live process."""
    try:
        with open('%s/postmaster.pid' % pg_path) as handle:
            pid = int(handle.readline().strip())
    except (IOError, OSError, ValueError):
        return False
    if pid <= 0:  # kill(0 or -1) would signal a process group, not a postmaster
        return False
    try:
        os.kill(pid, 0)
    except OverflowError:
        return False
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def read_cluster_identity(pg_path, read=read_local_file):
    """(major version, system identifier) of the cluster in pg_path, read as pgBackRest reads them:
    PG_VERSION, and the first 8 bytes of global/pg_control (native byte order)."""
    version = read('%s/PG_VERSION' % pg_path).decode('ascii', 'replace').strip()
    system_id = struct.unpack('=Q', read('%s/global/pg_control' % pg_path)[:8])[0]
    return version, system_id


class PgBackRest(object):
    """Runs pgbackrest for one module invocation and keeps the list of commands it ran or planned."""

    def __init__(self, module, one_off=False):
        """With the container option, pgbackrest runs in that container as postgres; one_off=True lets a
        command run in a one-off container from the same image while the container is stopped (restore)."""
        self.module = module
        params = module.params
        self.stanza = params.get('stanza')
        self.config = params.get('config')
        self.one_off = one_off
        self.container = None
        if params.get('container'):
            self.container = Container(module, params['container'], CONTAINER_USER)
            self.binary = params.get('binary') or 'pgbackrest'
        else:
            self.binary = params.get('binary') or module.get_bin_path('pgbackrest', required=True)
        self.environment = dict((variable, params[option]) for option, variable in SECRET_ENVIRONMENT.items()
                                if params.get(option))
        self.executed_commands = []

    def command(self, command, *options):
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

    def plan(self, command, *options):
        """Record a command without running it (check mode)."""
        argv = self.command(command, *options)
        self.executed_commands.append(' '.join(argv))
        return argv

    def execute(self, command, *options):
        """Run one pgbackrest command and return (rc, stdout, stderr, argv), whatever rc is."""
        argv = self.plan(command, *options)
        if self.container:
            rc, stdout, stderr = self.container.run(argv, self.environment, one_off=self.one_off)
        else:
            # errors='replace': undecryptable bytes in pgBackRest's output must not make the result invalid UTF-8.
            rc, stdout, stderr = self.module.run_command(argv, environ_update=self.environment, errors='replace')
        return rc, stdout, stderr, argv

    def read_file(self, path):
        """The bytes of a file where PostgreSQL's files are: on this host, or in the container."""
        return self.container.read_file(path) if self.container else read_local_file(path)

    def postgresql_running(self, pg_path):
        """In container mode PostgreSQL is the container's main process: it runs when the container runs."""
        return self.container.running if self.container else postgresql_running(pg_path)

    def is_empty_directory(self, path):
        if self.container:
            return self.container.is_empty_directory(path)
        return not (os.path.isdir(path) and os.listdir(path))

    def run(self, command, *options, **kwargs):
        """Run one pgbackrest command; on failure, fail the module saying what was attempted.
        `attempt` is a sentence fragment like 'create stanza chronos-v2'."""
        rc, stdout, stderr, argv = self.execute(command, *options)
        if rc != 0:
            self.fail(kwargs.get('attempt') or command, rc, stdout, stderr, argv)
        return stdout, stderr

    def fail(self, attempt, rc, stdout, stderr, argv=None, advice=None, **extra):
        code, text = parse_error(stdout, stderr)
        part, default_advice = error_part(code)
        advice = advice or default_advice
        if code is None:
            text = (stderr or stdout or '').strip() or 'no error message'
        msg = 'Unable to %s: pgBackRest %s%s. %s' % (
            attempt, 'error [%03d]: ' % code if code is not None else 'exited %s: ' % rc, text, advice)
        self.module.fail_json(msg=msg, rc=rc, stdout=stdout, stderr=stderr, error_code=code, failed_part=part,
                              cmd=' '.join(argv) if argv else None, executed_commands=self.executed_commands,
                              **extra)

    def info(self):
        """All stanzas `info` reports (only self.stanza when set), parsed."""
        stdout, dummy = self.run('info', '--output=json', attempt='read the repository with pgbackrest info')
        try:
            return parse_info(stdout)
        except ValueError as exc:
            self.module.fail_json(msg='Unable to parse the output of pgbackrest info --output=json: %s' % exc,
                                  stdout=stdout, executed_commands=self.executed_commands)

    def stanza_info(self):
        """The parsed info of self.stanza (pgBackRest reports a missing stanza with status 1)."""
        for stanza in self.info():
            if stanza['name'] == self.stanza:
                return stanza
        self.module.fail_json(msg="pgbackrest info did not report stanza '%s'" % self.stanza,
                              executed_commands=self.executed_commands)

    def version(self):
        stdout, dummy = self.run('version', attempt='read the pgBackRest version')
        return stdout.strip().split()[-1]


def now():
    return time.time()
