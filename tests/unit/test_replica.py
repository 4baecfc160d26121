"""The pure registry replica: merge rules, deltas, limits, expiry, reads."""

from __future__ import annotations

import math

from caxton_actors.address import Address
from caxton_actors.registry.query import Query
from caxton_actors.registry.records import AgentRecord, AgentUpdate, Head, RegistryPull
from caxton_actors.registry.replica import (
    ACTIVE,
    LIMITS,
    MAX_ANSWER_RECORDS,
    MAX_CLOCK_SKEW,
    UNREACHABLE,
    Limits,
    Replica,
)

SOURCE = Address("10.0.0.2", 7946)
NOW = 2e9
"""Wall time for hearing and merging: past every version these tests make. Changes are
made at small times, each both the monotonic and the wall reading, unless a test says."""


def _replica(name: str, ttl: float = 60, limits: Limits = LIMITS) -> Replica:
    """A replica whose membership knows the owners these tests use, up, with routes."""
    replica = Replica(name, ttl, limits)
    for member in ("a", "b", "c"):
        replica.member_changed(member, up=True, route=f"{member}:8080", now=0.0)
    return replica


def _sync(to: Replica, source: Replica, now: float = 0.0) -> None:
    """``to`` hears ``source``'s heads and takes the answer to its pull."""
    to.hear(source.heads(), SOURCE, NOW)
    for _, pull in to.pulls(now):
        to.merge(source.answer(pull), now, NOW)


def test_a_pull_brings_only_what_changed_since_the_askers_head() -> None:
    a, b = _replica("a", 60), _replica("b", 60)
    for i in range(50):
        a.register(f"x{i}", ("c",), 1.0, 1.0)
    _sync(b, a)
    assert b.count() == 50
    assert b.digest() == a.digest()
    a.register("x1", ("d",), 2.0, 2.0)
    a.deregister("x2", 2.0, 2.0)
    b.hear(a.heads(), SOURCE, NOW)
    [(source, pull)] = b.pulls(3.0)
    assert source == SOURCE
    update = a.answer(pull)
    assert {r.agent_id for r in update.records} == {"x1", "x2"}
    assert not update.live
    b.merge(update, 0.0, NOW)
    assert b.digest() == a.digest()
    assert b.count() == 49
    assert b.head("a") == a.head("a")


def test_an_in_flight_pull_is_not_repeated_until_it_times_out() -> None:
    a, b = _replica("a", 60), _replica("b", 60)
    a.register("x", (), 1.0, 1.0)
    b.hear(a.heads(), SOURCE, NOW)
    assert len(b.pulls(1.0)) == 1
    b.hear(a.heads(), SOURCE, NOW)
    assert b.pulls(1.5) == []
    assert len(b.pulls(10.0)) == 1  # no answer came: ask again


def test_records_a_node_may_not_accept_are_dropped_and_counted() -> None:
    b = _replica("b", 60, Limits(max_id_length=8, max_capabilities=2, max_agents_per_node=1))
    update = AgentUpdate(
        (
            AgentRecord("b", "forged", 5, (), 0),  # about b's own agents, not from b
            AgentRecord("a", "far-future", 99, (), 0),  # beyond the head it came with
            AgentRecord("a", "much-too-long-id", 3, (), 0),
            AgentRecord("a", "caps", 3, ("1", "2", "3"), 0),
            AgentRecord("a", "ok", 3, (), 0),
            AgentRecord("a", "two", 4, (), 0),  # b's own agent limit is not a's
        ),
        (Head("a", 10),),
    )
    merged = b.merge(update, 0.0, NOW)
    assert [r.agent_id for r in merged.stored] == ["ok", "two"]
    assert merged.dropped == {
        "not_owner": 1,
        "beyond_head": 1,
        "bad_id": 1,
        "too_many_capabilities": 1,
    }
    assert b.own("forged") is None


