"""An in-memory network for several real nodes in one process (memberlist's mock transport).

Each node's membership actor gets a :class:`MemoryTransport` instead of sockets:
datagrams and streams still go through the real codec as bytes, with loss, delay and
partitions drawn from a seeded RNG, and no port is opened.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import gevent

from caxton_actors.address import Address
from caxton_actors.wire.transport import STREAM_TIMEOUT, OnDatagram, OnStream, StreamError

FIRST_PORT = 17000


class MemoryNetwork:
    def __init__(self, seed: int = 0, loss: float = 0.0, delay: float = 0.002) -> None:
        self.loss = loss
        self.delay = delay
        """The most a datagram or a stream step takes (at random, from nothing)."""
        self._rng = random.Random(seed)
        self._open: dict[Address, MemoryTransport] = {}
        self._groups: dict[Address, int] | None = None
        self._silenced: set[Address] = set()
        self._next_port = FIRST_PORT

    def transport(self, bind: Address) -> MemoryTransport:
        """A node's transport factory: ``Node(config, transport=network.transport)``."""
        port = bind.port
        if port == 0 or (bind.host, port) in self._open:
            port, self._next_port = self._next_port, self._next_port + 1
        return MemoryTransport(self, Address(bind.host, port))

    def partition(self, *groups: Iterable[Address]) -> None:
        self._groups = {addr: i for i, group in enumerate(groups) for addr in group}

    def heal(self) -> None:
        self._groups = None

    def silence(self, addr: Address) -> None:
        """Nothing reaches ``addr`` or leaves it any more: a crash, as its peers see it."""
        self._silenced.add(addr)

    def reachable(self, sender: Address, receiver: Address) -> MemoryTransport | None:
        peer = self._open.get(receiver)
        groups = self._groups
        if peer is None or {sender, receiver} & self._silenced:
            return None
        if groups is not None and groups.get(sender) != groups.get(receiver):
            return None
        return peer

    def lost(self) -> bool:
        return self._rng.random() < self.loss

    def wait(self) -> float:
        return self._rng.uniform(0, self.delay)


class MemoryTransport:
    def __init__(self, network: MemoryNetwork, addr: Address) -> None:
        self._network = network
        self.addr = addr
        self.port = addr[1]
        self._on_datagram: OnDatagram | None = None
        self._on_stream: OnStream | None = None

    def open(self, on_datagram: OnDatagram, on_stream: OnStream) -> None:
        self._on_datagram, self._on_stream = on_datagram, on_stream
        self._network._open[self.addr] = self

    def send(self, data: bytes, to: Address) -> None:
        peer = self._network.reachable(self.addr, to)
        if peer is not None and peer._on_datagram is not None and not self._network.lost():
            gevent.spawn_later(self._network.wait(), peer._on_datagram, data, self.addr)

    def exchange(self, to: Address, data: bytes) -> bytes:
        with gevent.Timeout(STREAM_TIMEOUT, StreamError("timed out")):
            gevent.sleep(self._network.wait())
            peer = self._network.reachable(self.addr, to)
            if peer is None or peer._on_stream is None:
                raise StreamError(f"{to[0]}:{to[1]} refused the connection")
            reply = peer._on_stream(data, Address(self.addr.host, 0))  # a passing port
            gevent.sleep(self._network.wait())
            if reply is None or self._network.reachable(self.addr, to) is None:
                raise StreamError("closed without an answer")
            return reply

    def close(self) -> None:
        if self._network._open.get(self.addr) is self:
            del self._network._open[self.addr]
