"""The state tools as an MCP server, on the official SDK: ``caxton-actors state-tool serve``.

One tool per contract operation (``store``, ``retrieve``, ``delete``, ``list``,
``store_batch``, ``retrieve_batch``), each taking the agent id, so the scoping of keys
to their agent happens here, on the server, whoever the client is. Results are
structured content; a refused or failed call is a tool error whose text starts with
the contract's kind (``bad_key: ...``), which the node's client maps back.

Served over stdio (a node or an agent runtime launches it) or streamable HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from caxton_actors.state.backends import open_backend
from caxton_actors.state.contract import Json, StateError, StateTool

HTTP_PATH = "/mcp"


def build_server(tool: StateTool) -> MCPServer:
    server = MCPServer("caxton-state", instructions="Agent state by key, scoped to each agent.")

    async def run(operation: Callable[[], Any]) -> Any:
        try:
            return await anyio.to_thread.run_sync(operation)  # the backends block
        except StateError as exc:
            raise ToolError(f"{exc.kind}: {exc}") from None  # the client reads the kind back

    @server.tool()
    async def store(agent_id: str, key: str, value: Json) -> dict[str, Any]:
        """Store a JSON value at the agent's key."""
        await run(lambda: tool.store(agent_id, key, value))
        return {"stored": True}

    @server.tool()
    async def retrieve(agent_id: str, key: str) -> dict[str, Any]:
        """The value at the agent's key; found is false when there is none."""
        found, value = await run(lambda: tool.retrieve(agent_id, key))
        return {"found": found, "value": value}

    @server.tool()
    async def delete(agent_id: str, key: str) -> dict[str, Any]:
        """Delete the agent's key; deleted is false when there was none."""
        return {"deleted": await run(lambda: tool.delete(agent_id, key))}

    @server.tool(name="list")
    async def list_keys(agent_id: str, prefix: str = "") -> dict[str, Any]:
        """The agent's keys that start with prefix, sorted."""
        return {"keys": await run(lambda: tool.list(agent_id, prefix))}

    @server.tool()
    async def store_batch(agent_id: str, items: dict[str, Json]) -> dict[str, Any]:
        """Store several keys; every key and value is checked before any is written."""
        await run(lambda: tool.store_batch(agent_id, items))
        return {"stored": len(items)}

    @server.tool()
    async def retrieve_batch(agent_id: str, keys: list[str]) -> dict[str, Any]:
        """The values of the keys that exist."""
        return {"values": await run(lambda: tool.retrieve_batch(agent_id, keys))}

    return server


def serve(backend: str, config: dict[str, Any], transport: str, host: str, port: int) -> None:
    """Run until interrupted. stdio: the protocol owns stdout, so nothing else may print."""
    tool = StateTool(open_backend(backend, config, timeout=10.0))
    server = build_server(tool)
    try:
        if transport == "stdio":
            server.run("stdio")
        else:
            server.run("streamable-http", host=host, port=port, streamable_http_path=HTTP_PATH)
    finally:
        tool.close()
