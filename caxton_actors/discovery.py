"""Agent discovery as an MCP server, on the official SDK: ``caxton-actors registry serve``.

An LLM agent finds its peers with two tools, ``find_agents`` and ``get_agent_card``,
each one read of a running node's HTTP API (the CLI's client: address, token, CA).
The node judges every filter; this server bounds what it forwards, checks what goes into
a path (an id, a scope) and percent-encodes the rest, so that no argument can reach
another route or parameter. A
refusal by the node, or a node that does not answer, is a tool error carrying the
node's own description (``401: ...``, ``404: ...``).

Served over stdio (an agent runtime launches it) or streamable HTTP.
"""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Any

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from caxton_actors.client import Api, ApiError, request
from caxton_actors.registry.records import DEFAULT_SCOPE, ID_PATTERN

HTTP_PATH = "/mcp"
MAX_LIMIT = 1000  # the node's largest page
# Tags and text are a few words: 256 characters is more than any real filter, and keeps a
# hostile argument from growing the URL.
Filter = Annotated[str | None, Field(max_length=256)]
# An id goes into the path: checked here, as the node's server decodes %2F back to "/"
# before routing, so "x/state/k" would reach another route.
AgentId = Annotated[str, Field(pattern=ID_PATTERN, max_length=128)]
Scope = Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]


def _query(**params: str | int | None) -> str:
    """``?`` and the parameters given; the default scope is left out, as the node assumes it."""
    given = {k: v for k, v in params.items() if v is not None}
    if given.get("scope") == DEFAULT_SCOPE:
        del given["scope"]
    return f"?{urllib.parse.urlencode(given)}" if given else ""


def build_server(api: Api) -> MCPServer:
    server = MCPServer(
        "caxton-registry",
        instructions="Find the agents of a caxton cluster by capability, A2A skill, tag "
        "or words of their name and description, and read their A2A agent cards.",
    )

    async def get(path: str) -> Any:
        try:
            return await anyio.to_thread.run_sync(lambda: request(api, "GET", path))
        except ApiError as exc:
            raise ToolError(str(exc)) from None

    @server.tool()
    async def find_agents(
        capability: Filter = None,
        skill: Filter = None,
        tag: Filter = None,
        text: Filter = None,
        scope: Scope = DEFAULT_SCOPE,
        limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = 50,
    ) -> dict[str, Any]:
        """The agents that match every filter given: a capability, an A2A skill id, a
        skill tag, and text whose every word is in the card's name or description.
        more is true when there are more than limit; narrow the filters to see them."""
        query = _query(
            scope=scope, capability=capability, skill=skill, tag=tag, q=text, limit=limit
        )
        page = await get(f"/agents{query}")
        return {"agents": page["agents"], "more": page["next"] is not None}

    @server.tool()
    async def get_agent_card(agent_id: AgentId, scope: Scope = DEFAULT_SCOPE) -> dict[str, Any]:
        """The agent's A2A AgentCard, as it was registered: how to reach it, its skills."""
        path = f"/agents/{agent_id}/.well-known/agent-card.json"
        card = await get(path + _query(scope=scope))
        if not isinstance(card, dict):
            raise ToolError(f"agent {agent_id}: the node answered no card")
        return card

    return server


def serve(api: Api, transport: str, host: str, port: int) -> None:
    """Run until interrupted. stdio: the protocol owns stdout, so nothing else may print."""
    server = build_server(api)
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=port, streamable_http_path=HTTP_PATH)
