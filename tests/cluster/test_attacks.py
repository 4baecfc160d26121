"""The attack battery: forged gossip from a plain socket against real node processes.

Two clusters of three nodes on loopback, one sealed with gossip keys and one in
plaintext. The attacker is a bare UDP or TCP socket that sends bytes built with
the codec: on the sealed cluster the same plaintext bytes, and the same packets
sealed with a key no node has. The sealed cluster must not notice at all; the
plaintext one cannot tell a forgery from the truth, but must survive it: no node
crashes or stops answering, none is excluded for good, no agent changes owner
and no route is re-pointed for good.

A cluster is shared by the tests of its mode; an attack that could leave a
plaintext cluster changed for good gets a cluster of its own. Bounds have room:
the machine is shared.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import re
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from caxton_actors.address import Address
from caxton_actors.engine.messages import Packet
from caxton_actors.registry.records import AgentRecord, AgentUpdate, Head, RegistryPull
from caxton_actors.swim.members import MAX_INCARNATION
from caxton_actors.swim.messages import (
    Alive,
    Dead,
    Gossip,
    Left,
    MemberRecord,
    State,
    StateSync,
    Update,
)
from caxton_actors.wire.channel import Channel
from caxton_actors.wire.codec import MAX_DATAGRAM, MAX_STREAM_REQUEST, encode
from caxton_actors.wire.keyring import Keyring, generate_key, parse_key
from tests.cluster.conftest import Cluster, fresh_port, wait_until
from tests.integration.conftest import NodeProcess

MODES = ("encrypted", "plaintext")
REAL = ("n0", "n1", "n2")
LABEL = "caxton"
OBSERVE = 2.0
"""Seconds to watch for an effect: a forgery acts as it arrives, and in this time it would
have been spread in twenty gossip rounds and two protocol periods (local profile)."""
RECOVER = 10.0  # seconds a member gets to refute a lie about itself: room on a loaded machine
SETTLE = 20.0  # seconds a cluster gets to settle before and after an attack
WRONG = Channel(LABEL, Keyring((parse_key(generate_key()),)))
"""An attacker that knows the protocol, but not the cluster's key."""
TOP = 2**63 - 1  # the largest incarnation or version the codec lets through


@dataclass
class Target:
    """A running cluster under attack, and what it looked like before."""

    cluster: Cluster
    encrypted: bool
    home: dict[str, tuple[str, str]]
    """Each real node's gossip and HTTP address, as it started."""

    def node(self, name: str) -> NodeProcess:
        return self.cluster.nodes[name]

    def gossip(self, name: str) -> tuple[str, int]:
        return "127.0.0.1", self.cluster.gossip_ports[name]

    def route(self, name: str) -> str:
        return f"http://{self.home[name][1]}"

    def forge(self, packet: Packet, limit: int = MAX_DATAGRAM) -> list[bytes]:
        """What the attacker sends: plaintext, and with keys also sealed with a wrong key."""
        forged = [encode(packet, LABEL, limit)]
        if self.encrypted:
            forged.append(WRONG.pack(packet, limit))
        return forged

    def send(self, to: str, packet: Packet) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for data in self.forge(packet):
                sock.sendto(data, self.gossip(to))

    def members(self, name: str) -> dict[str, dict[str, Any]]:
        listed = self.node(name).request("GET", "/members").json["members"]
        return {m["name"]: m for m in listed}

    def mark(self) -> dict[str, int]:
        """Where each node's log ends now: what it logs later is what an attack did."""
        return {name: self.node(name).log_path.stat().st_size for name in REAL}

    def declared_since(self, mark: dict[str, int], member: str, state: str) -> list[str]:
        """The nodes whose log shows ``member`` turning ``state`` since ``mark``."""
        pattern = re.compile(rf"member {member} \w+ -> {state} ")
        found = []
        for name in REAL:
            with self.node(name).log_path.open("rb") as log:
                log.seek(mark[name])
                if pattern.search(log.read().decode(errors="replace")):
                    found.append(name)
        return found

    def believed(self, mark: dict[str, int], member: str, state: str) -> None:
        """Wait until a node shows that it took a forgery about ``member`` in (plaintext)."""
        wait_until(
            lambda: bool(self.declared_since(mark, member, state)),
            5,
            f"the forged {state} of {member} believed",
        )

    def intact(self) -> bool:
        """Every node runs and lists exactly the real nodes, alive, where they really are."""
        for name in REAL:
            if self.node(name).proc.poll() is not None:
                return False
            members = self.members(name)
            if set(members) != set(REAL):
                return False
            for member, m in members.items():
                where = (m["address"], m["http_address"])
                if m["state"] != "alive" or where != self.home[member]:
                    return False
        return True

    def assert_intact(self) -> None:
        wait_until(self.intact, SETTLE, "every node lists exactly n0..n2, alive, at home")

    def register(self, on: str, agent_id: str) -> None:
        reply = self.node(on).request("PUT", f"/agents/{agent_id}", {"capabilities": ["attacked"]})
        assert reply.status == 201, reply.raw

    def owned_everywhere(self, agent_id: str, owner: str) -> bool:
        """Whether every node routes ``agent_id`` to ``owner``, active."""
        expected = {
            "agent_id": agent_id,
            "node_id": owner,
            "route": self.route(owner),
            "status": "active",
        }
        for name in REAL:
            reply = self.node(name).request("GET", f"/agents/{agent_id}/route")
            if reply.status != 200 or reply.json != expected:
                return False
        return True

    def incarnation(self, member: str, seen_by: str = "n0") -> int:
        value: int = self.members(seen_by)[member]["incarnation"]
        return value


