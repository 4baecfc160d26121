"""The SQLite store and its schema, on real files."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from caxton_actors.registry.records import AgentRecord, Head
from caxton_actors.registry.schema import SCHEMA_VERSION, SchemaError
from caxton_actors.registry.store import Agent, Store, StoreUnavailable, Tx

# The seed's own SQL, as a version-0 file would hold it.
SEED_SQL = """
CREATE TABLE agents (id TEXT PRIMARY KEY, node_id TEXT NOT NULL,
    capabilities TEXT NOT NULL, last_seen INTEGER NOT NULL, status TEXT DEFAULT 'active');
CREATE TABLE conversations (id TEXT PRIMARY KEY, participants TEXT NOT NULL,
    created_at INTEGER NOT NULL, last_activity INTEGER NOT NULL);
CREATE TABLE pending_messages (correlation_id TEXT PRIMARY KEY, sender_id TEXT NOT NULL,
    created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
INSERT INTO agents VALUES ('old-1', 'n0', '["search","chat"]', 5, 'active');
INSERT INTO agents VALUES ('old-2', 'n0', '["chat"]', 6, 'active');
"""


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "state.db", "node-a")


def run(
    store: Store, now: int, *requests: Callable[[Tx], Any], monotonic: float | None = None
) -> list[Any]:
    """One batch at wall clock ``now`` (ms); the monotonic clock reads the same unless given."""
    return store.run_batch(requests, now, now / 1000 if monotonic is None else monotonic)


def by_capability(path: Path, capability: str) -> list[str]:
    """What an operator's SQL finds through the capability index."""
    raw = sqlite3.connect(path)
    try:
        rows = raw.execute(
            "SELECT agent_id FROM agent_capabilities WHERE capability = ? ORDER BY agent_id",
            (capability,),
        ).fetchall()
    finally:
        raw.close()
    return [r[0] for r in rows]


def test_new_file_gets_current_schema_and_wal(tmp_path: Path) -> None:
    Store(tmp_path / "state.db", "n").close()
    raw = sqlite3.connect(tmp_path / "state.db")
    assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"agents", "conversations", "pending_messages", "agent_capabilities"} <= tables


def test_seed_file_migrates_and_its_agents_are_found_by_capability(tmp_path: Path) -> None:
    path = tmp_path / "seed.db"
    raw = sqlite3.connect(path)
    raw.executescript(SEED_SQL)
    raw.close()
    store = Store(path, "n0")
    (own,) = run(store, 10, Tx.own_agents)
    assert {a.id: a.capabilities for a in own} == {
        "old-1": ("search", "chat"),
        "old-2": ("chat",),
    }
    store.close()
    assert by_capability(path, "chat") == ["old-1", "old-2"]
    assert by_capability(path, "search") == ["old-1"]


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(SchemaError, match="newer"):
        Store(path, "n")


def test_a_file_that_is_not_a_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "not-a-db.db"
    path.write_bytes(b"this is not an sqlite file" * 100)
    with pytest.raises(
        StoreUnavailable, match=r"cannot open .*not-a-db\.db: file is not a database"
    ):
        Store(path, "n")


def test_a_locked_database_is_unavailable_and_says_so(store: Store, tmp_path: Path) -> None:
    holder = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with pytest.raises(StoreUnavailable, match=r"^database is locked$"):
            run(store, 1, lambda tx: tx.put_agent("x", ()))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    (written,) = run(store, 2, lambda tx: tx.put_agent("x", ()))
    assert written.created


