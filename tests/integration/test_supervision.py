"""Supervision: each actor crashed by an injected fault, and the node heals or exits.

Nodes run in this process (real actors, real SQLite, real HTTP on loopback, gossip over
``tests/support/memnet.py``), so a fault is injected the way a bug would strike: a
method of the actor's stage raises once, monkeypatched, and the actor is sent what
makes it call that method. Nothing a client can reach injects anything. HTTP and
statsd are read through gevent sockets: a blocking socket would stall the node's hub.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import gevent.socket
import pykka
import pytest

from caxton_actors import metrics
from caxton_actors.actors.http import HttpActor
from caxton_actors.actors.membership import ListMembers
from caxton_actors.actors.registry import GetAgent, PutAgent
from caxton_actors.address import Address
from caxton_actors.config import Config, GossipConfig, HttpConfig, StatsdConfig
from caxton_actors.engine.detection import DetectionStage
from caxton_actors.engine.membership import MembershipStage
from caxton_actors.engine.messages import MemberState, Tick
from caxton_actors.engine.registry import RegistryStage
from caxton_actors.node import Node
from caxton_actors.runtime.actor import Ping, ask
from caxton_actors.runtime.supervisor import MAX_RESTARTS
from caxton_actors.swim.messages import MemberRecord, State
from tests.integration.conftest import free_port
from tests.support.memnet import MemoryNetwork

PERIOD = 0.3  # seconds: the protocol period of the gossiping nodes
TIMEOUT = 5.0
StartNode = Callable[..., Node]


class Fault(Exception):
    """The crash a test injects."""


class Statsd:
    """A statsd server's socket, read by a greenlet on the nodes' own hub."""

    def __init__(self) -> None:
        self._sock = gevent.socket.socket(gevent.socket.AF_INET, gevent.socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self.address = Address("127.0.0.1", self._sock.getsockname()[1])
        self.lines: list[str] = []
        self._reader = gevent.spawn(self._read)

    def _read(self) -> None:
        while True:
            self.lines.extend(self._sock.recv(65536).decode().splitlines())

    def close(self) -> None:
        self._reader.kill()
        self._sock.close()


@pytest.fixture
def statsd() -> Iterator[Statsd]:
    server = Statsd()
    yield server
    server.close()


def _config(name: str, data: Path, statsd: Statsd, seed: Address | None, gossip: bool) -> Config:
    seeds = () if seed is None else (seed,)
    return Config(
        node_name=name,
        sqlite_path=data / f"{name}.db",
        http=HttpConfig(bind_address=Address("127.0.0.1", 0)),
        gossip=GossipConfig(
            enabled=gossip,
            bind_address=Address("127.0.0.1", 0),
            seed_nodes=seeds,
            gossip_interval=PERIOD,
            profile="local",
        ),
        statsd=StatsdConfig(statsd.address),
    )


@pytest.fixture
def start(tmp_path: Path, statsd: Statsd) -> Iterator[StartNode]:
    """Start a node: alone, or on ``network`` joining through ``seed``; stopped after."""
    running: list[Node] = []

    def start_node(
        name: str,
        network: MemoryNetwork | None = None,
        seed: Node | None = None,
        data: Path = tmp_path,
    ) -> Node:
        joins = None if seed is None else seed.gossip_address
        config = _config(name, data, statsd, joins, gossip=network is not None)
        node = Node(config) if network is None else Node(config, network.transport)
        node.start()
        running.append(node)
        return node

    yield start_node
    for node in running:
        node.stop()


def _eventually(check: Callable[[], bool], what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not within {within} s: {what}"
        gevent.sleep(0.05)


def _get(node: Node, path: str) -> tuple[int, Any]:
    """One request on a connection of its own, read to its end."""
    host, port = node.http_address.rsplit(":", 1)
    with gevent.Timeout(15):
        sock = gevent.socket.create_connection((host, int(port)))
        try:
            request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            sock.sendall(request.encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        finally:
            sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body) if body else None


def _fail_once(
    monkeypatch: pytest.MonkeyPatch,
    owner: type,
    method: str,
    on: Callable[[Any], bool] = lambda _: True,
) -> list[str]:
    """Make ``owner.method`` raise :class:`Fault` the next time it is called on an
    object ``on`` accepts (one node's stage, where several share the class), once;
    what it returns lists the faults raised."""
    real = getattr(owner, method)
    raised: list[str] = []

    def failing(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not raised and on(self):
            raised.append(f"{owner.__name__}.{method}")
            raise Fault(f"injected into {owner.__name__}.{method}")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(owner, method, failing)
    return raised


def _held(monkeypatch: pytest.MonkeyPatch, method: str, calls_free: int = 0) -> gevent.event.Event:
    """Hold ``Node.method`` (an actor's restart) after ``calls_free`` calls until the
    event is set: the window in which the actor is dead, made long enough to look at.
    Patch before the node starts: its supervisor keeps the bound method."""
    real = getattr(Node, method)
    gate = gevent.event.Event()
    calls: list[None] = []

    def held(self: Node) -> Any:
        if len(calls) >= calls_free:
            gate.wait()
        calls.append(None)
        return real(self)

    monkeypatch.setattr(Node, method, held)
    return gate


def _restarts(statsd: Statsd, actor: str) -> int:
    name = f"{metrics.ACTOR_RESTARTS}.{actor}:"
    return sum(
        int(line[len(name) :].split("|")[0]) for line in statsd.lines if line.startswith(name)
    )


def _member(node: Node, about: str) -> MemberRecord | None:
    assert node.membership is not None
    views = ask(node.membership, ListMembers(), TIMEOUT)
    return next((v.record for v in views if v.record.name == about), None)


def _alive(node: Node, about: str) -> bool:
    record = _member(node, about)
    return record is not None and record.state is State.ALIVE


def _pair(start: StartNode, network: MemoryNetwork) -> tuple[Node, Node]:
    first = start("n0", network)
    second = start("n1", network, first)
    _eventually(
        lambda: _alive(first, "n1") and _alive(second, "n0"), "the two nodes see each other"
    )
    return first, second


# Each actor, crashed once: restarted, counted, and dead to /health only meanwhile.


def test_a_crashed_registry_is_dead_to_health_then_reloaded_from_its_file(
    start: StartNode, statsd: Statsd, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = _held(monkeypatch, "_restart_registry")
    node = start("solo")
    ask(node.registry, PutAgent("kept", ("plan",)), TIMEOUT)
    fault = _fail_once(monkeypatch, RegistryStage, "handle")
    node.registry.tell(MemberState("solo", True, node.http_address))

    _eventually(lambda: bool(fault) and not node.registry.is_alive(), "the registry crashed")
    assert _get(node, "/health") == (
        503,
        {"status": "unavailable", "failed": ["the registry actor is not running"]},
    )
    status, body = _get(node, "/health/ready")
    assert (status, body["failed"]) == (503, ["the registry actor is not running"])

    gate.set()
    _eventually(lambda: _get(node, "/health")[0] == 200, "the registry is back")
    kept = ask(node.registry, GetAgent("kept"), TIMEOUT)
    assert kept is not None
    assert kept.capabilities == ("plan",)
    assert _get(node, "/health/ready") == (200, {"status": "ready", "failed": []})
    _eventually(lambda: _restarts(statsd, "registry") == 1, "one restart counted")


def test_a_crashed_http_actor_serves_again_on_the_same_port(
    start: StartNode, statsd: Statsd, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = _held(monkeypatch, "_start_http", calls_free=1)
    node = start("solo")
    [server] = pykka.ActorRegistry.get_by_class(HttpActor)
    _fail_once(monkeypatch, HttpActor, "on_receive")
    server.tell(Ping())
    _eventually(lambda: not server.is_alive(), "the HTTP actor crashed")

    waiting = gevent.spawn(_get, node, "/health")  # queued on the port, which stays open
    gevent.sleep(0.3)
    assert not waiting.ready()
    gate.set()
    assert waiting.get(timeout=TIMEOUT) == (200, {"status": "ok"})
    _eventually(lambda: _restarts(statsd, "http") == 1, "one restart counted")


def test_a_crashed_membership_actor_rejoins_and_its_node_stays_alive(
    start: StartNode, statsd: Statsd, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _pair(start, MemoryNetwork(seed=11))
    before = _member(first, "n1")
    assert before is not None
    dead_seen: list[MemberRecord] = []
    fault = _fail_once(monkeypatch, MembershipStage, "handle", lambda s: s.members.name == "n1")
    assert second.membership is not None
    second.membership.tell(Tick())
    _eventually(lambda: _restarts(statsd, "membership") == 1, "one restart counted")
    assert fault

    def rejoined() -> bool:
        seen = _member(first, "n1")
        if seen is not None and seen.state is State.DEAD:
            dead_seen.append(seen)
        return seen is not None and seen.incarnation > before.incarnation and _alive(second, "n0")

    _eventually(rejoined, "n0 takes n1's higher incarnation; n1 knows n0 again")
    assert not dead_seen
    assert _alive(first, "n1")
    ask(second.registry, PutAgent("after-restart", ()), TIMEOUT)  # heads spread again
    _eventually(
        lambda: ask(first.registry, GetAgent("after-restart"), TIMEOUT) is not None,
        "a registration on the restarted node reaches its peer",
    )
    assert _get(second, "/health")[0] == 200


def test_a_crashed_detector_is_retold_every_member_and_still_detects(
    start: StartNode, statsd: Statsd, monkeypatch: pytest.MonkeyPatch
) -> None:
    network = MemoryNetwork(seed=12)
    first, second = _pair(start, network)
    fault = _fail_once(monkeypatch, DetectionStage, "handle", lambda s: s.prober.name == "n0")
    _eventually(lambda: _restarts(statsd, "detector") == 1, "one restart counted")
    assert fault
    assert _get(first, "/health")[0] == 200
    assert second.gossip_address is not None
    network.silence(second.gossip_address)
    # Only a detector that probes n1 can suspect it: the fresh one learnt of n1 from
    # membership (Restarted), as no member has changed since.
    _eventually(lambda: not _alive(first, "n1"), "n0 suspects the silent n1")


# Crash loops, and readiness.


def test_a_crash_loop_stops_the_node(start: StartNode, monkeypatch: pytest.MonkeyPatch) -> None:
    node = start("solo")

    def always(self: RegistryStage, *args: Any, **kwargs: Any) -> Any:
        raise Fault("injected: always")

    monkeypatch.setattr(RegistryStage, "handle", always)
    node.registry.tell(MemberState("solo", True, node.http_address))  # and each restart does
    _eventually(lambda: node.failure is not None, "the supervisor gives up")
    assert node.failure == (
        f"the registry actor crashed (Fault: injected: always), after {MAX_RESTARTS} "
        "restarts within 60s"
    )
    _eventually(lambda: not pykka.ActorRegistry.get_by_class(HttpActor), "the node stopped")
    with pytest.raises(RuntimeError, match="not running"):
        _ = node.registry


CRASH_LOOP = """
import sys
from caxton_actors.engine.registry import RegistryStage
def always(self, *args, **kwargs):
    raise RuntimeError("injected: always")
RegistryStage.handle = always
from caxton_actors.cli import main
sys.exit(main())
"""


def test_caxton_actors_run_exits_non_zero_on_a_crash_loop(tmp_path: Path) -> None:
    """``caxton-actors run`` itself, in a process whose registry stage always raises."""
    port = free_port()
    command = [sys.executable, "-c", CRASH_LOOP, "run", "--node-name", "looping"]
    command += ["--sqlite-path", str(tmp_path / "s.db"), "--http-bind", f"127.0.0.1:{port}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAXTON_")}
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1, done.stderr
    reason = f"the registry actor crashed (RuntimeError: injected: always), after {MAX_RESTARTS}"
    assert f"caxton-actors: stopped: {reason} restarts within 60s" in done.stderr
    log = done.stderr
    crash = "the registry actor crashed (RuntimeError: injected: always)"
    assert log.count(f"{crash}; restarting it (restart") == MAX_RESTARTS
    assert log.count(f"{crash}, after {MAX_RESTARTS} restarts within 60s: stopping") == 1
    assert "Unhandled exception" not in log  # pykka's own record: each crash is logged once


def test_ready_says_the_database_is_locked(start: StartNode) -> None:
    node = start("solo")
    holder = sqlite3.connect(node.config.sqlite_path, timeout=5, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # another writer, past the 1 s busy timeout
        status, body = _get(node, "/health/ready")
        assert status == 503
        assert body["failed"] == ["the database cannot write: database is locked"]
        assert _get(node, "/health")[0] == 200  # alive: nothing for a restart to fix
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    _eventually(lambda: _get(node, "/health/ready")[0] == 200, "ready once the lock is gone")


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: a disk that fills. Needs root and mount rights (a container's
    may lack them)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs to fill needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    tmpfs = ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)]
    mounted = subprocess.run(tmpfs, check=False, capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("mount -t tmpfs is not permitted here")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(path: Path) -> None:
    """Write ``path`` until the disk has not a byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (65536, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)


def test_ready_says_the_disk_is_full(tiny_disk: Path, start: StartNode) -> None:
    node = start("solo", data=tiny_disk)
    assert _get(node, "/health/ready")[0] == 200
    filler = tiny_disk / "filler"
    _fill(filler)
    try:
        gevent.sleep(1.1)  # past the last probe's answer
        status, body = _get(node, "/health/ready")
        assert status == 503
        assert body["failed"] == ["the database cannot write: database or disk is full"]
    finally:
        filler.unlink()
    _eventually(lambda: _get(node, "/health/ready")[0] == 200, "ready once there is room")


@pytest.mark.skip(
    reason="a file cannot turn read-only under a running node: chmod leaves its open "
    "descriptors writable (and root writes anyway), and remounting read-only fails while "
    "the node holds the file open for writing. The probe writes, so it meets a read-only "
    "file as it meets a full disk: SQLite says 'attempt to write a readonly database'."
)
def test_ready_says_the_database_is_read_only() -> None:
    """Kept as a place for a test on a system that can flip a mount read-only."""
