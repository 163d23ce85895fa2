"""Container mode against the guide's layout: PostgreSQL is the main process of chronos-db-container,
pgBackRest is inside it, /etc/pgbackrest is bind-mounted from this machine (the Docker host Ansible
manages), and the host's cron runs the wrapper with docker exec. The tests run in file order: the
provisioned state, the guide's own commands, the cron line, the modules' errors, then a point-in-time
restore."""

import os
import re
import subprocess
import time

import pytest

from conftest import DB_HOST, PROJECT, STANZA, inventory, psql, run_playbook
from conftest import module as scenario_module

CONFIG = "/etc/pgbackrest/pgbackrest.conf"
HOST_CONFIG_DIR = os.path.join(PROJECT, ".build", "lab", DB_HOST, "pgbackrest")
PG_PATH = "/var/lib/postgresql/data"
CRON_FILE = "/etc/cron.d/pgbackrest-%s" % STANZA
CRON_LOG = "/var/log/chronos-backup-cron.log"
GUIDE = os.path.join(PROJECT, "..", "shared", "reference", "postgresql-backup-guide.md")
# The guide's sections whose commands must work as written once site.yml ran (its restore and
# troubleshooting commands are what the restore playbook and the role replace).
GUIDE_SECTIONS = ("Backup Automation", "Checking Backup Status", "Monitoring and Alerts", "Testing Backups")