def test_a_late_answer_never_takes_a_node_back() -> None:
    a, b = _replica("a", 60), _replica("b", 60)
    a.restart((), 1.0, 1.0)
    a.register("x", ("v1",), 2.0, 2.0)
    b.hear(a.heads(), SOURCE, NOW)
    [(_, first_pull)] = b.pulls(3.0)
    old_answer = a.answer(first_pull)  # in flight for a long time
    a.register("x", ("v2",), 4.0, 4.0)
    a.deregister("gone", 4.0, 4.0)
    b.hear(a.heads(), SOURCE, NOW)
    [(_, second_pull)] = b.pulls(10.0)  # the first timed out
    b.merge(a.answer(second_pull), 0.0, NOW)
    b.merge(old_answer, 0.0, NOW)  # the first answer finally lands
    record = b.get("x")
    assert record is not None
    assert record.capabilities == ("v2",)
    assert b.digest() == a.digest()


def test_a_large_delta_comes_in_parts_oldest_first() -> None:
    a, b = _replica("a", 60), _replica("b", 60)
    a.register("seed", (), 1.0, 1.0)
    _sync(b, a)
    for i in range(MAX_ANSWER_RECORDS + 5):
        a.register(f"x{i}", (), 2.0, 2.0)
    b.hear(a.heads(), SOURCE, NOW)
    [(_, pull)] = b.pulls(3.0)
    first = a.answer(pull)
    assert len(first.records) == MAX_ANSWER_RECORDS
    b.merge(first, 0.0, NOW)
    assert b.head("a") < a.head("a")
    [(_, rest)] = b.pulls(3.5)  # still behind what it heard: it asks for the rest
    b.merge(a.answer(rest), 0.0, NOW)
    assert b.digest() == a.digest()


def test_a_peer_far_behind_a_large_owner_catches_up_in_parts() -> None:
    a, b = _replica("a", 60), _replica("b", 60)
    a.register("old", (), 1.0, 1.0)
    a.register("doomed", (), 1.0, 1.0)
    _sync(b, a)
    a.restart([], 5.0, 5.0)  # b is now behind a's floor: it must drop what a no longer has
    a.deregister("doomed", 6.0, 6.0)
    a.expire(100.0)
    for i in range(2 * MAX_ANSWER_RECORDS + 3):
        a.register(f"x{i}", (), 6.0, 6.0)
    parts = 0
    while b.digest() != a.digest():
        b.hear(a.heads(), SOURCE, NOW)
        [(_, pull)] = b.pulls(10.0 + parts * 3)
        update = a.answer(pull)
        assert len(update.records) <= MAX_ANSWER_RECORDS
        assert update.live or parts  # the first part says which agents live
        b.merge(update, 0.0, NOW)
        parts += 1
        assert parts < 5
    assert parts == 3
    assert b.get("doomed") is None
    assert b.get("old") is not None


def test_a_retry_goes_to_whoever_still_tells_the_head() -> None:
    a, b = _replica("a", 60), _replica("b", 60)
    a.register("x", (), 1.0, 1.0)
    dead, alive = Address("10.0.0.9", 7946), Address("10.0.0.3", 7946)
    b.hear(a.heads(), dead, NOW)
    [(asked, _)] = b.pulls(1.0)
    assert asked == dead  # and it never answers
    b.hear(a.heads(), alive, NOW)
    [(asked, _)] = b.pulls(10.0)
    assert asked == alive


def test_the_newest_claim_wins_reads_and_the_capability_index() -> None:
    a, b, c = _replica("a", 60), _replica("b", 60), _replica("c", 60)
    a.register("x", ("old",), 1.0, 1.0)
    b.register("x", ("new",), 2.0, 2.0)  # moved to b later
    _sync(c, a)
    _sync(c, b)
    found = c.get("x")
    assert found is not None
    assert (found.owner, found.capabilities) == ("b", ("new",))
    assert c.page(Query(capability="old"), None, 10, local=False) == []
    assert [r.owner for r in c.page(Query(capability="new"), None, 10, local=False)] == ["b"]
    b.deregister("x", 3.0, 3.0)
    _sync(c, b)
    back = c.get("x")
    assert back is not None
    assert back.owner == "a"
    assert [r.agent_id for r in c.page(Query(capability="old"), None, 10, local=False)] == ["x"]


