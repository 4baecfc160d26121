"""``caxton-actors registry serve``: the official MCP client finds agents on a real node,
over stdio and streamable HTTP, through a real token."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from tests.integration.conftest import NodeProcess, free_port, start_node
from tests.support.cards import RECIPE_CARD, card

READ_SECRET = "discovery-read-0123456789"
WRITE_SECRET = "discovery-write-0123456789"
TOKENS = f"reader:read:{READ_SECRET},writer:write:{WRITE_SECRET}"
PASTRY = card("Pastry Chef", [("bake-cake", ["cooking", "baking"])])
TRANSLATOR = card("Translator", [("translate", ["language"])])
NIGHT_COOK = card("Night Cook", [("find-recipe", ["cooking"])])
Target = StdioServerParameters | str  # stdio: how to launch the server; http: its URL


def _serve(port: int, *extra: str) -> list[str]:
    return ["-m", "caxton_actors", "registry", "serve", "--http", f"127.0.0.1:{port}", *extra]


def _stdio(port: int, token: str = READ_SECRET) -> StdioServerParameters:
    """Launched the way an agent runtime would, the token in the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAXTON_")}
    return StdioServerParameters(
        command=sys.executable, args=_serve(port), env={**env, "CAXTON_HTTP_TOKEN": token}
    )


@contextlib.asynccontextmanager
async def _session(target: Target) -> AsyncIterator[ClientSession]:
    transport = (
        stdio_client(target)
        if isinstance(target, StdioServerParameters)
        else streamable_http_client(target)
    )
    async with transport as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def _calls(target: Target, calls: list[tuple[str, dict[str, Any]]]) -> list[CallToolResult]:
    async with _session(target) as session:
        return [await session.call_tool(name, arguments) for name, arguments in calls]


def _call(target: Target, name: str, **arguments: Any) -> CallToolResult:
    return asyncio.run(_calls(target, [(name, arguments)]))[0]


def _found(target: Target, **filters: Any) -> list[str]:
    result = _call(target, "find_agents", **filters)
    assert not result.is_error, _text(result)
    assert result.structured_content is not None
    return sorted(a["id"] for a in result.structured_content["agents"])


def _text(result: CallToolResult) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def _write(node: NodeProcess, agent_id: str, body: dict[str, Any], scope: str = "") -> None:
    path = f"/agents/{agent_id}" + (f"?scope={scope}" if scope else "")
    reply = node.request("PUT", path, body, headers={"Authorization": f"Bearer {WRITE_SECRET}"})
    assert reply.status == 201, reply.raw


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A node that asks for tokens."""
    running = start_node(tmp_path_factory.mktemp("discovery"), env={"CAXTON_HTTP_TOKENS": TOKENS})
    yield running
    running.signal(signal.SIGTERM)


@pytest.fixture(scope="module")
def legacy(node: NodeProcess) -> NodeProcess:
    """The node with one agent registered the old way, by capabilities only."""
    _write(node, "billing-1", {"capabilities": ["billing"]})
    return node


@pytest.fixture(scope="module")
def carded(legacy: NodeProcess) -> NodeProcess:
    """The same node with agents registered by their A2A cards, in two scopes."""
    _write(legacy, "recipe-bot", {"card": RECIPE_CARD})
    _write(legacy, "pastry.chef", {"card": PASTRY})
    _write(legacy, "translator-1", {"card": TRANSLATOR})
    _write(legacy, "recipe-bot", {"card": NIGHT_COOK}, scope="kitchen")
    return legacy


@pytest.fixture(scope="module")
def http_url(node: NodeProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server over streamable HTTP, the token given as a flag."""
    port = free_port()
    args = _serve(node.port, "--token", READ_SECRET, "--transport", "http")
    log_path = tmp_path_factory.mktemp("registry-mcp") / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, *args, "--listen", f"127.0.0.1:{port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(params=["stdio", "http"])
def target(request: pytest.FixtureRequest, node: NodeProcess) -> Target:
    if request.param == "stdio":
        return _stdio(node.port)
    url: str = request.getfixturevalue("http_url")
    return url


def test_both_tools_are_listed_with_their_bounds(target: Target) -> None:
    async def listed() -> dict[str, Any]:
        async with _session(target) as session:
            return {t.name: t.input_schema for t in (await session.list_tools()).tools}

    tools = asyncio.run(listed())
    assert set(tools) == {"find_agents", "get_agent_card"}
    limit = tools["find_agents"]["properties"]["limit"]
    assert (limit["minimum"], limit["maximum"]) == (1, 1000)
    assert tools["get_agent_card"]["required"] == ["agent_id"]


