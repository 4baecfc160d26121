"""The member table: who is in the cluster, in what state, and what to tell others.

Incarnation numbers order what is said about a member: only the member itself
raises its own, to refute a suspicion; a claim about an older incarnation is
stale and ignored. Every accepted change is queued for dissemination and
piggybacked on later messages a limited number of times (growing as log N).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Generic, Protocol, TypeVar

from caxton_actors.address import Address
from caxton_actors.swim.messages import (
    Alive,
    Dead,
    Effect,
    Gossip,
    Ignored,
    Left,
    MemberChanged,
    MemberRecord,
    Meta,
    NameConflict,
    Refuted,
    Send,
    State,
    StateSync,
    Suspect,
    Update,
)
from caxton_actors.swim.suspicion import Suspicion
from caxton_actors.swim.timing import Timing

# Longest wait between two join attempts while no seed has answered.
JOIN_RETRY_MAX = 30.0
# Most members a node keeps (tombstones included): a bound on a flood of made-up ones.
MAX_MEMBERS = 16_384
# Highest first incarnation believed of a member not known to be up. A node starts at its
# clock in milliseconds (about 2^41), so anything above is a lie.
MAX_INCARNATION = 2**62
# Most a claim may raise a live member's incarnation at once (about 50 days in ms: a quick
# restart raises it by its downtime, a refutation by one). Its subject outbids a lie by one,
# so a liar needs 2^31 rounds to push a member to the codec's limit of 2^63 - 1.
MAX_INCARNATION_STEP = 2**32
_TOP = 2**63 - 2
"""Room for one refutation below the codec's limit."""


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


class BroadcastQueue(Generic[T]):
    """Pending updates, at most one per name; the least-sent go out first, and among
    those the newest (as memberlist's queue does): a node that just learned ten thousand
    members would otherwise send its own refutation only after all of them, and be
    declared dead meanwhile.

    Updates sit in buckets by how often they were sent, so taking a few costs
    O(taken + buckets), however many are pending: a node that just learned a
    thousand members pays for the ones it sends, not for sorting the rest.
    """

    def __init__(self) -> None:
        self._buckets: list[dict[str, T]] = [{}]
        """``_buckets[k]``: the updates sent ``k`` times, oldest first (taken newest first)."""
        self._sent: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._sent)

    def clear(self) -> None:
        self._buckets = [{}]
        self._sent = {}

    def push(self, update: T) -> None:
        sent = self._sent.pop(update.name, None)
        if sent is not None:
            del self._buckets[sent][update.name]  # a newer word replaces the older
        self._sent[update.name] = 0
        self._buckets[0][update.name] = update

    def take(self, max_items: int, limit: int, prefer: tuple[str, ...] = ()) -> tuple[T, ...]:
        """Up to ``max_items`` updates, those of the names in ``prefer`` first; each is
        dropped after ``limit`` sends."""
        for bucket in self._buckets[limit:]:  # the limit fell as the cluster shrank
            for name in bucket:
                del self._sent[name]
        del self._buckets[limit:]
        chosen = list(dict.fromkeys(name for name in prefer if name in self._sent))
        chosen += itertools.islice(
            (name for bucket in self._buckets for name in reversed(bucket) if name not in prefer),
            max(0, max_items - len(chosen)),
        )
        taken = []
        for name in chosen[:max_items]:
            sent = self._sent.pop(name)
            bucket = self._buckets[sent]
            update = bucket.pop(name)
            if not bucket:
                self._buckets[sent] = {}  # an emptied dict keeps its size: let it go
            taken.append(update)
            if sent + 1 < limit:
                if sent + 1 == len(self._buckets):
                    self._buckets.append({})
                self._buckets[sent + 1][name] = update
                self._sent[name] = sent + 1
        return tuple(taken)


@dataclass(slots=True)
class _Entry:
    record: MemberRecord
    changed_at: float
    suspicion: Suspicion | None = None


