"""The shell around one engine stage: feed it, forward its hops, carry out its effects.

A hop names the stage it is for; the actor that owns that stage gets it as it is.
No routing decision is taken here: that is the engine's (``engine/``), and the
simulator makes the same hops mailbox messages in virtual time.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pykka

from caxton_actors.engine.messages import Answer, Hop, Output, Packet, Stage
from caxton_actors.runtime.actor import GeventActor


@dataclass(frozen=True, slots=True)
class Peers:
    """The actors that own each stage (without gossip, only the registry)."""

    refs: tuple[tuple[Stage, pykka.ActorRef[StageActor]], ...]


class StageActor(GeventActor):
    def __init__(self) -> None:
        super().__init__()
        self._peers: dict[Stage, pykka.ActorRef[StageActor]] = {}

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Peers):
            self._peers = dict(message.refs)
            return None
        return super().on_receive(message)

    def _carry(self, outputs: Iterable[Output]) -> Packet | None:
        """Forward hops, carry out effects; the answer for a stream, if there is one."""
        answer = None
        for output in outputs:
            if isinstance(output, Hop):
                peer = self._peers.get(output.stage)
                if peer is not None:  # no membership without gossip: nothing to spread
                    peer.tell(output.message)
            elif isinstance(output, Answer):
                answer = output.packet
            else:
                self._effect(output)
        return answer

    @abstractmethod
    def _effect(self, output: Output) -> None:
        """Carry out one effect of this actor's stage."""
