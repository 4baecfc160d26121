"""Registry watches: every change reads would show, numbered, kept a while, and seen
through each watcher's query.

Pure: the registry actor feeds it the replica's changes (``Replica.take_changes``) as
agent views, and fans what it returns out to the watchers' queues. Numbers are this
node's, in one life of its registry actor (``epoch``): an event id is ``epoch-seq``, so a
client that resumes on another node, or after a restart, is given a fresh snapshot.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

from caxton_actors.registry import replica
from caxton_actors.registry.query import Query
from caxton_actors.registry.store import Agent

ADDED, UPDATED, UNREACHABLE, REMOVED = "added", "updated", "unreachable", "removed"
_SEQ = re.compile(r"[0-9]{1,19}")  # ASCII: str.isdigit() takes "²", which int() does not
# Events kept for watchers that reconnect: one further behind gets a fresh snapshot.
LOG_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    kind: str
    before: Agent | None
    after: Agent | None


@dataclass(frozen=True, slots=True)
class Seen:
    """An event as one watcher sees it."""

    id: str
    kind: str
    agent: Agent


class Log:
    def __init__(self, epoch: str, size: int = LOG_SIZE) -> None:
        self.epoch = epoch
        self.seq = 0
        self._events: deque[Event] = deque(maxlen=size)

    @property
    def version(self) -> str:
        """The id of the last event: where a snapshot taken now stands."""
        return f"{self.epoch}-{self.seq}"

    def append(self, before: Agent | None, after: Agent | None) -> Event:
        """A change from ``before`` to ``after``; both the same record: its reachability
        changed."""
        if before is None:
            kind = ADDED
        elif after is None:
            kind = REMOVED
        elif after.status != before.status and after.status == replica.UNREACHABLE:
            kind = UNREACHABLE
        else:
            kind = UPDATED
        self.seq += 1
        event = Event(self.seq, kind, before, after)
        self._events.append(event)
        return event

    def since(self, last_id: str | None) -> list[Event] | None:
        """The events after ``last_id``, or None when it is not from this log or too old."""
        if last_id is None:
            return None
        epoch, _, text = last_id.rpartition("-")
        if epoch != self.epoch or not _SEQ.fullmatch(text) or int(text) > self.seq:
            return None
        seq = int(text)
        first = self._events[0].seq if self._events else self.seq + 1
        if seq + 1 < first:
            return None
        return [e for e in self._events if e.seq > seq]

    def event_id(self, event: Event) -> str:
        return f"{self.epoch}-{event.seq}"


def seen(log: Log, event: Event, query: Query) -> Seen | None:
    """``event`` as a watcher of ``query`` sees it: an agent that comes into its set is
    ``added``, one that leaves it ``removed``; None when neither side is in it."""
    was = event.before is not None and admits(query, event.before)
    now = event.after is not None and admits(query, event.after)
    if now and event.after is not None:
        return Seen(log.event_id(event), event.kind if was else ADDED, event.after)
    if was and event.before is not None:
        return Seen(log.event_id(event), REMOVED, event.before)
    return None


def admits(query: Query, agent: Agent) -> bool:
    return query.matches(agent.scope, agent.capabilities, agent.terms)
