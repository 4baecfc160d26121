"""The cluster-wide agent registry as one node holds it: pure, no I/O, no clock reads.

Two times come in, each where it belongs: ``now``, monotonic seconds, measures every
expiry (pulls in flight, down owners, tombstones), so a wall clock that jumps expires
nothing; ``wall``, Unix seconds, only numbers this node's changes and bounds what
peers may claim, as versions and change times are owners' wall clocks on the wire.

Every owner's records are kept apart, keyed by (owner, agent id), so merging
needs no rule between owners: for one owner, the higher version wins; a
removal is a tombstone with a version of its own, kept ``ttl`` seconds after this
node learned of it. A node knows an owner up to its ``head``: every change up to
that version. It learns more only from a peer whose head is higher, which sends
everything past the asker's head, so after the merge the asker's head is the peer's.

An owner numbers its changes by its wall clock in milliseconds (or the last plus
one), so a node restarted, even on an empty disk, numbers them past anything
its peers still hold of its past; a restart sets the owner's floor to its start
time, so each peer gets the owner's live set once and drops the rest of that past.

Agents are keyed by ``key_of(scope, id)`` (``records.py``): an id in two scopes is two
agents, and every read index is kept per scope.

Reads pick, for each agent key, the newest claim among its owners (an agent
re-registered on another node has moved): the highest version. A claim is
numbered above every claim on the same agent that its node already holds (a
Lamport clock per agent id, over the wall clock), so a claim made after seeing
another is newer than it whatever the two clocks say: a node whose clock runs
fast cannot keep an agent that moved after it registered it. Only claims made
without knowledge of each other (within the seconds a change takes to spread, or
across a partition) are ordered by the owners' clocks, and a clock ahead by more
than ``MAX_CLOCK_SKEW`` is refused outright. Per agent, not per node: a node-wide
logical clock would push every node's versions ahead of its wall clock as soon as
the cluster together made more than 1,000 changes a second, until peers refused
them as from the future; here a node's versions run ahead of its wall clock only by
its own changes past 1,000 a second (as they always did) and by the moves it makes.

An owner is live only while membership reports it up (alive or suspect), and this
node always is. Any other owner whose records it holds (loaded from its file at
start, or reported dead or left, or never reported at all) is down since the replica
learned so: its agents are ``unreachable``, as are those of an owner with no HTTP
route to show, and an owner down for ``ttl`` is dropped with its agents.

What peers say is bounded: only owners that membership knows are heard or merged,
no version or change time may be ahead of this node's clock by more than
``MAX_CLOCK_SKEW``, and an answer larger than any this node would send is refused
whole. A peer that breaks a bound is counted (``Merged.dropped``), never merged.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import ujson

from caxton_actors.address import Address
from caxton_actors.registry import cards
from caxton_actors.registry.query import INDEXED, Query
from caxton_actors.registry.records import (
    DEFAULT_SCOPE,
    AgentRecord,
    AgentUpdate,
    Head,
    RegistryPull,
    key_of,
)

"""Where a head was heard from: the peer's gossip address."""

# Seconds before a pull that got no answer may be asked again (of whoever told us since).
PULL_TIMEOUT = 2.0
# Most records one answer carries: a delta past it is sent in parts, oldest changes first.
MAX_ANSWER_RECORDS = 20_000
# Most card text one answer carries: cards are up to 16 KiB each, and an answer must fit the
# stream's size limit (``wire/transport.py``).
MAX_ANSWER_CARD_BYTES = 4 * 1024 * 1024
# Seconds a peer's clock may run ahead of ours. Versions and change times are an owner's
# clock in milliseconds: one further ahead is a lie that would outrank the owner for good.
MAX_CLOCK_SKEW = 300.0

ACTIVE = "active"
UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class Limits:
    max_id_length: int = 128
    max_scope_length: int = 64
    max_capabilities: int = cards.MAX_CAPABILITIES
    max_agents_per_node: int = 100_000


LIMITS = Limits()


