"""The engine's routing, driven by hand: which stage hears what, in which order."""

from __future__ import annotations

import random

from caxton_actors.address import Address
from caxton_actors.engine import Engine, answers, stream_request
from caxton_actors.engine.membership import (
    MIN_ROTATION_PROBES,
    ROTATING_HEADS,
    ROTATION_CYCLES,
)
from caxton_actors.engine.messages import (
    Answer,
    AnswerPull,
    Committed,
    Dropped,
    Exchange,
    HeardHeads,
    Hop,
    Inbound,
    MemberState,
    Merge,
    MergeRest,
    Output,
    Packet,
    Persist,
    Probe,
    PullFrom,
    Register,
    Restarted,
    SpreadHeads,
    Stage,
    SyncRequest,
    Tick,
    Transmit,
)
from caxton_actors.registry.records import AgentRecord, AgentUpdate, Head, RegistryPull
from caxton_actors.swim.messages import (
    HTTP_META_KEY,
    Ack,
    Alive,
    Gossip,
    MemberChanged,
    MemberRecord,
    Nack,
    Ping,
    ProbeFailed,
    Send,
    State,
    StateSync,
)
from caxton_actors.swim.timing import LAN

WALL = 1_700_000_000.0
"""The wall clock the stages are given (Unix seconds); ``now`` is monotonic."""
A = Address("10.0.0.1", 7946)
B = Address("10.0.0.2", 7946)


def _engine() -> Engine:
    return Engine("a", A, LAN, random.Random(1), 0.0, meta=((HTTP_META_KEY, "a:8080"),))


def _hops(outputs: list[Output], stage: Stage) -> list[object]:
    return [o.message for o in outputs if isinstance(o, Hop) and o.stage is stage]


def test_a_datagrams_news_of_its_sender_reaches_the_registry_before_its_heads() -> None:
    engine = _engine()
    packet = Packet("b", Ping(7, "a"), (Alive("b", 1, B),), (Head("b", 42),))
    outputs = engine.membership.handle(1.0, Inbound(packet, B), wall=WALL)
    hops = [o for o in outputs if isinstance(o, Hop)]
    registry = _hops(outputs, Stage.REGISTRY)
    assert registry == [MemberState("b", True, None), HeardHeads(B, (Head("b", 42),))]
    assert Hop(Stage.DETECTION, Probe(B, Ping(7, "a"))) in hops
    # The new member goes to the table, the prober and the registry (with its route).
    [changed] = [o for o in outputs if isinstance(o, MemberChanged)]
    assert changed.member.name == "b"
    assert Hop(Stage.DETECTION, changed) in hops
    assert MemberState("b", True, None) in _hops(outputs, Stage.REGISTRY)


def test_only_an_answer_on_our_own_stream_is_merged() -> None:
    """An agent_update datagram is unasked (anyone can send one): dropped, not merged."""
    engine = _engine()
    update = AgentUpdate((), (Head("b", 3),))
    answered = engine.membership.handle(
        1.0, Inbound(Packet("b", update), B, answer=True), wall=WALL
    )
    assert _hops(answered, Stage.REGISTRY) == [Merge(update)]
    unasked = engine.membership.handle(1.0, Inbound(Packet("b", update), B), wall=WALL)
    assert _hops(unasked, Stage.REGISTRY) == []
    assert Dropped("unexpected_datagram") in unasked
    pull = Packet("b", RegistryPull((Head("a", 0),)))
    assert Dropped("unexpected_datagram") in engine.membership.handle(
        1.0, Inbound(pull, B), wall=WALL
    )


def test_stream_requests_are_answered_by_the_stage_that_owns_them() -> None:
    sync = Packet("b", StateSync((), reply=True))
    asked = RegistryPull(())
    pull = Packet("b", asked)
    assert stream_request(sync, B) == Hop(Stage.MEMBERSHIP, SyncRequest(sync, B))
    assert stream_request(pull, B) == Hop(Stage.REGISTRY, AnswerPull(asked))
    assert stream_request(Packet("b", Gossip()), B) is None
    assert answers(sync.message, StateSync((), reply=False))
    assert not answers(pull.message, StateSync((), reply=False))


def test_a_full_state_exchange_is_answered_on_its_stream_with_table_and_heads() -> None:
    engine = _engine()
    engine.membership.handle(0.0, SpreadHeads((), (Head("a", 5),)), wall=WALL)
    record = MemberRecord("b", B, 1, State.ALIVE)
    outputs = engine.membership.handle(
        1.0, SyncRequest(Packet("b", StateSync((record,), True)), B), wall=WALL
    )
    [answer] = [o for o in outputs if isinstance(o, Answer)]
    assert answer.packet is not None
    assert isinstance(answer.packet.message, StateSync)
    assert {r.name for r in answer.packet.message.members} == {"a", "b"}
    assert answer.packet.heads == (Head("a", 5),)
    assert not [o for o in outputs if isinstance(o, Exchange)]  # answered, not re-pushed


