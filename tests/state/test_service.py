"""The state service: bindings, the inline tools it keeps open, and what its errors say."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from pathlib import Path

import gevent
import pytest
import ujson

from caxton_actors.metrics import NullMetrics
from caxton_actors.state import service as service_module
from caxton_actors.state.contract import StateError
from caxton_actors.state.service import MAX_INLINE_TOOLS, StateService
from caxton_actors.state.specs import ToolSpec, parse_tool_spec
from tests.state.conftest import REDIS_URL


def test_inline_tools_are_off_unless_turned_on(tmp_path: Path) -> None:
    named = {"files": parse_tool_spec({"type": "filesystem", "config": {"root": str(tmp_path)}})}
    service = StateService(named, 1.0, NullMetrics())  # the default, as in Config
    try:
        assert service.binding("files") == '"files"'
        with pytest.raises(StateError) as caught:
            service.binding({"type": "redis", "config": {"url": REDIS_URL}})
        assert caught.value.kind == "bad_value"
        assert "state_tools_inline: true turns them on" in str(caught.value)
        assert "name a configured one: files" in str(caught.value)
    finally:
        service.close()


def test_only_so_many_inline_tools_stay_open() -> None:
    service = StateService({}, 2.0, NullMetrics(), inline=True)
    run = uuid.uuid4().hex[:8]
    bindings = [
        service.binding(
            {"type": "redis", "config": {"url": REDIS_URL, "namespace": f"test-{run}-{i}:"}}
        )
        for i in range(MAX_INLINE_TOOLS + 5)
    ]
    try:
        for i, binding in enumerate(bindings):
            service.call(binding, "store", "a", "k", i)
            assert service.call(binding, "retrieve", "a", "k") == (True, i)
        assert len(service._tools) <= MAX_INLINE_TOOLS
        assert service.call(bindings[0], "retrieve", "a", "k") == (True, 0)  # reopened
    finally:
        for binding in bindings:
            service.call(binding, "delete", "a", "k")
        service.close()


def test_a_stored_inline_tool_stops_when_inline_tools_are_turned_off(tmp_path: Path) -> None:
    namespace = f"test-{uuid.uuid4().hex[:8]}:"
    on = StateService({}, 2.0, NullMetrics(), inline=True)
    binding = on.binding({"type": "redis", "config": {"url": REDIS_URL, "namespace": namespace}})
    on.close()
    off = StateService({}, 2.0, NullMetrics())  # the node restarted with the default
    try:
        with pytest.raises(StateError) as caught:
            off.call(binding, "store", "a", "k", 1)
        assert caught.value.kind == "unavailable"
        assert "state_tools_inline is false" in str(caught.value)
    finally:
        off.close()


def test_a_stored_inline_tool_the_rules_now_refuse_is_not_opened(tmp_path: Path) -> None:
    # Registered before inline filesystem tools were refused: kept in SQLite as it was.
    binding = ujson.dumps({"type": "filesystem", "config": {"root": str(tmp_path / "any")}})
    service = StateService({}, 2.0, NullMetrics(), inline=True)
    try:
        with pytest.raises(StateError) as caught:
            service.call(binding, "store", "a", "k", 1)
        assert caught.value.kind == "unavailable"
        assert "wherever this node may" in str(caught.value)
        assert not (tmp_path / "any").exists()
    finally:
        service.close()


SECRET = "hunter2-pw"
URL = f"redis://:{SECRET}@127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("failure", "kind"),
    [(ConnectionError, "backend"), (lambda said: StateError("unavailable", said), "unavailable")],
)
def test_a_failing_tool_says_nothing_of_its_secrets(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    failure: Callable[[str], Exception],
    kind: str,
) -> None:
    def fails(spec: ToolSpec, timeout: float) -> None:
        raise failure(f"cannot connect to {URL} (password {SECRET})")

    monkeypatch.setattr(service_module, "open_tool", fails)
    named = {"cache": parse_tool_spec({"type": "redis", "config": {"url": URL}})}
    with caplog.at_level(logging.WARNING):
        service = StateService(named, 1.0, NullMetrics())  # opens it at start-up: logs
        try:
            with pytest.raises(StateError) as caught:
                service.call('"cache"', "retrieve", "a", "k")
            with gevent.Timeout(2):
                while "could not be opened at start-up" not in caplog.text:
                    gevent.sleep(0.01)
        finally:
            service.close()
    assert caught.value.kind == kind
    assert "redis://:***@127.0.0.1:6379/0" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert SECRET not in caplog.text
