"""The pure SWIM components, driven by hand: no sockets, no clock, no actors."""

from __future__ import annotations

import random

from caxton_actors.address import Address
from caxton_actors.swim.members import (
    MAX_INCARNATION,
    MAX_INCARNATION_STEP,
    BroadcastQueue,
    Members,
)
from caxton_actors.swim.messages import (
    Ack,
    Alive,
    Dead,
    Gossip,
    Ignored,
    Left,
    MemberChanged,
    MemberRecord,
    Nack,
    NameConflict,
    Ping,
    PingReq,
    ProbeFailed,
    ProbeSucceeded,
    Refuted,
    Send,
    State,
    StateSync,
    Suspect,
    Update,
)
from caxton_actors.swim.prober import Prober
from caxton_actors.swim.suspicion import Suspicion
from caxton_actors.swim.timing import LAN

A = Address("10.0.0.1", 7946)
B = Address("10.0.0.2", 7946)
C = Address("10.0.0.3", 7946)


def _members() -> Members:
    members = Members("a", A, (), 5, LAN, random.Random(1), 0.0)
    members.apply(0.0, [Alive("b", 1, B), Alive("c", 1, C)])
    return members


def test_incarnations_order_what_is_said() -> None:
    members = _members()
    assert members.apply(1.0, [Suspect("b", 0, "c")]) == []  # stale
    [event] = members.apply(1.0, [Suspect("b", 1, "c")])
    assert isinstance(event, MemberChanged)
    assert event.member.state is State.SUSPECT
    [event] = members.apply(2.0, [Alive("b", 2, B)])  # b refuted
    assert isinstance(event, MemberChanged)
    assert (event.member.state, event.previous) == (State.ALIVE, State.SUSPECT)
    assert members.apply(3.0, [Dead("b", 1, "c")]) == []  # about an older b


def test_a_suspected_node_refutes_with_a_higher_incarnation() -> None:
    members = _members()
    [refuted] = members.apply(1.0, [Suspect("a", 5, "b")])
    assert refuted == Refuted(6)
    assert members.me.incarnation == 6
    assert Alive("a", 6, A) in members.take_broadcasts(10)


def test_two_nodes_with_one_name_are_reported() -> None:
    members = _members()
    effects = members.apply(1.0, [Alive("a", 9, Address("10.9.9.9", 7946))])
    assert effects[0] == NameConflict(Address("10.9.9.9", 7946))
    assert isinstance(effects[1], Refuted)


def test_suspicion_times_out_to_dead_and_tombstones_are_reaped() -> None:
    members = _members()
    members.apply(0.0, [Suspect("b", 1, "c")])
    longest = LAN.suspicion_timeout(3) * LAN.suspicion_max_timeout_mult
    assert members.next_deadline() <= longest
    members.tick(longest)
    assert {r.name: r.state for r in members.records()}["b"] is State.DEAD
    members.tick(longest + LAN.dead_node_reclaim_time)
    assert "b" not in {r.name for r in members.records()}


def test_gossip_rounds_wake_the_table_only_while_there_is_something_to_spread() -> None:
    members = _members()
    members.settle()
    now = max(members.next_deadline(more_to_spread=False), LAN.gossip_interval)
    members.tick(now)  # its first push-pull, and a round with nothing to say
    assert members.next_deadline(more_to_spread=False) == now + LAN.push_pull_interval
    assert members.next_deadline(more_to_spread=True) == now + LAN.gossip_interval
    members.apply(now, [Alive("d", 1, Address("10.0.0.4", 7946))])
    assert members.next_deadline(more_to_spread=False) == now + LAN.gossip_interval


def test_leave_is_left_not_dead() -> None:
    members = _members()
    effects = members.leave(1.0)
    assert members.me.state is State.LEFT
    assert any(isinstance(e, Send) for e in effects)
    other = _members()
    [event] = other.apply(2.0, [Left("b", 2)])
    assert isinstance(event, MemberChanged)
    assert event.member.state is State.LEFT


def test_a_goodbye_goes_to_every_peer_at_once() -> None:
    """Not a gossip round's few: a peer left out of it held the node alive at its old
    address, and declared it dead when it came back at a new one (tests/netns)."""
    members = Members("a", A, (), 5, LAN, random.Random(1), 0.0)
    peers = {f"p{i}": Address(f"10.0.1.{i}", 7946) for i in range(LAN.gossip_nodes + 2)}
    members.apply(0.0, [Alive(name, 1, addr) for name, addr in peers.items()])
    sent = {e.to for e in members.leave(1.0) if isinstance(e, Send)}
    assert sent == set(peers.values())


def test_confirmations_shrink_the_suspicion_timeout() -> None:
    suspicion = Suspicion(0.0, 5.0, 30.0, expected=2, by="x")
    assert suspicion.deadline == 30.0
    assert suspicion.confirm("y")
    assert 5.0 < suspicion.deadline < 30.0
    assert not suspicion.confirm("y")
    suspicion.confirm("z")
    assert suspicion.deadline == 5.0


