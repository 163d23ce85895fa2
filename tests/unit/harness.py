# -*- coding: utf-8 -*-
# Copyright: Contributors to the chronos.pgbackrest collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the unit tests run the code against: captured output, the fakes at the seams, and the constants of the lab
the fixtures were captured in. The fixtures that install the fakes are in conftest.py.

Imported as ansible_collections.chronos.pgbackrest.tests.unit.harness (conftest.py makes this checkout reachable
under that name), like the code under test.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import csv
import io
import json
import os
import struct
import tarfile

from ansible_collections.chronos.pgbackrest.plugins.module_utils import _container

UNIT = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(UNIT))
FIXTURES = os.path.join(UNIT, 'fixtures')

STANZA = 'chronos-v2'
BINARY = 'pgbackrest'
# What PgBackRest puts before every command's own options (PgBackRest.command).
PREFIX = [BINARY, '--stanza=%s' % STANZA, '--log-level-console=off', '--log-level-stderr=warn']
SECRETS = dict(repo_cipher_pass='cipher-secret-1', repo_s3_key='s3-key-2', repo_s3_key_secret='s3-secret-3')
SECRET_ENVIRONMENT = {'PGBACKREST_REPO1_CIPHER_PASS': 'cipher-secret-1', 'PGBACKREST_REPO1_S3_KEY': 's3-key-2',
                      'PGBACKREST_REPO1_S3_KEY_SECRET': 's3-secret-3'}
# When the fake clock starts: 2026-11-24 09:53:20 UTC, a minute after the captured restores.
CLOCK_START = 1795513999.0


def fixture_bytes(name):
    """A fixture's bytes. Output with bytes that are no text (info with a wrong passphrase prints undecryptable ones)
    is kept as <name>.b64, so that every file of the tree is text for ansible-test's sanity checks."""
    path = os.path.join(FIXTURES, name)
    if not os.path.exists(path) and os.path.exists(path + '.b64'):
        with open(path + '.b64') as handle:
            return base64.b64decode(handle.read())
    with open(path, 'rb') as handle:
        return handle.read()


def fixture_text(name):
    """A captured output as a target returns it: UTF-8, undecodable bytes replaced (_target._text)."""
    return fixture_bytes(name).decode('utf-8', 'replace')


def ok(output=b''):
    """A command that succeeded: output is a fixture's name or bytes."""
    return (0, fixture_bytes(output) if isinstance(output, str) else output, b'')


def fails(rc, stderr=b'', stdout=b''):
    """A command that failed: stderr is a fixture's name or bytes."""
    return (rc, stdout, fixture_bytes(stderr) if isinstance(stderr, str) else stderr)


def psql_rows(*rows):
    """What psql -t --csv prints for these rows (an answer for ok())."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator='\n')
    for row in rows:
        writer.writerow(row)
    return out.getvalue().encode()


def writes(**per_database):
    """psql's answers to _restore.rows_written, in order: the databases that allow connections, then the rows written
    to each one's user tables since PostgreSQL started (writes(postgres=0, shop=12))."""
    return [ok(psql_rows(*[(name,) for name in per_database]))] + [
        ok(psql_rows((str(count),))) for count in per_database.values()]


# The lab's repository after its point-in-time restores (fixtures/README.md, "Restore"): timeline 2 left timeline 1
# in segment ...12. Its history file was not captured; this is the line PostgreSQL writes for a recovery to a time
# (parent timeline, switch LSN, reason). HISTORY_TIME is when it was stored: after TL1's last segment (09:52:13),
# before TL2's first (09:52:51).
HISTORY_2 = b'1\t0/120000A0\tbefore 2026-11-24 09:52:10+00\n'
HISTORY_TIME = 1795513945


