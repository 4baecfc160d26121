"""The wire codec: every message round-trips; anything else is a counted drop."""

from __future__ import annotations

import pytest
import ujson

from caxton_actors.address import Address
from caxton_actors.engine.messages import Packet, WireMessage
from caxton_actors.registry.cards import MAX_CARD_BYTES
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
    PingReq(4, "n3", Address("10.0.0.3", 7946)),
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
    assert decode(_envelope(), "c").sent_at is None  # an ack from a node that stamps none
    unstamped = Packet("n0", Ping(1, "n2"), UPDATES, HEADS)
    assert decode(encode(unstamped, "c"), "c") == unstamped  # null, heads and updates after


def test_an_idle_ping_and_ack_are_positional_with_nothing_trailing() -> None:
    ping = encode(Packet("caxton-00", Ping(1234, "caxton-05")), "caxton")
    ack = encode(Packet("caxton-05", Ack(1234), sent_at=1_764_000_000_123), "caxton")
    assert ping == b'[3,"caxton","caxton-00",1,[1234,"caxton-05"]]'
    assert ack == b'[3,"caxton","caxton-05",2,[1234],1764000000123]'


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


def _envelope(
    kind: object = 2,
    payload: object = (1,),
    *trailing: object,
    version: object = 3,
    cluster: object = "c",
    sender: object = "n0",
) -> bytes:
    """An ack from n0 unless told otherwise; ``trailing``: wall clock, heads, updates."""
    fields = [version, cluster, sender, kind, payload, *trailing]
    return ujson.dumps(fields).encode()


def _updates(*updates: object) -> bytes:
    return _envelope(2, [1], None, [], list(updates))


def _heads(heads: object) -> bytes:
    return _envelope(2, [1], None, heads)


def _join(addr: object) -> bytes:
    return _updates([1, "x", 1, addr, {}])


def _agents(*rows: object, live: object = None) -> bytes:
    return _envelope(8, [list(rows), [], {} if live is None else live])


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe not json", "malformed"),
        (b'"ping"', "malformed"),
        (b"[]", "malformed"),
        (b"[3, 2]", "malformed"),
        (b"[" * 2000, "oversized"),
        (_envelope(version=2), "unknown_version"),
        (b'{"v": 2, "c": "c", "s": "n0", "t": "ack", "p": {"q": 1}}', "unknown_version"),
        (_envelope(2, [1], None, [], [], "more"), "malformed"),
        (_envelope(cluster="other"), "other_cluster"),
        (_envelope(99), "unknown_type"),
        (_envelope("ack"), "unknown_type"),
        (_envelope(True), "unknown_type"),  # no bool is a type, though JSON's true == 1
        (_envelope(2, {"q": 1}), "bad_field"),
        (_envelope(2, [1, 2]), "bad_field"),
        (_envelope(2, ["1"]), "bad_field"),
        (_envelope(2, [-1]), "bad_field"),
        (_envelope(2, [True]), "bad_field"),
        (_envelope(2, [2**63]), "bad_field"),
        (_envelope(1, [1, "bad name!"]), "bad_name"),
        (_envelope(5, [None]), "bad_field"),
        (_envelope(sender="bad name!"), "bad_name"),
        (_envelope(sender=7), "bad_field"),
        (_join(["127.0.0.1", 70000]), "bad_field"),
        (_join(["\u0000", 7946]), "bad_address"),
        (_join(["example.com", 7946]), "bad_address"),  # never looked up on the hub
        (_join(["1.2.3.4" * 10, 7946]), "bad_field"),
        (_join(["127.0.0.1", 7946, 1]), "bad_field"),
        (_join("127.0.0.1:7946"), "bad_field"),
        (_updates([1, "x", 1, ["127.0.0.1", 7946], {"k": 1}]), "bad_field"),
        (_updates([3, "x", 2**63, "y"]), "bad_field"),
        (_updates([1, "x", 1]), "bad_field"),
        (_updates([4, "x", 1, "extra"]), "bad_field"),
        (_updates([9, "x", 1]), "unknown_type"),
        (_updates([True, "x", 1]), "unknown_type"),
        (_updates([]), "bad_field"),
        (_envelope(2, [1], None, [], "nope"), "bad_field"),
        (_heads([["n1", -1]]), "bad_field"),
        (_heads([["bad name", 1]]), "bad_name"),
        (_heads([["n1", 1, 2]]), "bad_field"),
        (_heads({"n1": 1}), "bad_field"),
        (_envelope(2, [1], -1), "bad_field"),
        (_envelope(2, [1], "now"), "bad_field"),
        (_envelope(2, [1], 1.5), "bad_field"),
        (_envelope(7, ["all"]), "bad_field"),
        (_envelope(7, "all"), "bad_field"),
        (_agents(live={"n1": "all"}), "bad_field"),
        (_agents(live=["n1"]), "bad_field"),
        (_envelope(8, [[], []]), "bad_field"),
        (_agents(["n1", "a", 1, "cap", 0, False]), "bad_field"),
        (_agents(["n1", "", 1, [], 0, False]), "bad_field"),
        (_agents(["n1", "a", 1, [], 0, "no"]), "bad_field"),
        (_agents(["n1", "a", 1, [7], 0, False]), "bad_field"),
        (_agents(["n1", "a", 1, [], 0]), "bad_field"),
        (_envelope(6, [[["a", ["10.0.0.1", 1], 0, "zombie", {}]], True]), "bad_field"),
        (_envelope(6, [[["a", ["10.0.0.1", 1], 0, "alive"]], True]), "bad_field"),
        (_envelope(6, [[], "yes"]), "bad_field"),
        (_envelope(9, ["shred", None]), "bad_field"),
        (_envelope(11, [[], 1]), "bad_field"),
    ],
)
def test_bad_datagrams_are_dropped_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(data, "c")
    assert caught.value.reason == reason


