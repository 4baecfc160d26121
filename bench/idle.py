"""Idle cost: CPU and wake-ups per node of a settled cluster that nobody talks to.

Starts N real nodes with gossip on 127.0.0.1 (``lan`` profile, node 0 the seed), waits
until every node sees all N alive, lets them settle (the join's news stops spreading),
then over ``--seconds`` reads each node's ``/proc/<pid>/task/*/schedstat``: the first
field is CPU time in nanoseconds, the third the number of times a thread was put on a
CPU, that is its wake-ups. All threads count (SQLite's worker thread too).

    python -m bench.idle --nodes 5 --seconds 60
    python -m bench.idle --nodes 5 --seconds 60 --statsd   # metrics on, to a local sink
    python -m bench.idle --source DIR   # DIR/caxton_actors, e.g. an older copy
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import free_port, table

JOIN_DEADLINE = 60.0
POLL = 0.5


def schedstat(pid: int) -> tuple[int, int]:
    """(CPU nanoseconds, times run) so far, summed over every thread of ``pid``."""
    cpu = runs = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "schedstat").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended meanwhile
        cpu += int(fields[0])
        runs += int(fields[2])
    return cpu, runs


def alive_members(port: int) -> int:
    """How many members node at HTTP ``port`` sees alive (0 if it does not answer)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/members")
        members = json.loads(conn.getresponse().read())["members"]
    except (OSError, http.client.HTTPException, ValueError, KeyError):
        return 0
    finally:
        conn.close()
    return sum(m["state"] == "alive" for m in members)


def start_nodes(
    count: int, workdir: str, source: str | None, statsd: str | None
) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    """Spawn ``count`` nodes, node 0 the others' seed; their processes and HTTP ports."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = os.path.abspath(source)
    gossip = [free_port() for _ in range(count)]
    ports = [free_port() for _ in range(count)]
    procs = []
    for i in range(count):
        argv = [
            sys.executable, "-m", "caxton_actors", "run",
            "--node-name", f"idle-{i}",
            "--sqlite-path", os.path.join(workdir, f"idle-{i}.db"),
            "--http-bind", f"127.0.0.1:{ports[i]}",
            "--gossip-enabled", "true",
            "--gossip-profile", "lan",
            "--gossip-bind", f"127.0.0.1:{gossip[i]}",
        ]  # fmt: skip
        if i:
            argv += ["--gossip-seeds", f"127.0.0.1:{gossip[0]}"]
        if statsd is not None:
            argv += ["--statsd", statsd]
        # Run in workdir: the current directory's caxton_actors would come before --source.
        with Path(workdir, f"idle-{i}.log").open("ab") as log:
            procs.append(subprocess.Popen(argv, stdout=log, stderr=log, env=env, cwd=workdir))
    return procs, ports


def settle(procs: Sequence[subprocess.Popen[bytes]], ports: Sequence[int], wait: float) -> None:
    """Until every node sees all nodes alive, then ``wait`` seconds more."""
    deadline = time.monotonic() + JOIN_DEADLINE
    while any(alive_members(port) < len(ports) for port in ports):
        if any(proc.poll() is not None for proc in procs):
            raise SystemExit("a node exited before the cluster formed")
        if time.monotonic() > deadline:
            raise SystemExit(f"the cluster did not form within {JOIN_DEADLINE:g} s")
        time.sleep(POLL)
    time.sleep(wait)


def measure(pids: Sequence[int], seconds: float) -> list[tuple[float, float]]:
    """(CPU %, wake-ups a second) of each pid over ``seconds``."""
    before = [schedstat(pid) for pid in pids]
    start = time.perf_counter()
    time.sleep(seconds)
    after = [schedstat(pid) for pid in pids]
    wall = time.perf_counter() - start
    return [
        (100 * (cpu1 - cpu0) / 1e9 / wall, (runs1 - runs0) / wall)
        for (cpu0, runs0), (cpu1, runs1) in zip(before, after, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=15.0, help="seconds after the join")
    parser.add_argument("--statsd", action="store_true", help="metrics on, to a UDP sink")
    parser.add_argument("--source", metavar="DIR", help="run DIR/caxton_actors with python -m")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as workdir,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink,  # never read: it only binds
    ):
        sink.bind(("127.0.0.1", 0))
        statsd = f"127.0.0.1:{sink.getsockname()[1]}" if args.statsd else None
        procs, ports = start_nodes(args.nodes, workdir, args.source, statsd)
        try:
            settle(procs, ports, args.settle)
            results = measure([proc.pid for proc in procs], args.seconds)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=30)
    rows: list[tuple[object, ...]] = [
        (f"idle-{i}", f"{cpu:.3f}", f"{wakeups:.1f}") for i, (cpu, wakeups) in enumerate(results)
    ]
    cpus, wakes = [cpu for cpu, _ in results], [w for _, w in results]
    rows.append(("median", f"{statistics.median(cpus):.3f}", f"{statistics.median(wakes):.1f}"))
    print(f"{args.nodes} nodes, lan profile, {args.seconds:g} s after settling")
    print(table(("node", "CPU %", "wake-ups/s"), rows))


if __name__ == "__main__":
    main()
