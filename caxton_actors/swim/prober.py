"""Failure detection: one probe per protocol period, with Lifeguard's local health.

Each period the prober pings the next member of a shuffled round-robin. No ack
by the probe timeout: it asks ``indirect_checks`` other members to ping the
target for it (``PingReq``); they answer with the target's ack or a ``Nack``.
No ack by the period's end: the target is reported (``ProbeFailed``) and the
member table suspects it.

The health score (Lifeguard's local health awareness) rises when this node
seems to be the slow one (missing nacks, having to refute a suspicion) and
falls with each successful probe. It stretches both the probe interval and the
probe timeout, so an overloaded node accuses others less.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from caxton_actors.address import Address
from caxton_actors.swim.messages import (
    Ack,
    Effect,
    Ignored,
    MemberRecord,
    Message,
    Nack,
    Ping,
    PingReq,
    ProbeFailed,
    ProbeSucceeded,
    Send,
    State,
)
from caxton_actors.swim.timing import Timing

# A helper gives up on the target a little before the asker's own probe timeout would:
# the asker pings through helpers one probe timeout before its period ends, so a nack
# sent a full timeout later would land just after the period, and every death of a
# member would count against the asker's own health.
NACK_TIMEOUT_FRACTION = 0.8
# Pings in flight for others at once: a member asks for at most ``indirect_checks`` a
# period, so this is room for a large cluster, and a bound on a flood of ping-reqs.
MAX_RELAYS = 1024


@dataclass(slots=True)
class _Probe:
    target: MemberRecord
    seq: int
    started: float
    indirect_at: float
    ends_at: float
    indirect_sent: bool = False
    nacks_expected: int = 0
    nacks: int = 0


@dataclass(frozen=True, slots=True)
class _Relay:
    """A ping this node sends on behalf of ``origin``, and the seq to answer it with."""

    origin: Address
    origin_seq: int
    deadline: float


class Prober:
    def __init__(self, name: str, timing: Timing, rng: random.Random, now: float) -> None:
        self.name = name
        self.timing = timing
        self._rng = rng
        self._targets: dict[str, MemberRecord] = {}
        self._order: list[str] = []
        self._cursor = 0
        self._seq = 0
        self._probe: _Probe | None = None
        self._relays: dict[int, _Relay] = {}
        self._next_probe = now + rng.uniform(0, timing.probe_interval)
        self.health_score = 0
        """0 is healthy; up to ``awareness_max_multiplier - 1``."""

    def update_member(self, record: MemberRecord) -> None:
        """Keep the list of members to probe in step with the member table."""
        if record.name == self.name:
            return
        if record.state in (State.ALIVE, State.SUSPECT):
            if record.name not in self._targets:
                # A newcomer takes a random place still ahead in this round, and whoever
                # held it moves to the end, still ahead: O(1), where an insert is O(N).
                order = self._order
                order.append(record.name)
                spot = self._rng.randint(self._cursor, len(order) - 1)
                order[spot], order[-1] = order[-1], order[spot]
            self._targets[record.name] = record
        elif self._targets.pop(record.name, None) is not None:
            if self._order.index(record.name) < self._cursor:
                self._cursor -= 1
            self._order.remove(record.name)

    def adjust_health(self, delta: int) -> None:
        top = self.timing.awareness_max_multiplier - 1
        self.health_score = min(top, max(0, self.health_score + delta))

    def _scaled(self, seconds: float) -> float:
        return seconds * (self.health_score + 1)

    # Input.

    def on_message(self, now: float, sender: Address, message: Message) -> list[Effect]:
        match message:
            case Ping(seq=seq, target=target):
                return [Send(sender, Ack(seq))] if target == self.name else []
            case PingReq(seq=seq, target=target, addr=addr):
                known = self._targets.get(target)
                if known is None or known.addr != addr:  # not up, or not there: none to ping
                    return [Send(sender, Nack(seq))]
                if len(self._relays) >= MAX_RELAYS:
                    return [Ignored("too_many_relays")]
                self._seq += 1
                nack_at = now + NACK_TIMEOUT_FRACTION * self.timing.probe_timeout
                self._relays[self._seq] = _Relay(sender, seq, nack_at)
                return [Send(known.addr, Ping(self._seq, target))]
            case Ack(seq=seq):
                return self._on_ack(now, seq)
            case Nack(seq=seq):
                if self._probe is not None and self._probe.seq == seq:
                    self._probe.nacks += 1
        return []

    def _on_ack(self, now: float, seq: int) -> list[Effect]:
        relay = self._relays.pop(seq, None)
        if relay is not None:
            return [Send(relay.origin, Ack(relay.origin_seq))]
        probe = self._probe
        if probe is None or probe.seq != seq:
            return []
        self._probe = None
        self.adjust_health(-1)
        return [ProbeSucceeded(probe.target.name, now - probe.started)]

    # Timers.

    def next_deadline(self) -> float:
        deadlines = [self._next_probe]
        if self._probe is not None:
            probe = self._probe
            deadlines.append(probe.ends_at if probe.indirect_sent else probe.indirect_at)
        deadlines += [relay.deadline for relay in self._relays.values()]
        return min(deadlines)

    def tick(self, now: float) -> list[Effect]:
        effects: list[Effect] = []
        for seq, relay in list(self._relays.items()):
            if relay.deadline <= now:
                del self._relays[seq]
                effects.append(Send(relay.origin, Nack(relay.origin_seq)))
        probe = self._probe
        if probe is not None and not probe.indirect_sent and probe.indirect_at <= now:
            effects += self._ask_others(probe)
        if probe is not None and probe.ends_at <= now:
            effects += self._fail(probe)
        if self._probe is None and self._next_probe <= now:
            effects += self._start_probe(now)
        return effects

    def _start_probe(self, now: float) -> list[Effect]:
        self._next_probe = now + self._scaled(self.timing.probe_interval)
        if not self._order:
            return []
        if self._cursor >= len(self._order):
            self._rng.shuffle(self._order)  # a new round, in a new random order
            self._cursor = 0
        target = self._targets[self._order[self._cursor]]
        self._cursor += 1
        self._seq += 1
        self._probe = _Probe(
            target,
            self._seq,
            now,
            indirect_at=now + self._scaled(self.timing.probe_timeout),
            ends_at=self._next_probe,
        )
        return [Send(target.addr, Ping(self._seq, target.name))]

    def _ask_others(self, probe: _Probe) -> list[Effect]:
        probe.indirect_sent = True
        helpers = [
            r for n, r in self._targets.items() if n != probe.target.name and r.state is State.ALIVE
        ]
        chosen = self._rng.sample(helpers, min(self.timing.indirect_checks, len(helpers)))
        probe.nacks_expected = len(chosen)
        request = PingReq(probe.seq, probe.target.name, probe.target.addr)
        return [Send(helper.addr, request) for helper in chosen]

    def _fail(self, probe: _Probe) -> list[Effect]:
        self._probe = None
        if probe.nacks_expected:
            self.adjust_health(probe.nacks_expected - probe.nacks)  # silent helpers: maybe us
        else:
            self.adjust_health(1)
        return [ProbeFailed(probe.target.name, probe.target.incarnation)]