def test_broadcasts_go_least_sent_first_newest_first_and_expire() -> None:
    queue: BroadcastQueue[Update] = BroadcastQueue()
    queue.push(Alive("x", 1, A))
    queue.push(Alive("y", 1, B))
    assert queue.take(1, limit=2) == (Alive("y", 1, B),)
    assert queue.take(1, limit=2) == (Alive("x", 1, A),)
    assert len(queue.take(5, limit=2)) == 2
    assert len(queue) == 0
    queue.push(Alive("x", 1, A))
    queue.push(Alive("x", 2, A))  # a newer word about x replaces the older
    assert queue.take(5, limit=9) == (Alive("x", 2, A),)


def test_a_refutation_goes_out_before_a_flood_of_news() -> None:
    """A node that just learned 10,000 members and is then suspected must say it is alive
    in its very next packet, not after all of them."""
    members = Members("a", A, (), 1, LAN, random.Random(1), 0.0)
    flood = tuple(
        MemberRecord(f"m{i}", Address("10.1.0.1", 1000 + i), 1, State.ALIVE) for i in range(10_000)
    )
    members.on_state_sync(0.0, StateSync(flood, reply=False))
    members.apply(0.1, (Suspect("a", 1, "m1"),))
    first = members.take_broadcasts(6)
    assert first[0] == Alive("a", 2, A)
    later = [members.take_broadcasts(6) for _ in range(100)]
    sent = 1 + sum(update.name == "a" for taken in later for update in taken)
    assert sent == LAN.retransmit_limit(members.size())  # then it gives way to the news


def _prober() -> Prober:
    prober = Prober("a", LAN, random.Random(2), 0.0)
    for name, addr in (("b", B), ("c", C), ("d", Address("10.0.0.4", 7946))):
        prober.update_member(MemberRecord(name, addr, 1, State.ALIVE))
    return prober


def test_probe_ack_lowers_health_and_reports_the_round_trip() -> None:
    prober = _prober()
    prober.adjust_health(2)
    [ping] = prober.tick(LAN.probe_interval)
    assert isinstance(ping, Send)
    assert isinstance(ping.message, Ping)
    [result] = prober.on_message(LAN.probe_interval + 0.01, ping.to, Ack(ping.message.seq))
    assert isinstance(result, ProbeSucceeded)
    assert abs(result.rtt - 0.01) < 1e-9
    assert prober.health_score == 1


def test_silent_target_gets_indirect_probes_then_fails() -> None:
    prober = _prober()
    now = LAN.probe_interval
    [ping] = prober.tick(now)
    assert isinstance(ping, Send)
    assert isinstance(ping.message, Ping)
    requests = prober.tick(now + LAN.probe_timeout)
    assert len(requests) == 2  # every other member, up to indirect_checks
    assert all(isinstance(r, Send) and isinstance(r.message, PingReq) for r in requests)
    for request in requests[:1]:
        assert isinstance(request, Send)
        prober.on_message(now + 0.6, request.to, Nack(ping.message.seq))
    failed, next_ping = prober.tick(now + LAN.probe_interval)  # the next period starts at once
    assert failed == ProbeFailed(ping.message.target, 1)
    assert isinstance(next_ping, Send)
    assert prober.health_score == 1  # one helper never answered: maybe we are slow


def test_a_helper_relays_the_ack_or_says_nack() -> None:
    prober = _prober()
    [ping] = prober.on_message(0.0, A, PingReq(77, "b", B))
    assert isinstance(ping, Send)
    assert ping.to == B
    assert isinstance(ping.message, Ping)
    assert prober.on_message(0.1, B, Ack(ping.message.seq)) == [Send(A, Ack(77))]
    prober.on_message(1.0, A, PingReq(78, "c", C))
    assert Send(A, Nack(78)) in prober.tick(1.0 + LAN.probe_timeout)


def test_a_helper_pings_only_where_the_asker_has_the_target() -> None:
    """The asker missed b's leave and holds b at the address it left; b came back elsewhere
    and the helper knows it there: a relayed ack would keep the dead address alive."""
    prober = _prober()
    moved_from = Address("10.9.9.9", 7946)
    assert prober.on_message(0.0, A, PingReq(79, "b", moved_from)) == [Send(A, Nack(79))]


def test_a_helper_asked_for_a_member_it_does_not_know_says_nack_at_once() -> None:
    prober = _prober()
    assert prober.on_message(0.0, A, PingReq(5, "stranger", B)) == [Send(A, Nack(5))]


def test_a_ping_for_someone_else_is_not_acked() -> None:
    prober = _prober()
    assert prober.on_message(0.0, B, Ping(1, "a")) == [Send(B, Ack(1))]
    assert prober.on_message(0.0, B, Ping(2, "z")) == []


