"""Blocking SQLite work: the node's agents, its replica of others', conversations, correlations.

The node answers agent lookups from memory (``registry/replica.py``); the file
is what it starts from. ``agents`` and its capability index hold this node's
own agents, as the seed's schema has it, for the node and for anyone with the
sqlite3 shell; ``registry_entries`` and ``registry_owners`` hold what gossip
brought of the other nodes' agents.

Everything here blocks, so it runs on the registry actor's worker thread and
never on the gevent hub. The actor hands over a whole batch of requests at a
time; :meth:`Store.run_batch` runs them in one transaction and one commit, and
the actor answers none of them before that commit returns.
"""

from __future__ import annotations

import fcntl
import heapq
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import ujson
from sqlalchemy.dialects import sqlite

from caxton_actors.registry.cards import NO_TERMS, CardTerms
from caxton_actors.registry.records import DEFAULT_SCOPE, AgentRecord, Head, split_key
from caxton_actors.registry.schema import (
    SchemaError,
    agent_capabilities,
    agent_state_tools,
    agents,
    conversations,
    migrate,
    pending_messages,
    registry_entries,
    registry_owners,
)

# Milliseconds SQLite waits on a lock held by another process (a backup, the sqlite3 shell):
# well under the HTTP facade's ask timeout, so a lock is reported as one, not as silence.
BUSY_TIMEOUT_MS = 1000
# The file header's application id (``CXTN``): marks the file as a Caxton node's, and is
# what the write probe rewrites (``Tx.probe_write``).
APPLICATION_ID = 0x4358544E


class StoreUnavailable(Exception):
    """The file cannot be used now or at all: locked, full, read-only, not a database.

    The store raises it for the database's own failures so that no caller needs to
    know SQL to handle one; the message says what went wrong. A constraint or a
    statement that fails is a bug in this code, not the database's state, and is
    raised as it is (a 500 that the server logs).
    """


def _reason(exc: sa.exc.SQLAlchemyError) -> str:
    """The driver's own message ("database is locked"), without SQLAlchemy's wrapping."""
    return str(exc.orig) if isinstance(exc, sa.exc.DBAPIError) else str(exc)


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    node_id: str
    capabilities: tuple[str, ...]
    last_seen: int
    status: str
    route: str | None = None
    """The owning node's HTTP address."""
    scope: str = DEFAULT_SCOPE
    version: int = 0
    """The owner's version of this record: with ``node_id``, a read-your-writes token."""
    card: str | None = None
    """The A2A AgentCard as compact JSON text."""
    terms: CardTerms = NO_TERMS
    """What the card says that lookups find it by: name, skill ids, tags, words."""


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    participants: tuple[str, ...]
    created_at: int
    last_activity: int


@dataclass(frozen=True, slots=True)
class Correlation:
    correlation_id: str
    sender_id: str
    created_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class Written:
    """The result of an upsert: the record as stored and whether it is new."""

    record: Agent
    created: bool


def _agent(row: sa.Row[Any]) -> Agent:
    scope, agent_id = split_key(row.id)
    return Agent(
        id=agent_id,
        node_id=row.node_id,
        capabilities=tuple(ujson.loads(row.capabilities)),
        last_seen=row.last_seen,
        status=row.status,
        scope=scope,
        card=row.card,
    )


def _conversation(row: sa.Row[Any]) -> Conversation:
    return Conversation(
        id=row.id,
        participants=tuple(ujson.loads(row.participants)),
        created_at=row.created_at,
        last_activity=row.last_activity,
    )


