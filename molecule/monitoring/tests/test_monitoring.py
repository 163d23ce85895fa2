"""Metrics, the freshness check and the restore drill, against PostgreSQL, pgBackRest and the TLS S3
endpoint. The tests run in file order."""

import os
import re
import subprocess
import time

from conftest import NETWORK, PROJECT, S3_ALIAS, S3_HOST, STANZA, WRAPPER, docker, psql, run_playbook

METRICS_DIR = "/var/lib/prometheus/node-exporter"
PROMTOOL = os.path.join(PROJECT, ".build", "prometheus", "usr", "bin", "promtool")


def metrics(db, name):
    return db.file("%s/pgbackrest_%s_%s.prom" % (METRICS_DIR, STANZA, name)).content_string


def value(text, metric, **labels):
    """The value of metric{labels} in a textfile, as a float; None when absent."""
    for line in text.splitlines():
        match = re.match(r"^%s\{([^}]*)\} (\S+)$" % re.escape(metric), line)
        if match and all('%s="%s"' % item in match.group(1) for item in labels.items()):
            return float(match.group(2))
    return None


def promtool_check_metrics(text):
    return subprocess.run([PROMTOOL, "check", "metrics"], input=text, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, check=False)


def test_a_backup_run_writes_valid_metrics_atomically(db):
    result = db.run("%s diff" % WRAPPER)
    assert result.rc == 0, result.stderr
    run, status = metrics(db, "diff"), metrics(db, "status")
    for text in (run, status):
        checked = promtool_check_metrics(text)
        assert checked.returncode == 0, checked.stdout
    assert value(run, "pgbackrest_backup_last_exit_code", type="diff") == 0
    assert value(run, "pgbackrest_backup_last_success_timestamp_seconds") == \
        value(run, "pgbackrest_backup_last_run_timestamp_seconds")
    assert value(run, "pgbackrest_backup_last_duration_seconds") >= 0
    assert value(status, "pgbackrest_repo_up") == 1
    assert value(status, "pgbackrest_backup_newest_size_bytes", type="full") > 0
    assert value(status, "pgbackrest_backup_newest_stop_timestamp_seconds", type="diff") > 0
    assert value(status, "pgbackrest_archive_archived_total") > 0
    for name in ("diff", "status"):
        published = db.file("%s/pgbackrest_%s_%s.prom" % (METRICS_DIR, STANZA, name))
        assert (published.user, published.mode) == ("postgres", 0o644)
    assert db.check_output("find %s -name '.pgbackrest_*'", METRICS_DIR) == "", "a temporary file was left"


def test_verify_passes_quietly_on_a_healthy_host():
    result = run_playbook("playbooks/verify.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"changed=0 ", result.stdout)


def test_verify_fails_as_stale_with_a_tiny_age_limit():
    result = run_playbook("playbooks/verify.yml", {"pgbackrest_verify_max_age": "1s"})
    assert result.returncode != 0
    assert result.stdout.count("FAILED!") == 1
    assert "older than" in result.stdout, result.stdout[-3000:]


def test_endpoint_down_fails_the_check_naming_the_repository_and_the_metrics_show_it(db):
    docker("network", "disconnect", NETWORK, S3_HOST)
    try:
        check = run_playbook("playbooks/verify.yml", {"pgbackrest_verify_io_timeout": 3})
        backup = db.run("env PGBACKREST_IO_TIMEOUT=3 %s diff" % WRAPPER)
    finally:
        docker("network", "connect", "--alias", S3_ALIAS, NETWORK, S3_HOST)
    assert check.returncode != 0
    assert S3_ALIAS in check.stdout, check.stdout[-3000:]
    assert backup.rc != 0
    assert value(metrics(db, "diff"), "pgbackrest_backup_last_exit_code") not in (None, 0)
    assert value(metrics(db, "status"), "pgbackrest_repo_up") == 0

    # The failed scheduled run fails the check until the next run succeeds.
    failed_run = run_playbook("playbooks/verify.yml")
    assert failed_run.returncode != 0
    again = db.run("%s diff" % WRAPPER)
    assert again.rc == 0, again.stderr
    assert value(metrics(db, "status"), "pgbackrest_repo_up") == 1
    healthy = run_playbook("playbooks/verify.yml")
    assert healthy.returncode == 0, healthy.stdout[-3000:]


def test_failing_wal_archiving_fails_the_check_and_shows_in_the_metrics(db):
    command = psql(db, "SHOW archive_command")
    psql(db, "ALTER SYSTEM SET archive_command = 'false'")
    try:
        psql(db, "SELECT pg_reload_conf()")
        psql(db, "SELECT txid_current()")
        psql(db, "SELECT pg_switch_wal()")
        for dummy in range(30):
            if psql(db, "SELECT last_failed_time > coalesce(last_archived_time, '-infinity') FROM pg_stat_archiver") == "t":
                break
            time.sleep(1)
        else:
            raise AssertionError("archiving never failed")
        check = run_playbook("playbooks/verify.yml")
        db.check_output("%s metrics", WRAPPER)
        status = metrics(db, "status")
    finally:
        psql(db, "ALTER SYSTEM SET archive_command = %s" % ("'%s'" % command))
        psql(db, "SELECT pg_reload_conf()")
    assert check.returncode != 0
    assert "WAL archiving is failing" in check.stdout, check.stdout[-3000:]
    assert value(status, "pgbackrest_archive_last_failed_timestamp_seconds") > \
        value(status, "pgbackrest_archive_last_archived_timestamp_seconds")

    for dummy in range(60):
        if psql(db, "SELECT last_archived_time > last_failed_time FROM pg_stat_archiver") == "t":
            break
        time.sleep(1)
    healthy = run_playbook("playbooks/verify.yml")
    assert healthy.returncode == 0, healthy.stdout[-3000:]


def test_the_drill_restores_and_reports_without_touching_the_live_cluster(db):
    started = psql(db, "SELECT pg_postmaster_start_time()")
    live_files = db.check_output("ls /var/lib/postgresql/15/main | wc -l")
    result = run_playbook("playbooks/restore_drill.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"Restore time: \d+ s \(files \d+ s, recovery \d+ s\)", result.stdout), result.stdout[-3000:]
    assert re.search(r"Age of the newest restored transaction: \d+ s", result.stdout)
    assert "pg_amcheck on chronos_db: ok" in result.stdout
    assert re.search(r"Query \(SELECT count\(\*\) FROM pg_class\) returned: [1-9]\d*", result.stdout)
    assert psql(db, "SELECT pg_postmaster_start_time()") == started
    assert psql(db, "SELECT pg_is_in_recovery()") == "f"
    assert db.check_output("ls /var/lib/postgresql/15/main | wc -l") == live_files
    assert not db.file("/var/lib/postgresql/pgbackrest-drill").exists
