"""Discovery on the pure replica: scopes, card term indexes, the change feed, and watches
(``watch.Log`` and what each watcher sees of an event)."""

from __future__ import annotations

import pytest
import ujson

from caxton_actors.engine.messages import Packet
from caxton_actors.registry.cards import MAX_CARD_BYTES, NO_TERMS, terms
from caxton_actors.registry.query import Query
from caxton_actors.registry.records import (
    AgentRecord,
    AgentUpdate,
    Head,
    key_of,
    parse_token,
    split_key,
    token,
)
from caxton_actors.registry.replica import MAX_ANSWER_CARD_BYTES, Change, Replica
from caxton_actors.registry.store import Agent
from caxton_actors.registry.watch import ADDED, REMOVED, UNREACHABLE, UPDATED, Log, Seen, seen
from caxton_actors.wire import codec
from tests.unit.test_replica import NOW, SOURCE, _replica, _sync


def _card(name: str, description: str = "An agent.", **skills: list[str]) -> str:
    """Card text as ``cards.validate`` returns it: compact JSON; ``skills``: id to tags."""
    listed = [{"id": s, "name": s, "tags": tags} for s, tags in skills.items()]
    card = {"name": name, "description": description, "skills": listed or _SKILL}
    return ujson.dumps(card, ensure_ascii=False, escape_forward_slashes=False)


_SKILL = [{"id": "chat", "name": "chat", "tags": ["talk"]}]


def _ids(records: list[AgentRecord]) -> list[str]:
    return [r.agent_id for r in records]


# Keys and tokens.


def test_a_key_is_the_bare_id_in_the_default_scope_and_splits_back() -> None:
    assert key_of("default", "x") == "x"
    assert key_of("team", "x") == "team/x"
    assert split_key("team/x") == ("team", "x")
    assert split_key("x") == ("default", "x")
    assert AgentRecord("a", "x", 1, (), 0, scope="team").key == "team/x"


@pytest.mark.parametrize(
    "text",
    [
        "node-a",
        "node-a:",
        ":5",
        "node-a:-5",
        "node-a:1.5",
        "node-a:٣",
        "a:" + "9" * 5000,
        "node-a:0",
        "no such node:5",
    ],
)
def test_what_is_not_a_token_parses_to_none(text: str) -> None:
    assert parse_token(text) is None


def test_a_token_parses_back() -> None:
    assert parse_token(token("node-a", 1764561234567)) == ("node-a", 1764561234567)


# Scopes.


def test_the_same_id_in_two_scopes_is_two_agents() -> None:
    a, b = _replica("a"), _replica("b")
    a.register("x", ("k",), 1.0, 1.0)
    a.register("x", ("k", "team-only"), 1.0, 1.0, scope="team", card=_card("Team X"))
    default, team = a.get("x"), a.get("x", "team")
    assert default is not None
    assert team is not None
    assert (default.scope, default.card, team.scope) == ("default", None, "team")
    assert team.capabilities == ("k", "team-only")
    assert a.get("x", "other") is None
    assert _ids(a.page(Query(capability="k"), None, 10, local=False)) == ["x"]
    assert a.page(Query(capability="team-only"), None, 10, local=False) == []
    in_team = a.page(Query("team", capability="k"), None, 10, local=False)
    assert [(r.scope, r.agent_id) for r in in_team] == [("team", "x")]
    assert a.page(Query("team", skill="chat"), None, 10, local=True) == [team]
    assert (a.count(), a.count("default"), a.count("team"), a.count("other")) == (2, 1, 1, 0)
    assert a.digest("default") != a.digest("team")
    _sync(b, a)
    assert [b.digest(s) for s in ("default", "team")] == [a.digest(s) for s in ("default", "team")]
    assert b.get("x", "team") == team
    team_digest = a.digest("team")
    a.deregister("x", 2.0, 2.0)  # the default scope's x only
    assert a.get("x") is None
    assert a.get("x", "team") == team
    assert a.digest("team") == team_digest
    assert (a.count("default"), a.digest("default")) == (0, "0" * 16)
    b.member_changed("a", up=False, route=None, now=3.0)
    assert (b.unreachable_count("team"), b.unreachable_count("other")) == (1, 0)


