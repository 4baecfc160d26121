"""Registry actor benchmarks: writes, lookups and hub stalls, in-process, no HTTP.

(a) agent registrations/s from many greenlets and from one, with each ask's
    round trip (which includes the batch's commit) as the state-write latency;
(b) lookup by capability and by id with 10,000 and 100,000 agents registered;
(c) the hub's worst stall while many greenlets write.

Targets (Caxton ADR-0017): state write p50 1 ms / p99 10 ms, lookup p50 100 µs / p99 1 ms.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
import pykka

from caxton_actors.actors.registry import (
    CheckDatabase,
    CountAgents,
    GetAgent,
    ListAgents,
    PutAgent,
    RegistryActor,
)
from caxton_actors.engine.registry import RegistryStage
from caxton_actors.metrics import REGISTRY_BATCH_SIZE, REGISTRY_COMMIT_TIME
from caxton_actors.registry.query import Query
from caxton_actors.registry.replica import Limits, Replica

from .common import percentile, sample_lag, table, us

UNLIMITED = Limits(max_agents_per_node=10**9)  # (c) writes past 100,000 agents
CAPABILITIES = 100
PAGE = 100
FILL_CHUNK = 2048  # asks in flight while filling: the actor commits them 512 at a time

Ref = pykka.ActorRef[Any]


class Recorder:
    """A Metrics that keeps the actor's timings (batch size, commit time) for the report."""

    def __init__(self) -> None:
        self.timings: dict[str, list[float]] = defaultdict(list)

    def incr(self, name: str, count: int = 1) -> None:
        pass

    def gauge(self, name: str, value: float) -> None:
        pass

    def timing(self, name: str, ms: float) -> None:
        self.timings[name].append(ms)

    def reset(self) -> None:
        self.timings.clear()

    def batches(self) -> str:
        sizes = self.timings[REGISTRY_BATCH_SIZE]
        commits = self.timings[REGISTRY_COMMIT_TIME]
        if not sizes:
            return "no batches"
        return (
            f"{len(sizes)} batches, mean size {sum(sizes) / len(sizes):.1f}, "
            f"commit (worker apply) p50 {percentile(commits, 50):.2f} ms "
            f"p99 {percentile(commits, 99):.2f} ms"
        )


def agent_id(i: int) -> str:
    return f"agent-{i:07d}"


def capabilities(i: int) -> tuple[str, str]:
    """Two capabilities per agent, spread evenly over CAPABILITIES."""
    return (f"cap-{i % CAPABILITIES}", f"cap-{(i + CAPABILITIES // 2) % CAPABILITIES}")


def put(i: int) -> PutAgent:
    return PutAgent(agent_id(i), capabilities(i))


def timed(into: list[int], call: Callable[..., object], *args: object) -> None:
    """Append how long ``call(*args)`` took, in nanoseconds."""
    started = time.perf_counter_ns()
    call(*args)
    into.append(time.perf_counter_ns() - started)


def write_from(ref: Ref, ids: range, clients: int) -> tuple[list[int], float]:
    """Register ``ids`` from ``clients`` greenlets; return each ask's latency and the seconds."""
    todo = iter(ids)
    latencies: list[int] = []

    def client() -> None:
        for i in todo:
            timed(latencies, ref.ask, put(i))

    started = time.perf_counter()
    gevent.joinall([gevent.spawn(client) for _ in range(clients)], raise_error=True)
    return latencies, time.perf_counter() - started


def fill(ref: Ref, ids: range) -> None:
    """Register ``ids`` fast: many asks in flight, so every transaction is a full batch."""
    for first in range(ids.start, ids.stop, FILL_CHUNK):
        futures = [
            ref.ask(put(i), block=False) for i in range(first, min(first + FILL_CHUNK, ids.stop))
        ]
        for future in futures:
            future.get()


def _stage() -> RegistryStage:
    return RegistryStage(Replica("bench", 60.0, UNLIMITED))


