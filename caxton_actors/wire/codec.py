"""SWIM packets to bytes and back: ujson behind one door that trusts nothing.

An envelope is a JSON array, its fields by position::

    [3, "<cluster label>", "<sender>", <type>, [<payload>],
     <wall clock>, [["<owner>", <registry version>], ...], [[<update type>, ...], ...]]

``3`` is the protocol version; the cluster label keeps two clusters on one network
apart (with keys, both also go into the seal: see ``channel.py``). The type is a
:class:`MessageType`, which also gives the payload's fields; an update is a list that
starts with its :class:`UpdateType`. The wall clock is the sender's, Unix ms, or null:
only acks carry one (``engine/skew.py``), and a receiver only compares it with its own.
Then come the registry heads the sender spreads, then its piggybacked updates. Fields at
the end that are absent or empty are left off, so an idle ping is
``[3,"caxton","n1",1,[17,"n2"]]`` and its ack ``[3,"caxton","n2",2,[17],1764000000123]``:
by position, not by key, because a cluster at rest sends little else, and keys were
half of it.

Decoding returns a typed :class:`~caxton_actors.engine.messages.Packet` or raises
:class:`DecodeError` whose ``reason`` is a fixed word, to be counted. Every field is
bounded: names by pattern, numbers by range, lists by count, and an address must be an
IP literal, never a name to look up.

The seed's ``GossipType`` maps onto the types as: ``StateSync`` is ``STATE_SYNC``;
``NodeJoin`` is ``NODE_JOIN`` (an alive update); ``NodeLeave`` is ``NODE_LEAVE``;
``HealthCheck`` is SWIM's ``PING``, ``ACK``, ``NACK`` and ``PING_REQ``; ``AgentUpdate``
is ``AGENT_UPDATE``, the answer to a ``REGISTRY_PULL``, both on the stream.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from enum import IntEnum
from typing import Any, TypeVar

import ujson

from caxton_actors.address import Address
from caxton_actors.engine.messages import Packet, WireMessage
from caxton_actors.registry.cards import MAX_CARD_BYTES
from caxton_actors.registry.records import (
    DEFAULT_SCOPE,
    AgentRecord,
    AgentUpdate,
    Head,
    RegistryPull,
)
from caxton_actors.swim.members import MAX_MEMBERS
from caxton_actors.swim.messages import (
    Ack,
    Alive,
    Dead,
    Gossip,
    Left,
    MemberRecord,
    Meta,
    Nack,
    Ping,
    PingReq,
    State,
    StateSync,
    Suspect,
    Update,
)
from caxton_actors.wire.keyring import (
    KeyOp,
    KeyringError,
    KeyringOffer,
    KeyringReply,
    KeyringRequest,
    encode_key,
    parse_key,
)

VERSION = 3
MAX_DATAGRAM = 1400
MAX_STREAM_MESSAGE = 8 * 1024 * 1024
# A stream request (a pushed table of MAX_MEMBERS, a pull) is smaller than an answer may be.
MAX_STREAM_REQUEST = 4 * 1024 * 1024
MAX_STATE_RECORDS = MAX_MEMBERS
MAX_HEADS = MAX_MEMBERS
MAX_UPDATES = MAX_MEMBERS  # at most one a member
MAX_META_ITEMS = 16
MAX_META_TEXT = 256
MAX_AGENT_TEXT = 256  # an agent id or capability: the registry's own limits are tighter
MAX_IP_TEXT = 45  # the longest IPv6 literal
MAX_KEYS = 64  # keys in one keyring reply
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_ENVELOPE = 5
"""Fields every envelope has; the wall clock, heads and updates may be left off."""
_LEFT_OFF: list[Any] = [None, [], []]
"""What the wall clock, heads and updates are when left off."""


class MessageType(IntEnum):
    """A packet's type on the wire, and the fields of its payload."""

    PING = 1  # [seq, target]
    ACK = 2  # [seq]
    NACK = 3  # [seq]
    PING_REQ = 4  # [seq, target, [ip, port]]
    GOSSIP = 5  # []: only the updates and heads it carries
    STATE_SYNC = 6  # [[[name, [ip, port], incarnation, state, {meta}], ...], reply]
    REGISTRY_PULL = 7  # [[[owner, version], ...]]
    AGENT_UPDATE = 8  # [[[owner, id, version, [capability, ...], changed_at, deleted,
    #                     scope, card], ...], [[owner, version], ...], {owner: [live key, ...]}]
    #                    (a record leaves off a default scope and no card)
    KEYRING = 9  # [op, key or null]
    KEYRING_REPLY = 10  # [[key, ...], error]
    KEYRING_OFFER = 11  # [[key, ...], epoch]


