"""Registry persistence actor: the only owner of the node's SQLite file.

Requests are immutable messages that each know which store operation they
are. When the actor wakes it takes every request already queued behind the
first, runs the whole batch on its worker thread in one transaction, and only
then answers each sender: one commit for many writes, no SQLite call on the
hub, and no reply before the data is durable.

It also owns the engine's registry stage, and so the cluster-wide registry
(:class:`Replica`) in memory: lookups are answered from it on the hub, this
node's own writes enter it once committed, and what gossip brings (through the
membership actor, which owns the sockets) is merged into it and written to the
file behind the answer.
"""

from __future__ import annotations

import dataclasses
import gc
import heapq
import logging
import math
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import gevent
import gevent.event
import gevent.queue
import gevent.threadpool

from caxton_actors import metrics
from caxton_actors.actors.stage import StageActor
from caxton_actors.clock import SYSTEM, Clock
from caxton_actors.engine.messages import (
    Changed,
    Committed,
    Deregister,
    Dropped,
    Output,
    Persist,
    Register,
    RegistryInput,
    Tick,
)
from caxton_actors.engine.registry import RegistryStage
from caxton_actors.registry import watch
from caxton_actors.registry.cards import CardTerms
from caxton_actors.registry.query import Query
from caxton_actors.registry.records import DEFAULT_SCOPE, AgentRecord, Head, key_of, token
from caxton_actors.registry.replica import ACTIVE, UNREACHABLE, Change
from caxton_actors.registry.store import (
    Agent,
    Conversation,
    Correlation,
    Store,
    StoreUnavailable,
    Tx,
    Written,
)
from caxton_actors.runtime.actor import Request
from caxton_actors.runtime.threads import run_in
from caxton_actors.runtime.timer import Alarm

log = logging.getLogger(__name__)

# Most requests one transaction takes: bounds how long the slowest reply waits.
MAX_BATCH = 512
# Seconds a write probe's result answers readiness before the file is probed again.
PROBE_TTL = 1.0
# Records the registry grows (or shrinks) by between two gc.freeze() calls.
FREEZE_GROWTH = 10_000
# Events a watcher may leave unread before it is dropped as too slow.
WATCH_BACKLOG = 1_000
# Most agents a watch's snapshot holds: a wider watch is refused (narrow its query).
MAX_SNAPSHOT = 10_000
# Reads waiting for a version (read-your-writes) at once.
MAX_WAITERS = 10_000
# Changes told to watchers between two yields of the hub.
YIELD_EVERY = 1_000

R = TypeVar("R")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RegistryFull:
    """A registration refused: this node already owns ``limit`` agents."""

    limit: int


class RegistryRequest(Request[R], ABC):
    """A message the registry actor runs against the store; its answer is ``apply``'s."""

    __slots__ = ()

    @abstractmethod
    def apply(self, tx: Tx) -> R: ...


@dataclass(frozen=True, slots=True)
class PutAgent(RegistryRequest[Written | RegistryFull]):
    """Answered ``RegistryFull`` when a new agent would pass this node's limit."""

    agent_id: str
    capabilities: tuple[str, ...]
    state_tool: str | None = None
    """JSON: the name of a configured state tool, or a {type, config}; None: stateless."""
    scope: str = DEFAULT_SCOPE
    card: str | None = None
    """The A2A AgentCard, validated (``cards.validate``), as compact JSON text."""

    @property
    def key(self) -> str:
        return key_of(self.scope, self.agent_id)

    def apply(self, tx: Tx) -> Written:
        return tx.put_agent(self.key, self.capabilities, self.state_tool, self.card)


@dataclass(frozen=True, slots=True)
class SaveReplica(RegistryRequest[None]):
    """Other owners' records as the replica now holds them: written behind the merge."""

    stored: tuple[AgentRecord, ...]
    forgotten: tuple[tuple[str, str], ...]
    heads: tuple[tuple[Head, int], ...]
    gone: tuple[str, ...]
    whole: bool = False
    """Replace everything stored of other owners: after a save failed."""

    def apply(self, tx: Tx) -> None:
        tx.save_replica(self.stored, self.forgotten, self.heads, self.gone, self.whole)


