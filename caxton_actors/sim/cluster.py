"""A deterministic cluster: the real SWIM core, virtual time, a seeded network.

Every node is a :class:`~caxton_actors.swim.node.SwimNode`, exactly what the
actors run. The network delivers each packet after a random delay, and may
lose, duplicate or (through the delays) reorder it; partitions drop packets
between groups; a paused node's timers and packets wait until it resumes; a
crashed node is gone. One seed, one run: everything random draws from RNGs
derived from it.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from caxton_actors.registry.records import AgentUpdate, RegistryPull
from caxton_actors.swim.messages import Addr, MemberChanged, MemberRecord, Packet, State, StateSync
from caxton_actors.swim.node import Outgoing, Output, SwimNode
from caxton_actors.swim.timing import LAN, Timing
from caxton_actors.wire import codec

GOSSIP_PORT = 7946


@dataclass(frozen=True, slots=True)
class Network:
    loss: float = 0.0
    min_delay: float = 0.0005
    max_delay: float = 0.005
    duplicate: float = 0.0


@dataclass(frozen=True, slots=True)
class Observed:
    """A membership change as one node saw it."""

    at: float
    observer: str
    member: str
    state: State
    incarnation: int


@dataclass(slots=True)
class _Host:
    node: SwimNode
    paused_until: float = 0.0
    wake_token: int = 0


@dataclass(order=True)
class _Event:
    at: float
    order: int
    kind: str = field(compare=False)
    host: str = field(compare=False)
    packet: Packet | None = field(compare=False, default=None)
    token: int = field(compare=False, default=0)


def _encoded(packet: Packet) -> bytes:
    stream = isinstance(packet.message, (StateSync, RegistryPull, AgentUpdate))
    return codec.encode(packet, "", codec.MAX_STREAM_MESSAGE if stream else codec.MAX_DATAGRAM)


def addr_of(name: str) -> Addr:
    return (name, GOSSIP_PORT)


class Cluster:
    def __init__(
        self,
        seed: int,
        timing: Timing = LAN,
        network: Network = Network(),
        count_bytes: bool = False,
    ) -> None:
        self.seed = seed
        self.timing = timing
        self.network = network
        self.now = 0.0
        self._rng = random.Random(seed)
        self._hosts: dict[str, _Host] = {}
        self._crashed: set[str] = set()
        self._groups: dict[str, int] | None = None
        self._queue: list[_Event] = []
        self._order = itertools.count()
        self.observed: list[Observed] = []
        self.sent: Counter[str] = Counter()
        """Packets each node sent."""
        self.bytes_sent: Counter[str] = Counter()
        """Bytes each node sent, as the real codec encodes them (with ``count_bytes``)."""
        self._count_bytes = count_bytes

    # Building and breaking the cluster.

    def start(self, name: str, seeds: Iterable[str] = (), incarnation: int = 0) -> None:
        node_rng = random.Random(self._rng.getrandbits(64))
        node = SwimNode(
            name, addr_of(name), self.timing, node_rng, self.now, incarnation=incarnation
        )
        self._crashed.discard(name)
        self._hosts[name] = _Host(node)
        self._deliver_outputs(name, node.join(self.now, [addr_of(s) for s in seeds]))
        self._schedule_wake(name)

    def start_many(self, size: int, prefix: str = "n") -> list[str]:
        """Start ``size`` nodes, each joining through the first."""
        names = [f"{prefix}{i}" for i in range(size)]
        for i, name in enumerate(names):
            self.start(name, seeds=names[:1] if i else ())
        return names

    def crash(self, name: str) -> None:
        self._crashed.add(name)
        del self._hosts[name]

    def pause(self, name: str, duration: float) -> None:
        self._hosts[name].paused_until = self.now + duration

    def leave(self, name: str) -> None:
        self._deliver_outputs(name, self._hosts[name].node.leave(self.now))

    def register(self, name: str, agent_id: str, capabilities: tuple[str, ...] = ()) -> None:
        self._hosts[name].node.register(self.now, agent_id, capabilities)

    def deregister(self, name: str, agent_id: str) -> None:
        self._hosts[name].node.deregister(self.now, agent_id)

    def partition(self, *groups: Iterable[str]) -> None:
        self._groups = {name: i for i, group in enumerate(groups) for name in group}

    def heal(self) -> None:
        self._groups = None

    # Looking at it.

    @property
    def live(self) -> list[str]:
        return sorted(self._hosts)

    def node(self, name: str) -> SwimNode:
        return self._hosts[name].node

    def view(self, name: str) -> dict[str, State]:
        return {r.name: r.state for r in self.node(name).members.records()}

    def registries_agree(self) -> bool:
        """Every live node holds the same live agent records."""
        return len({self.node(n).replica.digest() for n in self._hosts}) == 1

    def converged(self) -> bool:
        """Every live node sees exactly the live nodes up (alive, or suspect and refuting)."""
        live = set(self._hosts)
        up = (State.ALIVE, State.SUSPECT)
        return all({m for m, s in self.view(n).items() if s in up} == live for n in live)

    # Running it.

    def run_until(self, until: float) -> None:
        while self._queue and self._queue[0].at <= until:
            event = heapq.heappop(self._queue)
            self.now = max(self.now, event.at)
            host = self._hosts.get(event.host)
            if host is None:
                continue
            if host.paused_until > self.now:
                # A stopped process: its timers fire and its packets are read on resume.
                event.at = host.paused_until
                event.order = next(self._order)
                heapq.heappush(self._queue, event)
                continue
            if event.kind == "wake":
                if event.token != host.wake_token:
                    continue
                outputs = host.node.tick(self.now)
            else:
                assert event.packet is not None
                outputs = host.node.handle(self.now, event.packet)
            self._deliver_outputs(event.host, outputs)
            self._schedule_wake(event.host)
        self.now = until

    def run_for(self, duration: float) -> None:
        self.run_until(self.now + duration)

    def _schedule_wake(self, name: str) -> None:
        host = self._hosts[name]
        host.wake_token += 1
        at = max(self.now, host.node.next_deadline())
        heapq.heappush(
            self._queue, _Event(at, next(self._order), "wake", name, token=host.wake_token)
        )

    def _deliver_outputs(self, sender: str, outputs: list[Output]) -> None:
        for output in outputs:
            if isinstance(output, MemberChanged):
                m = output.member
                self.observed.append(Observed(self.now, sender, m.name, m.state, m.incarnation))
            elif isinstance(output, Outgoing):
                self.sent[sender] += 1
                if self._count_bytes:
                    self.bytes_sent[sender] += len(_encoded(output.packet))
                self._send(sender, output)

    def _send(self, sender: str, outgoing: Outgoing) -> None:
        receiver = outgoing.to[0]
        if receiver not in self._hosts or self._cut(sender, receiver):
            return
        net = self.network
        copies = 1 + (self._rng.random() < net.duplicate)
        for _ in range(copies):
            if self._rng.random() < net.loss:
                continue
            at = self.now + self._rng.uniform(net.min_delay, net.max_delay)
            heapq.heappush(
                self._queue, _Event(at, next(self._order), "packet", receiver, outgoing.packet)
            )

    def _cut(self, a: str, b: str) -> bool:
        groups = self._groups
        return groups is not None and groups.get(a, -1) != groups.get(b, -1)


def settled(
    seed: int,
    size: int,
    timing: Timing = LAN,
    network: Network = Network(),
    count_bytes: bool = False,
) -> Cluster:
    """``size`` nodes ``n0``.. that all know each other and have nothing left to tell.

    Joining N nodes through one seed costs O(N^2) in full-state exchanges, so this
    starts every node alone, hands each the whole table in one full-state exchange
    (what a push-pull answer delivers; the records are shared, which keeps 10,000
    nodes in memory), and forgets the updates that learning queued, as a cluster
    that has run for a while has long spread them.
    """
    cluster = Cluster(seed, timing, network, count_bytes)
    names = [f"n{i}" for i in range(size)]
    for i, name in enumerate(names):
        # Started across a gossip interval, so that gossip rounds are out of step as on
        # real machines (probes and push-pulls are phased at random anyway).
        cluster.run_until(i * timing.gossip_interval / size)
        cluster.start(name)  # no seeds: alone, nothing sent, timers armed
    cluster.run_until(timing.gossip_interval)
    everyone = StateSync(
        tuple(MemberRecord(name, addr_of(name), 0, State.ALIVE) for name in names), reply=False
    )
    for name in names:
        node = cluster.node(name)
        node.handle(cluster.now, Packet(names[0], addr_of(names[0]), everyone))
        node.members.settle()
    return cluster
