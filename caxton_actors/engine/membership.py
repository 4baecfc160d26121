"""The membership stage: the member table, dissemination, and what each packet carries.

Every datagram and stream answer enters here. Its heads go to the registry stage
first (so a pull can start while the rest is handled), its piggybacked updates to
the member table, and its message to whichever part it is for: a full-state
exchange to the table, probe traffic to the detection stage, a pull's answer to the
registry stage. Everything that leaves the node leaves here, with the updates and
heads still to be spread on board.
"""

from __future__ import annotations

from caxton_actors.engine.messages import (
    Answer,
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
    Output,
    Packet,
    Probe,
    PullFrom,
    SpreadHeads,
    Stage,
    SyncRequest,
    Tick,
    Transmit,
    WireMessage,
)
from caxton_actors.registry.records import AgentUpdate, Head, RegistryPull
from caxton_actors.swim.members import BroadcastQueue, Members
from caxton_actors.swim.messages import (
    HTTP_META_KEY,
    Effect,
    Gossip,
    MemberChanged,
    NameConflict,
    Ping,
    ProbeFailed,
    Refuted,
    Send,
    State,
    StateSync,
)

# Updates piggybacked on one datagram: keeps it within 1,400 bytes with 63-character names.
MAX_PIGGYBACK = 6
# Registry heads piggybacked on one datagram (the codec leaves off what does not fit).
MAX_HEADS = 8
# Of those, how many may be old heads in rotation (see Heads).
ROTATING_HEADS = 2


class Heads:
    """The registry heads this node spreads: news first, then a few of all it knows.

    News (heads that rose here) goes out like a membership update, a limited
    number of times. The rest of each datagram's room carries the next few of
    every head in turn: cheap anti-entropy, so a node that missed some news
    hears of it within seconds, not at the next full-state exchange.
    """

    def __init__(self) -> None:
        self.news: BroadcastQueue[Head] = BroadcastQueue()
        self.digest: tuple[Head, ...] = ()
        """Every head this node knows."""
        self._cursor = 0

    def for_datagram(self, limit: int) -> tuple[Head, ...]:
        taken = self.news.take(MAX_HEADS, limit)
        room = min(ROTATING_HEADS, MAX_HEADS - len(taken), len(self.digest))
        rotating = tuple(self.digest[(self._cursor + i) % len(self.digest)] for i in range(room))
        self._cursor += room
        return taken + rotating


class MembershipStage:
    def __init__(self, members: Members) -> None:
        self.members = members
        self.heads = Heads()

    def next_deadline(self) -> float:
        return self.members.next_deadline()

    def handle(self, now: float, message: MembershipInput) -> list[Output]:
        members = self.members
        match message:
            case Inbound(packet=packet, answer=answer):
                return self._inbound(now, packet, answer)
            case SyncRequest(packet=packet):
                return self._answer_sync(now, packet)
            case Tick():
                return self._run(now, members.tick(now, bool(self.heads.news)))
            case Send():
                return self._run(now, [message])
            case ProbeFailed(name=name, incarnation=incarnation):
                return self._run(now, members.suspect(now, name, incarnation))
            case SpreadHeads(news=news, digest=digest):
                for head in news:
                    self.heads.news.push(head)
                self.heads.digest = digest
                return []
            case PullFrom(source=source, pull=pull):
                return [Exchange(source, self.packet(pull))]
            case JoinCluster(addresses=addresses):
                return self._run(now, members.join(now, addresses))
            case LeaveCluster():
                return self._run(now, members.leave(now))

    def packet(self, message: WireMessage) -> Packet:
        """``message`` from this node, with the updates and heads still to be spread on board.

        A full-state exchange carries the whole table and every head; registry stream
        messages carry nothing else.
        """
        members = self.members
        if isinstance(message, StateSync):
            return Packet(members.name, members.addr, message, (), self.heads.digest)
        if isinstance(message, (RegistryPull, AgentUpdate)):
            return Packet(members.name, members.addr, message)
        # A pinged suspect hears of its suspicion first, so it can refute at once.
        prefer = message.target if isinstance(message, Ping) else None
        piggyback = members.take_broadcasts(MAX_PIGGYBACK, prefer)
        limit = members.timing.retransmit_limit(members.size())
        heads = self.heads.for_datagram(limit)
        return Packet(members.name, members.addr, message, piggyback, heads)

    def _inbound(self, now: float, packet: Packet, answer: bool = False) -> list[Output]:
        outputs: list[Output] = []
        if packet.heads:
            outputs.append(Hop(Stage.REGISTRY, HeardHeads(packet.sender_addr, packet.heads)))
        effects = self.members.apply(now, packet.piggyback)
        message = packet.message
        match message:
            case StateSync():
                effects += self.members.on_state_sync(now, packet.sender_addr, message)
            case AgentUpdate() if answer:
                outputs.append(Hop(Stage.REGISTRY, Merge(message)))
            case AgentUpdate() | RegistryPull():  # unasked, or a request off its stream
                outputs.append(Dropped("unexpected_datagram"))
            case Gossip():
                pass
            case _:
                outputs.append(Hop(Stage.DETECTION, Probe(packet.sender_addr, message)))
        return outputs + self._run(now, effects)

    def _answer_sync(self, now: float, packet: Packet) -> list[Output]:
        """Merge a pushed table; ours goes back on the same stream."""
        outputs = self._inbound(now, packet)
        answers = [o for o in outputs if isinstance(o, Exchange) and o.to == packet.sender_addr]
        answer = next((o for o in answers if isinstance(o.packet.message, StateSync)), None)
        rest = [o for o in outputs if o is not answer]
        return [*rest, Answer(None if answer is None else answer.packet)]

    def _run(self, now: float, effects: list[Effect]) -> list[Output]:
        outputs: list[Output] = []
        for effect in effects:
            match effect:
                case Send(to=to, message=StateSync() as sync):
                    outputs.append(Exchange(to, self.packet(sync)))
                case Send(to=to, message=message):
                    outputs.append(Transmit(to, self.packet(message)))
                case MemberChanged(member=member):
                    up = member.state in (State.ALIVE, State.SUSPECT)
                    route = dict(member.meta).get(HTTP_META_KEY)
                    outputs += [
                        effect,
                        Hop(Stage.DETECTION, effect),
                        Hop(Stage.REGISTRY, MemberState(member.name, up, route)),
                    ]
                case Refuted():
                    outputs += [effect, Hop(Stage.DETECTION, effect)]
                case NameConflict():
                    outputs.append(effect)
        return outputs