class UpdateType(IntEnum):
    """A piggybacked update's type on the wire, its first field; then its own."""

    NODE_JOIN = 1  # [1, name, incarnation, [ip, port], {meta}]: alive
    NODE_SUSPECT = 2  # [2, name, incarnation, by]
    NODE_DEAD = 3  # [3, name, incarnation, by]
    NODE_LEAVE = 4  # [4, name, incarnation]


_Code = TypeVar("_Code", MessageType, UpdateType)


class DecodeError(Exception):
    """A packet that is dropped; ``reason`` names why, for the drop counter."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


# Encoding.


def _addr(addr: Address) -> list[Any]:
    return [addr[0], addr[1]]


def _record(r: MemberRecord) -> list[Any]:
    return [r.name, _addr(r.addr), r.incarnation, r.state.value, dict(r.meta)]


def _payload(message: WireMessage) -> tuple[MessageType, list[Any]]:
    match message:
        case Ping(seq=seq, target=target):
            return MessageType.PING, [seq, target]
        case Ack(seq=seq):
            return MessageType.ACK, [seq]
        case Nack(seq=seq):
            return MessageType.NACK, [seq]
        case PingReq(seq=seq, target=target, addr=addr):
            return MessageType.PING_REQ, [seq, target, _addr(addr)]
        case Gossip():
            return MessageType.GOSSIP, []
        case StateSync(members=members, reply=reply):
            return MessageType.STATE_SYNC, [[_record(r) for r in members], reply]
        case RegistryPull(heads=heads):
            return MessageType.REGISTRY_PULL, [_heads(heads)]
        case AgentUpdate(records=records, heads=heads, live=live):
            rows = [_agent_row(r) for r in records]
            alive = {owner: list(ids) for owner, ids in live}
            return MessageType.AGENT_UPDATE, [rows, _heads(heads), alive]
        case KeyringRequest(op=op, key=key):
            return MessageType.KEYRING, [op.value, None if key is None else encode_key(key)]
        case KeyringReply(keys=keys, error=error):
            return MessageType.KEYRING_REPLY, [list(keys), error]
        case KeyringOffer(keys=keys, epoch=epoch):
            return MessageType.KEYRING_OFFER, [[encode_key(k) for k in keys], epoch]
    raise TypeError(f"not a message: {message!r}")


def _update(update: Update) -> list[Any]:
    match update:
        case Alive(name=name, incarnation=inc, addr=addr, meta=meta):
            return [UpdateType.NODE_JOIN, name, inc, _addr(addr), dict(meta)]
        case Suspect(name=name, incarnation=inc, by=by):
            return [UpdateType.NODE_SUSPECT, name, inc, by]
        case Dead(name=name, incarnation=inc, by=by):
            return [UpdateType.NODE_DEAD, name, inc, by]
        case Left(name=name, incarnation=inc):
            return [UpdateType.NODE_LEAVE, name, inc]
    raise TypeError(f"not an update: {update!r}")


def _heads(heads: tuple[Head, ...]) -> list[list[Any]]:
    return [[h.name, h.version] for h in heads]


def encode(packet: Packet, cluster: str, limit: int = MAX_DATAGRAM) -> bytes:
    """At most ``limit`` bytes: piggybacked heads, then updates, that do not fit are left off."""
    kind, payload = _payload(packet.message)
    updates = [_update(u) for u in packet.piggyback]
    heads = _heads(packet.heads)
    while True:
        envelope = [VERSION, cluster, packet.sender, kind, payload, packet.sent_at, heads, updates]
        while len(envelope) > _ENVELOPE and envelope[-1] in (None, []):
            envelope.pop()
        data: bytes = ujson.dumps(envelope, ensure_ascii=False).encode()
        if len(data) <= limit or not (updates or heads):
            return data
        if heads:
            heads = heads[: len(heads) // 2]
        else:
            updates = updates[:-1]


# Decoding: every field checked, every failure a DecodeError.


def _fields(value: Any, count: int, where: str) -> list[Any]:
    """``value`` as a list of exactly ``count`` fields."""
    if not isinstance(value, list) or len(value) != count:
        raise DecodeError("bad_field", where)
    return value


def _items(value: Any, most: int, where: str) -> list[Any]:
    """``value`` as a list of at most ``most`` items."""
    if not isinstance(value, list) or len(value) > most:
        raise DecodeError("bad_field", where)
    return value


def _number(value: Any, where: str) -> int:
    """A sequence number, incarnation, version or time: a JSON integer in [0, 2^63)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise DecodeError("bad_field", where)
    return value


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise DecodeError("bad_field", where)
    return value