@dataclass(frozen=True, slots=True)
class DeleteAgent(RegistryRequest[str | None]):
    """Answered the removal's read-your-writes token; None: no such agent here."""

    agent_id: str
    scope: str = DEFAULT_SCOPE

    @property
    def key(self) -> str:
        return key_of(self.scope, self.agent_id)

    def apply(self, tx: Tx) -> str | None:
        return "" if tx.delete_agent(self.key) else None  # the token once it is committed


@dataclass(frozen=True, slots=True)
class CreateConversation(RegistryRequest[Conversation | None]):
    conversation_id: str
    participants: tuple[str, ...]

    def apply(self, tx: Tx) -> Conversation | None:
        return tx.create_conversation(self.conversation_id, self.participants)


@dataclass(frozen=True, slots=True)
class GetConversation(RegistryRequest[Conversation | None]):
    conversation_id: str

    def apply(self, tx: Tx) -> Conversation | None:
        return tx.get_conversation(self.conversation_id)


@dataclass(frozen=True, slots=True)
class TouchConversation(RegistryRequest[Conversation | None]):
    conversation_id: str

    def apply(self, tx: Tx) -> Conversation | None:
        return tx.touch_conversation(self.conversation_id)


@dataclass(frozen=True, slots=True)
class CreateCorrelation(RegistryRequest[Correlation | None]):
    correlation_id: str
    sender_id: str
    ttl_ms: int

    def apply(self, tx: Tx) -> Correlation | None:
        return tx.create_correlation(self.correlation_id, self.sender_id, self.ttl_ms)


@dataclass(frozen=True, slots=True)
class GetCorrelation(RegistryRequest[Correlation | None]):
    correlation_id: str

    def apply(self, tx: Tx) -> Correlation | None:
        return tx.get_correlation(self.correlation_id)


@dataclass(frozen=True, slots=True)
class DeleteCorrelation(RegistryRequest[bool]):
    correlation_id: str

    def apply(self, tx: Tx) -> bool:
        return tx.delete_correlation(self.correlation_id)


@dataclass(frozen=True, slots=True)
class ReapCorrelations(RegistryRequest[int]):
    def apply(self, tx: Tx) -> int:
        return tx.reap_correlations()


def _correlation_deadlines(tx: Tx) -> list[float]:
    """Take the file's correlations at start (``Tx.load_correlations``): their deadlines."""
    tx.load_correlations()
    return [at for at in tx.changed.values() if at is not None]


@dataclass(frozen=True, slots=True)
class CheckDatabase(RegistryRequest[bool]):
    def apply(self, tx: Tx) -> bool:
        return tx.check()


@dataclass(frozen=True, slots=True)
class CheckWritable(Request[str | None]):
    """Whether the file takes a write now: None, or why not (read-only, disk full,
    locked). Readiness asks; the answer is the last probe's while it is younger than
    ``PROBE_TTL``, so that a hammered ``/health/ready`` writes once a second at most."""


# Answered from memory, on the hub.


@dataclass(frozen=True, slots=True)
class CountAgents(Request[int]):
    """How many agents the cluster-wide registry holds."""


@dataclass(frozen=True, slots=True)
class GetAgent(Request[Agent | None]):
    """The agent's newest claim anywhere in the cluster."""

    agent_id: str
    scope: str = DEFAULT_SCOPE


@dataclass(frozen=True, slots=True)
class ListAgents(Request[list[Agent]]):
    query: Query
    cursor: str | None
    limit: int
    local: bool = False
    """Only this node's own agents."""