# Term indexes.


def _catalogue() -> Replica:
    """a holds cook and bake (its own) and chef and robot (b's)."""
    a, b = _replica("a"), _replica("b")
    cook = _card("Recipe Agent", "Finds recipes for what you have.", recipes=["cooking", "food"])
    bake = _card("Bakery Bot", "Bakes bread.", recipes=["baking", "food"], ovens=["baking"])
    chef = _card("Chef", "Plans recipes and menus.", menus=["cooking"])
    robot = _card("Robot", "Moves boxes.", lift=["warehouse"])
    a.register("cook", ("kitchen",), 1.0, 1.0, card=cook)
    a.register("bake", ("kitchen", "oven"), 1.0, 1.0, card=bake)
    b.register("chef", ("kitchen",), 1.0, 1.0, card=chef)
    b.register("robot", ("lift",), 1.0, 1.0, card=robot)
    _sync(a, b)
    return a


@pytest.mark.parametrize(
    ("query", "found"),
    [
        (Query(capability="kitchen"), ["bake", "chef", "cook"]),
        (Query(skill="recipes"), ["bake", "cook"]),
        (Query(tag="cooking"), ["chef", "cook"]),
        (Query(tag="baking"), ["bake"]),
        (Query(words=("recipes",)), ["chef", "cook"]),
        (Query(words=("recipes", "menus")), ["chef"]),
        (Query(words=("recipe", "agent")), ["cook"]),  # from the name too
        (Query(capability="kitchen", tag="food"), ["bake", "cook"]),
        (Query(capability="kitchen", skill="recipes", tag="food", words=("bread",)), ["bake"]),
        (Query(capability="lift", skill="recipes"), []),
        (Query(skill="nobody"), []),
        (Query(), ["bake", "chef", "cook", "robot"]),
        (Query("team"), []),
    ],
)
def test_a_page_holds_exactly_the_agents_every_term_finds(query: Query, found: list[str]) -> None:
    a = _catalogue()
    assert _ids(a.page(query, None, 100, local=False)) == found
    local = [i for i in found if i in ("bake", "cook")]
    assert _ids(a.page(query, None, 100, local=True)) == local


def test_pages_by_card_terms_resume_after_the_cursor() -> None:
    a = _replica("a")
    for i in range(7):
        a.register(f"id{i}", (), 1.0, 1.0, card=_card(f"Agent {i}", s=["odd" if i % 2 else "t"]))
    query, pages, cursor = Query(skill="s"), [], None
    while page := a.page(query, cursor, 3, local=False):
        pages.append(_ids(page))
        cursor = page[-1].agent_id
    assert pages == [["id0", "id1", "id2"], ["id3", "id4", "id5"], ["id6"]]
    assert _ids(a.page(Query(tag="odd", words=("agent",)), "id1", 10, local=False)) == [
        "id3",
        "id5",
    ]


def test_the_index_follows_the_newest_claim() -> None:
    a, b, c = _replica("a"), _replica("b"), _replica("c")
    a.register("x", ("old",), 1.0, 1.0, card=_card("Old Name", "Before.", legacy=["past"]))
    b.register("x", ("new",), 2.0, 2.0, card=_card("New Name", "After.", modern=["now"]))
    _sync(c, a)
    assert _ids(c.page(Query(skill="legacy"), None, 10, local=False)) == ["x"]
    _sync(c, b)  # x moved to b with another card
    for query in (Query(skill="legacy"), Query(tag="past"), Query(words=("old",))):
        assert c.page(query, None, 10, local=False) == []
    for query in (Query(skill="modern"), Query(tag="now"), Query(words=("after",))):
        assert [r.owner for r in c.page(query, None, 10, local=False)] == ["b"]
    found = c.get("x")
    assert found is not None
    assert c.terms(found).skills == ("modern",)
    b.deregister("x", 3.0, 3.0)
    _sync(c, b)  # back to a's claim and its card
    assert _ids(c.page(Query(skill="legacy"), None, 10, local=False)) == ["x"]
    assert c.page(Query(skill="modern"), None, 10, local=False) == []


# The change feed.


