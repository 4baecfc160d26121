"""SWIM's properties, over many seeds, in the deterministic simulator."""

from __future__ import annotations

import pytest

from caxton_actors.sim.cluster import Cluster, Network
from caxton_actors.swim.messages import State
from caxton_actors.swim.timing import LAN

PERFECT = Network()
SEEDS = range(40)
SIZE = 16
SETTLE = 35.0  # virtual seconds: longer than one push-pull period, which repairs any missed update


def _cluster(seed: int, network: Network = PERFECT) -> Cluster:
    cluster = Cluster(seed, LAN, network)
    cluster.start_many(SIZE)
    cluster.run_until(SETTLE)
    assert cluster.converged(), f"seed {seed}: no convergence after start"
    return cluster


def _declared(cluster: Cluster, member: str, state: State, since: float = 0.0) -> dict[str, float]:
    """When each observer first saw ``member`` in ``state``."""
    seen: dict[str, float] = {}
    for o in cluster.observed:
        if o.member == member and o.state is state and o.at >= since:
            seen.setdefault(o.observer, o.at)
    return seen


def _crash_is_declared_everywhere_in_bound(cluster: Cluster, name: str) -> None:
    crashed_at = cluster.now
    cluster.crash(name)
    # A probe reaches it within two periods; then the longest suspicion, then spreading.
    bound = 2 * LAN.probe_interval + LAN.suspicion_timeout(SIZE) * LAN.suspicion_max_timeout_mult
    cluster.run_for(bound + 5.0)
    dead = _declared(cluster, name, State.DEAD, since=crashed_at)
    seed = cluster.seed
    assert set(dead) == set(cluster.live), f"seed {seed}: missing {set(cluster.live) - set(dead)}"
    assert max(dead.values()) - crashed_at <= bound + 5.0


@pytest.mark.parametrize("seed", SEEDS)
def test_completeness_every_crash_is_declared_dead_everywhere_in_bound(seed: int) -> None:
    _crash_is_declared_everywhere_in_bound(_cluster(seed, Network(loss=0.05)), "n7")


@pytest.mark.parametrize("seed", SEEDS)
def test_accuracy_no_live_member_is_ever_suspected_without_loss(seed: int) -> None:
    cluster = _cluster(seed)
    cluster.run_for(120.0)
    accused = [o for o in cluster.observed if o.state in (State.SUSPECT, State.DEAD)]
    assert accused == [], f"seed {seed}: {accused[:3]}"


@pytest.mark.parametrize("seed", SEEDS)
def test_a_short_pause_is_refuted_never_dead(seed: int) -> None:
    cluster = _cluster(seed, Network(loss=0.01))
    paused_at = cluster.now
    cluster.pause("n3", LAN.suspicion_timeout(SIZE) * 0.5)
    cluster.run_for(60.0)
    assert _declared(cluster, "n3", State.DEAD, since=paused_at) == {}
    assert cluster.converged()
    assert all(cluster.view(n)["n3"] is State.ALIVE for n in cluster.live)


@pytest.mark.parametrize("seed", SEEDS)
def test_views_converge_after_a_partition_heals(seed: int) -> None:
    cluster = _cluster(seed, Network(loss=0.01))
    names = cluster.live
    cluster.partition(names[: SIZE // 2], names[SIZE // 2 :])
    cluster.run_for(40.0)
    far_side_dead = _declared(cluster, names[-1], State.DEAD)
    assert names[0] in far_side_dead, "the partition was never noticed"
    cluster.heal()
    cluster.run_for(2 * LAN.push_pull_interval + 30.0)
    assert cluster.converged(), f"seed {seed}: {[cluster.view(n) for n in names[:1]]}"


@pytest.mark.parametrize("seed", SEEDS[:10])
def test_graceful_leave_is_left_everywhere_not_dead(seed: int) -> None:
    cluster = _cluster(seed, Network(loss=0.01))
    cluster.leave("n4")
    cluster.run_for(5.0)
    cluster.crash("n4")  # the process exits after saying goodbye
    cluster.run_for(30.0)
    assert all(cluster.view(n)["n4"] is State.LEFT for n in cluster.live)
    assert _declared(cluster, "n4", State.DEAD) == {}


@pytest.mark.parametrize("seed", SEEDS[:10])
def test_a_restarted_node_rejoins_with_a_higher_incarnation(seed: int) -> None:
    cluster = _cluster(seed)
    cluster.crash("n9")
    cluster.run_for(40.0)
    assert all(cluster.view(n)["n9"] is State.DEAD for n in cluster.live)
    cluster.start("n9", seeds=["n0"])  # a fresh process: incarnation 0 again
    cluster.run_for(20.0)
    assert cluster.converged()
    incarnations = {
        r.incarnation
        for n in cluster.live
        for r in cluster.node(n).membership.members.records()
        if r.name == "n9"
    }
    assert len(incarnations) == 1
    assert incarnations.pop() > 0


def test_a_node_started_before_its_seed_joins_once_it_is_up() -> None:
    cluster = Cluster(seed=3)
    cluster.start("early", seeds=["seed"])
    cluster.run_for(10.0)
    assert cluster.view("early") == {"early": State.ALIVE}
    cluster.start("seed")
    cluster.run_for(40.0)  # the join retry backs off to at most 30 s
    assert cluster.converged()
    assert set(cluster.view("seed")) == {"early", "seed"}


def test_same_seed_same_run_other_seed_other_run() -> None:
    def run(seed: int) -> list[object]:
        cluster = _cluster(seed, Network(loss=0.1, duplicate=0.05))
        cluster.crash("n1")
        cluster.run_for(30.0)
        return list(cluster.observed)

    assert run(11) == run(11)
    assert run(11) != run(12)


# Every node the production engine, with datagrams reordered (delays spread over 50 ms),
# duplicated and lost, busy mailboxes (each hop up to 10 ms late, in order), and one
# stream in twenty failing.
REORDERING = Network(
    loss=0.02, max_delay=0.05, duplicate=0.02, hop_jitter=0.01, stream_failure=0.05
)


@pytest.mark.parametrize("seed", SEEDS[:20])
def test_reordered_and_busy_a_crash_is_found_and_no_live_member_dies(seed: int) -> None:
    cluster = _cluster(seed, REORDERING)
    _crash_is_declared_everywhere_in_bound(cluster, "n7")
    wrongly = [o for o in cluster.observed if o.state is State.DEAD and o.member != "n7"]
    assert wrongly == [], f"seed {seed}: {wrongly[:3]}"
    cluster.run_for(30.0)
    assert cluster.converged()