@dataclass(slots=True)
class _Owner:
    head: int = 0
    floor: int = 0
    """Tombstones up to this version may be gone: a peer behind it is sent everything."""
    records: dict[str, AgentRecord] = field(default_factory=dict)
    """Live records and tombstones, by key."""
    versions: list[tuple[int, str]] = field(default_factory=list)
    """(version, key) of ``records``, sorted: a delta is a slice, not a scan."""
    live: int = 0


@dataclass(frozen=True, slots=True)
class Change:
    """The registry as reads see it changed for one agent: its newest claim went from
    ``before`` to ``after`` (None: there was none, or is none now), or, when both are the
    same record, its owner's reachability changed."""

    before: AgentRecord | None
    after: AgentRecord | None
    before_terms: cards.CardTerms = field(default=cards.NO_TERMS, compare=False)
    after_terms: cards.CardTerms = field(default=cards.NO_TERMS, compare=False)
    """Their cards' terms, parsed already: a watch needs them, and the old card is no
    longer the newest claim's, whose terms alone are kept."""


@dataclass(frozen=True, slots=True)
class Merged:
    """What a change did: records to store, and (owner, id) pairs to forget."""

    stored: tuple[AgentRecord, ...] = ()
    forgotten: tuple[tuple[str, str], ...] = ()
    gone: tuple[str, ...] = ()
    """Owners dropped whole: down for longer than ``ttl``."""
    dropped: Counter[str] = field(default_factory=Counter)
    """Records refused, by reason."""


def _hash(record: AgentRecord) -> int:
    text = f"{record.owner}\0{record.key}\0{record.version}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


