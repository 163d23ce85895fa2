"""Each alert of templates/prometheus/pgbackrest-alerts.yml fires and resolves through the lab's real Prometheus and
Alertmanager, delivered to the webhook receiver: the failure is made for real on the database host (or its clock moved
with faketime), the scheduled job runs as cron runs it, node_exporter serves the files. Each test puts back what it
broke and ends with no alert active. The lab loads the rules with every `for:` cut to 3 s."""

import json
import time

import pytest
import yaml

from monitoring_lab import RULES, write_verify_metrics
from scenario import (CONFIG, CRON_LOG, METRICS_DIR, NETWORK, PROGRAM, S3_ALIAS, S3_HOST, STANZA, docker, psql,
                      run_as_cron, run_playbook)

STATUS_FILE = "%s/pgbackrest_%s_status.prom" % (METRICS_DIR, STANZA)
NODE_EXPORTER_PID = "/run/prometheus-node-exporter.pid"
# pgBackRest gives up on an unreachable repository after a few io-timeouts (4 minutes by default).
FAST_TIMEOUT = {"PGBACKREST_IO_TIMEOUT": "1"}
# Production's `for:` of each alert (none: fires on the first evaluation); the promtool tests pin them too.
PRODUCTION_FOR = {"PgBackRestMetricsMissing": "10m", "PgBackRestMetricsStale": None, "PgBackRestNoRecentBackup": None,
                  "PgBackRestBackupFailed": None, "PgBackRestRepositoryUnavailable": "15m",
                  "PgBackRestWalArchivingFailing": "10m", "PgBackRestWalBacklogFilling": None,
                  "PgBackRestWalDiskFilling": "5m", "PgBackRestArchiveGap": None, "PgBackRestVerifyFailed": None,
                  "PgBackRestVerifyNotRunning": None, "PgBackRestKeptCopiesFillingDisk": "15m",
                  "PgBackRestDrillFailed": None, "PgBackRestPostgresqlNotAnswering": "10m",
                  "PgBackRestLockHeldTooLong": None}


def production_rules():
    with open(RULES) as handle:
        return [rule for group in yaml.safe_load(handle)["groups"] for rule in group["rules"]]


def refresh_metrics(db, **options):
    result = run_as_cron(db, "metrics", **options)
    assert result.rc == 0, result.stdout + result.stderr


def archive_again(db):
    """Write WAL, switch segments, and wait until PostgreSQL's last archiving attempt is a success."""
    psql(db, "SELECT pg_logical_emit_message(false, 'chronos-monitoring', 'test')")
    psql(db, "SELECT pg_switch_wal()")
    for dummy in range(60):
        if psql(db, "SELECT last_archived_time > coalesce(last_failed_time, '-infinity') FROM pg_stat_archiver") == "t":
            return
        time.sleep(1)
    raise AssertionError("WAL archiving did not succeed again within 60 s")


def test_the_lab_runs_the_collections_rules_with_only_for_shortened(monitoring):
    rules = production_rules()
    assert dict((rule["alert"], rule.get("for")) for rule in rules) == PRODUCTION_FOR
    loaded = [rule for group in monitoring.api("rules")["groups"] for rule in group["rules"]]
    assert [rule["name"] for rule in loaded] == [rule["alert"] for rule in rules]
    for production, lab in zip(rules, loaded):
        assert monitoring.format_query(lab["query"]) == monitoring.format_query(production["expr"]), production["alert"]
        assert lab["labels"] == production["labels"] and lab["annotations"] == production["annotations"]
        assert lab["duration"] == (3 if production.get("for") else 0), production["alert"]
        assert lab["health"] == "ok", lab
    for dummy in range(20):
        targets = [(target["labels"]["job"], target["health"]) for target in monitoring.api("targets")["activeTargets"]]
        if targets == [("node", "up")]:
            break
        time.sleep(0.5)
    assert targets == [("node", "up")]


def test_a_provisioned_host_fires_nothing(monitoring):
    monitoring.wait_quiet()
    # Cron does not run here: site.yml's first backup wrote both files.
    assert monitoring.query('pgbackrest_stanza_status{stanza="%s"} == 0' % STANZA)
    assert monitoring.query('pgbackrest_backup_run_exit_code{backup_type="full",stanza="%s"} == 0' % STANZA)


def test_no_backup_for_25_hours(db, monitoring):
    # The job runs 26 hours from now and finds no newer backup.
    mark = monitoring.mark()
    refresh_metrics(db, faketime="26 hours")
    alert = monitoring.delivered("PgBackRestNoRecentBackup", "firing", mark)
    assert alert["labels"]["stanza"] == STANZA and alert["labels"]["job"] == "node"
    assert "ended 1d 2h" in alert["annotations"]["description"], alert
    assert monitoring.firing() == {"PgBackRestNoRecentBackup"}

    mark = monitoring.mark()
    refresh_metrics(db)
    monitoring.delivered("PgBackRestNoRecentBackup", "resolved", mark)
    monitoring.wait_quiet()