def test_find_by_capability(target: Target, legacy: NodeProcess) -> None:
    assert _found(target, capability="billing") == ["billing-1"]
    assert _found(target, capability="nothing-has-this") == []


def test_find_by_skill_tag_and_text(target: Target, carded: NodeProcess) -> None:
    assert _found(target, skill="find-recipe") == ["recipe-bot"]
    assert _found(target, tag="cooking") == ["pastry.chef", "recipe-bot"]
    assert _found(target, tag="cooking", skill="bake-cake") == ["pastry.chef"]
    assert _found(target, text="CHEF pastry") == ["pastry.chef"]
    assert _found(target, text="pastry translator") == []  # every word
    assert _found(target, capability="translate") == ["translator-1"]  # from the card's skills


def test_find_in_another_scope(target: Target, carded: NodeProcess) -> None:
    result = _call(target, "find_agents", skill="find-recipe", scope="kitchen")
    assert result.structured_content is not None, _text(result)
    [agent] = result.structured_content["agents"]
    assert (agent["id"], agent["scope"], agent["name"]) == ("recipe-bot", "kitchen", "Night Cook")
    assert "card" not in agent  # a listing carries no cards


def test_limit_pages_and_says_there_is_more(target: Target, carded: NodeProcess) -> None:
    result = _call(target, "find_agents", tag="cooking", limit=1)
    assert result.structured_content is not None, _text(result)
    assert len(result.structured_content["agents"]) == 1
    assert result.structured_content["more"] is True


def test_get_a_card_as_registered(target: Target, carded: NodeProcess) -> None:
    recipe, pastry, night = asyncio.run(
        _calls(
            target,
            [
                ("get_agent_card", {"agent_id": "recipe-bot"}),
                ("get_agent_card", {"agent_id": "pastry.chef"}),
                ("get_agent_card", {"agent_id": "recipe-bot", "scope": "kitchen"}),
            ],
        )
    )
    assert recipe.structured_content == RECIPE_CARD
    assert pastry.structured_content == PASTRY
    assert night.structured_content == NIGHT_COOK


def test_an_unknown_agent_is_an_error(target: Target) -> None:
    result = _call(target, "get_agent_card", agent_id="nobody")
    assert result.is_error
    assert "404: " in _text(result)


def test_an_agent_without_a_card_is_an_error(target: Target, legacy: NodeProcess) -> None:
    result = _call(target, "get_agent_card", agent_id="billing-1")
    assert result.is_error
    assert "404: " in _text(result)


def test_out_of_bounds_arguments_are_errors(target: Target) -> None:
    results = asyncio.run(
        _calls(
            target,
            [
                ("get_agent_card", {"agent_id": "../../health"}),
                ("get_agent_card", {"agent_id": ".."}),
                ("get_agent_card", {"agent_id": ""}),
                # The node's server decodes %2F before routing: the state of agent x.
                ("get_agent_card", {"agent_id": "x/state/notes"}),
                ("get_agent_card", {"agent_id": "recipes", "scope": "a/b"}),
                ("find_agents", {"limit": 0}),
                ("find_agents", {"limit": 1001}),
                ("find_agents", {"text": "x" * 257}),
            ],
        )
    )
    for result in results:
        assert result.is_error, result
        assert result.structured_content is None  # not, say, /health's answer


def test_a_filter_cannot_smuggle_parameters(target: Target, carded: NodeProcess) -> None:
    result = _call(target, "find_agents", text="recipes&scope=kitchen&skill=find-recipe")
    assert result.structured_content == {"agents": [], "more": False}, _text(result)


def test_a_bad_token_is_an_error_naming_401(node: NodeProcess) -> None:
    result = _call(_stdio(node.port, token="not-the-secret-0123456789"), "find_agents")
    assert result.is_error
    assert "401: " in _text(result)


def test_a_node_that_does_not_answer_is_an_error() -> None:
    result = _call(_stdio(free_port()), "get_agent_card", agent_id="recipe-bot")
    assert result.is_error
    assert "cannot reach" in _text(result)


def test_a_bad_listen_address_is_a_config_error() -> None:
    done = subprocess.run(
        [sys.executable, *_serve(8080, "--transport", "http", "--listen", "nowhere")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "--listen" in done.stderr
