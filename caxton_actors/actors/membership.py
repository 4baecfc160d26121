"""Membership actor: the member table, dissemination, and the gossip sockets.

Around the pure :class:`Members` it owns the UDP endpoint and the TCP listener
for full-state exchanges. Inbound packets give their piggybacked updates to
the table and their probe traffic to the failure detection actor; whatever
either component wants sent leaves here, with the updates still to be spread.
For the registry actor it carries registry heads on its packets, runs the
pulls it asks for, and answers peers' pulls with what it returns.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.queue
import gevent.socket
import pykka

from caxton_actors import metrics
from caxton_actors.actors.detector import Probe
from caxton_actors.actors.registry import (
    AnswerPull,
    HeardHeads,
    MemberState,
    Merge,
    PullFrom,
    SpreadHeads,
)
from caxton_actors.config import Address
from caxton_actors.registry.records import AgentUpdate, RegistryPull
from caxton_actors.runtime.actor import GeventActor
from caxton_actors.runtime.timer import Alarm
from caxton_actors.swim.members import Members
from caxton_actors.swim.messages import (
    HTTP_META_KEY,
    Addr,
    Effect,
    Gossip,
    MemberChanged,
    MemberRecord,
    Message,
    Meta,
    NameConflict,
    Packet,
    ProbeFailed,
    Refuted,
    Send,
    State,
    StateSync,
)
from caxton_actors.swim.node import Heads, packet_for
from caxton_actors.swim.timing import Timing
from caxton_actors.wire import codec
from caxton_actors.wire.transport import StreamError, StreamListener, UdpEndpoint, exchange

log = logging.getLogger(__name__)

# Seconds a stream handler waits for the actor to merge a full-state exchange.
SYNC_ANSWER_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Inbound:
    packet: Packet


@dataclass(frozen=True, slots=True)
class Tick:
    """The member table's deadline has come."""


@dataclass(frozen=True, slots=True)
class UseDetector:
    detector: pykka.ActorRef[Any]


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """A full-state exchange that arrived over TCP; answered with ours."""

    packet: Packet


@dataclass(frozen=True, slots=True)
class JoinCluster:
    """Join through these seeds (already resolved: see wire/seeds.py)."""

    addresses: tuple[Addr, ...]


@dataclass(frozen=True, slots=True)
class LeaveCluster:
    pass


@dataclass(frozen=True, slots=True)
class ListMembers:
    pass


@dataclass(frozen=True, slots=True)
class MemberView:
    record: MemberRecord
    changed_at: float
    """Unix time in seconds of the last state change."""


@dataclass(frozen=True, slots=True)
class MemberEvent:
    """What a subscriber hears: a member joined, turned suspect, recovered, died, left or
    changed its metadata."""

    kind: str
    member: MemberView


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Deliver every later :class:`MemberEvent` to ``queue``."""

    queue: gevent.queue.Queue[MemberEvent]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    queue: gevent.queue.Queue[MemberEvent]


def event_kind(state: State, previous: State | None) -> str:
    if state is State.ALIVE:
        if previous is State.SUSPECT:
            return "recovered"
        return "updated" if previous is State.ALIVE else "joined"
    return str(state.value)  # suspect, dead, left


@dataclass(frozen=True, slots=True)
class GossipStatus:
    pass


@dataclass(frozen=True, slots=True)
class GossipHealth:
    addr: Addr
    """This node's gossip address, as its peers know it."""
    peer_count: int
    last_sync: float | None
    """Unix time in seconds of the last full-state exchange, if any."""
    known: int
    """Members ever seen and still remembered, this node excluded."""


def _wall(monotonic: float) -> float:
    return time.time() - (time.monotonic() - monotonic)


