"""The users' chronos-db as it is (imported by the container scenarios: the official postgres image's layout up to
PostgreSQL 17, and its PostgreSQL 18 layout): PostgreSQL is PID 1 of a container with POSTGRES_USER=prometheus as the
only superuser and no python3, pgbackrest.conf bind-mounted from this machine as a single file, restart policy
unless-stopped; this machine is the Docker host Ansible manages. Provisioning needed no more inventory than the
container's name and the PostgreSQL version."""

import json
import os
import re
import subprocess
import threading
import time

import pytest

from scenario import (CONFIG, CRON_LOG, DB_CONTAINER, METRICS_DIR, NETWORK, PROJECT, RELEASE_INDEPENDENT, SCENARIO, STANZA,
                      assert_no_trace, cron_lines, docker, docker_output, guide_commands, info, labels, module,
                      psql, run_as_cron, run_playbook, secrets, wait_until_ready)

HOST_CONFIG = os.path.join(PROJECT, ".build", "lab", DB_CONTAINER, "pgbackrest.conf")
GUIDE_SECTIONS = ("Backup Automation", "Manual Backup", "Checking Backup Status", "Monitoring and Alerts",
                  "Testing Backups")


class ContainerWatcher(threading.Thread):
    """Records `docker inspect` of every container whose name starts with the scenario's database container, as
    soon as it exists: the collection's helper and drill containers live only seconds."""

    def __init__(self):
        super(ContainerWatcher, self).__init__(daemon=True)
        self.seen = {}
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            names = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}", "--filter", "name=%s" % DB_CONTAINER],
                                   stdout=subprocess.PIPE, text=True, check=False).stdout.split()
            for name in names:
                inspected = subprocess.run(["docker", "inspect", name], stdout=subprocess.PIPE, text=True, check=False)
                if inspected.returncode == 0:
                    self.seen.setdefault(name, []).append(inspected.stdout)
            time.sleep(0.2)


@pytest.fixture(scope="session", autouse=True)
def watcher():
    watching = ContainerWatcher()
    watching.start()
    yield watching
    watching.stopping.set()


def test_postgresql_is_pid_1_in_the_official_layout_with_archiving_on(db):
    assert db.file("/proc/1/cmdline").content_string.split("\0")[0] == "postgres"
    assert db.run("command -v python3").rc != 0, "the official image has no python3"
    assert psql(db, "SELECT count(*) FROM pg_roles WHERE rolname = 'postgres'") == "0", "no postgres role"
    assert psql(db, "SHOW archive_mode") == "on"
    assert "archive-push" in psql(db, "SHOW archive_command")
    assert psql(db, "SELECT failed_count FROM pg_stat_archiver") == "0"
    assert docker_output("inspect", "-f", "{{ .HostConfig.RestartPolicy.Name }}", DB_CONTAINER) == "unless-stopped"


def test_the_config_is_written_in_place_into_the_single_file_bind_mount(db):
    mounts = json.loads(docker_output("inspect", "-f", "{{ json .Mounts }}", DB_CONTAINER))
    assert [mount["Destination"] for mount in mounts if mount["Type"] == "bind"] == [CONFIG]
    on_host = os.stat(HOST_CONFIG)
    assert on_host.st_mode & 0o777 == 0o600, "readable only by root and the container's postgres uid"
    assert (str(on_host.st_uid), str(on_host.st_gid)) == tuple(db.check_output("id -u postgres; id -g postgres").split())
    with open(HOST_CONFIG) as handle:
        content = handle.read()
    assert content == db.file(CONFIG).content_string, "the container sees the file the role wrote"
    assert "pg1-user=prometheus" in content, "the superuser read from the container's POSTGRES_USER"
    assert "pg1-path=%s" % db.check_output("printenv PGDATA") in content


def test_a_second_run_leaves_no_trace(db, managed):
    assert_no_trace(db, managed, [HOST_CONFIG, "/etc/cron.d/pgbackrest-%s" % STANZA, "/usr/local/bin/chronos-pgbackrest",
                                  "/etc/chronos-pgbackrest/%s.json" % STANZA], ["/usr/local/bin/pgbackrest-backup.sh"])


