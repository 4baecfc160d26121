"""Membership actor: the membership stage, and the gossip transport.

Datagrams and stream messages are decoded in the transport's greenlets and
handed to the engine: datagrams to the membership stage, stream requests to
the stage that answers them (asked, so the answer goes back on the stream).
It carries out what the stage asks: datagrams out, streams opened in greenlets
of their own (their answers come back as :class:`Inbound`), member events to
subscribers, logs and metrics.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import gevent
import gevent.event
import gevent.queue
import pykka

from caxton_actors import metrics
from caxton_actors.actors.keys import ChangeKeys, KeyKeeper
from caxton_actors.actors.stage import StageActor
from caxton_actors.address import Address
from caxton_actors.clock import SYSTEM, Clock
from caxton_actors.engine import answers, stream_request
from caxton_actors.engine.membership import MembershipStage
from caxton_actors.engine.messages import (
    ClockSkewed,
    Dropped,
    Exchange,
    Inbound,
    JoinCluster,
    MembershipInput,
    Output,
    Packet,
    Stage,
    Tick,
    Transmit,
)
from caxton_actors.registry.records import RegistryPull
from caxton_actors.runtime.actor import Mailbox, Request
from caxton_actors.runtime.timer import Alarm
from caxton_actors.swim.messages import (
    MemberChanged,
    MemberRecord,
    NameConflict,
    Refuted,
    State,
    StateSync,
)
from caxton_actors.wire import codec
from caxton_actors.wire.channel import Channel
from caxton_actors.wire.keyring import KeyringOffer, KeyringRequest
from caxton_actors.wire.transport import StreamError, Transport

log = logging.getLogger(__name__)

# Member changes logged one line each per input handled; the rest at debug level, summed
# up in one line, so that a pushed table of 10,000 members is not 10,000 lines (which held
# the actor, and the acks it sends, for long enough to be suspected on a busy machine).
LOG_BURST = 16

# Seconds a stream handler waits for a stage to answer a stream request.
STREAM_ANSWER_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class MemberView:
    record: MemberRecord
    changed_at: float
    """Unix time in seconds of the last state change."""


@dataclass(frozen=True, slots=True)
class ListMembers(Request[tuple[MemberView, ...]]):
    pass


@dataclass(frozen=True, slots=True)
class MemberEvent:
    """What a subscriber hears: a member joined, turned suspect, recovered, died, left or
    changed its metadata."""

    kind: str
    member: MemberView


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Deliver every later :class:`MemberEvent` to ``queue``, then None when this actor
    stops: a restarted one knows no subscriber, so the subscriber must ask it again."""

    queue: gevent.queue.Queue[MemberEvent | None]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    queue: gevent.queue.Queue[MemberEvent | None]


def event_kind(state: State, previous: State | None) -> str:
    if state is State.ALIVE:
        if previous is State.SUSPECT:
            return "recovered"
        return "updated" if previous is State.ALIVE else "joined"
    return str(state.value)  # suspect, dead, left


@dataclass(frozen=True, slots=True)
class GossipHealth:
    addr: Address
    """This node's gossip address, as its peers know it."""
    peer_count: int
    last_sync: float | None
    """Unix time in seconds of the last full-state exchange, if any."""
    known: int
    """Members ever seen and still remembered, this node excluded."""
    encrypted: bool
    """Whether gossip is sealed with keys (``gossip.keys``)."""
    skewed: dict[str, float]
    """Members whose wall clocks are off ours by more than ``engine.skew.SKEW_BOUND``:
    seconds ahead (negative: behind)."""


@dataclass(frozen=True, slots=True)
class GossipStatus(Request[GossipHealth]):
    pass


SeedWaits = tuple[tuple[Address, "gevent.event.AsyncResult[str]"], ...]


@dataclass(frozen=True, slots=True)
class JoinSeeds(Request[SeedWaits]):
    """From the HTTP API: join through these (resolved) seeds. Answered at once with one
    result per seed, filled when its full-state exchange is done: "" if it answered, else
    why not; so the actor never waits on the network, and the request can say which
    seeds answered."""

    addresses: tuple[Address, ...]


@dataclass(frozen=True, slots=True)
class ExchangeFailed:
    """A full-state exchange this actor opened came to nothing."""

    to: Address
    reason: str


@dataclass(frozen=True, slots=True)
class SpokeOldKey:
    """A member sealed with a key that is not our primary."""

    member: str
    key: bytes


