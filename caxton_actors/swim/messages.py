"""What SWIM nodes say to each other, and what the pure core asks its shell to do."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from caxton_actors.address import Address

Meta = tuple[tuple[str, str], ...]
"""Node metadata as sorted key/value pairs (immutable, so messages stay hashable)."""
HTTP_META_KEY = "http"
"""The metadata key of a node's HTTP address (host:port)."""


class State(Enum):
    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"
    LEFT = "left"


# Membership updates: disseminated piggybacked on other messages.


@dataclass(frozen=True, slots=True)
class Alive:
    name: str
    incarnation: int
    addr: Address
    meta: Meta = ()


@dataclass(frozen=True, slots=True)
class Suspect:
    name: str
    incarnation: int
    by: str


@dataclass(frozen=True, slots=True)
class Dead:
    name: str
    incarnation: int
    by: str


@dataclass(frozen=True, slots=True)
class Left:
    name: str
    incarnation: int


Update = Alive | Suspect | Dead | Left


# Failure detection.


@dataclass(frozen=True, slots=True)
class Ping:
    seq: int
    target: str


@dataclass(frozen=True, slots=True)
class Ack:
    seq: int


@dataclass(frozen=True, slots=True)
class Nack:
    """An intermediary's word that the target did not answer it either."""

    seq: int


@dataclass(frozen=True, slots=True)
class PingReq:
    """Ping ``target`` for me, at ``addr``, where I have it. The helper pings the address
    its own table has for it, and only when that is ``addr``: a packet cannot aim its pings
    anywhere else, and a member that came back at a new address cannot vouch for the old
    one (the asker, missing its leave, would keep a dead address alive for good)."""

    seq: int
    target: str
    addr: Address


@dataclass(frozen=True, slots=True)
class Gossip:
    """No payload: a carrier for piggybacked updates."""


# Full-state exchange.


@dataclass(frozen=True, slots=True)
class MemberRecord:
    name: str
    addr: Address
    incarnation: int
    state: State
    meta: Meta = ()


@dataclass(frozen=True, slots=True)
class StateSync:
    """The sender's whole member table; ``reply`` asks for the receiver's in return."""

    members: tuple[MemberRecord, ...]
    reply: bool


Message = Ping | Ack | Nack | PingReq | Gossip | StateSync


# Effects the core asks of its shell.


@dataclass(frozen=True, slots=True)
class Send:
    to: Address
    message: Message


@dataclass(frozen=True, slots=True)
class MemberChanged:
    """A member was seen for the first time, changed state, or changed its metadata."""

    member: MemberRecord
    previous: State | None


@dataclass(frozen=True, slots=True)
class ProbeFailed:
    """The prober got no ack, direct or indirect, within a protocol period."""

    name: str
    incarnation: int


@dataclass(frozen=True, slots=True)
class ProbeSucceeded:
    """An ack came back, directly or through another member, after ``rtt`` seconds."""

    name: str
    rtt: float


@dataclass(frozen=True, slots=True)
class NameConflict:
    """Another live process claims this node's name from ``addr``."""

    addr: Address


@dataclass(frozen=True, slots=True)
class Refuted:
    """This node was suspected and answered with a higher incarnation."""

    incarnation: int


@dataclass(frozen=True, slots=True)
class Ignored:
    """A claim refused as out of bounds; ``reason`` is a fixed word, counted by the shell."""

    reason: str


Effect = Send | MemberChanged | NameConflict | ProbeFailed | ProbeSucceeded | Refuted | Ignored
