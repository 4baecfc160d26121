"""The dashboard's panels, one per metric in ``caxton_actors/metrics.py``, and the Grafana
JSON made from them.

One table drives both the Grafana dashboard (``deploy/grafana/caxton.json``) and the PNGs
that ``bench/dashboard.py`` renders through graphite-web, so what the pictures in
``docs/dashboard/`` show is what the dashboard shows.

The Graphite paths are those of the npm ``statsd`` daemon with ``legacyNamespace: false``
(``deploy/graphite/statsd-config.js`` sets it explicitly), each node sending with
``--statsd-prefix <node name>``:

- a gauge:   ``stats.gauges.<node>.<name>``
- a counter: ``stats.counters.<node>.<name>.rate`` (per second) and ``.count`` (per flush)
- a timer:   ``stats.timers.<node>.<name>.mean``, ``.upper``, ``.upper_90``, ``.count``...

so the node is always the third part of a path (``aliasByNode(..., 2)``) and a suffix such
as a route or a reason the fifth (``groupByNode(..., 4, ...)``).

Run: python -m bench.panels [--check]   (writes deploy/grafana/caxton.json, or compares)
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caxton_actors import metrics as m

DASHBOARD_PATH = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "caxton.json"
NODE = "$node"
"""The template variable every target selects nodes with (``*`` when rendering here)."""

DATASOURCE = {"type": "graphite", "uid": "${DS_GRAPHITE}"}
BUILTIN_ANNOTATIONS = {
    "builtIn": 1,
    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
    "enable": True,
    "hide": True,
    "iconColor": "rgba(0, 211, 255, 1)",
    "name": "Annotations & Alerts",
    "type": "dashboard",
}
GAUGE_GAP_MS = 15_000
"""Grafana joins points at most this far apart: a node sends each gauge again every
``metrics.GAUGE_INTERVAL`` (10 s), and statsd keeps it for 12 flushes; a node that stopped
leaves a gap."""


SUMMED_COUNTERS = ("groupByNode(stats.counters.", "groupByNodes(stats.counters.")


@dataclass(frozen=True)
class Panel:
    metric: str  # the name in metrics.py
    title: str
    target: str  # a Graphite expression with $node
    unit: str  # a Grafana unit id
    description: str
    png: str = ""  # the file under docs/dashboard/ this panel is rendered to, if any
    bars: bool = False  # rare events: bars read better than a line

    @property
    def stacked(self) -> bool:
        """Parts of a whole (routes, reasons, kinds summed over the nodes; the nodes' shares
        of rare events): stacked, so the top is the total and equal parts stay visible."""
        return self.bars or self.target.startswith(SUMMED_COUNTERS)

    @property
    def log_scale(self) -> bool:
        """Times: a stalled node's second beside everyone's millisecond."""
        return self.unit == "ms"


def gauge(name: str) -> str:
    return f"aliasByNode(stats.gauges.{NODE}.{name}, 2)"


def rate(name: str) -> str:
    return f"aliasByNode(stats.counters.{NODE}.{name}.rate, 2)"


def rate_by(name: str) -> str:
    """Summed over the nodes, one series per suffix (route, reason, type...)."""
    return f"groupByNode(stats.counters.{NODE}.{name}.*.rate, 4, 'sum')"


def timer(name: str, stat: str) -> str:
    return f"aliasByNode(stats.timers.{NODE}.{name}.{stat}, 2)"


def timer_by(name: str, stat: str) -> str:
    """The worst node's figure, one series per suffix."""
    return f"groupByNode(stats.timers.{NODE}.{name}.*.{stat}, 4, 'max')"


ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    (
        "Gossip",
        (
            Panel(m.GOSSIP_PEERS, "Peers per node", gauge(m.GOSSIP_PEERS), "short",
                  "Members each node sees alive or suspect, itself excluded.",
                  png="gossip-peers.png"),
            Panel(m.GOSSIP_MESSAGES_SENT, "Gossip messages sent", rate(m.GOSSIP_MESSAGES_SENT),
                  "pps", "UDP gossip messages each node sends, per second.",
                  png="gossip-messages-sent.png"),
            Panel(m.GOSSIP_BYTES_SENT, "Gossip bytes sent", rate(m.GOSSIP_BYTES_SENT), "Bps",
                  "Bytes of UDP gossip each node sends, per second."),
            Panel(m.GOSSIP_DROPPED, "Gossip dropped, by reason", rate_by(m.GOSSIP_DROPPED),
                  "pps", "Gossip refused on arrival (malformed, wrong key or label, out of "
                  "bounds...), summed over the nodes.", png="gossip-dropped.png", bars=True),
            Panel(m.GOSSIP_HEALTH_SCORE, "Local health score (Lifeguard)",
                  gauge(m.GOSSIP_HEALTH_SCORE), "short",
                  "0 is best; it rises when this node's probes go unanswered or it must refute "
                  "a suspicion, and its probe timeouts stretch with it.",
                  png="gossip-health-score.png"),
            Panel(m.GOSSIP_PROBE_RTT, "Probe round trip, 90th percentile",
                  timer(m.GOSSIP_PROBE_RTT, "upper_90"), "ms",
                  "Direct and indirect probes' round trips, per statsd flush."),
            Panel(m.GOSSIP_SUSPICIONS, "Suspicions", rate(m.GOSSIP_SUSPICIONS), "ops",
                  "Members each node saw turn suspect.", png="gossip-suspicions.png",
                  bars=True),
            Panel(m.GOSSIP_DEATHS, "Deaths", rate(m.GOSSIP_DEATHS), "ops",
                  "Members each node saw turn dead.", png="gossip-deaths.png", bars=True),
            Panel(m.GOSSIP_REFUTATIONS, "Refutations", rate(m.GOSSIP_REFUTATIONS), "ops",
                  "Suspicions of this node that it refuted.", bars=True),
            Panel(m.GOSSIP_NAME_CONFLICTS, "Name conflicts", rate(m.GOSSIP_NAME_CONFLICTS),
                  "ops", "Another node claiming this node's name: names must be unique.",
                  bars=True),
        ),
    ),
    (
        "Agent registry",
        (
            Panel(m.AGENT_REGISTRY_SIZE, "Registry size per node (the whole cluster's agents)",
                  gauge(m.AGENT_REGISTRY_SIZE), "short",
                  "Agents in each node's copy of the registry: equal lines are a registry "
                  "that has spread.", png="registry-size.png"),
            Panel(m.AGENT_REGISTRY_UNREACHABLE, "Unreachable agents per node",
                  gauge(m.AGENT_REGISTRY_UNREACHABLE), "short",
                  "Agents whose node is dead or left, until it comes back or "
                  "failure_detection_timeout forgets them.", png="registry-unreachable.png"),
            Panel(m.REGISTRY_PULLS, "Registry spread: deltas pulled from peers",
                  rate(m.REGISTRY_PULLS), "ops",
                  "Registry deltas each node asked of a peer whose head was ahead of its copy.",
                  png="registry-pulls.png", bars=True),
            Panel(m.REGISTRY_UPDATES_DROPPED, "Registry updates dropped, by reason",
                  rate_by(m.REGISTRY_UPDATES_DROPPED), "ops",
                  "Registry records refused: unknown_owner, from_future, oversized_answer, "
                  "bad_card, bad_scope.",
                  bars=True),
            Panel(m.WATCHES_DROPPED, "Agent watches dropped as too slow",
                  rate(m.WATCHES_DROPPED), "ops",
                  "Watch streams closed because their client left 1,000 events unread; "
                  "it reconnects with Last-Event-ID.",
                  bars=True),
            Panel(m.REGISTRY_COMMIT_TIME, "Registry commit time, 90th percentile",
                  timer(m.REGISTRY_COMMIT_TIME, "upper_90"), "ms",
                  "One SQLite transaction of the registry's group commit."),
            Panel(m.REGISTRY_BATCH_SIZE, "Registry batch size, largest",
                  timer(m.REGISTRY_BATCH_SIZE, "upper"), "short",
                  "Writes committed in one transaction (a statsd timer used for counts)."),
        ),
    ),
    (
        "HTTP API",
        (
            Panel(m.HTTP_REQUESTS, "HTTP requests by route", rate_by(m.HTTP_REQUESTS),
                  "reqps", "Requests per second, summed over the nodes.",
                  png="http-requests.png"),
            Panel(m.HTTP_REQUEST_TIME, "HTTP latency by route, 90th percentile (worst node)",
                  timer_by(m.HTTP_REQUEST_TIME, "upper_90"), "ms",
                  "From the request's arrival to its response, in the node.",
                  png="http-latency.png"),
            Panel(m.HTTP_RESPONSES, "HTTP responses by status class",
                  rate_by(m.HTTP_RESPONSES), "reqps", "2xx, 4xx, 5xx, summed over the nodes.",
                  png="http-responses.png"),
            Panel(m.HTTP_REFUSED, "HTTP requests refused, by reason", rate_by(m.HTTP_REFUSED),
                  "reqps", "host (unknown Host name), unauthorized, forbidden, content_type.",
                  bars=True),
        ),
    ),
    (
        "Node runtime",
        (
            Panel(m.HUB_LOOP_LAG, "Hub loop lag, worst per flush",
                  timer(m.HUB_LOOP_LAG, "upper"), "ms",
                  "How late the gevent hub ran a timer: anything blocking the node's one "
                  "thread shows here.", png="hub-loop-lag.png"),
            Panel(m.ACTOR_RESTARTS, "Actor restarts, by actor",
                  f"aliasByNode(stats.counters.{NODE}.{m.ACTOR_RESTARTS}.*.rate, 2, 4)", "ops",
                  "An actor that crashed and was restarted by its supervisor.", bars=True),
            Panel(m.CORRELATIONS_EXPIRED, "Correlations expired", rate(m.CORRELATIONS_EXPIRED),
                  "ops", "Correlations whose ttl ran out.", bars=True),
        ),
    ),
    (
        "State tools",
        (
            Panel(m.STATE_CALLS, "State tool calls, by tool type", rate_by(m.STATE_CALLS), "ops",
                  "Calls through agents' state tools, summed over the nodes.",
                  png="state-calls.png"),
            Panel(m.STATE_ERRORS, "State tool errors, by type and kind",
                  f"groupByNodes(stats.counters.{NODE}.{m.STATE_ERRORS}.*.*.rate, 'sum', 4, 5)",
                  "ops", "bad_key, bad_value, unavailable, backend, timeout, busy.",
                  png="state-errors.png", bars=True),
            Panel(m.STATE_CALL_TIME, "State tool call time, 90th percentile (worst node)",
                  timer_by(m.STATE_CALL_TIME, "upper_90"), "ms",
                  "One call, from the node's side, its wait for a thread included."),
        ),
    ),
)  # fmt: skip

