"""The shell around one engine stage: feed it, forward its hops, carry out its effects.

A hop names the stage it is for; the actor that owns that stage gets it as it is.
No routing decision is taken here: that is the engine's (``engine/``), and the
simulator makes the same hops mailbox messages in virtual time.
"""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pykka

from caxton_actors.engine.messages import Answer, Hop, Output, Packet, Stage
from caxton_actors.runtime.actor import GeventActor, Mailbox


@dataclass(frozen=True, slots=True)
class Peers:
    """The actors that own each stage (without gossip, only the registry): in a node,
    supervisor slots, so a restarted peer is reached without a new ``Peers``."""

    refs: tuple[tuple[Stage, Mailbox], ...]


class StageActor(GeventActor):
    def __init__(self) -> None:
        super().__init__()
        self._peers: dict[Stage, Mailbox] = {}

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
                    # A peer restarting loses the hop, as a datagram is lost; it comes
                    # back from a consistent state, and this actor stays up.
                    with contextlib.suppress(pykka.ActorDeadError):
                        peer.tell(output.message)
            elif isinstance(output, Answer):
                answer = output.packet
            else:
                self._effect(output)
        return answer

    @abstractmethod
    def _effect(self, output: Output) -> None:
        """Carry out one effect of this actor's stage."""