class MembershipActor(GeventActor):
    """Binds its sockets when built, so a gossip port in use fails start-up."""

    def __init__(
        self,
        name: str,
        bind: Address,
        advertise_host: str,
        meta: Meta,
        timing: Timing,
        cluster_label: str,
        rng: random.Random,
        stats: metrics.Metrics,
        registry: pykka.ActorRef[Any] | None = None,
    ) -> None:
        super().__init__()
        self._label = cluster_label
        self._stats = stats
        self._registry = registry
        self._heads = Heads()
        self._detector: pykka.ActorRef[Any] | None = None
        self._subscribers: list[gevent.queue.Queue[MemberEvent]] = []
        try:
            self._udp = UdpEndpoint((bind.host, bind.port), self._on_datagram)
            self._tcp = StreamListener((bind.host, self._udp.port), self._on_stream)
        except OSError as exc:
            raise OSError(f"cannot listen on {bind} (gossip.bind_address): {exc.strerror}") from exc
        # Starting from the wall clock, a restarted node outranks its former self.
        incarnation = time.time_ns() // 1_000_000
        address = (advertise_host, self._udp.port)
        self._members = Members(name, address, meta, incarnation, timing, rng, time.monotonic())
        self._alarm = Alarm(lambda: self.actor_ref.tell(Tick()))

    # Running in the socket greenlets: decode, then hand over as a message.

    def _on_datagram(self, data: bytes, sender: Addr) -> None:
        try:
            packet = codec.decode(data, self._label)
        except codec.DecodeError as exc:
            self._stats.incr(f"{metrics.GOSSIP_DROPPED}.{exc.reason}")
            log.debug("dropped a datagram from %s: %s", sender, exc)
            return
        self.actor_ref.tell(Inbound(packet))

    def _on_stream(self, data: bytes, sender: Addr) -> bytes | None:
        try:
            packet = codec.decode(data, self._label, codec.MAX_STREAM_MESSAGE)
        except codec.DecodeError as exc:
            self._stats.incr(f"{metrics.GOSSIP_DROPPED}.{exc.reason}")
            return None
        if isinstance(packet.message, RegistryPull):
            return self._answer_pull(packet.message)
        try:
            reply = self.actor_ref.ask(SyncRequest(packet), timeout=SYNC_ANSWER_TIMEOUT)
        except (pykka.ActorDeadError, pykka.Timeout):  # stopping, or too busy to merge now
            return None
        if reply is None:
            return None
        assert isinstance(reply, Packet)
        return codec.encode(reply, self._label, codec.MAX_STREAM_MESSAGE)

    def _answer_pull(self, pull: RegistryPull) -> bytes | None:
        if self._registry is None:
            return None
        try:
            update = self._registry.ask(AnswerPull(pull), timeout=SYNC_ANSWER_TIMEOUT)
        except (pykka.ActorDeadError, pykka.Timeout):
            return None
        assert isinstance(update, AgentUpdate)
        packet = Packet(self._members.name, self._members.addr, update)
        return codec.encode(packet, self._label, codec.MAX_STREAM_MESSAGE)

    def _pull(self, to: Addr, pull: RegistryPull) -> None:
        """One registry pull over TCP, in its own greenlet; the answer goes to the registry."""
        packet = Packet(self._members.name, self._members.addr, pull)
        self._stats.incr(metrics.REGISTRY_PULLS)
        try:
            data = exchange(to, codec.encode(packet, self._label, codec.MAX_STREAM_MESSAGE))
            answer = codec.decode(data, self._label, codec.MAX_STREAM_MESSAGE)
        except StreamError as exc:
            log.debug("registry pull from %s failed: %s", to, exc)
            return
        except codec.DecodeError as exc:
            self._stats.incr(f"{metrics.GOSSIP_DROPPED}.{exc.reason}")
            return
        if not isinstance(answer.message, AgentUpdate):
            self._stats.incr(f"{metrics.GOSSIP_DROPPED}.unexpected_stream")
        elif self._registry is not None:
            self._registry.tell(Merge(answer.message))

    # The actor.

    def on_start(self) -> None:
        self._alarm.arm(self._members.next_deadline())

    def on_stop(self) -> None:
        self._alarm.cancel()
        self._udp.close()
        self._tcp.close()

    def on_receive(self, message: Any) -> Any:
        now = time.monotonic()
        reply: Any = None
        match message:
            case Inbound(packet=packet):
                self._route(self._inbound(now, packet))
            case Send():
                self._route([message])
            case ProbeFailed(name=name, incarnation=incarnation):
                self._route(self._members.suspect(now, name, incarnation))
            case Tick():
                self._route(self._members.tick(now, bool(self._heads.news)))
            case SyncRequest(packet=packet):
                reply = self._answer_sync(now, packet)
            case UseDetector(detector=detector):
                self._detector = detector
            case SpreadHeads(news=news, digest=digest):
                for head in news:
                    self._heads.news.push(head)
                self._heads.digest = digest
            case PullFrom(source=source, pull=pull):
                gevent.spawn(self._pull, source, pull)
            case Subscribe(queue=queue):
                self._subscribers.append(queue)
            case Unsubscribe(queue=queue):
                if queue in self._subscribers:
                    self._subscribers.remove(queue)
            case JoinCluster(addresses=addresses):
                self._route(self._members.join(now, addresses))
            case LeaveCluster():
                self._route(self._members.leave(now))
            case ListMembers():
                reply = tuple(
                    MemberView(r, _wall(self._members.changed_at(r.name)))
                    for r in self._members.records()
                )
            case GossipStatus():
                last = self._members.last_sync
                reply = GossipHealth(
                    self._members.addr,
                    len(self._members.peers()),
                    None if last is None else _wall(last),
                    len(self._members.records()) - 1,
                )
            case _:
                return super().on_receive(message)
        self._alarm.arm(self._members.next_deadline())
        return reply

    def _inbound(self, now: float, packet: Packet) -> list[Effect]:
        if packet.heads and self._registry is not None:
            self._registry.tell(HeardHeads(packet.sender_addr, packet.heads))
        effects = self._members.apply(now, packet.piggyback)
        message = packet.message
        if isinstance(message, StateSync):
            effects += self._members.on_state_sync(now, packet.sender_addr, message)
        elif not isinstance(message, Gossip) and self._detector is not None:
            self._detector.tell(Probe(packet.sender_addr, message))
        return effects

    def _answer_sync(self, now: float, packet: Packet) -> Packet | None:
        """Merge a pushed table; our table goes back on the same connection."""
        if not isinstance(packet.message, StateSync):
            self._stats.incr(f"{metrics.GOSSIP_DROPPED}.unexpected_stream")
            return None
        effects = self._inbound(now, packet)
        answer = [e for e in effects if isinstance(e, Send) and isinstance(e.message, StateSync)]
        self._route([e for e in effects if e not in answer])
        return self._packet(answer[0].message) if answer else None

    def _route(self, effects: list[Effect]) -> None:
        for effect in effects:
            match effect:
                case Send(to=to, message=StateSync() as sync):
                    gevent.spawn(self._push_pull, to, self._packet(sync))
                case Send(to=to, message=message):
                    self._send(to, message)
                case MemberChanged(member=member, previous=previous):
                    self._on_member_changed(member, previous)
                    if self._registry is not None:
                        up = member.state in (State.ALIVE, State.SUSPECT)
                        route = dict(member.meta).get(HTTP_META_KEY)
                        self._registry.tell(MemberState(member.name, up, route))
                    if self._detector is not None:
                        self._detector.tell(effect)
                case NameConflict(addr=addr):
                    self._stats.incr(metrics.GOSSIP_NAME_CONFLICTS)
                    log.warning(
                        "another node claims the name %s from %s:%d: node names must be unique",
                        self._members.name,
                        *addr,
                    )
                case Refuted():
                    self._stats.incr(metrics.GOSSIP_REFUTATIONS)
                    if self._detector is not None:
                        self._detector.tell(effect)

    def _send(self, to: Addr, message: Message) -> None:
        data = codec.encode(self._packet(message), self._label)
        self._udp.send(data, to)
        self._stats.incr(metrics.GOSSIP_MESSAGES_SENT)
        self._stats.incr(metrics.GOSSIP_BYTES_SENT, len(data))

    def _packet(self, message: Message) -> Packet:
        return packet_for(self._members, message, self._heads)

    def _push_pull(self, to: Addr, packet: Packet) -> None:
        """One TCP exchange, in its own greenlet; the answer comes back as a message."""
        try:
            data = exchange(to, codec.encode(packet, self._label, codec.MAX_STREAM_MESSAGE))
            answer = codec.decode(data, self._label, codec.MAX_STREAM_MESSAGE)
        except StreamError as exc:
            log.debug("full-state exchange failed: %s", exc)
            return
        except codec.DecodeError as exc:
            self._stats.incr(f"{metrics.GOSSIP_DROPPED}.{exc.reason}")
            return
        with contextlib.suppress(pykka.ActorDeadError):  # the node stopped meanwhile
            self.actor_ref.tell(Inbound(answer))

    def _on_member_changed(self, member: MemberRecord, previous: State | None) -> None:
        log.info(
            "member %s %s -> %s (incarnation %d)",
            member.name,
            previous.value if previous else "new",
            member.state.value,
            member.incarnation,
        )
        event = MemberEvent(
            event_kind(member.state, previous),
            MemberView(member, _wall(self._members.changed_at(member.name))),
        )
        for queue in self._subscribers:
            queue.put_nowait(event)  # unbounded: a stalled reader times out and unsubscribes
        if member.state is State.SUSPECT:
            self._stats.incr(metrics.GOSSIP_SUSPICIONS)
        elif member.state is State.DEAD:
            self._stats.incr(metrics.GOSSIP_DEATHS)
        self._stats.gauge(metrics.GOSSIP_PEERS, len(self._members.peers()))
