"""Agent discovery on real node processes: A2A cards, lookups, watches, scopes and
read-your-writes, as a client of a node other than the one written to sees them.

Reads on another node wait with ``?after=TOKEN`` (the write's token) instead of sleeping.
Bounds have room: the machine is shared.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from a2a.client.card_resolver import A2ACardResolver
from a2a.client.errors import AgentCardResolutionError
from a2a.types import AgentCard
from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]

from tests.cluster.conftest import Cluster, wait_until
from tests.integration.conftest import NodeProcess
from tests.support.cards import RECIPE_CARD, card

WAIT = "5"  # seconds a read given ?after= may wait: the most a node allows
FORGET_AFTER = 4  # gossip.failure_detection_timeout of the watch test's cluster
ROUNDS = 1000
CLIENTS = 10  # each writes then reads in turn; together they make ROUNDS


@pytest.fixture(scope="module")
def quad(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """a, b, c serve every scope; d only team-a."""
    running = Cluster(tmp_path_factory.mktemp("discovery"))
    try:
        for name in "abc":
            running.start(name, seeds=["a"] if name != "a" else [])
        running.start("d", ["a"], "--registry-scopes", "team-a")
        running.wait_converged()
        yield running
    finally:
        running.stop_all()


def _put(node: NodeProcess, agent_id: str, body: dict[str, Any], scope: str = "") -> str:
    """Register (or update) the agent on ``node``; its read-your-writes token."""
    path = f"/agents/{agent_id}" + (f"?scope={scope}" if scope else "")
    reply = node.request("PUT", path, body)
    assert reply.status in (200, 201), reply.raw
    assert reply.json["token"] == reply.headers["x-caxton-token"]
    token: str = reply.json["token"]
    return token


def _get(node: NodeProcess, path: str, **params: str) -> Any:
    reply = node.request("GET", f"{path}?{urlencode(params)}")
    assert reply.status == 200, reply.raw
    return reply.json


def _ids(node: NodeProcess, **params: str) -> set[str]:
    return {agent["id"] for agent in _get(node, "/agents", **params)["agents"]}


def _resolve(base_url: str) -> AgentCard:
    """The card as the official A2A SDK finds it under ``base_url``."""

    async def resolve() -> AgentCard:
        async with httpx.AsyncClient(timeout=10) as client:
            return await A2ACardResolver(client, base_url=base_url).get_agent_card()

    return asyncio.run(resolve())


def test_the_a2a_sdk_resolves_a_card_registered_on_another_node(quad: Cluster) -> None:
    a, c = quad.nodes["a"], quad.nodes["c"]
    token = _put(a, "recipes", {"card": RECIPE_CARD})
    assert _ids(c, skill="find-recipe", after=token, timeout=WAIT) == {"recipes"}
    assert _ids(c, tag="cooking", after=token) == {"recipes"}
    assert _ids(c, q="RECIPE ingredients", after=token) == {"recipes"}
    assert _ids(c, q="recipe pizza") == set()  # every word given must match
    assert _ids(c, tag="baking") == set()

    resolved = _resolve(f"http://127.0.0.1:{c.port}/agents/recipes")
    assert MessageToDict(resolved) == RECIPE_CARD

    pastry = card("Pastry Chef", [("bake-bread", ["baking", "bread"])])
    token = _put(a, "pastry", {"card": pastry}, scope="kitchen")
    kitchen = _get(c, "/agents/pastry", scope="kitchen", after=token, timeout=WAIT)
    assert (kitchen["node_id"], kitchen["name"], kitchen["card"]) == ("a", "Pastry Chef", pastry)
    scoped = _resolve(f"http://127.0.0.1:{c.port}/scopes/kitchen/agents/pastry")
    assert scoped.name == "Pastry Chef"
    assert [(s.id, list(s.tags)) for s in scoped.skills] == [("bake-bread", ["baking", "bread"])]
    assert _ids(c, scope="kitchen", tag="baking") == {"pastry"}
    with pytest.raises(AgentCardResolutionError) as missing:  # not in the default scope
        _resolve(f"http://127.0.0.1:{c.port}/agents/pastry")
    assert missing.value.status_code == 404


@dataclass
class Event:
    id: str | None
    kind: str
    data: Any


class Watch:
    """A ``GET /agents/watch`` stream, read event by event."""

    def __init__(self, node: NodeProcess, query: str = "", last_id: str | None = None) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
        headers = {} if last_id is None else {"Last-Event-ID": last_id}
        self.conn.request("GET", f"/agents/watch{query}", headers=headers)
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200, self.resp.read()
        assert self.resp.getheader("Content-Type", "").startswith("text/event-stream")

    def next(self, timeout: float = 30) -> Event:
        """The next event (comments skipped); TimeoutError when none comes in time."""
        assert self.conn.sock is not None
        self.conn.sock.settimeout(timeout)
        fields: dict[str, str] = {}
        while True:
            line = self.resp.readline().decode()
            if not line:
                raise AssertionError(f"the stream ended; so far: {fields}")
            line = line.rstrip("\n")
            if not line:
                if fields:
                    return Event(fields.get("id"), fields["event"], json.loads(fields["data"]))
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value

    def close(self) -> None:
        self.conn.close()


def _forgetful_trio(workdir: Path) -> Cluster:
    """Three nodes that forget a dead member, and its agents, ``FORGET_AFTER`` s after."""
    config = workdir / "forget.yaml"
    config.write_text(f"caxton_config:\n  gossip:\n    failure_detection_timeout: {FORGET_AFTER}\n")
    trio = Cluster(workdir)
    for name in "abc":
        trio.start(name, ["a"] if name != "a" else [], "--config", str(config))
    trio.wait_converged()
    return trio


def test_a_watch_follows_an_agent_from_added_to_removed_and_resumes(tmp_path: Path) -> None:
    trio = _forgetful_trio(tmp_path)
    try:
        a, b, c = (trio.nodes[n] for n in "abc")
        _put(b, "resident", {"card": card("Resident", [("cook", ["food"])])})
        watch = Watch(b, "?tag=food")
        snapshot = watch.next()
        assert snapshot.kind == "snapshot"
        assert [agent["id"] for agent in snapshot.data["agents"]] == ["resident"]
        assert snapshot.id == snapshot.data["version"]

        _put(a, "visitor", {"card": card("Visitor", [("cook", ["food"])])})
        _put(a, "stranger", {"card": card("Stranger", [("paint", ["art"])])})  # not watched
        added = watch.next()
        assert (added.kind, added.data["id"], added.data["node_id"]) == ("added", "visitor", "a")
        assert added.data["status"] == "active"

        a.proc.kill()  # kill -9
        killed = time.monotonic()
        unreachable = watch.next()
        assert (unreachable.kind, unreachable.data["id"]) == ("unreachable", "visitor")
        assert unreachable.data["status"] == "unreachable"
        removed = watch.next()
        assert (removed.kind, removed.data["id"]) == ("removed", "visitor")
        assert time.monotonic() - killed < 40
        assert _get(b, "/registry/digest")["agents"] == 1  # the resident alone
        watch.close()

        # Resumed after the `added`: the rest again, no snapshot, nothing twice.
        resumed = Watch(b, "?tag=food", last_id=added.id)
        assert [resumed.next(), resumed.next()] == [unreachable, removed]
        with pytest.raises(TimeoutError):
            resumed.next(timeout=1.5)
        resumed.close()

        # An id of b's means nothing to c: a fresh snapshot, without the forgotten visitor.
        wait_until(lambda: _get(c, "/registry/digest")["agents"] == 1, 20, "c forgets a")
        elsewhere = Watch(c, "?tag=food", last_id=added.id)
        fresh = elsewhere.next()
        assert fresh.kind == "snapshot"
        assert [agent["id"] for agent in fresh.data["agents"]] == ["resident"]
        elsewhere.close()
    finally:
        trio.stop_all()


def _absent(node: NodeProcess, agent_id: str, scope: str, after: str) -> bool:
    path = f"/agents/{agent_id}?scope={scope}&after={after}&timeout={WAIT}"
    return node.request("GET", path).status == 404


def test_scopes_keep_same_named_agents_apart(quad: Cluster) -> None:
    a, b, c, d = (quad.nodes[n] for n in "abcd")
    card_a = card("Team A Helper", [("triage", ["support"])])
    card_b = card("Team B Helper", [("triage", ["support"])])
    token_a = _put(a, "helper", {"card": card_a}, scope="team-a")
    token_b = _put(b, "helper", {"card": card_b}, scope="team-b")
    _get(c, "/agents/helper", scope="team-a", after=token_a, timeout=WAIT)
    seen_b = _get(c, "/agents/helper", scope="team-b", after=token_b, timeout=WAIT)
    seen_a = _get(c, "/agents/helper", scope="team-a")
    assert (seen_a["scope"], seen_a["node_id"], seen_a["card"]) == ("team-a", "a", card_a)
    assert (seen_b["scope"], seen_b["node_id"], seen_b["card"]) == ("team-b", "b", card_b)
    assert c.request("GET", "/agents/helper").status == 404  # nor in the default scope
    for scope, owner in (("team-a", "a"), ("team-b", "b")):
        listed = _get(c, "/agents", scope=scope, skill="triage")["agents"]
        assert [(x["id"], x["scope"], x["node_id"]) for x in listed] == [("helper", scope, owner)]
    digest_a = _get(c, "/registry/digest", scope="team-a")
    digest_b = _get(c, "/registry/digest", scope="team-b")
    assert (digest_a["agents"], digest_b["agents"]) == (1, 1)
    assert digest_a["digest"] != digest_b["digest"]

    watch_a, watch_b = Watch(c, "?scope=team-a"), Watch(c, "?scope=team-b")
    for watch, owner in ((watch_a, "a"), (watch_b, "b")):
        snapshot = watch.next()
        assert [(x["id"], x["node_id"]) for x in snapshot.data["agents"]] == [("helper", owner)]

    gone = b.request("DELETE", "/agents/helper?scope=team-b")
    assert gone.status == 204
    assert _absent(c, "helper", "team-b", gone.headers["x-caxton-token"])
    assert _get(c, "/agents/helper", scope="team-a")["card"] == card_a
    removed = watch_b.next()
    assert (removed.kind, removed.data["scope"]) == ("removed", "team-b")
    # team-a's watch hears its own next change first: team-b's removal never reached it.
    _put(a, "helper", {"card": card_a, "capabilities": ["triage", "escalate"]}, scope="team-a")
    updated = watch_a.next()
    assert (updated.kind, updated.data["scope"]) == ("updated", "team-a")
    assert updated.data["capabilities"] == ["triage", "escalate"]
    watch_a.close()
    watch_b.close()
    assert _get(c, "/registry/digest", scope="team-b")["agents"] == 0
    assert _get(c, "/registry/digest", scope="team-a")["agents"] == 1

    # d serves team-a only: it has the agent, and names what it serves when asked for more.
    assert _get(d, "/agents/helper", scope="team-a", after=token_a, timeout=WAIT)["node_id"] == "a"
    for path in (
        "/agents/helper?scope=team-b",
        "/agents?scope=team-b",
        "/agents/watch?scope=team-b",
        "/registry/digest?scope=team-b",
        "/scopes/team-b/agents/helper/.well-known/agent-card.json",
    ):
        refused = d.request("GET", path)
        assert refused.status == 404, path
        description = refused.json["description"]
        assert "scope 'team-b'" in description, description
        assert "it serves team-a" in description, description


def _writes_then_reads(writer: NodeProcess, reader: NodeProcess, client: int) -> tuple[int, int]:
    """``ROUNDS // CLIENTS`` times: update the client's agent on ``writer``, then read it on
    ``reader`` at once, on two keep-alive connections. How many reads showed the write, and
    the last version written."""
    put = http.client.HTTPConnection("127.0.0.1", writer.port, timeout=10)
    get = http.client.HTTPConnection("127.0.0.1", reader.port, timeout=10)
    agent_id, seen, version = f"rw-{client}", 0, 0
    try:
        for i in range(ROUNDS // CLIENTS):
            body = json.dumps({"capabilities": [f"round-{i}"]})
            put.request("PUT", f"/agents/{agent_id}", body, {"Content-Type": "application/json"})
            written = json.loads(put.getresponse().read())
            version = written["version"]
            get.request("GET", f"/agents/{agent_id}?after={written['token']}&timeout={WAIT}")
            answer = get.getresponse()
            read = json.loads(answer.read())
            seen += answer.status == 200 and read["capabilities"] == [f"round-{i}"]
    finally:
        put.close()
        get.close()
    return seen, version


def test_a_read_after_a_write_on_another_node_sees_it_every_time(quad: Cluster) -> None:
    """A read waits for the next gossip round (0.2 s on lan) and a pull: one client after
    another, 1,000 rounds took 159 s; ``CLIENTS`` clients share them out."""
    a, c = quad.nodes["a"], quad.nodes["c"]
    started = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(lambda n: _writes_then_reads(a, c, n), range(CLIENTS)))
    took = time.monotonic() - started
    seen = sum(count for count, _ in results)
    assert seen == ROUNDS, f"{seen}/{ROUNDS} reads saw the write just made"
    assert took < 90, f"{ROUNDS} writes and reads took {took:.1f} s"

    head = max(version for _, version in results)
    version = head + 10**9  # no node has it
    asked = time.monotonic()
    late = c.request("GET", f"/agents/rw-0?after=a:{version}&timeout=1")
    waited = time.monotonic() - asked
    assert late.status == 504
    description = late.json["description"]
    assert f"holds a up to version {head}" in description, description
    assert f"needs {version}" in description, description
    assert 1.0 <= waited < 4.0, f"{waited:.1f} s"
