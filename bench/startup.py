"""Start-up cost: CPU and wall time from exec to the first answer of ``GET /health``.

Spawns ``caxton-actors run`` on a free port, polls ``/health`` every 5 ms, and at the moment
it first answers reads the child's CPU time: the sum of every thread's run time in
``/proc/<pid>/task/*/schedstat`` (nanoseconds; ``/proc/<pid>/stat`` counts in 10 ms ticks,
too coarse for this). One node without gossip, and one with gossip on loopback.

    python -m bench.startup --runs 10
    python -m bench.startup --runs 10 --source DIR   # DIR/caxton_actors, e.g. an older copy
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import free_port, health_answers, table

POLL = 0.005
DEADLINE = 30.0


def cpu_seconds(pid: int) -> float:
    """The process's CPU time so far, all its threads, from ``schedstat``."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended meanwhile
    return total / 1e9


def one_run(gossip: bool, workdir: str, source: str | None) -> tuple[float, float]:
    """(CPU seconds, wall seconds) from exec to the first 200 of ``/health``."""
    port = free_port()
    env = dict(os.environ)
    launcher = [str(Path(sys.executable).parent / "caxton-actors")]
    if source is not None:  # the same CLI, from another copy of the package
        launcher = [sys.executable, "-m", "caxton_actors"]
        env["PYTHONPATH"] = os.path.abspath(source)
    command = [
        *launcher,
        "run",
        "--node-name",
        "startup",
        "--sqlite-path",
        os.path.join(workdir, f"node-{port}.db"),
        "--http-bind",
        f"127.0.0.1:{port}",
        "--gossip-enabled",
        "true" if gossip else "false",
    ]
    if gossip:
        command += ["--gossip-bind", f"127.0.0.1:{free_port()}"]
    start = time.perf_counter()
    # In workdir: with ``python -m``, the current directory's caxton_actors comes before --source.
    child = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=workdir
    )
    try:
        while not health_answers(port):
            if child.poll() is not None:
                raise SystemExit(f"caxton-actors exited {child.returncode}: {command}")
            if time.perf_counter() - start > DEADLINE:
                raise SystemExit(f"no /health within {DEADLINE} s")
            time.sleep(POLL)
        wall = time.perf_counter() - start
        cpu = cpu_seconds(child.pid)
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=DEADLINE)
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--source", metavar="DIR", help="run DIR/caxton_actors with python -m")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for gossip in (False, True):
            one_run(gossip, workdir, args.source)  # warm the page cache and the .pyc files
            samples = [one_run(gossip, workdir, args.source) for _ in range(args.runs)]
            cpus = [cpu for cpu, _ in samples]
            walls = [wall for _, wall in samples]
            rows.append(
                (
                    "gossip on loopback" if gossip else "single node, no gossip",
                    args.runs,
                    f"{statistics.median(cpus):.3f} s",
                    f"{min(cpus):.3f} s",
                    f"{statistics.median(walls):.3f} s",
                    f"{min(walls):.3f} s",
                )
            )
    print(table(("node", "runs", "CPU median", "CPU min", "wall median", "wall min"), rows))


if __name__ == "__main__":
    main()
