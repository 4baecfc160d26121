"""What running the real actors in the simulator would cost, against modelling hops.

A hop between stages is, in a node, a Pykka ``tell`` to a gevent actor; in the
simulator, a heap event that calls the stage. This times a tell, a simulator event,
and what a real registry actor costs to start (its SQLite file, migrations and
worker thread), which a simulated node running the real actors would pay too.

    python -m bench.hop_cost           # a few seconds
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.event

from bench.common import table
from caxton_actors.actors.registry import RegistryActor
from caxton_actors.engine.messages import Tick
from caxton_actors.engine.registry import RegistryStage
from caxton_actors.metrics import NullMetrics
from caxton_actors.registry.replica import Replica
from caxton_actors.runtime.actor import GeventActor
from caxton_actors.sim.cluster import settled
from caxton_actors.swim.timing import LAN


class _Counter(GeventActor):
    def __init__(self, total: int, done: gevent.event.Event) -> None:
        super().__init__()
        self._left, self._done = total, done

    def on_receive(self, message: Any) -> None:
        self._left -= 1
        if not self._left:
            self._done.set()


def actor_hop_ns(total: int) -> float:
    """Nanoseconds per ``tell`` taken by a gevent actor."""
    done = gevent.event.Event()
    ref = _Counter.start(total, done)
    started = time.perf_counter_ns()
    for _ in range(total):
        ref.tell(Tick())
    done.wait()
    elapsed = time.perf_counter_ns() - started
    ref.stop()
    return elapsed / total


def registry_actor_cost(count: int) -> tuple[float, float]:
    """Milliseconds to start one real registry actor, and MiB of RSS each."""
    with tempfile.TemporaryDirectory() as tmp:
        rss = _rss_mib()
        started = time.perf_counter()
        refs = [
            RegistryActor.start(
                Path(tmp) / f"n{i}.db",
                RegistryStage(Replica(f"n{i}", 60.0)),
                3600.0,
                NullMetrics(),
            )
            for i in range(count)
        ]
        elapsed = time.perf_counter() - started
        grown = _rss_mib() - rss
        for ref in refs:
            ref.stop()
    return elapsed / count * 1000, grown / count


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def sim_event_ns(size: int, seconds: float) -> tuple[float, float]:
    """Nanoseconds per simulator event, and events per node per virtual second."""
    cluster = settled(0, size)
    events_before = cluster.events
    started = time.perf_counter_ns()
    cluster.run_for(seconds)
    elapsed = time.perf_counter_ns() - started
    events = cluster.events - events_before
    return elapsed / events, events / size / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tells", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--actors", type=int, default=100)
    args = parser.parse_args()
    hop = actor_hop_ns(args.tells)
    per_event, rate = sim_event_ns(args.size, 10 * LAN.probe_interval)
    start_ms, mib = registry_actor_cost(args.actors)
    rows = [
        ["Pykka tell to a gevent actor", f"{hop:.0f} ns"],
        [f"simulator event ({args.size} nodes, idle)", f"{per_event:.0f} ns"],
        ["simulator events per node per virtual second", f"{rate:.1f}"],
        [f"start a real registry actor ({args.actors} of them)", f"{start_ms:.1f} ms"],
        ["RSS per real registry actor (SQLite, worker thread)", f"{mib:.2f} MiB"],
    ]
    print(table(["what", "measured"], rows))
    slower = (per_event + hop) / per_event
    print(f"\nA tell per event would make the simulator {slower:.1f}x slower")


if __name__ == "__main__":
    main()