# `verify --output=text` as pgBackRest 2.45 prints it, for the lab's stanza and labels; the counts, and which backups
# are listed, are made up. Not captured: the lab's repository has nothing damaged. The text follows verifyProcess()
# and verifyRender() of 2.45 (src/command/verify/verify.c) in the forms its own tests expect
# (test/src/module/command/verifyTest.c). Without --verbose it prints nothing at all when it finds no problem, and of
# the four counts only those above zero; with --verbose every archive id and backup, and all four counts.
VERIFY_ERRORS = (
    b'stanza: chronos-v2\n'
    b'status: error\n'
    b'  archiveId: 15-1, total WAL checked: 18, total valid WAL: 17\n'
    b'    checksum invalid: 1\n'
    b'  backup: 20261124-092311F_20261124-092341D, status: invalid, total files checked: 983, total valid files: 981\n'
    b'    missing: 1, size invalid: 1\n')
VERIFY_VERBOSE_OK = (
    b'stanza: chronos-v2\n'
    b'status: ok\n'
    b'  archiveId: 15-1, total WAL checked: 18, total valid WAL: 18\n'
    b'    missing: 0, checksum invalid: 0, size invalid: 0, other: 0\n'
    b'  backup: 20261124-092311F, status: valid, total files checked: 983, total valid files: 983\n'
    b'    missing: 0, checksum invalid: 0, size invalid: 0, other: 0\n')
VERIFY_VERBOSE_ERRORS = (
    b'stanza: chronos-v2\n'
    b'status: error\n'
    b'  archiveId: 15-1, total WAL checked: 18, total valid WAL: 17\n'
    b'    missing: 0, checksum invalid: 1, size invalid: 0, other: 0\n'
    b'  backup: 20261124-092311F_20261124-092341D, status: invalid, total files checked: 983, total valid files: 981\n'
    b'    missing: 1, checksum invalid: 0, size invalid: 1, other: 0\n')


def start_postgresql(pg_path):
    """The answer to `service postgresql start`: PostgreSQL now runs on pg_path (a postmaster.pid naming a live
    process, this one)."""
    def answer(call):
        with open(os.path.join(pg_path, 'postmaster.pid'), 'w') as handle:
            handle.write('%d\n' % os.getpid())
        return 0, b'', b''
    return answer


def stop_postgresql(pg_path):
    """The answer to `service postgresql stop`: postmaster.pid is gone."""
    def answer(call):
        os.unlink(os.path.join(pg_path, 'postmaster.pid'))
        return 0, b'', b''
    return answer


def wal_listing(directories=('0000000100000000', '0000000200000000'), history=True):
    """`repo-ls --output=json --recurse archive/chronos-v2/15-1` of the lab's repository, assembled from the two
    captured listings of its WAL directories (repo-ls-wal-tl1.json, repo-ls-wal-tl2.json) and TL2's history file:
    names relative to the listed path, as pgBackRest prints them with --recurse."""
    captured = {'0000000100000000': 'repo-ls-wal-tl1.json', '0000000200000000': 'repo-ls-wal-tl2.json'}
    entries = {'.': {'type': 'path'}}
    for directory in directories:
        for name, entry in json.loads(fixture_bytes(captured[directory])).items():
            entries[directory if name == '.' else '%s/%s' % (directory, name)] = entry
    if history:
        entries['00000002.history'] = {'type': 'file', 'size': len(HISTORY_2), 'time': HISTORY_TIME}
    return json.dumps(entries, sort_keys=True).encode()


def archive_directories(directories=('0000000100000000',), history=False):
    """`repo-ls --output=json archive/chronos-v2/15-1` (non-recursive): the archive id's WAL directories, in the shape
    of the captured repo-ls-archive-id.json, for the second build's directories."""
    entries = {'.': {'type': 'path'}}
    for directory in directories:
        entries[directory] = {'type': 'path'}
    if history:
        entries['00000002.history'] = {'type': 'file', 'size': len(HISTORY_2), 'time': HISTORY_TIME}
    return json.dumps(entries, sort_keys=True).encode()


# pg_stat_archiver as _postgres.read_archiver reads it: 120 archived, none failed.
ARCHIVER = ('120', '0', '00000001000000000000000A', '', '1795512226', '0', 'on',
            'pgbackrest --stanza=chronos-v2 archive-push %p')


