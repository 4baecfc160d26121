"""One SWIM node's pure core: the member table and the prober, wired together.

This is the routing both shells share: packets in (piggybacked updates to the
member table, probe traffic to the prober, full-state exchanges to the table),
packets out (each message with the updates still to be spread), and the two
components' effects on each other (a failed probe becomes a suspicion, a
member change updates the probe list, a refutation raises the health score).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from caxton_actors.registry.records import AgentUpdate, Head, RegistryPull
from caxton_actors.registry.replica import Replica
from caxton_actors.swim.members import BroadcastQueue, Members
from caxton_actors.swim.messages import (
    Addr,
    Effect,
    Gossip,
    MemberChanged,
    Message,
    Meta,
    NameConflict,
    Packet,
    Ping,
    ProbeFailed,
    ProbeSucceeded,
    Refuted,
    Send,
    State,
    StateSync,
)
from caxton_actors.swim.prober import Prober
from caxton_actors.swim.timing import Timing

# Updates piggybacked on one datagram: keeps it within 1,400 bytes with 63-character names.
MAX_PIGGYBACK = 6
# Registry heads piggybacked on one datagram (the codec leaves off what does not fit).
MAX_HEADS = 8
# Of those, how many may be old heads in rotation (see Heads).
ROTATING_HEADS = 2


@dataclass(frozen=True, slots=True)
class Outgoing:
    to: Addr
    packet: Packet


Output = Outgoing | MemberChanged | NameConflict | Refuted


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


def packet_for(members: Members, message: Message, heads: Heads) -> Packet:
    """``message`` from this node, with the updates and heads still to be spread on board.

    A full-state exchange carries the whole table and every head.
    """
    if isinstance(message, StateSync):
        return Packet(members.name, members.addr, message, (), heads.digest)
    if isinstance(message, (RegistryPull, AgentUpdate)):  # stream messages: nothing on board
        return Packet(members.name, members.addr, message)
    # A pinged suspect hears of its suspicion first, so it can refute at once.
    prefer = message.target if isinstance(message, Ping) else None
    piggyback = members.take_broadcasts(MAX_PIGGYBACK, prefer)
    limit = members.timing.retransmit_limit(members.size())
    return Packet(members.name, members.addr, message, piggyback, heads.for_datagram(limit))


class SwimNode:
    """Membership, failure detection and registry replication, for the simulator."""

    def __init__(
        self,
        name: str,
        addr: Addr,
        timing: Timing,
        rng: random.Random,
        now: float,
        *,
        meta: Meta = (),
        incarnation: int = 0,
    ) -> None:
        self.name = name
        self.addr = addr
        self.members = Members(name, addr, meta, incarnation, timing, rng, now)
        self.prober = Prober(name, timing, rng, now)
        self.replica = Replica(name, timing.dead_node_reclaim_time)
        self.replica.restart((), now)  # a simulated node starts on an empty disk
        self.heads = Heads()

    def join(self, now: float, seeds: Sequence[Addr]) -> list[Output]:
        return self._run(now, self.members.join(now, seeds))

    def leave(self, now: float) -> list[Output]:
        return self._run(now, self.members.leave(now))

    def register(self, now: float, agent_id: str, capabilities: tuple[str, ...]) -> None:
        self.replica.register(agent_id, capabilities, now)
        self._spread_news()

    def deregister(self, now: float, agent_id: str) -> None:
        self.replica.deregister(agent_id, now)
        self._spread_news()

    def handle(self, now: float, packet: Packet) -> list[Output]:
        effects = self.members.apply(now, packet.piggyback)
        message = packet.message
        if isinstance(message, StateSync):
            effects += self.members.on_state_sync(now, packet.sender_addr, message)
        elif isinstance(message, RegistryPull):
            effects.append(Send(packet.sender_addr, self.replica.answer(message)))
        elif isinstance(message, AgentUpdate):
            self.replica.merge(message)
        elif not isinstance(message, Gossip):
            effects += self.prober.on_message(now, packet.sender_addr, message)
        self.replica.hear(packet.heads, packet.sender_addr)
        effects += [Send(source, pull) for source, pull in self.replica.pulls(now)]
        self._spread_news()
        return self._run(now, effects)

    def tick(self, now: float) -> list[Output]:
        self.replica.expire(now)
        self._spread_news()
        more = bool(self.heads.news)
        return self._run(now, self.prober.tick(now) + self.members.tick(now, more))

    def next_deadline(self) -> float:
        return min(self.prober.next_deadline(), self.members.next_deadline())

    def _spread_news(self) -> None:
        for head in self.replica.take_news():
            self.heads.news.push(head)
        self.heads.digest = self.replica.heads()

    def _run(self, now: float, effects: list[Effect]) -> list[Output]:
        outputs: list[Output] = []
        pending = list(effects)
        while pending:
            effect = pending.pop(0)
            match effect:
                case Send(to=to, message=message):
                    packet = packet_for(self.members, message, self.heads)
                    outputs.append(Outgoing(to, packet))
                case MemberChanged(member=member):
                    self.prober.update_member(member)
                    up = member.state in (State.ALIVE, State.SUSPECT)
                    self.replica.member_changed(member.name, up, None, now)
                    outputs.append(effect)
                case ProbeFailed(name=name, incarnation=incarnation):
                    pending += self.members.suspect(now, name, incarnation)
                case Refuted():
                    self.prober.adjust_health(1)
                    outputs.append(effect)
                case NameConflict():
                    outputs.append(effect)
                case ProbeSucceeded():
                    pass  # only the actors' metrics need round trips
        return outputs
