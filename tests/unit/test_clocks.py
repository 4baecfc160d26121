"""Clocks: expiry on the monotonic clock, and members whose wall clocks are off ours."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import pykka
import pytest

from caxton_actors import metrics
from caxton_actors.actors.registry import (
    CreateCorrelation,
    GetCorrelation,
    Housekeeping,
    RegistryActor,
)
from caxton_actors.address import Address
from caxton_actors.clock import Clock
from caxton_actors.engine import Engine
from caxton_actors.engine.messages import ClockSkewed, Inbound, Output, Packet, Transmit
from caxton_actors.engine.registry import RegistryStage
from caxton_actors.engine.skew import SKEW_BOUND, SKEW_CONFIRM, Skew
from caxton_actors.metrics import NullMetrics
from caxton_actors.registry.replica import Replica
from caxton_actors.runtime.actor import ask
from caxton_actors.swim.messages import Ack, Alive, Gossip, Send
from caxton_actors.swim.timing import LAN

WALL = 1_700_000_000.0
B = Address("10.0.0.2", 7946)


class SetClock(Clock):
    """A clock a test sets by hand: the wall and monotonic readings apart."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.at = WALL

    def wall(self) -> float:
        return self.at

    def monotonic(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _stop_all() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all()


def test_a_wall_clock_jump_expires_no_correlation_in_the_registry_actor(tmp_path: Path) -> None:
    clock = SetClock()
    registry: pykka.ActorRef[Any] = RegistryActor.start(
        tmp_path / "state.db", RegistryStage(Replica("n1", 60.0)), 3600.0, NullMetrics(), clock
    )
    created = ask(registry, CreateCorrelation("c1", "sender", 30 * 60 * 1000), 5)
    assert created is not None
    clock.at += 3600  # the wall clock jumps an hour ahead, a second later
    clock.now += 1
    assert ask(registry, Housekeeping(), 5) == 0
    assert ask(registry, GetCorrelation("c1"), 5) == created
    clock.now += 30 * 60 - 2  # 30 minutes on the monotonic clock, less a second
    assert ask(registry, GetCorrelation("c1"), 5) == created
    clock.now += 1
    assert ask(registry, GetCorrelation("c1"), 5) is None
    assert ask(registry, Housekeeping(), 5) == 1


class Commits(NullMetrics):
    """Counts the registry's transactions and expired correlations, keeps its gauges."""

    def __init__(self) -> None:
        self.commits = 0
        self.expired = 0
        self.gauges: list[tuple[str, float]] = []

    def incr(self, name: str, count: int = 1) -> None:
        self.expired += count if name == metrics.CORRELATIONS_EXPIRED else 0

    def gauge(self, name: str, value: float) -> None:
        self.gauges.append((name, value))

    def timing(self, name: str, ms: float) -> None:
        self.commits += name == metrics.REGISTRY_COMMIT_TIME


def test_housekeeping_opens_a_transaction_only_when_a_correlation_is_due(tmp_path: Path) -> None:
    clock, stats = SetClock(), Commits()

    def start() -> pykka.ActorRef[Any]:
        stage = RegistryStage(Replica("n1", 60.0))
        return RegistryActor.start(tmp_path / "state.db", stage, 3600.0, stats, clock)

    registry = start()
    assert [ask(registry, Housekeeping(), 5) for _ in range(3)] == [0, 0, 0]
    assert stats.commits == 0
    assert ask(registry, CreateCorrelation("c1", "sender", 10_000), 5) is not None
    assert stats.commits == 1
    clock.now += 9.5
    assert ask(registry, Housekeeping(), 5) == 0
    assert stats.commits == 1
    registry.stop()
    registry = start()  # a restart takes the deadline from the file (no wall time passed)
    clock.now += 9.5
    assert ask(registry, Housekeeping(), 5) == 0
    assert stats.commits == 1
    clock.now += 0.5
    assert ask(registry, Housekeeping(), 5) == 1
    assert ask(registry, Housekeeping(), 5) == 0
    assert stats.commits == 2
    size = [value for name, value in stats.gauges if name == metrics.AGENT_REGISTRY_SIZE]
    assert size == [0, 0]  # once an actor, as it starts: housekeeping sends only changes


def test_the_registry_sweeps_by_itself_every_reap_interval(tmp_path: Path) -> None:
    stats = Commits()
    stage = RegistryStage(Replica("n1", 60.0))
    registry = RegistryActor.start(tmp_path / "state.db", stage, 0.05, stats)
    assert ask(registry, CreateCorrelation("c1", "sender", 150), 5) is not None
    gevent.sleep(0.4)  # due at the third sweep or so: each sweep arms the next
    assert stats.expired == 1
    assert stats.commits == 2  # the creation and the one reap: none while nothing was due


def test_a_member_is_reported_once_its_clock_stays_off() -> None:
    skew = Skew()
    ahead = int((WALL + 60) * 1000)
    assert skew.observe("b", ahead, 0.0, WALL) is None  # one datagram says little
    assert skew.observe("b", ahead, SKEW_CONFIRM - 0.1, WALL) is None
    assert skew.observe("b", ahead, SKEW_CONFIRM, WALL) == 60.0
    assert skew.skewed() == {"b": 60.0}
    assert skew.observe("b", ahead, 2 * SKEW_CONFIRM, WALL) is None  # said once
    assert skew.skewed() == {"b": 60.0}
    assert skew.observe("b", int(WALL * 1000), 2 * SKEW_CONFIRM + 1, WALL) is None
    assert skew.skewed() == {}  # back within the bound
    skew.observe("c", int((WALL - SKEW_BOUND) * 1000), 0.0, WALL)  # at the bound: fine
    assert skew.skewed() == {}


def test_a_stalled_node_reading_old_datagrams_reports_nobody() -> None:
    """Datagrams that waited 30 s (we were stopped) look 30 s behind, all at once."""
    skew = Skew()
    for i in range(20):
        assert skew.observe("b", int((WALL - 30) * 1000), 100.0 + i * 0.001, WALL) is None
    assert skew.observe("b", int(WALL * 1000), 100.1, WALL) is None  # a fresh one
    assert skew.observe("b", int((WALL - 30) * 1000), 200.0, WALL) is None
    assert skew.skewed() == {}


def test_the_estimate_is_the_least_delayed_datagram() -> None:
    skew = Skew()
    behind = WALL - 20
    skew.observe("b", int(behind * 1000), 0.0, WALL + 0.5)  # took half a second
    skew.observe("b", int(behind * 1000), 3.0, WALL + 0.001)
    assert skew.observe("b", int(behind * 1000), SKEW_CONFIRM, WALL + 2) == -20.0
    skew.forget("b")
    assert skew.skewed() == {}


def _engine() -> Engine:
    """Node a, which knows member b at B."""
    engine = Engine("a", Address("10.0.0.1", 7946), LAN, random.Random(1), 0.0)
    hello = Inbound(Packet("b", Gossip(), (Alive("b", 1, B),)), B)
    engine.membership.handle(0.0, hello, wall=WALL)
    return engine


def _datagrams_from_b(engine: Engine, ahead: float, source: Address = B) -> list[Output]:
    """Eight seconds of b's datagrams, one a second, its clock ``ahead`` of ours."""
    outputs: list[Output] = []
    for t in range(8):
        packet = Packet("b", Gossip(), sent_at=int((WALL + t + ahead) * 1000))
        outputs += engine.membership.handle(1.0 + t, Inbound(packet, source), wall=WALL + t)
    return outputs


def test_membership_stamps_what_it_sends_and_reports_a_skewed_member_once() -> None:
    engine = _engine()
    [sent] = engine.membership.handle(1.0, Send(B, Ack(1)), wall=WALL)
    assert isinstance(sent, Transmit)
    assert sent.packet.sent_at == int(WALL * 1000)
    said = [o for o in _datagrams_from_b(engine, 120.0) if isinstance(o, ClockSkewed)]
    assert said == [ClockSkewed("b", 120.0)]
    assert engine.membership.skew.skewed() == {"b": 120.0}


def test_only_a_members_own_datagrams_say_anything_of_its_clock() -> None:
    engine = _engine()
    _datagrams_from_b(engine, 120.0, Address("10.0.0.9", 7946))  # someone writing b's name
    for t in range(8):  # a stream's answer, which may have been long on its way
        packet = Packet("b", Gossip(), sent_at=int((WALL + 120) * 1000))
        engine.membership.handle(1.0 + t, Inbound(packet, B, answer=True), wall=WALL)
    assert engine.membership.skew.skewed() == {}
