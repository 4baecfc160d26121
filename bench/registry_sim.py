"""The replicated registry in the simulator: spread latency, partition repair, bytes.

The real core (SWIM, replica, heads, pulls) in virtual time, with every packet
encoded by the real codec to count bytes (full-state exchanges and pulls, TCP on
real nodes, included). LAN timing, a lossless network unless said otherwise.

(a) registration to visible everywhere: a steady load of registrations at random
    nodes; for each, when the last other node could answer for it (checked every
    20 ms of virtual time): p50 and p99, at N = 5, 10, 20;
(b) partition: 10 nodes holding 10,000 agents split in two for 30 s, both sides
    registering; after the heal, the time until every node's digest is the same;
(c) bytes per node per second, 10 nodes, with 0 and with 10,000 agents at rest,
    and with 10,000 agents under churn (re-registrations): the cost follows the
    changes, not the registry's size.

Run: python -m bench.registry_sim [--seeds 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys

from caxton_actors.sim.cluster import Cluster, settled

from .common import table

CHECK = 0.02  # virtual seconds between visibility checks


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def spread(seed: int, size: int, rate: float, seconds: float) -> list[float]:
    """Seconds from each registration until every other node answers for it."""
    cluster = settled(seed, size)
    cluster.run_for(5.0)
    rng = random.Random(seed)
    pending: dict[str, tuple[float, str]] = {}
    latencies: list[float] = []
    next_at, serial, end = cluster.now, 0, cluster.now + seconds
    while cluster.now < end or pending:
        if cluster.now >= next_at and cluster.now < end:
            owner = rng.choice(cluster.live)
            agent = f"a{serial}"
            serial += 1
            cluster.register(owner, agent, ("work",))
            pending[agent] = (cluster.now, owner)
            next_at += rng.expovariate(rate)
        cluster.run_for(CHECK)
        for agent, (at, owner) in list(pending.items()):
            if all(cluster.node(n).registry.replica.get(agent) for n in cluster.live if n != owner):
                latencies.append(cluster.now - at)
                del pending[agent]
        if cluster.now > end + 60:
            raise RuntimeError(f"{len(pending)} registrations never reached every node")
    return latencies


def _filled(seed: int, size: int, agents: int, count_bytes: bool = False) -> Cluster:
    cluster = settled(seed, size, count_bytes=count_bytes)
    for i in range(agents):
        cluster.register(cluster.live[i % size], f"a{i:05d}", (f"cap{i % 16}",))
    cluster.run_for(30.0)
    assert cluster.registries_agree(), "the registry did not converge before the measurement"
    return cluster


def partition_repair(seed: int) -> float:
    cluster = _filled(seed, 10, 10_000)
    names = cluster.live
    left, right = names[:5], names[5:]
    cluster.partition(left, right)
    for i in range(200):
        cluster.register((left if i % 2 else right)[i % 5], f"p{i}", ("split",))
        cluster.run_for(0.15)
    healed = cluster.now
    cluster.heal()
    while not cluster.registries_agree():
        cluster.run_for(CHECK)
        if cluster.now - healed > 120:
            raise RuntimeError("no convergence within 120 s of the heal")
    return cluster.now - healed


def bytes_per_node_second(seed: int, agents: int, churn_rate: float, seconds: float) -> float:
    cluster = _filled(seed, 10, agents, count_bytes=True)
    rng = random.Random(seed)
    before = cluster.bytes_sent.total()
    start = cluster.now
    next_at = start
    while cluster.now < start + seconds:
        if churn_rate and cluster.now >= next_at:
            i = rng.randrange(agents)
            cluster.register(cluster.live[i % 10], f"a{i:05d}", (f"cap{rng.randrange(16)}",))
            next_at += rng.expovariate(churn_rate)
        cluster.run_for(0.05)
    return (cluster.bytes_sent.total() - before) / 10 / seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"reproduce: {sys.executable} -m bench.registry_sim {' '.join(argv or sys.argv[1:])}")
    rows = []
    for size in (5, 10, 20):
        lat = [x for seed in range(args.seeds) for x in spread(seed, size, 10.0, 30.0)]
        rows.append(
            [
                str(size),
                str(len(lat)),
                f"{statistics.median(lat):.2f} s",
                f"{_percentile(lat, 0.99):.2f} s",
                f"{max(lat):.2f} s",
            ]
        )
    print("\n(a) registration to visible at every node, 10 registrations/s for 30 s")
    print(table(["N", "registrations", "p50", "p99", "max"], rows))

    repairs = [partition_repair(seed) for seed in range(args.seeds)]
    print("\n(b) 10 nodes, 10,000 agents, 30 s partition, 200 registrations: heal to one digest")
    print(", ".join(f"{r:.2f} s" for r in repairs), f"(median {statistics.median(repairs):.2f} s)")

    print("\n(c) bytes sent per node per second, 10 nodes, 60 s")
    cases = [("0 agents, at rest", 0, 0.0), ("10,000 agents, at rest", 10_000, 0.0)]
    cases.append(("10,000 agents, 10 re-registrations/s", 10_000, 10.0))
    rows = []
    for label, agents, churn in cases:
        values = [bytes_per_node_second(seed, agents, churn, 60.0) for seed in range(args.seeds)]
        rows.append([label, f"{statistics.median(values):,.0f} B/s"])
    print(table(["registry", "median"], rows))


if __name__ == "__main__":
    main()
