"""Restores during an incident, the same on every layout (imported by the restore scenario, host layout, and by the
container scenarios): refusals, a point-in-time restore, the same request again, a rollback through the playbook,
timelines after it, a broken cluster restored by latest, an interruption at each step finished by the same command,
a scheduled backup held off while a restore runs, and another stanza restored into a scratch place. The tests run in
file order and build on each other."""

import json
import os
import re
import signal
import subprocess
import time

import pytest

from scenario import (CONTAINER_LAYOUT, CRON_LOG, DB_CONTAINER, METRICS_DIR, PROGRAM, PROJECT, RELEASE_INDEPENDENT,
                      STANZA, SUPERUSER, WRAPPER, archive_current_wal, docker, docker_output, inventory, labels, module,
                      now_target, pg_tool, psql, run_as_cron, run_playbook, s3_lab)

FAULT = "CHRONOS_PGBACKREST_FAULT"


def restore(**settings):
    """playbooks/restore.yml (or rollback.yml with type=rollback) with pgbackrest_restore_<key> variables; confirmed
    unless confirm=False."""
    settings.setdefault("confirm", True)
    playbook = "playbooks/rollback.yml" if settings.get("type") == "rollback" else "playbooks/restore.yml"
    return run_playbook(playbook, {"pgbackrest_restore_%s" % key: value for key, value in settings.items()})


def restore_module(**args):
    """pgbackrest_restore itself, as the playbook runs it; fault='after:<step>' ends it right after that step."""
    fault = args.pop("fault", None)
    return module("pgbackrest_restore", stanza=STANZA, environment={FAULT: fault} if fault else None, **args)


def kept():
    """The kept data directories (or volumes), as the module finds them."""
    plan = restore_module(type="latest", check=True)
    assert not plan.get("failed"), plan.get("msg")
    return [copy["name"] for copy in plan["plan"]["state"]["kept"]]


def rows(db, batch):
    return int(psql(db, "SELECT count(*) FROM pitr WHERE batch = %d" % batch, "chronos_db"))


def batches(db):
    return psql(db, "SELECT string_agg(DISTINCT batch::text, ',' ORDER BY batch::text) FROM pitr", "chronos_db")


def insert_batch(db, batch):
    psql(db, "INSERT INTO pitr SELECT %d, g FROM generate_series(1, 100) g" % batch, "chronos_db")


def assert_rows(db, committed, result):
    """Every committed row is there, as (count, checksum); else say what is, and what the restore printed."""
    found = psql(db, "SELECT count(*), sum(id * batch) FROM pitr", "chronos_db")
    assert found == committed, "rows %s, committed %s; batches %s\n%s" % (found, committed, batches(db),
                                                                          result.stdout[-4000:])


def running_normally(db):
    return psql(db, "SELECT pg_is_in_recovery()") == "f"


@pytest.fixture(scope="module", autouse=True)
def tables(db):
    # No autovacuum on it: its ANALYZE commits, and a commit after a target makes recovery stop there.
    psql(db, "CREATE TABLE IF NOT EXISTS pitr (batch int, id int) WITH (autovacuum_enabled = off)", "chronos_db")
    psql(db, "CREATE TABLE IF NOT EXISTS important AS SELECT g AS id FROM generate_series(1, 10) g", "chronos_db")


@RELEASE_INDEPENDENT
@pytest.mark.parametrize("extra_vars, message", [
    ({"type": "latest", "confirm": False}, "Nothing was changed: this was the plan."),
    ({"type": "time", "target": "2000-01-01 00:00:00+00"}, "is before the recoverable window"),
    ({"type": "time", "target": "2026-11-24 25:61:00+00"}, "is not a valid date and time"),
    ({"type": "time", "target": "yesterday"}, "is not a time with a time zone"),
    ({"type": "set", "set": "20000101-000000F"}, "Backup set '20000101-000000F' is not in the stanza"),
    ({"type": "name", "target": "before'; restore_command = 'sh -c evil"}, "holds a quote, a backslash or a control"),
    ({"type": "name", "target": "line\nrecovery_target_action = 'shutdown'"}, "holds a quote, a backslash or a control"),
    ({"type": "xid", "target": "12'34"}, "is not a transaction id"),
], ids=["no confirm", "before the oldest backup", "malformed time", "no time zone", "unknown set", "quote in name",
        "newline in name", "quote in xid"])