def test_each_change_to_what_reads_show_is_one_change() -> None:
    a = _replica("a")
    first = a.register("x", ("v1",), 1.0, 1.0)
    assert a.take_changes() == [Change(None, first)]
    assert a.take_changes() == []
    second = a.register("x", ("v2",), 2.0, 2.0, card=_card("X"))
    assert a.take_changes() == [Change(first, second)]  # not a removal then an addition
    a.deregister("x", 3.0, 3.0)
    assert a.take_changes() == [Change(second, None)]
    assert a.deregister("x", 4.0, 4.0) is None
    assert a.take_changes() == []


def test_a_peers_changes_come_through_merges_and_only_newest_claims_count() -> None:
    a, b, c = _replica("a"), _replica("b"), _replica("c")
    mine = a.register("mine", (), 1.0, 1.0)
    a.register("moved", (), 1.0, 1.0)
    theirs = b.register("moved", (), 2.0, 2.0)
    _sync(c, a)
    _sync(c, b)
    assert [ch.after for ch in c.take_changes()] == [mine, a.get("moved"), theirs]
    b.deregister("moved", 3.0, 3.0)
    _sync(c, b)
    assert c.take_changes() == [Change(theirs, a.get("moved"))]  # a's claim shows again


def test_an_owner_going_down_and_back_changes_each_of_its_newest_claims() -> None:
    a, b, c = _replica("a"), _replica("b"), _replica("c")
    x = a.register("x", (), 1.0, 1.0)
    y = a.register("y", (), 1.0, 1.0, scope="team")
    a.register("z", (), 1.0, 1.0)
    b.register("z", (), 2.0, 2.0)  # z is b's now: a going down does not change it
    _sync(c, a)
    _sync(c, b)
    c.take_changes()
    c.member_changed("a", up=False, route="a:8080", now=5.0)
    assert c.take_changes() == [Change(x, x), Change(y, y)]
    c.member_changed("a", up=False, route="a:8080", now=6.0)  # still down
    assert c.take_changes() == []
    c.member_changed("a", up=True, route="a:8080", now=7.0)
    assert c.take_changes() == [Change(x, x), Change(y, y)]


# Bounds on what a peer sends.


