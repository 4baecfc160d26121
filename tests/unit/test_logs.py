"""Log lines: JSON for machines (fields, extra, exceptions, any text), text unchanged,
and the access log of the HTTP API."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import falcon.testing
import pykka
import pytest

from caxton_actors import logs
from caxton_actors.http.app import create_app
from caxton_actors.http.resources import Actors
from caxton_actors.metrics import NullMetrics
from caxton_actors.runtime.actor import GeventActor
from caxton_actors.state.service import StateService

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


class Lines:
    """A logger whose records are formatted as the node would, into a string."""

    def __init__(self, log_format: str, name: str = "caxton_actors.test") -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(logs.formatter(log_format, "node-1"))
        self.logger = logging.getLogger(name)
        self.logger.addHandler(self.handler)
        self.logger.setLevel(logging.DEBUG)
        self.logger.propagate = False

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def json(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]

    def close(self) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.propagate = True


@pytest.fixture
def as_json() -> Iterator[Lines]:
    lines = Lines("json")
    yield lines
    lines.close()


def test_a_json_line_has_time_level_logger_node_and_message(as_json: Lines) -> None:
    as_json.logger.info("node %s started (database %s)", "node-1", "a.db")
    [line] = as_json.json()
    assert list(line) == ["time", "level", "logger", "node", "message"]
    assert ISO_UTC.fullmatch(line["time"]), line["time"]
    assert line["level"] == "INFO"
    assert line["logger"] == "caxton_actors.test"
    assert line["node"] == "node-1"
    assert line["message"] == "node node-1 started (database a.db)"


def test_extra_fields_follow_and_never_replace_the_fixed_ones(as_json: Lines) -> None:
    extra = {"member": "n2", "state": "dead", "previous": None, "incarnation": 7, "node": "x"}
    as_json.logger.warning("member %s", "n2", extra=extra)
    [line] = as_json.json()
    assert line["node"] == "node-1"  # the node's name, not the field a caller passed
    assert {k: line[k] for k in ("member", "state", "previous", "incarnation")} == {
        "member": "n2",
        "state": "dead",
        "previous": None,
        "incarnation": 7,
    }
    assert list(line)[:5] == ["time", "level", "logger", "node", "message"]


def test_an_exception_is_one_field_and_the_line_stays_one_line(as_json: Lines) -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        as_json.logger.exception("housekeeping failed; will retry")
    [raw] = as_json.lines()
    line = json.loads(raw)
    assert line["level"] == "ERROR"
    assert line["exception"].startswith("Traceback (most recent call last):")
    assert line["exception"].endswith("ValueError: bad\nthing")


def test_any_text_is_an_ascii_line_that_decodes_to_itself(as_json: Lines) -> None:
    text = 'Zoë 東京 \u2028 \n forged \x1b[31m \udc80 / "q"'
    as_json.logger.info("%s", text, extra={"path": text})
    [raw] = as_json.lines()
    assert raw.isascii()
    line = json.loads(raw)
    assert line["message"] == line["path"] == text


def test_a_field_json_cannot_hold_is_shown_not_lost(as_json: Lines) -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    as_json.logger.info("odd", extra={"thing": object(), "big": 2**70})
    as_json.logger.info("odder", extra={"cycle": cycle, "nan": float("nan"), "n": 1})
    odd, odder = as_json.json()
    assert odd["thing"].startswith("<object object at ")
    assert odd["big"] == 2**70
    assert (odder["message"], odder["cycle"], odder["nan"], odder["n"]) == (
        "odder",
        "[[...]]",
        "nan",
        1,
    )


def test_text_lines_are_as_before() -> None:
    lines = Lines("text")
    try:
        lines.logger.info("member %s", "n2", extra={"member": "n2"})
    finally:
        lines.close()
    [line] = lines.lines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO node-1 caxton_actors\.test: member n2", line
    ), line


# The access log, through the app the node serves.


@pytest.fixture
def app_client() -> Iterator[Any]:
    def make(access_log: bool) -> falcon.testing.TestClient:
        ref: pykka.ActorRef[Any] = GeventActor.start()
        actors = Actors(ref, None, None, (), 1.0, StateService({}, 1.0, NullMetrics()))
        app = create_app(actors, NullMetrics(), access_log=access_log)
        return falcon.testing.TestClient(app, {"Host": "localhost"})

    yield make
    pykka.ActorRegistry.stop_all()


@pytest.fixture
def access() -> Iterator[Lines]:
    lines = Lines("json", "caxton_actors.access")
    yield lines
    lines.close()


def test_each_request_is_one_line_with_its_route_template(app_client: Any, access: Lines) -> None:
    client = app_client(access_log=True)
    assert client.simulate_get("/health").status_code == 200
    assert client.simulate_post("/agents/a1", headers={"Content-Type": "text/plain"}).status_code
    served, refused = access.json()
    assert served["logger"] == "caxton_actors.access"
    assert served["level"] == "INFO"
    assert {k: served[k] for k in ("method", "route", "path", "status", "client")} == {
        "method": "GET",
        "route": "/health",
        "path": "/health",
        "status": 200,
        "client": "127.0.0.1",
    }
    assert isinstance(served["duration_ms"], float)
    assert served["duration_ms"] >= 0
    assert served["message"].startswith("GET /health 200 ")
    assert (refused["method"], refused["route"], refused["path"]) == (
        "POST",
        "/agents/{agent_id}",
        "/agents/a1",
    )
    assert refused["status"] in (405, 415)


def test_a_path_that_would_forge_a_line_is_quoted_in_text(app_client: Any) -> None:
    lines = Lines("text", "caxton_actors.access")
    try:
        client = app_client(access_log=True)
        assert client.simulate_get("/nope%0A2026-01-01 INFO forged").status_code == 404
    finally:
        lines.close()
    [line] = lines.lines()
    assert " GET - 404 " in line
    assert "path '/nope\\n2026-01-01 INFO forged'" in line


def test_no_access_log_unless_asked(app_client: Any, access: Lines) -> None:
    client = app_client(access_log=False)
    assert client.simulate_get("/health").status_code == 200
    assert access.lines() == []