@dataclass(frozen=True, slots=True)
class AwaitVersion(Request["gevent.event.AsyncResult[bool] | int"]):
    """Read-your-writes: answered this node's head of ``owner`` when it has merged
    ``version`` already, else a result set once it has (the asker bounds the wait)."""

    owner: str
    version: int


@dataclass(frozen=True, slots=True)
class HeadOf(Request[int]):
    """How far this node knows ``owner``."""

    owner: str


@dataclass(frozen=True, slots=True)
class Closed:
    """The last item of a watch's queue: why it ends."""

    reason: str


WatchItem = watch.Seen | Closed


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: str
    agents: tuple[Agent, ...]


@dataclass(frozen=True, slots=True)
class Watch(Request["Snapshot | int | None"]):
    """Follow the agents ``query`` selects: every change after this goes to ``queue``.

    Answered with a snapshot of the set (None: ``last_id`` was resumed from, and what
    followed it is already queued), or, when more than ``MAX_SNAPSHOT`` agents match,
    with their count and no watch.
    """

    query: Query
    queue: gevent.queue.Queue[WatchItem]
    last_id: str | None = None


@dataclass(frozen=True, slots=True)
class Unwatch:
    queue: gevent.queue.Queue[WatchItem]


@dataclass(frozen=True, slots=True)
class StateBinding:
    registered_here: bool
    tool: str | None


@dataclass(frozen=True, slots=True)
class GetStateTool(Request[StateBinding]):
    """For an agent registered on this node: its state tool binding (None: stateless)."""

    agent_id: str
    scope: str = DEFAULT_SCOPE


@dataclass(frozen=True, slots=True)
class DigestView:
    agents: int
    unreachable: int
    digest: str
    """Equal on nodes that hold the same live records."""
    heads: tuple[Head, ...]


@dataclass(frozen=True, slots=True)
class RegistryDigest(Request[DigestView]):
    scope: str | None = None
    """One scope's agents; None: all."""


@dataclass(frozen=True, slots=True)
class Housekeeping(Request[int]):
    """Expire correlations and the replica's stale records; answers how many expired."""


@dataclass(frozen=True, slots=True)
class _Sweep:
    """The actor's own housekeeping, at its alarm (see ``_arm_sweep``)."""


