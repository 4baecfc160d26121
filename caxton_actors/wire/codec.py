"""SWIM packets to bytes and back: ujson behind one door that trusts nothing.

An envelope is a JSON object::

    {"v": 2, "c": "<cluster label>", "s": "<sender>",
     "t": "<type>", "p": {<payload>}, "g": [["<update type>", {<update>}], ...],
     "h": [["<owner>", <registry version>], ...], "w": <sender's wall clock, Unix ms>}

``v`` is the protocol version; ``c`` keeps two clusters on one network apart (with
keys, both also go into the seal: see ``channel.py``). ``w`` may be left off (a
node before it sent none); a receiver only compares it with its own clock. Decoding returns a typed
:class:`~caxton_actors.engine.messages.Packet` or raises :class:`DecodeError` whose
``reason`` is a fixed word, to be counted. Every field is bounded: names by pattern,
numbers by range, lists by count, and an address must be an IP literal, never a name
to look up.

The seed's ``GossipType`` maps onto the types as: ``StateSync`` is
``state_sync``; ``NodeJoin`` is ``node_join`` (an alive update); ``NodeLeave``
is ``node_leave``; ``HealthCheck`` is SWIM's ``ping``, ``ack``, ``nack`` and
``ping_req``; ``AgentUpdate`` is ``agent_update``, the answer to a
``registry_pull``, both on the stream.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

import ujson

from caxton_actors.address import Address
from caxton_actors.engine.messages import Packet, WireMessage
from caxton_actors.registry.records import AgentRecord, AgentUpdate, Head, RegistryPull
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

VERSION = 2
MAX_DATAGRAM = 1400
MAX_STREAM_MESSAGE = 8 * 1024 * 1024
# A stream request (a pushed table of MAX_MEMBERS, a pull) is smaller than an answer may be.
MAX_STREAM_REQUEST = 4 * 1024 * 1024
MAX_STATE_RECORDS = MAX_MEMBERS
MAX_HEADS = MAX_MEMBERS
MAX_META_ITEMS = 16
MAX_META_TEXT = 256
MAX_AGENT_TEXT = 256  # an agent id or capability: the registry's own limits are tighter
MAX_IP_TEXT = 45  # the longest IPv6 literal
MAX_KEYS = 64  # keys in one keyring reply
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


class DecodeError(Exception):
    """A packet that is dropped; ``reason`` names why, for the drop counter."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


# Encoding.


def _addr(addr: Address) -> list[Any]:
    return [addr[0], addr[1]]


def _record(r: MemberRecord) -> dict[str, Any]:
    return {
        "n": r.name,
        "a": _addr(r.addr),
        "i": r.incarnation,
        "st": r.state.value,
        "m": dict(r.meta),
    }


def _payload(message: WireMessage) -> tuple[str, dict[str, Any]]:
    match message:
        case Ping(seq=seq, target=target):
            return "ping", {"q": seq, "n": target}
        case Ack(seq=seq):
            return "ack", {"q": seq}
        case Nack(seq=seq):
            return "nack", {"q": seq}
        case PingReq(seq=seq, target=target):
            return "ping_req", {"q": seq, "n": target}
        case Gossip():
            return "gossip", {}
        case StateSync(members=members, reply=reply):
            return "state_sync", {"m": [_record(r) for r in members], "r": reply}
        case RegistryPull(heads=heads):
            return "registry_pull", {"h": _heads(heads)}
        case AgentUpdate(records=records, heads=heads, live=live):
            rows = [
                [r.owner, r.agent_id, r.version, list(r.capabilities), r.changed_at, r.deleted]
                for r in records
            ]
            alive = {owner: list(ids) for owner, ids in live}
            return "agent_update", {"r": rows, "h": _heads(heads), "x": alive}
        case KeyringRequest(op=op, key=key):
            return "keyring", {"o": op.value, "k": None if key is None else encode_key(key)}
        case KeyringReply(keys=keys, error=error):
            return "keyring_reply", {"k": list(keys), "e": error}
        case KeyringOffer(keys=keys, epoch=epoch):
            return "keyring_offer", {"k": [encode_key(k) for k in keys], "e": epoch}
    raise TypeError(f"not a message: {message!r}")


def _update(update: Update) -> list[Any]:
    match update:
        case Alive(name=name, incarnation=inc, addr=addr, meta=meta):
            return ["node_join", {"n": name, "i": inc, "a": _addr(addr), "m": dict(meta)}]
        case Suspect(name=name, incarnation=inc, by=by):
            return ["node_suspect", {"n": name, "i": inc, "b": by}]
        case Dead(name=name, incarnation=inc, by=by):
            return ["node_dead", {"n": name, "i": inc, "b": by}]
        case Left(name=name, incarnation=inc):
            return ["node_leave", {"n": name, "i": inc}]
    raise TypeError(f"not an update: {update!r}")


def _heads(heads: tuple[Head, ...]) -> list[list[Any]]:
    return [[h.name, h.version] for h in heads]