def test_put_update_and_the_capability_index(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = Store(path, "node-a")
    put = [
        lambda tx, i=i: tx.put_agent(f"a{i:03d}", ("x",) if i % 2 else ("y",)) for i in range(10)
    ]
    results = store.run_batch(put, 100)
    assert all(w.created for w in results)
    (updated,) = run(store, 200, lambda tx: tx.put_agent("a001", ("y", "z")))
    assert not updated.created
    assert updated.record == Agent("a001", "node-a", ("y", "z"), 200, "active")
    store.close()
    assert by_capability(path, "y") == ["a000", "a001", "a002", "a004", "a006", "a008"]
    assert by_capability(path, "x") == ["a003", "a005", "a007", "a009"]


def test_delete_removes_agent_and_its_capabilities(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = Store(path, "node-a")
    run(store, 1, lambda tx: tx.put_agent("gone", ("c",)))
    results = store.run_batch(
        [lambda tx: tx.delete_agent("gone"), lambda tx: tx.delete_agent("gone")], 2
    )
    assert results == [True, False]
    assert run(store, 3, Tx.own_agents) == [[]]
    store.close()
    assert by_capability(path, "c") == []


def test_a_failing_request_rolls_back_the_whole_batch(store: Store) -> None:
    def explode(tx: Tx) -> None:
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        store.run_batch([lambda tx: tx.put_agent("half", ("c",)), explode], 1)
    assert run(store, 2, Tx.own_agents) == [[]]


def test_correlations_expire_before_and_after_reaping(store: Store) -> None:
    (created,) = run(store, 1000, lambda tx: tx.create_correlation("c1", "s", 500))
    assert created is not None
    assert run(store, 1200, lambda tx: tx.create_correlation("c1", "s", 500)) == [None]
    assert run(store, 1499, lambda tx: tx.get_correlation("c1")) != [None]
    assert run(store, 1500, lambda tx: tx.get_correlation("c1")) == [None]
    # Expired but not yet reaped: the id can be used again.
    (again,) = run(store, 1600, lambda tx: tx.create_correlation("c1", "t", 100))
    assert again is not None
    assert run(store, 1800, lambda tx: tx.reap_correlations()) == [1]


def test_a_wall_clock_jump_expires_no_correlation_the_monotonic_deadline_does(
    store: Store,
) -> None:
    hour, half_hour = 3600 * 1000, 1800 * 1000
    (created,) = run(
        store, 10_000, lambda tx: tx.create_correlation("c1", "s", half_hour), monotonic=5.0
    )
    assert created.expires_at == 10_000 + half_hour  # the wall clock, for display
    # The wall clock jumps an hour ahead; one second has passed.
    jumped = 10_000 + hour
    assert run(store, jumped, lambda tx: tx.get_correlation("c1"), monotonic=6.0) == [created]
    assert run(store, jumped, Tx.reap_correlations, monotonic=6.0) == [0]
    assert run(store, jumped, lambda tx: tx.create_correlation("c1", "t", 1), monotonic=6.0) == [
        None
    ]
    # Thirty minutes on the monotonic clock: it is gone, then reaped.
    assert run(store, jumped, lambda tx: tx.get_correlation("c1"), monotonic=1805.0) == [None]
    assert run(store, jumped, Tx.reap_correlations, monotonic=1805.0) == [1]


def test_correlations_in_the_file_keep_what_time_they_had_left_and_no_more(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = Store(path, "n")
    minute = 60_000
    run(
        first,
        100 * minute,
        lambda tx: tx.create_correlation("short", "s", 10 * minute),
        lambda tx: tx.create_correlation("long", "s", 30 * minute),
        lambda tx: tx.create_correlation("past", "s", minute),
        monotonic=1.0,
    )
    first.close()
    again = Store(path, "n")  # back five minutes later (on the wall clock), a new monotonic clock
    assert run(again, 105 * minute, Tx.load_correlations, monotonic=50.0) == [3]
    live = [lambda tx, i=i: tx.get_correlation(i) is not None for i in ("short", "long", "past")]
    assert run(again, 0, *live, monotonic=50.0 + 4 * 60) == [True, True, False]
    assert run(again, 0, *live, monotonic=50.0 + 5 * 60) == [False, True, False]
    assert run(again, 0, Tx.reap_correlations, monotonic=50.0 + 5 * 60) == [2]
    # A wall clock set back while the node was down gives none more than its whole ttl.
    run(again, 0, lambda tx: tx.create_correlation("again", "s", minute), monotonic=60.0)
    again.close()
    third = Store(path, "n")
    run(third, -10 * minute, Tx.load_correlations, monotonic=0.0)
    assert run(third, 0, lambda tx: tx.get_correlation("again"), monotonic=60.0) == [None]


def test_conversation_activity_never_moves_back(store: Store) -> None:
    run(store, 50, lambda tx: tx.create_conversation("conv", ("a", "b")))
    assert run(store, 60, lambda tx: tx.create_conversation("conv", ("a",))) == [None]
    (touched,) = run(store, 40, lambda tx: tx.touch_conversation("conv"))
    assert touched.last_activity == 50
    (touched,) = run(store, 90, lambda tx: tx.touch_conversation("conv"))
    assert touched.last_activity == 90
    assert touched.participants == ("a", "b")


def test_data_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = Store(path, "n")
    run(first, 1, lambda tx: tx.put_agent("kept", ("c",)))
    first.close()
    again = Store(path, "n")
    (own,) = run(again, 2, Tx.own_agents)
    assert [a.id for a in own] == ["kept"]


def test_the_replica_of_other_nodes_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = Store(path, "a")
    records = (
        AgentRecord("b", "x", 7, ("chat",), 1000),
        AgentRecord("b", "y", 8, (), 1001, deleted=True),
        AgentRecord("c", "z", 3, (), 1002),
    )
    heads = ((Head("b", 8), 2), (Head("c", 3), 0))
    run(first, 1, lambda tx: tx.save_replica(records, (), heads))
    run(first, 2, lambda tx: tx.save_replica((), (("b", "x"),), ((Head("b", 9), 2),), ("c",)))
    first.close()
    again = Store(path, "a")
    ((kept, owners),) = run(again, 3, Tx.load_replica)
    assert kept == [records[1]]
    assert owners == [(Head("b", 9), 2)]


def test_a_path_with_url_characters_is_taken_literally(tmp_path: Path) -> None:
    path = tmp_path / "a?mode=ro%41#b.db"
    store = Store(path, "n")
    run(store, 1, lambda tx: tx.put_agent("x", ()))
    store.close()
    assert path.exists()


# A version-3 file: the tables as they were before cards, by hand.
V3_SQL = """
CREATE TABLE agents (id TEXT PRIMARY KEY, node_id TEXT NOT NULL,
    capabilities TEXT NOT NULL, last_seen INTEGER NOT NULL, status TEXT DEFAULT 'active');
CREATE TABLE agent_capabilities (capability TEXT NOT NULL,
    agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    PRIMARY KEY (capability, agent_id));
CREATE INDEX ix_agent_capabilities_agent ON agent_capabilities (agent_id);
CREATE TABLE conversations (id TEXT PRIMARY KEY, participants TEXT NOT NULL,
    created_at INTEGER NOT NULL, last_activity INTEGER NOT NULL);
CREATE TABLE pending_messages (correlation_id TEXT PRIMARY KEY, sender_id TEXT NOT NULL,
    created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
CREATE INDEX ix_pending_messages_expires_at ON pending_messages (expires_at);
CREATE TABLE registry_entries (owner TEXT NOT NULL, agent_id TEXT NOT NULL,
    version INTEGER NOT NULL, capabilities TEXT NOT NULL, changed_at INTEGER NOT NULL,
    deleted BOOLEAN NOT NULL, PRIMARY KEY (owner, agent_id));
CREATE TABLE registry_owners (owner TEXT PRIMARY KEY, head INTEGER NOT NULL,
    floor INTEGER NOT NULL);
CREATE TABLE agent_state_tools (agent_id TEXT PRIMARY KEY
    REFERENCES agents (id) ON DELETE CASCADE, tool TEXT NOT NULL);
INSERT INTO agents VALUES ('old-1', 'n0', '["search"]', 5, 'active');
INSERT INTO agent_capabilities VALUES ('search', 'old-1');
INSERT INTO agent_state_tools VALUES ('old-1', 'kv');
INSERT INTO registry_entries VALUES ('n1', 'peer-1', 7, '["chat"]', 1000, 0);
INSERT INTO registry_owners VALUES ('n1', 7, 2);
PRAGMA user_version = 3;
"""

CARD = '{"name":"Chef","description":"料理.","skills":[{"id":"menus","tags":["cooking"]}]}'


def test_a_version_3_file_gains_card_columns_and_keeps_its_agents(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    raw = sqlite3.connect(path)
    raw.executescript(V3_SQL)
    raw.close()
    store = Store(path, "n0")
    (own, (records, owners), tools) = run(store, 10, Tx.own_agents, Tx.load_replica, Tx.state_tools)
    assert own == [Agent("old-1", "n0", ("search",), 5, "active")]
    assert records == [AgentRecord("n1", "peer-1", 7, ("chat",), 1000)]
    assert owners == [(Head("n1", 7), 2)]
    assert tools == {"old-1": "kv"}
    run(store, 11, lambda tx: tx.put_agent("old-1", ("search",), card=CARD))
    (own,) = run(store, 12, Tx.own_agents)
    assert [a.card for a in own] == [CARD]
    store.close()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    for table in ("agents", "registry_entries"):
        assert "card" in {row[1] for row in raw.execute(f"PRAGMA table_info({table})")}
    raw.close()
    assert by_capability(path, "search") == ["old-1"]


def test_own_agents_keep_their_scope_and_card(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = Store(path, "n")
    (team, plain) = run(
        first,
        1,
        lambda tx: tx.put_agent("team/x", ("menus",), card=CARD),
        lambda tx: tx.put_agent("x", ("c",)),
    )
    assert (team.created, team.record.id, team.record.scope) == (True, "x", "team")
    assert (plain.record.scope, plain.record.card) == ("default", None)
    first.close()
    again = Store(path, "n")
    (own,) = run(again, 2, Tx.own_agents)
    assert sorted((a.scope, a.id, a.card) for a in own) == [
        ("default", "x", None),
        ("team", "x", CARD),
    ]
    (deleted,) = run(again, 3, lambda tx: tx.delete_agent("team/x"))
    assert deleted
    (own,) = run(again, 4, Tx.own_agents)
    assert [(a.scope, a.id) for a in own] == [("default", "x")]
    again.close()
    assert by_capability(path, "c") == ["x"]


def test_replica_records_keep_their_scope_and_card(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = Store(path, "a")
    records = (
        AgentRecord("b", "x", 7, ("menus",), 1000, scope="team", card=CARD),
        AgentRecord("b", "x", 8, (), 1001, card=CARD),  # the same id in the default scope
        AgentRecord("b", "y", 9, (), 1002, deleted=True, scope="team"),
    )
    heads = ((Head("b", 9), 0),)
    run(first, 1, lambda tx: tx.save_replica(records, (), heads))
    first.close()
    again = Store(path, "a")
    ((kept, owners),) = run(again, 2, Tx.load_replica)
    assert sorted(kept, key=lambda r: r.version) == list(records)
    assert owners == [(Head("b", 9), 0)]
    run(again, 3, lambda tx: tx.save_replica((), (("b", "team/x"),), heads))
    ((kept, _),) = run(again, 4, Tx.load_replica)
    assert sorted(kept, key=lambda r: r.version) == list(records[1:])
