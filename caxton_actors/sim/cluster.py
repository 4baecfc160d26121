"""A deterministic cluster: the node's own engine, in virtual time, on a seeded network.

Every node is an :class:`~caxton_actors.engine.Engine`, the class a real node builds,
and this module is its shell, as the actors are a real node's:

- a hop from one stage to another is a mailbox message: taken in order, after what the
  stage already has queued (with ``hop_jitter``, up to that much later: a busy actor);
- a datagram arrives after a random delay, or is lost, duplicated or (through the
  delays) reordered;
- a stream (full-state exchange, registry pull) is a request and an answer: the request
  arrives after a connection's round trip and waits in the answering stage's mailbox;
  the answer comes back unless the peer is gone, cut off, or slower than the node's
  stream timeout;
- partitions cut both; a paused node's events wait until it resumes; a crashed node is
  gone, but its disk (:class:`~caxton_actors.sim.disk.Disk`) stays for a restart;
- housekeeping (the registry's expiry) runs every ``REAP_INTERVAL``, as a node's does;
- each node reads two clocks, as a node does: virtual time is its monotonic clock, and
  its wall clock is ``WALL_EPOCH`` plus virtual time plus its own ``clock_offset`` (a
  node whose clock is wrong).

One seed, one run: everything random draws from RNGs derived from it.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from caxton_actors.address import Address
from caxton_actors.config import REAP_INTERVAL
from caxton_actors.engine import Engine, answers, stream_request
from caxton_actors.engine.messages import (
    Answer,
    Committed,
    Deregister,
    Dropped,
    Exchange,
    Hop,
    Inbound,
    JoinCluster,
    LeaveCluster,
    MemberState,
    Output,
    Packet,
    Persist,
    Register,
    Stage,
    StageInput,
    SyncRequest,
    Tick,
    Transmit,
    WireMessage,
)
from caxton_actors.registry.records import DEFAULT_SCOPE, AgentRecord, key_of
from caxton_actors.sim.disk import Disk
from caxton_actors.swim.messages import (
    HTTP_META_KEY,
    MemberChanged,
    State,
    StateSync,
)
from caxton_actors.swim.timing import LAN, Timing
from caxton_actors.wire import codec
from caxton_actors.wire.transport import STREAM_TIMEOUT

GOSSIP_PORT = 7946
WALL_EPOCH = 1_700_000_000.0
"""A node's wall clock at virtual time 0 (Unix seconds, 2023): versions look as a node's."""
EPHEMERAL_PORT = 40000
"""The port a stream comes from, as a connection's would: not the sender's gossip port."""
TICKED = (Stage.MEMBERSHIP, Stage.DETECTION)
"""The stages with deadlines of their own."""


@dataclass(frozen=True, slots=True)
class Network:
    loss: float = 0.0
    min_delay: float = 0.0005
    max_delay: float = 0.005
    duplicate: float = 0.0
    hop_jitter: float = 0.0
    """Up to this many seconds before a stage takes a message: a busy actor."""
    stream_failure: float = 0.0
    """The chance that a stream fails (refused, reset) though both ends are up."""


@dataclass(frozen=True, slots=True)
class Observed:
    """A membership change as one node saw it."""

    at: float
    observer: str
    member: str
    state: State
    incarnation: int


@dataclass(frozen=True, slots=True)
class _Stream:
    """A stream request in flight: who asked, what, and until when it waits."""

    asker: _Host
    request: WireMessage
    deadline: float


@dataclass(eq=False, slots=True)
class _Host:
    name: str
    engine: Engine
    disk: Disk
    paused_until: float = 0.0
    wake_tokens: dict[Stage, int] = field(default_factory=lambda: dict.fromkeys(TICKED, 0))
    queued: Counter[Stage] = field(default_factory=Counter)
    """Mailbox messages scheduled and not yet taken, by stage."""
    free_at: dict[Stage, float] = field(default_factory=dict)
    """When each stage's last scheduled message is taken: later ones come after it."""
    clock_offset: float = 0.0
    """Seconds this node's wall clock is ahead of the others' (negative: behind)."""


