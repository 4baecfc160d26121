"""One-for-one supervision: restart, count, log once, give up past the intensity."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import pykka
import pytest

from caxton_actors import metrics
from caxton_actors.runtime.actor import GeventActor, Ping, ask, watch
from caxton_actors.runtime.supervisor import Slot, Supervisor


class Fragile(GeventActor):
    """Crashes on the message "crash" (told: nobody to hand the exception to)."""

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise ValueError("injected fault")
        return super().on_receive(message)


class Counted:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def incr(self, name: str, count: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + count

    def gauge(self, name: str, value: float) -> None:
        pass

    def timing(self, name: str, ms: float) -> None:
        pass


class Harness:
    def __init__(self, max_restarts: int = 3) -> None:
        self.stats = Counted()
        self.restarted: list[str] = []
        self.gave_up: list[str] = []
        self.supervisor = Supervisor(
            self.stats, self.restarted.append, self.gave_up.append, max_restarts=max_restarts
        )


@pytest.fixture
def harness() -> Iterator[Harness]:
    running = Harness()
    yield running
    running.supervisor.stop()
    pykka.ActorRegistry.stop_all()


def _eventually(check: Callable[[], bool], within: float = 2.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not in time"
        gevent.sleep(0.01)


def _noting(ends: list[str], name: str) -> Callable[[BaseException | None], None]:
    return lambda _cause: ends.append(name)


def _crash(slot: Slot[Any]) -> pykka.ActorRef[Any]:
    ref = slot.ref
    assert ref is not None
    slot.tell("crash")
    return ref


def test_a_slot_is_dead_until_started_then_its_actor() -> None:
    slot: Slot[Fragile] = Slot("fragile")
    assert not slot.is_alive()
    with pytest.raises(pykka.ActorDeadError, match="the fragile actor is not running"):
        slot.tell("x")
    with pytest.raises(pykka.ActorDeadError, match="the fragile actor is not running"):
        ask(slot, Ping(), 1.0)
    slot.ref = Fragile.start()
    assert ask(slot, Ping(), 1.0) is True
    slot.ref.stop()


def test_a_crashed_child_is_restarted_counted_and_logged_once(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    slot: Slot[Fragile] = Slot("fragile")
    harness.supervisor.start(slot, Fragile.start)
    caplog.set_level(logging.INFO)
    first = _crash(slot)
    _eventually(lambda: harness.restarted == ["fragile"])
    assert not first.is_alive()
    assert slot.ref is not first
    assert ask(slot, Ping(), 1.0) is True
    assert harness.stats.counts == {f"{metrics.ACTOR_RESTARTS}.fragile": 1}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "the fragile actor crashed (ValueError: injected fault); restarting it" in (
        errors[0].getMessage()
    )
    assert errors[0].exc_info is not None  # the traceback, once


def test_more_restarts_than_allowed_within_the_window_give_up() -> None:
    harness = Harness(max_restarts=2)
    slot: Slot[Fragile] = Slot("fragile")
    harness.supervisor.start(slot, Fragile.start)
    for restarts in (1, 2):
        _crash(slot)
        _eventually(lambda: len(harness.restarted) == restarts)  # noqa: B023 - waited on here
    _crash(slot)
    _eventually(lambda: bool(harness.gave_up))
    assert harness.gave_up == [
        "the fragile actor crashed (ValueError: injected fault), after 2 restarts within 60s"
    ]
    assert not slot.is_alive()
    assert harness.stats.counts == {f"{metrics.ACTOR_RESTARTS}.fragile": 2}
    harness.supervisor.stop()


def test_a_restart_that_fails_counts_as_another_crash() -> None:
    harness = Harness(max_restarts=2)
    slot: Slot[Fragile] = Slot("fragile")

    def cannot_start() -> pykka.ActorRef[Fragile]:
        raise OSError("port in use")

    harness.supervisor.start(slot, Fragile.start, cannot_start)
    _crash(slot)
    _eventually(lambda: bool(harness.gave_up))
    assert "could not be restarted" in harness.gave_up[0]
    assert harness.restarted == []
    harness.supervisor.stop()


def test_stop_stops_children_last_first_and_restarts_nothing(harness: Harness) -> None:
    stopped: list[str] = []
    slots = [Slot[Fragile](name) for name in ("first", "second")]
    for slot in slots:
        harness.supervisor.start(slot, Fragile.start)
        ref = slot.ref
        assert ref is not None
        watch(ref, _noting(stopped, slot.name))
    harness.supervisor.stop()
    _eventually(lambda: len(stopped) == 2)
    assert stopped == ["second", "first"]
    gevent.sleep(0.05)
    assert harness.restarted == []
    assert not any(slot.is_alive() for slot in slots)


def test_watch_says_why_an_actor_ended() -> None:
    causes: list[BaseException | None] = []
    crashing, stopping = Fragile.start(), Fragile.start()
    watch(crashing, causes.append)
    crashing.tell("crash")
    _eventually(lambda: len(causes) == 1)
    watch(stopping, causes.append)
    stopping.stop(block=True)
    _eventually(lambda: len(causes) == 2)
    assert isinstance(causes[0], ValueError)
    assert causes[1] is None