def test_refusals_change_nothing(db, extra_vars, message):
    before = psql(db, "SELECT count(*) FROM important", "chronos_db"), psql(db, "SELECT pg_postmaster_start_time()")
    result = restore(**extra_vars)
    assert message in result.stdout, result.stdout[-3000:]
    assert (result.returncode == 0) is (message.startswith("Nothing was changed"))
    assert kept() == []
    assert (psql(db, "SELECT count(*) FROM important", "chronos_db"), psql(db, "SELECT pg_postmaster_start_time()")) \
        == before
    assert running_normally(db)


def test_a_time_without_seconds_means_the_same_minute_start(db):
    """Restore and drill read a target the same way: '... 08:22+00' is 08:22:00, as PostgreSQL reads it."""
    minute = psql(db, "SELECT to_char(now() AT TIME ZONE 'UTC' - interval '1 day', 'YYYY-MM-DD HH24:MI') || '+00'")
    result = restore(type="time", target=minute, confirm=False)
    assert "is before the recoverable window" in result.stdout, result.stdout[-3000:]
    assert "is not a time with a time zone" not in result.stdout


def test_point_in_time_restore_brings_back_exactly_the_rows_before_the_target(db, pitr):
    assert (rows(db, 1), rows(db, 2)) == (100, 0)
    assert psql(db, "SELECT count(*) FROM important", "chronos_db") == "10"
    assert running_normally(db)
    assert len(kept()) == 1


@pytest.fixture(scope="module")
def pitr(db):
    """A point-in-time restore between batch 1 and batch 2 (and before important was dropped)."""
    insert_batch(db, 1)
    time.sleep(1)
    target = now_target(db)
    time.sleep(1)
    insert_batch(db, 2)
    psql(db, "DROP TABLE important", "chronos_db")
    archive_current_wal(db)
    plan = restore(type="time", target=target, confirm=False)
    assert "Steps: stop, move_aside, restore, recover, check." in plan.stdout, plan.stdout[-3000:]
    result = restore(type="time", target=target)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "total (RTO)" in result.stdout
    assert re.search(r"The old data directory is kept as \S+; put it back with playbooks/rollback.yml", result.stdout)
    assert "which has no backup yet" in result.stdout
    return dict(target=target, output=result.stdout)


def test_the_same_restore_again_changes_nothing(db, pitr):
    started = psql(db, "SELECT pg_postmaster_start_time()")
    result = restore(type="time", target=pitr["target"])
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"Nothing to do: PostgreSQL runs the result of this restore \(timeline \d+\), and its WAL holds no "
                     r"commit since the restore ended", result.stdout), result.stdout[-3000:]
    assert re.search(r"changed=0 ", result.stdout)
    assert psql(db, "SELECT pg_postmaster_start_time()") == started
    assert len(kept()) == 1


def test_rollback_through_the_playbook_puts_the_old_data_back(db, pitr):
    result = restore(type="rollback")
    assert result.returncode == 0, result.stdout[-3000:]
    assert (rows(db, 1), rows(db, 2)) == (100, 100), "the data directory from before the restore is back"
    assert psql(db, "SELECT to_regclass('important') IS NULL", "chronos_db") == "t"
    assert running_normally(db)
    # Nothing is lost: the restored cluster it replaced is kept too.
    assert len(kept()) == 1 and "rolled-back" in kept()[0]


def test_after_the_rollback_latest_follows_production_and_loses_no_row(db, pitr):
    insert_batch(db, 3)
    archive_current_wal(db)
    committed = psql(db, "SELECT count(*), sum(id * batch) FROM pitr", "chronos_db")
    result = restore(type="latest")
    assert result.returncode == 0, result.stdout[-3000:]
    # Not the abandoned timeline of the point-in-time restore (PostgreSQL's 'latest' would follow it and fail).
    assert "following timeline 1," in result.stdout
    assert_rows(db, committed, result)
    assert batches(db) == "1,2,3"


