"""A real node logging JSON lines: every line one object, requests in the access log,
member events with fields of their own."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path
from typing import Any

from tests.integration.conftest import NodeProcess, free_port, start_node

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _gossip(port: int, *seeds: int) -> tuple[str, ...]:
    flags = ("--gossip-enabled", "true", "--gossip-bind", f"127.0.0.1:{port}")
    return flags + (("--gossip-seeds", f"127.0.0.1:{seeds[0]}") if seeds else ())


def _wait_member(node: NodeProcess, name: str, state: str) -> None:
    deadline = time.monotonic() + 15
    while True:
        members = node.request("GET", "/members").json["members"]
        if any(m["name"] == name and m["state"] == state for m in members):
            return
        assert time.monotonic() < deadline, members
        time.sleep(0.1)


def test_json_lines_carry_fields_requests_and_member_events(tmp_path: Path) -> None:
    gossip_a, gossip_b = free_port(), free_port()
    a = start_node(
        tmp_path,
        "--log-format",
        "json",
        "--http-access-log",
        "true",
        *_gossip(gossip_a),
        name="a",
        db_name="a.db",
    )
    b = start_node(tmp_path, *_gossip(gossip_b, gossip_a), name="b", db_name="b.db")
    try:
        _wait_member(a, "b", "alive")
        assert a.request("PUT", "/agents/zo%C3%AB-1", {"capabilities": ["x"]}).status == 400
        assert a.request("PUT", "/agents/planner-1", {"capabilities": ["x"]}).status == 201
        assert a.request("GET", "/agents/planner-1").status == 200
        assert b.signal(signal.SIGTERM) == 0
        _wait_member(a, "b", "left")
    finally:
        if b.proc.poll() is None:
            b.proc.kill()
        assert a.signal(signal.SIGTERM) == 0
    lines: list[dict[str, Any]] = [json.loads(line) for line in a.log().splitlines()]

    for line in lines:
        assert ISO_UTC.fullmatch(line["time"]), line
        assert line["node"] == "a"
        assert line["level"] in ("DEBUG", "INFO", "WARNING", "ERROR")
        assert line["logger"].startswith("caxton_actors"), line
    messages = [line["message"] for line in lines]
    assert any(m.startswith("node a started") for m in messages), messages

    access = [line for line in lines if line["logger"] == "caxton_actors.access"]
    by_route = {(x["method"], x["route"], x["status"]): x for x in access}
    got = by_route["GET", "/agents/{agent_id}", 200]
    assert got["path"] == "/agents/planner-1"
    assert got["client"] == "127.0.0.1"
    assert got["duration_ms"] >= 0
    assert by_route["PUT", "/agents/{agent_id}", 201]["level"] == "INFO"
    assert by_route["PUT", "/agents/{agent_id}", 400]["path"] == "/agents/zoë-1"  # decoded
    assert ("GET", "/members", 200) in by_route

    events = [line for line in lines if line.get("member") == "b"]
    assert [(e["event"], e["previous"], e["state"]) for e in events] == [
        ("joined", None, "alive"),
        ("left", "alive", "left"),
    ]
    assert all(isinstance(e["incarnation"], int) for e in events)
    assert events[0]["logger"] == "caxton_actors.actors.membership"
