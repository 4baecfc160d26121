"""What the access log costs: a real node's CPU per request of GET /health, driven by wrk,
with ``http.access_log`` off, on with text lines, and on with JSON lines.

GET /health asks no actor, so it is the request the log line weighs most on. Each
configuration is a fresh node (its stderr to a file, as under systemd or a container
runtime); the order alternates per round so noise hits all three alike. Run from the
repo root: ``python -m bench.access_log``; needs wrk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from .common import free_port, table
from .http import WrkResult, process, run_wrk

CONFIGS = {
    "off": [],
    "text": ["--http-access-log", "true"],
    "json": ["--http-access-log", "true", "--log-format", "json"],
}


def one(tmp: str, name: str, round_: int, seconds: int) -> tuple[WrkResult, int]:
    """One node, warmed up for 2 s, then measured: wrk's result and the lines it logged."""
    port = free_port()
    command = [sys.executable, "-m", "caxton_actors", "run", "--node-name", "bench"]
    command += ["--sqlite-path", f"{tmp}/{name}{round_}.db", "--http-bind", f"127.0.0.1:{port}"]
    log = Path(tmp) / f"{name}{round_}.log"
    with process(command + CONFIGS[name], port, log) as node:
        url = f"http://127.0.0.1:{port}/health"
        run_wrk(url, node.pid, seconds=2, threads=2, conns=16)
        result = run_wrk(url, node.pid, seconds=seconds, threads=2, conns=16)
    with log.open() as lines:
        return result, sum(1 for _ in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8, help="duration of each wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get update && apt-get install -y wrk")
    print(f"{os.cpu_count()} cpus; load average {Path('/proc/loadavg').read_text().strip()}")
    runs: dict[str, list[WrkResult]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory(prefix="caxton-bench-") as tmp:
        for round_ in range(args.rounds):
            for name in list(CONFIGS)[:: 1 if round_ % 2 == 0 else -1]:
                result, lines = one(tmp, name, round_, args.seconds)
                runs[name].append(result)
                print(
                    f"round {round_} {name:<4} {result.rps:7,.0f} req/s "
                    f"{result.cpu / result.rps * 1e6:6.1f} µs CPU/req, {lines:,} log lines "
                    f"{result.bad}",
                    flush=True,
                )
    off = statistics.median(r.cpu / r.rps for r in runs["off"])
    rows = []
    for name, results in runs.items():
        per_request = statistics.median(r.cpu / r.rps for r in results)
        rps = statistics.median(r.rps for r in results)
        rows.append(
            [name, f"{rps:,.0f}", f"{per_request * 1e6:.0f} µs", f"{per_request / off:.2f}x"]
        )
    print(table(["access log", "requests/s", "CPU/req", "CPU/req ÷ off"], rows))


if __name__ == "__main__":
    main()
