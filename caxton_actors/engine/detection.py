"""The detection stage: the probe loop, around the pure :class:`Prober`.

It hears probe traffic and member changes from the membership stage and answers
with messages for membership to send and probes that failed, for it to suspect.
"""

from __future__ import annotations

from caxton_actors.engine.messages import DetectionInput, Hop, Output, Probe, Stage, Tick
from caxton_actors.swim.messages import (
    Effect,
    MemberChanged,
    ProbeFailed,
    ProbeSucceeded,
    Refuted,
    Send,
)
from caxton_actors.swim.prober import Prober


class DetectionStage:
    def __init__(self, prober: Prober) -> None:
        self.prober = prober

    def next_deadline(self) -> float:
        return self.prober.next_deadline()

    def handle(self, now: float, message: DetectionInput) -> list[Output]:
        match message:
            case Probe(sender=sender, message=probe):
                return self._route(self.prober.on_message(now, sender, probe))
            case MemberChanged(member=member):
                self.prober.update_member(member)
            case Refuted():
                self.prober.adjust_health(1)
            case Tick():
                return self._route(self.prober.tick(now))
        return []

    @staticmethod
    def _route(effects: list[Effect]) -> list[Output]:
        """Round trips are for the shell's metrics; the rest is membership's to act on."""
        outputs: list[Output] = []
        for effect in effects:
            match effect:
                case ProbeSucceeded():
                    outputs.append(effect)
                case Send() | ProbeFailed():
                    outputs.append(Hop(Stage.MEMBERSHIP, effect))
        return outputs