def test_pages_follow_id_order_and_local_scope() -> None:
    a, b = _replica("a", 60), _replica("b", 60)
    for i in range(0, 10, 2):
        a.register(f"id{i}", ("k",), 1.0, 1.0)
    for i in range(1, 10, 2):
        b.register(f"id{i}", ("k",), 1.0, 1.0)
    _sync(a, b)
    first = a.page(Query(capability="k"), None, 4, local=False)
    assert [r.agent_id for r in first] == ["id0", "id1", "id2", "id3"]
    rest = a.page(Query(capability="k"), first[-1].agent_id, 100, local=False)
    assert [r.agent_id for r in rest] == ["id4", "id5", "id6", "id7", "id8", "id9"]
    assert [r.agent_id for r in a.page(Query(), None, 100, local=True)] == [
        f"id{i}" for i in range(0, 10, 2)
    ]


def test_a_dead_owners_agents_are_unreachable_then_expire() -> None:
    a, b = _replica("a", 60), _replica("b", 60)
    a.register("x", (), 1.0, 1.0)
    _sync(b, a)
    b.member_changed("a", up=False, route="10.0.0.1:8080", now=100.0)
    record = b.get("x")
    assert record is not None
    assert b.status(record) == UNREACHABLE
    assert b.unreachable_count() == 1
    assert b.next_deadline() == 160.0  # housekeeping sleeps until then
    assert b.expire(150.0).gone == ()
    assert b.expire(161.0).gone == ("a",)
    assert b.get("x") is None
    assert b.head("a") == 0  # forgotten whole: its return brings everything again
    b.member_changed("a", up=True, route="10.0.0.1:8080", now=200.0)
    _sync(b, a, now=200.0)
    back = b.get("x")
    assert back is not None
    assert b.status(back) == ACTIVE


def test_a_reaped_tombstone_makes_late_peers_take_the_whole_set() -> None:
    a, b = _replica("a", 10), _replica("b", 10)
    a.register("keep", (), 1.0, 1.0)
    a.register("drop", (), 1.0, 1.0)
    _sync(b, a)
    a.deregister("drop", 2.0, 2.0)
    a.expire(20.0)  # the tombstone is gone before b heard of it
    b.hear(a.heads(), SOURCE, NOW)
    [(_, pull)] = b.pulls(21.0)
    update = a.answer(pull)
    assert update.live == (("a", ("keep",)),)  # what lives; nothing else to send
    b.merge(update, 0.0, NOW)
    assert b.get("drop") is None
    assert b.digest() == a.digest()


def test_a_restarted_owner_replaces_what_peers_hold_of_its_past() -> None:
    old, peer = _replica("a", 60), _replica("b", 60)
    old.restart((), 1.0, 1.0)
    old.register("ghost", (), 1.0, 1.0)
    _sync(peer, old)
    new = _replica("a", 60)  # an empty disk
    new.restart([AgentRecord("n", "fresh", 0, ("c",), 0)], 5.0, 5.0)
    _sync(peer, new, now=5.0)
    assert peer.get("ghost") is None
    assert peer.get("fresh") is not None


def test_hearing_a_later_self_jumps_past_it() -> None:
    a = _replica("a", 60)
    a.hear([Head("a", 10**12)], SOURCE, NOW)
    assert a.head("a") > 10**12
    assert a.take_news() == [Head("a", a.head("a"))]
    assert a.pulls(0.0) == []
    assert a.answer(RegistryPull((Head("a", 5),))).live == (("a", ()),)


