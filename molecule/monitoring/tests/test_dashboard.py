"""templates/grafana/pgbackrest.json: a Grafana dashboard importable with a Prometheus data source of the user's
choice, whose every query is valid and returns series from the lab's Prometheus."""

import json
import time

import pytest

from monitoring_lab import DASHBOARD, write_verify_metrics
from scenario import STANZA

# Grafana's variables, as Grafana would fill them in for a 7-day view of the lab's stanza.
VARIABLES = {"$stanza": STANZA, "$__rate_interval": "1m", "$__interval": "1m", "$__range": "7d"}
DATA_SOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def load():
    with open(DASHBOARD) as handle:
        return json.load(handle)


def queries():
    return [(panel["title"], target["refId"], target["expr"])
            for panel in load()["panels"] for target in panel.get("targets", [])]


def test_the_dashboard_is_importable_with_any_prometheus():
    dashboard = load()
    assert dashboard["schemaVersion"] >= 38
    assert [(item["name"], item["type"], item["pluginId"]) for item in dashboard["__inputs"]] == \
        [("DS_PROMETHEUS", "datasource", "prometheus")]
    panels = dashboard["panels"]
    assert len(set(panel["id"] for panel in panels)) == len(panels)
    for panel in panels:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"} and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"] == DATA_SOURCE and panel["targets"], panel["title"]
            assert all(target["datasource"] == DATA_SOURCE for target in panel["targets"]), panel["title"]
    (stanza,) = dashboard["templating"]["list"]
    assert stanza["datasource"] == DATA_SOURCE and stanza["name"] == "stanza"


def test_the_stanza_variable_lists_the_lab_stanza(monitoring):
    (variable,) = load()["templating"]["list"]
    assert variable["definition"] == "label_values(pgbackrest_stanza_status, stanza)"
    assert monitoring.api("label/stanza/values", **{"match[]": "pgbackrest_stanza_status"}) == [STANZA]


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
