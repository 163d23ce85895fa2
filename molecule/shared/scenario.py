"""What every scenario's tests share, loaded as a pytest plugin (-p scenario, .config/molecule/config.yml): the
scenario's database host (a Debian container in the host layout, or this machine as the Docker host of the
PostgreSQL container in the container layouts), its S3 endpoint, psql, the bucket's keys, the collection's modules
through Ansible, playbook runs against the scenario's own inventory, and the guide's commands."""

import json
import os
import re
import shlex
import subprocess
import tempfile
import time

import pytest
import testinfra

SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "default")
CONTAINER_LAYOUT = SCENARIO.startswith("container")
# The database host Ansible manages: a Debian container, or this machine (the Docker host) in the container layouts.
MANAGED = "docker-host" if CONTAINER_LAYOUT else "chronos-db-%s" % SCENARIO
# Where PostgreSQL runs.
DB_CONTAINER = "chronos-db-%s" % SCENARIO
S3_HOST = "chronos-s3-%s" % SCENARIO
NETWORK = "chronos-molecule-%s" % SCENARIO
S3_ALIAS = "s3.chronos.lab"
STANZA = "chronos-v2"
CONFIG = "/etc/pgbackrest/pgbackrest.conf"
WRAPPER = "/usr/local/bin/pgbackrest-backup.sh"
PROGRAM = "/usr/local/bin/chronos-pgbackrest"
CRON_FILE = "/etc/cron.d/pgbackrest-%s" % STANZA
CRON_LOG = "/var/log/chronos-backup-cron.log"
METRICS_DIR = "/var/lib/prometheus/node-exporter"
SUPERUSER = "prometheus" if CONTAINER_LAYOUT else "postgres"
PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.getcwd())
GUIDE = os.path.join(PROJECT, "..", "shared", "reference", "postgresql-backup-guide.md")
SECRET_VARIABLES = ("CHRONOS_LAB_CIPHER_PASS", "CHRONOS_LAB_S3_KEY", "CHRONOS_LAB_S3_KEY_SECRET",
                    "CHRONOS_LAB_DB_PASSWORD")

# Tests of the collection's own logic - preflight refusals, restore interruptions, locks - that no PostgreSQL or
# pgBackRest version changes: the Debian 13 scenarios leave them to Debian 12's (-m "not release_independent").
RELEASE_INDEPENDENT = pytest.mark.release_independent


def pytest_configure(config):
    config.addinivalue_line("markers", "release_independent: the collection's own logic, the same on every Debian "
                                       "release; the Debian 13 scenarios skip it")


@pytest.fixture(scope="session", autouse=True)
def argument_watch():
    """Every process's command line on this machine, sampled for the whole scenario (secret_sweep.py)."""
    from secret_sweep import ArgumentWatch
    watch = ArgumentWatch()
    watch.start()
    yield watch
    watch.stopping.set()


@pytest.fixture(scope="module")
def db():
    """The container PostgreSQL runs in."""
    return testinfra.get_host("docker://%s" % DB_CONTAINER)


@pytest.fixture(scope="module")
def managed():
    """The host Ansible manages and the scheduled jobs run on."""
    return testinfra.get_host("local://" if CONTAINER_LAYOUT else "docker://%s" % MANAGED)


@pytest.fixture(scope="module")
def s3():
    return testinfra.get_host("docker://%s" % S3_HOST)


def inventory():
    return os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "inventory")


def psql(host, sql, database="postgres"):
    """One SQL statement as the superuser, through the socket, in the PostgreSQL container."""
    return host.check_output("runuser -u postgres -- psql -XAtq -U %s -d %s -c %s", SUPERUSER, database, sql)


