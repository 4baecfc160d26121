"""What the engine's stages say to each other and ask of their shell.

A packet is the envelope of one datagram or stream message. Every stage input is an
immutable message; a stage answers with outputs: a :class:`Hop` for another stage
(its shell forwards it verbatim, to an actor or to the simulator's mailbox), or an
effect only a shell can carry out (send a datagram, open a stream, answer one,
write to disk, count a drop, publish a member event).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from caxton_actors.address import Address
from caxton_actors.registry.records import (
    DEFAULT_SCOPE,
    AgentRecord,
    AgentUpdate,
    Head,
    RegistryPull,
)
from caxton_actors.registry.replica import Change
from caxton_actors.swim.messages import (
    MemberChanged,
    MemberRecord,
    Message,
    NameConflict,
    ProbeFailed,
    ProbeSucceeded,
    Refuted,
    Send,
    Update,
)
from caxton_actors.wire.keyring import KeyringOffer, KeyringReply, KeyringRequest


class Stage(IntEnum):
    """The engine's parts; in a node each is one actor's.

    An ``IntEnum`` because the simulator keys dicts by stage millions of times, and an
    ``Enum`` hashes in Python (a tenth of its run time at 512 nodes).
    """

    MEMBERSHIP = 1
    DETECTION = 2
    REGISTRY = 3


WireMessage = Message | RegistryPull | AgentUpdate | KeyringRequest | KeyringReply | KeyringOffer
"""What a packet may carry: SWIM's messages, the registry's stream messages, and key
rotation (the membership actor's own, on streams)."""


@dataclass(frozen=True, slots=True)
class Packet:
    """One datagram, or one stream message (full-state exchange, registry pull, answer).

    It names no address: a reply goes where the packet came from (the transport says
    where), never to an address a peer wrote into it.
    """

    sender: str
    message: WireMessage
    piggyback: tuple[Update, ...] = ()
    heads: tuple[Head, ...] = ()
    """Registry heads the sender is spreading (all of them on a full-state exchange)."""
    sent_at: int | None = None
    """The sender's wall clock when it built the packet, Unix ms: only to find members
    whose clocks are off (``engine/skew.py``), never to decide anything."""


# Inputs, by the stage that takes them.


@dataclass(frozen=True, slots=True)
class Tick:
    """The stage's deadline has come (membership, detection) or housekeeping is due
    (registry)."""


@dataclass(frozen=True, slots=True)
class Inbound:
    """Membership: a datagram, or the answer to a stream this node opened."""

    packet: Packet
    source: Address
    """Where it came from: the datagram's source address, or the address we connected to."""
    answer: bool = False
    """The answer to a stream this node opened: only then is a pull's answer merged."""


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """Membership: a full-state exchange that arrived on a stream; answered with ours."""

    packet: Packet
    source: Address


@dataclass(frozen=True, slots=True)
class JoinCluster:
    """Membership: join through these seeds (already resolved: see wire/seeds.py)."""

    addresses: tuple[Address, ...]


@dataclass(frozen=True, slots=True)
class LeaveCluster:
    """Membership: say goodbye."""


@dataclass(frozen=True, slots=True)
class SpreadHeads:
    """Membership: heads to piggyback, and all of them for full-state exchanges."""

    news: tuple[Head, ...]
    digest: tuple[Head, ...]


@dataclass(frozen=True, slots=True)
class PullFrom:
    """Membership: ask ``source`` on a stream for what it knows beyond our heads."""

    source: Address
    pull: RegistryPull


@dataclass(frozen=True, slots=True)
class Probe:
    """Detection: probe traffic (ping, ack, nack, ping-req) that arrived from ``sender``."""

    sender: Address
    message: Message


@dataclass(frozen=True, slots=True)
class HeardHeads:
    """Registry: ``source`` knows these heads."""

    source: Address
    heads: tuple[Head, ...]


@dataclass(frozen=True, slots=True)
class MemberState:
    """Registry: a member is up (alive or suspect) or not, and its HTTP route."""

    name: str
    up: bool
    route: str | None


@dataclass(frozen=True, slots=True)
class Merge:
    """Registry: a peer's answer to our pull."""

    update: AgentUpdate


@dataclass(frozen=True, slots=True)
class AnswerPull:
    """Registry: a peer's pull, to be answered on its stream."""

    pull: RegistryPull


@dataclass(frozen=True, slots=True)
class Register:
    """This node registered (or updated) one of its own agents."""

    agent_id: str
    capabilities: tuple[str, ...]
    scope: str = DEFAULT_SCOPE
    card: str | None = None
    """The agent's A2A AgentCard, validated, as compact JSON text."""


@dataclass(frozen=True, slots=True)
class Deregister:
    """This node removed one of its own agents."""

    agent_id: str
    scope: str = DEFAULT_SCOPE


@dataclass(frozen=True, slots=True)
class Committed:
    """Registry: this node's own changes, committed to its file in one transaction
    (spread once, not once a change)."""

    changes: tuple[Register | Deregister, ...]


@dataclass(frozen=True, slots=True)
class Restarted:
    """Any stage: ``stage`` was built anew after its actor crashed, and knows only what
    its own disk kept; the stages it learns from tell it again (membership: every member
    to detection and the registry; the registry: every head to membership)."""

    stage: Stage


@dataclass(frozen=True, slots=True)
class MergeRest:
    """Membership to itself: the rest of a pushed table, merged after what was queued
    meanwhile (pings to ack); then the heads that came with it."""

    members: tuple[MemberRecord, ...]
    source: Address
    sender: str
    heads: tuple[Head, ...]


MembershipInput = (
    Tick
    | Inbound
    | SyncRequest
    | JoinCluster
    | LeaveCluster
    | Send
    | ProbeFailed
    | SpreadHeads
    | PullFrom
    | Restarted
    | MergeRest
)
DetectionInput = Tick | Probe | MemberChanged | Refuted | Restarted
RegistryInput = Tick | HeardHeads | MemberState | Merge | AnswerPull | Committed | Restarted
StageInput = MembershipInput | DetectionInput | RegistryInput


# Outputs.


@dataclass(frozen=True, slots=True)
class Hop:
    """An input for another stage: its shell forwards it as it is."""

    stage: Stage
    message: StageInput


@dataclass(frozen=True, slots=True)
class Transmit:
    """Send one datagram."""

    to: Address
    packet: Packet


@dataclass(frozen=True, slots=True)
class Exchange:
    """Open a stream to ``to`` with ``packet``; its answer comes back as :class:`Inbound`."""

    to: Address
    packet: Packet


@dataclass(frozen=True, slots=True)
class Answer:
    """The reply on the stream that brought the request (None: close it unanswered)."""

    packet: Packet | None


@dataclass(frozen=True, slots=True)
class Persist:
    """Other owners' records as the replica now holds them: to be written to disk."""

    stored: tuple[AgentRecord, ...]
    forgotten: tuple[tuple[str, str], ...]
    heads: tuple[tuple[Head, int], ...]
    gone: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Changed:
    """What registry reads now show differently, in order: for watches."""

    changes: tuple[Change, ...]


@dataclass(frozen=True, slots=True)
class Dropped:
    """Input refused; ``reason`` is a fixed word, counted by the shell."""

    reason: str
    count: int = 1


@dataclass(frozen=True, slots=True)
class ClockSkewed:
    """A member's wall clock is off ours by more than the bound (said once a member)."""

    member: str
    seconds: float
    """How far its clock is ahead of ours (negative: behind)."""


Output = (
    Hop
    | Transmit
    | Exchange
    | Answer
    | Persist
    | Changed
    | Dropped
    | ClockSkewed
    | MemberChanged
    | Refuted
    | NameConflict
    | ProbeSucceeded
)