def test_unreadable_repository_and_failed_backup_until_a_full_by_hand(db, monitoring):
    docker("network", "disconnect", NETWORK, S3_HOST)
    try:
        mark = monitoring.mark()
        refresh_metrics(db, environment=FAST_TIMEOUT)
        alert = monitoring.delivered("PgBackRestRepositoryUnavailable", "firing", mark)
        assert "status code 99" in alert["annotations"]["description"], alert

        mark = monitoring.mark()
        backup = run_as_cron(db, "backup diff", environment=FAST_TIMEOUT)
        assert backup.rc not in (0, 75)
        alert = monitoring.delivered("PgBackRestBackupFailed", "firing", mark)
        assert alert["labels"]["backup_type"] == "diff"
        assert "exited with code %d " % backup.rc in alert["annotations"]["description"], alert
        # WAL pushed while the endpoint is away fails too.
        assert {"PgBackRestBackupFailed", "PgBackRestRepositoryUnavailable"} <= monitoring.firing() <= {
            "PgBackRestBackupFailed", "PgBackRestRepositoryUnavailable", "PgBackRestWalArchivingFailing"}

        check = run_playbook("playbooks/verify.yml", {"pgbackrest_verify_io_timeout": 1})
        assert check.returncode != 0 and S3_ALIAS in check.stdout, check.stdout[-3000:]
    finally:
        docker("network", "connect", "--alias", S3_ALIAS, NETWORK, S3_HOST)

    mark = monitoring.mark()
    archive_again(db)
    refresh_metrics(db)
    monitoring.delivered("PgBackRestRepositoryUnavailable", "resolved", mark)
    time.sleep(5)
    assert monitoring.firing() == {"PgBackRestBackupFailed"}, "only a backup resolves a failed one"

    # A full backup covers the failed diff: playbooks/backup.yml updates the metrics and the alert resolves.
    mark = monitoring.mark()
    full = run_playbook("playbooks/backup.yml", {"pgbackrest_backup_type": "full"})
    assert full.returncode == 0, full.stdout[-3000:]
    monitoring.delivered("PgBackRestBackupFailed", "resolved", mark)
    monitoring.wait_quiet()


def test_failing_wal_archiving(db, monitoring):
    command = psql(db, "SHOW archive_command")
    psql(db, "ALTER SYSTEM SET archive_command = 'false'")
    try:
        psql(db, "SELECT pg_reload_conf()")
        psql(db, "SELECT pg_logical_emit_message(false, 'chronos-monitoring', 'test')")
        psql(db, "SELECT pg_switch_wal()")
        failing = "SELECT last_failed_time > coalesce(last_archived_time, '-infinity') FROM pg_stat_archiver"
        for dummy in range(30):
            if psql(db, failing) == "t":
                break
            time.sleep(1)
        else:
            raise AssertionError("archiving never failed")
        mark = monitoring.mark()
        refresh_metrics(db)
        alert = monitoring.delivered("PgBackRestWalArchivingFailing", "firing", mark)
        assert alert["annotations"]["summary"].endswith("is failing"), alert
        assert monitoring.firing() == {"PgBackRestWalArchivingFailing"}
        check = run_playbook("playbooks/verify.yml")
        assert check.returncode != 0 and "WAL archiving is failing" in check.stdout, check.stdout[-3000:]
    finally:
        psql(db, "ALTER SYSTEM SET archive_command = '%s'" % command.replace("'", "''"))
        psql(db, "SELECT pg_reload_conf()")

    mark = monitoring.mark()
    archive_again(db)
    refresh_metrics(db)
    monitoring.delivered("PgBackRestWalArchivingFailing", "resolved", mark)
    monitoring.wait_quiet()


def test_stale_metrics(db, monitoring):
    # The last refresh was 20 minutes ago, and none since.
    mark = monitoring.mark()
    refresh_metrics(db, faketime="20 minutes ago")
    alert = monitoring.delivered("PgBackRestMetricsStale", "firing", mark)
    assert "last written 20m" in alert["annotations"]["description"], alert
    assert monitoring.firing() == {"PgBackRestMetricsStale"}

    mark = monitoring.mark()
    refresh_metrics(db)
    monitoring.delivered("PgBackRestMetricsStale", "resolved", mark)
    monitoring.wait_quiet()


def test_missing_metrics_file(db, monitoring):
    mark = monitoring.mark()
    db.check_output("rm %s", STATUS_FILE)
    alert = monitoring.delivered("PgBackRestMetricsMissing", "firing", mark)
    assert alert["labels"]["stanza"] == STANZA
    assert "node_exporter answers, so pgbackrest_%s_status.prom is gone" % STANZA in alert["annotations"]["description"]
    assert monitoring.firing() == {"PgBackRestMetricsMissing"}

    mark = monitoring.mark()
    refresh_metrics(db)
    monitoring.delivered("PgBackRestMetricsMissing", "resolved", mark)
    monitoring.wait_quiet()


