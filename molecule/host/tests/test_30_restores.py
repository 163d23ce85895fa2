"""Restores on a database host (molecule/shared/restore_tests.py, which the container scenarios run too), and what
only a host has: a symlinked data directory and a pg_wal linked elsewhere."""

from restore_tests import *  # noqa: F401,F403 pylint: disable=wildcard-import,unused-wildcard-import
from restore_tests import insert_batch, kept, restore
from scenario import STANZA, archive_current_wal, module, pg_major, psql


def test_a_symlinked_data_directory_and_a_linked_pg_wal_are_restored_with_their_links(db):
    """The real directory is kept aside and the link stays; pg_wal elsewhere moves aside with it and is restored
    linked again."""
    pg_path = "/var/lib/postgresql/%s/main" % pg_major(db)
    db.check_output("service postgresql stop")
    db.check_output("mkdir -p /srv/pgdata /srv/pgwal && mv %s /srv/pgdata/main && ln -s /srv/pgdata/main %s",
                    pg_path, pg_path)
    db.check_output("mv /srv/pgdata/main/pg_wal /srv/pgwal/main && ln -s /srv/pgwal/main /srv/pgdata/main/pg_wal")
    db.check_output("chown -R postgres:postgres /srv/pgdata /srv/pgwal && service postgresql start")
    # The backup restored from must know the links: take one now.
    backup = module("pgbackrest_backup", stanza=STANZA, type="full")
    assert not backup.get("failed"), backup.get("msg")
    insert_batch(db, 20)
    archive_current_wal(db)
    committed = psql(db, "SELECT count(*), sum(id * batch) FROM pitr", "chronos_db")
    copies = len(kept())

    result = restore(type="latest")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "--link-all" in result.stdout
    assert psql(db, "SELECT count(*), sum(id * batch) FROM pitr", "chronos_db") == committed
    assert db.file(pg_path).is_symlink and db.file(pg_path).linked_to == "/srv/pgdata/main"
    assert db.file("/srv/pgdata/main/pg_wal").is_symlink
    assert db.file("/srv/pgdata/main/pg_wal").linked_to == "/srv/pgwal/main"
    names = kept()
    assert len(names) == copies + 1 and names[-1].startswith("/srv/pgdata/main.pre-restore-")
    # The kept copy is whole: its own pg_wal link follows the renamed WAL directory.
    assert db.file(names[-1] + "/pg_wal").linked_to.startswith("/srv/pgwal/main.pre-restore-")
    assert db.file(db.file(names[-1] + "/pg_wal").linked_to).is_directory