def status_refresh(info='info-full-diff-incr.json', queue='archive-queue.csv', archiver=ARCHIVER):
    """What _metrics.refresh runs, answered: pgbackrest version and info, psql for pg_stat_archiver and for the archive
    queue, df on pg_wal, and (info with a backup) repo-ls of the archive id and of the newest backup's WAL directory
    (the captured repo-ls-wal-tl1.json, which holds every segment from that backup on)."""
    answers = [ok('version.out'), ok(info), ok(psql_rows(archiver)), ok(queue), ok('df-pg-wal.out')]
    backups = json.loads(fixture_bytes(info))[0].get('backup') if info.endswith('.json') else None
    if backups:
        answers += [ok(archive_directories()), ok('repo-ls-wal-tl1.json')]
    return answers


def server_answers(timeline=2, lsn='0/14000060', in_recovery='f', ready=0, oldest=0,
                   data_directory='/var/lib/postgresql/15/main'):
    """A running server's answers to _restore.inspect() after pg_isready: recovery or not, its position (timeline and
    WAL), then (not in recovery) the archive queue."""
    answers = [ok(psql_rows((in_recovery, 'f'))), ok(psql_rows((in_recovery, str(timeline), lsn)))]
    if in_recovery == 'f':
        answers.append(ok(psql_rows((str(ready), str(oldest), '16777216', data_directory))))
    return answers


# A line of pg_waldump's output, as it prints each record (captured in the lab: fixtures/waldump-*.out).
WALDUMP_LINE = ('rmgr: %-11s len (rec/tot): %6d/%6d, tx: %10d, lsn: %s, prev %s, desc: %s')


def waldump(*records):
    """pg_waldump's output for these records: (rmgr, xid, lsn, desc)."""
    lines = [WALDUMP_LINE % (rmgr, 34, 34, xid, lsn, '0/00000028', desc) for rmgr, xid, lsn, desc in records]
    return ('\n'.join(lines) + '\n').encode() if lines else b''


def command_name(argv):
    """The pgbackrest command of an argument list ('info', 'repo-ls': the first argument after the binary that is
    not an option), or the program's name for anything else ('psql', 'pg_ctl')."""
    program = os.path.basename(argv[0])
    if program == 'pgbackrest':
        return next((arg for arg in argv[1:] if not arg.startswith('-')), program)
    if program == 'sh' and argv[1:2] == ['-c'] and _container.STDIN_VARIABLE in argv[2]:
        return command_name(argv[4:])      # a command fed stdin in a container
    return program


# --- commands: the fake at the target seam ------------------------------------------------------------------

class Commands(object):
    """Answers the commands a target runs from a list of (rc, stdout bytes, stderr bytes), in order. An answer may
    also be a function of the call (a dict: argv, user, env, stdin, where) that returns such a tuple."""

    def __init__(self, outputs=()):
        self.pending = list(outputs)
        self.calls = []
        self.unexpected = []

    def expect(self, *outputs):
        self.pending.extend(outputs)
        return self

    def answer(self, argv, user, env, stdin, where):
        call = dict(argv=[str(arg) for arg in argv], user=user, env=dict(env or {}), stdin=stdin, where=where)
        self.calls.append(call)
        if not self.pending:
            self.unexpected.append(call['argv'])
            raise AssertionError('unexpected command on %s: %s' % (where, ' '.join(call['argv'])))
        answer = self.pending.pop(0)
        return answer(call) if callable(answer) else answer

    @property
    def names(self):
        """command_name of every call, in order."""
        return [command_name(call['argv']) for call in self.calls]

    def assert_done(self):
        unexpected, pending = self.unexpected, self.pending
        # Reported once: the fixture's own check at teardown must not report it again.
        self.unexpected, self.pending = [], []
        assert not unexpected, 'unexpected commands: %s' % unexpected
        assert not pending, 'commands expected but not run: %d more (%s)' % (len(pending), pending)


class NoSubprocess(object):
    PIPE = -1

    def run(self, argv, **kwargs):
        raise AssertionError('a unit test ran a real command: %s' % ' '.join(str(arg) for arg in argv))


# Where the host tests' PostgreSQL programs are: set, so that no test depends on what this machine has installed.
BIN = '/usr/lib/postgresql/15/bin'