def encode(packet: Packet, cluster: str, limit: int = MAX_DATAGRAM) -> bytes:
    """At most ``limit`` bytes: piggybacked heads, then updates, that do not fit are left off."""
    kind, payload = _payload(packet.message)
    envelope = {
        "v": VERSION,
        "c": cluster,
        "s": packet.sender,
        "t": kind,
        "p": payload,
    }
    if packet.sent_at is not None:
        envelope["w"] = packet.sent_at
    updates = [_update(u) for u in packet.piggyback]
    heads = _heads(packet.heads)
    while True:
        envelope["g"] = updates
        if heads:
            envelope["h"] = heads
        else:
            envelope.pop("h", None)
        data: bytes = ujson.dumps(envelope, ensure_ascii=False).encode()
        if len(data) <= limit or not (updates or heads):
            return data
        if heads:
            heads = heads[: len(heads) // 2]
        else:
            updates = updates[:-1]


# Decoding: every field checked, every failure a DecodeError.


def _field(obj: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise DecodeError("bad_field", f"{where}.{key}")
    return value


def _seq(obj: Mapping[str, Any], where: str) -> int:
    value: int = _field(obj, "q", int, where)
    if not 0 <= value < 2**63:
        raise DecodeError("bad_field", f"{where}.q")
    return value


def _name(obj: Mapping[str, Any], key: str, where: str) -> str:
    value: str = _field(obj, key, str, where)
    if not _NAME.fullmatch(value):
        raise DecodeError("bad_name", f"{where}.{key}")
    return value


def _incarnation(obj: Mapping[str, Any], where: str) -> int:
    value: int = _field(obj, "i", int, where)
    if not 0 <= value < 2**63:
        raise DecodeError("bad_field", f"{where}.i")
    return value


def _parse_addr(obj: Mapping[str, Any], where: str) -> Address:
    value = obj.get("a")
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], str)
        or not 0 < len(value[0]) <= MAX_IP_TEXT
        or not isinstance(value[1], int)
        or isinstance(value[1], bool)
        or not 0 < value[1] <= 65535
    ):
        raise DecodeError("bad_field", f"{where}.a")
    try:  # a literal only: a name would be looked up, blocking the node on DNS
        host = str(ipaddress.ip_address(value[0]))
    except ValueError:
        raise DecodeError("bad_address", f"{where}.a") from None
    return Address(host, value[1])


def _meta(obj: Mapping[str, Any], where: str) -> Meta:
    value = obj.get("m", {})
    if not isinstance(value, dict) or len(value) > MAX_META_ITEMS:
        raise DecodeError("bad_field", f"{where}.m")
    for key, item in value.items():
        if not isinstance(item, str) or len(key) > MAX_META_TEXT or len(item) > MAX_META_TEXT:
            raise DecodeError("bad_field", f"{where}.m")
    return tuple(sorted(value.items()))


def _parse_record(obj: Any) -> MemberRecord:
    if not isinstance(obj, dict):
        raise DecodeError("bad_field", "record")
    try:
        state = State(obj.get("st"))
    except ValueError:
        raise DecodeError("bad_field", "record.st") from None
    return MemberRecord(
        _name(obj, "n", "record"),
        _parse_addr(obj, "record"),
        _incarnation(obj, "record"),
        state,
        _meta(obj, "record"),
    )


def _parse_sync(p: Mapping[str, Any]) -> StateSync:
    members = p.get("m")
    if not isinstance(members, list) or len(members) > MAX_STATE_RECORDS:
        raise DecodeError("bad_field", "state_sync.m")
    return StateSync(tuple(_parse_record(r) for r in members), _field(p, "r", bool, "state_sync"))


def _version(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise DecodeError("bad_field", where)
    return value


def _parse_heads(value: Any, where: str) -> tuple[Head, ...]:
    if not isinstance(value, list) or len(value) > MAX_HEADS:
        raise DecodeError("bad_field", where)
    heads = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 2):
            raise DecodeError("bad_field", where)
        heads.append(Head(_name({"n": item[0]}, "n", where), _version(item[1], where)))
    return tuple(heads)


def _agent_text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_AGENT_TEXT:
        raise DecodeError("bad_field", where)
    return value


def _parse_agent(row: Any) -> AgentRecord:
    where = "agent_update.r"
    if not (isinstance(row, list) and len(row) == 6 and isinstance(row[3], list)):
        raise DecodeError("bad_field", where)
    owner, agent_id, version, capabilities, changed_at, deleted = row
    if not isinstance(deleted, bool):
        raise DecodeError("bad_field", where)
    return AgentRecord(
        _name({"n": owner}, "n", where),
        _agent_text(agent_id, where),
        _version(version, where),
        tuple(_agent_text(c, where) for c in capabilities),
        _version(changed_at, where),
        deleted,
    )


