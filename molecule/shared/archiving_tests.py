"""WAL archiving that survives its repository, in the users' layout (scenario container: PostgreSQL is PID 1 of its
container) and on a database host (scenario monitoring). The outage fixture runs one outage of the scenario's S3
endpoint, longer than pgBackRest retries a failing repository (about 75 s), while the application writes; the tests
then assert what it recorded. Beside the scenario's cluster, a second, small one (stanza chronos-small) whose pg_wal
filesystem is 512 MiB is provisioned with site.yml: the same outage fills its backlog up to archive-push-queue-max,
a quarter of that filesystem. Alerts go through real Prometheus and Alertmanager (monitoring_lab)."""

import json
import os
import re
import subprocess
import time

import pytest

from monitoring_lab import MonitoringLab, started_here
from scenario import (CONTAINER_LAYOUT, DB_CONTAINER, METRICS_DIR, NETWORK, PROJECT, SCENARIO, STANZA, SUPERUSER,
                      docker, docker_output, psql, run_as_cron, run_playbook, s3_lab)

# Longer than pgBackRest's retries of an erroring repository (archive-push then fails, once a minute or so).
OUTAGE = 100
# The stated catch-up: every segment that waited is archived within this many seconds after the repository answers.
CATCH_UP_LIMIT = 120
SMALL = "chronos-small"
SMALL_FILESYSTEM = 512 * 2 ** 20
SEGMENT = 16 * 2 ** 20
# Metrics refreshed during the outage give up on the repository at once instead of after pgBackRest's retries.
FAST_TIMEOUT = {"PGBACKREST_IO_TIMEOUT": "1"}
QUEUE_QUERY = r"SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name ~ '^[0-9A-F]{24}\.ready$'"


def status_metric(managed, stanza, name):
    """A value of the stanza's status file, or None."""
    text = managed.file("%s/pgbackrest_%s_status.prom" % (METRICS_DIR, stanza)).content_string
    match = re.search(r"^%s\{[^}]*stanza=\"%s\"[^}]*\} (\S+)$" % (name, re.escape(stanza)), text, re.M)
    return float(match.group(1)) if match else None