def shell(command, environment=None):
    return subprocess.run(["/bin/sh", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=False, env=environment)


def module(name, **args):
    """One of the collection's modules on the Docker host, in container mode; its result, failed or not."""
    args.setdefault("container", DB_HOST)
    return scenario_module(name, on="docker-host", become_postgres=False, **args)


def backups():
    result = module("pgbackrest_info", stanza=STANZA)
    assert not result.get("failed"), result.get("msg")
    return result["backups"]


def started_at():
    return subprocess.check_output(["docker", "inspect", "-f", "{{ .State.StartedAt }}", DB_HOST], text=True).strip()


def wait_until_ready(db):
    for dummy in range(60):
        if db.run("runuser -u postgres -- pg_isready -q").rc == 0:
            return
        time.sleep(1)
    raise AssertionError("PostgreSQL did not come back in %s" % DB_HOST)


def guide_commands():
    """The guide's docker commands for chronos-db in GUIDE_SECTIONS, aimed at this scenario's container."""
    with open(GUIDE) as handle:
        text = handle.read()
    commands = []
    for section in re.split(r"^## ", text, flags=re.M):
        if not section.startswith(GUIDE_SECTIONS):
            continue
        for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
            for line in block.splitlines():
                match = re.search(r"(/usr/bin/)?docker (exec|logs) chronos-db .*", line)
                if match:
                    commands.append(match.group(0).replace("chronos-db ", "%s " % DB_HOST, 1))
    return commands


def test_postgresql_is_the_containers_main_process_with_archiving_on(db):
    assert db.file("/proc/1/cmdline").content_string.split("\0")[0].endswith("postgres")
    assert psql(db, "SHOW archive_mode") == "on"
    assert "archive-push" in psql(db, "SHOW archive_command")
    assert psql(db, "SELECT failed_count FROM pg_stat_archiver") == "0"


def test_config_is_written_on_the_host_into_the_bind_mount_0640_postgres(db):
    inside = db.file(CONFIG)
    assert (inside.user, inside.group, inside.mode) == ("postgres", "postgres", 0o640)
    on_host = os.stat(os.path.join(HOST_CONFIG_DIR, "pgbackrest.conf"))
    assert on_host.st_mode & 0o777 == 0o640
    assert str(on_host.st_uid) == db.check_output("id -u postgres")
    with open(os.path.join(HOST_CONFIG_DIR, "pgbackrest.conf")) as handle:
        assert handle.read() == inside.content_string
    assert "pg1-path=%s" % PG_PATH in inside.content_string


def test_the_guides_commands_work_against_the_container(db):
    commands = guide_commands()
    # info, manual diff and full, the logs, \l+, CREATE TABLE, the wrapper, the monitoring grep, the cron line
    assert len(commands) >= 10, commands
    for command in commands:
        result = shell(command)
        assert result.returncode == 0, "%s\n%s" % (command, result.stdout[-2000:])
    assert psql(db, "SELECT to_regclass('backup_test') IS NOT NULL", "chronos_db") == "t"
    # The guide's backups ran as root in the container; nothing they left may lock postgres out.
    assert db.check_output("find /tmp/pgbackrest /var/log/pgbackrest /var/spool/pgbackrest -user root") == ""


@pytest.mark.parametrize("kind", ["full", "diff"])
def test_the_cron_line_run_as_cron_runs_it_makes_a_backup(kind):
    with open(CRON_FILE) as handle:
        lines = [line for line in handle if re.match(r"^[0-9*]", line) and line.split()[5] == "root"
                 and line.rstrip().endswith("pgbackrest-backup.sh %s >> %s 2>&1" % (kind, CRON_LOG))]
    assert len(lines) == 1, lines
    fields = lines[0].split(None, 6)
    assert fields[:2] == ["0", "2"]
    assert fields[6].startswith("/usr/bin/docker exec %s /usr/local/bin/pgbackrest-backup.sh" % DB_HOST)
    before = [backup["label"] for backup in backups()]
    logged = os.path.getsize(CRON_LOG) if os.path.exists(CRON_LOG) else 0
    # cron starts jobs with an empty environment, PATH=/usr/bin:/bin and /bin/sh -c.
    result = shell(fields[6], environment={"PATH": "/usr/bin:/bin", "HOME": "/root", "SHELL": "/bin/sh"})
    assert result.returncode == 0, result.stdout
    new = [backup for backup in backups() if backup["label"] not in before]
    assert [backup["type"] for backup in new] == [kind]
    with open(CRON_LOG) as handle:
        handle.seek(logged)
        assert "backup command end: completed successfully" in handle.read()


def test_modules_say_when_the_container_is_missing_or_stopped(db):
    missing = module("pgbackrest_info", stanza=STANZA, container="chronos-db-nowhere")
    assert missing["failed"] and "Container 'chronos-db-nowhere' does not exist" in missing["msg"]
    subprocess.run(["docker", "stop", DB_HOST], check=True, stdout=subprocess.DEVNULL)
    try:
        stopped = module("pgbackrest_backup", stanza=STANZA, type="full")
        assert stopped["failed"] and "is not running (status: exited)" in stopped["msg"]
        assert "docker start %s" % DB_HOST in stopped["msg"]
    finally:
        subprocess.run(["docker", "start", DB_HOST], check=True, stdout=subprocess.DEVNULL)
        wait_until_ready(db)


def test_check_mode_plans_a_backup_without_taking_it():
    before = backups()
    result = subprocess.run(
        ["ansible", "docker-host", "-i", inventory(), "--check", "-m", "chronos.pgbackrest.pgbackrest_backup",
         "-a", "stanza=%s type=full container=%s" % (STANZA, DB_HOST)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False, cwd=PROJECT)
    assert result.returncode == 0 and "CHANGED" in result.stdout, result.stdout[-2000:]
    assert len(backups()) == len(before)


def test_verify_reads_the_container_and_the_metrics_on_this_host():
    fresh = run_playbook("playbooks/verify.yml")
    assert fresh.returncode == 0, fresh.stdout[-3000:]
    assert re.search(r"Stanza chronos-v2 OK: newest backup \S+ \((full|diff)\)", fresh.stdout)
    # The cron-run backups above wrote their metrics through the bind mount.
    assert "last scheduled run" in fresh.stdout and "exit 0" in fresh.stdout
    stale = run_playbook("playbooks/verify.yml", {"pgbackrest_verify_max_age": "1s"})
    assert stale.returncode != 0 and "older than pgbackrest_verify_max_age (1s)" in stale.stdout, stale.stdout[-3000:]


def test_the_restore_drill_refuses_container_mode():
    result = run_playbook("playbooks/restore_drill.yml")
    assert result.returncode != 0 and "not yet in container mode" in result.stdout, result.stdout[-3000:]


def archive_current_wal(db):
    segment = psql(db, "SELECT pg_walfile_name(pg_switch_wal())")
    for dummy in range(60):
        if psql(db, "SELECT coalesce(last_archived_wal, '') >= '%s' FROM pg_stat_archiver" % segment) == "t":
            return
        time.sleep(1)
    raise AssertionError("WAL segment %s was not archived within 60 s" % segment)


def test_point_in_time_restore_brings_back_a_dropped_table(db):
    psql(db, "CREATE TABLE important AS SELECT g AS id FROM generate_series(1, 1000) g", "chronos_db")
    archive_current_wal(db)
    time.sleep(1)
    target = psql(db, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
    time.sleep(1)
    psql(db, "DROP TABLE important", "chronos_db")
    archive_current_wal(db)
    settings = {"pgbackrest_restore_type": "time", "pgbackrest_restore_target": target}

    plan = run_playbook("playbooks/restore.yml", settings)
    assert plan.returncode == 0 and "Nothing was changed: this was the plan." in plan.stdout, plan.stdout[-3000:]
    assert "stop container %s" % DB_HOST in plan.stdout

    started = started_at()
    result = run_playbook("playbooks/restore.yml", dict(settings, pgbackrest_restore_confirm=True))
    assert result.returncode == 0, result.stdout[-4000:]
    assert "Total (RTO)" in result.stdout
    assert started_at() != started
    assert psql(db, "SELECT count(*) FROM important", "chronos_db") == "1000"
    assert psql(db, "SELECT pg_is_in_recovery()") == "f"
    assert db.file("/proc/1/cmdline").content_string.split("\0")[0].endswith("postgres")
    kept = db.check_output("ls -d %s.pre-restore-*", PG_PATH).split()
    assert len(kept) == 1 and db.file(kept[0] + "/PG_VERSION").exists
    # The new timeline archives into the same stanza.
    archive_current_wal(db)

    again = run_playbook("playbooks/restore.yml", dict(settings, pgbackrest_restore_confirm=True))
    assert again.returncode == 0 and "already reflects this restore" in again.stdout, again.stdout[-3000:]
    # The restored cluster needs nothing from site.yml (pgBackRest's recovery settings stay in postgresql.auto.conf).
    provisioned = run_playbook()
    assert provisioned.returncode == 0 and re.search(r"changed=0 ", provisioned.stdout), provisioned.stdout[-3000:]