class Replica:
    def __init__(self, name: str, ttl: float, limits: Limits = LIMITS) -> None:
        self.name = name
        self.ttl = ttl
        self.limits = limits
        self._owners: dict[str, _Owner] = {name: _Owner()}
        self._claims: dict[str, dict[str, AgentRecord]] = {}
        """Live records by key, then owner."""
        self._ids: dict[str, list[str]] = {}
        """Per scope, its live agent ids, sorted, for paging."""
        self._index: dict[tuple[str, str, str], list[str]] = {}
        """(scope, kind, term) to the sorted ids whose newest claim has the term: kinds are
        ``query.INDEXED`` (a capability, a card's skill id, tag or word)."""
        self._terms: dict[str, tuple[AgentRecord, cards.CardTerms]] = {}
        """The card terms of each newest claim with a card, by key: parsed once."""
        self._changes: list[Change] = []
        """What reads would see differently since the last ``take_changes``."""
        self._up: set[str] = {name}
        """Owners membership reports alive or suspect, and this node."""
        self._down: dict[str, float] = {}
        """Every other owner held or reported, and since when (monotonic) it is not up."""
        self.routes: dict[str, str] = {}
        """Owner to HTTP address, from membership metadata."""
        self._content: dict[str, int] = {}
        """Per scope, the XOR of its live records' hashes: order-free, updated per change."""
        self._tombstones: list[tuple[float, str, str, int]] = []
        """Heap of (when this node took it, monotonic; owner, agent id, version): the
        oldest expires first."""
        self._heard: dict[str, tuple[int, Address]] = {}
        """Owners some peer knows further than we do: its head, and the peer."""
        self._pulling: dict[str, float] = {}
        """Owners with a pull in flight, and when to give up waiting for it."""
        self._news: dict[str, None] = {}
        """Owners whose head rose here since the last ``take_news``."""
        self._members: set[str] = {name}
        """Owners membership has told of (up or down) and not yet dropped: the only ones
        whose heads and records are taken."""

    # This node's own agents.

    def register(
        self,
        agent_id: str,
        capabilities: tuple[str, ...],
        now: float,
        wall: float,
        *,
        scope: str = DEFAULT_SCOPE,
        card: str | None = None,
    ) -> AgentRecord:
        mine = self._owners[self.name]
        mine.head = self._next_version(key_of(scope, agent_id), wall)
        record = AgentRecord(
            self.name, agent_id, mine.head, capabilities, int(wall * 1000), False, scope, card
        )
        self._put(mine, record, now)
        self._news[self.name] = None
        return record

    def deregister(
        self, agent_id: str, now: float, wall: float, *, scope: str = DEFAULT_SCOPE
    ) -> AgentRecord | None:
        mine = self._owners[self.name]
        key = key_of(scope, agent_id)
        held = mine.records.get(key)
        if held is None or held.deleted:
            return None
        mine.head = self._next_version(key, wall)
        tombstone = AgentRecord(self.name, agent_id, mine.head, (), int(wall * 1000), True, scope)
        self._put(mine, tombstone, now)
        self._news[self.name] = None
        return tombstone

    def _next_version(self, key: str, wall: float) -> int:
        """Past this node's head and its wall clock, and past every claim on the agent
        held here: whoever has seen a claim outranks it (see above)."""
        version = max(self._owners[self.name].head + 1, int(wall * 1000))
        claims = self._claims.get(key)
        if claims:
            version = max(version, 1 + max(r.version for r in claims.values()))
        return version

    def restart(self, own: Iterable[AgentRecord], now: float, wall: float) -> None:
        """Start this node's life: its agents as its file kept them, announced afresh.

        The floor covers everything before now, so each peer gets this node's whole
        set once and drops whatever else it holds of its past (see above). A node
        with no agents has no head to spread, until a peer tells it of its past.
        """
        mine = self._owners[self.name]
        mine.floor = max(mine.head, int(wall * 1000))
        for r in own:
            self.register(r.agent_id, r.capabilities, now, wall, scope=r.scope, card=r.card)

    def own_count(self) -> int:
        return self._owners[self.name].live

    # Replication.

    def take_changes(self) -> list[Change]:
        """What reads see differently since the last call, in order (for watches)."""
        changes, self._changes = self._changes, []
        return changes

    def take_news(self) -> list[Head]:
        """Heads that rose since the last call: what this node should now spread."""
        news = [Head(name, self.head(name)) for name in self._news]
        self._news.clear()
        return news

    def floors(self, names: Iterable[str]) -> list[tuple[Head, int]]:
        """Head and floor of each named owner still held: what to store of them."""
        return [
            (Head(name, owner.head), owner.floor)
            for name in names
            if (owner := self._owners.get(name)) is not None
        ]

    def others(self) -> tuple[tuple[AgentRecord, ...], tuple[tuple[Head, int], ...]]:
        """Every other owner's records, heads and floors: all there is to store."""
        others = [(name, o) for name, o in self._owners.items() if name != self.name]
        records = tuple(r for _, owner in others for r in owner.records.values())
        return records, tuple((Head(name, o.head), o.floor) for name, o in others)

    def heads(self) -> tuple[Head, ...]:
        return tuple(Head(name, owner.head) for name, owner in self._owners.items() if owner.head)

    def head(self, owner: str) -> int:
        known = self._owners.get(owner)
        return 0 if known is None else known.head

    def hear(self, heads: Iterable[Head], source: Address, wall: float) -> Counter[str]:
        """``source`` knows these heads: where to pull from when ours are behind. Returns
        the heads refused, by reason."""
        ceiling = _ceiling(wall)
        refused: Counter[str] = Counter()
        for head in heads:
            if head.name not in self._members:
                refused["unknown_owner"] += 1
            elif head.version > ceiling:
                refused["from_future"] += 1
            elif head.name == self.name:
                self._heard_of_self(head.version)
            elif (
                head.version > self.head(head.name)
                and head.version >= self._heard.get(head.name, (0,))[0]
            ):
                # The latest teller of the highest head: if the first one died, a retry
                # goes to one still talking.
                self._heard[head.name] = (head.version, source)
        return refused

    def pulls(self, now: float) -> list[tuple[Address, RegistryPull]]:
        """What to ask of whom now: one pull per source, none for an owner in flight."""
        asks: dict[Address, list[Head]] = {}
        for name, (version, source) in list(self._heard.items()):
            if version <= self.head(name) or name in self._down:
                del self._heard[name]
            elif self._pulling.get(name, 0.0) <= now:
                self._pulling[name] = now + PULL_TIMEOUT
                asks.setdefault(source, []).append(Head(name, self.head(name)))
        return [(source, RegistryPull(tuple(heads))) for source, heads in asks.items()]

    def answer(self, pull: RegistryPull) -> AgentUpdate:
        """What the asker lacks of each owner it named, oldest changes first.

        At most ``MAX_ANSWER_RECORDS`` records: where an owner's changes are cut, its
        head in the answer is the last version sent, and the asker asks again. An asker
        behind the owner's floor also gets the ids of all its live agents, and drops the
        rest: the tombstones that would have told it are gone.
        """
        records: list[AgentRecord] = []
        heads: list[Head] = []
        live: list[tuple[str, tuple[str, ...]]] = []
        for theirs in pull.heads:
            owner = self._owners.get(theirs.name)
            room = MAX_ANSWER_RECORDS - len(records)
            if owner is None or owner.head <= theirs.version or room <= 0:
                continue
            complete = theirs.version < owner.floor
            start = bisect.bisect_right(owner.versions, theirs.version, key=lambda v: v[0])
            pending = [owner.records[key] for _, key in owner.versions[start:]]
            if complete:  # the list of live ids says what tombstones would have
                pending = [r for r in pending if not r.deleted]
            sent = _within_bytes(pending[:room])
            records += sent
            heads.append(
                Head(theirs.name, owner.head if len(sent) == len(pending) else sent[-1].version)
            )
            if complete:
                ids = tuple(key for key, r in owner.records.items() if not r.deleted)
                live.append((theirs.name, ids))
        return AgentUpdate(tuple(records), tuple(heads), tuple(live))

    def merge(self, update: AgentUpdate, now: float, wall: float) -> Merged:
        """Take a peer's answer: its records, then its heads, which are now ours."""
        dropped: Counter[str] = Counter()
        if _oversized(update):
            return Merged(dropped=Counter(oversized_answer=1))
        stored: list[AgentRecord] = []
        forgotten: list[tuple[str, str]] = []
        ceiling = _ceiling(wall)
        # An answer no newer than what we know (a late reply to a repeated pull) brings
        # nothing, and its list of live agents would take us back: skip its owners.
        heads = {}
        for h in update.heads:
            if h.name not in self._members or h.version > ceiling:
                dropped["unknown_owner" if h.name not in self._members else "from_future"] += 1
            elif h.version > self.head(h.name):
                heads[h.name] = h.version
        for name in {h.name for h in update.heads} - set(heads):
            self._pulling.pop(name, None)
        for record in update.records:
            if record.owner not in heads and record.owner != self.name:
                continue
            reason = self._refusal(record, heads, ceiling)
            try:
                terms = None if reason or record.card is None else cards.terms(record.card)
            except cards.CardError:
                reason = "bad_card"
            if reason:
                dropped[reason] += 1
                continue
            owner = self._owners.setdefault(record.owner, _Owner())
            held = owner.records.get(record.key)
            if held is None or record.version > held.version:
                self._put(owner, record, now, terms)
                stored.append(record)
        for name, ids in update.live:
            replaced = self._owners.get(name)
            if replaced is None or name == self.name or name not in heads:
                continue
            alive = set(ids)
            for key, held in list(replaced.records.items()):
                if key not in alive and held.version <= heads[name]:
                    self._forget(replaced, held)
                    forgotten.append((name, key))
            replaced.floor = max(replaced.floor, heads[name])
        for name, version in heads.items():
            self._pulling.pop(name, None)
            if name == self.name:
                self._heard_of_self(version)
                continue
            known = self._owners.setdefault(name, _Owner())
            if version > known.head:
                known.head = version
                self._news[name] = None
        return Merged(tuple(stored), tuple(forgotten), dropped=dropped)

    def _refusal(self, record: AgentRecord, heads: dict[str, int], ceiling: int) -> str:
        limits = self.limits
        if record.owner == self.name:
            return "not_owner"  # only this node speaks for its own agents
        if record.owner not in heads or record.version > heads[record.owner]:
            return "beyond_head"
        if record.changed_at > ceiling:
            return "from_future"
        if not 0 < len(record.agent_id) <= limits.max_id_length or "/" in record.agent_id:
            return "bad_id"
        if not 0 < len(record.scope) <= limits.max_scope_length or "/" in record.scope:
            return "bad_scope"
        if len(record.capabilities) > limits.max_capabilities:
            return "too_many_capabilities"
        if record.card is not None and len(record.card.encode()) > cards.MAX_CARD_BYTES:
            return "bad_card"
        owner = self._owners.get(record.owner)
        if (
            owner is not None
            and record.key not in owner.records
            and len(owner.records) >= 2 * limits.max_agents_per_node
        ):
            # Room for an owner's live agents and as many tombstones, if its limit is ours
            # (a cluster's nodes should share registry.max_agents_per_node).
            return "owner_full"
        return ""

    def _heard_of_self(self, version: int) -> None:
        """Someone knows a later version of this node than it does: a past life of it.

        Jump past it, and make it the floor, so that every peer still holding that
        past is sent this node's whole registry, which replaces it.
        """
        mine = self._owners[self.name]
        if version > mine.head:
            mine.head = mine.floor = version + 1
            self._news[self.name] = None

    # Membership.

    def member_changed(self, name: str, up: bool, route: str | None, now: float) -> None:
        self._members.add(name)
        reachable = self._reachable(name)
        if route:
            self.routes[name] = route
        if up:
            self._up.add(name)
            self._down.pop(name, None)
        elif name != self.name:
            self._up.discard(name)
            self._down.setdefault(name, now)
        if self._reachable(name) != reachable:
            self._reached(name)

    def _reached(self, name: str) -> None:
        """The owner's agents that reads show turned reachable or unreachable."""
        owner = self._owners.get(name)
        for key, record in owner.records.items() if owner is not None else ():
            if not record.deleted and _newest(self._claims[key]) is record:
                terms = self.terms(record)
                self._changes.append(Change(record, record, terms, terms))

    def next_deadline(self) -> float:
        """When :meth:`expire` next has work (infinity: never, as things stand)."""
        # Owners go down at a ``now`` that only rises, so the first is the longest down.
        due = next(iter(self._down.values()), math.inf)
        if self._tombstones:
            due = min(due, self._tombstones[0][0])
        return due + self.ttl

    def expire(self, now: float) -> Merged:
        """Drop owners down for ``ttl``, and tombstones taken more than ``ttl`` ago."""
        forgotten: list[tuple[str, str]] = []
        gone = []
        for name in [n for n, since in self._down.items() if since + self.ttl <= now]:
            del self._down[name]
            self._members.discard(name)
            self.routes.pop(name, None)
            owner = self._owners.pop(name, None)
            if owner is not None:
                for record in list(owner.records.values()):
                    self._forget(owner, record)
                gone.append(name)
        cutoff = now - self.ttl
        while self._tombstones and self._tombstones[0][0] <= cutoff:
            _, name, key, version = heapq.heappop(self._tombstones)
            owner = self._owners.get(name)
            held = owner.records.get(key) if owner is not None else None
            if owner is not None and held is not None and held.version == version:
                self._forget(owner, held)
                owner.floor = max(owner.floor, version)
                forgotten.append((name, key))
        return Merged(forgotten=tuple(forgotten), gone=tuple(gone))

    def load(
        self, records: Iterable[AgentRecord], heads: Iterable[tuple[Head, int]], now: float
    ) -> None:
        """What the node's file held: its records and, per owner, head and floor.

        No owner in it is known to be up: each is down from now on, until membership
        says otherwise (see above), and its tombstones are kept ``ttl`` from now.
        """
        for head, floor in heads:
            owner = self._owners.setdefault(head.name, _Owner())
            owner.head, owner.floor = head.version, floor
        for record in records:
            self._put(self._owners.setdefault(record.owner, _Owner()), record, now)
        for name in self._owners:
            if name not in self._up:
                self._down.setdefault(name, now)

    # Reads.

    def get(self, agent_id: str, scope: str = DEFAULT_SCOPE) -> AgentRecord | None:
        claims = self._claims.get(key_of(scope, agent_id))
        return None if claims is None else _newest(claims)

    def own(self, agent_id: str, scope: str = DEFAULT_SCOPE) -> AgentRecord | None:
        record = self._owners[self.name].records.get(key_of(scope, agent_id))
        return None if record is None or record.deleted else record

    def status(self, record: AgentRecord) -> str:
        return ACTIVE if self._reachable(record.owner) else UNREACHABLE

    def _reachable(self, owner: str) -> bool:
        """Up, and with an HTTP route to give: never ``active`` without a way there."""
        return owner in self._up and owner in self.routes

    def terms(self, record: AgentRecord) -> cards.CardTerms:
        """The record's card terms (empty without a card): parsed once for newest claims."""
        cached = self._terms.get(record.key)
        if cached is not None and cached[0] is record:
            return cached[1]
        return cards.terms(record.card) if record.card is not None else cards.NO_TERMS

    def page(self, query: Query, cursor: str | None, limit: int, local: bool) -> list[AgentRecord]:
        """Agents of ``query.scope`` that match it, in id order after ``cursor``;
        ``local``: this node's own claims only.

        Each term of the query has a sorted list of ids: the shortest is walked, the others
        are looked up in by bisection, so a page costs its length (times the lists' log),
        not the registry's size. The lists follow the newest claims: a local page walks the
        scope's ids and tests this node's claim on each.
        """
        lists = (
            [] if local else [self._index.get((query.scope, k, t), []) for k, t in query.terms()]
        )
        lists.sort(key=len)
        walk, others = (lists[0], lists[1:]) if lists else (self._ids.get(query.scope, []), [])
        start = 0 if cursor is None else bisect.bisect_right(walk, cursor)
        page: list[AgentRecord] = []
        for i in range(start, len(walk)):  # not walk[start:]: a copy of all that follows
            agent_id = walk[i]
            if not all(_holds(ids, agent_id) for ids in others):
                continue
            claims = self._claims[key_of(query.scope, agent_id)]
            if local:
                record = claims.get(self.name)
                if record is None or not query.matches(
                    record.scope, record.capabilities, self.terms(record)
                ):
                    continue
            else:
                record = _newest(claims)
            page.append(record)
            if len(page) == limit:
                break
        return page

    def count(self, scope: str | None = None) -> int:
        if scope is None:
            return len(self._claims)
        return len(self._ids.get(scope, ()))

    def unreachable_count(self, scope: str | None = None) -> int:
        if scope is None:
            return sum(o.live for name, o in self._owners.items() if not self._reachable(name))
        return sum(
            1
            for name, o in self._owners.items()
            if not self._reachable(name)
            for r in o.records.values()
            if r.scope == scope and not r.deleted
        )

    def digest(self, scope: str | None = None) -> str:
        """Equal on two nodes that hold the same live records (of ``scope``, or all)."""
        if scope is not None:
            return f"{self._content.get(scope, 0):016x}"
        total = 0
        for content in self._content.values():
            total ^= content
        return f"{total:016x}"

    # Index upkeep.

    def _put(
        self,
        owner: _Owner,
        record: AgentRecord,
        now: float,
        terms: cards.CardTerms | None = None,
    ) -> None:
        """Hold ``record`` in place of what its owner said of the agent before."""
        key = record.key
        before = self._newest(key)
        held = owner.records.get(key)
        if held is not None:
            self._drop(owner, held)
        owner.records[key] = record
        bisect.insort(owner.versions, (record.version, key))
        if record.deleted:
            heapq.heappush(self._tombstones, (now, record.owner, key, record.version))
        else:
            owner.live += 1
            self._content[record.scope] = self._content.get(record.scope, 0) ^ _hash(record)
            claims = self._claims.get(key)
            if claims is None:
                claims = self._claims[key] = {}
                bisect.insort(self._ids.setdefault(record.scope, []), record.agent_id)
            claims[record.owner] = record
        after = self._newest(key)
        self._reindex(before, after, terms if after is record else None)

    def _forget(self, owner: _Owner, record: AgentRecord) -> None:
        before = self._newest(record.key)
        self._drop(owner, record)
        self._reindex(before, self._newest(record.key))

    def _newest(self, key: str) -> AgentRecord | None:
        claims = self._claims.get(key)
        return _newest(claims) if claims else None

    def _drop(self, owner: _Owner, record: AgentRecord) -> None:
        """Let go of the owner's record; the read indexes are the caller's to fix."""
        key = record.key
        del owner.records[key]
        del owner.versions[bisect.bisect_left(owner.versions, (record.version, key))]
        if record.deleted:
            return
        owner.live -= 1
        self._content[record.scope] ^= _hash(record)
        claims = self._claims[key]
        del claims[record.owner]
        if not claims:
            del self._claims[key]
            ids = self._ids[record.scope]
            del ids[bisect.bisect_left(ids, record.agent_id)]
            if not ids:  # nothing live is left in the scope: its XOR is back to 0
                del self._ids[record.scope]
                del self._content[record.scope]

    def _reindex(
        self,
        before: AgentRecord | None,
        after: AgentRecord | None,
        terms: cards.CardTerms | None = None,
    ) -> None:
        """Move the agent's index entries from its old newest claim to its new one;
        ``terms``: the new one's card terms, if already parsed."""
        if before is after:
            return
        known = before or after
        assert known is not None
        scope, agent_id, key = known.scope, known.agent_id, known.key
        before_terms = cards.NO_TERMS if before is None else self.terms(before)
        old = _entries(before, before_terms)
        after_terms = cards.NO_TERMS
        if after is not None and after.card is not None:
            after_terms = terms or cards.terms(after.card)
            self._terms[key] = (after, after_terms)
        else:
            self._terms.pop(key, None)
        new = _entries(after, after_terms)
        for entry in old - new:
            ids = self._index[(scope, *entry)]
            del ids[bisect.bisect_left(ids, agent_id)]
            if not ids:
                del self._index[(scope, *entry)]
        for entry in new - old:
            bisect.insort(self._index.setdefault((scope, *entry), []), agent_id)
        self._changes.append(Change(before, after, before_terms, after_terms))