def test_a_goodbye_this_node_never_said_is_refuted() -> None:
    members = _members()
    [refuted] = members.apply(1.0, [Left("a", 5)])
    assert refuted == Refuted(6)
    assert members.me.state is State.ALIVE
    assert Alive("a", 6, A) in members.take_broadcasts(10)


def test_a_claim_far_past_a_live_members_incarnation_is_ignored() -> None:
    members = _members()  # a at 5, b at 1
    for lie in (2**63 - 1, MAX_INCARNATION, 5 + MAX_INCARNATION_STEP + 1):
        assert members.apply(1.0, [Dead("a", lie, "x")]) == [Ignored("incarnation_ceiling")]
    assert members.apply(1.0, [Alive("b", MAX_INCARNATION, B, (("http", "evil:80"),))]) == [
        Ignored("incarnation_ceiling")
    ]
    step = 5 + MAX_INCARNATION_STEP
    assert members.apply(1.0, [Dead("a", step, "x")]) == [Refuted(step + 1)]  # outbid by one
    assert {r.name: r.state for r in members.records()}["b"] is State.ALIVE
    # A member not known to be up may come back at any sane incarnation (a restart).
    assert members.apply(1.0, [Alive("z", MAX_INCARNATION, C)])
    assert members.apply(1.0, [Alive("y", MAX_INCARNATION + 1, C)]) == [
        Ignored("incarnation_ceiling")
    ]


def test_a_live_member_is_never_moved_to_another_address() -> None:
    members = _members()
    elsewhere = Address("10.6.6.6", 7946)
    assert members.apply(1.0, [Alive("b", 99, elsewhere)]) == [Ignored("address_conflict")]
    assert members.address_of("b") == B
    members.apply(2.0, [Dead("b", 1, "c")])  # once dead, it may come back elsewhere
    [event] = members.apply(3.0, [Alive("b", 100, elsewhere)])
    assert isinstance(event, MemberChanged)
    assert members.address_of("b") == elsewhere
    assert members.knows(elsewhere)
    assert not members.knows(B)


def test_the_member_table_has_a_cap_and_counts_peers_as_they_change() -> None:
    members = _members()
    members.max_members = 5
    assert members.peer_count() == 2
    effects = members.apply(
        1.0, [Alive(f"x{i}", 1, Address(f"10.1.0.{i}", 7946)) for i in range(5)]
    )
    assert sum(isinstance(e, MemberChanged) for e in effects) == 2
    assert effects.count(Ignored("member_table_full")) == 3
    assert members.size() == 5
    assert members.peer_count() == 4
    members.apply(2.0, [Dead("b", 1, "c")])
    assert members.peer_count() == 3


def test_a_member_lately_taken_for_gone_is_still_gossiped_to_so_it_can_refute() -> None:
    members = Members("a", A, (), 5, LAN, random.Random(1), 0.0)
    members.apply(0.0, [Alive("b", 1, B), Left("b", 2)])  # b said to have left
    sent = members.tick(LAN.gossip_interval)
    assert Send(B, Gossip()) in sent
    later = LAN.gossip_interval + LAN.gossip_to_the_dead_time + 1
    members.apply(later, [Alive("c", 1, C)])  # something new to spread, long after
    assert all(s.to != B for s in members.tick(later + LAN.gossip_interval) if isinstance(s, Send))


def test_a_suspicion_expects_confirmations_only_from_members_still_up() -> None:
    members = _members()  # a knows b and c
    members.apply(0.0, [Left("c", 2)])  # c leaves just as b goes silent
    members.apply(0.0, [Suspect("b", 1, "a")])
    shortest = LAN.suspicion_timeout(3)
    members.tick(shortest)  # nobody is left to confirm: no waiting for it
    assert {r.name: r.state for r in members.records()}["b"] is State.DEAD


def test_a_node_that_left_and_joins_again_is_alive_above_its_left() -> None:
    members = _members()
    members.leave(1.0)
    left = members.me.incarnation
    peer = Members("b", B, (), 1, LAN, random.Random(2), 0.0)
    peer.apply(1.0, [Alive("a", 5, A), Left("a", left)])
    effects = members.join(2.0, [B])
    assert members.me.state is State.ALIVE
    assert members.me.incarnation == left + 1
    changed = [e for e in effects if isinstance(e, MemberChanged)]
    assert [(e.member.state, e.previous) for e in changed] == [(State.ALIVE, State.LEFT)]
    assert any(isinstance(e, Send) and e.to == B for e in effects)  # the join's push-pull
    heard = peer.apply(2.0, list(members.take_broadcasts(10)))
    about_a = [e.member for e in heard if isinstance(e, MemberChanged) and e.member.name == "a"]
    assert [(m.state, m.incarnation) for m in about_a] == [(State.ALIVE, left + 1)]
    members.join(3.0, [B])
    assert members.me.incarnation == left + 1  # alive already: unchanged
