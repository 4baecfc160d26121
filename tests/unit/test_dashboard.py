"""The Grafana dashboard (deploy/grafana/caxton.json): a panel for every metric in
metrics.py, in the Graphite layout the statsd config in deploy/graphite/ writes, and the
shape Grafana's import needs."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest

from bench import panels
from caxton_actors import metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "caxton.json"
STATSD_CONFIG = ROOT / "deploy" / "graphite" / "statsd-config.js"
NAMESPACE = {"counter": "stats.counters", "gauge": "stats.gauges", "timer": "stats.timers"}
STATS = {
    "counter": {"rate", "count"},
    "gauge": {""},
    "timer": {"mean", "upper", "upper_90", "lower", "count", "median", "sum", "count_ps"},
}


def metric_names() -> dict[str, str]:
    """Every metric name in metrics.py, with its kind from the comment beside it."""
    kinds = dict(
        re.findall(r'^[A-Z_]+ = "(caxton_\w+)"\s+# (\w+)', inspect.getsource(metrics), re.M)
    )
    names = {
        value: kinds.get(value, "")
        for name, value in vars(metrics).items()
        if name.isupper() and isinstance(value, str) and value.startswith("caxton_")
    }
    assert len(names) >= 20, names
    return names


def load() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def graph_panels() -> list[dict[str, Any]]:
    return [p for p in load()["panels"] if p["type"] != "row"]


def targets() -> list[str]:
    return [t["target"] for p in graph_panels() for t in p["targets"]]


@pytest.mark.parametrize("name", sorted(metric_names()))
def test_every_metric_has_a_panel_of_its_own(name: str) -> None:
    pattern = re.compile(rf"\.\$node\.{re.escape(name)}(\.|$|,|\))")
    having = [
        p["title"] for p in graph_panels() if any(pattern.search(t["target"]) for t in p["targets"])
    ]
    assert len(having) == 1, f"{name}: in the panels {having}"


@pytest.mark.parametrize("name", sorted(metric_names()))
def test_each_target_reads_the_path_statsd_writes_for_its_kind(name: str) -> None:
    kind = metric_names()[name]
    assert kind in NAMESPACE, f"{name}: say counter, gauge or timer in its comment in metrics.py"
    paths = [
        path
        for target in targets()
        for path in re.findall(r"stats\.[\w$]+\.\$node\.[\w.*]+", target)
        if f".{name}" in path
    ]
    assert paths, name
    for path in paths:
        assert path.startswith(f"{NAMESPACE[kind]}.$node.{name}"), path
        last = path.removeprefix(f"{NAMESPACE[kind]}.$node.{name}").rsplit(".", 1)[-1]
        assert last in STATS[kind] or (kind == "gauge" and last == ""), path


def test_statsd_is_configured_for_the_layout_the_dashboard_reads() -> None:
    config = STATSD_CONFIG.read_text()
    for setting in (
        "legacyNamespace: false",
        'globalPrefix: "stats"',
        'prefixCounter: "counters"',
        'prefixTimer: "timers"',
        'prefixGauge: "gauges"',
        "percentThreshold: [90]",  # upper_90
    ):
        assert setting in config, setting


def test_the_dashboard_has_what_grafana_import_needs() -> None:
    dashboard = load()
    for key in ("title", "uid", "panels", "templating", "schemaVersion", "time"):
        assert key in dashboard, key
    assert isinstance(dashboard["schemaVersion"], int)
    assert dashboard["schemaVersion"] >= 36
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard["uid"])
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(isinstance(i, int) for i in ids)
    for panel in dashboard["panels"]:
        assert {"id", "type", "title", "gridPos"} <= panel.keys(), panel
        grid = panel["gridPos"]
        assert grid.keys() == {"h", "w", "x", "y"}, panel
        assert grid["x"] + grid["w"] <= 24, panel
    for panel in graph_panels():
        assert panel["type"] == "timeseries"
        assert panel["datasource"] == {"type": "graphite", "uid": "${DS_GRAPHITE}"}
        assert panel["targets"]
        assert all({"refId", "target"} <= t.keys() for t in panel["targets"])


def test_no_two_panels_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in load()["panels"]:
        g = panel["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_variables_pick_the_data_source_and_the_nodes() -> None:
    variables = {v["name"]: v for v in load()["templating"]["list"]}
    assert variables["DS_GRAPHITE"]["type"] == "datasource"
    assert variables["DS_GRAPHITE"]["query"] == "graphite"
    node = variables["node"]
    assert node["type"] == "query"
    assert node["multi"]
    assert node["includeAll"]
    assert node["allValue"] == "*"
    assert node["query"] == "stats.gauges.*"
    regex = node["regex"].strip("/")
    assert re.fullmatch(regex, "n0")
    assert not re.fullmatch(regex, "statsd")


def test_targets_are_well_formed_graphite() -> None:
    for target in targets():
        assert "$node" in target, target
        depth = 0
        for char in target:
            depth += {"(": 1, ")": -1}.get(char, 0)
            assert depth >= 0, target
        assert depth == 0, target
        assert target.count("'") % 2 == 0, target


def test_the_committed_json_is_what_bench_panels_writes() -> None:
    assert DASHBOARD.read_text() == panels.dashboard_text(), "run: python -m bench.panels"