def start_target(workdir: Path, encrypted: bool) -> Target:
    cluster = Cluster(workdir)
    keys = ("--gossip-keys", generate_key()) if encrypted else ()
    try:
        for i, name in enumerate(REAL):
            cluster.start(name, ["n0"] if i else [], "--gossip-profile", "local", *keys)
        home = {
            name: (f"127.0.0.1:{cluster.gossip_ports[name]}", f"127.0.0.1:{node.port}")
            for name, node in cluster.nodes.items()
        }
        target = Target(cluster, encrypted, home)
        target.assert_intact()
        for name in REAL:
            assert target.node(name).request("GET", "/members").json["encrypted"] is encrypted
    except BaseException:
        cluster.stop_all()
        raise
    return target


@pytest.fixture(scope="module", params=MODES)
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    mode: str = request.param
    target = start_target(tmp_path_factory.mktemp(mode), mode == "encrypted")
    yield target
    target.cluster.stop_all()


@pytest.fixture
def target(shared: Target) -> Target:
    """The shared cluster of this mode, settled after whatever the last test did to it."""
    shared.assert_intact()
    return shared


@contextlib.contextmanager
def own_cluster(target: Target, workdir: Path) -> Iterator[Target]:
    """A cluster this attack may change for good: the shared one when its keys turn every
    forgery away, else a plaintext cluster of its own."""
    if target.encrypted:
        yield target
        return
    isolated = start_target(workdir, encrypted=False)
    try:
        yield isolated
    finally:
        isolated.cluster.stop_all()


