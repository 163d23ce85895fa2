"""Bad input stops site.yml with one clear message and leaves the live configuration alone;
secrets never reach the output."""

import pytest

from conftest import CONFIG, run_playbook, secrets, sha256_of

STRONG_BUT_WRONG = "Kq3vN8xZp2LmR7tY5wB9cD4fG6hJ1sA0eU"


@pytest.mark.parametrize("extra_vars, message", [
    ({"pgbackrest_repo_s3_bucket": ""}, "An S3 repository needs pgbackrest_repo_s3_bucket"),
    ({"pgbackrest_repo_s3_key": ""}, "An S3 repository needs pgbackrest_repo_s3_bucket"),
    ({"pgbackrest_repo_cipher_pass": ""}, "pgbackrest_repo_cipher_pass is missing or weak"),
    ({"pgbackrest_repo_cipher_pass": "a" * 30}, "pgbackrest_repo_cipher_pass is missing or weak"),
    # pgBackRest gives up on an unreachable endpoint after 4 x io-timeout (60 s by default).
    ({"pgbackrest_repo_s3_endpoint": "nowhere.chronos.lab", "pgbackrest_global_options": {"io-timeout": 3}},
     "Check that the repository is reachable"),
    ({"pgbackrest_repo_cipher_pass": STRONG_BUT_WRONG}, "cipher passphrase (repo1-cipher-pass) is probably not"),
], ids=["no bucket", "no key", "no passphrase", "weak passphrase", "unreachable endpoint", "wrong passphrase"])
def test_bad_input_fails_clearly_and_changes_nothing(db, extra_vars, message):
    before = sha256_of(db, CONFIG)
    result = run_playbook(extra_vars=extra_vars)
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-3000:]
    assert result.stdout.count("FAILED!") == 1, "one failure, one message"
    assert sha256_of(db, CONFIG) == before


def test_postgresql_not_running_fails_clearly(db):
    db.check_output("service postgresql stop")
    try:
        result = run_playbook(extra_vars={"postgresql_install": False})
    finally:
        db.check_output("service postgresql start")
    assert result.returncode != 0
    assert "PostgreSQL does not accept connections on port 5432" in result.stdout, result.stdout[-3000:]


def test_secrets_never_in_verbose_output():
    result = run_playbook(verbosity=2)
    assert result.returncode == 0, result.stdout[-3000:]
    assert secrets(), "the lab secrets are not in the environment"
    for secret in secrets():
        assert secret not in result.stdout
