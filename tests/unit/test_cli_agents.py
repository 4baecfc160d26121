"""``caxton-actors agents``, listing and ``--watch``, against a scripted HTTP server:
what the CLI asks for, how it prints, and how it resumes a dropped watch."""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from caxton_actors import cli, client
from caxton_actors.client import ServerEvent, server_events

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def _agent(agent_id: str, scope: str = "default", status: str = "active") -> dict[str, Any]:
    return {
        "id": agent_id,
        "scope": scope,
        "node_id": "node-a",
        "capabilities": ["plan"],
        "last_seen": 1,
        "status": status,
        "route": "http://127.0.0.1:9",
        "version": 1,
        "skills": [],
        "tags": [],
        "name": None,
    }


def _event(kind: str, data: object, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


class Script(BaseHTTPRequestHandler):
    """Answers each GET with the next scripted (status, body), then closes the
    connection (HTTP/1.0): to a watch, a dropped stream. Past the script: 503."""

    answers: ClassVar[list[tuple[int, bytes]]] = []
    seen: ClassVar[list[tuple[str, str | None]]] = []  # path, Last-Event-ID

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Last-Event-ID")))
        status, body = self.answers.pop(0) if self.answers else (503, b'{"title": "busy"}')
        self.send_response(status)
        stream = status == 200 and self.path.startswith("/agents/watch")
        self.send_header("Content-Type", "text/event-stream" if stream else "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[Script]]:
    monkeypatch.setattr(client, "BACKOFF", 0.01)
    monkeypatch.setattr(Script, "answers", [])
    monkeypatch.setattr(Script, "seen", [])
    server = ThreadingHTTPServer(("127.0.0.1", 0), Script)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("CAXTON_HTTP_ADDR", f"127.0.0.1:{server.server_address[1]}")
    yield Script
    server.shutdown()
    server.server_close()


def _query(path: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))


def test_server_events_follow_the_event_stream_rules() -> None:
    stream = [
        b": keep-alive\n",
        b"\n",
        b"id: 7-1\r\n",
        b"event: snapshot\n",
        b'data: {"a":\n',
        b"data: 1}\n",
        b"\n",
        b"event: nothing\n",  # no data: no event
        b"\n",
        b"data:no space\n",
        b"\n",
    ]
    assert list(server_events(stream)) == [
        ServerEvent("snapshot", '{"a":\n1}', "7-1"),
        ServerEvent("message", "no space"),
    ]


def test_listing_pages_with_cursor_and_filters_and_names_a_scope(
    node: type[Script], capsys: pytest.CaptureFixture[str]
) -> None:
    node.answers = [
        (200, json.dumps({"agents": [_agent("a1", "team-x")], "next": "a1"}).encode()),
        (200, json.dumps({"agents": [_agent("a2", "team-x")], "next": None}).encode()),
    ]
    argv = ["agents", "--scope", "team-x", "--skill", "k", "--tag", "t", "--q", "two words"]
    assert cli.main([*argv, "--local"]) == 0
    first, second = (_query(path) for path, _ in node.seen)
    assert first == {
        "limit": "1000",
        "scope": "team-x",
        "skill": "k",
        "tag": "t",
        "q": "two words",
        "local": "true",
    }
    assert second == {**first, "cursor": "a1"}
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["AGENT", "SCOPE", "NODE"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["a1", "team-x", "node-a"],
        ["a2", "team-x", "node-a"],
    ]


def test_the_default_scope_has_no_scope_column(
    node: type[Script], capsys: pytest.CaptureFixture[str]
) -> None:
    node.answers = [(200, json.dumps({"agents": [_agent("a1")], "next": None}).encode())]
    assert cli.main(["agents"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split()[:2] == ["AGENT", "NODE"]
    assert row.split()[:3] == ["a1", "node-a", "active"]


def test_a_watch_resumes_from_the_last_event_and_replaces_the_set_on_a_fresh_snapshot(
    node: type[Script], capsys: pytest.CaptureFixture[str]
) -> None:
    node.answers = [
        (
            200,
            _event("snapshot", {"version": "e-1", "agents": [_agent("a1")]}, "e-1")
            + b": keep-alive\n\n"
            + _event("added", _agent("a2"), "e-2"),
        ),  # then the connection drops
        (
            200,
            _event("unreachable", _agent("a2", status="unreachable"), "e-3")
            + _event("closed", {"reason": "slow consumer"}),
        ),
        (503, b'{"title": "Service Unavailable", "description": "64 watches"}'),
        (200, _event("snapshot", {"version": "f-1", "agents": [_agent("a3")]}, "f-1")),
    ]  # then 503s until the CLI gives up
    assert cli.main(["agents", "--watch", "--capability", "plan"]) == client.EXIT_UNREACHABLE
    assert [(_query(path), last) for path, last in node.seen[:4]] == [
        ({"capability": "plan"}, None),
        ({"capability": "plan"}, "e-2"),
        ({"capability": "plan"}, "e-3"),
        ({"capability": "plan"}, "e-3"),
    ]
    assert len(node.seen) == 4 + client.RECONNECTS
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("watching agents at")
    events = [line.split()[1:3] for line in lines if re.match(STAMP, line)]
    assert events == [
        ["snapshot", "a1"],
        ["added", "a2"],
        ["unreachable", "a2"],
        ["closed", "slow"],
        ["snapshot", "a3"],
    ]
    assert sum(line.startswith("TIME") for line in lines) == 2  # a fresh table
    assert "503: 64 watches; reconnecting" in err
    assert err.count("reconnected to") == 2
    assert err.rstrip().endswith(f"gave up after {client.RECONNECTS} reconnections")


def test_a_json_watch_prints_only_json_and_a_refusal_ends_it(
    node: type[Script], capsys: pytest.CaptureFixture[str]
) -> None:
    node.answers = [
        (200, _event("snapshot", {"version": "e-1", "agents": []}, "e-1")),
        (400, b'{"title": "Bad Request", "description": "snapshot too large"}'),
    ]
    assert cli.main(["agents", "--watch", "--json", "--scope", "s"]) == 1
    out, err = capsys.readouterr()
    (line,) = out.splitlines()
    event = json.loads(line)
    assert re.fullmatch(STAMP, event.pop("time"))
    assert event == {"event": "snapshot", "id": "e-1", "data": {"version": "e-1", "agents": []}}
    assert err.splitlines()[0].startswith("watching agents at")
    assert err.rstrip().endswith("400: snapshot too large")


def test_a_watch_refused_at_first_is_not_retried(
    node: type[Script], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["agents", "--watch"]) == 1
    assert len(node.seen) == 1
    assert "503: busy" in capsys.readouterr().err


def test_watch_refuses_filters_the_watch_does_not_take() -> None:
    assert cli.main(["agents", "--watch", "--local"]) == cli.EXIT_CONFIG