def test_a_local_listing_by_capability_shows_own_agents_that_moved_elsewhere() -> None:
    a, b = _replica("a", 60), _replica("b", 60)
    a.register("x", ("mine",), 1.0, 1.0)
    b.register("x", ("theirs",), 2.0, 2.0)  # the newest claim is b's
    _sync(a, b)
    assert [r.owner for r in a.page(Query(capability="mine"), None, 10, local=False)] == []
    assert [
        (r.owner, r.agent_id) for r in a.page(Query(capability="mine"), None, 10, local=True)
    ] == [("a", "x")]


def test_heads_and_records_of_an_owner_that_is_no_member_are_refused() -> None:
    b = _replica("b")
    assert b.hear([Head("ghost", 10)], SOURCE, NOW) == {"unknown_owner": 1}
    assert b.pulls(NOW) == []
    forged = AgentUpdate((AgentRecord("ghost", "x", 5, (), 5),), (Head("ghost", 5),))
    merged = b.merge(forged, 0.0, NOW)
    assert merged.dropped["unknown_owner"] == 1
    assert b.get("x") is None


def test_nothing_from_a_clock_far_ahead_is_believed() -> None:
    b = _replica("b")
    now = 1_000_000.0
    ahead = int((now + MAX_CLOCK_SKEW + 1) * 1000)
    assert b.hear([Head("a", ahead)], SOURCE, now) == {"from_future": 1}
    b.hear([Head("b", 2**62)], SOURCE, now)  # not even of itself: its head stays sane
    assert b.head("b") == 0
    update = AgentUpdate((AgentRecord("a", "x", 5, (), ahead),), (Head("a", 5),))
    merged = b.merge(update, 0.0, now)
    assert merged.dropped["from_future"] == 1  # a changed_at that would outrank everyone
    assert b.get("x") is None


def test_an_answer_larger_than_any_node_sends_is_refused_whole() -> None:
    b = _replica("b")
    records = tuple(AgentRecord("a", f"x{i}", i + 1, (), 1) for i in range(MAX_ANSWER_RECORDS + 1))
    merged = b.merge(AgentUpdate(records, (Head("a", len(records)),)), 0.0, NOW)
    assert merged.dropped == {"oversized_answer": 1}
    assert b.count() == 0


# No ghosts: an owner is live only while membership says so.


def _file_of(owner: str, *agent_ids: str) -> tuple[list[AgentRecord], list[tuple[Head, int]]]:
    """What a node's file holds of ``owner``: its agents (and a tombstone), and its head."""
    records = [AgentRecord(owner, i, n + 1, (), 1000 + n) for n, i in enumerate(agent_ids)]
    records.append(AgentRecord(owner, "removed", len(agent_ids) + 1, (), 999, deleted=True))
    return records, [(Head(owner, len(agent_ids) + 1), 0)]


def test_owners_loaded_from_the_file_are_unreachable_until_membership_reports_them() -> None:
    b = Replica("b", 60)
    b.member_changed("b", up=True, route="b:8080", now=10.0)
    b.load(*_file_of("a", "x", "y"), now=10.0)
    x = b.get("x")
    assert x is not None
    assert b.status(x) == UNREACHABLE  # never active with no route to give
    assert b.unreachable_count() == 2
    b.member_changed("a", up=True, route="a:8080", now=12.0)
    assert b.status(x) == ACTIVE
    assert b.unreachable_count() == 0
    assert b.expire(1000.0).gone == ()  # up: kept, however long


def test_owners_nobody_reports_are_dropped_after_ttl_with_their_tombstones() -> None:
    """A node without gossip (or whose peers are gone) holding a clustered past's rows."""
    b = Replica("b", 60)
    b.load(*_file_of("a", "x"), now=10.0)
    assert b.expire(69.9).gone == ()
    assert b.get("x") is not None
    assert b.expire(70.0).gone == ("a",)
    assert b.get("x") is None
    assert b.count() == 0
    assert b.others() == ((), ())  # what the file should keep of them: nothing
    assert b.hear([Head("a", 9)], SOURCE, NOW) == {"unknown_owner": 1}