def bench_writes(path: Path, total: int, clients: int) -> None:
    """``total`` writes from ``clients`` greenlets, then fewer from 8 and from 1."""
    stats = Recorder()
    ref = RegistryActor.start(path, _stage(), 3600.0, stats)
    rows: list[list[object]] = []
    next_id = 0
    try:
        fill(ref, range(1_000_000, 1_000_500))  # warm-up: schema, caches, statement cache
        for n_clients, n_writes in ((clients, total), (8, total // 4), (1, total // 10)):
            stats.reset()
            latencies, seconds = write_from(ref, range(next_id, next_id + n_writes), n_clients)
            next_id += n_writes
            sizes = stats.timings[REGISTRY_BATCH_SIZE]
            commits = stats.timings[REGISTRY_COMMIT_TIME]
            rows.append(
                [
                    n_clients,
                    n_writes,
                    f"{n_writes / seconds:,.0f}",
                    us(percentile(latencies, 50)),
                    us(percentile(latencies, 99)),
                    us(max(latencies)),
                    f"{sum(sizes) / len(sizes):.1f}",
                    f"{percentile(commits, 50):.2f} ms",
                ]
            )
    finally:
        ref.stop()
    print("\n## (a) agent registrations straight to the RegistryActor (PutAgent, 2 capabilities)")
    headers = ["greenlets", "writes", "agents/s", "p50", "p99", "max", "batch", "commit p50"]
    print(table(headers, rows))
    print("p50/p99/max: each ask's round trip, including its batch's commit.")
    print("batch: mean requests per transaction; commit p50: the worker's run_batch, per batch.")
    print("target (ADR-0017): state write p50 1 ms, p99 10 ms")


def lookup_rows(ref: Ref, agents: int, lookups: int, rng: random.Random) -> list[list[object]]:
    by_cap: list[int] = []
    by_id: list[int] = []
    count: list[int] = []
    check: list[int] = []
    for _ in range(lookups):
        cap = f"cap-{rng.randrange(CAPABILITIES)}"
        timed(by_cap, ref.ask, ListAgents(Query(capability=cap), None, PAGE))
        timed(by_id, ref.ask, GetAgent(agent_id(rng.randrange(agents))))
        timed(count, ref.ask, CountAgents())
        timed(check, ref.ask, CheckDatabase())

    def row(name: str, samples: list[int]) -> list[object]:
        return [
            f"{agents:,}",
            name,
            len(samples),
            us(percentile(samples, 50)),
            us(percentile(samples, 99)),
            us(max(samples)),
        ]

    return [
        row(f"ask ListAgents(cap, limit={PAGE}) (memory)", by_cap),
        row("ask GetAgent(id) (memory)", by_id),
        row("ask CountAgents() (memory)", count),
        row("ask CheckDatabase() (SELECT 1 on the worker)", check),
    ]


def bench_lookups(path: Path, lookups: int, lag_seconds: float, clients: int) -> None:
    rng = random.Random(17)
    stats = Recorder()
    ref = RegistryActor.start(path, _stage(), 3600.0, stats)
    rows: list[list[object]] = []
    try:
        started = time.perf_counter()
        fill(ref, range(10_000))
        fill_10k = time.perf_counter() - started
        rows += lookup_rows(ref, 10_000, lookups, rng)
        started = time.perf_counter()
        fill(ref, range(10_000, 100_000))
        fill_100k = time.perf_counter() - started
        rows += lookup_rows(ref, 100_000, lookups, rng)
        stats.reset()
        lag = bench_lag(ref, clients, lag_seconds)
        lag_batches = stats.batches()
    finally:
        ref.stop()
    print("\n## (b) lookups, sequential from one greenlet, random capability / id")
    print(
        f"filled 10,000 agents in {fill_10k:.1f} s and 90,000 more in {fill_100k:.1f} s "
        f"({90_000 / fill_100k:,.0f} agents/s with full batches); {PAGE} per page, "
        f"{2 * 100_000 // CAPABILITIES:,} agents per capability at 100k"
    )
    print(table(["agents", "operation", "n", "p50", "p99", "max"], rows))
    print("target (ADR-0017): lookup p50 100 µs, p99 1 ms")
    print(f"\n## (c) hub loop lag while {clients} greenlets write for {lag_seconds:g} s")
    print(lag)
    print(f"batches: {lag_batches}; GIL switch interval {sys.getswitchinterval() * 1000:g} ms")


class GcPauses:
    """Every garbage collection's duration (any thread: a collection holds the GIL)."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = defaultdict(list)
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._started)

    def summary(self) -> str:
        return ", ".join(
            f"gen{gen}: {len(p)} collections, longest {max(p) * 1000:.2f} ms"
            for gen, p in sorted(self.pauses.items())
        )


def bench_lag(ref: Ref, clients: int, seconds: float) -> str:
    lags: list[float] = []
    latencies: list[int] = []
    next_id = iter(range(2_000_000, 100_000_000))
    gc_pauses = GcPauses()

    def client() -> None:
        while time.perf_counter() < deadline:
            timed(latencies, ref.ask, put(next(next_id)))

    sampler = gevent.spawn(sample_lag, lags, 0.005)
    gevent.sleep(1.0)
    idle = [lag * 1000 for lag in lags]
    lags.clear()
    gc.callbacks.append(gc_pauses)
    started = time.perf_counter()
    deadline = started + seconds
    gevent.joinall([gevent.spawn(client) for _ in range(clients)], raise_error=True)
    elapsed = time.perf_counter() - started
    gc.callbacks.remove(gc_pauses)
    sampler.kill()
    busy = [lag * 1000 for lag in lags]

    def row(name: str, ms: list[float], writes: str, p50: str, p99: str) -> list[object]:
        worst = f"{max(ms):.2f} ms"
        lag = [f"{percentile(ms, 50):.2f} ms", f"{percentile(ms, 99):.2f} ms", worst]
        return [name, len(ms), *lag, writes, p50, p99]

    headers = ["phase", "samples", "lag p50", "lag p99", "worst", "writes/s", "write p50", "p99"]
    return "\n".join(
        [
            table(
                headers,
                [
                    row("idle (1 s)", idle, "-", "-", "-"),
                    row(
                        f"{clients} writers",
                        busy,
                        f"{len(latencies) / elapsed:,.0f}",
                        us(percentile(latencies, 50)),
                        us(percentile(latencies, 99)),
                    ),
                ],
            ),
            "(monitor interval 5 ms; lag = how late the monitor greenlet wakes)",
            f"garbage collections while writing: {gc_pauses.summary() or 'none'}",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--writes", type=int, default=20_000, help="agents for (a)")
    parser.add_argument("--clients", type=int, default=64, help="concurrent greenlets")
    parser.add_argument("--lookups", type=int, default=3_000, help="lookups of each kind, per size")
    parser.add_argument("--lag-seconds", type=float, default=10.0, help="duration of (c)")
    parser.add_argument(
        "--switch-interval",
        type=float,
        metavar="MS",
        help="sys.setswitchinterval for this run (Python's default is 5 ms)",
    )
    args = parser.parse_args()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval / 1000)
    root = Path(__file__).resolve().parents[1]
    print(f"reproduce: cd {root} && {sys.executable} -m bench.registry {' '.join(sys.argv[1:])}")
    print(
        f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} cpus, gevent {gevent.__version__}"
    )
    with tempfile.TemporaryDirectory(prefix="caxton-bench-") as tmp:
        bench_writes(Path(tmp) / "writes.db", args.writes, args.clients)
        bench_lookups(Path(tmp) / "lookups.db", args.lookups, args.lag_seconds, args.clients)


if __name__ == "__main__":
    main()