def test_the_guides_commands_work_verbatim(db):
    commands = guide_commands(GUIDE_SECTIONS)
    # cron line, manual diff and full, info, logs, the log file, the grep, \l+, CREATE TABLE, the wrapper, info
    assert len(commands) >= 10, commands
    for command in commands:
        result = subprocess.run(["/bin/sh", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                check=False)
        assert result.returncode == 0, "%s\n%s" % (command, result.stdout[-2000:])
    assert psql(db, "SELECT to_regclass('backup_test') IS NOT NULL", "chronos_db") == "t"
    # The guide's backups ran as root in the container; nothing they left may lock postgres out.
    assert db.check_output("find /tmp/pgbackrest /var/log/pgbackrest /var/spool/pgbackrest -user root") == ""


@pytest.mark.parametrize("kind", ["full", "diff"])
def test_the_cron_lines_run_as_cron_runs_them_make_a_backup_and_its_metrics(managed, kind):
    line = [fields for fields in cron_lines(managed) if fields[6].endswith(" backup")]
    assert len(line) == 1 and line[0][:5] == ["0", "2", "*", "*", "*"] and line[0][5] == "root"
    before = labels()
    logged = os.path.getsize(CRON_LOG) if os.path.exists(CRON_LOG) else 0
    result = run_as_cron(managed, "backup %s" % kind)
    assert result.rc == 0, result.stdout + result.stderr
    new = [backup for backup in info()["backups"] if backup["label"] not in before]
    assert [backup["type"] for backup in new] == [kind]
    with open(CRON_LOG) as handle:
        handle.seek(logged)
        assert "%s: %s backup succeeded" % (STANZA, kind) in handle.read()
    runs = managed.file("%s/pgbackrest_%s_runs.prom" % (METRICS_DIR, STANZA)).content_string
    assert 'pgbackrest_backup_run_exit_code{backup_type="%s",stanza="%s"} 0.0' % (kind, STANZA) in runs


def test_the_metrics_show_the_repository_up_and_the_newest_backups(db, managed):
    metrics = [fields for fields in cron_lines(managed) if fields[6].endswith(" metrics")]
    assert len(metrics) == 1
    assert run_as_cron(managed, "metrics").rc == 0
    status = managed.file("%s/pgbackrest_%s_status.prom" % (METRICS_DIR, STANZA)).content_string
    assert 'pgbackrest_exporter_status{stanza="%s"} 1.0' % STANZA in status
    assert 'pgbackrest_stanza_status{stanza="%s"} 0.0' % STANZA in status
    assert re.search(r'pgbackrest_repo_status\{cipher="aes-256-cbc",repo_key="1",stanza="%s"\} 0\.0' % STANZA, status)
    block_incr = "n"  # the lab's repository is S3, where the defaults leave block incremental off
    for kind in ("full", "diff"):
        age = re.search(r'pgbackrest_backup_since_last_completion_seconds\{backup_type="%s",block_incr="%s",stanza="%s"\} '
                        r'(\S+)' % (kind, block_incr, STANZA), status)
        assert age and float(age.group(1)) < 3600, kind
    assert 'pgbackrest_postgresql_up{stanza="%s"} 1.0' % STANZA in status


@RELEASE_INDEPENDENT
def test_modules_say_when_the_container_is_missing_stopped_or_elsewhere(db):
    missing = module("pgbackrest_info", stanza=STANZA, container="chronos-db-nowhere")
    assert missing["failed"] and "Container 'chronos-db-nowhere' does not exist" in missing["msg"]
    elsewhere = module("pgbackrest_info", stanza=STANZA, environment={"DOCKER_HOST": "tcp://10.9.8.7:2375"})
    assert elsewhere["failed"] and "is on the Docker engine at tcp://10.9.8.7:2375, not on this host" in elsewhere["msg"]
    docker("stop", DB_CONTAINER)
    try:
        stopped = module("pgbackrest_backup", stanza=STANZA, type="full")
        assert stopped["failed"] and "is not running (status: exited)" in stopped["msg"]
        assert "docker start %s" % DB_CONTAINER in stopped["msg"]
    finally:
        docker("start", DB_CONTAINER)
        wait_until_ready(db)


def test_check_mode_plans_a_backup_without_taking_it():
    before = labels()
    result = module("pgbackrest_backup", check=True, stanza=STANZA, type="full")
    assert result["changed"] and "--type=full" in result["executed_commands"][-1]
    assert result["executed_commands"][-1].endswith(" backup")
    assert labels() == before


def test_verify_reads_the_container_and_the_metrics_on_this_host():
    fresh = run_playbook("playbooks/verify.yml")
    assert fresh.returncode == 0, fresh.stdout[-3000:]
    assert re.search(r"Stanza chronos-v2 OK: newest backup \S+ \((full|diff|incr)\)", fresh.stdout)
    assert "last scheduled run" in fresh.stdout and "exit 0" in fresh.stdout
    stale = run_playbook("playbooks/verify.yml", {"pgbackrest_verify_max_age": "1s"})
    assert stale.returncode != 0 and "older than the limit (0h00m)" in stale.stdout, stale.stdout[-3000:]


@pytest.fixture
def bare_container(db):
    """A second container from the same image, its own volume, no configuration mounted: yield its name."""
    name = "%s-bare" % DB_CONTAINER
    image = docker_output("inspect", "-f", "{{ .Config.Image }}", DB_CONTAINER)
    docker("run", "-d", "--name", name, "-e", "POSTGRES_USER=prometheus", "-e", "POSTGRES_PASSWORD=bare", image)
    for dummy in range(60):
        if subprocess.run(["docker", "exec", "-u", "postgres", name, "pg_isready", "-q"], check=False).returncode == 0:
            break
        time.sleep(1)
    yield name
    docker("rm", "-f", "-v", name)


def host_state():
    paths = ["/etc/cron.d/pgbackrest-%s" % STANZA, "/etc/chronos-pgbackrest/%s.json" % STANZA, HOST_CONFIG]
    return [open(path, "rb").read() if os.path.exists(path) else None for path in paths]


@RELEASE_INDEPENDENT
def test_a_container_without_pgbackrest_or_a_mounted_config_is_refused_and_nothing_changes(bare_container):
    before = host_state()
    unmounted = run_playbook(extra_vars={"pgbackrest_container": bare_container})
    assert unmounted.returncode != 0 and unmounted.stdout.count("FAILED!") == 1
    assert "does not mount /etc/pgbackrest/pgbackrest.conf from this host" in unmounted.stdout, unmounted.stdout[-3000:]
    docker("exec", bare_container, "sh", "-c", "rm $(command -v pgbackrest)")
    without = run_playbook(extra_vars={"pgbackrest_container": bare_container})
    assert without.returncode != 0 and without.stdout.count("FAILED!") == 1
    assert "pgBackRest does not run on container '%s'" % bare_container in without.stdout, without.stdout[-3000:]
    assert host_state() == before


def check_no_secret_in_created_containers(watcher):
    """No secret in `docker inspect` of any container the collection created during the scenario (helpers, drills),
    and they were seen, so this check can fail."""
    created = [name for name in watcher.seen if name.startswith(DB_CONTAINER + "-pgbackrest-")]
    assert any(name.endswith("-pgbackrest-helper") for name in created), sorted(watcher.seen)
    assert any(name.endswith("-pgbackrest-drill") for name in created), sorted(watcher.seen)
    for name in created:
        for inspected in watcher.seen[name]:
            for secret in secrets():
                assert secret not in inspected, "a secret in docker inspect %s" % name
    # The users' own container carries POSTGRES_PASSWORD (theirs); pgBackRest's secrets are never put in it.
    for inspected in watcher.seen[DB_CONTAINER]:
        for secret in secrets()[:3]:
            assert secret not in inspected


def recreate_container():
    """`docker compose pull && docker compose up -d`: the container removed and created again from its image, with the
    same volume, mounts and restart policy (scripts/lab.sh up, as molecule's create.yml runs it)."""
    docker("rm", "-f", DB_CONTAINER)
    environment = dict(os.environ, CHRONOS_LAB_DB=DB_CONTAINER, CHRONOS_LAB_S3="chronos-s3-%s" % SCENARIO,
                       CHRONOS_LAB_NETWORK=NETWORK)
    subprocess.run([os.path.join(PROJECT, "scripts", "lab.sh"), "up", SCENARIO], env=environment, check=True,
                   stdout=subprocess.DEVNULL)
