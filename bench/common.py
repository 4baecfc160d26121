"""Small helpers shared by the benchmarks: percentiles, a free port, table printing, a
hub lag sampler, a health check, a cluster started and a JSON request on a kept-open
connection."""

from __future__ import annotations

import http.client
import json
import math
import socket
import time
from collections.abc import Sequence

import gevent

from bench.peers.driver import Driver
from bench.peers.measure import all_alive, wait_for


def sample_lag(lags: list[float], interval: float) -> None:
    """How late the hub wakes a greenlet that sleeps ``interval``, again and again, in
    seconds (a node reads its lag off its actors' alarms: a lone registry actor has none)."""
    while True:
        asked = time.perf_counter()
        gevent.sleep(interval)
        lags.append(time.perf_counter() - asked - interval)


def percentile(samples: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile over every sample (no interpolation, no sampling)."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def us(ns: float) -> str:
    """Nanoseconds shown as microseconds or milliseconds, whichever reads better."""
    if ns >= 1_000_000:
        return f"{ns / 1_000_000:.2f} ms"
    return f"{ns / 1_000:.0f} µs"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table, so results paste straight into BENCHMARKS.md."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def health_answers(port: int) -> bool:
    """Whether a node's ``GET /health`` on 127.0.0.1:``port`` answers 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def start_cluster(driver: Driver, n: int) -> None:
    """Nodes 0 to ``n - 1`` of ``driver``, node 0 the others' seed, until all see all alive."""
    driver.start(0, [])
    wait_for(driver, [0], lambda view: True, timeout=30)  # serf gives up on a seed not up
    for i in range(1, n):
        driver.start(i, [0])
    names = [driver.node_name(i) for i in range(n)]
    reached = wait_for(driver, range(n), all_alive(names), timeout=60)
    if len(reached) < n:
        raise RuntimeError(f"{driver.system}: only {len(reached)} of {n} nodes converged")


def request_json(
    conn: http.client.HTTPConnection, method: str, path: str, body: object = None
) -> object:
    """``body`` sent as JSON on ``conn`` (kept open), the answer's JSON body."""
    data = None if body is None else json.dumps(body)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, data, headers)
    return json.loads(conn.getresponse().read())