def health_within(node: NodeProcess, seconds: float) -> float:
    """How long ``GET /health`` took; fails if it got no 200 within ``seconds``."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=seconds)
    try:
        conn.request("GET", "/health")
        status = conn.getresponse().status
    except OSError as exc:
        raise AssertionError(f"/health gave no answer within {seconds}s: {exc}") from None
    finally:
        conn.close()
    took = time.monotonic() - started
    assert status == 200
    assert took < seconds, f"/health took {took:.2f}s"
    return took


def stream_request(to: tuple[str, int], data: bytes, timeout: float = 10.0) -> bytes:
    """One stream message, as a node sends it; whatever comes back (b"": closed unanswered)."""
    chunks = []
    with (
        socket.create_connection(to, timeout=timeout) as sock,
        contextlib.suppress(OSError),  # the node may hang up before it has read it all
    ):
        sock.sendall(struct.pack(">I", len(data)) + data)
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# 1. A forged goodbye.


def test_forged_leave_of_a_live_node_is_refuted(target: Target, tmp_path: Path) -> None:
    with own_cluster(target, tmp_path) as attacked:
        mark = attacked.mark()
        claimed = attacked.incarnation("n1") + 1
        attacked.send("n0", Packet("n2", Gossip(), (Left("n1", claimed),)))
        if attacked.encrypted:
            time.sleep(OBSERVE)
            assert attacked.declared_since(mark, "n1", "left") == []
        else:
            attacked.believed(mark, "n1", "left")  # plaintext cannot tell it from the truth
        wait_until(attacked.intact, RECOVER, "n1 alive everywhere")  # until n1 refutes it
        assert attacked.declared_since(mark, "n1", "dead") == []


# 2. A death at the largest incarnation the codec lets through, and at the ceiling.


def test_forged_death_at_the_top_incarnation_is_ignored(target: Target) -> None:
    mark = target.mark()
    forged = Packet("n2", Gossip(), (Dead("n1", TOP, "n2"),))
    for name in ("n0", "n2"):
        target.send(name, forged)
    time.sleep(OBSERVE)
    assert target.intact()
    assert all(target.incarnation("n1", seen_by=n) < MAX_INCARNATION for n in REAL)
    assert target.declared_since(mark, "n1", "dead") == []
    assert target.declared_since(mark, "n1", "suspect") == []


def test_claims_at_the_incarnation_ceiling_are_refuted_by_their_subjects(
    target: Target, tmp_path: Path
) -> None:
    """A claim far past a live member's incarnation is not believed, keys or not."""
    with own_cluster(target, tmp_path) as attacked:
        agent = f"n2-ceiling-{attacked.encrypted}"
        attacked.register("n2", agent)
        wait_until(lambda: attacked.owned_everywhere(agent, "n2"), SETTLE, "n2's agent everywhere")
        mark = attacked.mark()
        real = Address("127.0.0.1", attacked.gossip("n2")[1])
        forged = (
            Dead("n1", MAX_INCARNATION, "n2"),
            Alive("n2", MAX_INCARNATION, real, (("http", "10.9.9.9:80"),)),
        )
        attacked.send("n0", Packet("n2", Gossip(), forged))
        time.sleep(OBSERVE)
        assert attacked.declared_since(mark, "n1", "dead") == []
        wait_until(
            lambda: attacked.intact() and attacked.owned_everywhere(agent, "n2"),
            RECOVER,
            "n1 alive and n2 routed home everywhere",
        )


# 3. A forged join that would move a node.


def test_forged_join_moves_no_node_and_no_route(target: Target) -> None:
    agent = f"n1-agent-{target.encrypted}"
    target.register("n1", agent)
    wait_until(lambda: target.owned_everywhere(agent, "n1"), SETTLE, "n1's agent everywhere")
    elsewhere = Address("127.0.0.1", fresh_port())
    forged = Alive("n1", target.incarnation("n1") + 1, elsewhere, (("http", "10.9.9.9:80"),))
    for name, sender in (("n0", "n2"), ("n2", "n0")):
        target.send(name, Packet(sender, Gossip(), (forged,)))
    deadline = time.monotonic() + OBSERVE
    while time.monotonic() < deadline:
        for name in REAL:
            n1 = target.members(name)["n1"]
            assert (n1["address"], n1["http_address"]) == target.home["n1"], name
        assert target.owned_everywhere(agent, "n1")
        time.sleep(0.2)
    assert target.intact()


def test_forged_join_at_the_real_address_is_undone_by_its_subject(target: Target) -> None:
    """Plaintext cannot tell this lie from the truth, but n1 hears it and outbids it."""
    agent = f"n1-rejoined-{target.encrypted}"
    target.register("n1", agent)
    wait_until(lambda: target.owned_everywhere(agent, "n1"), SETTLE, "n1's agent everywhere")
    mark = target.mark()
    real = Address("127.0.0.1", target.gossip("n1")[1])
    forged = Alive("n1", target.incarnation("n1") + 1, real, (("http", "10.9.9.9:80"),))
    target.send("n0", Packet("n2", Gossip(), (forged,)))
    if target.encrypted:
        time.sleep(OBSERVE)
        assert target.declared_since(mark, "n1", "alive") == []
    else:
        target.believed(mark, "n1", "alive")  # n0 took in the new http address
    wait_until(
        lambda: target.intact() and target.owned_everywhere(agent, "n1"),
        RECOVER,
        "n1 and its agent routed home everywhere",
    )


