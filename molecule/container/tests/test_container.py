"""The users' chronos-db in its official layouts (molecule/shared/container_tests.py), and the restores every layout
gets (molecule/shared/restore_tests.py); the scenarios container, container18 and container-trixie run this file.
Scenario container also rides out a repository outage (molecule/shared/archiving_tests.py), last, so that the outage
reaches no other test."""

import os

from container_tests import *  # noqa: F401,F403 pylint: disable=wildcard-import,unused-wildcard-import
from container_tests import check_no_secret_in_created_containers
from restore_tests import *  # noqa: F401,F403 pylint: disable=wildcard-import,unused-wildcard-import
from container_tests import recreate_container
from secret_sweep import check_no_secret_leaked
from scenario import (CRON_LOG, DB_CONTAINER, SCENARIO, WRAPPER, archive_current_wal, labels, psql, run_as_cron,
                      wait_until_ready)


def test_no_secret_is_in_the_configuration_of_any_container_the_collection_created(watcher):
    check_no_secret_in_created_containers(watcher)


def test_a_recreated_container_goes_on_backing_up_and_archiving_without_site_yml(db, managed):
    psql(db, "CREATE TABLE IF NOT EXISTS recreated (id int)", "chronos_db")
    psql(db, "INSERT INTO recreated VALUES (1)", "chronos_db")
    before = labels()
    logged = os.path.getsize(CRON_LOG) if os.path.exists(CRON_LOG) else 0
    recreate_container()
    wait_until_ready(db)
    assert psql(db, "SELECT count(*) FROM recreated", "chronos_db") == "1", "the data volume came along"
    assert db.run("test -e %s" % WRAPPER).rc != 0, "what was copied into the old container is gone"
    result = run_as_cron(managed, "backup diff")
    with open(CRON_LOG) as handle:
        handle.seek(logged)
        log = handle.read()
    assert result.rc == 0, log
    assert "put back %s on container '%s'" % (WRAPPER, DB_CONTAINER) in log
    assert len(labels()) == len(before) + 1
    # Archiving goes on: the repository's CA file is back too.
    archive_current_wal(db)
    assert psql(db, "SELECT last_failed_wal IS NULL OR last_archived_time > last_failed_time FROM pg_stat_archiver") == "t"


if SCENARIO == "container":
    from archiving_tests import *  # noqa: F401,F403 pylint: disable=wildcard-import,unused-wildcard-import


def test_no_secret_leaked_into_process_arguments_readable_files_the_cron_log_or_the_metrics(argument_watch):
    check_no_secret_leaked(argument_watch)