def test_values_nested_deeper_than_repr_can_go_are_dropped() -> None:
    """ujson parses lists nested up to about a thousand deep, deeper than Python's repr
    (or an enum's error message) can recurse: such a value is a drop like any other."""
    for depth in range(600, 1100, 2):
        deep = "[" * depth + "]" * depth
        for data in (
            deep,
            f'{{"v": {deep}}}',
            f'[{deep}, "c", "n0", 2, [1]]',
            f'[3, "c", "n0", {deep}, [1]]',
            f'[3, "c", "n0", 2, [1], null, [], [[{deep}]]]',
            f'[3, "c", "n0", 6, [[["a", ["10.0.0.1", 1], 0, {deep}, {{}}]], true]]',
            f'[3, "c", "n0", 9, [{deep}, null]]',
        ):
            with pytest.raises(DecodeError):
                decode(data.encode(), "c", MAX_STREAM_MESSAGE)


def test_a_stream_message_may_not_list_more_members_or_heads_than_a_node_keeps() -> None:
    too_many = MAX_MEMBERS + 1
    for data in (
        _envelope(6, [[[]] * too_many, True]),
        _heads([["n1", 1]] * too_many),
        _updates(*[[4, "n1", 1]] * too_many),
    ):
        with pytest.raises(DecodeError) as caught:
            decode(data, "c", MAX_STREAM_MESSAGE)
        assert caught.value.reason == "bad_field"


CARD = '{"name":"Chef","description":"Plans menus / 料理.","skills":[{"id":"menus","tags":["x"]}]}'


def test_agent_rows_carry_a_scope_and_a_card_only_when_they_differ_from_the_default() -> None:
    records = (
        AgentRecord("n1", "chef", 5, ("menus",), 1, scope="team", card=CARD),
        AgentRecord("n1", "chef", 6, ("menus",), 2, card=CARD),  # default scope, spelt out
        AgentRecord("n1", "plain", 7, (), 3, scope="team"),
        AgentRecord("n1", "gone", 8, (), 4, deleted=True, scope="team"),
        AgentRecord("n1", "old", 9, (), 5),
    )
    packet = Packet("n0", AgentUpdate(records, (Head("n1", 9),)))
    data = encode(packet, "c", MAX_STREAM_MESSAGE)
    assert decode(data, "c", MAX_STREAM_MESSAGE) == packet
    rows = ujson.loads(data)[4][0]
    assert [len(row) for row in rows] == [8, 8, 7, 7, 6]
    assert rows[1][6:] == ["default", CARD]


@pytest.mark.parametrize(
    "row",
    [
        ["n1", "a", 1, [], 0, False, "team", "x" * (MAX_CARD_BYTES + 1)],
        ["n1", "a", 1, [], 0, False, "team", CARD, "extra"],
        ["n1", "a", 1, [], 0, False, "team", None],
        ["n1", "a", 1, [], 0, False, "team", {"name": "Chef"}],
        ["n1", "a", 1, [], 0, False, ""],
        ["n1", "a", 1, [], 0, False, None, CARD],
        ["n1", "a", 1, [], 0, False, "s" * 257],
    ],
    ids=[
        "card-over-16k",
        "nine-fields",
        "null-card",
        "card-object",
        "empty-scope",
        "null-scope",
        "long-scope",
    ],
)
def test_a_hostile_agent_row_is_a_bad_field(row: list[object]) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(_agents(row), "c", MAX_STREAM_MESSAGE)
    assert caught.value.reason == "bad_field"


@pytest.mark.parametrize("at", [6, 7], ids=["scope", "card"])
def test_text_with_a_lone_surrogate_is_a_bad_field(at: int) -> None:
    """JSON's \\ud800 escape decodes to text no UTF-8 encoder (nor SQLite) takes: refused
    here, not met later by the registry (it crashed its actor) or the file."""
    row: list[object] = ["n1", "a", 1, [], 0, False, "team", CARD]
    row[at] = "MARK"
    data = _agents(row).replace(b'"MARK"', b'"x\\ud800"')
    with pytest.raises(DecodeError) as caught:
        decode(data, "c", MAX_STREAM_MESSAGE)
    assert caught.value.reason == "bad_field"