# 4. Registry heads of a phantom owner, and of a real one far in the future.


def test_forged_registry_heads_take_over_no_agent(target: Target) -> None:
    before = f"n2-before-{target.encrypted}"
    target.register("n2", before)
    wait_until(lambda: target.owned_everywhere(before, "n2"), SETTLE, "n2's agent everywhere")
    now_ms = time.time_ns() // 1_000_000
    heads = (
        Head("ghost", TOP),
        Head("ghost", now_ms),
        Head("n2", MAX_INCARNATION),
    )
    for name in REAL:
        for sender in REAL:
            if sender != name:
                target.send(name, Packet(sender, Gossip(), (), heads))
    time.sleep(OBSERVE)
    for name in REAL:
        listed = target.node(name).request("GET", "/agents?limit=1000").json["agents"]
        assert "ghost" not in {a["node_id"] for a in listed}, name
    assert target.owned_everywhere(before, "n2")
    after = f"n2-after-{target.encrypted}"
    target.register("n2", after)
    wait_until(lambda: target.owned_everywhere(after, "n2"), 10, "n2's new agent everywhere")
    assert target.intact()


# 5. A pushed table of 10,000 made-up members.


def test_an_oversized_state_push_leaves_the_real_members_alive(
    target: Target, tmp_path: Path
) -> None:
    with own_cluster(target, tmp_path) as attacked:
        mark = attacked.mark()
        fakes = tuple(
            MemberRecord(
                f"fake-{i}",
                Address("127.0.0.2", 10_000 + i),
                1,
                State.ALIVE,
                (("http", "127.0.0.2:80"),),
            )
            for i in range(10_000)
        )
        packet = Packet("n2", StateSync(fakes, reply=True))
        n0 = attacked.node("n0")
        pushed = threading.Thread(
            target=lambda: [
                stream_request(attacked.gossip("n0"), data)
                for data in attacked.forge(packet, MAX_STREAM_REQUEST)
            ]
        )
        pushed.start()
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            health_within(n0, 2.0)
            time.sleep(0.2)
        pushed.join(timeout=15)
        assert n0.proc.poll() is None
        if attacked.encrypted:
            attacked.assert_intact()
        else:
            for name in REAL:
                members = attacked.members(name)
                assert {n: members[n]["state"] for n in REAL} == dict.fromkeys(REAL, "alive")
                for member in REAL:
                    where = (members[member]["address"], members[member]["http_address"])
                    assert where == attacked.home[member]
        for member in REAL:
            assert attacked.declared_since(mark, member, "dead") == []


# 6. Pull answers nobody asked for.


def test_unasked_agent_updates_add_no_agent(target: Target) -> None:
    now_ms = time.time_ns() // 1_000_000
    tag = f"forged{int(target.encrypted)}"

    def update(batch: int, size: int) -> AgentUpdate:
        records = tuple(
            AgentRecord("n1", f"{tag}-{batch}-{i}", now_ms + i, (tag,), now_ms) for i in range(size)
        )
        return AgentUpdate(records, (Head("n1", now_ms + 10_000),))

    for batch in range(50):
        target.send(["n0", "n2"][batch % 2], Packet("n1", update(batch, 5)))
    for data in target.forge(Packet("n1", update(50, 200)), MAX_STREAM_REQUEST):
        stream_request(target.gossip("n0"), data)
    time.sleep(OBSERVE)
    for name in REAL:
        node = target.node(name)
        assert node.request("GET", f"/agents?capability={tag}").json["agents"] == [], name
        assert node.request("GET", f"/agents/{tag}-0-0").status == 404, name
    assert target.intact()


# 7. A flood of idle connections on the gossip port.


