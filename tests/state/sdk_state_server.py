"""A state tool server written straight on the official MCP SDK, with none of our code:
what a business might run. The node must drive it like its own. Kept in memory; the key
``slow`` takes 30 s to read, for the timeout test."""

from __future__ import annotations

import asyncio
from typing import Any

from mcp.server.mcpserver import MCPServer

server = MCPServer("business-state")
data: dict[str, Any] = {}


@server.tool()
async def store(agent_id: str, key: str, value: Any) -> dict[str, Any]:
    data[f"{agent_id}/{key}"] = value
    return {"stored": True}


@server.tool()
async def retrieve(agent_id: str, key: str) -> dict[str, Any]:
    if key == "slow":
        await asyncio.sleep(30)
    name = f"{agent_id}/{key}"
    return {"found": name in data, "value": data.get(name)}


@server.tool()
async def delete(agent_id: str, key: str) -> dict[str, Any]:
    return {"deleted": data.pop(f"{agent_id}/{key}", None) is not None}


@server.tool(name="list")
async def list_keys(agent_id: str, prefix: str = "") -> dict[str, Any]:
    mine = [k.split("/", 1)[1] for k in data if k.startswith(f"{agent_id}/")]
    return {"keys": sorted(k for k in mine if k.startswith(prefix))}


@server.tool()
async def store_batch(agent_id: str, items: dict[str, Any]) -> dict[str, Any]:
    for key, value in items.items():
        data[f"{agent_id}/{key}"] = value
    return {"stored": len(items)}


@server.tool()
async def retrieve_batch(agent_id: str, keys: list[str]) -> dict[str, Any]:
    found = {k: data[f"{agent_id}/{k}"] for k in keys if f"{agent_id}/{k}" in data}
    return {"values": found}


if __name__ == "__main__":
    server.run("stdio")
