"""The node's SQLite schema, its version and the steps that migrate to it.

The seed's three tables keep their columns, and ``agents`` gains ``card``. Times are
Unix epoch milliseconds. ``agent_capabilities`` makes a lookup by capability an index
range scan instead of a scan over JSON text. An agent's id column holds its registry
key (``records.key_of``): the id itself in the default scope, ``scope/id`` in another.

The schema version lives in ``PRAGMA user_version``. Version 0 is a file made
by the seed's own SQL (or a new, empty file); each step in ``MIGRATIONS`` takes
a file one version up, inside the same transaction as the version bump.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
import ujson

metadata = sa.MetaData()

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("node_id", sa.Text, nullable=False),
    sa.Column("capabilities", sa.Text, nullable=False),  # JSON array
    sa.Column("last_seen", sa.Integer, nullable=False),
    sa.Column("status", sa.Text, server_default="active"),
    sa.Column("card", sa.Text),  # the A2A AgentCard, compact JSON; NULL: none
)

agent_capabilities = sa.Table(
    "agent_capabilities",
    metadata,
    sa.Column("capability", sa.Text, primary_key=True),
    sa.Column(
        "agent_id",
        sa.Text,
        sa.ForeignKey("agents.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Index("ix_agent_capabilities_agent", "agent_id"),
)

conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("participants", sa.Text, nullable=False),  # JSON array of agent ids
    sa.Column("created_at", sa.Integer, nullable=False),
    sa.Column("last_activity", sa.Integer, nullable=False),
)

pending_messages = sa.Table(
    "pending_messages",
    metadata,
    sa.Column("correlation_id", sa.Text, primary_key=True),
    sa.Column("sender_id", sa.Text, nullable=False),
    sa.Column("created_at", sa.Integer, nullable=False),
    sa.Column("expires_at", sa.Integer, nullable=False),
    sa.Index("ix_pending_messages_expires_at", "expires_at"),
)


registry_entries = sa.Table(
    "registry_entries",
    metadata,
    sa.Column("owner", sa.Text, primary_key=True),
    sa.Column("agent_id", sa.Text, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("capabilities", sa.Text, nullable=False),  # JSON array
    sa.Column("changed_at", sa.Integer, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False),
    sa.Column("card", sa.Text),
)
"""Other nodes' agents, as gossip brought them (this node's own are in ``agents``)."""

registry_owners = sa.Table(
    "registry_owners",
    metadata,
    sa.Column("owner", sa.Text, primary_key=True),
    sa.Column("head", sa.Integer, nullable=False),
    sa.Column("floor", sa.Integer, nullable=False),
)
"""How far this node knows each other owner: see ``registry/replica.py``."""


agent_state_tools = sa.Table(
    "agent_state_tools",
    metadata,
    sa.Column(
        "agent_id", sa.Text, sa.ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("tool", sa.Text, nullable=False),
)
"""The state tool each of this node's agents uses: a configured name, or {type, config}."""


class SchemaError(Exception):
    """The file's schema is one this code cannot use."""


def _v1_seed_tables_and_capability_index(conn: sa.Connection) -> None:
    """Create what is missing and index the capabilities of agents already stored."""
    seed = [agents, agent_capabilities, conversations, pending_messages]
    metadata.create_all(conn, tables=seed)
    rows = conn.execute(sa.select(agents.c.id, agents.c.capabilities)).all()
    pairs = [
        {"agent_id": agent_id, "capability": cap}
        for agent_id, caps in rows
        for cap in set(_json_list(caps))
    ]
    if pairs:
        conn.execute(sa.insert(agent_capabilities).prefix_with("OR IGNORE"), pairs)


def _json_list(text: str) -> list[str]:
    value = ujson.loads(text)
    return [str(item) for item in value] if isinstance(value, list) else []


def _v2_replicated_registry(conn: sa.Connection) -> None:
    registry_entries.create(conn)
    registry_owners.create(conn)


def _v3_agent_state_tools(conn: sa.Connection) -> None:
    agent_state_tools.create(conn)


def _v4_agent_cards(conn: sa.Connection) -> None:
    """``card`` on both agent tables (a file made since has it: earlier steps create the
    tables as they are now)."""
    for table in (agents, registry_entries):
        columns = {row[1] for row in conn.exec_driver_sql(f"PRAGMA table_info({table.name})")}
        if "card" not in columns:
            conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN card TEXT")


MIGRATIONS: tuple[Callable[[sa.Connection], None], ...] = (
    _v1_seed_tables_and_capability_index,
    _v2_replicated_registry,
    _v3_agent_state_tools,
    _v4_agent_cards,
)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sa.Connection) -> int:
    """Bring the file to ``SCHEMA_VERSION``; return the version it had."""
    found = int(conn.exec_driver_sql("PRAGMA user_version").scalar_one())
    if found > SCHEMA_VERSION:
        raise SchemaError(
            f"database schema version {found} is newer than this caxton-actors "
            f"understands ({SCHEMA_VERSION}); upgrade caxton-actors"
        )
    for version in range(found, SCHEMA_VERSION):
        MIGRATIONS[version](conn)
        conn.exec_driver_sql(f"PRAGMA user_version = {version + 1}")
    return found
