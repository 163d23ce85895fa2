"""templates/grafana/pgbackrest.json: a Grafana dashboard for a fleet - the Prometheus data source a variable (so
file and API provisioning need no input), the hosts one too (hosts sharing a stanza name stay apart) - whose every
query is valid and returns series from the lab's Prometheus."""

import json
import time

import pytest

from monitoring_lab import DASHBOARD, write_verify_metrics
from scenario import STANZA

# Grafana's variables, as Grafana would fill them in for a 7-day view of the lab's stanza.
VARIABLES = {"$stanza": STANZA, "$instance": ".+", "$__rate_interval": "1m", "$__interval": "1m", "$__range": "7d"}
DATA_SOURCE = {"type": "prometheus", "uid": "${datasource}"}


def load():
    with open(DASHBOARD) as handle:
        return json.load(handle)


def queries():
    return [(panel["title"], target["refId"], target["expr"])
            for panel in load()["panels"] for target in panel.get("targets", [])]


def variables():
    return dict((variable["name"], variable) for variable in load()["templating"]["list"])


def test_the_dashboard_is_importable_with_any_prometheus():
    dashboard = load()
    assert dashboard["schemaVersion"] >= 38
    # No import input: provisioned from a file or through the API, the data source is a variable with a default.
    assert "__inputs" not in dashboard and "DS_PROMETHEUS" not in json.dumps(dashboard)
    assert (variables()["datasource"]["type"], variables()["datasource"]["query"]) == ("datasource", "prometheus")
    panels = dashboard["panels"]
    assert len(set(panel["id"] for panel in panels)) == len(panels)
    for panel in panels:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"} and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"] == DATA_SOURCE and panel["targets"], panel["title"]
            assert all(target["datasource"] == DATA_SOURCE for target in panel["targets"]), panel["title"]
    assert [variable["name"] for variable in dashboard["templating"]["list"]] == ["datasource", "stanza", "instance"]
    assert variables()["stanza"]["datasource"] == DATA_SOURCE == variables()["instance"]["datasource"]
    # Every query keeps hosts apart: filtered by the host variable, and no sum or max across hosts.
    for title, ref, expr in queries():
        assert 'instance=~"$instance"' in expr, (title, ref)
        assert "by (stanza" not in expr, (title, ref)


def test_the_stanza_and_host_variables_list_the_lab(monitoring):
    assert variables()["stanza"]["definition"] == "label_values(pgbackrest_stanza_status, stanza)"
    assert monitoring.api("label/stanza/values", **{"match[]": "pgbackrest_stanza_status"}) == [STANZA]
    assert variables()["instance"]["definition"] == 'label_values(pgbackrest_stanza_status{stanza=~"$stanza"}, instance)'
    hosts = monitoring.api("label/instance/values", **{"match[]": 'pgbackrest_stanza_status{stanza="%s"}' % STANZA})
    assert len(hosts) == 1, hosts


@pytest.fixture(scope="module")
def verified(db, monitoring):
    """The verify file, until the scheduled verify job writes it."""
    write_verify_metrics(db, status=0, errors=0)
    for dummy in range(20):
        if monitoring.query("pgbackrest_verify_status"):
            return
        time.sleep(0.5)


@pytest.mark.parametrize("title, ref, expr", queries())
def test_every_query_returns_series(monitoring, verified, title, ref, expr):
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, "a variable the test does not fill in: %s" % expr
    assert monitoring.query(expr), "no series for %s (%s): %s" % (title, ref, expr)