def test_a_probe_that_fails_becomes_a_suspicion_one_hop_later() -> None:
    engine = _engine()
    engine.detection.handle(0.0, MemberChanged(MemberRecord("b", B, 1, State.ALIVE), None))
    engine.membership.handle(0.0, Inbound(Packet("b", Gossip(), (Alive("b", 1, B),)), B), wall=WALL)
    pinged = _hops(engine.detection.handle(1.0, Tick()), Stage.MEMBERSHIP)
    assert [type(p).__name__ for p in pinged] == ["Send"]
    failed = _hops(engine.detection.handle(3.0, Tick()), Stage.MEMBERSHIP)
    assert failed[0] == ProbeFailed("b", 1)  # then the next period's ping
    outputs = engine.membership.handle(3.0, failed[0], wall=WALL)
    [suspected] = [o for o in outputs if isinstance(o, MemberChanged)]
    assert suspected.member.state is State.SUSPECT


def test_an_ack_leaves_membership_with_updates_on_board() -> None:
    engine = _engine()
    engine.membership.handle(0.0, Inbound(Packet("b", Gossip(), (Alive("b", 1, B),)), B), wall=WALL)
    [sent] = engine.membership.handle(1.0, Send(B, Ack(3)), wall=WALL)
    assert isinstance(sent, Transmit)
    assert sent.to == B
    assert Alive("a", 0, A, ((HTTP_META_KEY, "a:8080"),)) in sent.packet.piggyback


def _ping_heads(engine: Engine, now: float) -> tuple[Head, ...]:
    """The heads on a ping that ``engine`` sends member b at ``now``."""
    [sent] = engine.membership.handle(now, Send(B, Ping(1, "b")), wall=WALL)
    assert isinstance(sent, Transmit)
    return sent.packet.heads


def test_old_heads_ride_datagrams_only_for_a_while_after_news() -> None:
    """News goes out a few times. For a while after it, every head rides along in turn,
    ROTATION_CYCLES times over at one datagram a probe interval, so a node that missed
    the news hears of it within seconds; then none does: at rest no datagram carries a
    head, however many owners there are. A full-state exchange still carries them all."""
    engine = _engine()
    engine.membership.handle(0.0, Inbound(Packet("b", Gossip(), (Alive("b", 1, B),)), B), wall=WALL)
    digest = tuple(Head(f"o{i}", i + 1) for i in range(20))
    engine.membership.handle(0.0, SpreadHeads((), digest), wall=WALL)
    assert _ping_heads(engine, 1.0) == ()  # a digest that changed, but no news
    engine.membership.handle(2.0, SpreadHeads((digest[3],), digest), wall=WALL)
    probes = ROTATION_CYCLES * len(digest) // ROTATING_HEADS  # 30 of LAN's 1 s intervals
    seen = [h for i in range(probes) for h in _ping_heads(engine, 2.0 + i * LAN.probe_interval)]
    assert seen[0] == digest[3]  # news first
    assert all(seen.count(head) >= ROTATION_CYCLES for head in digest)
    assert _ping_heads(engine, 2.0 + probes * LAN.probe_interval) == ()
    assert _ping_heads(engine, 10_000.0) == ()
    [exchange] = engine.membership.handle(10_000.0, Send(B, StateSync((), True)), wall=WALL)
    assert isinstance(exchange, Exchange)
    assert exchange.packet.heads == digest

    few = digest[:2]  # a small digest rotates for MIN_ROTATION_PROBES intervals all the same
    engine.membership.handle(20_000.0, SpreadHeads((), few), wall=WALL)
    engine.membership.handle(20_000.0, SpreadHeads((few[0],), few), wall=WALL)
    for i in range(MIN_ROTATION_PROBES):
        assert set(_ping_heads(engine, 20_000.0 + i * LAN.probe_interval)) == set(few)
    assert _ping_heads(engine, 20_000.0 + MIN_ROTATION_PROBES * LAN.probe_interval) == ()


def test_only_an_ack_to_a_member_carries_the_wall_clock() -> None:
    """Every member acks about once a probe interval: enough to watch every clock
    (engine/skew.py); a stranger's ping gets a bare ack, no bigger than the ping."""
    engine = _engine()
    engine.membership.handle(0.0, Inbound(Packet("b", Gossip(), (Alive("b", 1, B),)), B), wall=WALL)
    stranger = Address("10.0.0.9", 7946)
    sends = [Send(B, Ping(1, "b")), Send(B, Ack(2)), Send(B, Nack(3)), Send(stranger, Ack(4))]
    sent = {
        (type(send.message).__name__, send.to): output.packet.sent_at
        for send in sends
        for output in engine.membership.handle(1.0, send, wall=WALL)
        if isinstance(output, Transmit)
    }
    assert sent == {
        ("Ping", B): None,
        ("Ack", B): int(WALL * 1000),
        ("Nack", B): None,
        ("Ack", stranger): None,
    }