class SmallCluster(object):
    """A second cluster on a 512 MiB filesystem, PGDATA and pg_wal both on it, provisioned by site.yml as its own
    stanza: in a container of the official image's layout whose volume is that filesystem, or on the database host
    in a directory of a tmpfs of that size (scenario monitoring's platform)."""

    def __init__(self, db):
        self.db = db
        self.name = "%s-small" % DB_CONTAINER
        if CONTAINER_LAYOUT:
            self.host_dir = os.path.join(PROJECT, ".build", "lab", self.name)
            self.extra_vars = {"pgbackrest_container": self.name, "pgbackrest_stanza": SMALL}
        else:
            self.extra_vars = {"pgbackrest_stanza": SMALL, "pgbackrest_pg_port": 5434, "postgresql_install": False,
                               "pgbackrest_config_path": "/etc/pgbackrest/small.conf",
                               "pgbackrest_backup_script": "/usr/local/bin/pgbackrest-backup-small.sh"}

    def create(self):
        if CONTAINER_LAYOUT:
            self.remove_container()
            image = docker_output("inspect", "-f", "{{ .Config.Image }}", DB_CONTAINER)
            docker("volume", "create", "--driver", "local", "--opt", "type=tmpfs", "--opt", "device=tmpfs",
                   "--opt", "o=size=%d" % SMALL_FILESYSTEM, "%s-data" % self.name)
            os.makedirs(self.host_dir, exist_ok=True)
            config = os.path.join(self.host_dir, "pgbackrest.conf")
            subprocess.run(["install", "-m", "0600", "-o", "999", "-g", "999", "/dev/null", config], check=True)
            docker("run", "-d", "--name", self.name, "--network", NETWORK, "-e", "POSTGRES_USER=prometheus",
                   "-e", "POSTGRES_PASSWORD=small", "-e", "POSTGRES_DB=chronos_db",
                   "-v", "%s-data:/var/lib/postgresql/data" % self.name,
                   "-v", "%s:/etc/pgbackrest/pgbackrest.conf" % config, image,
                   # archive_mode on from the start: a restart for it would empty the tmpfs volume, unmounted while
                   # no container uses it.
                   "postgres", "-c", "max_wal_size=64MB", "-c", "min_wal_size=32MB", "-c", "archive_mode=on")
        else:
            major = psql(self.db, "SHOW server_version_num")[:2]
            self.db.check_output(
                "pg_createcluster %s small -p 5434 -d /var/lib/postgresql-small/data -o max_wal_size=64MB "
                "-o min_wal_size=32MB -o archive_mode=on --start", major)
            self.db.check_output("runuser -u postgres -- createdb -p 5434 chronos_db")
        for dummy in range(60):
            if self.sql_result("SELECT 1").returncode == 0:
                break
            time.sleep(1)
        result = run_playbook(extra_vars=self.extra_vars)
        assert result.returncode == 0, result.stdout[-3000:]
        self.sql("CREATE TABLE filler (id serial, at timestamptz DEFAULT now())")

    def sql_result(self, sql):
        if CONTAINER_LAYOUT:
            command = ["docker", "exec", "-u", "postgres", self.name, "psql", "-XAtq", "-U", "prometheus"]
        else:
            command = ["docker", "exec", DB_CONTAINER, "runuser", "-u", "postgres", "--", "psql", "-XAtq", "-p", "5434"]
        return subprocess.run(command + ["-d", "chronos_db", "-c", sql], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, check=False)

    def sql(self, sql):
        result = self.sql_result(sql)
        assert result.returncode == 0, result.stdout
        return result.stdout.strip()

    def log(self):
        return server_log(self.db, self.name if CONTAINER_LAYOUT else "small")

    def config(self):
        if CONTAINER_LAYOUT:
            with open(os.path.join(self.host_dir, "pgbackrest.conf")) as handle:
                return handle.read()
        return self.db.file("/etc/pgbackrest/small.conf").content_string

    def remove_container(self):
        subprocess.run(["docker", "rm", "-f", "-v", self.name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)
        subprocess.run(["docker", "volume", "rm", "%s-data" % self.name], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)

    def remove(self, managed):
        if CONTAINER_LAYOUT:
            self.remove_container()
            subprocess.run(["rm", "-rf", self.host_dir], check=False)
        else:
            self.db.run("pg_dropcluster --stop $(ls /usr/lib/postgresql | sort -n | tail -1) small")
        managed.run("rm -f /etc/cron.d/pgbackrest-%s /etc/chronos-pgbackrest/%s.json %s/pgbackrest_%s_*.prom",
                    SMALL, SMALL, METRICS_DIR, SMALL)


def server_log(db, where):
    """PostgreSQL's log: a container's output, or on the database host Debian's log of the cluster named where."""
    if CONTAINER_LAYOUT:
        return subprocess.run(["docker", "logs", where], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              check=False).stdout
    return db.check_output("cat /var/log/postgresql/postgresql-*-%s.log", where)


CRASH = "terminating any other active server processes"


@pytest.fixture(scope="module")
def watching(request):
    """The monitoring lab: scenario monitoring's own, or one started here for the container layouts."""
    if not CONTAINER_LAYOUT:
        yield MonitoringLab()
        return
    with started_here() as lab:
        yield lab


def seconds_until(condition, limit, pause=1.0):
    """Seconds until condition() held, or None when it did not within limit."""
    start = time.time()
    while time.time() - start < limit:
        if condition():
            return round(time.time() - start, 1)
        time.sleep(pause)
    return None


@pytest.fixture(scope="module")
def outage(db, managed, watching):
    """One outage of the S3 endpoint (503 to every request) for OUTAGE seconds or until the small cluster's backlog was
    dropped, whichever is later, while both clusters write and switch WAL; then the endpoint answers again. Returns
    what was recorded on the way."""
    small = SmallCluster(db)
    try:
        seen = observe_outage(db, managed, watching, small)
        yield seen
    finally:
        small.remove(managed)


def observe_outage(db, managed, watching, small):
    small.create()
    seen = dict(small=small, small_config=small.config())
    psql(db, "CREATE TABLE IF NOT EXISTS outage (id int PRIMARY KEY, at timestamptz DEFAULT now())", "chronos_db")
    main = DB_CONTAINER if CONTAINER_LAYOUT else "main"
    seen["crashes_before"] = server_log(db, main).count(CRASH)
    seen["small_archived"] = int(small.sql("SELECT archived_count FROM pg_stat_archiver"))
    # A session that must live through the outage: a crash-restart would end it.
    session = subprocess.Popen(
        ["docker", "exec", DB_CONTAINER, "runuser", "-u", "postgres", "--", "psql", "-XAtq", "-U", SUPERUSER, "-d",
         "chronos_db", "-c", "SELECT pg_sleep(%d)" % (OUTAGE + 60)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    mark = watching.mark()
    written, failed_writes = [], []
    s3_lab("error")
    start = time.time()
    try:
        while time.time() - start < OUTAGE or (seen.get("dropped_at") is None and time.time() - start < 2.5 * OUTAGE):
            row = len(written) + len(failed_writes) + 1
            result = subprocess.run(
                ["docker", "exec", DB_CONTAINER, "runuser", "-u", "postgres", "--", "psql", "-XAtq", "-U", SUPERUSER,
                 "-d", "chronos_db", "-c", "INSERT INTO outage (id) VALUES (%d)" % row, "-c", "SELECT pg_switch_wal()"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
            (written if result.returncode == 0 else failed_writes).append((row, result.stdout.strip()))
            if seen.get("dropped_at") is None:
                small.sql("INSERT INTO filler DEFAULT VALUES")
                small.sql("SELECT pg_switch_wal()")
                run_as_cron(managed, "metrics", environment=FAST_TIMEOUT, stanza=SMALL)
                ready = status_metric(managed, SMALL, "pgbackrest_archive_ready_bytes")
                limit = status_metric(managed, SMALL, "pgbackrest_archive_push_queue_max_bytes")
                if "backlog_alert" not in seen and ready > limit / 2:
                    # The alert reaches Alertmanager while nothing was dropped yet.
                    seen["backlog_alert"] = watching.delivered("PgBackRestWalBacklogFilling", "firing", mark,
                                                               stanza=SMALL)
                    seen["archived_at_backlog_alert"] = int(small.sql("SELECT archived_count FROM pg_stat_archiver"))
                    seen["small_usage_at_alert"] = ready
                if int(small.sql("SELECT archived_count FROM pg_stat_archiver")) > seen["small_archived"]:
                    seen["dropped_at"] = time.time() - start
                    seen["small_ready_after_drop"] = int(small.sql(QUEUE_QUERY))
            if "waiting_alert" not in seen and time.time() - start > 30:
                # pg_stat_archiver as a crash-restart leaves it, and the metrics job as it runs ten minutes into the
                # outage: the segments waiting in pg_wal alone say that archiving fails.
                psql(db, "SELECT pg_stat_reset_shared('archiver')")
                result = run_as_cron(managed, "metrics", environment=FAST_TIMEOUT, faketime="10 minutes")
                assert result.rc == 0, result.stdout + result.stderr
                seen["ready_during"] = status_metric(managed, STANZA, "pgbackrest_archive_ready_segments")
                seen["waiting_alert"] = watching.delivered("PgBackRestWalArchivingFailing", "firing", mark,
                                                           stanza=STANZA)
            # About 4 MB of WAL a second in each cluster: a busy database, and a backlog the test can watch grow.
            time.sleep(2)
        seen["outage_seconds"] = round(time.time() - start)
        seen["small_running"] = small.sql_result("SELECT 1").returncode == 0
        seen["small_filesystem"] = status_metric(managed, SMALL, "pgbackrest_wal_filesystem_avail_bytes")
    finally:
        s3_lab("up")
    back = time.time()
    seen["catch_up_seconds"] = seconds_until(
        lambda: psql(db, QUEUE_QUERY) == "0" and small.sql(QUEUE_QUERY) == "0", CATCH_UP_LIMIT + 60)
    seen["written"], seen["failed_writes"] = written, failed_writes
    seen["session"] = session.communicate(timeout=OUTAGE + 120)
    seen["session_rc"] = session.returncode
    seen["since_back"] = round(time.time() - back)
    mark = watching.mark()
    for stanza in (STANZA, SMALL):
        result = run_as_cron(managed, "metrics", stanza=stanza)
        assert result.rc == 0, result.stdout + result.stderr
    seen["resolved"] = watching.delivered("PgBackRestWalArchivingFailing", "resolved", mark, stanza=STANZA)
    seen["gap_alert"] = watching.delivered("PgBackRestArchiveGap", "firing", mark, stanza=SMALL)
    seen["small_missing"] = status_metric(managed, SMALL, "pgbackrest_archive_missing_segments")
    seen["small_log"] = small.log()
    seen["crashes_after"] = server_log(db, main).count(CRASH)
    measured = dict((key, seen.get(key)) for key in (
        "outage_seconds", "dropped_at", "catch_up_seconds", "ready_during", "small_ready_after_drop", "small_missing"))
    measured["rows_written"] = len(written)
    with open(os.path.join(PROJECT, ".build", "molecule", "%s-archiving.json" % SCENARIO), "w") as handle:
        json.dump(measured, handle, indent=2)
    return seen


def test_the_outage_lasted_longer_than_pgbackrest_retries(outage):
    assert outage["outage_seconds"] >= OUTAGE


def test_postgresql_did_not_crash_restart_and_kept_every_row(db, outage):
    assert outage["session_rc"] == 0, "a session open through the outage was ended: %s" % (outage["session"],)
    assert outage["crashes_after"] == outage["crashes_before"]
    assert outage["failed_writes"] == [], outage["failed_writes"][:3]
    rows = [row for row, dummy in outage["written"]]
    assert len(rows) > OUTAGE // 5
    assert psql(db, "SELECT count(*) FROM outage WHERE id <= %d" % max(rows), "chronos_db") == str(len(rows))


def test_the_backlog_showed_in_the_metrics_and_the_alert_fired_with_pg_stat_archiver_reset(outage):
    assert outage["ready_during"] >= 1
    alert = outage["waiting_alert"]
    assert alert["labels"]["reason"] == "waiting", alert
    assert "has waited" in alert["annotations"]["description"], alert
    assert outage["resolved"]["labels"]["stanza"] == STANZA


def test_everything_waiting_was_archived_soon_after_the_repository_answered(outage):
    assert outage["catch_up_seconds"] is not None and outage["catch_up_seconds"] <= CATCH_UP_LIMIT, outage


def test_the_archive_has_no_gap_and_verify_finds_nothing(managed, outage):
    assert status_metric(managed, STANZA, "pgbackrest_archive_missing_segments") == 0
    assert status_metric(managed, STANZA, "pgbackrest_archive_ready_segments") == 0
    verify = managed.run("env -i PATH=/usr/bin:/bin /usr/local/bin/chronos-pgbackrest --stanza %s verify", STANZA)
    assert verify.rc == 0 and "pgbackrest verify found no problem" in verify.stdout, verify.stdout + verify.stderr
    check = run_playbook("playbooks/verify.yml")
    assert check.returncode == 0, check.stdout[-3000:]


def test_the_small_filesystem_limit_is_a_quarter_of_it(outage):
    assert "archive-push-queue-max=%d" % (SMALL_FILESYSTEM // 4) in outage["small_config"], outage["small_config"]
    assert "a quarter of the 512 MiB filesystem that holds pg_wal" in outage["small_config"]


def test_the_small_cluster_kept_running_and_the_backlog_alert_came_before_anything_was_dropped(outage):
    assert outage["small_running"]
    assert outage["archived_at_backlog_alert"] == outage["small_archived"], "WAL was dropped before the alert"
    assert outage["backlog_alert"]["labels"]["stanza"] == SMALL
    assert outage.get("dropped_at") is not None, "pgBackRest never dropped WAL: %s" % outage["small_log"][-2000:]
    # Dropped from the archive, never from pg_wal: what waited was at most the limit and what was written during one
    # failing push (about 30 s: docs/archiving.md).
    assert outage["small_ready_after_drop"] * SEGMENT <= SMALL_FILESYSTEM // 4 + 10 * SEGMENT
    assert "dropped WAL file" in outage["small_log"] and "because archive queue exceeded" in outage["small_log"]
    assert "PANIC" not in outage["small_log"] and "No space left on device" not in outage["small_log"]


def test_the_gap_is_reported_until_a_backup_makes_recovery_whole_again(managed, outage, watching):
    assert outage["small_missing"] >= 1
    assert "lacks %d WAL segment(s)" % outage["small_missing"] in outage["gap_alert"]["annotations"]["description"]
    mark = watching.mark()
    backup = managed.run("env -i PATH=/usr/bin:/bin /usr/local/bin/chronos-pgbackrest --stanza %s backup full", SMALL)
    assert backup.rc == 0, backup.stdout + backup.stderr
    assert status_metric(managed, SMALL, "pgbackrest_archive_missing_segments") == 0
    watching.delivered("PgBackRestArchiveGap", "resolved", mark, stanza=SMALL)
