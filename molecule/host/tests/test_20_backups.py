"""Backups on demand and on schedule, against PostgreSQL, pgBackRest and the TLS S3 endpoint.
The tests run in file order: each leaves backups the next ones build on; expiry comes last."""

import re
import time

from scenario import (CRON_LOG, METRICS_DIR, NETWORK, S3_ALIAS, S3_HOST, STANZA, WRAPPER, cron_lines, docker, info,
                      labels, lsn, module, pgbackrest_version, psql, run_as_cron, run_playbook)


def run_exit_code(host, backup_type):
    runs = host.file("%s/pgbackrest_%s_runs.prom" % (METRICS_DIR, STANZA)).content_string
    return float(re.search(r'^pgbackrest_backup_run_exit_code\{backup_type="%s",stanza="%s"\} (\S+)$'
                           % (backup_type, STANZA), runs, re.M).group(1))


def test_full_then_diff_through_the_playbook():
    full = run_playbook("playbooks/backup.yml", {"pgbackrest_backup_type": "full"})
    assert full.returncode == 0, full.stdout[-3000:]
    full_label = re.search(r"Took full backup (\d{8}-\d{6}F) ", full.stdout).group(1)

    diff = run_playbook("playbooks/backup.yml")
    assert diff.returncode == 0, diff.stdout[-3000:]
    assert "Took diff backup %s_" % full_label in diff.stdout
    newest = info()["latest_backup"]
    assert (newest["type"], newest["prior"]) == ("diff", full_label)


def test_max_age_reuses_a_fresh_backup_and_changes_nothing():
    before = labels()
    result = run_playbook("playbooks/backup.yml", {"pgbackrest_backup_max_age": "1h"})
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Reused diff backup %s " % before[-1] in result.stdout
    assert re.search(r"changed=0 ", result.stdout)
    assert labels() == before


def test_check_mode_plans_without_backing_up():
    before = labels()
    result = run_playbook("playbooks/backup.yml", {"pgbackrest_backup_type": "full"}, check=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"changed=1 ", result.stdout)
    assert labels() == before


