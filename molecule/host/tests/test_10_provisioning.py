"""After site.yml: pgBackRest is configured, archiving, scheduled, and has a full backup in the bucket; a second run
changes nothing and leaves no trace."""

import re

from scenario import (CONFIG, CRON_FILE, METRICS_DIR, PROGRAM, STANZA, WRAPPER, assert_no_trace, bucket_keys,
                      cron_lines, module, pg_major, pgbackrest_version, psql, run_playbook)


def test_config_file_is_private_to_root_and_postgres(db):
    config = db.file(CONFIG)
    assert (config.user, config.group, config.mode) == ("postgres", "postgres", 0o600)
    assert "repo1-cipher-type=aes-256-cbc" in config.content_string
    assert "repo1-retention-full-type=time" in config.content_string
    assert "pg1-user=postgres" in config.content_string


def test_compression_is_the_fastest_the_build_has_and_says_so(db):
    config = db.file(CONFIG).content_string
    assert re.search(r"^# The fastest compression this pgBackRest was built with \(zst, lz4, gz\)\.$", config, re.M)
    assert re.search(r"^compress-type=zst$", config, re.M)


def test_block_incremental_is_off_for_s3_and_the_file_says_why(db):
    """From S3 a restore fetches a block-incremental file's blocks one request after another (the benchmark's network
    phase): the lab's repository is S3, so the rendered file leaves it off and says why, or why pgBackRest cannot."""
    config = db.file(CONFIG).content_string
    version = pgbackrest_version(db)
    assert not re.search(r"^repo1-block", config, re.M)
    if version >= (2, 46):
        assert "# No block incremental: from S3 a restore fetches a block-incremental file's blocks one request " \
            "after another" in config
    else:
        assert "# No block incremental: it needs pgBackRest 2.46 or later, this is %s." % (
            ".".join(map(str, version))) in config


