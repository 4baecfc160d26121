"""The registry stage: the cluster-wide registry's gossip step, around the pure
:class:`Replica`.

After every input it tells membership which heads rose (to piggyback) and asks it to
pull from peers that know more; what merges is handed to the shell to persist.

Every input comes with two readings of the shell's clocks: ``now`` (monotonic seconds:
what expires when) and ``wall`` (Unix seconds: versions, and what peers may claim).
"""

from __future__ import annotations

from collections.abc import Iterable

from caxton_actors.engine.messages import (
    Answer,
    AnswerPull,
    Changed,
    Committed,
    Dropped,
    HeardHeads,
    Hop,
    MemberState,
    Merge,
    Output,
    Packet,
    Persist,
    PullFrom,
    Register,
    RegistryInput,
    Restarted,
    SpreadHeads,
    Stage,
    Tick,
)
from caxton_actors.registry.records import AgentRecord, Head
from caxton_actors.registry.replica import Merged, Replica


class RegistryStage:
    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self._spread: tuple[Head, ...] = ()
        """The heads membership was last given to spread."""

    def restore(
        self,
        own: Iterable[AgentRecord],
        records: Iterable[AgentRecord],
        heads: Iterable[tuple[Head, int]],
        now: float,
        wall: float,
    ) -> None:
        """Start from what the node's disk kept: its own agents, its replica of the others.
        Watches start after this, from a snapshot: no change of it is told."""
        self.replica.load(records, heads, now)
        self.replica.restart(own, now, wall)
        self.replica.take_changes()

    def handle(self, now: float, message: RegistryInput, *, wall: float) -> list[Output]:
        replica = self.replica
        outputs: list[Output] = []
        match message:
            case HeardHeads(source=source, heads=heads):
                refused = replica.hear(heads, source, wall)
                outputs += [Dropped(reason, n) for reason, n in refused.items()]
            case MemberState(name=name, up=up, route=route):
                replica.member_changed(name, up, route, now)
            case Merge(update=update):
                merged = replica.merge(update, now, wall)
                outputs += [Dropped(reason, n) for reason, n in merged.dropped.items()]
                outputs += self._persist(merged, {h.name for h in update.heads})
            case AnswerPull(pull=pull):
                answer = Packet(replica.name, replica.answer(pull))
                outputs.append(Answer(answer))
            case Committed(changes=changes):
                for change in changes:
                    if isinstance(change, Register):
                        replica.register(
                            change.agent_id,
                            change.capabilities,
                            now,
                            wall,
                            scope=change.scope,
                            card=change.card,
                        )
                    else:
                        replica.deregister(change.agent_id, now, wall, scope=change.scope)
            case Tick():
                outputs += self._persist(replica.expire(now), set())
            case Restarted(stage=Stage.MEMBERSHIP):
                self._spread = ()  # membership, built anew, spreads no head: all of them again
        seen = replica.take_changes()
        if seen:
            outputs.append(Changed(tuple(seen)))
        return outputs + self._gossip(now)

    def _persist(self, merged: Merged, owners: set[str]) -> list[Output]:
        if not (merged.stored or merged.forgotten or merged.gone or owners):
            return []
        owners |= {r.owner for r in merged.stored} | {owner for owner, _ in merged.forgotten}
        owners.discard(self.replica.name)
        heads = tuple(self.replica.floors(sorted(owners)))
        return [Persist(merged.stored, merged.forgotten, heads, merged.gone)]

    def _gossip(self, now: float) -> list[Output]:
        """Spread heads that rose; pull from peers that know more."""
        outputs: list[Output] = []
        news, digest = self.replica.take_news(), self.replica.heads()
        if news or digest != self._spread:  # an expired owner leaves the digest too
            outputs.append(Hop(Stage.MEMBERSHIP, SpreadHeads(tuple(news), digest)))
            self._spread = digest
        for source, pull in self.replica.pulls(now):
            outputs.append(Hop(Stage.MEMBERSHIP, PullFrom(source, pull)))
        return outputs
