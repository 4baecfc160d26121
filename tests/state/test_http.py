"""Agent state over a real node's HTTP API, on real stores."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import NodeProcess, start_node
from tests.state.conftest import POSTGRES_URL, REDIS_URL

TIMEOUT = 1.5
JSON = {"Content-Type": "application/json"}
SECRET = "s3cret-pw"
# This machine's PostgreSQL trusts 127.0.0.1, so any password does: an inline postgres tool
# must give one (else libpq would use the node's).
POSTGRES_WITH_PASSWORD = POSTGRES_URL.replace("postgres@", f"postgres:{SECRET}@")


@pytest.fixture(scope="module")
def blackhole() -> Iterator[int]:
    """A TCP port that accepts connections and never answers: a store that hangs."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()
    for conn in held:
        conn.close()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, blackhole: int) -> Iterator[NodeProcess]:
    workdir = tmp_path_factory.mktemp("state")
    config = {
        "caxton_config": {
            "state_timeout": f"{TIMEOUT}s",
            "state_tools_inline": True,
            "state_tools": {
                "files": {"type": "filesystem", "config": {"root": str(workdir / "files")}},
                "cache": {
                    "type": "redis",
                    "config": {"url": REDIS_URL, "namespace": f"http-{uuid.uuid4().hex[:8]}:"},
                },
                "hangs": {
                    "type": "redis",
                    "config": {"url": f"redis://127.0.0.1:{blackhole}/0"},
                },
                "down": {"type": "redis", "config": {"url": "redis://127.0.0.1:1/0"}},
            },
        }
    }
    path = workdir / "caxton.yaml"
    path.write_text(yaml.safe_dump(config))
    running = start_node(workdir, "--config", str(path))
    yield running
    running.request("GET", "/health")
    running.proc.terminate()
    running.proc.wait(timeout=20)


def _register(node: NodeProcess, agent: str, tool: object) -> None:
    body: dict[str, object] = {"capabilities": ["work"]}
    if tool is not None:
        body["state_tool"] = tool
    reply = node.request("PUT", f"/agents/{agent}", body)
    assert reply.status in (200, 201), reply.json


@pytest.mark.parametrize(
    "tool",
    [
        "files",
        "cache",
        {"type": "postgres", "config": {"url": POSTGRES_WITH_PASSWORD, "table": "http_state"}},
    ],
    ids=["filesystem", "redis", "postgres"],
)
def test_an_agent_stores_reads_lists_and_deletes_its_state(node: NodeProcess, tool: object) -> None:
    agent = f"agent-{uuid.uuid4().hex[:8]}"
    _register(node, agent, tool)
    base = f"/agents/{agent}/state"
    assert node.request("PUT", f"{base}/checkpoints/{agent}/latest", {"step": 7}).status == 204
    assert node.request("PUT", f"{base}/checkpoints/{agent}/v1", [1, "two"]).status == 204
    assert node.request("PUT", f"{base}/conversations/c1/messages/0", "hi").status == 204
    assert node.request("PUT", f"{base}/empty", raw=b"null", headers=JSON).status == 204
    empty = node.request("GET", f"{base}/empty")
    assert (empty.status, empty.raw) == (200, b"null")
    assert node.request("DELETE", f"{base}/empty").status == 204
    assert node.request("GET", f"{base}/checkpoints/{agent}/latest").json == {"step": 7}
    assert node.request("GET", f"{base}/checkpoints/{agent}/v1").json == [1, "two"]
    listed = node.request("GET", f"{base}?prefix=checkpoints/").json
    assert listed == {"keys": [f"checkpoints/{agent}/latest", f"checkpoints/{agent}/v1"]}
    assert len(node.request("GET", base).json["keys"]) == 3
    assert node.request("DELETE", f"{base}/checkpoints/{agent}/v1").status == 204
    missing = node.request("GET", f"{base}/checkpoints/{agent}/v1")
    assert missing.status == 404
    assert "no state" in missing.json["description"]


