"""What nodes tell each other about agents: the registry's gossip vocabulary.

Each node is the authority for its own agents and numbers its changes with a
version that only rises. ``Head`` says how far a node's knowledge of one owner
goes; heads ride piggybacked on SWIM packets (and all of them on a full-state
exchange), and a node that hears of a head it lacks pulls the difference from
whoever told it: ``RegistryPull`` with its own versions, answered by an
``AgentUpdate`` holding only the records it is missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_SCOPE = "default"
"""The scope of an agent registered without one."""
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"
"""What an agent id, a capability and a scope may be (ids 1 to 128 characters, scopes 1 to
64): no ``/``, so ``key_of`` is unambiguous."""


def key_of(scope: str, agent_id: str) -> str:
    """The registry's key for an agent: its id in the default scope, ``scope/id`` in another
    (neither may hold a ``/``). The default scope's keys are the ids they always were, in
    the file and on the wire."""
    return agent_id if scope == DEFAULT_SCOPE else f"{scope}/{agent_id}"


def split_key(key: str) -> tuple[str, str]:
    """(scope, agent id) of a key made by :func:`key_of`."""
    scope, slash, agent_id = key.rpartition("/")
    return (scope, agent_id) if slash else (DEFAULT_SCOPE, key)


_TOKEN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]{0,62}):([1-9][0-9]{0,18})")
"""A node name, and a version: above 0, within 64 bits (``int`` raises on 4,301 digits)."""


def token(owner: str, version: int) -> str:
    """A read-your-writes token: a read given it waits until its node has merged
    ``owner`` up to ``version``."""
    return f"{owner}:{version}"


def parse_token(text: str) -> tuple[str, int] | None:
    """(owner, version) of a :func:`token`, or None when ``text`` is not one."""
    found = _TOKEN.fullmatch(text)
    return None if found is None else (found[1], int(found[2]))


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """One owner's word about one agent, as of the owner's ``version``."""

    owner: str
    agent_id: str
    version: int
    capabilities: tuple[str, ...]
    changed_at: int
    """Unix epoch milliseconds, set by the owner: when it registered or removed the agent.
    Shown, never compared: between owners the version decides (``replica.py``)."""
    deleted: bool = False
    """A tombstone: the owner removed the agent."""
    scope: str = DEFAULT_SCOPE
    card: str | None = None
    """The agent's A2A AgentCard as compact JSON text (``cards.py``), or None."""

    @property
    def key(self) -> str:
        return key_of(self.scope, self.agent_id)


@dataclass(frozen=True, slots=True)
class Head:
    """This node knows everything ``name`` (an owner) did up to ``version``."""

    name: str
    version: int


@dataclass(frozen=True, slots=True)
class RegistryPull:
    """The asker's heads for the owners it wants: send me what I lack beyond these."""

    heads: tuple[Head, ...]


@dataclass(frozen=True, slots=True)
class AgentUpdate:
    """The records an asker lacks, and the heads they bring it up to.

    ``live`` names, for an owner the asker was too far behind on, the keys of all that
    owner's live agents: the sender no longer holds every tombstone the asker may need,
    so the asker drops whatever else it holds of that owner up to the head.
    """

    records: tuple[AgentRecord, ...]
    heads: tuple[Head, ...]
    live: tuple[tuple[str, tuple[str, ...]], ...] = ()
