"""A failing state store is one warning line per call, naming agent, key, tool and cause:
real stores that fail (a closed port, a root that is a file, a server that never answers),
no traceback, no credentials."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest

from caxton_actors.metrics import NullMetrics
from caxton_actors.state.contract import StateError
from caxton_actors.state.service import StateService
from caxton_actors.state.specs import parse_tool_spec

SECRET = "hunter2-never-logged"


def _lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "caxton_actors.state.service" and r.getMessage().startswith("state ")
    ]


def _fail(service: StateService, binding: str, operation: str, *args: object) -> StateError:
    with pytest.raises(StateError) as caught:
        service.call(binding, operation, *args)
    return caught.value


def _service(tool: dict[str, object], timeout: float = 2.0) -> StateService:
    return StateService({"store": parse_tool_spec(tool)}, timeout, NullMetrics())


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


def test_a_store_on_a_closed_port_is_one_line_without_its_password(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    service = _service({"type": "redis", "config": {"url": f"redis://:{SECRET}@127.0.0.1:1/0"}})
    try:
        with caplog.at_level(logging.WARNING):
            error = _fail(service, '"store"', "store", "planner-1", "plan/step", {"n": 1})
    finally:
        service.close()
    assert error.kind == "backend"
    [line] = _lines(caplog)
    assert line.levelno == logging.WARNING
    assert line.exc_info is None
    text = line.getMessage()
    assert text.startswith(
        "state store for agent planner-1 key 'plan/step' on tool store failed: "
        "the redis state tool failed: "
    )
    assert "\n" not in text
    assert SECRET not in caplog.text
    assert "Traceback" not in capfd.readouterr().err


def test_a_filesystem_root_that_is_a_file_names_the_operation_and_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "not-a-directory"
    root.write_text("a file")
    service = _service({"type": "filesystem", "config": {"root": str(root)}})
    try:
        with caplog.at_level(logging.WARNING):
            gevent.sleep(0.2)  # the start-up opening fails first, and says so on its own
            caplog.clear()
            _fail(service, '"store"', "retrieve", "a1", "k1")
            _fail(service, '"store"', "list", "a1", "p/")
            _fail(service, '"store"', "retrieve_batch", "a1", ["k1", "k2", "k3", "k4", "k5"])
    finally:
        service.close()
    texts = [r.getMessage() for r in _lines(caplog)]
    assert [t.split(" failed: ")[0] for t in texts] == [
        "state retrieve for agent a1 key 'k1' on tool store",
        "state list for agent a1 prefix 'p/' on tool store",
        "state retrieve_batch for agent a1 keys 'k1', 'k2', 'k3' and 2 more on tool store",
    ]
    assert all("File exists" in t or "Not a directory" in t for t in texts), texts
    assert "Traceback" not in capfd.readouterr().err


def test_a_store_that_never_answers_is_a_timeout_line(
    silent_server: int, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://127.0.0.1:{silent_server}/0"
    service = _service({"type": "redis", "config": {"url": url}}, timeout=0.5)
    try:
        with caplog.at_level(logging.WARNING):
            error = _fail(service, '"store"', "delete", "a1", "k1")
    finally:
        service.close()
    assert error.kind == "timeout"
    [line] = _lines(caplog)
    assert line.getMessage() == (
        "state delete for agent a1 key 'k1' on tool store failed: "
        "the redis state tool did not answer within 0.5s"
    )


def test_the_callers_own_mistake_is_not_the_stores_and_is_not_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service = _service({"type": "filesystem", "config": {"root": str(tmp_path)}})
    try:
        with caplog.at_level(logging.WARNING):
            assert _fail(service, '"store"', "retrieve", "a1", "../up").kind == "bad_key"
    finally:
        service.close()
    assert _lines(caplog) == []
