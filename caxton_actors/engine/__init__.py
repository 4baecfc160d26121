"""One node's protocol engine: SWIM membership, Lifeguard detection and the registry's
gossip, as three sans-I/O stages.

Each stage takes one immutable input at a time with the current time, and returns
outputs: :class:`~caxton_actors.engine.messages.Hop` inputs for another stage, and
effects for its shell. Every routing decision lives here, once. A node gives each
stage to its own actor, which forwards hops to the actor that owns the stage named
and carries out the effects on real sockets and SQLite (``actors/``); the simulator
drives the very same stages in virtual time, with each hop a mailbox message
(``sim/``). ``swim/`` and ``registry/`` below know nothing of each other: this is
where the registry rides on membership (heads on datagrams, pulls on streams,
member events).
"""

from __future__ import annotations

import random
from typing import cast

from caxton_actors.address import Address
from caxton_actors.engine.detection import DetectionStage
from caxton_actors.engine.membership import MembershipStage
from caxton_actors.engine.messages import (
    AnswerPull,
    DetectionInput,
    Hop,
    MembershipInput,
    Output,
    Packet,
    RegistryInput,
    Stage,
    StageInput,
    SyncRequest,
    WireMessage,
)
from caxton_actors.engine.registry import RegistryStage
from caxton_actors.registry.records import AgentUpdate, RegistryPull
from caxton_actors.registry.replica import LIMITS, Limits, Replica
from caxton_actors.swim.members import Members
from caxton_actors.swim.messages import Meta, StateSync
from caxton_actors.swim.prober import Prober
from caxton_actors.swim.timing import Timing

__all__ = ["Engine", "answers", "stream_request"]


class Engine:
    """The three stages of one node, built alike for the node and the simulator."""

    def __init__(
        self,
        name: str,
        addr: Address,
        timing: Timing,
        rng: random.Random,
        now: float,
        *,
        meta: Meta = (),
        incarnation: int = 0,
        limits: Limits = LIMITS,
    ) -> None:
        self._name, self._addr, self._meta = name, addr, meta
        self._timing, self._rng, self._limits = timing, rng, limits
        self.membership = self._membership(now, incarnation)
        self.detection = DetectionStage(Prober(name, timing, rng, now))
        self.registry = self._registry()

    def rebuild(self, stage: Stage, now: float, incarnation: int = 0) -> None:
        """Build ``stage`` anew, as at start, for a shell whose actor for it crashed: an
        exception halfway through an input may have left the old one half-changed.
        Membership comes back with ``incarnation`` (above its last, so that peers take its
        news), the registry empty (its shell loads it from disk); then each hears
        :class:`~caxton_actors.engine.messages.Restarted` from the others."""
        if stage is Stage.MEMBERSHIP:
            self.membership = self._membership(now, incarnation)
        elif stage is Stage.DETECTION:
            self.detection = DetectionStage(Prober(self._name, self._timing, self._rng, now))
        else:
            self.registry = self._registry()

    def _membership(self, now: float, incarnation: int) -> MembershipStage:
        members = Members(
            self._name, self._addr, self._meta, incarnation, self._timing, self._rng, now
        )
        return MembershipStage(members)

    def _registry(self) -> RegistryStage:
        reclaim = self._timing.dead_node_reclaim_time
        return RegistryStage(Replica(self._name, reclaim, self._limits))

    def handle(self, stage: Stage, now: float, message: StageInput, *, wall: float) -> list[Output]:
        """Give ``message`` to ``stage``: for a shell that holds all three (the simulator).

        ``now`` is monotonic seconds, for every timeout; ``wall`` is Unix seconds, for what
        goes on the wire (detection needs none).
        """
        if stage is Stage.MEMBERSHIP:
            return self.membership.handle(now, cast(MembershipInput, message), wall=wall)
        if stage is Stage.DETECTION:
            return self.detection.handle(now, cast(DetectionInput, message))
        return self.registry.handle(now, cast(RegistryInput, message), wall=wall)

    def next_deadline(self, stage: Stage) -> float | None:
        """When a stage wants a :class:`Tick` (the registry's come from housekeeping)."""
        if stage is Stage.MEMBERSHIP:
            return self.membership.next_deadline()
        if stage is Stage.DETECTION:
            return self.detection.next_deadline()
        return None


def stream_request(packet: Packet, source: Address) -> Hop | None:
    """Which stage answers a stream request, as what input; None: not a stream request."""
    message = packet.message
    if isinstance(message, StateSync):
        return Hop(Stage.MEMBERSHIP, SyncRequest(packet, source))
    if isinstance(message, RegistryPull):
        return Hop(Stage.REGISTRY, AnswerPull(message))
    return None


def answers(request: WireMessage, answer: WireMessage) -> bool:
    """Whether ``answer`` is what a stream opened with ``request`` may bring back."""
    if isinstance(request, StateSync):
        return isinstance(answer, StateSync)
    return isinstance(request, RegistryPull) and isinstance(answer, AgentUpdate)
