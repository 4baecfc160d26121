"""The state tool contract: store, retrieve, delete and list an agent's JSON state by key.

Caxton keeps no agent state itself; an agent may name a state tool, and every call
goes through :class:`StateTool`, which scopes each key to its agent (``agent:{id}/``,
the seed's prefix; ``scope:{scope}/agent:{id}/`` in a named registry scope) before a
backend sees it: one agent can never name another's keys.
A key is segments joined by ``/`` (Caxton's conventions: ``checkpoints/{agent}/latest``,
``checkpoints/{agent}/v{n}``, ``conversations/{id}/messages/{i}``); each segment is
letters, digits and ``._:@-``, never ``.`` or ``..``, so a key maps safely to a path.

Backends are blocking and store bytes (a value's JSON text); they run off the gevent
hub, on a worker thread (see ``state/service.py``). What a tool's ``{type, config}``
may say is checked in ``state/specs.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import ujson

MAX_KEY_LENGTH = 512
MAX_VALUE_BYTES = 1024 * 1024
MAX_BATCH = 100
_SEGMENT = re.compile(r"[A-Za-z0-9_:@-][A-Za-z0-9._:@-]{0,127}")
# An agent's id, or its registry key in a named scope (``records.key_of``): what a tool's
# client (the node, or whoever calls ``state-tool serve``) may name.
_AGENT = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}/)?[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")

TOOL_TYPES = ("filesystem", "redis", "postgres", "s3", "mcp")
TOOL_KINDS = ("bad_key", "bad_value", "unavailable", "backend", "timeout")
"""The kinds of ``StateError``, in the order of the docstring below."""

Json = Any
"""A value that ``ujson`` round-trips: dict, list, str, int, float, bool or None."""


class StateError(Exception):
    """A state call that failed; ``kind`` says whose fault, for the HTTP status.

    ``bad_key`` and ``bad_value``: the caller's (400); ``unavailable``: the tool cannot be
    used at all, such as a missing extra (502); ``backend``: the store failed (502);
    ``timeout``: it did not answer in time (504).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def check_key(key: object, what: str = "key") -> str:
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH:
        raise StateError("bad_key", f"{what} must be a string of 1 to {MAX_KEY_LENGTH} characters")
    for segment in key.split("/"):
        if not _SEGMENT.fullmatch(segment):
            raise StateError(
                "bad_key",
                f"{what} {key!r}: each '/'-separated part must be 1 to 128 letters, digits or "
                "'._:@-', not starting with '.'",
            )
    return key


def check_prefix(prefix: object) -> str:
    """A prefix is a key, a key ending in ``/``, or empty (everything)."""
    if prefix == "":
        return ""
    if isinstance(prefix, str) and prefix.endswith("/"):
        return check_key(prefix[:-1], "prefix") + "/"
    return check_key(prefix, "prefix")


def encode_value(value: Json) -> bytes:
    try:
        data = ujson.dumps(value, ensure_ascii=False, reject_bytes=True).encode()
    except (TypeError, OverflowError, ValueError) as exc:
        raise StateError("bad_value", f"value is not JSON: {exc}") from None
    if len(data) > MAX_VALUE_BYTES:
        raise StateError("bad_value", f"value is {len(data)} bytes; at most {MAX_VALUE_BYTES}")
    return data


def scope(agent_id: str) -> str:
    """The prefix of an agent's keys: ``agent:ID/``, or ``scope:SCOPE/agent:ID/`` for an
    agent of a named registry scope (its id here is its registry key, ``SCOPE/ID``). For
    valid ids and scopes (no ``/`` in either) no agent's prefix begins another's, though
    keys may hold ``/``: agent ``team`` cannot reach the keys of agent ``x`` of scope
    ``team``."""
    if not isinstance(agent_id, str) or not _AGENT.fullmatch(agent_id):
        raise StateError("bad_key", f"{agent_id!r} is not an agent id (or scope/id)")
    registry_scope, slash, name = agent_id.rpartition("/")
    return f"scope:{registry_scope}/agent:{name}/" if slash else f"agent:{agent_id}/"


class Backend(Protocol):
    """Bytes by key, blocking. Keys arrive scoped and checked."""

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes | None: ...

    def delete(self, key: str) -> bool: ...

    def keys(self, prefix: str) -> list[str]:
        """Every key starting with ``prefix``, sorted."""
        ...

    def close(self) -> None: ...


class Tool(Protocol):
    """What a node calls on an agent's state tool, whatever serves it."""

    def store(self, agent_id: str, key: str, value: Json) -> None: ...

    def retrieve(self, agent_id: str, key: str) -> tuple[bool, Json]: ...

    def delete(self, agent_id: str, key: str) -> bool: ...

    def list(self, agent_id: str, prefix: str = "") -> list[str]: ...

    def store_batch(self, agent_id: str, items: Mapping[str, Json]) -> None: ...

    def retrieve_batch(self, agent_id: str, keys: Sequence[str]) -> dict[str, Json]: ...

    def close(self) -> None: ...


class StateTool:
    """One backend, seen per agent: JSON values, scoped keys, batch forms."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def store(self, agent_id: str, key: str, value: Json) -> None:
        self.backend.put(scope(agent_id) + check_key(key), encode_value(value))

    def retrieve(self, agent_id: str, key: str) -> tuple[bool, Json]:
        """(found, value): a stored ``null`` is found."""
        data = self.backend.get(scope(agent_id) + check_key(key))
        return (False, None) if data is None else (True, ujson.loads(data))

    def delete(self, agent_id: str, key: str) -> bool:
        return self.backend.delete(scope(agent_id) + check_key(key))

    def list(self, agent_id: str, prefix: str = "") -> list[str]:
        base = scope(agent_id)
        return [k[len(base) :] for k in self.backend.keys(base + check_prefix(prefix))]

    def store_batch(self, agent_id: str, items: Mapping[str, Json]) -> None:
        _batch_size(items)
        encoded = {scope(agent_id) + check_key(k): encode_value(v) for k, v in items.items()}
        for key, data in encoded.items():  # every key and value checked before any write
            self.backend.put(key, data)

    def retrieve_batch(self, agent_id: str, keys: Sequence[str]) -> dict[str, Json]:
        """The found ones only."""
        _batch_size(keys)
        found = {}
        for key in [check_key(k) for k in keys]:
            data = self.backend.get(scope(agent_id) + key)
            if data is not None:
                found[key] = ujson.loads(data)
        return found

    def close(self) -> None:
        self.backend.close()


def _batch_size(items: Sequence[str] | Mapping[str, Json]) -> None:
    if not 0 < len(items) <= MAX_BATCH:
        raise StateError("bad_key", f"a batch holds 1 to {MAX_BATCH} keys")
