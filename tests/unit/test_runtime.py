"""The gevent runtime behind pykka's private hooks: if a pykka upgrade moves
them, these fail before a node does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.event
import pykka
import pytest

from caxton_actors.runtime.actor import GeventActor, GeventFuture, Ping, ask
from caxton_actors.runtime.lag import LoopLagMonitor
from caxton_actors.runtime.timer import Alarm


class Echo(GeventActor):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message == "boom":
            raise ValueError("boom")
        if isinstance(message, tuple) and message[0] == "nap":
            gevent.sleep(message[1])
            return "rested"
        if isinstance(message, Ping):
            return super().on_receive(message)
        self.seen.append(message)
        return message


class Batcher(GeventActor):
    """Answers with how many queued messages it took in one wake-up."""

    def on_receive(self, message: Any) -> Any:
        followers = self.take_ready(lambda m: isinstance(m, int), limit=100)
        for envelope in followers:
            assert envelope.reply_to is not None
            envelope.reply_to.set(len(followers) + 1)
        return len(followers) + 1


@pytest.fixture(autouse=True)
def _stop_all() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all()


def test_ask_tell_and_greenlet_not_thread() -> None:
    ref = Echo.start()
    ref.tell("first")
    assert ref.ask("second", timeout=1) == "second"
    assert ref.proxy().seen.get(timeout=1) == ["first", "second"]
    assert isinstance(ref.ask("x", block=False), GeventFuture)
    assert ask(ref, Ping(), timeout=1) is True


def test_ask_timeout_raises_pykka_timeout() -> None:
    ref = Echo.start()
    with pytest.raises(pykka.Timeout):
        ref.ask(("nap", 1.0), timeout=0.05)


def test_exception_reaches_the_caller_and_actor_survives() -> None:
    ref = Echo.start()
    with pytest.raises(ValueError, match="boom"):
        ref.ask("boom", timeout=1)
    assert ref.ask("still here", timeout=1) == "still here"


def test_stop_answers_queued_then_refuses() -> None:
    ref = Echo.start()
    queued = ref.ask("queued", block=False)
    ref.stop(block=True, timeout=1)
    assert queued.get(timeout=1) == "queued"
    assert not ref.is_alive()
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("late", timeout=1)


def test_a_sleeping_actor_does_not_block_the_others() -> None:
    sleeper, other = Echo.start(), Echo.start()
    napping = sleeper.ask(("nap", 0.5), block=False)
    started = time.perf_counter()
    for i in range(100):
        assert other.ask(i, timeout=1) == i
    assert time.perf_counter() - started < 0.4
    assert napping.get(timeout=2) == "rested"


def test_future_get_hook_and_map() -> None:
    future: GeventFuture[int] = GeventFuture()
    future.set(20)
    assert future.map(lambda v: v + 1).get(timeout=1) == 21
    hooked: GeventFuture[str] = GeventFuture()
    hooked.set_get_hook(lambda timeout: "from hook")
    assert hooked.get(timeout=1) == "from hook"


def test_take_ready_batches_what_is_queued() -> None:
    ref = Batcher.start()
    futures = [ref.ask(i, block=False) for i in range(10)]
    sizes = [f.get(timeout=1) for f in futures]
    assert sizes == [10] * 10


def test_take_ready_stops_at_a_refused_message() -> None:
    ref = Batcher.start()
    futures = [ref.ask(m, block=False) for m in (1, "not an int", 2)]
    # 1 cannot take the string behind it; the string's wake-up takes the 2.
    assert [f.get(timeout=1) for f in futures] == [1, 2, 2]


def _ring_at(delay: float) -> gevent.event.Event:
    rung = gevent.event.Event()
    Alarm(rung.set).arm(time.monotonic() + delay)
    return rung


def test_loop_lag_is_read_off_the_alarms_and_a_blocked_hub_shows() -> None:
    lags: list[float] = []
    monitor = LoopLagMonitor(0.0, lags.append)
    monitor.start()
    assert _ring_at(0.01).wait(1)
    late = _ring_at(0.01)
    time.sleep(0.2)  # blocks the hub past the alarm's time, as a careless actor would
    assert late.wait(1)
    monitor.stop()
    assert _ring_at(0.0).wait(1)  # a stopped monitor hears no more
    assert len(lags) == 2
    assert lags[0] < 0.05
    assert lags[1] >= 0.15


def test_loop_lag_reports_the_worst_since_its_last_report_at_most_once_an_interval() -> None:
    lags: list[float] = []
    monitor = LoopLagMonitor(0.05, lags.append)
    monitor.observe(0.001)  # the first goes at once
    monitor.observe(0.3)
    monitor.observe(0.002)
    assert lags == [0.001]
    time.sleep(0.06)
    monitor.observe(0.001)
    assert lags == [0.001, 0.3]


def test_an_alarm_armed_for_a_past_time_rings_at_once_and_is_not_counted_late() -> None:
    lags: list[float] = []
    monitor = LoopLagMonitor(0.0, lags.append)
    monitor.start()
    try:
        assert _ring_at(-5.0).wait(1)
    finally:
        monitor.stop()
    assert lags[0] < 0.05


def test_the_actor_side_of_a_traceback_is_kept() -> None:
    ref = Echo.start()
    with pytest.raises(ValueError, match="boom") as caught:
        ref.ask("boom", timeout=1)
    frames = [entry.name for entry in caught.traceback]
    assert "on_receive" in frames
