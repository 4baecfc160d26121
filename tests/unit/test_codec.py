"""The wire codec: every message round-trips; anything else is a counted drop."""

from __future__ import annotations

import pytest
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
    Nack,
    Ping,
    PingReq,
    State,
    StateSync,
    Suspect,
)
from caxton_actors.wire.codec import (
    MAX_DATAGRAM,
    MAX_STREAM_MESSAGE,
    DecodeError,
    decode,
    encode,
)

ADDR = Address("127.0.0.1", 7946)
UPDATES = (
    Alive("n1", 3, Address("10.0.0.1", 7946), (("http", "10.0.0.1:8080"),)),
    Suspect("n2", 1, "n1"),
    Dead("n3", 2, "n1"),
    Left("n4", 5),
)
MESSAGES: list[WireMessage] = [
    Ping(1, "n2"),
    Ack(2**40),
    Nack(3),
    PingReq(4, "n3"),
    Gossip(),
    StateSync(
        (
            MemberRecord("n1", ADDR, 0, State.SUSPECT, (("k", "v"),)),
            MemberRecord("n2", Address("::1", 7000), 2**62, State.ALIVE),
        ),
        reply=True,
    ),
    RegistryPull((Head("n1", 0), Head("n2", 1_764_000_000_123))),
    AgentUpdate(
        (
            AgentRecord("n1", "agent:7@x", 12, ("chat", "search"), 1_764_000_000_000),
            AgentRecord("n1", "gone", 13, (), 1_764_000_000_001, deleted=True),
        ),
        (Head("n1", 13),),
        live=(("n1", ("agent:7@x", "other")),),
    ),
]
HEADS = (Head("n1", 5), Head("n7", 2**40))


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips_with_piggyback(message: WireMessage) -> None:
    packet = Packet("n0", message, UPDATES, HEADS)
    data = encode(packet, "prod")
    assert len(data) <= MAX_DATAGRAM
    assert decode(data, "prod") == packet


def test_the_senders_clock_rides_along_and_may_be_left_off() -> None:
    stamped = Packet("n0", Ping(1, "n2"), UPDATES, HEADS, sent_at=1_764_000_000_123)
    assert decode(encode(stamped, "c"), "c") == stamped
    assert decode(_envelope(), "c").sent_at is None  # from a node that stamps nothing


def test_updates_that_do_not_fit_are_left_off() -> None:
    many = tuple(Alive(f"node-{i:02d}-" + "x" * 50, i, ADDR) for i in range(40))
    data = encode(Packet("n0", Gossip(), many), "c")
    assert len(data) <= MAX_DATAGRAM
    decoded = decode(data, "c")
    assert 0 < len(decoded.piggyback) < len(many)
    assert decoded.piggyback == many[: len(decoded.piggyback)]


def test_heads_that_do_not_fit_go_before_updates() -> None:
    heads = tuple(Head(f"owner-{i:03d}-" + "y" * 40, i) for i in range(60))
    data = encode(Packet("n0", Gossip(), UPDATES, heads), "c")
    assert len(data) <= MAX_DATAGRAM
    decoded = decode(data, "c")
    assert decoded.piggyback == UPDATES
    assert 0 < len(decoded.heads) < len(heads)


def _envelope(**changes: object) -> bytes:
    base: dict[str, object] = {
        "v": 2,
        "c": "c",
        "s": "n0",
        "t": "ack",
        "p": {"q": 1},
    }
    base.update(changes)
    return ujson.dumps(base).encode()


def _join(addr: list[object]) -> bytes:
    return _envelope(g=[["node_join", {"n": "x", "i": 1, "a": addr}]])


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe not json", "malformed"),
        (b"[1, 2]", "malformed"),
        (b"{" * 2000, "oversized"),
        (_envelope(v=1), "unknown_version"),
        (_envelope(c="other"), "other_cluster"),
        (_envelope(t="shout"), "unknown_type"),
        (_envelope(p={"q": "1"}), "bad_field"),
        (_envelope(p={"q": -1}), "bad_field"),
        (_envelope(p={"q": True}), "bad_field"),
        (_envelope(s="bad name!"), "bad_name"),
        (_join(["127.0.0.1", 70000]), "bad_field"),
        (_join(["\u0000", 7946]), "bad_address"),
        (_join(["example.com", 7946]), "bad_address"),  # never looked up on the hub
        (_join(["1.2.3.4" * 10, 7946]), "bad_field"),
        (_envelope(g=[["node_dead", {"n": "x", "i": 2**63, "b": "y"}]]), "bad_field"),
        (_envelope(g=[["node_join", {"n": "x", "i": 1}]]), "bad_field"),
        (_envelope(g=[["node_nuke", {}]]), "unknown_type"),
        (_envelope(g="nope"), "bad_field"),
        (_envelope(h=[["n1", -1]]), "bad_field"),
        (_envelope(h=[["bad name", 1]]), "bad_name"),
        (_envelope(h={"n1": 1}), "bad_field"),
        (_envelope(w=-1), "bad_field"),
        (_envelope(w="now"), "bad_field"),
        (_envelope(w=1.5), "bad_field"),
        (_envelope(t="registry_pull", p={"h": "all"}), "bad_field"),
        (_envelope(t="agent_update", p={"r": [], "h": [], "x": {"n1": "all"}}), "bad_field"),
        (_envelope(t="agent_update", p={"r": [], "h": [], "x": ["n1"]}), "bad_field"),
        (
            _envelope(t="agent_update", p={"r": [["n1", "a", 1, "cap", 0, False]], "h": []}),
            "bad_field",
        ),
        (_envelope(t="agent_update", p={"r": [["n1", "", 1, [], 0, False]], "h": []}), "bad_field"),
        (_envelope(t="agent_update", p={"r": [["n1", "a", 1, [], 0, "no"]], "h": []}), "bad_field"),
        (
            _envelope(t="agent_update", p={"r": [["n1", "a", 1, [7], 0, False]], "h": []}),
            "bad_field",
        ),
        (
            _envelope(
                t="state_sync",
                p={"m": [{"n": "a", "a": ["10.0.0.1", 1], "i": 0, "st": "zombie"}], "r": True},
            ),
            "bad_field",
        ),
    ],
)
def test_bad_datagrams_are_dropped_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(data, "c")
    assert caught.value.reason == reason


def test_a_stream_message_may_not_list_more_members_or_heads_than_a_node_keeps() -> None:
    too_many = MAX_MEMBERS + 1
    for data in (
        _envelope(t="state_sync", p={"m": [{}] * too_many, "r": True}),
        _envelope(h=[["n1", 1]] * too_many),
    ):
        with pytest.raises(DecodeError) as caught:
            decode(data, "c", MAX_STREAM_MESSAGE)
        assert caught.value.reason == "bad_field"
