"""Every gauge reaches statsd at a steady interval, not only when it changes.

Real nodes run in this process (real actors, SQLite and HTTP; gossip over
``tests/support/memnet.py``) with ``metrics.GAUGE_INTERVAL`` made short, and send to a
real UDP socket read by a greenlet on the nodes' own hub (a blocking socket would
stall it).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import gevent
import gevent.socket
import pytest

from caxton_actors import metrics
from caxton_actors.address import Address
from caxton_actors.config import Config, GossipConfig, HttpConfig, StatsdConfig
from caxton_actors.node import Node
from tests.support.memnet import MemoryNetwork

INTERVAL = 0.2  # seconds: GAUGE_INTERVAL in these tests
StartNode = Callable[..., Node]


class Statsd:
    """A statsd server's socket, read by a greenlet."""

    def __init__(self) -> None:
        self._sock = gevent.socket.socket(gevent.socket.AF_INET, gevent.socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self.address = Address("127.0.0.1", self._sock.getsockname()[1])
        self.lines: list[tuple[float, str]] = []
        """Each line with when it arrived (monotonic)."""
        self._reader = gevent.spawn(self._read)

    def _read(self) -> None:
        while True:
            data = self._sock.recv(65536).decode()
            self.lines += [(time.monotonic(), line) for line in data.splitlines()]

    def times(self, line: str, since: float = 0.0) -> list[float]:
        return [at for at, got in self.lines if got == line and at >= since]

    def close(self) -> None:
        self._reader.kill()
        self._sock.close()


@pytest.fixture
def statsd() -> Iterator[Statsd]:
    server = Statsd()
    yield server
    server.close()


@pytest.fixture
def start(tmp_path: Path, statsd: Statsd, monkeypatch: pytest.MonkeyPatch) -> Iterator[StartNode]:
    monkeypatch.setattr(metrics, "GAUGE_INTERVAL", INTERVAL)
    running: list[Node] = []

    def start_node(
        name: str, network: MemoryNetwork | None = None, seed: Node | None = None
    ) -> Node:
        seeds = () if seed is None or seed.gossip_address is None else (seed.gossip_address,)
        config = Config(
            node_name=name,
            sqlite_path=tmp_path / f"{name}.db",
            http=HttpConfig(bind_address=Address("127.0.0.1", 0)),
            gossip=GossipConfig(
                enabled=network is not None,
                bind_address=Address("127.0.0.1", 0),
                seed_nodes=seeds,
                gossip_interval=0.3,
                profile="local",
            ),
            statsd=StatsdConfig(statsd.address),
        )
        node = Node(config) if network is None else Node(config, network.transport)
        node.start()
        running.append(node)
        return node

    yield start_node
    for node in running:
        node.stop()


def _steady(statsd: Statsd, line: str, since: float, seconds: float = 5 * INTERVAL) -> None:
    """``line`` arrives about once an interval for ``seconds`` from ``since``."""
    gevent.sleep(max(0.0, since + seconds - time.monotonic()))
    times = statsd.times(line, since)
    assert len(times) >= seconds / INTERVAL - 2, (line, times)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) < 2.5 * INTERVAL, (line, gaps)


def test_a_quiet_node_without_gossip_sends_every_gauge_steadily(
    start: StartNode, statsd: Statsd
) -> None:
    started = time.monotonic()
    start("alone")
    _steady(statsd, "caxton_gossip_peers:0|g", started)
    _steady(statsd, "caxton_agent_registry_size:0|g", started)
    _steady(statsd, "caxton_agent_registry_unreachable:0|g", started)


def test_gossip_gauges_are_sent_from_the_start_and_then_steadily_at_their_last_value(
    start: StartNode, statsd: Statsd
) -> None:
    network = MemoryNetwork(seed=3)
    started = time.monotonic()
    first = start("n0", network)
    _steady(statsd, "caxton_gossip_peers:0|g", started)
    _steady(statsd, "caxton_gossip_health_score:0|g", started)
    start("n1", network, first)
    deadline = time.monotonic() + 10
    while not statsd.times("caxton_gossip_peers:1|g"):
        assert time.monotonic() < deadline, "no node counted its peer"
        gevent.sleep(0.05)
    joined = time.monotonic()
    _steady(statsd, "caxton_gossip_peers:1|g", joined)  # both nodes' gauge, the new value
    assert not statsd.times("caxton_gossip_peers:0|g", joined + INTERVAL)