def test_restores_overlap_the_buckets_round_trips_with_more_processes_than_backups(db):
    """pgBackRest's own answer for the options it runs with (help shows the current value): a restore from S3 waits on
    the network, so it runs 4 processes per CPU (at most 16); backups keep half the CPUs."""
    cpus = int(db.check_output("python3 -c 'import os; print(os.cpu_count())'"))

    def current(command):
        found = re.search(r"^current: (\d+)$", db.check_output(
            "runuser -u postgres -- pgbackrest help %s process-max", command), re.M)
        return int(found.group(1)) if found else None
    assert current("restore") == min(16, 4 * cpus)
    assert current("archive-get") == min(16, 4 * cpus)
    assert current("backup") == max(1, cpus // 2)
    assert current("archive-push") == 2


def test_archiving_is_on_through_pgbackrest(db):
    assert psql(db, "SHOW archive_mode") == "on"
    assert psql(db, "SHOW archive_command") == "pgbackrest --stanza=%s archive-push %%p" % STANZA
    assert psql(db, "SHOW wal_level") in ("replica", "logical")
    archived, failed = psql(db, "SELECT archived_count, failed_count FROM pg_stat_archiver").split("|")
    assert int(archived) > 0
    assert int(failed) == 0


def test_lab_database_as_in_the_guide(db):
    assert psql(db, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'chronos_db'") == "prometheus"


def test_program_wrapper_and_cron_entries(managed):
    assert managed.file(WRAPPER).mode == 0o755 and managed.file(WRAPPER).user == "root"
    assert managed.file(PROGRAM).mode == 0o755
    assert managed.file("/etc/chronos-pgbackrest/%s.json" % STANZA).exists
    lines = [(fields[:6], fields[6]) for fields in cron_lines(managed)]
    # The job opens its log itself (no shell redirection); one backup line, the job takes the day's type.
    job = "%s --stanza %s --log /var/log/chronos-backup-cron.log" % (PROGRAM, STANZA)
    assert (["0", "2", "*", "*", "*", "root"], "%s backup" % job) in lines
    assert (["*/5", "*", "*", "*", "*", "root"], "%s metrics" % job) in lines


def test_the_first_backup_wrote_the_metrics(managed):
    status = managed.file("%s/pgbackrest_%s_status.prom" % (METRICS_DIR, STANZA)).content_string
    assert 'pgbackrest_stanza_status{stanza="%s"} 0.0' % STANZA in status
    assert 'pgbackrest_exporter_status{stanza="%s"} 1.0' % STANZA in status
    runs = managed.file("%s/pgbackrest_%s_runs.prom" % (METRICS_DIR, STANZA)).content_string
    assert 'pgbackrest_backup_run_exit_code{backup_type="full",stanza="%s"} 0.0' % STANZA in runs


def test_stanza_is_in_the_bucket(db, s3):
    keys = bucket_keys(s3, "var/lib/pgbackrest/")
    assert "var/lib/pgbackrest/backup/%s/backup.info" % STANZA in keys
    assert "var/lib/pgbackrest/archive/%s/archive.info" % STANZA in keys
    assert any(key.startswith("var/lib/pgbackrest/archive/%s/%s-1/" % (STANZA, pg_major(db))) for key in keys), \
        "no WAL archived"


def test_one_full_backup_read_back_through_pgbackrest_info(db):
    result = module("pgbackrest_info", stanza=STANZA)
    assert result["changed"] is False
    assert result["stanza"]["status"]["code"] == 0
    fulls = [backup for backup in result["backups"] if backup["type"] == "full"]
    assert len(fulls) == 1
    assert fulls[0]["error"] is False
    assert fulls[0]["repo_delta"] > 0, fulls[0]
    # No block incremental on S3: a repository size, and no block maps (the posix repository below has them).
    assert fulls[0]["repo_size"] >= fulls[0]["repo_delta"] and fulls[0]["repo_size_map"] is None, fulls[0]
    assert result["latest_backup"]["label"] == fulls[0]["label"]


def test_guide_info_command_works_as_root(db):
    # The guide runs `docker exec chronos-db pgbackrest --stanza=chronos-v2 info` as root.
    out = db.check_output("pgbackrest --stanza=%s info", STANZA)
    assert "status: ok" in out
    assert "full backup:" in out


def test_a_second_run_leaves_no_trace(db, managed):
    assert_no_trace(db, managed, [CRON_FILE, PROGRAM, "/etc/chronos-pgbackrest/%s.json" % STANZA], [CONFIG, WRAPPER])


def test_check_mode_reports_a_change_without_making_it(managed):
    cron = managed.file(CRON_FILE).content_string
    unchanged = run_playbook(check=True)
    assert unchanged.returncode == 0, unchanged.stdout[-3000:]
    assert re.search(r"changed=0 ", unchanged.stdout)
    moved = run_playbook(extra_vars={"pgbackrest_schedule_hour": 3}, check=True)
    assert moved.returncode == 0, moved.stdout[-3000:]
    assert re.search(r"changed=[1-9]", moved.stdout)
    assert managed.file(CRON_FILE).content_string == cron


def test_a_posix_repository_works_end_to_end(db):
    # Last in this file: it moves the host to a posix repository on its own disk.
    result = run_playbook(extra_vars={"pgbackrest_repo_type": "posix", "pgbackrest_repo_path": "/var/lib/pgbackrest-posix"})
    assert result.returncode == 0, result.stdout[-3000:]
    config = db.file(CONFIG).content_string
    assert "repo1-type=posix" in config and "repo1-s3-key" not in config
    assert db.file("/var/lib/pgbackrest-posix/backup/%s/backup.info" % STANZA).exists
    backups = module("pgbackrest_info", stanza=STANZA)
    assert backups["stanza"]["status"]["code"] == 0
    assert [backup["type"] for backup in backups["backups"]] == ["full"]
    if pgbackrest_version(db) >= (2, 46):
        # Block incremental on a posix repository: on in the file, and the backup's block maps read back.
        assert re.search(r"^repo1-block=y$", config, re.M), config
        assert backups["backups"][0]["repo_size_map"] > 0 and backups["backups"][0]["repo_size"] is None, backups
    else:
        assert not re.search(r"^repo1-block", config, re.M)
