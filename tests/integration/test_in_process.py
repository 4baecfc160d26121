"""Several real nodes in one process, over an in-memory network.

Every actor is the real one (membership, detection, registry on a real SQLite file,
HTTP on a loopback port); only the gossip transport is the fake of
``tests/support/memnet.py``, with loss, delay and partitions. Faster and more
controllable than processes (``tests/cluster``), and it shows the actors carry the
engine's hops and effects as the simulator assumes.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest

from caxton_actors.actors.membership import ListMembers
from caxton_actors.actors.registry import DeleteAgent, GetAgent, PutAgent
from caxton_actors.address import Address
from caxton_actors.clock import SYSTEM, Clock
from caxton_actors.config import Config, GossipConfig, HttpConfig
from caxton_actors.engine.messages import Packet
from caxton_actors.node import Node
from caxton_actors.registry.records import AgentRecord, AgentUpdate, Head
from caxton_actors.registry.replica import ACTIVE, UNREACHABLE
from caxton_actors.runtime.actor import ask
from caxton_actors.swim.messages import State
from caxton_actors.wire.codec import encode
from tests.support.memnet import MemoryNetwork

PERIOD = 0.3  # seconds: the protocol period (the local profile's other timings apply)
TIMEOUT = 5.0
StartNode = Callable[..., Node]


def _config(
    tmp_path: Path,
    name: str,
    seed: Address | None,
    failure_detection_timeout: float = 30.0,
    gossip_enabled: bool = True,
) -> Config:
    gossip = GossipConfig(
        enabled=gossip_enabled,
        bind_address=Address("127.0.0.1", 0),
        seed_nodes=() if seed is None else (seed,),
        gossip_interval=PERIOD,
        failure_detection_timeout=failure_detection_timeout,
        profile="local",
    )
    return Config(
        node_name=name,
        sqlite_path=tmp_path / f"{name}.db",
        http=HttpConfig(bind_address=Address("127.0.0.1", 0)),
        gossip=gossip,
    )


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Node]]:
    running: list[Node] = []

    def start_node(
        network: MemoryNetwork,
        name: str,
        seed: Node | None = None,
        *,
        clock: Clock = SYSTEM,
        failure_detection_timeout: float = 30.0,
        gossip_enabled: bool = True,
    ) -> Node:
        seed_address = None if seed is None else _address(seed)
        config = _config(tmp_path, name, seed_address, failure_detection_timeout, gossip_enabled)
        node = Node(config, network.transport, clock)
        node.start()
        running.append(node)
        return node

    yield start_node
    for node in running:
        node.stop()


def _gossip(node: Node) -> Address:
    assert node.gossip_address is not None
    return node.gossip_address


def _address(node: Node) -> Address:
    host, port = _gossip(node)
    return Address(host, port)


def _states(node: Node) -> dict[str, State]:
    assert node.membership is not None
    views = ask(node.membership, ListMembers(), TIMEOUT)
    return {view.record.name: view.record.state for view in views}


def _eventually(check: Callable[[], bool], within: float, what: str) -> float:
    """Seconds until ``check`` holds; fails after ``within``."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within, f"not within {within} s: {what}"
        gevent.sleep(0.05)
    return time.monotonic() - started


def _cluster(start: StartNode, network: MemoryNetwork, size: int) -> list[Node]:
    first = start(network, "n0")
    nodes = [first] + [start(network, f"n{i}", first) for i in range(1, size)]
    names = {f"n{i}" for i in range(size)}
    _eventually(
        lambda: all(_states(n) == dict.fromkeys(names, State.ALIVE) for n in nodes),
        10.0,
        "every node sees every node alive",
    )
    return nodes


def test_nodes_join_and_a_registration_reaches_every_node(start: StartNode) -> None:
    nodes = _cluster(start, MemoryNetwork(seed=1), 3)
    ask(nodes[1].registry, PutAgent("planner", ("plan",)), TIMEOUT)

    def everywhere(owner: str | None) -> bool:
        found = [ask(n.registry, GetAgent("planner"), TIMEOUT) for n in nodes]
        return all((a.node_id if a else None) == owner for a in found)

    _eventually(lambda: everywhere("n1"), 5.0, "the agent is listed everywhere")
    assert ask(nodes[1].registry, DeleteAgent("planner"), TIMEOUT)
    _eventually(lambda: everywhere(None), 5.0, "the removal reaches everywhere")


def test_registrations_converge_on_a_lossy_network(start: StartNode) -> None:
    nodes = _cluster(start, MemoryNetwork(seed=2, loss=0.1), 3)
    for i in range(30):
        ask(nodes[i % 3].registry, PutAgent(f"a{i}", ()), TIMEOUT)

    def converged() -> bool:
        return all(
            ask(n.registry, GetAgent(f"a{i}"), TIMEOUT) is not None
            for n in nodes
            for i in range(30)
        )

    _eventually(converged, 15.0, "all 30 agents on every node despite 10 % loss")


