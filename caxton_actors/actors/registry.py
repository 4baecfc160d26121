"""Registry persistence actor: the only owner of the node's SQLite file.

Requests are immutable messages that each know which store operation they
are. When the actor wakes it takes every request already queued behind the
first, runs the whole batch on its worker thread in one transaction, and only
then answers each sender: one commit for many writes, no SQLite call on the
hub, and no reply before the data is durable.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import gevent.threadpool

from caxton_actors import metrics
from caxton_actors.registry.store import (
    Agent,
    Conversation,
    Correlation,
    Store,
    Tx,
    Written,
)
from caxton_actors.runtime.actor import GeventActor

log = logging.getLogger(__name__)

# Most requests one transaction takes: bounds how long the slowest reply waits.
MAX_BATCH = 512


class RegistryRequest(ABC):
    """A message the registry actor runs against the store."""

    __slots__ = ()

    @abstractmethod
    def apply(self, tx: Tx) -> Any: ...


@dataclass(frozen=True, slots=True)
class PutAgent(RegistryRequest):
    agent_id: str
    capabilities: tuple[str, ...]

    def apply(self, tx: Tx) -> Written:
        return tx.put_agent(self.agent_id, self.capabilities)


@dataclass(frozen=True, slots=True)
class GetAgent(RegistryRequest):
    agent_id: str

    def apply(self, tx: Tx) -> Agent | None:
        return tx.get_agent(self.agent_id)


@dataclass(frozen=True, slots=True)
class ListAgents(RegistryRequest):
    capability: str | None
    after: str | None
    limit: int

    def apply(self, tx: Tx) -> list[Agent]:
        return tx.list_agents(self.capability, self.after, self.limit)


@dataclass(frozen=True, slots=True)
class DeleteAgent(RegistryRequest):
    agent_id: str

    def apply(self, tx: Tx) -> bool:
        return tx.delete_agent(self.agent_id)


@dataclass(frozen=True, slots=True)
class CreateConversation(RegistryRequest):
    conversation_id: str
    participants: tuple[str, ...]

    def apply(self, tx: Tx) -> Conversation | None:
        return tx.create_conversation(self.conversation_id, self.participants)


@dataclass(frozen=True, slots=True)
class GetConversation(RegistryRequest):
    conversation_id: str

    def apply(self, tx: Tx) -> Conversation | None:
        return tx.get_conversation(self.conversation_id)


@dataclass(frozen=True, slots=True)
class TouchConversation(RegistryRequest):
    conversation_id: str

    def apply(self, tx: Tx) -> Conversation | None:
        return tx.touch_conversation(self.conversation_id)


@dataclass(frozen=True, slots=True)
class CreateCorrelation(RegistryRequest):
    correlation_id: str
    sender_id: str
    ttl_ms: int

    def apply(self, tx: Tx) -> Correlation | None:
        return tx.create_correlation(self.correlation_id, self.sender_id, self.ttl_ms)


@dataclass(frozen=True, slots=True)
class GetCorrelation(RegistryRequest):
    correlation_id: str

    def apply(self, tx: Tx) -> Correlation | None:
        return tx.get_correlation(self.correlation_id)


@dataclass(frozen=True, slots=True)
class DeleteCorrelation(RegistryRequest):
    correlation_id: str

    def apply(self, tx: Tx) -> bool:
        return tx.delete_correlation(self.correlation_id)


@dataclass(frozen=True, slots=True)
class ReapCorrelations(RegistryRequest):
    def apply(self, tx: Tx) -> int:
        return tx.reap_correlations()


@dataclass(frozen=True, slots=True)
class CheckDatabase(RegistryRequest):
    def apply(self, tx: Tx) -> bool:
        return tx.check()


@dataclass(frozen=True, slots=True)
class CountAgents:
    """How many agents the registry holds; answered from memory."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class RegistryActor(GeventActor):
    """Opens (and migrates) the file when built, so a bad file fails start-up loudly."""

    def __init__(
        self,
        path: Path,
        node_id: str,
        reap_interval: float,
        stats: metrics.Metrics,
    ) -> None:
        super().__init__()
        self._reap_interval = reap_interval
        self._stats = stats
        # One thread owns the SQLite connection: sqlite3 objects stay on their thread.
        self._worker = gevent.threadpool.ThreadPool(1)
        try:
            self._store: Store = self._worker.apply(Store, (path, node_id))
            (count,), _ = self._worker.apply(self._store.run_batch, ([Tx.count_agents], _now_ms()))
        except BaseException:
            self._worker.kill()
            raise
        self._agent_count = 0
        self._set_agent_count(count)
        self._reaper: gevent.Greenlet[[], None] | None = None

    def on_start(self) -> None:
        self._reaper = gevent.spawn(self._reap_forever)

    def on_stop(self) -> None:
        if self._reaper is not None:
            self._reaper.kill()
        self._worker.apply(self._store.close)
        self._worker.kill()

    def on_failure(self, *_exc_info: object) -> None:
        self.on_stop()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, CountAgents):
            return self._agent_count
        if not isinstance(message, RegistryRequest):
            return super().on_receive(message)
        followers = self.take_ready(lambda m: isinstance(m, RegistryRequest), MAX_BATCH - 1)
        requests = [message] + [envelope.message for envelope in followers]
        try:
            results = self._run(requests)
        except Exception:
            for envelope in followers:
                if envelope.reply_to is not None:
                    envelope.reply_to.set_exception()
            raise
        for envelope, result in zip(followers, results[1:], strict=True):
            if envelope.reply_to is not None:
                envelope.reply_to.set(result)
        return results[0]

    def _run(self, requests: list[RegistryRequest]) -> list[Any]:
        started = time.perf_counter()
        results, delta = self._worker.apply(
            self._store.run_batch, ([r.apply for r in requests], _now_ms())
        )
        self._stats.timing(metrics.REGISTRY_COMMIT_TIME, (time.perf_counter() - started) * 1000)
        self._stats.timing(metrics.REGISTRY_BATCH_SIZE, len(requests))
        if delta:
            self._set_agent_count(self._agent_count + delta)
        return list(results)

    def _set_agent_count(self, count: int) -> None:
        self._agent_count = count
        self._stats.gauge(metrics.AGENT_REGISTRY_SIZE, count)

    def _reap_forever(self) -> None:
        while True:
            gevent.sleep(self._reap_interval)
            try:
                expired: int = self.actor_ref.ask(ReapCorrelations(), block=False).get()
            except Exception:
                log.exception("reaping expired correlations failed; will retry")
                continue
            if expired:
                self._stats.incr(metrics.CORRELATIONS_EXPIRED, expired)
