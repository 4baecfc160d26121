"""What nodes tell each other about agents: the registry's gossip vocabulary.

Each node is the authority for its own agents and numbers its changes with a
version that only rises. ``Head`` says how far a node's knowledge of one owner
goes; heads ride piggybacked on SWIM packets (and all of them on a full-state
exchange), and a node that hears of a head it lacks pulls the difference from
whoever told it: ``RegistryPull`` with its own versions, answered by an
``AgentUpdate`` holding only the records it is missing.
"""

from __future__ import annotations

from dataclasses import dataclass


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

    ``live`` names, for an owner the asker was too far behind on, the ids of all that
    owner's live agents: the sender no longer holds every tombstone the asker may need,
    so the asker drops whatever else it holds of that owner up to the head.
    """

    records: tuple[AgentRecord, ...]
    heads: tuple[Head, ...]
    live: tuple[tuple[str, tuple[str, ...]], ...] = ()