_Event = tuple[float, int, _Host, Callable[[], None]]
"""When, in what order (unique: ties never compare the rest), on which host, what."""


def addr_of(name: str) -> Address:
    return Address(name, GOSSIP_PORT)


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
        self._disks: dict[str, Disk] = {}
        self._groups: dict[str, int] | None = None
        self._queue: list[_Event] = []
        self._order = itertools.count()
        self.observed: list[Observed] = []
        self.sent: Counter[str] = Counter()
        """Packets each node sent (datagrams and stream messages)."""
        self.bytes_sent: Counter[str] = Counter()
        """Bytes each node sent, as the real codec encodes them (with ``count_bytes``)."""
        self.dropped: Counter[str] = Counter()
        """Inputs the engines refused, by reason."""
        self.events = 0
        """Events run so far (for the simulator's own cost: ``bench/hop_cost.py``)."""
        self._count_bytes = count_bytes

    # Building and breaking the cluster.

    def start(
        self,
        name: str,
        seeds: Iterable[str] = (),
        incarnation: int = 0,
        empty_disk: bool = False,
        clock_offset: float = 0.0,
    ) -> None:
        """Start ``name``, on the disk of its last life unless ``empty_disk``, with its wall
        clock ``clock_offset`` seconds ahead of the others'."""
        node_rng = random.Random(self._rng.getrandbits(64))
        route = f"{name}:8080"
        engine = Engine(
            name,
            addr_of(name),
            self.timing,
            node_rng,
            self.now,
            meta=((HTTP_META_KEY, route),),
            incarnation=incarnation,
        )
        disk = Disk() if empty_disk else self._disks.get(name, Disk())
        self._disks[name] = disk
        records, heads = disk.replica()
        host = _Host(name, engine, disk, clock_offset=clock_offset)
        engine.registry.restore(disk.own.values(), records, heads, self.now, self.wall(host))
        self._hosts[name] = host
        self._mail(host, Stage.REGISTRY, MemberState(name, True, route))
        self._mail(host, Stage.MEMBERSHIP, JoinCluster(tuple(addr_of(s) for s in seeds)))
        for stage in TICKED:
            self._schedule_wake(host, stage)
        self._schedule(self.now + REAP_INTERVAL, host, lambda: self._housekeep(host))

    def start_many(self, size: int, prefix: str = "n") -> list[str]:
        """Start ``size`` nodes, each joining through the first."""
        names = [f"{prefix}{i}" for i in range(size)]
        for i, name in enumerate(names):
            self.start(name, seeds=names[:1] if i else ())
        return names

    def crash(self, name: str) -> None:
        del self._hosts[name]

    def pause(self, name: str, duration: float) -> None:
        self._hosts[name].paused_until = self.now + duration

    def leave(self, name: str) -> None:
        self._mail(self._hosts[name], Stage.MEMBERSHIP, LeaveCluster())

    def register(
        self,
        name: str,
        agent_id: str,
        capabilities: tuple[str, ...] = (),
        scope: str = DEFAULT_SCOPE,
        card: str | None = None,
    ) -> None:
        """As the registry actor does: commit to disk, then tell the registry stage."""
        host = self._hosts[name]
        record = AgentRecord(name, agent_id, 0, capabilities, 0, False, scope, card)
        host.disk.own[record.key] = record
        commit = Committed((Register(agent_id, capabilities, scope, card),))
        self._carry(host, host.engine.registry.handle(self.now, commit, wall=self.wall(host)))

    def deregister(self, name: str, agent_id: str, scope: str = DEFAULT_SCOPE) -> None:
        host = self._hosts[name]
        if host.disk.own.pop(key_of(scope, agent_id), None) is not None:
            commit = Committed((Deregister(agent_id, scope),))
            self._carry(host, host.engine.registry.handle(self.now, commit, wall=self.wall(host)))

    def partition(self, *groups: Iterable[str]) -> None:
        self._groups = {name: i for i, group in enumerate(groups) for name in group}

    def heal(self) -> None:
        self._groups = None

    # Looking at it.

    @property
    def live(self) -> list[str]:
        return sorted(self._hosts)

    def node(self, name: str) -> Engine:
        return self._hosts[name].engine

    def wall(self, host: _Host) -> float:
        """``host``'s wall clock now."""
        return WALL_EPOCH + self.now + host.clock_offset

    def view(self, name: str) -> dict[str, State]:
        return {r.name: r.state for r in self.node(name).membership.members.records()}

    def registries_agree(self, scope: str | None = None) -> bool:
        """Every live node holds the same live agent records (of ``scope``, or all)."""
        return len({self.node(n).registry.replica.digest(scope) for n in self._hosts}) == 1

    def converged(self) -> bool:
        """Every live node sees exactly the live nodes up (alive, or suspect and refuting)."""
        live = set(self._hosts)
        up = (State.ALIVE, State.SUSPECT)
        return all({m for m, s in self.view(n).items() if s in up} == live for n in live)

    # Running it.

    def run_until(self, until: float) -> None:
        queue = self._queue
        while queue and queue[0][0] <= until:
            at, _, host, run = heapq.heappop(queue)
            self.now = max(self.now, at)
            if self._hosts.get(host.name) is not host:
                continue  # crashed (and perhaps restarted: a new life)
            if host.paused_until > self.now:
                # A stopped process: its timers fire and its mail is read on resume.
                self._schedule(host.paused_until, host, run)
                continue
            self.events += 1
            run()
        self.now = until

    def run_for(self, duration: float) -> None:
        self.run_until(self.now + duration)

    def _schedule(self, at: float, host: _Host, run: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (at, next(self._order), host, run))

    def _mail(
        self,
        host: _Host,
        stage: Stage,
        message: StageInput,
        stream: _Stream | None = None,
        arrived: bool = False,
    ) -> None:
        """Queue ``message`` in the mailbox of ``host``'s ``stage``: in order, never early.

        Something that ``arrived`` from outside the node (a datagram, a stream, a timer)
        at an idle stage with no jitter is taken at once: the same order, one event less.
        """
        if arrived and not self.network.hop_jitter and not host.queued[stage]:
            host.queued[stage] += 1
            self._take(host, stage, message, stream)
            return
        at = self.now
        if self.network.hop_jitter:
            at += self._rng.uniform(0, self.network.hop_jitter)
        at = max(at, host.free_at.get(stage, 0.0))
        host.free_at[stage] = at
        host.queued[stage] += 1
        self._schedule(at, host, lambda: self._take(host, stage, message, stream))

    def _take(self, host: _Host, stage: Stage, message: StageInput, stream: _Stream | None) -> None:
        host.queued[stage] -= 1
        outputs = host.engine.handle(stage, self.now, message, wall=self.wall(host))
        self._carry(host, outputs, stream)
        if stage in TICKED:
            self._schedule_wake(host, stage)

    def _schedule_wake(self, host: _Host, stage: Stage) -> None:
        host.wake_tokens[stage] += 1
        token = host.wake_tokens[stage]
        deadline = host.engine.next_deadline(stage)
        assert deadline is not None

        def wake() -> None:
            if host.wake_tokens[stage] == token:
                self._mail(host, stage, Tick(), arrived=True)

        self._schedule(max(self.now, deadline), host, wake)

    def _housekeep(self, host: _Host) -> None:
        self._mail(host, Stage.REGISTRY, Tick(), arrived=True)
        self._schedule(self.now + REAP_INTERVAL, host, lambda: self._housekeep(host))

    def _carry(self, host: _Host, outputs: list[Output], stream: _Stream | None = None) -> None:
        """What the actors do with a stage's outputs, in virtual time."""
        for output in outputs:
            match output:
                case Hop(stage=stage, message=message):
                    self._mail(host, stage, message)
                case Transmit(to=to, packet=packet):
                    self._count(host, packet, codec.MAX_DATAGRAM)
                    self._datagram(host, to[0], packet)
                case Exchange(to=to, packet=packet):
                    self._count(host, packet, codec.MAX_STREAM_MESSAGE)
                    self._open_stream(host, to[0], packet)
                case Answer(packet=packet) if stream is not None and packet is not None:
                    self._count(host, packet, codec.MAX_STREAM_MESSAGE)
                    self._answer_stream(host, stream, packet)
                case Persist():
                    host.disk.persist(output)
                case Dropped(reason=reason, count=count):
                    self.dropped[reason] += count
                case MemberChanged(member=m):
                    seen = Observed(self.now, host.name, m.name, m.state, m.incarnation)
                    self.observed.append(seen)

    def _count(self, host: _Host, packet: Packet, limit: int) -> None:
        self.sent[host.name] += 1
        if self._count_bytes:
            self.bytes_sent[host.name] += len(codec.encode(packet, "", limit))

    def _delay(self) -> float:
        return self._rng.uniform(self.network.min_delay, self.network.max_delay)

    def _reachable(self, sender: str, receiver: str) -> _Host | None:
        host = self._hosts.get(receiver)
        return None if host is None or self._cut(sender, receiver) else host

    def _datagram(self, sender: _Host, receiver: str, packet: Packet) -> None:
        host = self._reachable(sender.name, receiver)
        if host is None:
            return
        net = self.network
        inbound = Inbound(packet, addr_of(sender.name))
        copies = 1 + (self._rng.random() < net.duplicate)
        for _ in range(copies):
            if self._rng.random() < net.loss:
                continue
            self._schedule(
                self.now + self._delay(),
                host,
                lambda: self._mail(host, Stage.MEMBERSHIP, inbound, arrived=True),
            )

    def _open_stream(self, asker: _Host, receiver: str, packet: Packet) -> None:
        host = self._reachable(asker.name, receiver)
        if host is None or self._rng.random() < self.network.stream_failure:
            return  # refused or reset: the asker logs it and waits for its next round
        hop = stream_request(packet, Address(asker.name, EPHEMERAL_PORT))
        if hop is None:
            self.dropped["unexpected_stream"] += 1
            return
        stream = _Stream(asker, packet.message, self.now + STREAM_TIMEOUT)
        connected = self.now + 2 * self._delay()  # the handshake, then the request
        self._schedule(
            connected, host, lambda: self._mail(host, hop.stage, hop.message, stream, arrived=True)
        )

    def _answer_stream(self, host: _Host, stream: _Stream, answer: Packet) -> None:
        asker = stream.asker
        at = self.now + self._delay()
        if at > stream.deadline or self._cut(host.name, asker.name):
            return  # the asker gave up, or the connection broke
        if not answers(stream.request, answer.message):
            self.dropped["unexpected_stream"] += 1
            return
        self._schedule(
            at,
            asker,
            lambda: self._mail(
                asker, Stage.MEMBERSHIP, Inbound(answer, addr_of(host.name), True), arrived=True
            ),
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
    that has run for a while has long spread them. The stages' hops are taken at
    once and the member events are not recorded: this is the cluster's past.
    """
    cluster = Cluster(seed, timing, network, count_bytes)
    names = [f"n{i}" for i in range(size)]
    for i, name in enumerate(names):
        # Started across a gossip interval, so that gossip rounds are out of step as on
        # real machines (probes and push-pulls are phased at random anyway).
        cluster.run_until(i * timing.gossip_interval / size)
        cluster.start(name)  # no seeds: alone, nothing sent, timers armed
    cluster.run_until(timing.gossip_interval)
    everyone = StateSync(tuple(cluster.node(name).membership.members.me for name in names), False)
    wall = WALL_EPOCH + cluster.now
    for name in names:
        engine = cluster.node(name)
        pending: list[Output] = engine.membership.handle(
            cluster.now, SyncRequest(Packet(names[0], everyone), addr_of(names[0])), wall=wall
        )
        while pending:
            output = pending.pop()
            if isinstance(output, Hop):
                pending += engine.handle(output.stage, cluster.now, output.message, wall=wall)
        engine.membership.members.settle()
    return cluster