def test_a_point_in_time_after_the_rollback_is_accepted_and_exact(db, pitr):
    insert_batch(db, 4)
    time.sleep(1)
    target = now_target(db)
    time.sleep(1)
    insert_batch(db, 5)
    archive_current_wal(db)
    result = restore(type="time", target=target)
    assert result.returncode == 0, result.stdout[-3000:]
    assert batches(db) == "1,2,3,4"


def test_a_cluster_broken_after_it_moved_on_is_restored_by_latest(db, pitr):
    latest = restore(type="latest")
    assert latest.returncode == 0, latest.stdout[-3000:]
    insert_batch(db, 6)
    archive_current_wal(db)
    committed = psql(db, "SELECT count(*), sum(id * batch) FROM pitr", "chronos_db")
    # Break it: the table's file disappears under the running server.
    relation = psql(db, "SELECT current_setting('data_directory') || '/' || pg_relation_filepath('pitr')", "chronos_db")
    db.check_output("rm -f %s", relation)
    assert db.run("runuser -u postgres -- psql -XAtq -U %s -d chronos_db -c 'SELECT count(*) FROM pitr'",
                  SUPERUSER).rc != 0
    plan = restore(type="latest", confirm=False)
    assert re.search(r"but \d+ transactions? committed since", plan.stdout), plan.stdout[-3000:]
    assert "Steps: archive, stop, move_aside, restore, recover, check." in plan.stdout
    result = restore(type="latest")
    assert result.returncode == 0, result.stdout[-3000:]
    assert_rows(db, committed, result)


@RELEASE_INDEPENDENT
@pytest.mark.parametrize("step", ["stop", "move_aside", "restore", "recover"])
def test_an_interruption_at_each_step_is_finished_by_the_same_command(db, pitr, step):
    insert_batch(db, 10)
    archive_current_wal(db)
    committed = psql(db, "SELECT count(*), sum(id * batch) FROM pitr", "chronos_db")
    copies = len(kept())
    interrupted = restore_module(type="latest", fault="after:%s" % step)
    # The module ended with the fault's exit code, as a killed run would: no result.
    assert interrupted.get("failed") and interrupted.get("rc") == 130, interrupted
    result = restore(type="latest")
    assert result.returncode == 0, result.stdout[-3000:]
    # Interrupted after recovery, the restore is done: its result runs and nothing was written since. In a container
    # the restart policy it held is still to be given back.
    if step == "recover" and CONTAINER_LAYOUT:
        assert "Steps: release." in result.stdout, result.stdout[-3000:]
    else:
        assert ("Nothing to do" in result.stdout) is (step == "recover"), result.stdout[-3000:]
    assert_rows(db, committed, result)
    assert running_normally(db)
    assert len(kept()) == copies + 1, "the data directory the interrupted restore moved aside is kept"
    psql(db, "DELETE FROM pitr WHERE batch = 10", "chronos_db")