# --- the clock ----------------------------------------------------------------------------------------------------

class Clock(object):
    """time for the code under test: time() stands still until sleep() moves it. on_sleep(now) runs at each sleep."""

    def __init__(self, now=CLOCK_START):
        self.now = now
        self.slept = []
        self.on_sleep = None

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(self.now)


# --- data directories and modules -------------------------------------------------------------------------------

def write_cluster(path, system_id, version='15', timeline=1):
    """A fake PostgreSQL data directory in path: PG_VERSION and global/pg_control (its system identifier, state shut
    down and latest checkpoint's timeline where PostgreSQL 11 and later keep them)."""
    os.makedirs(os.path.join(path, 'global'), exist_ok=True)
    with open(os.path.join(path, 'PG_VERSION'), 'w') as handle:
        handle.write('%s\n' % version)
    # pg_control starts with the system identifier, a uint64 in native byte order; the rest is padding.
    with open(os.path.join(path, 'global', 'pg_control'), 'wb') as handle:
        head = struct.pack('=QIII', system_id, 1300, 202209061, 1) + b'\0' * 12 + struct.pack(
            '=QQII', 0x3000028, 0x3000028, timeline, timeline)
        handle.write(head + b'\0' * (8192 - len(head)))
    return path


class ModuleExit(SystemExit):
    """Raised instead of exit_json/fail_json (which end the process with SystemExit): carries the result."""

    def __init__(self, failed, result):
        super(ModuleExit, self).__init__(1 if failed else 0)
        self.failed = failed
        self.result = result


class Run(object):
    """What one module run did: its result and every command it ran."""

    def __init__(self, failed, result, commands):
        self.failed = failed
        self.result = result
        self.calls = list(commands.calls)
        self.commands = commands.names

    @property
    def msg(self):
        return self.result.get('msg')


# --- docker: a fake Docker engine ----------------------------------------------------------------------------------

class NotFound(Exception):
    """docker.errors.NotFound: the code recognises it by its class name."""


class FakeContainer(object):
    """A container as docker-py shows it. exec_run answers from Commands; the archive API works on self.files
    ({path: (content, uid, gid, mode)}); stop, start and remove change status and are recorded."""

    def __init__(self, engine, name, attrs, status='running', files=None, labels=None):
        self.engine = engine
        self.name = name
        self.id = '%s-id' % name
        self.attrs = attrs
        self.status = status
        self.labels = labels or {}
        self.files = dict(files or {})
        self.image = type('Image', (), {'id': attrs.get('Image')})()
        self.removed = False
        self.logs_text = b''

    def reload(self):
        pass

    def exec_run(self, argv, user='', environment=None, demux=False):
        assert demux, 'exec_run without demux mixes stdout and stderr'
        rc, stdout, stderr = self.engine.commands.answer(argv, user, environment, None, self.name)
        # docker-py returns None for a stream that printed nothing.
        return rc, (stdout or None, stderr or None)

    def get_archive(self, path):
        if path not in self.files:
            raise NotFound('Could not find the file %s in container %s' % (path, self.name))
        content, uid, gid, mode = self.files[path]
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode='w') as archive:
            info = tarfile.TarInfo(name=path.rsplit('/', 1)[-1])
            info.size, info.uid, info.gid, info.mode = len(content), uid, gid, mode
            archive.addfile(info, io.BytesIO(content))
        # docker-py streams the archive in chunks.
        raw = data.getvalue()
        return [raw[:100], raw[100:]], {'name': path.rsplit('/', 1)[-1]}

    def put_archive(self, directory, data):
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            for member in archive.getmembers():
                path = '%s/%s' % (directory.rstrip('/'), member.name)
                self.files[path] = (archive.extractfile(member).read(), member.uid, member.gid, member.mode)
                self.engine.events.append(('put_archive', self.name, path))
        return True

    def stop(self, timeout=None):
        self.engine.events.append(('stop', self.name, timeout))
        self.status = 'exited'

    def unpause(self):
        self.engine.events.append(('unpause', self.name))
        self.status = 'running'

    def update(self, restart_policy=None, **kwargs):
        self.engine.events.append(('update', self.name, restart_policy))
        self.attrs.setdefault('HostConfig', {})['RestartPolicy'] = dict(restart_policy)

    def start(self):
        self.engine.events.append(('start', self.name))
        self.status = 'running'

    def remove(self, force=False, v=False):
        self.engine.events.append(('remove', self.name))
        self.removed = True
        self.engine.forget(self)

    def logs(self, tail=None):
        return self.logs_text