def pg_major(db):
    """PostgreSQL's major version where it runs ('15' on Debian 12, '17' on Debian 13)."""
    return str(int(psql(db, "SHOW server_version_num")) // 10000)


def pgbackrest_version(db):
    """pgBackRest's version where it runs, as a tuple: (2, 45) or (2, 55, 1)."""
    return tuple(int(part) for part in db.check_output("pgbackrest version").split()[-1].split("."))


def lsn(text):
    """'0/3000088' -> an integer that orders like the LSN."""
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def bucket_keys(s3_host, prefix):
    """Object keys in the lab bucket under prefix, read through moto's S3 API inside the endpoint."""
    script = (
        "import boto3, sys; s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:5000', region_name='ca-central-1',"
        " aws_access_key_id='x', aws_secret_access_key='x');"
        " pages = s3.get_paginator('list_objects_v2').paginate(Bucket='project-chronos-backups', Prefix=sys.argv[1]);"
        " print('\\n'.join(o['Key'] for p in pages for o in p.get('Contents', [])))"
    )
    return s3_host.check_output("/opt/moto/bin/python -c %s %s", script, prefix).split()


def sha256_of(host, path):
    return host.check_output("sha256sum %s", path).split()[0]


def secrets():
    return [os.environ[name] for name in SECRET_VARIABLES if os.environ.get(name)]


def run_playbook(playbook="site.yml", extra_vars=None, verbosity=0, check=False, environment=None, tags=None):
    """Run a playbook (a path from the repository root) against this scenario's instances; returns a
    CompletedProcess with stdout and stderr merged."""
    command = ["ansible-playbook", "-i", inventory(), os.path.join(PROJECT, playbook)]
    if tags:
        command += ["--tags", tags]
    if extra_vars:
        command += ["-e", json.dumps(extra_vars)]
    if verbosity:
        command.append("-" + "v" * verbosity)
    if check:
        command.append("--check")
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
                          cwd=PROJECT, env=dict(os.environ, **(environment or {})))


