"""SWIM's scaling, in the simulator: spreading grows with log N, idle load per node not at all.

The clusters start already converged (``sim.cluster.settled``): joining 256 nodes
through one seed would cost far more than measuring them. ``bench/sim_scale.py``
runs the same measurement up to 10,000 nodes and plots it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import pytest

from caxton_actors.sim.cluster import settled
from caxton_actors.swim.messages import State
from caxton_actors.swim.timing import LAN

SEEDS = range(5)
SMALL, LARGE = 32, 256
IDLE_PERIODS = 2
SPREAD_CAP = 10.0  # virtual seconds: 50 gossip rounds


@dataclass(frozen=True, slots=True)
class _Result:
    idle_per_period: float
    heard: int
    rounds: float


def _measure(seed: int, size: int) -> _Result:
    cluster = settled(seed, size)
    assert all(len(cluster.view(n)) == size for n in cluster.live)

    before = cluster.sent.total()
    cluster.run_for(IDLE_PERIODS * LAN.probe_interval)
    idle = (cluster.sent.total() - before) / size / IDLE_PERIODS

    origin = cluster.live[seed % size]
    mark, start = len(cluster.observed), cluster.now
    cluster.leave(origin)
    heard: dict[str, float] = {}
    while len(heard) < size - 1 and cluster.now < start + SPREAD_CAP:
        cluster.run_for(LAN.gossip_interval)
        for seen in cluster.observed[mark:]:
            if seen.member == origin and seen.state is State.LEFT and seen.observer != origin:
                heard.setdefault(seen.observer, seen.at)
        mark = len(cluster.observed)
    rounds = (max(heard.values(), default=start) - start) / LAN.gossip_interval
    return _Result(idle, len(heard), rounds)


@pytest.fixture(scope="module")
def results() -> dict[int, list[_Result]]:
    return {size: [_measure(seed, size) for seed in SEEDS] for size in (SMALL, LARGE)}


def test_one_update_reaches_everyone_in_rounds_growing_with_log_n(
    results: dict[int, list[_Result]],
) -> None:
    for size, runs in results.items():
        assert [r.heard for r in runs] == [size - 1] * len(runs), f"N={size}: not all heard"
    small = statistics.median(r.rounds for r in results[SMALL])
    large = statistics.median(r.rounds for r in results[LARGE])
    # 8x the nodes: more rounds, but nowhere near 8x (log2 grows 1.6x from 32 to 256).
    assert small < large < 3 * small, (small, large)
    # Fanout 3 every round: a few rounds per doubling would already be too slow.
    assert max(r.rounds for r in results[LARGE]) <= 8  # log2(256)


def test_idle_packets_per_node_per_period_stay_constant_as_n_grows(
    results: dict[int, list[_Result]],
) -> None:
    small = statistics.median(r.idle_per_period for r in results[SMALL])
    large = statistics.median(r.idle_per_period for r in results[LARGE])
    # Each period a node pings one member and answers, on average, one ping; nothing
    # is gossiped while there is nothing to tell. Push-pull adds a little.
    for value in (small, large):
        assert 1.9 <= value <= 2.5, (small, large)
    assert abs(large - small) <= 0.2 * small, (small, large)