PANELS: tuple[Panel, ...] = tuple(panel for _, row in ROWS for panel in row)


def _timeseries(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    custom = {
        "drawStyle": "bars" if panel.bars else "line",
        "lineWidth": 1,
        "fillOpacity": 60 if panel.bars or panel.stacked else 10,
        "showPoints": "never",
        "spanNulls": GAUGE_GAP_MS,
        "axisSoftMin": 0,
        "stacking": {"mode": "normal" if panel.stacked else "none", "group": "A"},
        "scaleDistribution": {"type": "log", "log": 10} if panel.log_scale else {"type": "linear"},
    }
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": panel.title,
        "description": f"{panel.description} ({panel.metric})",
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "targets": [{"refId": "A", "datasource": DATASOURCE, "target": panel.target}],
        "fieldConfig": {"defaults": {"unit": panel.unit, "custom": custom}, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def _panels() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    y = 0
    for title, row in ROWS:
        out.append({
            "id": len(out) + 1,
            "type": "row",
            "title": title,
            "collapsed": False,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
            "panels": [],
        })  # fmt: skip
        y += 1
        for i, panel in enumerate(row):
            out.append(_timeseries(panel, len(out) + 1, 12 * (i % 2), y + 8 * (i // 2)))
        y += 8 * ((len(row) + 1) // 2)
    return out


def _templating() -> dict[str, Any]:
    datasource = {
        "name": "DS_GRAPHITE",
        "label": "Graphite",
        "type": "datasource",
        "query": "graphite",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "options": [],
    }
    node = {
        "name": "node",
        "label": "Node",
        "type": "query",
        "datasource": DATASOURCE,
        "query": "stats.gauges.*",
        "definition": "stats.gauges.*",
        "description": "Each node's --statsd-prefix (its node name); statsd's own gauges "
        "are left out.",
        "regex": "/^(?!statsd$).*/",
        "multi": True,
        "includeAll": True,
        "allValue": "*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "refresh": 2,
        "sort": 1,
        "hide": 0,
        "options": [],
    }
    return {"list": [datasource, node]}


def grafana_dashboard() -> dict[str, Any]:
    return {
        "uid": "caxton-actors",
        "title": "caxton-actors",
        "description": "Every metric in caxton_actors/metrics.py, from statsd through "
        "Graphite; nodes send with --statsd-prefix <node name>.",
        "tags": ["caxton", "statsd", "graphite"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": "now-15m", "to": "now"},
        "refresh": "10s",
        "timezone": "browser",
        "annotations": {"list": [BUILTIN_ANNOTATIONS]},
        "templating": _templating(),
        "panels": _panels(),
        "links": [],
    }


def dashboard_text() -> str:
    return json.dumps(grafana_dashboard(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args()
    text = dashboard_text()
    if args.check:
        if DASHBOARD_PATH.read_text() != text:
            print(f"{DASHBOARD_PATH} is stale: run python -m bench.panels", file=sys.stderr)
            return 1
        return 0
    DASHBOARD_PATH.parent.mkdir(parents=True, exist_ok=True)
    DASHBOARD_PATH.write_text(text)
    print(f"wrote {DASHBOARD_PATH}: {len(PANELS)} panels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