def test_a_loaded_owner_reported_dead_stays_down_since_it_was_loaded() -> None:
    b = Replica("b", 60)
    b.load(*_file_of("a", "x"), now=10.0)
    b.member_changed("a", up=False, route="a:8080", now=50.0)
    assert b.expire(70.0).gone == ("a",)


def test_an_owner_up_without_an_http_route_is_not_active() -> None:
    b = Replica("b", 60)
    b.member_changed("a", up=True, route=None, now=0.0)
    a = _replica("a")
    a.register("x", (), 1.0, 1.0)
    _sync(b, a)
    x = b.get("x")
    assert x is not None
    assert b.status(x) == UNREACHABLE
    b.member_changed("a", up=True, route="a:8080", now=1.0)
    assert b.status(x) == ACTIVE


# Clocks: expiry on the monotonic clock, conflicts by what each node had seen.


def test_tombstones_expire_ttl_after_this_node_took_them_whatever_their_times_say() -> None:
    b = _replica("b", ttl=60)
    # An owner whose clock is slow: its tombstone's change time is long past.
    slow = AgentUpdate(
        (AgentRecord("a", "x", 5, (), 1000, deleted=True), AgentRecord("a", "y", 6, (), 1000)),
        (Head("a", 6),),
    )
    assert b.next_deadline() == math.inf  # all owners up, no tombstone: nothing to wake for
    b.merge(slow, 500.0, NOW)
    assert b.next_deadline() == 560.0
    assert b.expire(559.0).forgotten == ()
    assert b.expire(560.0).forgotten == (("a", "x"),)
    b.register("x", (), 590.0, NOW)
    b.deregister("x", 600.0, 10 * NOW)  # a wall clock far ahead expires nothing sooner
    assert b.expire(659.0).forgotten == ()
    assert b.expire(660.0).forgotten == (("b", "x"),)


def test_a_claim_made_after_seeing_another_outranks_it_however_fast_the_other_clock() -> None:
    fast, slow, third = _replica("a"), _replica("b"), _replica("c")
    fast.register("x", ("first",), 1.0, NOW + 200)  # a clock 200 s ahead, within the bound
    _sync(slow, fast)
    moved = slow.register("x", ("moved",), 2.0, NOW + 10)  # later, knowing a's claim
    assert moved.version > fast.head("a")
    for order in ((fast, slow), (slow, fast)):
        reader = _replica("c")
        for source in order:
            _sync(reader, source)
        found = reader.get("x")
        assert found is not None
        assert (found.owner, found.capabilities) == ("b", ("moved",))
    _sync(fast, slow)  # the fast owner too sees its agent moved
    found = fast.get("x")
    assert found is not None
    assert found.owner == "b"
    _sync(third, slow)
    assert [r.agent_id for r in third.page(Query(capability="moved"), None, 10, local=False)] == [
        "x"
    ]


def test_a_fast_clock_decides_only_between_claims_made_unaware_of_each_other() -> None:
    fast, slow, reader = _replica("a"), _replica("b"), _replica("c")
    fast.register("x", (), 1.0, NOW + 200)
    slow.register("x", (), 2.0, NOW + 10)  # concurrent: b had not heard of a's claim
    _sync(reader, fast)
    _sync(reader, slow)
    found = reader.get("x")
    assert found is not None
    assert found.owner == "a"  # the clocks decide, within MAX_CLOCK_SKEW (see above)
    fast.register("x", (), 3.0, NOW + 200 + MAX_CLOCK_SKEW)  # beyond the bound: refused
    assert reader.hear(fast.heads(), SOURCE, NOW + 10) == {"from_future": 1}
