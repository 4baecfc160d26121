"""The replicated agent registry's properties, over many seeds, in the simulator."""

from __future__ import annotations

import random

import pytest

from caxton_actors.engine.membership import ROTATING_HEADS, ROTATION_CYCLES
from caxton_actors.registry import cards
from caxton_actors.registry.query import Query
from caxton_actors.registry.replica import UNREACHABLE
from caxton_actors.sim.cluster import WALL_EPOCH, Cluster, Network
from caxton_actors.swim.messages import Gossip
from caxton_actors.swim.timing import LAN
from tests.support.cards import card

SEEDS = range(30)
SCOPES = ("default", "team-a")
SIZE = 12
SETTLE = 35.0
LOSSY = Network(loss=0.05)
# Datagrams reordered over 50 ms, busy mailboxes, one stream in ten failing.
REORDERING = Network(loss=0.05, max_delay=0.05, hop_jitter=0.01, stream_failure=0.1)


def _cluster(seed: int, network: Network = LOSSY) -> Cluster:
    cluster = Cluster(seed, LAN, network)
    cluster.start_many(SIZE)
    cluster.run_until(SETTLE)
    assert cluster.converged()
    return cluster


def _agents(cluster: Cluster, name: str) -> dict[str, str]:
    """Agent id to owner, as ``name`` answers a cluster-wide listing."""
    page = cluster.node(name).registry.replica.page(Query(), None, 100_000, local=False)
    return {r.agent_id: r.owner for r in page}


def _run_until_agreed(cluster: Cluster, bound: float) -> float:
    """Virtual seconds until every registry agrees (fails past ``bound``)."""
    start = cluster.now
    while not cluster.registries_agree():
        assert cluster.now - start < bound, f"registries still differ after {bound} s"
        cluster.run_for(LAN.gossip_interval)
    return cluster.now - start


@pytest.mark.parametrize(
    ("seed", "network"),
    [(seed, LOSSY) for seed in SEEDS] + [(seed, REORDERING) for seed in SEEDS[:15]],
)
def test_registrations_everywhere_converge_to_one_registry(seed: int, network: Network) -> None:
    cluster = _cluster(seed, network)
    rng = random.Random(seed)
    expected = {}
    for i in range(200):  # 200 registrations over 10 virtual seconds, from random nodes
        owner = rng.choice(cluster.live)
        cluster.register(owner, f"a{i}", (f"cap{i % 7}",))
        expected[f"a{i}"] = owner
        cluster.run_for(0.05)
    # Heads spread in a few gossip rounds; a lost pull is retried; push-pull repairs the rest.
    _run_until_agreed(cluster, bound=10.0)
    for name in cluster.live:
        assert _agents(cluster, name) == expected


@pytest.mark.parametrize("seed", SEEDS[:10])
def test_carded_agents_in_scopes_converge_and_are_found_by_skill_everywhere(seed: int) -> None:
    """Cards ride the pulls, scopes keep the same id apart, and every node's skill index
    ends the same, through moves and removals, on a lossy network."""
    cluster = _cluster(seed)
    rng = random.Random(seed)
    # (scope, id) -> owner -> skill, in the order registered: the last claim left is read.
    claims: dict[tuple[str, str], dict[str, str]] = {}
    for i in range(120):
        owner, scope = rng.choice(cluster.live), rng.choice(SCOPES)
        agent_id, skill = f"a{rng.randrange(40)}", f"skill-{i % 5}"
        cluster.register(
            owner, agent_id, (), scope, cards.validate(card(agent_id, [(skill, ["sim"])]))
        )
        held = claims.setdefault((scope, agent_id), {})
        held.pop(owner, None)
        held[owner] = skill
        if rng.random() < 0.1:  # its owner removes it again: an older claim shows
            cluster.deregister(owner, agent_id, scope)
            del held[owner]
        cluster.run_for(0.05)
    _run_until_agreed(cluster, bound=10.0)
    newest = {key: list(held.items())[-1] for key, held in claims.items() if held}
    for scope in SCOPES:
        assert cluster.registries_agree(scope)
        for skill in {s for _, s in newest.values()}:
            want = {(i, o) for (sc, i), (o, s) in newest.items() if sc == scope and s == skill}
            for n in cluster.live:
                found = cluster.node(n).registry.replica.page(
                    Query(scope, skill=skill), None, 1000, local=False
                )
                assert {(r.agent_id, r.owner) for r in found} == want


