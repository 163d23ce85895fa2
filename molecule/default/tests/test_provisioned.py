"""After site.yml: pgBackRest is configured, archiving, scheduled, and has a full backup in the bucket."""

import re

from conftest import CONFIG, STANZA, bucket_keys, module, psql, run_playbook


def test_config_file_is_private_to_postgres(db):
    config = db.file(CONFIG)
    assert config.user == "postgres"
    assert config.group == "postgres"
    assert config.mode == 0o640
    assert "repo1-cipher-type=aes-256-cbc" in config.content_string
    assert "compress-type=zst" in config.content_string
    assert "repo1-retention-full-type=time" in config.content_string


def test_archiving_is_on_through_pgbackrest(db):
    assert psql(db, "SHOW archive_mode") == "on"
    assert psql(db, "SHOW archive_command") == "pgbackrest --stanza=%s archive-push %%p" % STANZA
    assert psql(db, "SHOW wal_level") in ("replica", "logical")
    archived, failed = psql(db, "SELECT archived_count, failed_count FROM pg_stat_archiver").split("|")
    assert int(archived) > 0
    assert int(failed) == 0


def test_lab_database_as_in_the_guide(db):
    assert psql(db, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'chronos_db'") == "prometheus"


def test_wrapper_and_cron_entries(db):
    wrapper = db.file("/usr/local/bin/pgbackrest-backup.sh")
    assert wrapper.mode == 0o755
    assert wrapper.user == "root"
    cron = db.file("/etc/cron.d/pgbackrest-%s" % STANZA).content_string.splitlines()
    assert "0 2 * * 0 postgres /usr/local/bin/pgbackrest-backup.sh full >/dev/null" in cron
    assert "0 2 * * 1,2,3,4,5,6 postgres /usr/local/bin/pgbackrest-backup.sh diff >/dev/null" in cron


def test_stanza_is_in_the_bucket(s3):
    keys = bucket_keys(s3, "var/lib/pgbackrest/")
    assert "var/lib/pgbackrest/backup/%s/backup.info" % STANZA in keys
    assert "var/lib/pgbackrest/archive/%s/archive.info" % STANZA in keys
    assert any(key.startswith("var/lib/pgbackrest/archive/%s/15-1/" % STANZA) for key in keys), "no WAL archived"


def test_one_full_backup_read_back_through_pgbackrest_info():
    result = module("pgbackrest_info", stanza=STANZA)
    assert result["changed"] is False
    assert result["stanza"]["status"]["code"] == 0
    fulls = [backup for backup in result["backups"] if backup["type"] == "full"]
    assert len(fulls) == 1
    assert fulls[0]["error"] is False
    assert fulls[0]["repo_size"] > 0
    assert result["latest_backup"]["label"] == fulls[0]["label"]


def test_guide_info_command_works_as_root(db):
    # The guide runs `docker exec chronos-db pgbackrest --stanza=chronos-v2 info` as root.
    out = db.check_output("pgbackrest --stanza=%s info", STANZA)
    assert "status: ok" in out
    assert "full backup:" in out


def test_check_mode_reports_a_change_without_making_it(db):
    cron = db.file("/etc/cron.d/pgbackrest-%s" % STANZA).content_string
    unchanged = run_playbook(check=True)
    assert unchanged.returncode == 0, unchanged.stdout[-3000:]
    assert re.search(r"changed=0 ", unchanged.stdout)
    moved = run_playbook(extra_vars={"pgbackrest_schedule_hour": 3}, check=True)
    assert moved.returncode == 0, moved.stdout[-3000:]
    assert re.search(r"changed=[1-9]", moved.stdout)
    assert db.file("/etc/cron.d/pgbackrest-%s" % STANZA).content_string == cron


def test_a_posix_repository_works_end_to_end(db):
    # Last in this file: it moves the host to a posix repository on its own disk.
    result = run_playbook(extra_vars={"pgbackrest_repo_type": "posix", "pgbackrest_repo_path": "/var/lib/pgbackrest-posix"})
    assert result.returncode == 0, result.stdout[-3000:]
    config = db.file(CONFIG).content_string
    assert "repo1-type=posix" in config and "repo1-s3-key" not in config
    assert db.file("/var/lib/pgbackrest-posix/backup/%s/backup.info" % STANZA).exists
    assert db.file("/var/lib/pgbackrest-posix").user == "postgres"
    backups = module("pgbackrest_info", stanza=STANZA)
    assert backups["stanza"]["status"]["code"] == 0
    assert [backup["type"] for backup in backups["backups"]] == ["full"]
