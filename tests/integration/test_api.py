"""Every endpoint of one real node, over real HTTP."""

from __future__ import annotations

import http.client
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.integration.conftest import NodeProcess, start_node


def test_health_get_and_head(api: NodeProcess) -> None:
    assert api.request("GET", "/health").json == {"status": "ok"}
    head = api.request("HEAD", "/health")
    assert head.status == 200
    assert head.raw == b""


def test_ready_names_nothing_failed(api: NodeProcess) -> None:
    reply = api.request("GET", "/health/ready")
    assert reply.status == 200
    assert reply.json == {"status": "ready", "failed": []}


def test_gossip_health_on_a_single_node(api: NodeProcess) -> None:
    api.request("PUT", "/agents/gossip-counted", {"capabilities": []})
    body = api.request("GET", "/health/gossip").json
    assert body["peer_count"] == 0
    assert body["last_sync"] is None
    assert body["status"] == "healthy"
    assert body["agent_count"] >= 1


def test_agent_lifecycle(api: NodeProcess) -> None:
    created = api.request("PUT", "/agents/planner-1", {"capabilities": ["plan", "chat", "plan"]})
    assert created.status == 201
    assert created.json["capabilities"] == ["plan", "chat"]
    assert created.json["node_id"] == "itest"
    assert created.json["status"] == "active"
    updated = api.request("PUT", "/agents/planner-1", {"capabilities": ["chat"]})
    assert updated.status == 200
    got = api.request("GET", "/agents/planner-1").json
    assert got["capabilities"] == ["chat"]
    assert got["last_seen"] >= created.json["last_seen"]
    plan = api.request("GET", "/agents?capability=plan").json["agents"]
    assert "planner-1" not in [a["id"] for a in plan]
    assert api.request("DELETE", "/agents/planner-1").status == 204
    assert api.request("GET", "/agents/planner-1").status == 404
    assert api.request("DELETE", "/agents/planner-1").status == 404


def test_route_digest_and_local_scope_on_a_single_node(api: NodeProcess) -> None:
    assert api.request("PUT", "/agents/router-1", {"capabilities": ["route"]}).status == 201
    route = api.request("GET", "/agents/router-1/route").json
    assert route == {
        "agent_id": "router-1",
        "node_id": "itest",
        "route": f"http://127.0.0.1:{api.port}",
        "status": "active",
    }
    local = api.request("GET", "/agents?local=true&capability=route").json["agents"]
    assert [a["id"] for a in local] == ["router-1"]
    before = api.request("GET", "/registry/digest").json
    assert api.request("DELETE", "/agents/router-1").status == 204
    after = api.request("GET", "/registry/digest").json
    assert after["agents"] == before["agents"] - 1
    assert after["digest"] != before["digest"]
    assert after["heads"]["itest"] > before["heads"]["itest"]


def test_a_node_refuses_agents_past_its_limit(tmp_path: Path) -> None:
    node = start_node(tmp_path, "--registry-max-agents", "2")
    try:
        for agent in ("a", "b"):
            assert node.request("PUT", f"/agents/{agent}", {"capabilities": []}).status == 201
        refused = node.request("PUT", "/agents/c", {"capabilities": []})
        assert refused.status == 409
        assert "limit of 2 agents" in refused.json["description"]
        assert node.request("GET", "/agents/c").status == 404
        assert node.request("PUT", "/agents/a", {"capabilities": ["x"]}).status == 200
        assert node.request("DELETE", "/agents/b").status == 204
        assert node.request("PUT", "/agents/c", {"capabilities": []}).status == 201
    finally:
        node.signal(signal.SIGTERM)


def test_capability_lookup_pages_through_everything(api: NodeProcess) -> None:
    ids = [f"pager-{i:02d}" for i in range(25)]
    for agent_id in ids:
        assert api.request("PUT", f"/agents/{agent_id}", {"capabilities": ["paged"]}).status == 201
    seen: list[str] = []
    path = "/agents?capability=paged&limit=10"
    while True:
        page = api.request("GET", path).json
        seen += [a["id"] for a in page["agents"]]
        if page["next"] is None:
            break
        path = f"/agents?capability=paged&limit=10&cursor={page['next']}"
    assert seen == ids