def test_a_silent_node_is_declared_dead_and_its_agents_unreachable(start: StartNode) -> None:
    network = MemoryNetwork(seed=3)
    nodes = _cluster(start, network, 3)
    ask(nodes[2].registry, PutAgent("worker", ()), TIMEOUT)
    _eventually(
        lambda: ask(nodes[0].registry, GetAgent("worker"), TIMEOUT) is not None, 5.0, "spread"
    )
    network.silence(_gossip(nodes[2]))  # a crash, as n0 and n1 see it
    _eventually(
        lambda: all(_states(n)["n2"] is State.DEAD for n in nodes[:2]), 15.0, "n2 dead on both"
    )
    agent = ask(nodes[0].registry, GetAgent("worker"), TIMEOUT)
    assert agent is not None
    assert agent.status == UNREACHABLE


def test_a_partition_heals_into_one_view(start: StartNode) -> None:
    network = MemoryNetwork(seed=4)
    nodes = _cluster(start, network, 3)
    near, far = [_gossip(n) for n in nodes[:2]], [_gossip(nodes[2])]
    network.partition(near, far)
    _eventually(lambda: _states(nodes[0])["n2"] is State.DEAD, 15.0, "the far side is dead")
    ask(nodes[2].registry, PutAgent("cut-off", ()), TIMEOUT)
    network.heal()
    # The far side is found again by a full-state exchange with a dead member (15 s).
    _eventually(
        lambda: all(set(_states(n).values()) == {State.ALIVE} for n in nodes), 40.0, "one view"
    )
    _eventually(
        lambda: ask(nodes[0].registry, GetAgent("cut-off"), TIMEOUT) is not None,
        5.0,
        "what the far side registered meanwhile",
    )


def test_a_node_restarted_on_its_file_keeps_its_agents_and_knows_the_rest(
    start: StartNode,
) -> None:
    network = MemoryNetwork(seed=5)
    nodes = _cluster(start, network, 3)
    ask(nodes[0].registry, PutAgent("elsewhere", ()), TIMEOUT)
    ask(nodes[2].registry, PutAgent("mine", ()), TIMEOUT)
    _eventually(
        lambda: ask(nodes[2].registry, GetAgent("elsewhere"), TIMEOUT) is not None, 5.0, "spread"
    )
    nodes[2].stop()
    again = start(network, "n2", nodes[0])  # the same file: tmp_path / "n2.db"
    # Before it has heard from anyone, it answers for the cluster from its file.
    found = ask(again.registry, GetAgent("elsewhere"), TIMEOUT)
    assert found is not None
    assert found.node_id == "n0"
    _eventually(lambda: _states(nodes[0])["n2"] is State.ALIVE, 10.0, "n2 back")
    _eventually(
        lambda: (
            (a := ask(nodes[0].registry, GetAgent("mine"), TIMEOUT)) is not None
            and a.status == ACTIVE
        ),
        5.0,
        "its agent is active again everywhere",
    )


def test_an_unasked_pull_answer_is_dropped_not_merged(start: StartNode) -> None:
    """Anyone can send a datagram: an agent_update only counts on a stream we opened."""
    network = MemoryNetwork(seed=6)
    nodes = _cluster(start, network, 2)
    forged = AgentUpdate((AgentRecord("n1", "phantom", 10**13, (), 10**13),), (Head("n1", 10**13),))
    outsider = network.transport(Address("127.0.0.1", 0))
    outsider.open(lambda *_: None, lambda *_: None)
    outsider.send(encode(Packet("n1", forged), "caxton"), _gossip(nodes[0]))
    ask(nodes[1].registry, PutAgent("real", ()), TIMEOUT)  # the real owner's news
    _eventually(
        lambda: ask(nodes[0].registry, GetAgent("real"), TIMEOUT) is not None, 5.0, "spread"
    )
    assert ask(nodes[0].registry, GetAgent("phantom"), TIMEOUT) is None