def test_stateless_and_unknown_agents_are_told_so(node: NodeProcess) -> None:
    _register(node, "stateless-1", None)
    reply = node.request("GET", "/agents/stateless-1/state/k")
    assert reply.status == 409
    assert "stateless" in reply.json["description"]
    assert node.request("PUT", "/agents/nobody/state/k", 1).status == 404
    named = node.request("PUT", "/agents/x", {"capabilities": [], "state_tool": "nope"})
    assert named.status == 400
    assert "no state tool named 'nope'" in named.json["description"]
    inline = node.request(
        "PUT", "/agents/x", {"capabilities": [], "state_tool": {"type": "floppy"}}
    )
    assert inline.status == 400
    launches = node.request(
        "PUT",
        "/agents/x",
        {"capabilities": [], "state_tool": {"type": "mcp", "config": {"command": ["sh"]}}},
    )
    assert launches.status == 400
    assert "name a configured tool to launch one" in launches.json["description"]
    assert node.request("GET", "/agents/x").status == 404  # nothing was registered


@pytest.mark.parametrize(
    ("tool", "words"),
    [
        (
            {"type": "redis", "config": {"url": REDIS_URL, "password": SECRET}},
            "state_tool.config.password: a redis state tool has no setting 'password'",
        ),
        ({"type": "redis", "config": {}}, "state_tool.config.url: a redis state tool needs url"),
        ({"type": "redis", "url": REDIS_URL}, "state_tool.url: "),
        ({"type": "postgres", "config": {"url": "mysql://h/db"}}, "state_tool.config.url: "),
        (
            {"type": "filesystem", "config": {"root": "/tmp/anywhere"}},
            "state_tool.type: an inline filesystem tool could write wherever this node may",
        ),
        ({"type": "s3", "config": {"bucket": "b"}}, "state_tool.config.access_key_id: "),
        (
            {"type": "postgres", "config": {"url": POSTGRES_URL}},
            "state_tool.config.url: an inline postgres url gives its own user and password",
        ),
    ],
    ids=["unknown-key", "missing-key", "misplaced", "scheme", "filesystem", "s3", "no-password"],
)
def test_an_inline_tool_that_cannot_work_is_refused_at_registration(
    node: NodeProcess, tool: object, words: str
) -> None:
    reply = node.request("PUT", "/agents/refused", {"capabilities": [], "state_tool": tool})
    assert reply.status == 400, reply.json
    assert reply.json["description"].startswith(words)
    assert SECRET not in reply.raw.decode()
    assert node.request("GET", "/agents/refused").status == 404  # nothing was registered
    assert not Path("/tmp/anywhere").exists()


def test_inline_tools_are_off_by_default(tmp_path: Path) -> None:
    plain = start_node(tmp_path)
    try:
        tool = {"type": "redis", "config": {"url": REDIS_URL}}
        reply = plain.request("PUT", "/agents/a", {"capabilities": [], "state_tool": tool})
        assert reply.status == 400
        assert "state_tools_inline: true turns them on" in reply.json["description"]
        assert plain.request("GET", "/agents/a").status == 404
    finally:
        plain.proc.terminate()
        plain.proc.wait(timeout=20)


def test_tool_credentials_are_never_returned(node: NodeProcess) -> None:
    tool = {"type": "postgres", "config": {"url": POSTGRES_WITH_PASSWORD, "table": "http_state"}}
    put = node.request("PUT", "/agents/private-1", {"capabilities": ["x"], "state_tool": tool})
    assert put.status in (200, 201), put.json
    assert node.request("PUT", "/agents/private-1/state/k", {"v": 1}).status == 204
    down = {"type": "redis", "config": {"url": f"redis://:{SECRET}@127.0.0.1:1/0"}}
    _register(node, "private-2", down)
    failed = node.request("GET", "/agents/private-2/state/k")
    assert failed.status == 502
    replies = [
        put,
        failed,
        node.request("GET", "/agents/private-1"),
        node.request("GET", "/agents"),
        node.request("GET", "/agents?scope=local"),
        node.request("GET", "/agents/private-1/route"),
        node.request("GET", "/agents/private-1/state/k"),
        node.request("GET", "/health"),
        node.request("GET", "/health/ready"),
    ]
    for reply in replies:
        assert SECRET not in reply.raw.decode(), reply.raw
    assert "private-1" in node.request("GET", "/agents").raw.decode()
    assert SECRET not in node.log()


