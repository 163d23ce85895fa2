"""Restores against PostgreSQL, pgBackRest and the TLS S3 endpoint. The tests run in file order: refusals
first, then a point-in-time restore, the same again, a named set, and latest after a diff."""

import re
import time

import pytest

from conftest import STANZA, module, psql, run_playbook

PG_PATH = "/var/lib/postgresql/15/main"


def restore(**settings):
    """playbooks/restore.yml with pgbackrest_restore_<key> variables; confirmed unless confirm=False."""
    settings.setdefault("confirm", True)
    return run_playbook("playbooks/restore.yml",
                        {"pgbackrest_restore_%s" % key: value for key, value in settings.items()})


def aside(db):
    return db.check_output("ls -d %s.pre-restore-* 2>/dev/null || true", PG_PATH).split()


def rows(db, batch):
    return int(psql(db, "SELECT count(*) FROM pitr WHERE batch = %d" % batch, "chronos_db"))


def insert_batch(db, batch):
    psql(db, "INSERT INTO pitr SELECT %d, g FROM generate_series(1, 100) g" % batch, "chronos_db")


def utc_now(db):
    return psql(db, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")


def archive_current_wal(db):
    """Switch to a new WAL segment and wait until the one just closed is in the repository."""
    segment = psql(db, "SELECT pg_walfile_name(pg_switch_wal())")
    for dummy in range(60):
        if psql(db, "SELECT coalesce(last_archived_wal, '') >= %s FROM pg_stat_archiver" % ("'%s'" % segment)) == "t":
            return
        time.sleep(1)
    raise AssertionError("WAL segment %s was not archived within 60 s" % segment)


@pytest.fixture(scope="module", autouse=True)
def tables(db):
    psql(db, "CREATE TABLE IF NOT EXISTS pitr (batch int, id int)", "chronos_db")
    psql(db, "CREATE TABLE IF NOT EXISTS important AS SELECT g AS id FROM generate_series(1, 10) g", "chronos_db")


@pytest.mark.parametrize("extra_vars, message", [
    ({"type": "latest", "confirm": False}, "Nothing was changed: this was the plan."),
    ({"type": "time", "target": "2000-01-01 00:00:00+00"}, "is before the recoverable window"),
    ({"type": "time", "target": "2026-11-24 25:61:00+00"}, "is not a valid date and time"),
    ({"type": "time", "target": "yesterday"}, "is not a time with a time zone"),
    ({"type": "set", "set": "20000101-000000F"}, "Backup set '20000101-000000F' is not in stanza chronos-v2"),
], ids=["no confirm", "before the oldest backup", "malformed time", "no time zone", "unknown set"])
def test_refusals_change_nothing(db, extra_vars, message):
    before = psql(db, "SELECT count(*) FROM important", "chronos_db")
    result = restore(**extra_vars)
    assert message in result.stdout, result.stdout[-3000:]
    assert (result.returncode == 0) is (message.startswith("Nothing was changed"))
    assert aside(db) == []
    assert psql(db, "SELECT count(*) FROM important", "chronos_db") == before
    assert psql(db, "SELECT pg_is_in_recovery()") == "f"


def test_module_refuses_while_postgresql_runs(db):
    result = module("pgbackrest_restore", stanza=STANZA, pg_path=PG_PATH, type="latest")
    assert result.get("failed")
    assert "PostgreSQL is running on %s" % PG_PATH in result["msg"]
    assert aside(db) == []


def test_point_in_time_restore_brings_back_exactly_the_rows_before_the_target(db):
    insert_batch(db, 1)
    time.sleep(1)
    target = utc_now(db)
    time.sleep(1)
    insert_batch(db, 2)
    psql(db, "DROP TABLE important", "chronos_db")
    archive_current_wal(db)

    result = restore(type="time", target=target)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Total (RTO):" in result.stdout
    assert (rows(db, 1), rows(db, 2)) == (100, 0)
    assert psql(db, "SELECT count(*) FROM important", "chronos_db") == "10"
    kept = aside(db)
    assert len(kept) == 1 and "The old data directory is kept at %s" % kept[0] in result.stdout
    assert db.file(kept[0] + "/PG_VERSION").exists


def test_the_same_restore_again_changes_nothing(db):
    settings = db.file(PG_PATH + "/postgresql.auto.conf").content_string
    target = [line.split("'")[1] for line in settings.splitlines() if line.startswith("recovery_target_time")][-1]
    result = restore(type="time", target=target)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "already reflects this restore" in result.stdout
    assert len(aside(db)) == 1


def diff_backup_between_batches(db, before, after):
    """Insert batch `before`, take a differential backup, insert batch `after` and archive it; returns the
    backup."""
    insert_batch(db, before)
    backup = module("pgbackrest_backup", stanza=STANZA, type="diff")
    assert not backup.get("failed"), backup.get("msg")
    insert_batch(db, after)
    archive_current_wal(db)
    return backup


def test_restore_of_a_named_set(db):
    backup = diff_backup_between_batches(db, 3, 4)

    result = restore(type="set", set=backup["backup"]["label"])
    assert result.returncode == 0, result.stdout[-3000:]
    assert "from backup set %s" % backup["backup"]["label"] in result.stdout
    assert (rows(db, 3), rows(db, 4)) == (100, 0)
    assert len(aside(db)) == 2


def test_restore_to_latest_after_a_diff_loses_no_committed_row(db):
    diff_backup_between_batches(db, 5, 6)
    committed = psql(db, "SELECT count(*), sum(id * batch) FROM pitr", "chronos_db")

    result = restore(type="latest")
    assert result.returncode == 0, result.stdout[-3000:]
    assert psql(db, "SELECT count(*), sum(id * batch) FROM pitr", "chronos_db") == committed
    assert (rows(db, 5), rows(db, 6)) == (100, 100)


def test_a_failed_restore_keeps_the_old_data_and_the_printed_rollback_works(db):
    insert_batch(db, 7)
    committed = psql(db, "SELECT count(*), sum(id * batch) FROM pitr", "chronos_db")
    time.sleep(2)
    # After the last commit but before the WAL segment holding it is stored: inside the window pgBackRest
    # reports, yet PostgreSQL finds no commit at or after it and stops recovery with an error.
    target = utc_now(db)
    time.sleep(2)
    archive_current_wal(db)

    result = restore(type="time", target=target)
    assert result.returncode != 0
    assert "recovery ended before configured recovery target was reached" in result.stdout, result.stdout[-3000:]
    assert "restore with pgbackrest_restore_type=latest instead" in result.stdout
    kept = aside(db)
    assert len(kept) == 4
    newest = sorted(kept)[-1]
    assert "The old data directory is intact at %s" % newest in result.stdout

    # Put it back with the commands the failure printed.
    printed = re.search(r"To put it back:\s+(service \S+ stop);\s+(mv \S+ \S+);\s+(mv \S+ \S+);\s+(service \S+ start)",
                        result.stdout)
    assert printed, result.stdout[-3000:]
    stop, move_failed, move_back, start = printed.groups()
    db.run(stop)  # PostgreSQL already stopped when recovery failed; the stop is for a restore gone wrong later
    for command in (move_failed, move_back, start):
        db.check_output(command)
    assert psql(db, "SELECT count(*), sum(id * batch) FROM pitr", "chronos_db") == committed
    assert db.file(PG_PATH + ".failed-restore/PG_VERSION").exists


def test_every_old_data_directory_is_still_there(db):
    kept = aside(db)
    assert len(kept) == 3, "three restores kept their old data; the failed one was put back"
    for directory in kept:
        assert db.file(directory + "/PG_VERSION").exists
        assert db.file(directory + "/global/pg_control").exists