def _post(node: Node, path: str, body: object = None) -> tuple[int, Any]:
    """POST to the node's real HTTP API from a thread, so that the hub goes on serving it."""

    def post() -> tuple[int, Any]:
        request = urllib.request.Request(
            f"http://{node.http_address}{path}",
            data=json.dumps(body).encode() if body is not None else b"",
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as reply:
                return reply.status, json.load(reply)
        except urllib.error.HTTPError as refused:
            return refused.code, json.load(refused)

    result: tuple[int, Any] = gevent.get_hub().threadpool.apply(post)
    return result


def test_a_node_that_left_joins_again_through_the_api(start: StartNode) -> None:
    network = MemoryNetwork(seed=7)
    a, b = _cluster(start, network, 2)
    assert _post(b, "/cluster/leave")[0] == 202
    _eventually(lambda: _states(a)["n1"] is State.LEFT, 5.0, "n1 left, as n0 sees it")
    closed = Address("127.0.0.1", 1)  # nobody there
    status, report = _post(b, "/cluster/join", {"seeds": [str(_address(a)), str(closed)]})
    assert status == 200, report
    assert report["answered"] == [str(_address(a))]
    assert list(report["failed"]) == [str(closed)]
    assert "refused" in report["failed"][str(closed)]
    _eventually(lambda: _states(a)["n1"] is State.ALIVE, 5.0, "n1 alive again at n0")
    assert _states(b) == {"n0": State.ALIVE, "n1": State.ALIVE}


def test_a_join_no_seed_answers_says_so(start: StartNode) -> None:
    lone = start(MemoryNetwork(seed=8), "n0")
    status, report = _post(lone, "/cluster/join", {"seeds": ["127.0.0.1:1", "127.0.0.1:2"]})
    assert status == 202
    assert report["answered"] == []
    assert sorted(report["failed"]) == ["127.0.0.1:1", "127.0.0.1:2"]


def _get(node: Node, path: str) -> Any:
    """GET from the node's real HTTP API, from a thread (the hub goes on serving it)."""

    def get() -> Any:
        with urllib.request.urlopen(f"http://{node.http_address}{path}", timeout=15) as reply:
            return json.load(reply)

    return gevent.get_hub().threadpool.apply(get)


@pytest.mark.parametrize("gossip_enabled", [True, False], ids=["alone", "without_gossip"])
def test_a_node_back_without_its_peers_shows_their_agents_unreachable_then_drops_them(
    start: StartNode, gossip_enabled: bool
) -> None:
    """No ghosts: what the file holds of owners nobody reports is never active."""
    network = MemoryNetwork(seed=9)
    nodes = _cluster(start, network, 3)
    ask(nodes[0].registry, PutAgent("mine", ()), TIMEOUT)
    ask(nodes[1].registry, PutAgent("theirs", ()), TIMEOUT)
    _eventually(
        lambda: ask(nodes[0].registry, GetAgent("theirs"), TIMEOUT) is not None, 5.0, "spread"
    )
    for node in reversed(nodes):
        node.stop()
    again = start(
        network, "n0", failure_detection_timeout=2.0, gossip_enabled=gossip_enabled
    )  # the same file, and nobody else comes back
    started = time.monotonic()
    route = _get(again, "/agents/theirs/route")
    listed = _get(again, "/agents?limit=10")["agents"]
    assert time.monotonic() - started < 2.0, "too slow to see them before they expire"
    assert route == {"agent_id": "theirs", "node_id": "n1", "route": None, "status": "unreachable"}
    assert {(a["id"], a["status"]) for a in listed} == {
        ("mine", "active"),
        ("theirs", "unreachable"),
    }
    assert _get(again, "/registry/digest")["unreachable"] == 1
    _eventually(
        lambda: ask(again.registry, GetAgent("theirs"), TIMEOUT) is None,
        5.0,
        "the absent owner's agents dropped after failure_detection_timeout",
    )
    assert time.monotonic() - started >= 2.0 - 0.5  # not before (give or take the start)
    assert _get(again, "/registry/digest")["agents"] == 1


class _AheadClock(Clock):
    """The system's clock, with the wall clock ``ahead`` seconds fast."""

    def __init__(self, ahead: float) -> None:
        self.ahead = ahead

    def wall(self) -> float:
        return super().wall() + self.ahead


def test_a_node_whose_clock_runs_fast_cannot_take_over_an_agent_and_is_reported(
    start: StartNode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    network = MemoryNetwork(seed=10)
    n0 = start(network, "n0")
    n1 = start(network, "n1", n0, clock=_AheadClock(120.0))
    _eventually(
        lambda: _states(n0) == _states(n1) == {"n0": State.ALIVE, "n1": State.ALIVE},
        10.0,
        "both alive at both",
    )
    ask(n1.registry, PutAgent("x", ("first",)), TIMEOUT)
    _eventually(lambda: ask(n0.registry, GetAgent("x"), TIMEOUT) is not None, 5.0, "x spread")
    ask(n0.registry, PutAgent("x", ("moved",)), TIMEOUT)  # later, knowing n1's claim

    def owners() -> list[str | None]:
        return [getattr(ask(n.registry, GetAgent("x"), TIMEOUT), "node_id", None) for n in (n0, n1)]

    _eventually(lambda: owners() == ["n0", "n0"], 5.0, "x moved to n0, as both see it")
    gevent.sleep(1.0)  # and it stays there
    assert owners() == ["n0", "n0"]
    # Each finds the other's clock off by two minutes, after some seconds of its acks (each
    # acks the other's pings: the two may be found a probe interval apart).
    _eventually(
        lambda: (
            "n1" in _get(n0, "/health/gossip")["skewed_peers"]
            and "n0" in _get(n1, "/health/gossip")["skewed_peers"]
        ),
        15.0,
        "reported",
    )
    assert 119 < _get(n0, "/health/gossip")["skewed_peers"]["n1"] < 121
    assert -121 < _get(n1, "/health/gossip")["skewed_peers"]["n0"] < -119
    said = [r.getMessage() for r in caplog.records if "the clock of member" in r.getMessage()]
    assert len([m for m in said if "member n1 is" in m]) == 1  # said once
    assert any("member n1 is 120" in m and "ahead of ours" in m for m in said)