def test_node_exporter_down(db, monitoring):
    mark = monitoring.mark()
    # Not waited for: nothing reaps it in a container whose main process is sleep.
    db.check_output("start-stop-daemon --stop --user prometheus --remove-pidfile --pidfile %s", NODE_EXPORTER_PID)
    alert = monitoring.delivered("PgBackRestMetricsMissing", "firing", mark)
    assert "node_exporter there does not answer (up is 0)" in alert["annotations"]["description"], alert
    assert monitoring.firing() == {"PgBackRestMetricsMissing"}

    mark = monitoring.mark()
    started = run_playbook("molecule/monitoring/prepare.yml")
    assert started.returncode == 0, started.stdout[-3000:]
    monitoring.delivered("PgBackRestMetricsMissing", "resolved", mark)
    monitoring.wait_quiet()


@pytest.mark.parametrize("alertname, broken, words", [
    ("PgBackRestVerifyFailed", dict(status=1, errors=2), "reported 2 problem(s)"),
    ("PgBackRestVerifyFailed", dict(status=2, errors=0), "did not complete"),
    ("PgBackRestVerifyNotRunning", dict(status=0, errors=0, last_run_ago=9 * 86400), "last ended 9d 0h"),
])
def test_verify(db, monitoring, alertname, broken, words):
    mark = monitoring.mark()
    write_verify_metrics(db, **broken)
    alert = monitoring.delivered(alertname, "firing", mark)
    assert words in alert["annotations"]["description"], json.dumps(alert)
    assert monitoring.firing() == {alertname}

    mark = monitoring.mark()
    write_verify_metrics(db, status=0, errors=0)
    monitoring.delivered(alertname, "resolved", mark)
    monitoring.wait_quiet()


def run_drill(db):
    """The scheduled drill job, as cron runs it when the weekly drill is on."""
    return db.run("%s --stanza %s --log %s drill", PROGRAM, STANZA, CRON_LOG)


def test_a_refused_drill_then_one_that_passes(db, monitoring):
    mark = monitoring.mark()
    # Something else took the drill's port: the drill refuses (exit 3) and changes nothing.
    db.check_output("setsid -f python3 -c %s chronos-port-taker </dev/null >/dev/null 2>&1 && sleep 1",
                    "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 5433)); s.listen(); time.sleep(120)")
    assert run_drill(db).rc == 3, db.file(CRON_LOG).content_string[-2000:]
    alert = monitoring.delivered("PgBackRestDrillFailed", "firing", mark)
    assert "did not start: its scratch place" in alert["annotations"]["description"], alert
    assert monitoring.firing() == {"PgBackRestDrillFailed"}

    mark = monitoring.mark()
    db.check_output("pkill -f 'chronos-port-take[r]' || true")
    drilled = run_drill(db)
    assert drilled.rc == 0, db.file(CRON_LOG).content_string[-3000:]
    monitoring.delivered("PgBackRestDrillFailed", "resolved", mark)
    monitoring.wait_quiet()


def test_postgresql_not_answering(db, monitoring):
    mark = monitoring.mark()
    db.check_output("pg_ctlcluster $(ls /etc/postgresql) main stop")
    try:
        refresh_metrics(db)
        alert = monitoring.delivered("PgBackRestPostgresqlNotAnswering", "firing", mark)
        assert "could not run psql against PostgreSQL" in alert["annotations"]["description"], alert
        assert monitoring.firing() == {"PgBackRestPostgresqlNotAnswering"}
    finally:
        db.check_output("pg_ctlcluster $(ls /etc/postgresql) main start")
    mark = monitoring.mark()
    refresh_metrics(db)
    monitoring.delivered("PgBackRestPostgresqlNotAnswering", "resolved", mark)
    monitoring.wait_quiet()


def test_a_lock_held_for_hours(db, monitoring):
    """The backup wrapper's lock on pgbackrest.conf, held by a process the metrics job sees 7 hours later (faketime:
    the holder's start time comes from the kernel, the job's clock moves)."""
    mark = monitoring.mark()
    db.check_output("setsid -f runuser -u postgres -- flock %s sleep 127 </dev/null >/dev/null 2>&1 && sleep 1", CONFIG)
    try:
        refresh_metrics(db, faketime="7 hours")
        alert = monitoring.delivered("PgBackRestLockHeldTooLong", "firing", mark)
        assert alert["labels"]["stanza"] == STANZA
        assert "and no backup of the stanza can start until it ends" in alert["annotations"]["description"], alert
        assert monitoring.firing() == {"PgBackRestLockHeldTooLong"}
    finally:
        db.check_output("pkill -f 'sleep 12[7]' || true")
    mark = monitoring.mark()
    refresh_metrics(db)
    monitoring.delivered("PgBackRestLockHeldTooLong", "resolved", mark)
    monitoring.wait_quiet()