@pytest.mark.parametrize(
    ("path", "raw", "status", "words"),
    [
        ("/agents/keeper/state/..%2F..%2Fescape", b"1", 400, "each '/'-separated part"),
        ("/agents/keeper/state/a/../b", b"1", 400, "each '/'-separated part"),
        ("/agents/keeper/state/.hidden", b"1", 400, "each '/'-separated part"),
        ("/agents/keeper/state/k", b"{not json", 400, "not valid JSON"),
        ("/agents/keeper/state/k", b"", 400, "empty"),
        ("/agents/keeper/state/k", b'"' + b"x" * (1024 * 1024 + 10) + b'"', 413, "larger"),
    ],
)
def test_bad_state_input_is_refused_and_writes_nothing(
    node: NodeProcess, path: str, raw: bytes, status: int, words: str
) -> None:
    _register(node, "keeper", "files")
    reply = node.request("PUT", path, raw=raw, headers={"Content-Type": "application/json"})
    assert reply.status == status, reply.json
    assert words in reply.json["description"]
    assert node.request("GET", "/agents/keeper/state").json == {"keys": []}


def test_a_failing_store_is_a_502_and_a_hanging_one_a_504_and_the_node_stays_up(
    node: NodeProcess,
) -> None:
    _register(node, "unlucky", "down")
    failed = node.request("PUT", "/agents/unlucky/state/k", 1)
    assert failed.status == 502
    assert "redis state tool failed" in failed.json["description"]

    _register(node, "patient", "hangs")
    answers: dict[str, float] = {}

    def slow() -> None:
        started = time.monotonic()
        reply = node.request("GET", "/agents/patient/state/k")
        answers["status"] = reply.status
        answers["seconds"] = time.monotonic() - started

    caller = threading.Thread(target=slow)
    caller.start()
    time.sleep(0.2)
    started = time.monotonic()
    assert node.request("GET", "/health").status == 200  # the hub is free meanwhile
    assert time.monotonic() - started < 0.5
    caller.join(timeout=10)
    assert answers["status"] == 504
    assert TIMEOUT <= answers["seconds"] < TIMEOUT + 2


def test_state_files_stay_inside_the_root(node: NodeProcess, tmp_path: Path) -> None:
    _register(node, "tidy", "files")
    assert node.request("PUT", "/agents/tidy/state/deep/er/key", {"a": 1}).status == 204
    root = Path(node.db_path).parent / "files"
    assert (root / "agent:tidy" / "deep" / "er" / "key.json").is_file()


@pytest.mark.parametrize("tool", ["files", "cache"], ids=["filesystem", "redis"])
def test_an_agent_of_a_scope_keeps_its_own_state(node: NodeProcess, tool: str) -> None:
    """Agent ``x`` of scope ``s`` and agent ``s`` of the default scope share no key, though
    keys may hold ``/``."""
    team = f"t{uuid.uuid4().hex[:8]}"
    for path in (f"/agents/{team}", f"/agents/x?scope={team}"):
        assert node.request("PUT", path, {"capabilities": [], "state_tool": tool}).status == 201
    assert node.request("PUT", f"/agents/{team}/state/x/k", "default's").status == 204
    assert node.request("PUT", f"/agents/x/state/k?scope={team}", "scoped").status == 204
    assert node.request("GET", f"/agents/x/state/k?scope={team}").json == "scoped"
    assert node.request("GET", f"/agents/{team}/state/x/k").json == "default's"
    assert node.request("GET", f"/agents/x/state?scope={team}").json == {"keys": ["k"]}
    assert node.request("GET", f"/agents/{team}/state").json == {"keys": ["x/k"]}
    assert node.request("GET", "/agents/x/state/k").status == 404  # no x in the default scope


def test_a_hung_store_holds_only_its_own_threads(node: NodeProcess) -> None:
    _register(node, "stuck", "hangs")
    _register(node, "free", "files")
    statuses: list[int] = []

    def call() -> None:
        statuses.append(node.request("GET", "/agents/stuck/state/k").status)

    callers = [threading.Thread(target=call) for _ in range(12)]
    for caller in callers:
        caller.start()
    time.sleep(0.3)
    started = time.monotonic()
    assert node.request("PUT", "/agents/free/state/k", 1).status == 204
    assert time.monotonic() - started < 1.0  # another tool is not starved
    for caller in callers:
        caller.join(timeout=15)
    assert statuses.count(504) == 12  # 8 waited out the deadline, 4 were refused at once
