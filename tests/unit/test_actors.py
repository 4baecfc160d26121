"""The registry actor and the HTTP resources, in process, on the real runtime."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon.testing
import gevent
import pykka
import pytest

from bench.common import sample_lag
from caxton_actors.actors.registry import (
    CountAgents,
    GetAgent,
    ListAgents,
    PutAgent,
    RegistryActor,
)
from caxton_actors.engine.registry import RegistryStage
from caxton_actors.http.app import create_app
from caxton_actors.http.resources import Actors
from caxton_actors.metrics import NullMetrics
from caxton_actors.registry.query import Query
from caxton_actors.registry.replica import Replica
from caxton_actors.registry.store import StoreUnavailable
from caxton_actors.runtime.actor import GeventActor
from caxton_actors.state.service import StateService


class Stuck(GeventActor):
    """An actor that takes far longer than any caller waits."""

    def on_receive(self, message: Any) -> Any:
        gevent.sleep(1)


class Locked(GeventActor):
    """A registry whose file another process holds locked."""

    def on_receive(self, message: Any) -> Any:
        raise StoreUnavailable("database is locked")


@pytest.fixture(autouse=True)
def _stop_all() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all()


def _stage() -> RegistryStage:
    return RegistryStage(Replica("n1", 60.0))


def _registry(tmp_path: Path) -> pykka.ActorRef[Any]:
    return RegistryActor.start(tmp_path / "state.db", _stage(), 60.0, NullMetrics())


def test_sustained_writes_do_not_stall_the_hub(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    lags: list[float] = []
    sampler = gevent.spawn(sample_lag, lags, 0.005)

    def writer(w: int) -> None:
        for i in range(150):
            registry.ask(PutAgent(f"a{w}-{i}", ("cap",)), timeout=10)

    gevent.joinall([gevent.spawn(writer, w) for w in range(32)], raise_error=True)
    sampler.kill()
    assert registry.ask(CountAgents(), timeout=1) == 32 * 150
    # Committing 4,800 rows takes far longer than this; the hub never waits for it.
    assert max(lags) < 0.1, f"worst hub stall {max(lags) * 1000:.0f} ms"
    assert len(lags) > 10


def test_concurrent_requests_share_commits_and_keep_order(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    put = registry.ask(PutAgent("x", ("old",)), block=False)
    update = registry.ask(PutAgent("x", ("new",)), block=False)
    read = registry.ask(GetAgent("x"), block=False)
    assert put.get(timeout=5).created
    assert not update.get(timeout=5).created
    assert read.get(timeout=5).capabilities == ("new",)
    assert registry.ask(ListAgents(Query(capability="old"), None, 10), timeout=5) == []


def test_a_file_it_cannot_use_fails_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-db.db"
    bad.write_bytes(b"this is not an sqlite file" * 100)
    with pytest.raises(StoreUnavailable, match="not a database"):
        RegistryActor.start(bad, _stage(), 60.0, NullMetrics())


def _client(
    registry: pykka.ActorRef[Any], **others: pykka.ActorRef[Any]
) -> falcon.testing.TestClient:
    refs = (("registry", registry), *others.items())
    actors = Actors(registry, None, None, refs, 0.1, StateService({}, 0.1, NullMetrics()))
    # Falcon's test client names falconframework.org as the Host, which the node refuses.
    return falcon.testing.TestClient(create_app(actors, NullMetrics()), {"Host": "localhost"})


def test_an_actor_that_does_not_answer_is_a_503_naming_it() -> None:
    client = _client(Stuck.start())
    reply = client.simulate_get("/agents/a1")
    assert reply.status_code == 503
    assert reply.json["description"] == "the registry actor did not answer within 0.1s"


def test_a_stopped_actor_is_a_503() -> None:
    registry = GeventActor.start()
    registry.stop()
    reply = _client(registry).simulate_get("/health/gossip")
    assert reply.status_code == 503
    assert "not running" in reply.json["description"]


def test_an_unavailable_store_is_a_503_that_says_why() -> None:
    reply = _client(Locked.start()).simulate_put("/agents/a1", json={"capabilities": []})
    assert reply.status_code == 503
    assert reply.json["description"] == "the database is unavailable: database is locked"


def test_ready_names_what_failed(tmp_path: Path) -> None:
    client = _client(_registry(tmp_path), http=Stuck.start())
    reply = client.simulate_get("/health/ready")
    assert reply.status_code == 503
    assert reply.json == {
        "status": "unavailable",
        "failed": ["the http actor did not answer within 0.1s"],
    }
