"""The membership stage: the member table, dissemination, and what each packet carries.

Every datagram and stream answer enters here. Its piggybacked updates go to the
member table, its heads to the registry stage (only from a member's address: a pull
goes back there), and its message to whichever part it is for: a full-state exchange
to the table, probe traffic to the detection stage, a pull's answer to the registry
stage. Everything that leaves the node leaves here, with the updates and heads still
to be spread on board, but only to members: a stranger's ping gets a bare ack, no
bigger than what it sent.

Every ack it sends carries this node's wall clock, and every member's stamped datagram
tells how far that member's clock is from ours (``engine/skew.py``): each node acks
about once a probe interval, so every member's clock is still watched, and the other
datagrams are spared the bytes.
"""

from __future__ import annotations

import math
from dataclasses import replace

from caxton_actors.address import Address
from caxton_actors.engine.messages import (
    Answer,
    ClockSkewed,
    Dropped,
    Exchange,
    HeardHeads,
    Hop,
    Inbound,
    JoinCluster,
    LeaveCluster,
    MembershipInput,
    MemberState,
    Merge,
    MergeRest,
    Output,
    Packet,
    Probe,
    PullFrom,
    Restarted,
    SpreadHeads,
    Stage,
    SyncRequest,
    Tick,
    Transmit,
    WireMessage,
)
from caxton_actors.engine.skew import Skew
from caxton_actors.registry.records import AgentUpdate, Head, RegistryPull
from caxton_actors.swim.members import BroadcastQueue, Members
from caxton_actors.swim.messages import (
    HTTP_META_KEY,
    Ack,
    Effect,
    Gossip,
    Ignored,
    MemberChanged,
    MemberRecord,
    Nack,
    NameConflict,
    Ping,
    PingReq,
    ProbeFailed,
    Refuted,
    Send,
    State,
    StateSync,
)

# Updates piggybacked on one datagram: keeps it within 1,400 bytes with 63-character names.
MAX_PIGGYBACK = 6
# Records of a pushed table merged per input: the rest waits its turn in the mailbox.
MERGE_SLICE = 500
# Registry heads piggybacked on one datagram (the codec leaves off what does not fit).
MAX_HEADS = 8
# Of those, how many may be old heads in rotation (see Heads).
ROTATING_HEADS = 2
# After news, the rotation goes through every head this many times, at one datagram a
# probe interval (a node sends a ping and about one ack each: twice that, in practice),
ROTATION_CYCLES = 3
# and lasts at least this many probe intervals, however few heads there are.
MIN_ROTATION_PROBES = 10


class Heads:
    """The registry heads this node spreads: news first, then, for a while after the
    last news, a few of all it knows.

    News (heads that rose here: this node's changes, and what it merged of others')
    goes out like a membership update, a limited number of times. For a while after
    the last news, long enough to go through the whole digest ``ROTATION_CYCLES``
    times, the rest of each datagram's room carries the next few of every head in
    turn: cheap anti-entropy, so a node that missed the news hears of it within
    seconds. Then the rotation stops: a cluster at rest sends no heads, however many
    owners it has. A node that missed the news all the same hears every head at its
    next full-state exchange (``Timing.push_pull_period``).
    """

    def __init__(self, probe_interval: float) -> None:
        self.news: BroadcastQueue[Head] = BroadcastQueue()
        self.digest: tuple[Head, ...] = ()
        """Every head this node knows."""
        self._probe_interval = probe_interval
        self._cursor = 0
        self._rotate_until = -math.inf
        """Until when (monotonic) old heads ride along: a while after the last news."""

    def spread(self, news: tuple[Head, ...], digest: tuple[Head, ...], now: float) -> None:
        """``news``: heads that rose here; ``digest``: every head, as it now stands."""
        self.digest = digest
        if not news:
            return
        for head in news:
            self.news.push(head)
        probes = max(MIN_ROTATION_PROBES, ROTATION_CYCLES * math.ceil(len(digest) / ROTATING_HEADS))
        self._rotate_until = now + probes * self._probe_interval

    def for_datagram(self, now: float, limit: int) -> tuple[Head, ...]:
        taken = self.news.take(MAX_HEADS, limit)
        if now >= self._rotate_until or not self.digest:
            return taken
        room = min(ROTATING_HEADS, MAX_HEADS - len(taken), len(self.digest))
        rotating = tuple(self.digest[(self._cursor + i) % len(self.digest)] for i in range(room))
        self._cursor += room
        return taken + rotating


