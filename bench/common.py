"""Small helpers shared by the benchmarks: percentiles, a free port, table printing, a
hub lag sampler, a health check."""

from __future__ import annotations

import http.client
import math
import socket
import time
from collections.abc import Sequence

import gevent


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