def test_a_connection_flood_suspects_no_one(target: Target) -> None:
    mark = target.mark()
    n0 = target.node("n0")
    held: list[socket.socket] = []
    try:
        for _ in range(300):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            code = sock.connect_ex(target.gossip("n0"))
            assert code in (0, errno.EINPROGRESS), errno.errorcode.get(code)
            held.append(sock)
        deadline = time.monotonic() + 5.0  # a stream's timeout
        while time.monotonic() < deadline:
            health_within(n0, 2.0)
            for name in REAL:
                states = {n: m["state"] for n, m in target.members(name).items()}
                assert states == dict.fromkeys(REAL, "alive"), name
            time.sleep(0.3)
    finally:
        for sock in held:
            sock.close()
    for member in REAL:
        assert target.declared_since(mark, member, "suspect") == []
        assert target.declared_since(mark, member, "dead") == []
    agent = f"n0-after-flood-{target.encrypted}"
    target.register("n0", agent)  # the others pull it from n0's gossip port
    wait_until(lambda: target.owned_everywhere(agent, "n0"), SETTLE, "n0's agent everywhere")
    assert target.intact()


# 8. Addresses that are no IP literal.


def test_joins_with_a_nul_or_a_host_name_are_dropped(target: Target) -> None:
    n0 = target.node("n0")
    port = fresh_port()
    claims: list[Update] = []
    for host in ("\u0000", "example.invalid"):
        claims += [
            Alive("n1", target.incarnation("n1") + 1, Address(host, port)),
            Alive("stranger", 1, Address(host, port), (("http", f"{host}:80"),)),
        ]
    for claim in claims:
        target.send("n0", Packet("n2", Gossip(), (claim,)))
    time.sleep(1.0)
    assert n0.proc.poll() is None
    assert n0.request("GET", "/members").status == 200
    assert target.intact()


# 9. A full-state exchange as a datagram, naming the attacker's listener.


def test_a_state_sync_datagram_opens_no_connection(target: Target) -> None:
    port = fresh_port()
    lure = MemberRecord(
        "lure", Address("127.0.0.1", port), 1, State.ALIVE, (("http", f"127.0.0.1:{port}"),)
    )
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        listener.bind(("127.0.0.1", port))
        listener.listen(16)
        sender.bind(("127.0.0.1", port))  # a reply to the source would come here too
        for data in target.forge(Packet("lure", StateSync((lure,), reply=True))):
            sender.sendto(data, target.gossip("n0"))
        readable, _, _ = select.select([listener], [], [], 3.0)
        assert readable == [], "a node connected to the address in a state_sync datagram"
    assert "lure" not in target.members("n0")
    assert target.intact()


# 10. No amplification.


def _pull_of(size: int) -> Packet:
    """A registry pull whose plaintext envelope is exactly ``size`` bytes."""
    for length in range(1, 64):
        packet = Packet("n2", RegistryPull((Head("n1", 0), Head("n" * length, 0))))
        if len(encode(packet, LABEL)) == size:
            return packet
    raise AssertionError(f"no pull of {size} bytes")


def test_a_registry_pull_datagram_is_not_amplified(target: Target) -> None:
    size = 90
    packet = _pull_of(size)
    sockets = []
    try:
        for data in target.forge(packet):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sock.sendto(data, target.gossip("n0"))
            sockets.append(sock)
        received = dict.fromkeys(sockets, 0)
        deadline = time.monotonic() + 2.0
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select(sockets, [], [], left)
            for sock in readable:
                received[sock] += len(sock.recv(65536))
        assert all(total <= 3 * size for total in received.values()), received
    finally:
        for sock in sockets:
            sock.close()
    assert target.intact()


# 11. A node with the wrong key.


@pytest.mark.parametrize("shared", [MODES[0]], indirect=True)
def test_a_node_with_a_wrong_key_never_joins(target: Target) -> None:
    cluster = target.cluster
    intruder = cluster.start(
        "intruder", ["n0"], "--gossip-profile", "local", "--gossip-keys", generate_key()
    )
    try:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            for name in REAL:
                assert "intruder" not in target.members(name), name
            time.sleep(0.5)
        assert set(cluster.view("intruder")) == {"intruder"}
    finally:
        intruder.proc.kill()
        intruder.proc.wait(timeout=10)
    assert target.intact()
