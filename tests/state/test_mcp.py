"""MCP interoperability, both ways, on real processes and the official SDK."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.integration.conftest import NodeProcess, free_port, start_node
from tests.state.conftest import REDIS_URL

SDK_SERVER = Path(__file__).with_name("sdk_state_server.py")
KEY = "checkpoints/a1/latest"
TOOLS = {"store", "retrieve", "delete", "list", "store_batch", "retrieve_batch"}


def _serve_args(backend: str, config: str, *extra: str) -> list[str]:
    return [
        "-m",
        "caxton_actors",
        "state-tool",
        "serve",
        "--backend",
        backend,
        "--backend-config",
        config,
        *extra,
    ]


async def _exercise(target: StdioServerParameters | str) -> dict[str, Any]:
    """What the official client sees of our server."""
    async with Client(target, read_timeout_seconds=10) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        stored = await client.call_tool(
            "store", {"agent_id": "a1", "key": "checkpoints/a1/latest", "value": {"step": 2}}
        )
        read = await client.call_tool(
            "retrieve", {"agent_id": "a1", "key": "checkpoints/a1/latest"}
        )
        other = await client.call_tool(
            "retrieve", {"agent_id": "a2", "key": "checkpoints/a1/latest"}
        )
        listed = await client.call_tool("list", {"agent_id": "a1", "prefix": "checkpoints/"})
        refused = await client.call_tool(
            "store", {"agent_id": "a1", "key": "../../etc", "value": 1}
        )
        return {
            "names": names,
            "stored": stored.structured_content,
            "read": read.structured_content,
            "other": other.structured_content,
            "listed": listed.structured_content,
            "refused": (
                refused.is_error,
                " ".join(getattr(c, "text", "") for c in refused.content),
            ),
        }


def _check(seen: dict[str, Any]) -> None:
    assert seen["names"] >= TOOLS
    assert seen["stored"] == {"stored": True}
    assert seen["read"] == {"found": True, "value": {"step": 2}}
    assert seen["other"] == {"found": False, "value": None}  # scoped to its agent
    assert seen["listed"] == {"keys": [KEY]}
    is_error, text = seen["refused"]
    assert is_error
    assert "bad_key" in text


def test_the_official_client_drives_our_server_over_stdio(tmp_path: Path) -> None:
    config = f'{{"url": "{REDIS_URL}", "namespace": "mcp-{uuid.uuid4().hex[:8]}:"}}'
    target = StdioServerParameters(command=sys.executable, args=_serve_args("redis", config))
    _check(asyncio.run(_exercise(target)))


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    root = f'{{"root": "{tmp_path / "state"}"}}'
    args = _serve_args("filesystem", root, "--transport", "http", "--bind", f"127.0.0.1:{port}")
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, *args], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_the_official_client_drives_our_server_over_streamable_http(http_server: str) -> None:
    _check(asyncio.run(_exercise(http_server)))


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    workdir = tmp_path_factory.mktemp("mcp-node")
    config = {
        "caxton_config": {
            "state_timeout": "2s",
            "state_tools": {
                "business": {
                    "type": "mcp",
                    "config": {"command": [sys.executable, str(SDK_SERVER)]},
                }
            },
        }
    }
    path = workdir / "caxton.yaml"
    path.write_text(yaml.safe_dump(config))
    running = start_node(workdir, "--config", str(path))
    try:  # a node that did not open its tool is stopped too, not left running
        # The node opens configured tools at start; starting the SDK's server takes a second
        # or two, which the calls below must not pay inside their 2 s deadline.
        deadline = time.monotonic() + 20
        while "state tool business is open" not in running.log():
            assert time.monotonic() < deadline, running.log()
            time.sleep(0.1)
        yield running
    finally:
        running.proc.terminate()
        running.proc.wait(timeout=20)


def test_our_node_drives_a_server_written_on_the_official_sdk(node: NodeProcess) -> None:
    put = node.request("PUT", "/agents/biz-1", {"capabilities": [], "state_tool": "business"})
    assert put.status == 201
    base = "/agents/biz-1/state"
    assert node.request("PUT", f"{base}/conversations/c1/messages/0", {"text": "hi"}).status == 204
    assert node.request("GET", f"{base}/conversations/c1/messages/0").json == {"text": "hi"}
    assert node.request("GET", f"{base}?prefix=conversations/").json == {
        "keys": ["conversations/c1/messages/0"]
    }
    assert node.request("DELETE", f"{base}/conversations/c1/messages/0").status == 204
    assert node.request("GET", f"{base}/conversations/c1/messages/0").status == 404


def test_a_slow_mcp_tool_is_a_504_and_the_node_keeps_serving(node: NodeProcess) -> None:
    node.request("PUT", "/agents/biz-2", {"capabilities": [], "state_tool": "business"})
    started = time.monotonic()
    reply = node.request("GET", "/agents/biz-2/state/slow")
    assert reply.status == 504
    assert "did not answer within 2s" in reply.json["description"]
    assert time.monotonic() - started < 5
    assert node.request("GET", "/health").status == 200
    assert node.request("PUT", "/agents/biz-2/state/fast", 1).status == 204  # the session lives