def module(name, check=False, environment=None, **args):
    """Run one of the collection's modules on the managed host (as root; in the container layouts with container=
    the scenario's container) in a one-task play, and return its result, failed or not (result["failed"] is True
    when the module failed). environment puts variables in the module's environment."""
    if CONTAINER_LAYOUT:
        args.setdefault("container", DB_CONTAINER)
    play = [{"hosts": MANAGED, "gather_facts": False, "tasks": [
        {"chronos.pgbackrest.%s" % name: args, "environment": environment or {}, "check_mode": check}]}]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", dir=os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY"),
                                     delete=False) as handle:
        json.dump(play, handle)
    try:
        completed = subprocess.run(
            ["ansible-playbook", "-i", inventory(), handle.name], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, check=False, cwd=PROJECT,
            env=dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1"))
    finally:
        os.unlink(handle.name)
    try:
        output = json.loads(completed.stdout)
        return output["plays"][0]["tasks"][0]["hosts"][MANAGED]
    except (ValueError, KeyError, IndexError):
        raise AssertionError("ansible gave no result for %s: %s %s" % (name, completed.stdout[-2000:],
                                                                       completed.stderr[-2000:]))


def info():
    result = module("pgbackrest_info", stanza=STANZA)
    assert not result.get("failed"), result.get("msg")
    return result


def labels():
    return [backup["label"] for backup in info()["backups"]]


def s3_lab(*args):
    """Make the scenario's S3 endpoint slow or broken, or well again (lab/images/s3/s3-lab): s3_lab("error")."""
    docker("exec", S3_HOST, "s3-lab", *args)


def docker(*args):
    subprocess.run(["docker"] + list(args), check=True, stdout=subprocess.DEVNULL)


def docker_output(*args):
    return subprocess.check_output(["docker"] + list(args), text=True).strip()


def started_at():
    """When PostgreSQL's postmaster started (a restart changes it)."""
    return docker_output("exec", DB_CONTAINER, "runuser", "-u", "postgres", "--", "psql", "-XAtq", "-U", SUPERUSER,
                         "-d", "postgres", "-c", "SELECT pg_postmaster_start_time()")


def wait_until_ready(db, seconds=60):
    for dummy in range(seconds):
        if db.run("runuser -u postgres -- pg_isready -q").rc == 0:
            return
        time.sleep(1)
    raise AssertionError("PostgreSQL did not come back in %s" % DB_CONTAINER)


def archive_current_wal(db):
    """Switch to a new WAL segment and wait until the finished one is archived. A WAL record is written first, so
    that the switch always finishes a segment that has to reach the repository (with nothing written since the last
    switch there is no switch). The segment is named by the switch's last byte: PostgreSQL 17's pg_walfile_name names
    the segment a boundary starts (the new, empty one), older releases the one it ends."""
    psql(db, "SELECT pg_logical_emit_message(false, 'chronos-test', 'switch') IS NOT NULL")
    segment = psql(db, "SELECT pg_walfile_name(pg_switch_wal() - 1)")
    for dummy in range(60):
        if psql(db, "SELECT coalesce(last_archived_wal, '') >= '%s' FROM pg_stat_archiver" % segment) == "t":
            return
        time.sleep(1)
    archiver = psql(db, "SELECT archived_count, last_archived_wal, failed_count, last_failed_wal, last_failed_time "
                        "FROM pg_stat_archiver")
    raise AssertionError("WAL segment %s was not archived within 60 s (pg_stat_archiver: %s; pgBackRest's last lines: "
                         "%s)" % (segment, archiver, db.run("tail -n 5 /var/log/pgbackrest/*archive-push*.log").stdout))


def now_target(db):
    """The server's clock as a restore target, to the microsecond (a target cut to whole seconds could fall before
    the commit it is meant to follow)."""
    return psql(db, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")


def cron_lines(managed_host, stanza=STANZA):
    """The cron file's job lines, split as cron does: five time fields, the user, the command."""
    lines = managed_host.file("/etc/cron.d/pgbackrest-%s" % stanza.replace(".", "_")).content_string.splitlines()
    return [line.split(None, 6) for line in lines if re.match(r"^[0-9*]", line)]


def cron_command(managed_host, job, stanza=STANZA):
    """The command of the cron line that runs `chronos-pgbackrest ... <job>`, e.g. 'metrics' or 'backup'. With more
    words ('backup diff'), the line of the first with the rest added, as one runs it by hand: cron's backup line takes
    the day's type."""
    words = job.split(None, 1)
    for fields in cron_lines(managed_host, stanza):
        if fields[6].endswith(" " + words[0]):
            return " ".join([fields[6]] + words[1:])
    raise AssertionError("no cron line runs '%s' for stanza %s" % (words[0], stanza))


def run_as_cron(managed_host, job, environment=None, faketime=None, stanza=STANZA):
    """Run the cron line of a job as cron runs it: /bin/sh -c with an empty environment and PATH=/usr/bin:/bin (plus
    environment), at the time faketime gives (e.g. '26 hours' from now) when set."""
    command = cron_command(managed_host, job, stanza)
    if faketime:
        command = "faketime %s %s" % (shlex.quote(faketime), command)
    variables = ["PATH=/usr/bin:/bin", "HOME=/root", "SHELL=/bin/sh", "LOGNAME=root"]
    variables += ["%s=%s" % item for item in sorted((environment or {}).items())]
    quoted = " ".join(shlex.quote(variable) for variable in variables)
    return managed_host.run("env -i %s /bin/sh -c %s" % (quoted, shlex.quote(command)))


def guide_commands(sections):
    """The guide's `docker exec chronos-db ...` (and `docker logs`) lines in those sections, aimed at this scenario's
    container."""
    with open(GUIDE) as handle:
        text = handle.read()
    commands = []
    for section in re.split(r"^## ", text, flags=re.M):
        if not section.startswith(tuple(sections)):
            continue
        for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
            for line in block.splitlines():
                match = re.search(r"(/usr/bin/)?docker (exec|logs) chronos-db .*", line)
                if match:
                    commands.append(match.group(0).replace("chronos-db ", "%s " % DB_CONTAINER, 1))
    return commands


def pg_tool(db, name):
    """A PostgreSQL program where PostgreSQL runs (Debian keeps them off the PATH)."""
    return db.check_output("ls /usr/lib/postgresql/*/bin/%s | tail -n 1", name)


def settle_wal(db):
    """Bring PostgreSQL's own WAL writing to rest, so that any WAL written next is somebody's doing (autovacuum is
    paused by the caller). VACUUM every database: reads then neither prune dead rows nor set hint bits, which
    would be WAL records (a hint bit is one with data checksums, PostgreSQL 18's default; no ANALYZE, whose
    pg_statistic rows would be pruned by the next query). Archive what is pending, CHECKPOINT, and wait until
    archive_timeout has switched out the checkpoint's record and the new segment holds nothing but the background
    writer's RUNNING_XACTS records, the only records archive_timeout and checkpoint_timeout ignore."""
    for database in psql(db, "SELECT datname FROM pg_database WHERE datallowconn").split():
        psql(db, "VACUUM", database)
    archive_current_wal(db)
    psql(db, "CHECKPOINT")
    written = []
    for dummy in range(240):
        # The segment before the current one is archived (its last byte named: PostgreSQL 17's pg_walfile_name
        # names the segment a boundary starts, older releases the one it ends).
        segment_start, archived = psql(db, (
            "SELECT segment_start, coalesce(last_archived_wal, '') >= pg_walfile_name(segment_start - 1)"
            " FROM (SELECT lsn - (lsn - '0/0'::pg_lsn) % setting::numeric AS segment_start"
            "       FROM pg_current_wal_insert_lsn() AS lsn, pg_settings WHERE name = 'wal_segment_size') AS s,"
            " pg_stat_archiver")).split("|")
        if archived == "t":
            written = wal_written(db, segment_start)
            if not written:
                return
        time.sleep(1)
    raise AssertionError("WAL did not come to rest within 240 s; the current segment holds:\n%s" % "\n".join(written))


def wal_written(db, start):
    """The WAL records written since LSN start, as pg_waldump prints them, but for the background writer's
    RUNNING_XACTS (written on its own every 15 s after any activity); pg_waldump's errors are kept."""
    time.sleep(1)  # the WAL writer flushes what asynchronous commits left within 200 ms
    end, after = psql(db, "SELECT pg_current_wal_flush_lsn(), pg_current_wal_flush_lsn() > '%s'" % start).split("|")
    if after != "t":
        return []
    output = db.run("runuser -u postgres -- %s -p %s/pg_wal -s %s -e %s 2>&1", pg_tool(db, "pg_waldump"),
                    psql(db, "SHOW data_directory"), start, end).stdout
    return [line for line in output.splitlines()
            if line.strip() and "desc: RUNNING_XACTS" not in line and "could not find a valid record after" not in line]


def assert_no_trace(db, managed_host, managed_files, db_files):
    """A second site.yml run changes nothing and leaves no trace: no WAL written (so no pgbackrest check, no WAL
    switch, nothing archived), no restart, no rewritten file. Autovacuum is paused meanwhile, and PostgreSQL's WAL
    brought to rest before: every WAL record written during the run is then the run's."""
    psql(db, "ALTER SYSTEM SET autovacuum = off")
    psql(db, "SELECT pg_reload_conf()")
    try:
        settle_wal(db)
        start = psql(db, "SELECT pg_current_wal_insert_lsn()")
        archived = psql(db, "SELECT archived_count FROM pg_stat_archiver")
        started = started_at()

        def stamps():
            return ([managed_host.check_output("stat -c '%%i %%Y' %s", path) for path in managed_files] +
                    [db.check_output("stat -c '%%i %%Y' %s", path) for path in db_files])
        before = stamps()
        result = run_playbook()
        assert result.returncode == 0 and re.search(r"changed=0 ", result.stdout), result.stdout[-3000:]
        written = wal_written(db, start)
        assert written == [], "WAL written during the run:\n%s" % "\n".join(written)
        assert psql(db, "SELECT archived_count FROM pg_stat_archiver") == archived
        assert started_at() == started
        assert stamps() == before
    finally:
        psql(db, "ALTER SYSTEM RESET autovacuum")
        psql(db, "SELECT pg_reload_conf()")