def test_conversations(api: NodeProcess) -> None:
    created = api.request("POST", "/conversations", {"participants": ["a", "b"]})
    assert created.status == 201
    conversation_id = created.json["id"]
    assert created.headers["location"] == f"/conversations/{conversation_id}"
    assert api.request("GET", f"/conversations/{conversation_id}").json == created.json
    time.sleep(0.01)
    touched = api.request("POST", f"/conversations/{conversation_id}/activity")
    assert touched.status == 200
    assert touched.json["last_activity"] > created.json["last_activity"]
    named = api.request("POST", "/conversations", {"id": "conv-x", "participants": ["a"]})
    assert named.json["id"] == "conv-x"
    assert (
        api.request("POST", "/conversations", {"id": "conv-x", "participants": ["a"]}).status == 409
    )
    assert api.request("GET", "/conversations/nope").status == 404
    assert api.request("POST", "/conversations/nope/activity").status == 404


def test_correlations_expire_before_the_reaper_runs(api: NodeProcess) -> None:
    made = api.request("POST", "/correlations", {"sender_id": "s1", "ttl": "300ms"})
    assert made.status == 201
    correlation_id = made.json["correlation_id"]
    assert made.json["expires_at"] - made.json["created_at"] == 300
    assert api.request("GET", f"/correlations/{correlation_id}").status == 200
    time.sleep(0.4)
    assert api.request("GET", f"/correlations/{correlation_id}").status == 404


def test_correlation_given_id_conflict_and_delete(api: NodeProcess) -> None:
    body = {"correlation_id": "corr-1", "sender_id": "s", "ttl": 60}
    assert api.request("POST", "/correlations", body).status == 201
    assert api.request("POST", "/correlations", body).status == 409
    assert api.request("DELETE", "/correlations/corr-1").status == 204
    assert api.request("GET", "/correlations/corr-1").status == 404
    assert api.request("POST", "/correlations", body).status == 201


def test_reaper_deletes_expired_rows(api: NodeProcess) -> None:
    api.request("POST", "/correlations", {"correlation_id": "reaped", "sender_id": "s", "ttl": 0.1})
    time.sleep(1.6)  # past the ttl and at least one reap interval (1s)
    rows = sqlite3.connect(api.db_path).execute(
        "SELECT count(*) FROM pending_messages WHERE correlation_id = 'reaped'"
    )
    assert rows.fetchone() == (0,)


def test_keep_alive_connection_is_fast(api: NodeProcess) -> None:
    """With Nagle on, each keep-alive request would wait ~40 ms for a delayed ACK."""
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=5)
    started = time.perf_counter()
    for _ in range(50):
        conn.request("GET", "/health")
        assert conn.getresponse().read() == b'{"status":"ok"}'
    elapsed = time.perf_counter() - started
    conn.close()
    assert elapsed < 1.0, f"50 keep-alive requests took {elapsed:.2f}s"


