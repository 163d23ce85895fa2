"""The secret sweep: the cipher passphrase, the S3 keys and the database password never appear in a process's
arguments while backups, restores and drills run, in a file other users can read, in the cron log or in the metrics.

Run on the Docker host, which sees every process of every container in its /proc and reaches every container's
files through its merged filesystem, so one sampler covers the managed host, the database container and the short-
lived helper and drill containers alike."""

import json
import os
import subprocess
import threading

from scenario import CRON_LOG, DB_CONTAINER, METRICS_DIR, PROJECT, secrets

# Where a leak would land on a host: configuration, logs, state, scratch, metrics and what the collection installs.
HOST_PLACES = ("/etc", "/var/log", "/var/lib/prometheus", "/var/lib/chronos-pgbackrest", "/var/lib/postgresql",
               "/var/spool", "/run", "/tmp", "/usr/local/bin", "/usr/local/lib/chronos-pgbackrest", "/root", "/home",
               "/srv")
# Read whatever their mode: what the jobs print and publish.
ALWAYS_READ = (CRON_LOG, METRICS_DIR, "/var/log/pgbackrest")
TOO_BIG = 64 * 2 ** 20


class ArgumentWatch(threading.Thread):
    """Every process's command line on this machine, five times a second: those holding a secret, and the pgBackRest
    commands seen (so that a sweep that saw no backup, restore or drill says so instead of passing)."""

    def __init__(self, every=0.2):
        super(ArgumentWatch, self).__init__(daemon=True)
        self.every = every
        self.stopping = threading.Event()
        self.leaks = {}
        self.commands = set()
        self.samples = 0
        self.secrets = [secret.encode() for secret in secrets()]

    def run(self):
        while not self.stopping.wait(self.every):
            self.samples += 1
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open("/proc/%s/cmdline" % pid, "rb") as handle:
                        line = handle.read()
                except OSError:
                    continue
                for secret in self.secrets:
                    if secret in line:
                        self.leaks.setdefault(line.replace(b"\0", b" ").decode("utf-8", "replace")[:300], pid)
                words = line.split(b"\0")
                if words and words[0].endswith(b"pgbackrest"):
                    self.commands.update(word.decode() for word in words[1:] if word in (
                        b"backup", b"restore", b"archive-push", b"archive-get", b"verify", b"info"))
                # The drill's scratch cluster (cluster_name pgbackrest-drill), its postmaster or a backend.
                if b"pgbackrest-drill" in line and (b"postgres" in words[0] or b"pg_ctl" in words[0]):
                    self.commands.add("drill")


def container_root(name):
    """Where a container's files lie on this machine (overlay2's merged directory), or None."""
    done = subprocess.run(["docker", "inspect", "-f", "{{ json .GraphDriver.Data }}", name], stdout=subprocess.PIPE,
                          text=True, check=False)
    if done.returncode != 0:
        return None
    return (json.loads(done.stdout) or {}).get("MergedDir")


def _files_under(path, everything=True):
    """The files under path; without everything, only below directories other users can enter (o+x): the rest, such
    as /root, holds nothing they can read."""
    if os.path.isfile(path) and not os.path.islink(path):
        yield path
        return
    for directory, subdirectories, names in os.walk(path):
        if not everything and not os.lstat(directory).st_mode & 0o001:
            subdirectories[:] = []
            continue
        subdirectories[:] = [name for name in subdirectories if not os.path.islink(os.path.join(directory, name))]
        for name in names:
            yield os.path.join(directory, name)


def readable_by_others(root, path, reachable):
    """Whether a user who is neither the owner nor in the group can read path: the file o+r, and every directory from
    root down to it o+x (reachable caches the directories)."""
    if not os.lstat(path).st_mode & 0o004:
        return False
    directory = os.path.dirname(path)
    chain = []
    while directory not in reachable and len(directory) >= len(root.rstrip("/")):
        chain.append(directory)
        if directory in ("/", root.rstrip("/")):
            break
        directory = os.path.dirname(directory)
    answer = reachable.get(directory, True)
    for directory in reversed(chain):
        answer = answer and bool(os.lstat(directory).st_mode & 0o001)
        reachable[directory] = answer
    return answer


def files_holding_secrets(root="/", places=HOST_PLACES, always=ALWAYS_READ):
    """[(path, why)] of the files under root's places that hold a secret and other users can read, or that the jobs
    print and publish (always) and hold one at all. Returns (found, files read) so that an empty sweep shows."""
    wanted = [secret.encode() for secret in secrets()]
    found, read, reachable = [], 0, {}
    for place in places + always:
        for path in _files_under(os.path.join(root, place.lstrip("/")), everything=place in always):
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if not os.path.isfile(path) or os.path.islink(path) or info.st_size > TOO_BIG:
                continue
            published = any(path.startswith(os.path.join(root, item.lstrip("/"))) for item in always)
            if not (published or readable_by_others(root, path, reachable)):
                continue
            try:
                with open(path, "rb") as handle:
                    content = handle.read()
            except OSError:
                continue
            read += 1
            if any(secret in content for secret in wanted):
                found.append((path, "mode %04o" % (info.st_mode & 0o7777)))
    return found, read


def check_no_secret_leaked(watch, managed_container=None):
    """The sweep: process arguments (sampled for the whole scenario), this machine's files, and the files of the
    database container (and of the managed host, in the host layout)."""
    assert secrets(), "the lab's secrets are not in the environment"
    assert {"backup", "restore", "drill"} <= watch.commands, "the sampler saw %s only" % sorted(watch.commands)
    assert not watch.leaks, "secrets in process arguments: %s" % watch.leaks
    found, read = files_holding_secrets("/")
    # What the container layouts bind-mount from this machine (pgbackrest.conf).
    found += files_holding_secrets(os.path.join(PROJECT, ".build", "lab"), places=("/",), always=())[0]
    for name in {DB_CONTAINER, managed_container} - {None}:
        root = container_root(name)
        assert root and os.path.isdir(root), "no merged directory for %s" % name
        in_container, counted = files_holding_secrets(root)
        found += in_container
        read += counted
    assert read > 100, "the sweep read only %d files" % read
    assert not found, "secrets in files others can read, the cron log or the metrics: %s" % found