def test_the_registry_stage_spreads_news_pulls_and_persists_merges() -> None:
    engine = _engine()
    outputs = engine.registry.handle(1.0, Committed((Register("planner", ("plan",)),)), wall=WALL)
    [spread] = _hops(outputs, Stage.MEMBERSHIP)
    assert isinstance(spread, SpreadHeads)
    assert [h.name for h in spread.news] == ["a"]
    engine.registry.handle(1.0, MemberState("b", True, "b:8080"), wall=WALL)
    pulls = _hops(
        engine.registry.handle(1.0, HeardHeads(B, (Head("b", 9),)), wall=WALL), Stage.MEMBERSHIP
    )
    assert pulls == [PullFrom(B, RegistryPull((Head("b", 0),)))]
    record = AgentRecord("b", "worker", 9, (), 1000)
    outputs = engine.registry.handle(1.5, Merge(AgentUpdate((record,), (Head("b", 9),))), wall=WALL)
    [persist] = [o for o in outputs if isinstance(o, Persist)]
    assert persist.stored == (record,)
    assert persist.heads == ((Head("b", 9), 0),)
    [answer] = engine.registry.handle(2.0, AnswerPull(RegistryPull((Head("a", 0),))), wall=WALL)
    assert isinstance(answer, Answer)
    assert answer.packet is not None
    assert isinstance(answer.packet.message, AgentUpdate)
    assert [r.agent_id for r in answer.packet.message.records] == ["planner"]


def test_a_stage_built_anew_is_told_again_what_it_knew() -> None:
    """After its actor crashed a stage is rebuilt empty; the others tell it again:
    membership every member (detection: whom to probe; the registry: who is up), the
    registry every head (for membership to spread)."""
    engine = _engine()
    engine.membership.handle(0.0, Inbound(Packet("b", Gossip(), (Alive("b", 1, B),)), B), wall=WALL)
    engine.registry.handle(1.0, Committed((Register("planner", ()),)), wall=WALL)

    engine.rebuild(Stage.DETECTION, 2.0)
    retold = engine.membership.handle(2.0, Restarted(Stage.DETECTION), wall=WALL)
    members = _hops(retold, Stage.DETECTION)
    assert {m.member.name for m in members if isinstance(m, MemberChanged)} == {"a", "b"}
    for member in members:
        assert isinstance(member, MemberChanged)
        engine.detection.handle(2.0, member)
    pinged = _hops(engine.detection.handle(5.0, Tick()), Stage.MEMBERSHIP)
    assert [(type(p).__name__, getattr(p, "to", None)) for p in pinged] == [("Send", B)]

    retold = engine.membership.handle(2.0, Restarted(Stage.REGISTRY), wall=WALL)
    assert MemberState("b", True, None) in _hops(retold, Stage.REGISTRY)

    engine.rebuild(Stage.MEMBERSHIP, 3.0, incarnation=7)
    assert engine.membership.members.me.incarnation == 7
    assert engine.membership.heads.digest == ()
    retold = engine.registry.handle(3.0, Restarted(Stage.MEMBERSHIP), wall=WALL)
    [spread] = _hops(retold, Stage.MEMBERSHIP)
    assert isinstance(spread, SpreadHeads)
    assert [h.name for h in spread.digest] == ["a"]


def test_a_large_pushed_table_is_merged_in_slices_behind_queued_input() -> None:
    """A table of 1,200 members is merged 500 at a time, each rest a hop to membership
    itself (so pings queued meanwhile are answered in between); its heads go to the
    registry after the last slice, when their owners are members."""
    engine = _engine()
    table = tuple(
        MemberRecord(f"m{i}", Address("10.1.0.1", 1000 + i), 1, State.ALIVE) for i in range(1200)
    )
    heads = (Head("m1199", 9),)
    packet = Packet("m0", StateSync(table, reply=False), (), heads)
    outputs = engine.membership.handle(1.0, Inbound(packet, B, answer=True), wall=WALL)
    rounds = 1
    while rest := _hops(outputs, Stage.MEMBERSHIP):
        assert _hops(outputs, Stage.REGISTRY)[-1:] != [HeardHeads(B, heads)]
        [message] = rest
        assert isinstance(message, MergeRest)
        assert len(message.members) == 1200 - 500 * rounds
        outputs = engine.membership.handle(1.0, message, wall=WALL)
        rounds += 1
    assert rounds == 3
    assert engine.membership.members.size() == 1201
    teller = Address("10.1.0.1", 1000)  # the sender, where the table says it lives
    assert _hops(outputs, Stage.REGISTRY)[-1] == HeardHeads(teller, heads)
