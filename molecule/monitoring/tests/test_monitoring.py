"""The metrics files the scheduled jobs write, and playbooks/verify.yml on a healthy host."""

import os
import re
import subprocess

import pytest

from scenario import METRICS_DIR, PROJECT, STANZA, run_as_cron, run_playbook

PROMTOOL = os.path.join(PROJECT, ".build", "prometheus", "usr", "bin", "promtool")


@pytest.mark.parametrize("kind", [
    "status",
    "runs",
])
def test_a_metrics_file_passes_promtool_and_node_exporter_can_read_it(db, kind):
    result = run_as_cron(db, "metrics")
    assert result.rc == 0, result.stdout + result.stderr
    published = db.file("%s/pgbackrest_%s_%s.prom" % (METRICS_DIR, STANZA, kind))
    # node_exporter runs as prometheus.
    assert (published.user, published.mode) == ("root", 0o644)
    checked = subprocess.run([PROMTOOL, "check", "metrics"], input=published.content_string, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    assert checked.returncode == 0, checked.stdout


def test_files_are_replaced_whole(db):
    """prometheus_client writes beside the file and renames it over: nothing else is left in the directory."""
    assert run_as_cron(db, "metrics").rc == 0
    assert db.check_output("find %s -type f ! -name '*.prom'", METRICS_DIR) == ""


def test_verify_passes_quietly_on_a_healthy_host():
    result = run_playbook("playbooks/verify.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"changed=0 ", result.stdout)


def test_verify_fails_as_stale_with_a_tiny_age_limit():
    result = run_playbook("playbooks/verify.yml", {"pgbackrest_verify_max_age": "1s"})
    assert result.returncode != 0
    assert result.stdout.count("FAILED!") == 1
    assert "older than" in result.stdout, result.stdout[-3000:]