def _text(value: Any, most: int, where: str) -> str:
    if not isinstance(value, str) or len(value) > most or not _utf8(value):
        raise DecodeError("bad_field", where)
    return value


def _utf8(value: str) -> bool:
    """JSON's ``\\ud800`` escapes decode to a lone surrogate, which no UTF-8 encoder (nor
    SQLite) takes: text that holds one is refused here, not found later in the registry."""
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise DecodeError("bad_field", where)
    if not _NAME.fullmatch(value):
        raise DecodeError("bad_name", where)
    return value


def _agent_text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_AGENT_TEXT or not _utf8(value):
        raise DecodeError("bad_field", where)
    return value


def _parse_addr(value: Any, where: str) -> Address:
    host, port = _fields(value, 2, where)
    if (
        not isinstance(host, str)
        or not 0 < len(host) <= MAX_IP_TEXT
        or not isinstance(port, int)
        or isinstance(port, bool)
        or not 0 < port <= 65535
    ):
        raise DecodeError("bad_field", where)
    try:  # a literal only: a name would be looked up, blocking the node on DNS
        literal = str(ipaddress.ip_address(host))
    except ValueError:
        raise DecodeError("bad_address", where) from None
    return Address(literal, port)


def _meta(value: Any, where: str) -> Meta:
    if not isinstance(value, dict) or len(value) > MAX_META_ITEMS:
        raise DecodeError("bad_field", where)
    for key, item in value.items():
        if not isinstance(item, str) or len(key) > MAX_META_TEXT or len(item) > MAX_META_TEXT:
            raise DecodeError("bad_field", where)
    return tuple(sorted(value.items()))


def _parse_record(value: Any) -> MemberRecord:
    where = "state_sync.record"
    name, addr, incarnation, state, meta = _fields(value, 5, where)
    try:  # a str first: the enum would repr anything else, however deeply nested
        parsed = State(_text(state, MAX_META_TEXT, f"{where}.state"))
    except ValueError:
        raise DecodeError("bad_field", f"{where}.state") from None
    return MemberRecord(
        _name(name, where),
        _parse_addr(addr, where),
        _number(incarnation, where),
        parsed,
        _meta(meta, where),
    )


def _parse_sync(members: Any, reply: Any) -> StateSync:
    records = _items(members, MAX_STATE_RECORDS, "state_sync.members")
    return StateSync(tuple(_parse_record(r) for r in records), _flag(reply, "state_sync.reply"))