class MembershipActor(StageActor):
    def __init__(
        self,
        stage: MembershipStage,
        transport: Transport,
        channel: Channel,
        stats: metrics.Metrics,
        keyring_file: Path,
        clock: Clock = SYSTEM,
    ) -> None:
        super().__init__()
        self._clock = clock
        self._stage = stage
        self._members = stage.members
        self._transport = transport
        self._channel = channel
        self._stats = stats
        self._keys = KeyKeeper(stage.members, channel, transport, keyring_file)
        self._subscribers: list[gevent.queue.Queue[MemberEvent | None]] = []
        self._alarm = Alarm(lambda: self.actor_ref.tell(Tick()))
        self._changes = 0
        """Member changes among the outputs being carried out."""
        self._seed_waits: dict[Address, list[gevent.event.AsyncResult[str]]] = {}
        """Per seed, what the joins asked through the HTTP API wait on."""

    # Running in the transport's greenlets: decode, then hand over as a message.

    def _on_datagram(self, data: bytes, source: Address) -> None:
        try:
            packet, spoken = self._channel.unpack(data)
        except codec.DecodeError as exc:
            self._dropped(exc)
            return
        with contextlib.suppress(pykka.ActorDeadError):  # stopped or crashed: it is lost
            self.actor_ref.tell(Inbound(packet, source))
            if spoken is not None:  # after the packet: its sender may be news to the table
                self.actor_ref.tell(SpokeOldKey(packet.sender, spoken))

    def _on_stream(self, data: bytes, source: Address) -> bytes | None:
        try:
            packet, spoken = self._channel.unpack(data, codec.MAX_STREAM_REQUEST)
        except codec.DecodeError as exc:
            self._dropped(exc)
            return None
        reply = self._answer_stream(packet, source)
        if spoken is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                self.actor_ref.tell(SpokeOldKey(packet.sender, spoken))
        if reply is None:
            return None
        return self._channel.pack(reply, codec.MAX_STREAM_MESSAGE, spoken)  # in its key

    def _answer_stream(self, packet: Packet, source: Address) -> Packet | None:
        hop = stream_request(packet, source)
        owner: Mailbox | None
        request: object
        if isinstance(packet.message, (KeyringRequest, KeyringOffer)):  # this actor's own
            owner, request = self.actor_ref, packet.message
        elif hop is None:
            self._stats.incr(f"{metrics.GOSSIP_DROPPED}.unexpected_stream")
            return None
        else:
            owner, request = self._owner(hop.stage), hop.message
        if owner is None:
            return None
        try:
            return cast(
                "Packet | None", owner.ask(request, block=False).get(timeout=STREAM_ANSWER_TIMEOUT)
            )
        except (pykka.ActorDeadError, pykka.Timeout):  # stopping, or too busy to answer now
            return None

    def _exchange(self, to: Address, packet: Packet) -> None:
        """One stream, in its own greenlet; the answer comes back as a message."""
        if isinstance(packet.message, RegistryPull):
            self._stats.incr(metrics.REGISTRY_PULLS)
        try:
            data = self._transport.exchange(
                to, self._channel.pack(packet, codec.MAX_STREAM_REQUEST)
            )
            answer, _ = self._channel.unpack(data, codec.MAX_STREAM_MESSAGE)
        except StreamError as exc:
            log.debug("stream to %s:%d failed: %s", *to, exc)
            self._exchange_failed(to, packet, str(exc))
            return
        except codec.DecodeError as exc:
            self._dropped(exc)
            self._exchange_failed(to, packet, f"its answer was dropped: {exc}")
            return
        if not answers(packet.message, answer.message):
            self._stats.incr(f"{metrics.GOSSIP_DROPPED}.unexpected_stream")
            self._exchange_failed(to, packet, "it answered something else")
            return
        with contextlib.suppress(pykka.ActorDeadError):  # the node stopped meanwhile
            self.actor_ref.tell(Inbound(answer, to, answer=True))

    def _exchange_failed(self, to: Address, packet: Packet, reason: str) -> None:
        if isinstance(packet.message, StateSync):  # a join's: someone may wait on it
            with contextlib.suppress(pykka.ActorDeadError):
                self.actor_ref.tell(ExchangeFailed(to, reason))

    def _join_seeds(self, addresses: tuple[Address, ...]) -> SeedWaits:
        waits = []
        for addr in addresses:
            wait: gevent.event.AsyncResult[str] = gevent.event.AsyncResult()
            self._seed_waits.setdefault(addr, []).append(wait)
            waits.append((addr, wait))
        self.on_receive(JoinCluster(addresses))
        return tuple(waits)

    def _seed_done(self, addr: Address, failure: str) -> None:
        for wait in self._seed_waits.pop(addr, ()):
            wait.set(failure)

    def _owner(self, stage: Stage) -> Mailbox | None:
        return self.actor_ref if stage is Stage.MEMBERSHIP else self._peers.get(stage)

    def _dropped(self, exc: codec.DecodeError) -> None:
        self._stats.incr(f"{metrics.GOSSIP_DROPPED}.{exc.reason}")
        log.debug("dropped gossip: %s", exc)

    # The actor.

    def on_start(self) -> None:
        self._transport.open(self._on_datagram, self._on_stream)
        self._alarm.arm(self._stage.next_deadline())
        self._stats.gauge(metrics.GOSSIP_PEERS, self._members.peer_count())  # from the start

    def on_stop(self) -> None:
        self._alarm.cancel()
        self._transport.close()
        for queue in self._subscribers:
            queue.put_nowait(None)

    def on_failure(self, *_exc_info: object) -> None:
        self.on_stop()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, MembershipInput):
            clock = self._clock
            reply = self._carry(self._stage.handle(clock.monotonic(), message, wall=clock.wall()))
            self._alarm.arm(self._stage.next_deadline())
            match message:
                case Inbound(packet=Packet(message=StateSync()), source=source, answer=True):
                    self._seed_done(source, "")  # a full-state exchange of ours came back
            return reply
        match message:
            case JoinSeeds(addresses=addresses):
                return self._join_seeds(addresses)
            case ExchangeFailed(to=to, reason=reason):
                self._seed_done(to, reason)
                return None
            case ListMembers():
                return tuple(
                    MemberView(r, self._clock.to_wall(self._members.changed_at(r.name)))
                    for r in self._members.records()
                )
            case GossipStatus():
                last = self._members.last_sync
                return GossipHealth(
                    self._members.addr,
                    self._members.peer_count(),
                    None if last is None else self._clock.to_wall(last),
                    self._members.size() - 1,
                    self._channel.encrypted,
                    self._stage.skew.skewed(),
                )
            case KeyringRequest():  # a member's, on a sealed stream
                return Packet(self._members.name, self._keys.change(message))
            case KeyringOffer():
                return Packet(self._members.name, self._keys.adopt(message))
            case SpokeOldKey(member=member, key=key):
                self._keys.offer(member, key)
                return None
            case ChangeKeys(request=request):  # the operator's, through the HTTP API
                return self._keys.rotate(request)
            case Subscribe(queue=queue):
                self._subscribers.append(queue)
                return None
            case Unsubscribe(queue=queue):
                if queue in self._subscribers:
                    self._subscribers.remove(queue)
                return None
        return super().on_receive(message)

    def _effect(self, output: Output) -> None:
        match output:
            case Transmit(to=to, packet=packet):
                data = self._channel.pack(packet)
                self._transport.send(data, to)
                self._stats.incr(metrics.GOSSIP_MESSAGES_SENT)
                self._stats.incr(metrics.GOSSIP_BYTES_SENT, len(data))
            case Exchange(to=to, packet=packet):
                gevent.spawn(self._exchange, to, packet)
            case MemberChanged(member=member, previous=previous):
                self._on_member_changed(member, previous)
            case NameConflict(addr=addr):
                self._stats.incr(metrics.GOSSIP_NAME_CONFLICTS)
                log.warning(
                    "another node claims the name %s from %s:%d: node names must be unique",
                    self._members.name,
                    *addr,
                )
            case Refuted():
                self._stats.incr(metrics.GOSSIP_REFUTATIONS)
            case Dropped(reason=reason, count=count):
                self._stats.incr(f"{metrics.GOSSIP_DROPPED}.{reason}", count)
            case ClockSkewed(member=member, seconds=seconds):
                log.warning(
                    "the clock of member %s is %.1f s %s ours; keep every node's clock "
                    "synchronised (NTP): registry versions and times come from them",
                    member,
                    abs(seconds),
                    "ahead of" if seconds > 0 else "behind",
                )

    def _carry(self, outputs: Iterable[Output]) -> Packet | None:
        """The stage's outputs, with the member changes among them logged one line each
        up to ``LOG_BURST``, then summed up in one line."""
        self._changes = 0
        answer = super()._carry(outputs)
        if self._changes:
            self._stats.gauge(metrics.GOSSIP_PEERS, self._members.peer_count())
        if self._changes > LOG_BURST:
            more = self._changes - LOG_BURST
            log.info(
                "%d more member changes at once (each at debug level)",
                more,
                extra={"event": "burst", "count": more},
            )
        return answer

    def _on_member_changed(self, member: MemberRecord, previous: State | None) -> None:
        kind = event_kind(member.state, previous)
        self._changes += 1
        level = logging.INFO if self._changes <= LOG_BURST else logging.DEBUG
        log.log(
            level,
            "member %s %s -> %s (incarnation %d)",
            member.name,
            previous.value if previous else "new",
            member.state.value,
            member.incarnation,
            extra={  # fields of their own in a JSON line (logs.py)
                "event": kind,
                "member": member.name,
                "state": member.state.value,
                "previous": previous.value if previous else None,
                "incarnation": member.incarnation,
            },
        )
        event = MemberEvent(
            kind, MemberView(member, self._clock.to_wall(self._members.changed_at(member.name)))
        )
        for queue in self._subscribers:
            queue.put_nowait(event)  # unbounded: a stalled reader times out and unsubscribes
        if member.state is State.SUSPECT:
            self._stats.incr(metrics.GOSSIP_SUSPICIONS)
        elif member.state is State.DEAD:
            self._stats.incr(metrics.GOSSIP_DEATHS)
