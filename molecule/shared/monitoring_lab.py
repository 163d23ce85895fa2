"""A scenario's monitoring lab: Prometheus's HTTP API, and what Alertmanager delivered to alert-recorder
(lab/images/monitoring). Scenario monitoring declares the container as a platform and scrapes node_exporter on its
database host; the container layouts, whose metrics files are on this machine, start one with started_here(), whose
own node_exporter serves this machine's metrics directory."""

import contextlib
import json
import subprocess
import time
import urllib.parse
import urllib.request

from scenario import METRICS_DIR, NETWORK, PROJECT, SCENARIO, STANZA

CONTAINER = "chronos-monitoring-%s" % SCENARIO
RULES = "%s/templates/prometheus/pgbackrest-alerts.yml" % PROJECT
DASHBOARD = "%s/templates/grafana/pgbackrest.json" % PROJECT
LIBRARY = "/usr/local/lib/chronos-pgbackrest"
# The lab waits this long, at most, for Prometheus to see a change and Alertmanager to deliver it.
DELIVERY_TIMEOUT = 60


class MonitoringLab(object):
    def __init__(self):
        for dummy in range(60):
            try:
                self._get("http://%s:9090/-/ready" % self._address(), raw=True)
                break
            except (OSError, ValueError):
                time.sleep(0.5)
        address = self._address()
        self.prometheus = "http://%s:9090" % address
        self.recorder = "http://%s:9095" % address

    @staticmethod
    def _address():
        return subprocess.check_output(
            ["docker", "inspect", "-f", '{{ (index .NetworkSettings.Networks "%s").IPAddress }}' % NETWORK, CONTAINER],
            text=True).strip()

    @staticmethod
    def _get(url, data=None, raw=False):
        with urllib.request.urlopen(url, data=data, timeout=10) as answer:
            return answer.read() if raw else json.load(answer)

    def api(self, path, **params):
        """Prometheus's answer to GET /api/v1/<path>; asserts it succeeded."""
        answer = self._get("%s/api/v1/%s?%s" % (self.prometheus, path, urllib.parse.urlencode(params, doseq=True)))
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr):
        return self.api("query", query=expr)["result"]

    def format_query(self, expr):
        answer = self._get("%s/api/v1/format_query" % self.prometheus, urllib.parse.urlencode({"query": expr}).encode())
        return answer["data"]

    def alerts(self, *states):
        return [alert for alert in self.api("alerts")["alerts"] if alert["state"] in (states or ("firing",))]

    def firing(self):
        return set(alert["labels"]["alertname"] for alert in self.alerts())

    def deliveries(self):
        """Every notification alert-recorder received, oldest first."""
        return self._get("%s/alerts" % self.recorder)

    def mark(self):
        """A point in the deliveries: delivered() looks only at what came after it."""
        return len(self.deliveries())

    def delivered(self, alertname, status, since, **labels):
        """The alert named alertname (with these labels, when given) that Alertmanager delivered with status 'firing'
        or 'resolved' after the mark since, waiting for it."""
        deadline = time.time() + DELIVERY_TIMEOUT
        while True:
            for record in self.deliveries()[since:]:
                for alert in record["notification"]["alerts"]:
                    if alert["labels"]["alertname"] == alertname and alert["status"] == status and all(
                            alert["labels"].get(name) == value for name, value in labels.items()):
                        return alert
            if time.time() > deadline:
                raise AssertionError("Alertmanager delivered no %s %s %s within %d s. Firing in Prometheus: %s. Delivered "
                                     "since: %s" % (status, alertname, labels, DELIVERY_TIMEOUT, sorted(self.firing()),
                                                    json.dumps(self.deliveries()[since:])[-3000:]))
            time.sleep(0.5)

    def wait_quiet(self):
        """Wait until no alert is firing or pending."""
        deadline = time.time() + DELIVERY_TIMEOUT
        while True:
            active = [(alert["labels"], alert["state"]) for alert in self.alerts("firing", "pending")]
            if not active:
                return
            if time.time() > deadline:
                raise AssertionError("alerts still active after %d s: %s" % (DELIVERY_TIMEOUT, active))
            time.sleep(0.5)


@contextlib.contextmanager
def started_here(alert_for="3s"):
    """The monitoring lab on the scenario's network, its node_exporter serving this machine's metrics directory (the
    container layouts' scheduled jobs run here, on the Docker host); removed after."""
    subprocess.run(["docker", "rm", "-f", CONTAINER], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    subprocess.run(["docker", "run", "-d", "--name", CONTAINER, "--network", NETWORK, "-e", "SCRAPE_TARGETS=",
                    "-e", "TEXTFILE_DIR=/textfile", "-e", "ALERT_FOR=%s" % alert_for,
                    "-v", "%s:/textfile:ro" % METRICS_DIR, "-v", "%s/templates/prometheus:/etc/chronos-monitoring/rules:ro"
                    % PROJECT, "chronos-pgbackrest/monitoring:bookworm"], stdout=subprocess.DEVNULL, check=True)
    try:
        yield MonitoringLab()
    finally:
        subprocess.run(["docker", "rm", "-f", CONTAINER], stdout=subprocess.DEVNULL, check=False)


def write_verify_metrics(host, status, errors, last_run_ago=0):
    """The verify file, written with the collection's own writer as the scheduled verify job is to write it
    (a broken repository on demand, without corrupting the lab's bucket for the scenarios after this one)."""
    script = (
        "import sys, time; sys.path.insert(0, %r)\n"
        "from ansible_collections.chronos.pgbackrest.plugins.module_utils import _metrics\n"
        "end = time.time() - %d\n"
        "_metrics.write_verify(%r, %r, %d, %d, end - 2, end=end)\n"
        % (LIBRARY, last_run_ago, METRICS_DIR, STANZA, status, errors))
    host.check_output("python3 -c %s", script)
