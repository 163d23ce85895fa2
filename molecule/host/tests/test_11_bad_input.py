"""Bad input stops site.yml with one clear message and leaves the live configuration alone; secrets never reach
the output."""

import pytest

from scenario import CONFIG, CRON_FILE, RELEASE_INDEPENDENT, run_playbook, secrets, sha256_of

STRONG_BUT_WRONG = "Kq3vN8xZp2LmR7tY5wB9cD4fG6hJ1sA0eU"


@pytest.mark.parametrize("extra_vars, message", [
    pytest.param({"pgbackrest_repo_s3_bucket": ""}, "An S3 repository needs pgbackrest_repo_s3_bucket", marks=RELEASE_INDEPENDENT),
    pytest.param({"pgbackrest_repo_s3_key": ""}, "An S3 repository needs pgbackrest_repo_s3_bucket", marks=RELEASE_INDEPENDENT),
    pytest.param({"pgbackrest_repo_cipher_pass": ""}, "pgbackrest_repo_cipher_pass is missing or weak", marks=RELEASE_INDEPENDENT),
    pytest.param({"pgbackrest_repo_cipher_pass": "a" * 30}, "pgbackrest_repo_cipher_pass is missing or weak", marks=RELEASE_INDEPENDENT),
    # pgBackRest gives up on an unreachable endpoint after 4 x io-timeout (60 s by default).
    ({"pgbackrest_repo_s3_endpoint": "nowhere.chronos.lab", "pgbackrest_global_options": {"io-timeout": 3}},
     "Check that the repository is reachable"),
    ({"pgbackrest_repo_cipher_pass": STRONG_BUT_WRONG}, "cipher passphrase (repo1-cipher-pass) is probably not"),
    pytest.param({"pgbackrest_schedule_hour": 24}, "Invalid schedule: pgbackrest_schedule_hour must be 0 to 23 (got 24)",
                 marks=RELEASE_INDEPENDENT),
    pytest.param({"pgbackrest_schedule_minute": 60, "pgbackrest_drill_schedule_weekday": 7},
                 "Invalid schedule: pgbackrest_schedule_minute must be 0 to 59 (got 60); pgbackrest_drill_schedule_weekday "
                 "must be 0 to 6 (got 7)", marks=RELEASE_INDEPENDENT),
    ({"pgbackrest_pg_path": "/var/lib/postgresql/other"}, "is not the data directory PostgreSQL runs with"),
    ({"pgbackrest_pg_version": "16"}, "The inventory says PostgreSQL 16 (pgbackrest_pg_version), but this host runs "
                                      "PostgreSQL 1"),
], ids=["no bucket", "no key", "no passphrase", "weak passphrase", "unreachable endpoint", "wrong passphrase",
        "hour 24", "minute 60", "wrong data directory", "wrong version"])
def test_bad_input_fails_clearly_and_changes_nothing(db, managed, extra_vars, message):
    before = sha256_of(db, CONFIG), sha256_of(managed, CRON_FILE)
    result = run_playbook(extra_vars=extra_vars)
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-3000:]
    assert result.stdout.count("FAILED!") == 1, "one failure, one message"
    assert (sha256_of(db, CONFIG), sha256_of(managed, CRON_FILE)) == before
    assert not db.file(CONFIG + ".candidate").exists


def test_postgresql_not_running_fails_clearly(db):
    db.check_output("service postgresql stop")
    try:
        result = run_playbook(extra_vars={"postgresql_install": False})
    finally:
        db.check_output("service postgresql start")
    assert result.returncode != 0
    assert "PostgreSQL does not accept connections on this host (socket directory /var/run/postgresql, port 5432)" \
        in result.stdout, result.stdout[-3000:]


def test_a_stanza_name_with_a_dot_gets_a_cron_file_cron_reads(managed):
    result = run_playbook(extra_vars={"pgbackrest_stanza": "chronos.v3"}, tags="pgbackrest_schedule")
    assert result.returncode == 0, result.stdout[-3000:]
    try:
        # Debian's cron skips files in /etc/cron.d whose names hold a dot.
        assert managed.file("/etc/cron.d/pgbackrest-chronos_v3").exists
        assert "--stanza chronos.v3 --log /var/log/chronos-backup-cron.log backup\n" in managed.file("/etc/cron.d/pgbackrest-chronos_v3").content_string
        assert not managed.file("/etc/cron.d/pgbackrest-chronos.v3").exists
    finally:
        managed.run("rm -f /etc/cron.d/pgbackrest-chronos_v3 /etc/chronos-pgbackrest/chronos.v3.json")
        # The wrapper on the target is the stanza's: put chronos-v2's back.
        assert run_playbook(tags="pgbackrest_schedule").returncode == 0


def test_secrets_never_in_verbose_output():
    result = run_playbook(verbosity=2)
    assert result.returncode == 0, result.stdout[-3000:]
    assert secrets(), "the lab secrets are not in the environment"
    for secret in secrets():
        assert secret not in result.stdout