BAD_REQUESTS = [
    # (method, path, raw body, headers, status, words in the description)
    ("PUT", "/agents/a1", b"{not json", None, 400, "not valid JSON"),
    ("PUT", "/agents/a1", b"[1, 2]", None, 400, "JSON object"),
    ("PUT", "/agents/a1", b"", None, 400, "empty"),
    ("PUT", "/agents/a1", b"{}", None, 400, "missing field: capabilities"),
    ("PUT", "/agents/a1", b'{"capabilities": "chat"}', None, 400, "array"),
    ("PUT", "/agents/a1", b'{"capabilities": [1]}', None, 400, "must be a string"),
    ("PUT", "/agents/a1", b'{"capabilities": [""]}', None, 400, "1 to 128"),
    ("PUT", "/agents/a1", b'{"capabilities": [], "x": 1}', None, 400, "unknown field(s): x"),
    ("PUT", "/agents/" + "a" * 129, b'{"capabilities": []}', None, 400, "1 to 128"),
    ("PUT", "/agents/bad%20id", b'{"capabilities": []}', None, 400, "may hold only"),
    ("PUT", "/agents/a1%0A", b'{"capabilities": []}', None, 400, "may hold only"),
    (
        "PUT",
        "/agents/a1",
        b'{"capabilities": []}',
        {"Content-Type": "text/plain"},
        415,
        "application/json",
    ),
    (
        "PUT",
        "/agents/a1",
        b'{"capabilities": ["' + b"c" * 70_000 + b'"]}',
        None,
        413,
        "larger than",
    ),
    ("POST", "/conversations", b'{"participants": []}', None, 400, "1 to 64"),
    ("POST", "/correlations", b'{"sender_id": "s", "ttl": "soon"}', None, 400, "ttl"),
    ("POST", "/correlations", b'{"sender_id": "s", "ttl": -1}', None, 400, "ttl"),
    ("POST", "/correlations", b'{"sender_id": "s", "ttl": true}', None, 400, "ttl"),
    ("POST", "/correlations", b'{"sender_id": "s", "ttl": "30d"}', None, 400, "ttl"),
    ("POST", "/correlations", b'{"ttl": 5}', None, 400, "missing field: sender_id"),
    ("GET", "/agents?limit=0", None, None, 400, "limit"),
    ("GET", "/agents?limit=1&limit=2", None, None, 400, "limit is given more than once"),
    ("GET", "/agents?limit=abc", None, None, 400, "limit"),
    ("GET", "/agents?capability=a%7Cb", None, None, 400, "may hold only"),
    ("GET", "/agents?scope=a/b", None, None, 400, "scope must be 1 to 64"),
    ("GET", "/agents?after=planner", None, None, 400, "after must be a token"),
    ("GET", "/agents?after=n1:5&timeout=9", None, None, 400, "timeout"),
    ("GET", "/agents?after=n1:5&timeout=nan", None, None, 400, "timeout"),  # stopped the hub
    ("GET", "/agents/watch?local=true", None, None, 400, "local is for GET /agents"),
    ("PUT", "/agents/x", b'{"card": {"name": 1}}', None, 400, "card."),
    ("GET", "/agents?q=a", None, None, 400, "q must hold"),
    ("GET", "/agents/a1/route", None, None, 404, "no agent with id 'a1'"),
    ("GET", "/no/such/route", None, None, 404, "no route /no/such/route"),
    ("POST", "/health", None, None, 405, "POST is not allowed on /health"),
    ("PATCH", "/agents/a1", None, None, 405, "allowed:"),
]


@pytest.mark.parametrize(
    ("method", "path", "raw", "headers", "status", "words"),
    BAD_REQUESTS,
    ids=[f"{m} {p[:30]} {s}" for m, p, _, _, s, _ in BAD_REQUESTS],
)
def test_bad_input_is_refused_with_a_reason_and_writes_nothing(
    api: NodeProcess,
    method: str,
    path: str,
    raw: bytes | None,
    headers: dict[str, str] | None,
    status: int,
    words: str,
) -> None:
    sent = {"Content-Type": "application/json"} if raw is not None else {}
    sent.update(headers or {})
    before = api.request("GET", "/health/gossip").json["agent_count"]
    reply = api.request(method, path, raw=raw, headers=sent)
    assert reply.status == status, reply.raw
    assert reply.headers["content-type"].startswith("application/json")
    assert words in reply.json.get("description", ""), reply.json
    assert api.request("GET", "/health/gossip").json["agent_count"] == before
    assert api.request("GET", "/agents/a1").status == 404


def test_chunked_body_over_the_limit_is_refused(api: NodeProcess) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    chunks = iter([b'{"capabilities": ["', b"c" * 70_000, b'"]}'])
    conn.request(
        "PUT",
        "/agents/chunky",
        body=chunks,
        headers={"Content-Type": "application/json"},
        encode_chunked=True,
    )
    reply = conn.getresponse()
    assert reply.status == 413
    conn.close()
    assert api.request("GET", "/agents/chunky").status == 404


def test_data_is_in_the_sqlite_file(api: NodeProcess, tmp_path: Path) -> None:
    api.request("PUT", "/agents/on-disk", {"capabilities": ["disk"]})
    row = sqlite3.connect(api.db_path).execute(
        "SELECT node_id, capabilities, status FROM agents WHERE id = 'on-disk'"
    )
    assert row.fetchone() == ("itest", '["disk"]', "active")
