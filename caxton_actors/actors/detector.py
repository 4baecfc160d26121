"""Failure detection actor: the detection stage, with its alarm and its metrics.

It hears probe traffic and member changes from the membership actor and sends it
what to transmit and which probes failed; it never touches a socket.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from caxton_actors import metrics
from caxton_actors.actors.stage import StageActor
from caxton_actors.engine.detection import DetectionStage
from caxton_actors.engine.messages import DetectionInput, Output, Tick
from caxton_actors.runtime.actor import Request
from caxton_actors.runtime.timer import Alarm
from caxton_actors.swim.messages import ProbeSucceeded


@dataclass(frozen=True, slots=True)
class HealthScore(Request[int]):
    """Asks for Lifeguard's local health score."""


class DetectorActor(StageActor):
    def __init__(self, stage: DetectionStage, stats: metrics.Metrics) -> None:
        super().__init__()
        self._stage = stage
        self._stats = stats
        self._alarm = Alarm(lambda: self.actor_ref.tell(Tick()))

    def on_start(self) -> None:
        self._alarm.arm(self._stage.next_deadline())
        self._stats.gauge(metrics.GOSSIP_HEALTH_SCORE, self._stage.prober.health_score)

    def on_stop(self) -> None:
        self._alarm.cancel()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, HealthScore):
            return self._stage.prober.health_score
        if not isinstance(message, DetectionInput):
            return super().on_receive(message)
        score = self._stage.prober.health_score
        self._carry(self._stage.handle(time.monotonic(), message))
        if self._stage.prober.health_score != score:
            self._stats.gauge(metrics.GOSSIP_HEALTH_SCORE, self._stage.prober.health_score)
        self._alarm.arm(self._stage.next_deadline())
        return None

    def _effect(self, output: Output) -> None:
        if isinstance(output, ProbeSucceeded):
            self._stats.timing(metrics.GOSSIP_PROBE_RTT, output.rtt * 1000)