def test_backup_under_async():
    before = labels()
    result = run_playbook("molecule/host/async_backup.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert len(labels()) == len(before) + 1


def test_the_cron_line_run_as_cron_runs_it_makes_a_backup_and_records_it(db):
    line = [fields for fields in cron_lines(db) if fields[6].endswith(" backup")]
    assert len(line) == 1 and line[0][5] == "root"
    # The schedule's rule: full on Sunday (pgbackrest_schedule_full_weekday 0), a differential the other days.
    kind = "full" if db.check_output("date +%w") == "0" else "diff"
    before = labels()
    result = run_as_cron(db, "backup")
    assert result.rc == 0, result.stdout + result.stderr
    backups = info()["backups"]
    assert len(backups) == len(before) + 1 and backups[-1]["type"] == kind
    assert "%s: %s backup succeeded" % (STANZA, kind) in db.file(CRON_LOG).content_string
    assert run_exit_code(db, kind) == 0


def test_a_link_planted_where_the_lock_goes_is_never_followed(db):
    """What the postgres user - any PostgreSQL superuser, through COPY ... TO PROGRAM - could plant after a reboot,
    aimed at a root-only file."""
    secret = "/root/chronos-secret"
    db.check_output("umask 027 && echo 'root only' > %s", secret)
    before = db.check_output("stat -c '%%a %%U %%s' %s && cat %s", secret, secret)
    db.check_output("rm -rf /run/chronos-pgbackrest /run/lock/chronos-pgbackrest")
    # Where the lock used to be (/run/lock is world-writable): postgres plants a link; the job no longer looks there.
    db.check_output("runuser -u postgres -- sh -c %s", "mkdir -p /run/lock/chronos-pgbackrest && ln -s %s "
                    "/run/lock/chronos-pgbackrest/%s.lock" % (secret, STANZA))
    # Where it is now, postgres can create nothing.
    assert db.run("runuser -u postgres -- mkdir /run/chronos-pgbackrest").rc != 0
    backups = labels()
    done = run_as_cron(db, "backup diff")
    assert done.rc == 0, db.file(CRON_LOG).content_string[-3000:]
    assert len(labels()) == len(backups) + 1
    # A lock directory that is not root's alone (a careless chown), with the link in it: refused, and recorded.
    db.check_output("rm -rf /run/chronos-pgbackrest && install -d -m 0755 -o postgres -g postgres "
                    "/run/chronos-pgbackrest")
    db.check_output("runuser -u postgres -- ln -s %s /run/chronos-pgbackrest/%s.lock", secret, STANZA)
    refused = run_as_cron(db, "backup diff")
    assert refused.rc == 3, db.file(CRON_LOG).content_string[-3000:]
    assert ("diff backup REFUSED: The lock of stanza %s cannot be trusted: /run/chronos-pgbackrest is owned by "
            "postgres, not root" % STANZA) in db.file(CRON_LOG).content_string
    assert run_exit_code(db, "diff") == 3
    assert len(labels()) == len(backups) + 1
    assert db.check_output("stat -c '%%a %%U %%s' %s && cat %s", secret, secret) == before
    db.check_output("rm -rf /run/chronos-pgbackrest /run/lock/chronos-pgbackrest %s", secret)


def test_guide_testing_backups_procedure(db):
    # shared/reference/postgresql-backup-guide.md, "Testing Backups", as root like `docker exec`.
    db.check_output('psql -h localhost -U prometheus -d chronos_db -c '
                    '"CREATE TABLE backup_test (id serial, created_at timestamp default now());"')
    created = psql(db, "SELECT pg_current_wal_insert_lsn()")
    result = db.run(WRAPPER)
    assert result.rc == 0, result.stderr
    newest = info()["latest_backup"]
    assert newest["type"] == ("full" if db.check_output("date +%w") == "0" else "diff")
    assert lsn(newest["lsn_stop"]) > lsn(created), "the backup does not cover the table's creation"


def test_wrapper_started_as_root_leaves_no_root_owned_file(db):
    assert db.check_output("find /var/log/pgbackrest /tmp/pgbackrest /var/spool/pgbackrest -user root") == ""


def test_two_wrapper_runs_at_once_one_backs_up(db):
    before = labels()
    db.check_output("bash -c %s", "for n in 1 2; do (%s diff > /tmp/run$n.out 2>&1; echo $? > /tmp/run$n.rc) & done;"
                                  " wait" % WRAPPER)
    runs = sorted((int(db.file("/tmp/run%d.rc" % n).content_string), db.file("/tmp/run%d.out" % n).content_string)
                  for n in (1, 2))
    assert [rc for rc, dummy in runs] == [0, 75]
    assert "stanza %s is busy (a backup, restore, drill or verify holds" % STANZA in runs[1][1]
    backups = info()["backups"]
    assert len(backups) == len(before) + 1
    assert not any(backup["error"] for backup in backups)


def test_endpoint_down_fails_naming_the_repository_and_the_metrics_say_so_until_a_backup_by_hand(db):
    docker("network", "disconnect", NETWORK, S3_HOST)
    try:
        # pgBackRest gives up after 4 x io-timeout: 20 s instead of the default 4 minutes.
        down = db.run("env PGBACKREST_IO_TIMEOUT=5 %s diff" % WRAPPER)
        scheduled = run_as_cron(db, "backup diff", environment={"PGBACKREST_IO_TIMEOUT": "5"})
    finally:
        docker("network", "connect", "--alias", S3_ALIAS, NETWORK, S3_HOST)
    assert down.rc != 0
    assert "FAILED" in down.stderr
    assert "repo1: s3 bucket project-chronos-backups at %s:443" % S3_ALIAS in down.stderr
    assert scheduled.rc != 0
    assert run_exit_code(db, "diff") != 0

    # A backup by hand through the playbook clears it: the alert for a failed backup resolves.
    before = labels()
    again = run_playbook("playbooks/backup.yml")
    assert again.returncode == 0, again.stdout[-3000:]
    assert len(labels()) == len(before) + 1
    assert run_exit_code(db, "diff") == 0


def test_a_killed_pgbackrest_leaves_no_lock_behind(db):
    """The wrapper's lock is its own: pgBackRest and its workers do not inherit it, so after a kill -9 (the OOM
    killer) the next run starts at once instead of exiting 75 while an orphaned worker lives."""
    psql(db, "CREATE TABLE IF NOT EXISTS ballast AS SELECT g, md5(g::text) AS filler FROM generate_series(1, 400000) g",
         "chronos_db")
    db.check_output("bash -c %s", "(%s full > /tmp/killed.out 2>&1 &)" % WRAPPER)
    for dummy in range(60):
        main = db.run("pgrep -u postgres -f -- '--type=full.* backup$'").stdout.split()
        if main:
            break
        time.sleep(0.2)
    assert main, "the backup did not start"
    db.check_output("kill -9 %s", main[0])
    time.sleep(0.5)
    again = db.run("%s incr", WRAPPER)
    assert again.rc != 75, again.stdout + again.stderr
    assert again.rc == 0, again.stdout + again.stderr
    psql(db, "DROP TABLE ballast", "chronos_db")


def test_a_held_lock_fails_clearly_or_is_waited_for(db):
    # Hold the stanza's backup lock the way a running pgBackRest holds it (flock on its lock file) for 20 s.
    # pgBackRest 2.53 and later name it after the repository too.
    lock = "/tmp/pgbackrest/%s-backup%s.lock" % (STANZA, "-1" if pgbackrest_version(db) >= (2, 53) else "")
    db.check_output("runuser -u postgres -- bash -c %s",
                    "(flock --nonblock %s sleep 20 > /dev/null 2>&1 &); sleep 1" % lock)
    assert db.run("runuser -u postgres -- flock --nonblock %s true", lock).rc == 1, "the lock is not held"

    refused = module("pgbackrest_backup", stanza=STANZA, type="incr")
    assert refused.get("failed")
    assert refused["failed_part"] == "lock"
    assert "wait_for_lock" in refused["msg"]

    before = labels()
    waited = module("pgbackrest_backup", stanza=STANZA, type="incr", wait_for_lock="true", lock_timeout="2m")
    assert not waited.get("failed"), waited.get("msg")
    assert waited["changed"] and waited["backup"]["type"] == "incr"
    assert labels() == before + [waited["backup"]["label"]]
    assert db.run("runuser -u postgres -- flock --nonblock %s true", lock).rc == 0


def test_expiry_follows_the_documented_time_retention(db):
    db.check_output("apt-get install -y -qq faketime > /dev/null")
    db.check_output("runuser -u postgres -- flock --wait 60 /tmp/pgbackrest/%s-backup%s.lock true", STANZA,
                    "-1" if pgbackrest_version(db) >= (2, 53) else "")
    backups = info()["backups"]
    fulls = [backup["label"] for backup in backups if backup["type"] == "full"]
    assert len(fulls) >= 2
    # Eight days from now every full backup is older than the 7-day window: pgBackRest keeps the newest of
    # them (the base for the window's start) and everything after it, and expires the older ones with
    # their differentials and incrementals (README, "What 7 days' retention keeps").
    db.check_output("runuser -u postgres -- faketime -f +8d pgbackrest --stanza=%s expire", STANZA)
    remaining = labels()
    assert remaining == [backup["label"] for backup in backups if backup["label"] >= fulls[-1]]
    assert fulls[-1] in remaining and fulls[0] not in remaining
