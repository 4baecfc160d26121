"""Failure detection actor: the probe loop, around the pure :class:`Prober`.

It hears probe traffic and member changes from the membership actor, and
answers with messages to send and probe results; it never touches a socket.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import pykka

from caxton_actors import metrics
from caxton_actors.runtime.actor import GeventActor
from caxton_actors.runtime.timer import Alarm
from caxton_actors.swim.messages import (
    Addr,
    Effect,
    MemberChanged,
    Message,
    ProbeSucceeded,
    Refuted,
)
from caxton_actors.swim.prober import Prober
from caxton_actors.swim.timing import Timing


@dataclass(frozen=True, slots=True)
class Probe:
    """Probe traffic (ping, ack, nack, ping-req) that arrived from ``sender``."""

    sender: Addr
    message: Message


@dataclass(frozen=True, slots=True)
class Tick:
    """The prober's deadline has come."""


@dataclass(frozen=True, slots=True)
class HealthScore:
    """Asks for Lifeguard's local health score."""


class DetectorActor(GeventActor):
    def __init__(
        self,
        name: str,
        timing: Timing,
        rng: random.Random,
        membership: pykka.ActorRef[Any],
        stats: metrics.Metrics,
    ) -> None:
        super().__init__()
        self._prober = Prober(name, timing, rng, time.monotonic())
        self._membership = membership
        self._stats = stats
        self._alarm = Alarm(lambda: self.actor_ref.tell(Tick()))

    def on_start(self) -> None:
        self._alarm.arm(self._prober.next_deadline())

    def on_stop(self) -> None:
        self._alarm.cancel()

    def on_receive(self, message: Any) -> Any:
        now = time.monotonic()
        match message:
            case Probe(sender=sender, message=probe):
                self._route(self._prober.on_message(now, sender, probe))
            case MemberChanged(member=member):
                self._prober.update_member(member)
            case Refuted():
                self._adjust_health(1)
            case Tick():
                score = self._prober.health_score
                self._route(self._prober.tick(now))
                if self._prober.health_score != score:
                    self._stats.gauge(metrics.GOSSIP_HEALTH_SCORE, self._prober.health_score)
            case HealthScore():
                return self._prober.health_score
            case _:
                return super().on_receive(message)
        self._alarm.arm(self._prober.next_deadline())
        return None

    def _adjust_health(self, delta: int) -> None:
        self._prober.adjust_health(delta)
        self._stats.gauge(metrics.GOSSIP_HEALTH_SCORE, self._prober.health_score)

    def _route(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, ProbeSucceeded):
                self._stats.timing(metrics.GOSSIP_PROBE_RTT, effect.rtt * 1000)
            else:
                self._membership.tell(effect)  # a Send or a ProbeFailed