@RELEASE_INDEPENDENT
def test_an_interrupted_playbook_whose_restore_finished_on_its_own_reports_nothing_to_do(db, pitr):
    """Ctrl-C while the restore runs: the restore goes on where it runs (async), and the same command again waits
    for it, then finds its result."""
    insert_batch(db, 11)
    archive_current_wal(db)
    committed = psql(db, "SELECT count(*), sum(id * batch) FROM pitr", "chronos_db")
    command = ["ansible-playbook", "-i", inventory(), os.path.join(PROJECT, "playbooks/restore.yml"),
               "-e", "pgbackrest_restore_confirm=true"]
    playbook = subprocess.Popen(command, cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    for dummy in range(240):
        if restore_running():
            break
        time.sleep(0.25)
    else:
        raise AssertionError("the restore did not start")
    os.killpg(playbook.pid, signal.SIGINT)
    playbook.wait()
    result = restore(type="latest")
    assert result.returncode == 0, result.stdout[-3000:]
    assert_rows(db, committed, result)
    assert running_normally(db)


def restore_running():
    """Whether a restore holds the stanza's lock now (its progress names a step)."""
    return module("pgbackrest_restore", stanza=STANZA, progress=True).get("progress", "").startswith("Step")


@RELEASE_INDEPENDENT
def test_a_scheduled_backup_started_during_a_restore_does_not_run(managed):
    before = labels()
    # Hold the stanza's lock as a restore holds it (root's alone), for 15 s.
    lock = "/run/chronos-pgbackrest/%s.lock" % STANZA
    # setsid and no inherited output: the holder outlives the command that starts it.
    managed.check_output("install -d -m 0700 /run/chronos-pgbackrest && setsid -f bash -c %s </dev/null >/dev/null "
                         "2>&1 && sleep 1",
                         "umask 077; exec 9>>%s; flock 9; echo 'restore into test pid 1: step 3 of 5' >&9; sleep 15"
                         % lock)
    held_off = run_as_cron(managed, "backup diff")
    assert held_off.rc == 75, held_off.stdout + held_off.stderr
    assert labels() == before
    log = managed.file(CRON_LOG).content_string
    assert "not starting a diff backup: Stanza %s is busy: restore into test" % STANZA in log
    refused = run_playbook("playbooks/backup.yml")
    assert refused.returncode != 0 and "is busy: restore into test" in refused.stdout
    managed.run("flock %s true", lock)  # wait until the stand-in restore released it
    resumed = run_as_cron(managed, "backup diff")
    assert resumed.rc == 0
    assert len(labels()) == len(before) + 1


def test_the_restore_drill_restores_checks_and_removes_a_scratch_copy(db, managed):
    started = psql(db, "SELECT pg_postmaster_start_time()")
    result = run_playbook("playbooks/restore_drill.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "pg_amcheck on chronos_db: ok" in result.stdout
    assert "The scratch copy was removed; the live cluster was not touched." in result.stdout
    assert psql(db, "SELECT pg_postmaster_start_time()") == started
    if CONTAINER_LAYOUT:
        assert docker_output("ps", "-a", "--filter", "name=%s-pgbackrest-drill" % DB_CONTAINER, "-q") == ""
    else:
        assert not managed.file("/var/lib/postgresql/pgbackrest-drill").exists


@pytest.fixture(scope="module")
def old_stanza(db):
    """The guide's old stanza `chronos`, kept in the bucket after the migration to chronos-v2: a second cluster with
    its own system identifier, on port 5434, archived and backed up into stanza chronos, then stopped."""
    old = "/var/lib/postgresql/old-cluster"
    # archive-push takes no pg1-port (pgBackRest 2.55 refuses it): the archive command names the stanza and path only.
    archiving = "--stanza=chronos --pg1-path=%s" % old
    options = "%s --pg1-port=5434 --pg1-user=%s" % (archiving, SUPERUSER)
    as_postgres = "runuser -u postgres -- "
    db.check_output(as_postgres + "%s -D %s -U %s --auth=trust", pg_tool(db, "initdb"), old, SUPERUSER)
    db.check_output(as_postgres + "%s -D %s -l %s/log -w -o %s start", pg_tool(db, "pg_ctl"), old, old,
                    "-p 5434 -c listen_addresses= -c wal_level=replica -c archive_mode=on "
                    "-c archive_command='pgbackrest %s archive-push %%p'" % archiving)
    db.check_output(as_postgres + "pgbackrest " + options + " stanza-create")
    db.check_output(as_postgres + "psql -XAtq -p 5434 -U %s -d postgres -c %s", SUPERUSER,
                    "CREATE TABLE before_migration AS SELECT g AS id FROM generate_series(1, 42) g")
    backup = db.run(as_postgres + "pgbackrest " + options + " --type=full backup")
    assert backup.rc == 0, backup.stderr + db.run("tail -n 30 %s/log", old).stdout
    db.check_output(as_postgres + "%s -D %s -m fast -w stop", pg_tool(db, "pg_ctl"), old)
    return old


def test_another_stanza_is_restored_into_a_scratch_place_only(db, managed, old_stanza):
    started, copies = psql(db, "SELECT pg_postmaster_start_time()"), kept()
    settings = {"pgbackrest_drill_from_stanza": "chronos", "pgbackrest_drill_keep": True,
                "pgbackrest_drill_database": "postgres", "pgbackrest_drill_query": "SELECT count(*) FROM before_migration"}
    result = run_playbook("playbooks/restore_drill.yml", settings)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "of stanza chronos" in result.stdout
    assert "returned: 42" in result.stdout
    assert "The scratch cluster keeps running" in result.stdout
    connect = re.search(r"The scratch cluster keeps running: (psql .*?) on ", result.stdout).group(1)
    # Production was not touched.
    assert psql(db, "SELECT pg_postmaster_start_time()") == started and kept() == copies
    assert psql(db, "SELECT to_regclass('before_migration') IS NULL") == "t"
    # The next scheduled drill (of chronos-v2, into the same place) leaves the kept one alone, and says why.
    scratch = "%s-pgbackrest-drill" % DB_CONTAINER if CONTAINER_LAYOUT else "/var/lib/postgresql/pgbackrest-drill"
    scheduled = managed.run("%s --stanza %s --log %s drill", PROGRAM, STANZA, CRON_LOG)
    assert scheduled.rc == 3, managed.file(CRON_LOG).content_string[-3000:]
    assert "Restore drill refused: %s was kept by an earlier drill (keep)" % (
        "Container '%s'" % scratch if CONTAINER_LAYOUT else scratch) in managed.file(CRON_LOG).content_string
    drill_metrics = managed.file("%s/pgbackrest_%s_drill.prom" % (METRICS_DIR, STANZA)).content_string
    assert re.search(r'^pgbackrest_drill_exit_code\{stanza="%s"\} 3\.0$' % STANZA, drill_metrics, re.M), drill_metrics
    query = "%s -XAtc 'SELECT count(*) FROM before_migration'" % connect
    kept_cluster = (managed.run("docker exec -u postgres %s %s" % (scratch, query)) if CONTAINER_LAYOUT else
                    db.run("runuser -u postgres -- %s" % query))
    assert kept_cluster.stdout.strip() == "42", kept_cluster.stdout + kept_cluster.stderr
    removed = run_playbook("playbooks/restore_drill.yml", {"pgbackrest_drill_remove": True})
    assert removed.returncode == 0, removed.stdout[-3000:]
    if CONTAINER_LAYOUT:
        assert docker_output("ps", "-a", "--filter", "name=%s-pgbackrest-drill" % DB_CONTAINER, "-q") == ""
    else:
        assert not managed.file("/var/lib/postgresql/pgbackrest-drill").exists


def test_a_failed_recovery_keeps_the_old_data_and_the_printed_rollback_puts_it_back(db):
    insert_batch(db, 30)
    committed = psql(db, "SELECT count(*), sum(id * batch) FROM pitr", "chronos_db")
    time.sleep(2)
    # After the last commit: inside the window pgBackRest reports, yet PostgreSQL finds no commit at or after it
    # and ends recovery with an error.
    target = now_target(db)
    time.sleep(2)
    archive_current_wal(db)
    copies = len(kept())
    result = restore(type="time", target=target)
    assert result.returncode != 0, result.stdout[-3000:]
    assert "recovery ended before configured recovery target was reached" in result.stdout, result.stdout[-3000:]
    printed = re.search(r"To put it back: (ansible-playbook playbooks/rollback.yml -e pgbackrest_restore_kept=(\S+) "
                        r"-e pgbackrest_restore_confirm=true)", result.stdout)
    assert printed, result.stdout[-3000:]
    if CONTAINER_LAYOUT:
        # Recovery ran in a helper container: the container itself never started on it, so no restart policy
        # could make it loop.
        state = docker_output("inspect", "-f", "{{ .State.Status }} {{ .RestartCount }}", DB_CONTAINER)
        assert state.split()[0] == "exited", state
    put_back = restore(type="rollback", kept=printed.group(2))
    assert put_back.returncode == 0, put_back.stdout[-3000:]
    assert_rows(db, committed, put_back)
    assert running_normally(db)
    assert len(kept()) == copies + 1, "the failed restore's data directory is kept too"


# --- decided from the server's own facts (the restores below start from whatever the tests above left) ----------

def test_latest_right_after_a_point_in_time_restore_keeps_what_was_written_since(db):
    """A point-in-time restore undid batch 41; production wrote batch 42 on its new timeline, which has no archived
    segment yet. latest follows the timeline the server is on, not the newest archived segment's."""
    insert_batch(db, 40)
    time.sleep(1)
    target = now_target(db)
    time.sleep(1)
    insert_batch(db, 41)
    archive_current_wal(db)
    undone = restore(type="time", target=target)
    assert undone.returncode == 0, undone.stdout[-3000:]
    assert (rows(db, 40), rows(db, 41)) == (100, 0)
    timeline = int(psql(db, "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"), 16)
    insert_batch(db, 42)
    result = restore(type="latest")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "timeline %d: the running server's" % timeline in result.stdout
    assert (rows(db, 40), rows(db, 41), rows(db, 42)) == (100, 0, 100), result.stdout[-3000:]


def test_the_same_restore_after_the_table_was_dropped_again_brings_it_back(db):
    """DROP, TRUNCATE and DDL move no row counter: the commit in the WAL since the restore ended is what tells."""
    psql(db, "CREATE TABLE dropped_twice AS SELECT g AS id FROM generate_series(1, 7) g", "chronos_db")
    archive_current_wal(db)
    time.sleep(1)
    target = now_target(db)
    time.sleep(1)
    psql(db, "DROP TABLE dropped_twice", "chronos_db")
    archive_current_wal(db)
    first = restore(type="time", target=target)
    assert first.returncode == 0, first.stdout[-3000:]
    assert psql(db, "SELECT count(*) FROM dropped_twice", "chronos_db") == "7"
    psql(db, "DROP TABLE dropped_twice", "chronos_db")     # the faulty migration, once more
    again = restore(type="time", target=target)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "Nothing to do" not in again.stdout
    assert re.search(r"1 transaction committed since \(the first, xid \d+", again.stdout), again.stdout[-3000:]
    assert psql(db, "SELECT count(*) FROM dropped_twice", "chronos_db") == "7"


def test_xid_and_name_targets_before_the_newest_backup_are_exact(db, managed):
    insert_batch(db, 50)
    psql(db, "SELECT pg_create_restore_point('before-batch-51')")
    xid = psql(db, "BEGIN; INSERT INTO pitr SELECT 51, g FROM generate_series(1, 100) g; "
                   "SELECT pg_current_xact_id(); COMMIT;", "chronos_db")
    insert_batch(db, 52)
    archive_current_wal(db)
    # The newest backup now stops after both targets.
    assert run_as_cron(managed, "backup diff").rc == 0
    by_xid = restore(type="xid", target=xid)
    assert by_xid.returncode == 0, by_xid.stdout[-3000:]
    assert "transaction %s, committed at" % xid in by_xid.stdout, by_xid.stdout[-3000:]
    assert (rows(db, 50), rows(db, 51), rows(db, 52)) == (100, 100, 0)
    by_name = restore(type="name", target="before-batch-51")
    assert by_name.returncode == 0, by_name.stdout[-3000:]
    assert "restore point 'before-batch-51' at" in by_name.stdout
    assert (rows(db, 50), rows(db, 51), rows(db, 52)) == (100, 0, 0)


@RELEASE_INDEPENDENT
def test_an_unreachable_restore_point_is_refused_before_anything_stops(db):
    started = psql(db, "SELECT pg_postmaster_start_time()")
    result = restore(type="name", target="never-made")
    assert result.returncode != 0
    assert "The archived WAL holds no restore point named 'never-made'" in result.stdout, result.stdout[-3000:]
    assert psql(db, "SELECT pg_postmaster_start_time()") == started and running_normally(db)


@RELEASE_INDEPENDENT
def test_latest_with_archiving_broken_is_refused_unless_the_loss_is_accepted(db):
    command = psql(db, "SHOW archive_command")
    psql(db, "ALTER SYSTEM SET archive_command = 'false'")
    psql(db, "SELECT pg_reload_conf()")
    try:
        insert_batch(db, 60)
        psql(db, "SELECT pg_switch_wal()")
        started = psql(db, "SELECT pg_postmaster_start_time()")
        refused = restore(type="latest", archive_wait=10)
        assert refused.returncode != 0
        assert "WAL archiving does not reach the repository" in refused.stdout, refused.stdout[-3000:]
        assert "PostgreSQL was not stopped; nothing was changed." in refused.stdout
        assert psql(db, "SELECT pg_postmaster_start_time()") == started and rows(db, 60) == 100
        accepted = restore(type="latest", accept_wal_loss=True)
        assert accepted.returncode == 0, accepted.stdout[-3000:]
        assert rows(db, 60) == 0, "given up, as accepted"
    finally:
        psql(db, "ALTER SYSTEM SET archive_command = '%s'" % command.replace("'", "''"))
        psql(db, "SELECT pg_reload_conf()")


@pytest.fixture
def slow_repository():
    """The S3 endpoint 100 ms away behind a link of 150 kB/s, shared by the restore's processes (4 per CPU: each
    fetches over a connection of its own): a restore of the lab's few MB lasts a minute."""
    s3_lab("latency", "100")
    s3_lab("link", "150000")
    yield
    s3_lab("latency", "0")
    s3_lab("link", "0")


def started_playbook(playbook, settings):
    command = ["ansible-playbook", "-i", inventory(), os.path.join(PROJECT, playbook), "-e", json.dumps(settings)]
    return subprocess.Popen(command, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_holder(managed, text, seconds=120):
    """Until the stanza lock's holder (root's lock file on the managed host) says text."""
    holder = ""
    for dummy in range(seconds * 2):
        holder = managed.run("cat /run/chronos-pgbackrest/%s.lock", STANZA).stdout
        if text in holder:
            return holder
        time.sleep(0.5)
    raise AssertionError("the lock's holder never said %r: %r" % (text, holder))


def wrapper_by_hand(db):
    """The guide's docker exec chronos-db pgbackrest-backup.sh (on a host, the wrapper run as root)."""
    return db.run("%s diff", WRAPPER)


@RELEASE_INDEPENDENT
def test_a_slow_restore_prints_its_progress_until_it_ends_and_holds_off_a_backup_by_hand(
        db, managed, slow_repository):
    insert_batch(db, 70)
    archive_current_wal(db)
    committed = psql(db, "SELECT count(*), sum(id * batch) FROM pitr", "chronos_db")
    before = labels()
    playbook = started_playbook("playbooks/restore.yml", {"pgbackrest_restore_type": "latest",
                                                          "pgbackrest_restore_confirm": True,
                                                          "pgbackrest_restore_progress_every": 3})
    wait_for_holder(managed, "restore the files with pgBackRest")
    by_hand = wrapper_by_hand(db)
    if CONTAINER_LAYOUT:
        # The container is stopped while its data is restored: docker exec itself refuses.
        assert by_hand.rc != 0 and "is not running" in by_hand.stderr, by_hand.stdout + by_hand.stderr
    else:
        assert by_hand.rc == 75, by_hand.stdout + by_hand.stderr
        assert "stanza %s is busy" % STANZA in by_hand.stderr
    output = playbook.communicate(timeout=600)[0]
    result = subprocess.CompletedProcess(playbook.args, playbook.returncode, output, "")
    assert result.returncode == 0, result.stdout[-3000:]
    assert labels() == before
    printed = re.findall(r"Step \d+ of \d+, restore the files with pgBackRest: \d+ of \d+ MiB", result.stdout)
    assert len(printed) >= 3, result.stdout[-3000:]
    assert_rows(db, committed, result)


@RELEASE_INDEPENDENT
def test_a_restore_job_killed_on_the_managed_host_is_noticed_and_the_same_command_finishes_it(db, managed,
                                                                                              slow_repository):
    insert_batch(db, 71)
    archive_current_wal(db)
    committed = psql(db, "SELECT count(*), sum(id * batch) FROM pitr", "chronos_db")
    every = 3
    playbook = started_playbook("playbooks/restore.yml", {"pgbackrest_restore_confirm": True,
                                                          "pgbackrest_restore_progress_every": every})
    for dummy in range(240):
        progress = module("pgbackrest_restore", stanza=STANZA, progress=True).get("progress", "")
        if "restore the files with pgBackRest" in progress:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the restore never reached pgBackRest's step: %s" % progress)
    # As the OOM killer or a reboot would: the job's async wrapper and the module, at once.
    # Only this scenario's: on a Docker host every container's processes are in the process table, the other lane's
    # jobs included. Ours run in the managed host's own process namespace, and are Python itself running the restore
    # module (the async wrapper names it too): the other lane's docker exec commands name those files as well, and
    # molecule's own async jobs (docker_container) run async_wrapper.py in this namespace.
    managed.run("for pid in $(pgrep -f '^[^ ]*python[^ ]* .*AnsiballZ_pgbackrest_restore[.]py'); do "
                "[ \"$(readlink /proc/$pid/ns/pid)\" = \"$(readlink /proc/self/ns/pid)\" ] && kill -9 $pid; done")
    killed = time.time()
    output = playbook.communicate(timeout=120)[0]
    noticed = time.time() - killed
    assert playbook.returncode != 0
    assert "The restore job died on" in output and "Run the same command again" in output, output[-3000:]
    # Two progress intervals, and the few seconds each check costs in Ansible.
    assert noticed <= 2 * every + 15, (noticed, output[-2000:])
    s3_lab("link", "0")
    result = restore(type="latest")
    assert result.returncode == 0, result.stdout[-3000:]
    assert_rows(db, committed, result)
    assert running_normally(db)


@RELEASE_INDEPENDENT
@pytest.mark.skipif(not CONTAINER_LAYOUT, reason="a container's restart policy")
def test_a_crash_looping_container_is_restored_and_gets_its_restart_policy_back(db):
    insert_batch(db, 80)
    archive_current_wal(db)
    committed = psql(db, "SELECT count(*), sum(id * batch) FROM pitr", "chronos_db")
    policy = docker_output("inspect", "-f", "{{ .HostConfig.RestartPolicy.Name }}", DB_CONTAINER)
    docker("update", "--restart=always", DB_CONTAINER)
    try:
        # A setting PostgreSQL refuses at start: every restart fails at once, and Docker tries again and again.
        data = psql(db, "SHOW data_directory")
        db.check_output("runuser -u postgres -- sh -c %s",
                        "echo \"max_connections = 'many'\" >> %s/postgresql.auto.conf" % data)
        # Killed from outside, as the OOM killer does (docker kill counts as stopped by hand: no restart).
        os.kill(int(docker_output("inspect", "-f", "{{ .State.Pid }}", DB_CONTAINER)), signal.SIGKILL)
        for dummy in range(60):
            if docker_output("inspect", "-f", "{{ .State.Status }}", DB_CONTAINER) == "restarting":
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the container does not crash-loop")
        result = restore(type="latest")
        assert result.returncode == 0, result.stdout[-3000:]
        assert docker_output("inspect", "-f", "{{ .State.Status }} {{ .HostConfig.RestartPolicy.Name }}",
                             DB_CONTAINER) == "running always"
        assert_rows(db, committed, result)
    finally:
        docker("update", "--restart=%s" % policy, DB_CONTAINER)


@RELEASE_INDEPENDENT
def test_kept_copies_are_listed_with_size_and_age_and_deleted_only_by_name(db, managed):
    listed = run_playbook("playbooks/prune.yml")
    assert listed.returncode == 0, listed.stdout[-3000:]
    names = kept()
    assert len(names) >= 2
    assert re.search(r"Kept data directories: \S+ \(\d+ MiB, \d+ (min|h) old\)", listed.stdout), listed.stdout[-3000:]
    unknown = run_playbook("playbooks/prune.yml", {"pgbackrest_restore_prune": ["nothing-of-that-name"],
                                                   "pgbackrest_restore_confirm": True})
    assert unknown.returncode != 0 and "No kept data directory nothing-of-that-name" in unknown.stdout
    assert kept() == names
    deleted = run_playbook("playbooks/prune.yml", {"pgbackrest_restore_prune": [names[0]],
                                                   "pgbackrest_restore_confirm": True})
    assert deleted.returncode == 0, deleted.stdout[-3000:]
    assert "Deleted %s." % names[0] in deleted.stdout
    assert kept() == names[1:]
    assert run_as_cron(managed, "metrics").rc == 0
    status = managed.file("%s/pgbackrest_%s_status.prom" % (METRICS_DIR, STANZA)).content_string
    assert re.search(r'pgbackrest_kept_copies\{stanza="%s"\} %d\.0' % (STANZA, len(names) - 1), status), status