def test_a_record_with_a_bad_card_or_scope_is_dropped() -> None:
    b = _replica("b")
    big = _card("Big", "word " * (MAX_CARD_BYTES // 5))
    update = AgentUpdate(
        (
            AgentRecord("a", "not-json", 1, (), 0, card="{nope"),
            AgentRecord("a", "not-a-card", 2, (), 0, card='{"name": "no skills"}'),
            AgentRecord("a", "a-list", 3, (), 0, card="[]"),
            AgentRecord("a", "too-big", 4, (), 0, card=big),
            AgentRecord("a", "slash", 5, (), 0, scope="a/b"),
            AgentRecord("a", "long", 6, (), 0, scope="s" * 65),
            AgentRecord("a", "ok", 7, (), 0, scope="team", card=_card("Fine")),
        ),
        (Head("a", 7),),
    )
    merged = b.merge(update, 0.0, NOW)
    assert [r.agent_id for r in merged.stored] == ["ok"]
    assert merged.dropped == {"bad_card": 4, "bad_scope": 2}
    assert (b.count(), b.get("ok", "team")) == (1, update.records[-1])
    assert b.get("slash", "a/b") is None


def _big_card(i: int, filler: str) -> str:
    """A card just under 16 KiB as UTF-8, its description ``filler`` repeated."""
    card = _card(f"Agent {i}", "", s=["t"])
    room = MAX_CARD_BYTES - len(card.encode())
    text = _card(f"Agent {i}", filler * (room // len(filler.encode())), s=["t"])
    assert len(text.encode()) <= MAX_CARD_BYTES
    return text


@pytest.mark.parametrize("filler", ["abc ", "料理", "/"], ids=["ascii", "japanese", "slashes"])
def test_an_answer_of_large_cards_fits_the_stream_and_the_asker_pulls_the_rest(
    filler: str,
) -> None:
    a, b = _replica("a"), _replica("b")
    agents = 900 if filler == "料理" else 300  # past the cut as the codec counts bytes
    for i in range(agents):
        a.register(f"x{i:03d}", (), 1.0, 1.0, scope="team", card=_big_card(i, filler))
    parts = 0
    while b.head("a") != a.head("a"):
        b.hear(a.heads(), SOURCE, NOW)
        [(_, pull)] = b.pulls(0.0)
        update = a.answer(pull)
        assert len(update.records) < agents  # cut
        data = codec.encode(Packet("a", update), "c", codec.MAX_STREAM_MESSAGE)
        assert len(data) <= codec.MAX_STREAM_MESSAGE
        cards = sum(len(ujson.dumps(r.card, ensure_ascii=False).encode()) for r in update.records)
        assert cards <= MAX_ANSWER_CARD_BYTES
        sent = codec.decode(data, "c", codec.MAX_STREAM_MESSAGE).message
        assert isinstance(sent, AgentUpdate)
        assert not b.merge(sent, 0.0, NOW).dropped
        parts += 1
    assert parts > 1
    assert b.count("team") == agents
    assert b.digest("team") == a.digest("team")
    assert b.digest() == a.digest()


# Watches.


def _agent(
    agent_id: str = "x", *caps: str, status: str = "active", card: str | None = None
) -> Agent:
    found = NO_TERMS if card is None else terms(card)
    return Agent(agent_id, "a", caps, 0, status, None, "default", 1, card, found)


def test_a_log_replays_what_followed_an_id_of_its_own() -> None:
    log = Log("e1", size=3)
    assert log.version == "e1-0"
    assert log.since("e1-0") == []
    events = [log.append(None, _agent(f"x{i}")) for i in range(5)]
    assert log.version == "e1-5"
    assert log.since("e1-3") == events[3:]
    assert log.since("e1-2") == events[2:]  # the oldest kept is the next one
    assert log.since("e1-5") == []
    assert log.event_id(events[4]) == "e1-5"


@pytest.mark.parametrize(
    "last_id", [None, "e2-4", "e1-1", "e1-6", "e1-x", "e1", "", "e1--1", "e1-²", "e1-" + "9" * 5000]
)
def test_a_log_gives_no_replay_for_another_life_too_old_or_the_future(
    last_id: str | None,
) -> None:
    log = Log("e1", size=3)
    for i in range(5):
        log.append(None, _agent(f"x{i}"))
    assert log.since(last_id) is None


def test_an_event_kind_says_what_happened() -> None:
    log = Log("e")
    active, down = _agent(), _agent(status="unreachable")
    assert [
        log.append(None, active).kind,
        log.append(active, _agent("x", "new")).kind,
        log.append(active, down).kind,
        log.append(down, active).kind,
        log.append(active, None).kind,
    ] == [ADDED, UPDATED, UNREACHABLE, UPDATED, REMOVED]


def test_a_watcher_sees_an_agent_enter_and_leave_its_query() -> None:
    log = Log("e")
    kitchen = Query(capability="kitchen")
    plain, cooking = _agent("x"), _agent("x", "kitchen")
    event = log.append(plain, cooking)
    assert seen(log, event, kitchen) == Seen("e-1", ADDED, cooking)
    assert seen(log, event, Query()) == Seen("e-1", UPDATED, cooking)  # in it all along
    left = log.append(cooking, plain)
    assert seen(log, left, kitchen) == Seen("e-2", REMOVED, cooking)  # as it last was
    assert seen(log, log.append(plain, _agent("x", "other")), kitchen) is None
    assert seen(log, log.append(None, cooking), Query("team", capability="kitchen")) is None
    assert seen(log, log.append(cooking, None), kitchen) == Seen("e-5", REMOVED, cooking)


def test_a_watcher_sees_its_agents_turn_unreachable_and_card_terms_select() -> None:
    log = Log("e")
    card = _card("Chef", "Plans menus.", menus=["cooking"])
    up, down = _agent("x", card=card), _agent("x", status="unreachable", card=card)
    event = log.append(up, down)
    for query in (Query(skill="menus"), Query(tag="cooking"), Query(words=("menus", "chef"))):
        assert seen(log, event, query) == Seen("e-1", UNREACHABLE, down)
    assert seen(log, event, Query(skill="cooking")) is None
    assert seen(log, event, Query(words=("chef", "waiter"))) is None