def _parse_update(p: Mapping[str, Any]) -> AgentUpdate:
    rows, live = p.get("r"), p.get("x", {})
    if not isinstance(rows, list) or not isinstance(live, dict):
        raise DecodeError("bad_field", "agent_update")
    where = "agent_update.x"
    for ids in live.values():
        if not isinstance(ids, list):
            raise DecodeError("bad_field", where)
    return AgentUpdate(
        tuple(_parse_agent(row) for row in rows),
        _parse_heads(p.get("h"), "agent_update.h"),
        tuple(
            (_name({"n": owner}, "n", where), tuple(_agent_text(i, where) for i in ids))
            for owner, ids in live.items()
        ),
    )


def _parse_keyring(p: Mapping[str, Any]) -> KeyringRequest:
    try:
        op = KeyOp(_field(p, "o", str, "keyring"))
        key = p.get("k")
        return KeyringRequest(op, None if key is None else parse_key(_field(p, "k", str, "key")))
    except (ValueError, KeyringError):
        raise DecodeError("bad_field", "keyring") from None


def _parse_keyring_reply(p: Mapping[str, Any]) -> KeyringReply:
    keys = _field(p, "k", list, "keyring_reply")
    error: str = _field(p, "e", str, "keyring_reply")
    if len(keys) > MAX_KEYS or len(error) > MAX_META_TEXT:
        raise DecodeError("bad_field", "keyring_reply")
    return KeyringReply(tuple(_agent_text(k, "keyring_reply.k") for k in keys), error)


def _parse_keyring_offer(p: Mapping[str, Any]) -> KeyringOffer:
    keys = _field(p, "k", list, "keyring_offer")
    if not 0 < len(keys) <= MAX_KEYS:
        raise DecodeError("bad_field", "keyring_offer.k")
    try:
        parsed = tuple(parse_key(_field({"k": k}, "k", str, "keyring_offer")) for k in keys)
    except KeyringError:
        raise DecodeError("bad_field", "keyring_offer.k") from None
    return KeyringOffer(parsed, _version(p.get("e"), "keyring_offer.e"))


_MESSAGES: dict[str, Callable[[Mapping[str, Any]], WireMessage]] = {
    "ping": lambda p: Ping(_seq(p, "ping"), _name(p, "n", "ping")),
    "ack": lambda p: Ack(_seq(p, "ack")),
    "nack": lambda p: Nack(_seq(p, "nack")),
    "ping_req": lambda p: PingReq(_seq(p, "ping_req"), _name(p, "n", "ping_req")),
    "gossip": lambda p: Gossip(),
    "state_sync": _parse_sync,
    "registry_pull": lambda p: RegistryPull(_parse_heads(p.get("h"), "registry_pull.h")),
    "agent_update": _parse_update,
    "keyring": _parse_keyring,
    "keyring_reply": _parse_keyring_reply,
    "keyring_offer": _parse_keyring_offer,
}

_UPDATES: dict[str, Callable[[Mapping[str, Any]], Update]] = {
    "node_join": lambda u: Alive(
        _name(u, "n", "node_join"),
        _incarnation(u, "node_join"),
        _parse_addr(u, "node_join"),
        _meta(u, "node_join"),
    ),
    "node_suspect": lambda u: Suspect(
        _name(u, "n", "node_suspect"),
        _incarnation(u, "node_suspect"),
        _name(u, "b", "node_suspect"),
    ),
    "node_dead": lambda u: Dead(
        _name(u, "n", "node_dead"), _incarnation(u, "node_dead"), _name(u, "b", "node_dead")
    ),
    "node_leave": lambda u: Left(_name(u, "n", "node_leave"), _incarnation(u, "node_leave")),
}


def decode(data: bytes, cluster: str, limit: int = MAX_DATAGRAM) -> Packet:
    if len(data) > limit:
        raise DecodeError("oversized", f"{len(data)} bytes")
    try:
        envelope = ujson.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise DecodeError("malformed") from None
    if not isinstance(envelope, dict):
        raise DecodeError("malformed", "not an object")
    if envelope.get("v") != VERSION:
        raise DecodeError("unknown_version", repr(envelope.get("v"))[:20])
    if envelope.get("c") != cluster:
        raise DecodeError("other_cluster")
    kind = envelope.get("t")
    parse = _MESSAGES.get(kind) if isinstance(kind, str) else None
    payload = envelope.get("p")
    if parse is None or not isinstance(payload, dict):
        raise DecodeError("unknown_type", str(kind)[:20])
    updates = envelope.get("g", [])
    if not isinstance(updates, list):
        raise DecodeError("bad_field", "g")
    piggyback = []
    for item in updates:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], dict)):
            raise DecodeError("bad_field", "g")
        parse_update = _UPDATES.get(item[0]) if isinstance(item[0], str) else None
        if parse_update is None:
            raise DecodeError("unknown_type", str(item[0])[:20])
        piggyback.append(parse_update(item[1]))
    sent_at = envelope.get("w")
    return Packet(
        _name(envelope, "s", "envelope"),
        parse(payload),
        tuple(piggyback),
        _parse_heads(envelope.get("h", []), "h"),
        None if sent_at is None else _version(sent_at, "w"),
    )