class RegistryActor(StageActor):
    """Opens (and migrates) the file when built, so a bad file fails start-up loudly;
    the registry stage then starts from what the file kept.

    Expiry runs on ``clock``'s monotonic readings; its wall readings only go into the
    file, answers and versions (``clock.py``).
    """

    def __init__(
        self,
        path: Path,
        stage: RegistryStage,
        reap_interval: float,
        stats: metrics.Metrics,
        clock: Clock = SYSTEM,
    ) -> None:
        super().__init__()
        self._clock = clock
        self._reap_interval = reap_interval
        self._stats = stats
        self._stage = stage
        self._replica = stage.replica
        self._limits = stage.replica.limits
        # One thread owns the SQLite connection: sqlite3 objects stay on their thread.
        self._worker = gevent.threadpool.ThreadPool(1)
        try:
            self._store: Store = self._in_worker(Store, path, stage.replica.name)
            try:
                own, (records, heads), tools, deadlines = self._in_worker(
                    self._store.run_batch,
                    [Tx.own_agents, Tx.load_replica, Tx.state_tools, _correlation_deadlines],
                    clock.wall_ms(),
                    clock.monotonic(),
                )
            except (StoreUnavailable, ValueError) as exc:  # damaged pages, unreadable values
                self._worker.apply(self._store.close)
                why = exc if isinstance(exc, StoreUnavailable) else f"a value is not JSON ({exc})"
                raise StoreUnavailable(f"cannot load {path}: {why}") from exc
        except BaseException:
            self._worker.kill()
            raise
        self._state_tools: dict[str, str] = tools
        self._reap_at: list[float] = deadlines
        """Heap of the correlations' deadlines (monotonic), the soonest first, so that
        housekeeping opens a transaction only when one has come. A correlation deleted
        early leaves its deadline here: a reap that finds nothing then."""
        heapq.heapify(self._reap_at)
        own_agents = (
            AgentRecord(a.node_id, a.id, 0, a.capabilities, 0, False, a.scope, a.card) for a in own
        )
        stage.restore(own_agents, records, heads, clock.monotonic(), clock.wall())
        self._log = watch.Log(uuid.uuid4().hex[:12])
        self._watchers: dict[str, dict[gevent.queue.Queue[WatchItem], Query]] = {}
        """By scope: a change is tested against its own scope's watchers only."""
        self._waiters: list[tuple[str, int, gevent.event.AsyncResult[bool]]] = []
        self._frozen_at = -FREEZE_GROWTH
        self._resave = False
        self._freeze_if_grown()
        self._alarm = Alarm(lambda: self.actor_ref.tell(_Sweep()))
        self._swept_at = -math.inf
        self._gauges_due = False
        self._probed: tuple[float, str | None] | None = None
        """When the file was last probed for a write, and why it failed (None: it took it)."""
        self._gauged: tuple[int, int] | None = None
        self._gauges()

    def on_start(self) -> None:
        self._arm_sweep()

    def on_stop(self) -> None:
        for watchers in self._watchers.values():
            for queue in watchers:
                queue.put(Closed("the node's registry stopped; reconnect"))
        self._watchers.clear()
        self._alarm.cancel()
        self._worker.apply(self._store.close)
        self._worker.kill()

    def on_failure(self, *_exc_info: object) -> None:
        self.on_stop()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, RegistryRequest):
            answer = self._batch(message)
            self._changed()
            return answer
        if isinstance(message, RegistryInput):
            answer = self._carry(self._step(message))
            self._freeze_if_grown()
            self._changed()
            return answer
        replica = self._replica
        match message:
            case CountAgents():
                return replica.count()
            case GetAgent(agent_id=agent_id, scope=scope):
                record = replica.get(agent_id, scope)
                return None if record is None else self._agent(record)
            case ListAgents(query=query, cursor=cursor, limit=limit, local=local):
                return [self._agent(r) for r in replica.page(query, cursor, limit, local)]
            case GetStateTool(agent_id=agent_id, scope=scope):
                here = replica.own(agent_id, scope) is not None
                return StateBinding(here, self._state_tools.get(key_of(scope, agent_id)))
            case CheckWritable():
                return self._writable()
            case RegistryDigest(scope=scope):
                return DigestView(
                    replica.count(scope),
                    replica.unreachable_count(scope),
                    replica.digest(scope),
                    replica.heads(),
                )
            case AwaitVersion(owner=owner, version=version):
                return self._await(owner, version)
            case HeadOf(owner=owner):
                return replica.head(owner)
            case Watch(query=query, queue=queue, last_id=last_id):
                return self._watch(query, queue, last_id)
            case Unwatch(queue=queue):
                for scope, watchers in list(self._watchers.items()):
                    if watchers.pop(queue, None) is not None and not watchers:
                        del self._watchers[scope]
                return None
            case Housekeeping():
                return self._housekeeping()
            case _Sweep():
                self._sweep()
                return None
        return super().on_receive(message)

    def _housekeeping(self) -> int:
        self._carry(self._step(Tick()))
        if self._resave:
            self._resave = False
            records, floors = self._replica.others()
            self.actor_ref.tell(SaveReplica(records, (), floors, (), whole=True))
        reaped = self._reap()
        self._gauges()  # once a housekeeping, not once a message
        return reaped

    def _reap(self) -> int:
        """Delete the correlations whose deadline has come, if one has."""
        now = self._clock.monotonic()
        if not self._reap_at or self._reap_at[0] > now:
            return 0
        reaped: int = self._batch(ReapCorrelations())  # at ``now`` or later: all reaped
        while self._reap_at and self._reap_at[0] <= now:
            heapq.heappop(self._reap_at)
        return reaped

    def _writable(self) -> str | None:
        """Probe the file with a write of its own transaction (never batched: a client's
        failing request must not read as a database that cannot write)."""
        now = self._clock.monotonic()
        if self._probed is not None and now - self._probed[0] < PROBE_TTL:
            return self._probed[1]
        try:
            self._in_worker(self._store.run_batch, [Tx.probe_write], self._clock.wall_ms(), now)
            reason = None
        except StoreUnavailable as exc:
            reason = str(exc)
        self._probed = (now, reason)
        return reason

    def _step(self, message: RegistryInput) -> list[Output]:
        """The registry stage's answer to ``message``, now."""
        clock = self._clock
        return self._stage.handle(clock.monotonic(), message, wall=clock.wall())

    def _effect(self, output: Output) -> None:
        match output:
            case Persist(stored=stored, forgotten=forgotten, heads=heads, gone=gone):
                self.actor_ref.tell(SaveReplica(stored, forgotten, heads, gone))
            case Dropped(reason=reason, count=count):
                self._stats.incr(f"{metrics.REGISTRY_UPDATES_DROPPED}.{reason}", count)
            case Changed(changes=changes):
                self._tell_watchers(changes)

    def _batch(self, message: RegistryRequest[Any]) -> Any:
        """Run ``message`` and every request queued behind it in one transaction."""
        followers = self.take_ready(lambda m: isinstance(m, RegistryRequest), MAX_BATCH - 1)
        requests = [message] + [envelope.message for envelope in followers]
        try:
            results = self._run(requests)
        except Exception:
            for envelope in followers:
                if envelope.reply_to is not None:
                    envelope.reply_to.set_exception()
            if any(isinstance(r, SaveReplica) for r in requests):
                # What gossip brought is lost from the file: write all of it next time.
                self._resave = True
            if isinstance(message, SaveReplica):  # our own tell: nobody to answer, stay up
                log.exception("saving the registry replica failed; will save it whole")
                return None
            raise
        for envelope, result in zip(followers, results[1:], strict=True):
            if envelope.reply_to is not None:
                envelope.reply_to.set(result)
        return results[0]

    def _in_worker(self, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)`` on the database thread; its exception raised here."""
        return run_in(self._worker, call, *args)

    def _run(self, requests: list[RegistryRequest[Any]]) -> list[Any]:
        """Commit the batch; then enter this node's own changes in the replica."""
        refused = self._over_limit(requests)
        runnable = [r for i, r in enumerate(requests) if i not in refused]
        started = time.perf_counter()
        monotonic = self._clock.monotonic()
        results = self._in_worker(
            self._store.run_batch, [r.apply for r in runnable], self._clock.wall_ms(), monotonic
        )
        self._stats.timing(metrics.REGISTRY_COMMIT_TIME, (time.perf_counter() - started) * 1000)
        self._stats.timing(metrics.REGISTRY_BATCH_SIZE, len(requests))
        changes: list[Register | Deregister] = []
        for request, result in zip(runnable, results, strict=True):
            if isinstance(request, PutAgent):
                changes.append(
                    Register(request.agent_id, request.capabilities, request.scope, request.card)
                )
                if request.state_tool is None:
                    self._state_tools.pop(request.key, None)
                else:
                    self._state_tools[request.key] = request.state_tool
            elif isinstance(request, DeleteAgent) and result is not None:
                changes.append(Deregister(request.agent_id, request.scope))
                self._state_tools.pop(request.key, None)
            elif isinstance(request, CreateCorrelation) and result is not None:
                # The deadline Tx.create_correlation set, to the same reading.
                heapq.heappush(self._reap_at, monotonic + request.ttl_ms / 1000)
        if changes:
            self._carry(self._step(Committed(tuple(changes))))
        for i, (request, result) in enumerate(zip(runnable, results, strict=True)):
            if isinstance(request, PutAgent):
                record = self._replica.own(request.agent_id, request.scope)
                if record is None:  # a removal later in the batch: its head is the token
                    head = self._replica.head(self._replica.name)
                    results[i] = Written(
                        dataclasses.replace(result.record, version=head), result.created
                    )
                else:
                    results[i] = Written(self._agent(record), result.created)
            elif isinstance(request, DeleteAgent) and result is not None:
                results[i] = token(self._replica.name, self._replica.head(self._replica.name))
        self._freeze_if_grown()
        answers = iter(results)
        full = RegistryFull(self._limits.max_agents_per_node)
        return [full if i in refused else next(answers) for i in range(len(requests))]

    def _over_limit(self, requests: Sequence[RegistryRequest[Any]]) -> set[int]:
        """Registrations of new agents past this node's limit, by position in the batch."""
        room = self._limits.max_agents_per_node - self._replica.own_count()
        refused: set[int] = set()
        new: set[str] = set()
        for i, request in enumerate(requests):
            if (
                isinstance(request, PutAgent)
                and self._replica.own(request.agent_id, request.scope) is None
            ):
                if request.key not in new and len(new) >= room:
                    refused.add(i)
                else:
                    new.add(request.key)
            elif isinstance(request, DeleteAgent):
                new.discard(request.key)
        return refused

    def _agent(
        self,
        record: AgentRecord,
        card: bool = True,
        terms: CardTerms | None = None,
        status: str | None = None,
    ) -> Agent:
        """The agent as reads show it; ``card``: with its card's text (watch events go
        without: the log must not keep up to 10,000 old cards alive); ``terms``: its card's,
        if parsed already; ``status``: the one it had, if not the one it has."""
        replica = self._replica
        return Agent(
            record.agent_id,
            record.owner,
            record.capabilities,
            record.changed_at,
            replica.status(record) if status is None else status,
            f"http://{route}" if (route := replica.routes.get(record.owner)) else None,
            record.scope,
            record.version,
            record.card if card else None,
            replica.terms(record) if terms is None else terms,
        )

    # Read-your-writes and watches.

    def _await(self, owner: str, version: int) -> gevent.event.AsyncResult[bool] | int:
        head = self._replica.head(owner)
        if head >= version:
            return head
        if len(self._waiters) >= MAX_WAITERS:  # the oldest gives up first: its asker has
            _, _, oldest = self._waiters.pop(0)
            oldest.set(False)
        waiting: gevent.event.AsyncResult[bool] = gevent.event.AsyncResult()
        self._waiters.append((owner, version, waiting))
        return waiting

    def _wake_waiters(self) -> None:
        """Answer the reads whose version has been merged; forget those whose asker gave
        up (it sets the result False)."""
        head = self._replica.head
        still = []
        for owner, version, waiting in self._waiters:
            if waiting.ready():
                continue
            if head(owner) >= version:
                waiting.set(True)
            else:
                still.append((owner, version, waiting))
        self._waiters = still

    def _watch(
        self, query: Query, queue: gevent.queue.Queue[WatchItem], last_id: str | None
    ) -> Snapshot | int | None:
        missed = self._log.since(last_id)
        if missed is not None:
            for event in missed:
                if (shown := watch.seen(self._log, event, query)) is not None:
                    queue.put(shown)
            self._watchers.setdefault(query.scope, {})[queue] = query
            return None
        records = self._replica.page(query, None, MAX_SNAPSHOT + 1, local=False)
        if len(records) > MAX_SNAPSHOT:
            return len(records)
        self._watchers.setdefault(query.scope, {})[queue] = query
        return Snapshot(self._log.version, tuple(self._agent(r, card=False) for r in records))

    def _tell_watchers(self, changes: Sequence[Change]) -> None:
        """Number each change, keep it for resumes, and queue it for whoever watches it.

        An owner of 100,000 agents that goes down is 100,000 changes, 0.6 s of this on this
        machine: the hub is let go every ``YIELD_EVERY`` of them, so the other actors (and
        the probes that keep this node's peers from suspecting it) run meanwhile. This
        actor's own mailbox waits: its changes stay in order.
        """
        for n, change in enumerate(changes, 1):
            if n % YIELD_EVERY == 0:
                gevent.sleep(0)
            before = after = None
            if change.after is not None:
                after = self._agent(change.after, card=False, terms=change.after_terms)
            if change.before is not None:
                # Both the same record: its reachability flipped, so it had the other status.
                was = None
                if change.before is change.after and after is not None:
                    was = UNREACHABLE if after.status == ACTIVE else ACTIVE
                before = self._agent(
                    change.before, card=False, terms=change.before_terms, status=was
                )
            event = self._log.append(before, after)
            known = before or after
            assert known is not None
            watchers = self._watchers.get(known.scope, {})
            for queue, query in list(watchers.items()):
                shown = watch.seen(self._log, event, query)
                if shown is None:
                    continue
                if queue.qsize() >= WATCH_BACKLOG:
                    queue.put(Closed(f"too slow: {WATCH_BACKLOG} events were left unread"))
                    del watchers[queue]
                    self._stats.incr(metrics.WATCHES_DROPPED)
                else:
                    queue.put(shown)

    def _freeze_if_grown(self) -> None:
        """Spare the hub long full collections of a large registry.

        A full (generation 2) collection walks every tracked object; at 100,000 agents
        it held the hub 240 ms. The replica's records hold no cycles and refcounting
        frees them, so once the registry has grown by ``FREEZE_GROWTH`` records, what
        is alive moves to the permanent generation (after a young collection, so
        that little garbage goes with it) and later collections skip it.
        """
        size = self._replica.count()
        if abs(size - self._frozen_at) >= FREEZE_GROWTH:
            gc.collect(1)
            gc.freeze()
            self._frozen_at = size

    def _gauges(self) -> None:
        """On change only: ``metrics.resend_gauges_forever`` repeats them while they hold."""
        counts = (self._replica.count(), self._replica.unreachable_count())
        if counts == self._gauged:
            return
        self._gauged = counts
        self._stats.gauge(metrics.AGENT_REGISTRY_SIZE, counts[0])
        self._stats.gauge(metrics.AGENT_REGISTRY_UNREACHABLE, counts[1])

    def _changed(self) -> None:
        """After what may have changed the registry: its gauges at the next sweep, and the
        reads waiting for a version it may have brought."""
        if self._waiters:
            self._wake_waiters()
        self._gauges_due = True
        self._arm_sweep()

    def _arm_sweep(self) -> None:
        """Sleep until housekeeping has work (a correlation's deadline, the replica's next
        expiry, a resave, gauges to check), but no sooner than ``reap_interval`` after the
        last sweep, so that a busy registry sweeps once a ``reap_interval`` and an idle one
        is not woken for nothing."""
        due = self._replica.next_deadline()
        if self._reap_at:
            due = min(due, self._reap_at[0])
        if self._resave or self._gauges_due:
            due = -math.inf
        if due == math.inf:
            return
        now = self._clock.monotonic()
        delay = max(due, self._swept_at + self._reap_interval) - now
        self._alarm.arm_by(time.monotonic() + max(0.0, delay))

    def _sweep(self) -> None:
        """Housekeeping, and the next one armed; a failure is logged, and the actor (with
        every request it answers) stays up and tries again ``reap_interval`` later."""
        self._swept_at = self._clock.monotonic()
        self._gauges_due = False
        try:
            expired = self._housekeeping()
        except Exception:
            log.exception("housekeeping failed; will retry")
            self._alarm.arm(time.monotonic() + self._reap_interval)
            return
        self._arm_sweep()
        if expired:
            self._stats.incr(metrics.CORRELATIONS_EXPIRED, expired)