@pytest.mark.parametrize("seed", SEEDS)
def test_a_crashed_owners_agents_turn_unreachable_then_disappear(seed: int) -> None:
    cluster = _cluster(seed)
    for i in range(20):
        cluster.register("n3", f"mine{i}")
        cluster.register("n4", f"other{i}")
    _run_until_agreed(cluster, bound=10.0)
    cluster.crash("n3")
    crashed = cluster.now
    others = cluster.live

    def statuses() -> set[str]:
        return {
            cluster.node(n).registry.replica.status(r)
            for n in others
            for r in cluster.node(n).registry.replica.page(Query(), "mine", 100, local=False)
            if r.owner == "n3"
        }

    # Dead once suspicion times out everywhere: well within 15 s for 12 nodes on LAN.
    while statuses() != {UNREACHABLE}:
        assert cluster.now - crashed < 15.0, "n3's agents are not unreachable everywhere"
        cluster.run_for(LAN.gossip_interval)
    assert all(len(_agents(cluster, n)) == 40 for n in others)  # still listed, unreachable
    cluster.run_for(LAN.dead_node_reclaim_time + 1.0)
    for name in others:
        assert set(_agents(cluster, name)) == {f"other{i}" for i in range(20)}


@pytest.mark.parametrize("seed", SEEDS)
def test_partition_then_heal_converges_and_loses_nothing(seed: int) -> None:
    cluster = _cluster(seed, Network())
    names = cluster.live
    left, right = names[: SIZE // 2], names[SIZE // 2 :]
    cluster.register(left[0], "before")
    cluster.run_for(2.0)
    cluster.partition(left, right)
    rng = random.Random(seed)
    for i in range(40):  # both sides keep registering while cut off
        side = left if i % 2 else right
        cluster.register(rng.choice(side), f"p{i}")
        cluster.run_for(0.25)
    cluster.run_for(3.0)
    for name in left:  # each side answers for what it can reach
        assert {f"p{i}" for i in range(1, 40, 2)} <= set(_agents(cluster, name))
    cluster.heal()
    _run_until_agreed(cluster, bound=60.0)
    cluster.run_for(LAN.dead_node_reclaim_time)  # past any expiry of the far side's agents
    _run_until_agreed(cluster, bound=60.0)
    expected = {"before"} | {f"p{i}" for i in range(40)}
    for name in names:
        assert set(_agents(cluster, name)) == expected


@pytest.mark.parametrize("seed", SEEDS)
def test_concurrent_reregistration_and_deletion_end_the_same_everywhere(seed: int) -> None:
    cluster = _cluster(seed)
    cluster.register("n1", "x", ("v1",))
    cluster.run_for(3.0)
    # The owner re-registers and removes x, another node registers it too, all at once.
    cluster.register("n1", "x", ("v2",))
    cluster.register("n2", "x", ("moved",))
    cluster.deregister("n1", "x")
    _run_until_agreed(cluster, bound=10.0)
    views = {cluster.node(n).registry.replica.get("x") for n in cluster.live}
    assert len(views) == 1
    [view] = views
    assert view is not None
    assert (view.owner, view.capabilities) == ("n2", ("moved",))


@pytest.mark.parametrize("seed", SEEDS[:10])
def test_news_nobody_heard_still_reaches_everyone_by_a_full_state_exchange(seed: int) -> None:
    """At rest no datagram carries a head, however many owners there are: old heads
    ride along only for a while after news. A change whose news was lost altogether
    still spreads, from the first full-state exchange with its owner (each node has
    one every push-pull interval), then as news again."""
    cluster = _cluster(seed)
    for i, name in enumerate(cluster.live):
        cluster.register(name, f"a{i}")
    _run_until_agreed(cluster, bound=10.0)
    # Past every node's rotation after the last news it merged.
    cluster.run_for(ROTATION_CYCLES * SIZE / ROTATING_HEADS * LAN.probe_interval + 1.0)
    for name in cluster.live:
        membership = cluster.node(name).membership
        assert membership.packet(Gossip(), cluster.now, WALL_EPOCH + cluster.now).heads == ()
    replica = cluster.node("n5").registry.replica
    replica.register("unheard", (), cluster.now, WALL_EPOCH + cluster.now)
    assert [h.name for h in replica.take_news()] == ["n5"]  # lost: no datagram carries it
    _run_until_agreed(cluster, bound=LAN.push_pull_interval + 10.0)
    for name in cluster.live:
        assert _agents(cluster, name)["unheard"] == "n5"


def test_a_restarted_owner_is_believed_over_its_past() -> None:
    """A node back on an empty disk: its peers drop what its past life registered."""
    cluster = _cluster(1, Network())
    cluster.register("n5", "old")
    _run_until_agreed(cluster, bound=10.0)
    cluster.crash("n5")
    cluster.run_for(2.0)
    cluster.start("n5", seeds=["n0"], incarnation=1, empty_disk=True)
    cluster.register("n5", "new")
    _run_until_agreed(cluster, bound=40.0)
    for name in cluster.live:
        assert _agents(cluster, name).get("new") == "n5"
        assert "old" not in _agents(cluster, name)


@pytest.mark.parametrize("seed", SEEDS[:10])
def test_a_node_restarted_on_its_disk_answers_for_the_cluster_at_once(seed: int) -> None:
    """As a node restarts on its SQLite file: its own agents and its replica of the rest."""
    cluster = _cluster(seed)
    for i in range(10):
        cluster.register("n5", f"mine{i}")
        cluster.register("n6", f"theirs{i}")
    _run_until_agreed(cluster, bound=10.0)
    before = _agents(cluster, "n5")
    cluster.crash("n5")
    cluster.run_for(2.0)
    cluster.start("n5", seeds=["n0"], incarnation=1)
    assert _agents(cluster, "n5") == before  # before it has heard from anyone
    cluster.deregister("n5", "mine0")
    _run_until_agreed(cluster, bound=40.0)
    del before["mine0"]
    for name in cluster.live:
        assert _agents(cluster, name) == before


def _cluster_with_a_fast_clock(seed: int, fast: str, ahead: float) -> Cluster:
    """As ``_cluster``, with ``fast``'s wall clock ``ahead`` seconds of everyone else's."""
    cluster = Cluster(seed, LAN, LOSSY)
    for i in range(SIZE):
        name = f"n{i}"
        cluster.start(name, seeds=["n0"] if i else [], clock_offset=ahead if name == fast else 0)
    cluster.run_until(SETTLE)
    assert cluster.converged()
    return cluster


@pytest.mark.parametrize("seed", SEEDS[:10])
def test_a_node_whose_clock_runs_fast_cannot_keep_an_agent_that_moved(seed: int) -> None:
    cluster = _cluster_with_a_fast_clock(seed, "n3", ahead=200.0)
    cluster.register("n3", "x", ("first",))
    _run_until_agreed(cluster, bound=10.0)
    cluster.register("n1", "x", ("moved",))  # later, and n1 has seen n3's claim
    _run_until_agreed(cluster, bound=10.0)
    for name in cluster.live:
        found = cluster.node(name).registry.replica.get("x")
        assert found is not None
        assert (found.owner, found.capabilities) == ("n1", ("moved",)), name


@pytest.mark.parametrize("seed", SEEDS[:5])
def test_every_node_finds_the_member_whose_clock_is_off(seed: int) -> None:
    cluster = _cluster_with_a_fast_clock(seed, "n3", ahead=60.0)
    cluster.run_for(30.0)
    for name in cluster.live:
        skewed = cluster.node(name).membership.skew.skewed()
        if name == "n3":  # from where it stands, everyone else is behind
            assert set(skewed) == set(cluster.live) - {"n3"}
            assert all(-61 < s < -59 for s in skewed.values())
        else:
            assert set(skewed) == {"n3"}
            assert 59 < skewed["n3"] < 61


@pytest.mark.parametrize("seed", SEEDS[:5])
def test_a_node_back_alone_drops_the_agents_of_owners_nobody_reports(seed: int) -> None:
    """No ghosts: back on its disk with no one left, it lists the others' agents as
    unreachable, never active, then forgets them."""
    cluster = _cluster(seed)
    for i in range(10):
        cluster.register("n5", f"mine{i}")
        cluster.register("n6", f"theirs{i}")
    _run_until_agreed(cluster, bound=10.0)
    for name in cluster.live:
        cluster.crash(name)
    cluster.run_for(2.0)
    cluster.start("n5", incarnation=1)
    replica = cluster.node("n5").registry.replica
    theirs = [r for r in replica.page(Query(), None, 100, local=False) if r.owner == "n6"]
    assert len(theirs) == 10
    assert {replica.status(r) for r in theirs} == {UNREACHABLE}
    cluster.run_for(LAN.dead_node_reclaim_time - 2.0)
    assert len(_agents(cluster, "n5")) == 20  # down for less than the reclaim time
    cluster.run_for(4.0)
    assert set(_agents(cluster, "n5")) == {f"mine{i}" for i in range(10)}
    records, heads = cluster.node("n5").registry.replica.others()
    assert records == ()
    assert heads == ()