def _ceiling(wall: float) -> int:
    """The highest version or change time (in ms) believed of any owner at ``wall``."""
    return int((wall + MAX_CLOCK_SKEW) * 1000)


def _entries(record: AgentRecord | None, terms: cards.CardTerms) -> set[tuple[str, str]]:
    """(kind, term) of every index the record belongs in."""
    if record is None:
        return set()
    capability, skill, tag, word = INDEXED
    return (
        {(capability, c) for c in record.capabilities}
        | {(skill, s) for s in terms.skills}
        | {(tag, t) for t in terms.tags}
        | {(word, w) for w in terms.words}
    )


def _holds(ids: list[str], agent_id: str) -> bool:
    """Whether the sorted ``ids`` hold ``agent_id``."""
    i = bisect.bisect_left(ids, agent_id)
    return i < len(ids) and ids[i] == agent_id


def _within_bytes(records: list[AgentRecord]) -> list[AgentRecord]:
    """The first records whose cards add up to ``MAX_ANSWER_CARD_BYTES`` (at least one), so
    an answer of carded agents fits the stream's size limit.

    Counted as the codec writes them, a JSON string in UTF-8: not in characters, which a
    16 KiB card of Japanese text has a third as many of (an answer of them was 12.5 MB,
    over the stream's 8 MiB, and its asker refused it at every retry), and with its escapes
    (every ``/`` and ``"`` of a card doubles on the wire)."""
    total = 0
    for n, record in enumerate(records):
        if record.card is not None:
            total += len(ujson.dumps(record.card, ensure_ascii=False).encode())
        if total > MAX_ANSWER_CARD_BYTES and n:
            return records[:n]
    return records


def _oversized(update: AgentUpdate) -> bool:
    """More records than any answer a node sends (live lists are bounded by the stream's
    size limit)."""
    return len(update.records) > MAX_ANSWER_RECORDS


def _newest(claims: dict[str, AgentRecord]) -> AgentRecord:
    """The highest version: causally last (see above); the owner's name breaks a tie."""
    return max(claims.values(), key=lambda r: (r.version, r.owner))
