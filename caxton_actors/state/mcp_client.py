"""The node's client for a state tool served over MCP (ours, or any with the same tools).

The SDK is asyncio; the node is gevent. So the client lives in one OS thread of its
own, running an asyncio loop with one session kept open; callers (the state service's
worker threads, never the hub) submit each call to that loop and wait with a deadline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from mcp import Client
from mcp.client.stdio import StdioServerParameters

from caxton_actors.state.contract import TOOL_KINDS, Json, StateError

_KIND = re.compile(rf"\b({'|'.join(TOOL_KINDS)}): (.*)", re.S)


def _target(settings: Mapping[str, Any]) -> StdioServerParameters | str:
    """``{"url": "http://host:port/mcp"}`` or ``{"command": ["prog", "arg", ...]}``."""
    url, command = settings.get("url"), settings.get("command")
    if isinstance(url, str) and command is None:
        return url
    if isinstance(command, list) and command and all(isinstance(c, str) for c in command):
        return StdioServerParameters(command=command[0], args=command[1:])
    raise StateError("unavailable", 'an mcp state tool needs {"url": ...} or {"command": [...]}')


class McpStateTool:
    """A session that reopens itself: if the server went away, the next call starts anew."""

    def __init__(self, settings: Mapping[str, Any], timeout: float) -> None:
        self._target = _target(settings)
        self._timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mcp-client")
        self._thread.daemon = True
        self._thread.start()
        self._client: Client | None = None
        self._stop: asyncio.Event | None = None
        self._session: concurrent.futures.Future[None] | None = None
        self._opening = threading.Lock()
        try:
            self._open()
        except StateError:
            self.close()
            raise

    def _open(self) -> Client:
        """The open session, opening one if there is none (under ``_opening``)."""
        with self._opening:
            client = self._client
            if client is not None:
                return client
            ready: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._session = asyncio.run_coroutine_threadsafe(self._hold(ready), self._loop)
            try:
                ready.result(self._timeout)
            except concurrent.futures.TimeoutError:
                raise StateError(
                    "timeout", f"the MCP server did not answer within {self._timeout:g}s"
                ) from None
            except Exception as exc:  # noqa: BLE001 - whatever stopped the session opening
                raise StateError("unavailable", f"cannot reach the MCP server: {exc}") from None
            assert self._client is not None
            return self._client

    async def _hold(self, ready: concurrent.futures.Future[None]) -> None:
        """The one task that opens the session, keeps it, and closes it (anyio insists)."""
        self._stop = asyncio.Event()
        try:
            async with Client(self._target, read_timeout_seconds=self._timeout) as client:
                self._client = client
                ready.set_result(None)
                await self._stop.wait()
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise
        finally:
            self._client = None  # the server went away, or we closed: the next call reopens

    def _call(self, name: str, arguments: dict[str, Any]) -> Any:
        client = self._open()
        future = asyncio.run_coroutine_threadsafe(client.call_tool(name, arguments), self._loop)
        try:
            result = future.result(self._timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise StateError("timeout", f"the MCP tool {name} did not answer in time") from None
        except Exception as exc:  # noqa: BLE001 - the session broke (the server died, say)
            self._end_session()  # the next call opens a new one
            raise StateError("backend", f"the MCP session failed: {exc}") from None
        if result.is_error:
            text = " ".join(getattr(c, "text", "") for c in result.content).strip()
            said = _KIND.search(text)  # "Error executing tool store: bad_key: key ..."
            if said:
                raise StateError(said[1], said[2])
            raise StateError("backend", f"the MCP tool {name} failed: {text}")
        if not isinstance(result.structured_content, dict):
            raise StateError("backend", f"the MCP tool {name} returned no structured result")
        return result.structured_content

    def store(self, agent_id: str, key: str, value: Json) -> None:
        self._call("store", {"agent_id": agent_id, "key": key, "value": value})

    def retrieve(self, agent_id: str, key: str) -> tuple[bool, Json]:
        answer = self._call("retrieve", {"agent_id": agent_id, "key": key})
        return bool(answer.get("found")), answer.get("value")

    def delete(self, agent_id: str, key: str) -> bool:
        return bool(self._call("delete", {"agent_id": agent_id, "key": key}).get("deleted"))

    def list(self, agent_id: str, prefix: str = "") -> list[str]:
        keys = self._call("list", {"agent_id": agent_id, "prefix": prefix}).get("keys")
        return [k for k in keys if isinstance(k, str)] if isinstance(keys, list) else []

    def store_batch(self, agent_id: str, items: Mapping[str, Json]) -> None:
        self._call("store_batch", {"agent_id": agent_id, "items": dict(items)})

    def retrieve_batch(self, agent_id: str, keys: Sequence[str]) -> dict[str, Json]:
        values = self._call("retrieve_batch", {"agent_id": agent_id, "keys": list(keys)})
        found = values.get("values")
        return dict(found) if isinstance(found, dict) else {}

    def _end_session(self) -> None:
        stop, session = self._stop, self._session
        if stop is not None and session is not None:
            self._loop.call_soon_threadsafe(stop.set)
            with contextlib.suppress(Exception):  # closing: how the session ended is not news
                session.result(self._timeout)
        self._client = None

    def close(self) -> None:
        self._end_session()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(self._timeout)