def _parse_heads(value: Any, where: str) -> tuple[Head, ...]:
    heads = []
    for item in _items(value, MAX_HEADS, where):
        name, version = _fields(item, 2, where)
        heads.append(Head(_name(name, where), _number(version, where)))
    return tuple(heads)


def _agent_row(r: AgentRecord) -> list[Any]:
    row = [r.owner, r.agent_id, r.version, list(r.capabilities), r.changed_at, r.deleted]
    if r.card is not None:
        return [*row, r.scope, r.card]
    return row if r.scope == DEFAULT_SCOPE else [*row, r.scope]


def _parse_agent(row: Any) -> AgentRecord:
    where = "agent_update.records"
    if not isinstance(row, list) or not 6 <= len(row) <= 8:
        raise DecodeError("bad_field", where)
    owner, agent_id, version, capabilities, changed_at, deleted = row[:6]
    if not isinstance(capabilities, list):
        raise DecodeError("bad_field", where)
    scope = _agent_text(row[6], where) if len(row) > 6 else DEFAULT_SCOPE
    card = _text(row[7], MAX_CARD_BYTES, where) if len(row) > 7 else None
    return AgentRecord(
        _name(owner, where),
        _agent_text(agent_id, where),
        _number(version, where),
        tuple(_agent_text(c, where) for c in capabilities),
        _number(changed_at, where),
        _flag(deleted, where),
        scope,
        card,
    )


def _parse_agent_update(records: Any, heads: Any, live: Any) -> AgentUpdate:
    where = "agent_update.live"
    if not isinstance(records, list) or not isinstance(live, dict):
        raise DecodeError("bad_field", "agent_update")
    for ids in live.values():
        if not isinstance(ids, list):
            raise DecodeError("bad_field", where)
    return AgentUpdate(
        tuple(_parse_agent(row) for row in records),
        _parse_heads(heads, "agent_update.heads"),
        tuple(
            (_name(owner, where), tuple(_agent_text(i, where) for i in ids))
            for owner, ids in live.items()
        ),
    )


def _parse_keyring(op: Any, key: Any) -> KeyringRequest:
    try:
        return KeyringRequest(
            KeyOp(_text(op, MAX_META_TEXT, "keyring.op")),
            None if key is None else parse_key(_text(key, MAX_META_TEXT, "keyring.key")),
        )
    except (ValueError, KeyringError):
        raise DecodeError("bad_field", "keyring") from None


def _parse_keyring_reply(keys: Any, error: Any) -> KeyringReply:
    where = "keyring_reply"
    return KeyringReply(
        tuple(_agent_text(k, where) for k in _items(keys, MAX_KEYS, where)),
        _text(error, MAX_META_TEXT, where),
    )


def _parse_keyring_offer(keys: Any, epoch: Any) -> KeyringOffer:
    where = "keyring_offer"
    offered = _items(keys, MAX_KEYS, where)
    if not offered:
        raise DecodeError("bad_field", where)
    try:
        parsed = tuple(parse_key(_text(k, MAX_META_TEXT, where)) for k in offered)
    except KeyringError:
        raise DecodeError("bad_field", where) from None
    return KeyringOffer(parsed, _number(epoch, where))


_MESSAGES: dict[MessageType, tuple[int, Callable[..., WireMessage]]] = {
    # A payload's field count, and what makes the message of its fields.
    MessageType.PING: (2, lambda seq, target: Ping(_number(seq, "ping"), _name(target, "ping"))),
    MessageType.ACK: (1, lambda seq: Ack(_number(seq, "ack"))),
    MessageType.NACK: (1, lambda seq: Nack(_number(seq, "nack"))),
    MessageType.PING_REQ: (
        3,
        lambda seq, target, addr: PingReq(
            _number(seq, "ping_req"), _name(target, "ping_req"), _parse_addr(addr, "ping_req")
        ),
    ),
    MessageType.GOSSIP: (0, Gossip),
    MessageType.STATE_SYNC: (2, _parse_sync),
    MessageType.REGISTRY_PULL: (1, lambda h: RegistryPull(_parse_heads(h, "registry_pull"))),
    MessageType.AGENT_UPDATE: (3, _parse_agent_update),
    MessageType.KEYRING: (2, _parse_keyring),
    MessageType.KEYRING_REPLY: (2, _parse_keyring_reply),
    MessageType.KEYRING_OFFER: (2, _parse_keyring_offer),
}