class FakeVolume(object):
    def __init__(self, engine, name, mountpoint, labels):
        self.engine = engine
        self.name = name
        self.attrs = {'Mountpoint': mountpoint, 'Labels': labels, 'Driver': 'local'}

    def remove(self):
        import shutil
        shutil.rmtree(os.path.dirname(self.attrs['Mountpoint']))
        self.engine.volume_list.remove(self)
        self.engine.events.append(('volume-remove', self.name))


def _matches(labels, filters):
    wanted = (filters or {}).get('label')
    if not wanted:
        return True
    name, dummy, value = wanted.partition('=')
    return labels.get(name) == value if value else name in labels


class FakeDocker(object):
    """docker.from_env() for one test. containers.create() makes helper and scratch containers (status 'created';
    their kwargs are kept in .created); volumes live under volumes_root, as Docker's under /var/lib/docker/volumes."""

    def __init__(self, commands, volumes_root):
        self.commands = commands
        self.volumes_root = volumes_root
        self.container_list = []
        self.volume_list = []
        self.created = []
        self.events = []
        engine = self

        class Containers(object):
            def get(self, name):
                for container in engine.container_list:
                    if name in (container.name, container.id):
                        return container
                raise NotFound('No such container: %s' % name)

            def list(self, all=False, filters=None):  # pylint: disable=redefined-builtin
                return [container for container in engine.container_list if _matches(container.labels, filters)]

            def create(self, image, **kwargs):
                engine.created.append(dict(kwargs, image=image))
                container = FakeContainer(engine, kwargs.get('name') or 'created%d' % len(engine.created),
                                          {'Image': image, 'Config': {'Env': []}, 'HostConfig': {}, 'Mounts': []},
                                          status='created', labels=kwargs.get('labels'))
                engine.container_list.append(container)
                return container

        class Volumes(object):
            def list(self, filters=None):
                return [volume for volume in engine.volume_list if _matches(volume.attrs['Labels'], filters)]

            def create(self, name, driver='local', labels=None):
                mountpoint = os.path.join(engine.volumes_root, name, '_data')
                os.makedirs(mountpoint)
                volume = FakeVolume(engine, name, mountpoint, labels or {})
                engine.volume_list.append(volume)
                engine.events.append(('volume-create', name))
                return volume

            def get(self, name):
                for volume in engine.volume_list:
                    if volume.name == name:
                        return volume
                raise NotFound('No such volume: %s' % name)

        self.containers = Containers()
        self.volumes = Volumes()

    def info(self):
        return {'DockerRootDir': self.volumes_root}

    def forget(self, container):
        if container in self.container_list:
            self.container_list.remove(container)

    def add_container(self, name='chronos-db', env=None, mounts=(), status='running', files=None,
                      image='sha256:5f1e0c', host_config=None, labels=None):
        attrs = {
            'Image': image,
            'Config': {'Env': list(env if env is not None else ['PGDATA=/var/lib/postgresql/data',
                                                                'PATH=/usr/local/bin:/usr/bin:/bin'])},
            'HostConfig': host_config if host_config is not None else {
                'NetworkMode': 'chronos-lab', 'ExtraHosts': ['s3.chronos.lab:172.18.0.2'], 'Dns': [],
                'RestartPolicy': {'Name': 'unless-stopped'}},
            'Mounts': list(mounts),
        }
        container = FakeContainer(self, name, attrs, status, files, labels)
        self.container_list.append(container)
        return container

    def add_volume(self, name, labels=None):
        return self.volumes.create(name, labels=labels)