def _correlation(row: sa.Row[Any]) -> Correlation:
    return Correlation(
        correlation_id=row.correlation_id,
        sender_id=row.sender_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


# The hot statements, built once: constructing a Core statement costs more than running it.
_ID: sa.BindParameter[str] = sa.bindparam("id")
_INSERT_AGENT = sqlite.insert(agents).on_conflict_do_nothing(index_elements=["id"])
# Keyed on "agent" (an update may not bind a parameter named after a column it sets).
_UPDATE_AGENT = sa.update(agents).where(agents.c.id == sa.bindparam("agent"))
_DELETE_AGENT = sa.delete(agents).where(agents.c.id == _ID)
_INSERT_CAPABILITY = sa.insert(agent_capabilities)
_INSERT_STATE_TOOL = sa.insert(agent_state_tools)
_DELETE_STATE_TOOL = sa.delete(agent_state_tools).where(agent_state_tools.c.agent_id == _ID)
_DELETE_CAPABILITIES = sa.delete(agent_capabilities).where(agent_capabilities.c.agent_id == _ID)


_SAVE_ENTRY = sqlite.insert(registry_entries).prefix_with("OR REPLACE")
_SAVE_OWNER = sqlite.insert(registry_owners).prefix_with("OR REPLACE")
_FORGET_ENTRY = sa.delete(registry_entries).where(
    registry_entries.c.owner == sa.bindparam("o"),
    registry_entries.c.agent_id == sa.bindparam("a"),
)


# Correlation ids one DELETE names: well under SQLite's limit on bound parameters.
_REAP_CHUNK = 500


class Deadlines:
    """When each live correlation expires, in monotonic seconds: a wall clock that jumps
    expires none (the file keeps wall times, for display and for a restart)."""

    def __init__(self) -> None:
        self._at: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        """(deadline, id), the soonest first; an entry whose id moved on is skipped."""

    def get(self, correlation_id: str) -> float | None:
        return self._at.get(correlation_id)

    def due(self, now: float) -> list[str]:
        """Ids whose deadline has come (they stay until :meth:`apply` drops them).

        Walks the heap's tree only below entries that are due: O(those), not O(all).
        """
        heap, due = self._heap, []
        stack = [0] if heap else []
        while stack:
            i = stack.pop()
            at, correlation_id = heap[i]
            if at > now:
                continue
            if self._at.get(correlation_id) == at:
                due.append(correlation_id)
            stack += [child for child in (2 * i + 1, 2 * i + 2) if child < len(heap)]
        return due

    def apply(self, changes: dict[str, float | None]) -> None:
        """A committed batch's changes: a new deadline, or None when the row is gone."""
        for correlation_id, at in changes.items():
            if at is None:
                self._at.pop(correlation_id, None)
            else:
                self._at[correlation_id] = at
                heapq.heappush(self._heap, (at, correlation_id))
        while self._heap and self._at.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # dropped or moved on
        if len(self._heap) > 2 * len(self._at) + 64:  # ids deleted before their time
            self._heap = [(at, correlation_id) for correlation_id, at in self._at.items()]
            heapq.heapify(self._heap)


class Tx:
    """The operations one request may run inside a batch's transaction.

    ``now`` is the batch's wall clock (Unix ms), for what is stored and shown;
    ``monotonic`` its monotonic clock (seconds), for what expires: every request in a
    batch sees one time. Correlation deadlines change in memory only once the batch
    commits.
    """

    def __init__(
        self,
        conn: sa.Connection,
        now: int,
        node_id: str,
        monotonic: float,
        deadlines: Deadlines,
    ) -> None:
        self.conn = conn
        self.now = now
        self.node_id = node_id
        self.monotonic = monotonic
        self.deadlines = deadlines
        self.changed: dict[str, float | None] = {}
        """Correlation deadlines this batch set (None: the row is gone)."""

    # agents

    def put_agent(
        self,
        key: str,
        capabilities: tuple[str, ...],
        state_tool: str | None = None,
        card: str | None = None,
    ) -> Written:
        """Register or update the agent with this key (``records.key_of``); ``state_tool``
        (JSON of a name or a spec) and ``card`` replace the old ones."""
        row = {
            "id": key,
            "node_id": self.node_id,
            "capabilities": ujson.dumps(list(capabilities)),
            "last_seen": self.now,
            "status": "active",
            "card": card,
        }
        created = self.conn.execute(_INSERT_AGENT, row).rowcount > 0
        if not created:
            updated = {"agent": key, **{k: v for k, v in row.items() if k != "id"}}
            self.conn.execute(_UPDATE_AGENT, updated)
            self.conn.execute(_DELETE_CAPABILITIES, {"id": key})
            self.conn.execute(_DELETE_STATE_TOOL, {"id": key})
        if capabilities:
            self.conn.execute(
                _INSERT_CAPABILITY, [{"agent_id": key, "capability": c} for c in capabilities]
            )
        if state_tool is not None:
            self.conn.execute(_INSERT_STATE_TOOL, {"agent_id": key, "tool": state_tool})
        scope, name = split_key(key)
        agent = Agent(name, self.node_id, capabilities, self.now, "active", scope=scope, card=card)
        return Written(agent, created)

    def delete_agent(self, agent_id: str) -> bool:
        """Remove the agent with this key."""
        self.conn.execute(_DELETE_CAPABILITIES, {"id": agent_id})
        self.conn.execute(_DELETE_STATE_TOOL, {"id": agent_id})
        return self.conn.execute(_DELETE_AGENT, {"id": agent_id}).rowcount > 0

    def own_agents(self) -> list[Agent]:
        """This node's agents only: a file another node wrote never makes them ours."""
        query = sa.select(agents).where(agents.c.node_id == self.node_id)
        return [_agent(row) for row in self.conn.execute(query).all()]

    def state_tools(self) -> dict[str, str]:
        """Agent key to its state tool binding, for the agents that have one."""
        rows = self.conn.execute(sa.select(agent_state_tools)).all()
        return {row.agent_id: row.tool for row in rows}

    def save_replica(
        self,
        stored: Sequence[AgentRecord],
        forgotten: Sequence[tuple[str, str]],
        heads: Sequence[tuple[Head, int]],
        gone: Sequence[str] = (),
        whole: bool = False,
    ) -> None:
        """Other owners' records and heads (with floors), as the replica now holds them.

        ``whole``: these are all of them; what else the file holds goes.
        """
        if whole:
            self.conn.execute(sa.delete(registry_entries))
            self.conn.execute(sa.delete(registry_owners))
        for owner in gone:
            self.conn.execute(sa.delete(registry_entries).where(registry_entries.c.owner == owner))
            self.conn.execute(sa.delete(registry_owners).where(registry_owners.c.owner == owner))
        if forgotten:
            self.conn.execute(_FORGET_ENTRY, [{"o": o, "a": a} for o, a in forgotten])
        if stored:
            rows = [
                {
                    "owner": r.owner,
                    "agent_id": r.key,
                    "version": r.version,
                    "capabilities": ujson.dumps(list(r.capabilities)),
                    "changed_at": r.changed_at,
                    "deleted": r.deleted,
                    "card": r.card,
                }
                for r in stored
            ]
            self.conn.execute(_SAVE_ENTRY, rows)
        if heads:
            rows = [{"owner": h.name, "head": h.version, "floor": floor} for h, floor in heads]
            self.conn.execute(_SAVE_OWNER, rows)

    def load_replica(self) -> tuple[list[AgentRecord], list[tuple[Head, int]]]:
        records = [
            AgentRecord(
                r.owner,
                split_key(r.agent_id)[1],
                r.version,
                tuple(ujson.loads(r.capabilities)),
                r.changed_at,
                bool(r.deleted),
                split_key(r.agent_id)[0],
                r.card,
            )
            for r in self.conn.execute(sa.select(registry_entries)).all()
        ]
        owners = self.conn.execute(sa.select(registry_owners)).all()
        return records, [(Head(r.owner, r.head), r.floor) for r in owners]

    # conversations

    def create_conversation(
        self, conversation_id: str, participants: tuple[str, ...]
    ) -> Conversation | None:
        """The new conversation, or None when the id is taken."""
        if self.get_conversation(conversation_id) is not None:
            return None
        record = Conversation(conversation_id, participants, self.now, self.now)
        self.conn.execute(
            sa.insert(conversations).values(
                id=conversation_id,
                participants=ujson.dumps(list(participants)),
                created_at=self.now,
                last_activity=self.now,
            )
        )
        return record

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        row = self.conn.execute(
            sa.select(conversations).where(conversations.c.id == conversation_id)
        ).first()
        return None if row is None else _conversation(row)

    def touch_conversation(self, conversation_id: str) -> Conversation | None:
        self.conn.execute(
            sa.update(conversations)
            .where(conversations.c.id == conversation_id)
            .values(last_activity=sa.func.max(conversations.c.last_activity, self.now))
        )
        return self.get_conversation(conversation_id)

    # correlations (pending_messages)

    def _live(self, correlation_id: str) -> bool:
        """Whether the correlation is there and its monotonic deadline has not come."""
        if correlation_id in self.changed:
            at = self.changed[correlation_id]
        else:
            at = self.deadlines.get(correlation_id)
        return at is not None and at > self.monotonic

    def create_correlation(
        self, correlation_id: str, sender_id: str, ttl_ms: int
    ) -> Correlation | None:
        """The new correlation, or None when a live one has the id."""
        if self._live(correlation_id):
            return None
        record = Correlation(correlation_id, sender_id, self.now, self.now + ttl_ms)
        self.changed[correlation_id] = self.monotonic + ttl_ms / 1000
        self.conn.execute(
            sa.insert(pending_messages)
            .prefix_with("OR REPLACE")  # an expired one the reaper has not swept yet
            .values(
                correlation_id=correlation_id,
                sender_id=sender_id,
                created_at=record.created_at,
                expires_at=record.expires_at,
            )
        )
        return record

    def get_correlation(self, correlation_id: str) -> Correlation | None:
        """The live correlation; an expired one is gone even before the reaper runs."""
        if not self._live(correlation_id):
            return None
        row = self.conn.execute(
            sa.select(pending_messages).where(pending_messages.c.correlation_id == correlation_id)
        ).first()
        return None if row is None else _correlation(row)

    def delete_correlation(self, correlation_id: str) -> bool:
        if not self._live(correlation_id):
            return False
        deleted = self.conn.execute(
            sa.delete(pending_messages).where(pending_messages.c.correlation_id == correlation_id)
        )
        self.changed[correlation_id] = None
        return deleted.rowcount > 0

    def reap_correlations(self) -> int:
        """Delete the correlations whose monotonic deadline has come."""
        due = [i for i in self.deadlines.due(self.monotonic) if i not in self.changed]
        due += [i for i, at in self.changed.items() if at is not None and at <= self.monotonic]
        reaped = 0
        for start in range(0, len(due), _REAP_CHUNK):
            chunk = due[start : start + _REAP_CHUNK]
            where = pending_messages.c.correlation_id.in_(chunk)
            reaped += self.conn.execute(sa.delete(pending_messages).where(where)).rowcount
        self.changed.update(dict.fromkeys(due))
        return reaped

    def load_correlations(self) -> int:
        """Take the file's correlations at start: each gets the time it had left on the wall
        clock (the node's down time passes on no other), never more than its whole ttl, so
        a wall clock set back while the node was down cannot stretch one."""
        rows = self.conn.execute(sa.select(pending_messages)).all()
        for row in rows:
            ttl = max(0, row.expires_at - row.created_at)
            left = min(max(0, row.expires_at - self.now), ttl)
            self.changed[row.correlation_id] = self.monotonic + left / 1000
        return len(rows)

    def check(self) -> bool:
        return bool(self.conn.exec_driver_sql("SELECT 1").scalar_one() == 1)

    def probe_write(self) -> None:
        """A write that commits and changes nothing: the header's application id, set
        to Caxton's each time. The transaction's ``BEGIN IMMEDIATE`` fails on a lock held
        past the busy timeout, this statement on a read-only file, and the commit on a
        full disk: what a client's write would meet, found first. One page (4 KiB) goes
        to the WAL; no table grows."""
        self.conn.exec_driver_sql(f"PRAGMA application_id = {APPLICATION_ID}")


def _on_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # the driver's own BEGIN handling is off: see _on_begin
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _on_begin(conn: sa.Connection) -> None:
    """Take the write lock when the transaction starts, not halfway through it.

    pysqlite's legacy mode sends no BEGIN before reads or DDL; an explicit
    ``BEGIN IMMEDIATE`` makes each batch, and each migration with its version
    bump, one real transaction.
    """
    conn.exec_driver_sql("BEGIN IMMEDIATE")


class DatabaseInUse(StoreUnavailable):
    """Another running node holds this database file."""


def _lock(path: Path, node_id: str) -> int:
    """Hold ``<path>.lock`` for as long as the node runs: two nodes on one file would take
    each other's agents. The lock goes with the process, however it ends."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StoreUnavailable(f"cannot open the lock file {lock_path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DatabaseInUse(f"{path} is in use by another node ({holder})") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"node {node_id}, pid {os.getpid()}".encode(), 0)
    return fd


class Store:
    """One SQLite file, one connection, used from one thread only."""

    def __init__(self, path: Path, node_id: str) -> None:
        self._lock = _lock(path, node_id)
        url = sa.URL.create("sqlite", database=str(path))  # no URL parsing of the path
        self._engine = sa.create_engine(url, poolclass=sa.pool.StaticPool)
        sa.event.listen(self._engine, "connect", _on_connect)
        sa.event.listen(self._engine, "begin", _on_begin)
        self._node_id = node_id
        self._deadlines = Deadlines()
        # Each error names the file: it is the one line a person gets at start-up.
        try:
            self._conn = self._engine.connect()
            with self._conn.begin():
                migrate(self._conn)
        except SchemaError as exc:
            self._abandon()
            raise SchemaError(f"cannot use {path}: {exc}") from exc
        except sa.exc.SQLAlchemyError as exc:
            self._abandon()
            raise StoreUnavailable(f"cannot open {path}: {_reason(exc)}") from exc
        except ValueError as exc:  # a stored value the migration could not parse
            self._abandon()
            raise StoreUnavailable(f"cannot open {path}: a value is not JSON ({exc})") from exc

    def _abandon(self) -> None:
        self._engine.dispose()
        os.close(self._lock)

    def run_batch(
        self, requests: Sequence[Callable[[Tx], Any]], now: int, monotonic: float = 0.0
    ) -> list[Any]:
        """Run every request in one transaction; return their results.

        ``now`` is the wall clock in Unix ms, ``monotonic`` the monotonic clock in
        seconds (see :class:`Tx`; only correlations need it). A request that raises
        rolls the whole batch back, so either every write of the batch is committed or
        none is. A database error is raised as :class:`StoreUnavailable`.
        """
        try:
            with self._conn.begin():
                tx = Tx(self._conn, now, self._node_id, monotonic, self._deadlines)
                results = [request(tx) for request in requests]
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
            raise
        except sa.exc.SQLAlchemyError as exc:
            raise StoreUnavailable(_reason(exc)) from exc
        self._deadlines.apply(tx.changed)
        return results

    def close(self) -> None:
        self._conn.close()
        self._engine.dispose()
        os.close(self._lock)