class Members:
    """This node's view of the cluster, and the updates it still has to spread."""

    def __init__(
        self,
        name: str,
        addr: Address,
        meta: Meta,
        incarnation: int,
        timing: Timing,
        rng: random.Random,
        now: float,
    ) -> None:
        self.name = name
        self.addr = addr
        self.timing = timing
        self._rng = rng
        me = MemberRecord(name, addr, incarnation, State.ALIVE, meta)
        self._table: dict[str, _Entry] = {name: _Entry(me, now)}
        self._addrs: dict[Address, str] = {addr: name}
        """Who is at each address: replies and registry pulls go only to members."""
        self._up = 0
        """Other members alive or suspect, counted as they change (not recounted per change)."""
        self.max_members = MAX_MEMBERS
        self._queue: BroadcastQueue[Update] = BroadcastQueue()
        self._queue.push(Alive(name, incarnation, addr, meta))
        self._timed: dict[str, None] = {}
        """Suspects and tombstones, the only members with a deadline, so a tick costs O(them);
        a dict, not a set, so that the order (and so a simulation) never depends on hashing."""
        self._next_gossip = now + timing.gossip_interval
        self._next_push_pull = now + rng.uniform(0, timing.push_pull_interval)
        self._seeds: tuple[Address, ...] = ()
        self._next_join: float | None = None
        self._join_backoff = 1.0
        self.last_sync: float | None = None
        """When a full-state exchange last arrived from a peer."""

    # Views.

    @property
    def me(self) -> MemberRecord:
        return self._table[self.name].record

    def size(self) -> int:
        """Members known, this node and tombstones included: what retransmit limits scale by."""
        return len(self._table)

    def records(self) -> list[MemberRecord]:
        return [entry.record for entry in self._table.values()]

    def changed_at(self, name: str) -> float:
        return self._table[name].changed_at

    def peer_count(self) -> int:
        return self._up

    def knows(self, addr: Address) -> bool:
        """Whether a member we have not forgotten is at ``addr``."""
        return addr in self._addrs

    def address_of(self, name: str) -> Address | None:
        entry = self._table.get(name)
        return None if entry is None or name == self.name else entry.record.addr

    def full_state(self) -> StateSync:
        """This node's whole table: the answer to a full-state exchange."""
        return StateSync(tuple(self.records()), reply=False)

    def peers(self) -> list[MemberRecord]:
        """Other members that are alive or suspect: the ones worth talking to."""
        return [
            e.record
            for e in self._table.values()
            if e.record.name != self.name and e.record.state in (State.ALIVE, State.SUSPECT)
        ]

    def take_broadcasts(self, max_items: int, prefer: str | None = None) -> tuple[Update, ...]:
        """What to piggyback: what this node says of itself first (a refutation must not
        wait), then what is news of ``prefer`` (a pinged suspect hears of it first)."""
        limit = self.timing.retransmit_limit(self.size())
        first = (self.name,) if prefer is None else (self.name, prefer)
        return self._queue.take(max_items, limit, first)

    def settle(self) -> None:
        """Forget what is still to be spread: for a simulation that starts settled."""
        self._queue.clear()

    # Commands from the shell.

    def join(self, now: float, seeds: Sequence[Address]) -> list[Effect]:
        """Ask every seed known so far for a full-state exchange; retried with backoff until
        one answers.

        A node that left comes back alive one incarnation above its ``left``: a peer keeps
        the ``left`` (its tombstone) against any claim no newer, so only a higher one is heard.
        """
        self._seeds = tuple(dict.fromkeys(self._seeds + tuple(s for s in seeds if s != self.addr)))
        self._join_backoff = 1.0
        effects: list[Effect] = []
        me = self.me
        if me.state is State.LEFT:
            back = replace(me, incarnation=me.incarnation + 1, state=State.ALIVE)
            if (changed := self._set(now, back)) is not None:
                effects.append(changed)
            self._queue.push(Alive(self.name, back.incarnation, back.addr, back.meta))
        return effects + self._send_join(now)

    def leave(self, now: float) -> list[Effect]:
        """Say goodbye: ``left`` everywhere, never ``dead``."""
        me = self.me
        left = Left(self.name, me.incarnation + 1)
        self._set(now, replace(me, incarnation=left.incarnation, state=State.LEFT))
        self._queue.push(left)
        self._next_join = None
        # Every peer at once, not a gossip round's few: a member that misses the goodbye holds
        # this node alive here until probes fail, and when it comes back at a new address (a
        # pod rescheduled) refuses that as a clash and declares it dead first. The goodbye
        # rides each datagram while its transmit budget lasts; the peers spread it on.
        peers = [Send(member.addr, Gossip()) for member in self.peers()]
        return [MemberChanged(self.me, State.ALIVE), *peers]

    def suspect(self, now: float, name: str, incarnation: int) -> list[Effect]:
        """The prober found ``name`` silent for a whole protocol period."""
        return self.apply(now, [Suspect(name, incarnation, self.name)])

    # Input from the network.

    def apply(self, now: float, updates: Iterable[Update]) -> list[Effect]:
        effects: list[Effect] = []
        for update in updates:
            if not self._believable(update.name, update.incarnation):
                effects.append(Ignored("incarnation_ceiling"))
                continue
            match update:
                case Alive():
                    effects += self._alive(now, update)
                case Suspect():
                    effects += self._suspect(now, update)
                case Dead():
                    effects += self._dead(now, update)
                case Left():
                    effects += self._left(now, update)
        return effects

    def on_state_sync(self, now: float, sync: StateSync) -> list[Effect]:
        """Merge a peer's table (answering with ours is the caller's: see ``full_state``)."""
        self.last_sync = now
        self._next_join = None  # a seed answered
        effects: list[Effect] = []
        for record in sync.members:
            if not self._believable(record.name, record.incarnation):
                effects.append(Ignored("incarnation_ceiling"))
            else:
                effects += self._merge(now, record)
        return effects

    # Timers.

    def next_deadline(self, more_to_spread: bool = False) -> float:
        """When :meth:`tick` next has work. Its gossip round counts only while there is
        something to spread (``more_to_spread``: others have, as for :meth:`tick`): a round
        with nothing to say sends nothing, so an idle node sleeps until its next push-pull
        or member timeout, not five times a second."""
        deadlines = [self._next_push_pull]
        if self._queue or more_to_spread:
            deadlines.append(self._next_gossip)
        if self._next_join is not None:
            deadlines.append(self._next_join)
        deadlines += [self._deadline(self._table[name]) for name in self._timed]
        return min(deadlines)

    def _deadline(self, entry: _Entry) -> float:
        """When a suspect is declared dead, or a tombstone reaped."""
        if entry.suspicion is not None:
            return entry.suspicion.deadline
        return entry.changed_at + self.timing.dead_node_reclaim_time

    def tick(self, now: float, more_to_spread: bool = False) -> list[Effect]:
        """``more_to_spread``: others (the registry's heads) want gossip rounds too."""
        effects: list[Effect] = []
        for name in [n for n in self._timed if self._deadline(self._table[n]) <= now]:
            record = self._table[name].record
            if record.state is State.SUSPECT:
                effects += self._dead(now, Dead(name, record.incarnation, self.name))
            else:  # the tombstone has outlived any stale word
                self._forget(name)
        if self._next_join is not None and self._next_join <= now:
            effects += self._send_join(now)
        if self._next_gossip <= now:
            self._next_gossip = now + self.timing.gossip_interval
            effects += self._gossip_round(now, more_to_spread)
        if self._next_push_pull <= now:
            self._next_push_pull = now + self.timing.push_pull_period(len(self._table))
            effects += self._push_pull()
        return effects

    # Internals.

    def _send_join(self, now: float) -> list[Effect]:
        if not self._seeds:
            self._next_join = None
            return []
        self._next_join = now + self._join_backoff
        self._join_backoff = min(JOIN_RETRY_MAX, self._join_backoff * 2)
        sync = StateSync(tuple(self.records()), reply=True)
        return [Send(seed, sync) for seed in self._seeds]

    def _gossip_round(self, now: float, more_to_spread: bool = False) -> list[Effect]:
        """Gossip to a few members that are up, and one that went down lately: a member
        wrongly taken for dead or gone hears of it, and refutes it, within a few rounds, not
        at its next push-pull (memberlist's GossipToTheDeadTime)."""
        if not (self._queue or more_to_spread):
            return []
        recent = now - self.timing.gossip_to_the_dead_time
        lately_down = [
            entry.record
            for entry in map(self._table.__getitem__, self._timed)
            if entry.record.state in (State.DEAD, State.LEFT) and entry.changed_at >= recent
        ]
        peers = self.peers()
        chosen = self._rng.sample(peers, min(self.timing.gossip_nodes, len(peers)))
        if lately_down:  # one more, so the live members' share is not diluted (a partition
            chosen.append(self._rng.choice(lately_down))  # makes half the cluster "dead")
        return [Send(member.addr, Gossip()) for member in chosen]

    def _push_pull(self) -> list[Effect]:
        """Exchange tables with a random live peer, and try one dead member again.

        The second exchange is what heals a partition: a member declared dead on
        the far side hears it, refutes, and both sides learn each other's table.
        """
        sync = StateSync(tuple(self.records()), reply=True)
        effects: list[Effect] = []
        for state in (State.ALIVE, State.DEAD):
            candidates = [e.record for e in self._table.values() if e.record.state is state]
            candidates = [r for r in candidates if r.name != self.name]
            if candidates:
                effects.append(Send(self._rng.choice(candidates).addr, sync))
        return effects

    def _believable(self, name: str, incarnation: int) -> bool:
        entry = self._table.get(name)
        if entry is None or entry.record.state not in (State.ALIVE, State.SUSPECT):
            return incarnation <= MAX_INCARNATION
        return incarnation <= min(entry.record.incarnation + MAX_INCARNATION_STEP, _TOP)

    def _forget(self, name: str) -> None:
        entry = self._table.pop(name)
        del self._timed[name]
        if self._addrs.get(entry.record.addr) == name:
            del self._addrs[entry.record.addr]

    def _set(self, now: float, record: MemberRecord) -> MemberChanged | None:
        """Store ``record``; the event to publish if anything a user sees changed."""
        entry = self._table.get(record.name)
        up = record.state in (State.ALIVE, State.SUSPECT) and record.name != self.name
        if entry is None:
            self._table[record.name] = _Entry(record, now)
            self._addrs[record.addr] = record.name
            self._up += up
            return MemberChanged(record, None)
        previous = entry.record
        was_up = previous.state in (State.ALIVE, State.SUSPECT) and record.name != self.name
        self._up += up - was_up
        if previous.addr != record.addr:
            if self._addrs.get(previous.addr) == record.name:
                del self._addrs[previous.addr]
            self._addrs[record.addr] = record.name
        entry.record = record
        entry.suspicion = None
        if record.state in (State.DEAD, State.LEFT) and record.name != self.name:
            self._timed[record.name] = None  # a tombstone, reaped on time
        else:
            self._timed.pop(record.name, None)
        if previous.state is not record.state:
            entry.changed_at = now
        if (previous.state, previous.addr, previous.meta) == (
            record.state,
            record.addr,
            record.meta,
        ):
            return None
        return MemberChanged(record, previous.state)

    def _refute(self, now: float, claimed: int) -> list[Effect]:
        me = self.me
        if me.state is State.LEFT:
            return []
        incarnation = max(me.incarnation, claimed) + 1  # fits: claims are believable
        self._set(now, replace(me, incarnation=incarnation))
        self._queue.push(Alive(self.name, incarnation, me.addr, me.meta))
        return [Refuted(incarnation)]

    def _alive(self, now: float, alive: Alive, record: MemberRecord | None = None) -> list[Effect]:
        """``record``: the same news as a record already built, to keep instead of a copy."""
        if alive.name == self.name:
            me = self.me
            clash: list[Effect] = [NameConflict(alive.addr)] if alive.addr != me.addr else []
            if alive.incarnation > me.incarnation or (
                alive.incarnation == me.incarnation
                and (alive.addr, alive.meta) != (me.addr, me.meta)
            ):
                return clash + self._refute(now, alive.incarnation)  # an older self, or a clash
            return clash
        entry = self._table.get(alive.name)
        if entry is None and len(self._table) >= self.max_members:
            return [Ignored("member_table_full")]
        if entry is not None and alive.incarnation <= entry.record.incarnation:
            return []
        if (
            entry is not None
            and entry.record.addr != alive.addr
            and entry.record.state in (State.ALIVE, State.SUSPECT)
        ):
            # A live member does not move: its process is still answering at the old address.
            # It may come back elsewhere once declared dead or gone (memberlist does the same).
            return [Ignored("address_conflict")]
        if record is None:
            record = MemberRecord(
                alive.name, alive.addr, alive.incarnation, State.ALIVE, alive.meta
            )
        event = self._set(now, record)
        self._queue.push(alive)
        return [event] if event else []

    def _suspect(self, now: float, suspect: Suspect) -> list[Effect]:
        if suspect.name == self.name:
            if suspect.incarnation >= self.me.incarnation:
                return self._refute(now, suspect.incarnation)
            return []
        entry = self._table.get(suspect.name)
        if entry is None or suspect.incarnation < entry.record.incarnation:
            return []
        state = entry.record.state
        if state is State.SUSPECT and entry.suspicion is not None:
            if entry.suspicion.confirm(suspect.by):
                self._queue.push(suspect)
            return []
        if state is not State.ALIVE:
            return []
        event = self._set(
            now, replace(entry.record, incarnation=suspect.incarnation, state=State.SUSPECT)
        )
        size = len(self._table)
        shortest = self.timing.suspicion_timeout(size)
        entry.suspicion = Suspicion(
            now,
            shortest,
            shortest * self.timing.suspicion_max_timeout_mult,
            # Confirmations can only come from members still up, the suspect aside: one
            # that left or died never sends one, and waiting for it held a kill that came
            # with a leave to the longest timeout (25.8 s where ~7 s was due).
            max(0, min(self.timing.suspicion_mult - 2, self._up - 1)),
            suspect.by,
        )
        self._timed[suspect.name] = None
        self._queue.push(suspect)
        return [event] if event else []

    def _dead(self, now: float, dead: Dead) -> list[Effect]:
        if dead.name == self.name:
            if dead.incarnation >= self.me.incarnation:
                return self._refute(now, dead.incarnation)
            return []
        entry = self._table.get(dead.name)
        if (
            entry is None
            or dead.incarnation < entry.record.incarnation
            or entry.record.state in (State.DEAD, State.LEFT)
        ):
            return []
        event = self._set(
            now, replace(entry.record, incarnation=dead.incarnation, state=State.DEAD)
        )
        self._queue.push(dead)
        return [event] if event else []

    def _left(self, now: float, left: Left) -> list[Effect]:
        if left.name == self.name:  # a goodbye we did not say: a lie, or a past life's
            if self.me.state is not State.LEFT and left.incarnation >= self.me.incarnation:
                return self._refute(now, left.incarnation)
            return []
        entry = self._table.get(left.name)
        if (
            entry is None
            or left.incarnation < entry.record.incarnation
            or entry.record.state is State.LEFT
        ):
            return []
        event = self._set(
            now, replace(entry.record, incarnation=left.incarnation, state=State.LEFT)
        )
        self._queue.push(left)
        return [event] if event else []

    def _merge(self, now: float, record: MemberRecord) -> list[Effect]:
        """A record from a full-state exchange, as the updates it stands for.

        A remote ``dead`` is only a suspicion here: it may be stale, and the
        member gets its chance to refute.
        """
        match record.state:
            case State.ALIVE:
                alive = Alive(record.name, record.incarnation, record.addr, record.meta)
                return self._alive(now, alive, record)
            case State.SUSPECT | State.DEAD:  # of a member we do not know: nothing to do
                return self._suspect(now, Suspect(record.name, record.incarnation, self.name))
            case State.LEFT:
                return self._left(now, Left(record.name, record.incarnation))