class MembershipStage:
    def __init__(self, members: Members) -> None:
        self.members = members
        self.heads = Heads(members.timing.probe_interval)
        self.skew = Skew()

    def next_deadline(self) -> float:
        return self.members.next_deadline(bool(self.heads.news))

    def handle(self, now: float, message: MembershipInput, *, wall: float) -> list[Output]:
        """``now``: monotonic seconds, every timeout's; ``wall``: Unix seconds, stamped on
        what is sent and held against the stamps of what comes in."""
        members = self.members
        match message:
            case Inbound(packet=packet, source=source, answer=answer):
                return self._inbound(now, wall, packet, source, answer)
            case SyncRequest(packet=packet, source=source):
                outputs = self._inbound(now, wall, packet, source, answer=True)
                return [*outputs, Answer(self.packet(members.full_state(), now, wall))]
            case Tick():
                return self._run(now, wall, members.tick(now, bool(self.heads.news)))
            case Send():
                return self._run(now, wall, [message])
            case ProbeFailed(name=name, incarnation=incarnation):
                return self._run(now, wall, members.suspect(now, name, incarnation))
            case SpreadHeads(news=news, digest=digest):
                self.heads.spread(news, digest, now)
                return []
            case PullFrom(source=source, pull=pull):
                return [Exchange(source, self.packet(pull, now, wall))]
            case JoinCluster(addresses=addresses):
                return self._run(now, wall, members.join(now, addresses))
            case LeaveCluster():
                return self._run(now, wall, members.leave(now))
            case Restarted(stage=stage):
                return self._retell(stage)
            case MergeRest():
                return self._merge_slice(now, wall, message)

    def packet(
        self, message: WireMessage, now: float, wall: float, to_member: bool = True
    ) -> Packet:
        """``message`` from this node, with the updates and heads still to be spread on
        board, and if it is an ack to a member this node's wall clock (``wall``, in ms).

        A full-state exchange carries the whole table and every head; registry stream
        messages, and datagrams to an address no member has, carry nothing else (a
        stranger's ping gets a bare ack, no bigger than the ping).
        """
        members = self.members
        if isinstance(message, StateSync):
            return Packet(members.name, message, (), self.heads.digest)
        if isinstance(message, (RegistryPull, AgentUpdate)) or not to_member:
            return Packet(members.name, message)
        sent_at = int(wall * 1000) if isinstance(message, Ack) else None
        # A pinged suspect hears of its suspicion first, so it can refute at once.
        prefer = message.target if isinstance(message, Ping) else None
        piggyback = members.take_broadcasts(MAX_PIGGYBACK, prefer)
        limit = members.timing.retransmit_limit(members.size())
        heads = self.heads.for_datagram(now, limit)
        return Packet(members.name, message, piggyback, heads, sent_at)

    def _inbound(
        self, now: float, wall: float, packet: Packet, source: Address, answer: bool
    ) -> list[Output]:
        """``answer``: on a stream (ours, or one whose request we answer), not a datagram."""
        members = self.members
        outputs: list[Output] = [] if answer else self._clock_of(now, wall, packet, source)
        effects = members.apply(now, packet.piggyback)
        message = packet.message
        match message:
            case StateSync() if answer:
                outputs = self._run(now, wall, effects) + outputs
                table = MergeRest(message.members, source, packet.sender, packet.heads)
                return outputs + self._merge_slice(now, wall, table)
            case AgentUpdate() if answer:
                outputs.append(Hop(Stage.REGISTRY, Merge(message)))
            case Ping() | Ack() | Nack() | PingReq():
                outputs.append(Hop(Stage.DETECTION, Probe(source, message)))
            case Gossip():
                pass
            case _:  # a stream message off its stream, or an answer nobody asked for
                outputs.append(Dropped("unexpected_datagram"))
        outputs = self._run(now, wall, effects) + outputs
        # After the member events, so the registry knows the owners.
        return outputs + self._heads(source, packet.sender, packet.heads)

    def _merge_slice(self, now: float, wall: float, table: MergeRest) -> list[Output]:
        """Merge up to ``MERGE_SLICE`` records of a pushed table; the rest comes back as a
        hop to this stage, behind what is queued (a pushed table of 10,000 members held
        the actor, and the acks it sends, for long enough to be suspected). The heads that
        came with the table go to the registry after its last slice, when their owners
        are members."""
        members = self.members
        records = table.members
        effects = members.on_state_sync(now, StateSync(records[:MERGE_SLICE], reply=False))
        outputs = self._run(now, wall, effects)
        if len(records) > MERGE_SLICE:
            rest = replace(table, members=records[MERGE_SLICE:])
            return [*outputs, Hop(Stage.MEMBERSHIP, rest)]
        return outputs + self._heads(table.source, table.sender, table.heads)

    def _heads(self, source: Address, sender: str, heads: tuple[Head, ...]) -> list[Output]:
        """Heads for the registry, credited to a member: where they came from, or where
        their sender lives (a pushed table comes from a passing port)."""
        if not heads:
            return []
        members = self.members
        teller = source if members.knows(source) else members.address_of(sender)
        if teller is None:
            return [Dropped("heads_from_stranger")]
        return [Hop(Stage.REGISTRY, HeardHeads(teller, heads))]

    def _retell(self, stage: Stage) -> list[Output]:
        """A stage built anew knows no member: tell it each one as it stands, as if it
        had just changed (detection: whom to probe; the registry: who is up, and where)."""
        records = self.members.records()
        if stage is Stage.DETECTION:
            return [Hop(stage, MemberChanged(member, None)) for member in records]
        if stage is Stage.REGISTRY:
            return [Hop(stage, _member_state(member)) for member in records]
        return []

    def _clock_of(self, now: float, wall: float, packet: Packet, source: Address) -> list[Output]:
        """What a datagram's stamp says of its sender's clock. Datagrams only: a stream's
        answer may take seconds to build and to send; and only a member's, from where it
        lives, as anyone can write a name in a packet."""
        if packet.sent_at is None or self.members.address_of(packet.sender) != source:
            return []
        skew = self.skew.observe(packet.sender, packet.sent_at, now, wall)
        return [] if skew is None else [ClockSkewed(packet.sender, skew)]

    def _run(self, now: float, wall: float, effects: list[Effect]) -> list[Output]:
        outputs: list[Output] = []
        for effect in effects:
            match effect:
                case Send(to=to, message=StateSync() as sync):
                    outputs.append(Exchange(to, self.packet(sync, now, wall)))
                case Send(to=to, message=message):
                    packet = self.packet(message, now, wall, self.members.knows(to))
                    outputs.append(Transmit(to, packet))
                case MemberChanged(member=member):
                    up = member.state in (State.ALIVE, State.SUSPECT)
                    if not up:
                        self.skew.forget(member.name)
                    outputs += [
                        effect,
                        Hop(Stage.DETECTION, effect),
                        Hop(Stage.REGISTRY, _member_state(member)),
                    ]
                case Refuted():
                    outputs += [effect, Hop(Stage.DETECTION, effect)]
                case NameConflict():
                    outputs.append(effect)
                case Ignored(reason=reason):
                    outputs.append(Dropped(reason))
        return outputs


def _member_state(member: MemberRecord) -> MemberState:
    """What the registry needs of a member: whether it is up, and its HTTP route."""
    up = member.state in (State.ALIVE, State.SUSPECT)
    return MemberState(member.name, up, dict(member.meta).get(HTTP_META_KEY))