_UPDATES: dict[UpdateType, tuple[int, Callable[..., Update]]] = {
    # An update's field count after its type, and what makes the update of them.
    UpdateType.NODE_JOIN: (
        4,
        lambda name, inc, addr, meta: Alive(
            _name(name, "node_join"),
            _number(inc, "node_join"),
            _parse_addr(addr, "node_join"),
            _meta(meta, "node_join"),
        ),
    ),
    UpdateType.NODE_SUSPECT: (
        3,
        lambda name, inc, by: Suspect(
            _name(name, "node_suspect"), _number(inc, "node_suspect"), _name(by, "node_suspect")
        ),
    ),
    UpdateType.NODE_DEAD: (
        3,
        lambda name, inc, by: Dead(
            _name(name, "node_dead"), _number(inc, "node_dead"), _name(by, "node_dead")
        ),
    ),
    UpdateType.NODE_LEAVE: (
        2,
        lambda name, inc: Left(_name(name, "node_leave"), _number(inc, "node_leave")),
    ),
}


def _shown(value: Any) -> str:
    """A hostile value for a drop's detail: never its repr if it is a list or an object,
    which could nest deeper than repr can recurse."""
    if isinstance(value, (list, dict)):
        return type(value).__name__
    return repr(value)[:20]


def _code(value: Any, codes: type[_Code]) -> _Code | None:
    """The member of ``codes`` that ``value`` is, or None (a bool is no code)."""
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    try:
        return codes(value)
    except ValueError:
        return None


def _parse_update(item: Any) -> Update:
    if not isinstance(item, list) or not item:
        raise DecodeError("bad_field", "updates")
    kind = _code(item[0], UpdateType)
    if kind is None:
        raise DecodeError("unknown_type", _shown(item[0]))
    count, parse = _UPDATES[kind]
    return parse(*_fields(item[1:], count, kind.name.lower()))


def decode(data: bytes, cluster: str, limit: int = MAX_DATAGRAM) -> Packet:
    if len(data) > limit:
        raise DecodeError("oversized", f"{len(data)} bytes")
    try:
        envelope = ujson.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise DecodeError("malformed") from None
    if isinstance(envelope, dict):  # version 2's envelope was an object
        raise DecodeError("unknown_version", _shown(envelope.get("v")))
    if not isinstance(envelope, list) or not envelope:
        raise DecodeError("malformed", "not an envelope")
    if envelope[0] != VERSION:
        raise DecodeError("unknown_version", _shown(envelope[0]))
    if not _ENVELOPE <= len(envelope) <= _ENVELOPE + 3:
        raise DecodeError("malformed", f"{len(envelope)} fields")
    _, label, sender, kind, payload, *rest = envelope
    sent_at, heads, updates = rest + _LEFT_OFF[len(rest) :]
    if label != cluster:
        raise DecodeError("other_cluster")
    message_type = _code(kind, MessageType)
    if message_type is None:
        raise DecodeError("unknown_type", _shown(kind))
    count, parse = _MESSAGES[message_type]
    message = parse(*_fields(payload, count, message_type.name.lower()))
    return Packet(
        _name(sender, "sender"),
        message,
        tuple(_parse_update(u) for u in _items(updates, MAX_UPDATES, "updates")),
        _parse_heads(heads, "heads"),
        None if sent_at is None else _number(sent_at, "wall"),
    )
