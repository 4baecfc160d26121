"""State tool calls for the HTTP facade: off the hub, with a deadline, counted per type.

Every client here blocks (redis-py, psycopg, boto3, the MCP client's thread), so each
call runs on a worker thread of a gevent pool, and the greenlet that asked waits at most
``timeout``: a slow store gives a 504 and leaves the hub free. A call that timed out may
still complete on its thread: a 504 on a write does not say it did not happen. One tool
holds at most ``CALLS_PER_TOOL`` threads, so a hung store cannot starve the others.
Tools are opened on first use, on a worker thread too (opening one connects), and kept.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import gevent
import gevent.threadpool
import ujson

from caxton_actors import metrics
from caxton_actors.runtime.threads import captured
from caxton_actors.state.contract import StateError, StateTool, Tool
from caxton_actors.state.specs import ToolSpec, check_inline, parse_tool_spec, scrub

POOL_THREADS = 32
# Calls one tool may have on threads at once: a store that hangs holds at most these.
CALLS_PER_TOOL = 8
# Inline tools (an agent's own {type, config}) kept open at once.
MAX_INLINE_TOOLS = 16

log = logging.getLogger(__name__)

# Failures that are the caller's (a 400), not the store's: not logged.
CALLER_FAULTS = ("bad_key", "bad_value")
# Keys of a batch named in a failure's log line; the rest are counted.
LOGGED_KEYS = 3


def _tool_named(binding: str) -> str:
    """A configured tool's name, or an inline tool's type: never its config (credentials)."""
    found = ujson.loads(binding)
    return found if isinstance(found, str) else f"inline {found.get('type')}"


def _keys_named(operation: str, args: tuple[Any, ...]) -> str:
    """What a call was about: ``key 'k'``, ``prefix 'p/'`` or ``keys 'a', 'b' and 3 more``."""
    if operation == "list":
        return f"prefix {args[0]!r}" if args and args[0] else "all keys"
    if operation in ("store_batch", "retrieve_batch"):
        keys = list(args[0]) if args else []
        named = ", ".join(repr(k) for k in keys[:LOGGED_KEYS])
        more = f" and {len(keys) - LOGGED_KEYS} more" if len(keys) > LOGGED_KEYS else ""
        return f"keys {named}{more}"
    return f"key {args[0]!r}" if args else "no key"


def open_tool(spec: ToolSpec, timeout: float) -> Tool:
    """The tool a spec names: a backend behind the contract, or an MCP server."""
    if spec.type == "mcp":
        from caxton_actors.state.mcp_client import McpStateTool  # noqa: PLC0415 - an extra

        return McpStateTool(spec.settings, timeout)
    from caxton_actors.state.backends import open_backend  # noqa: PLC0415

    # The client gives up a second after the caller has: the deadline answers, not the client.
    return StateTool(open_backend(spec.type, spec.settings, timeout + 1.0))


@functools.lru_cache(maxsize=4096)
def _checked_inline(binding: str) -> ToolSpec:
    """An inline binding as the rules take it. Every call checks its binding, on the hub:
    48 us a postgres spec here, against a dictionary lookup when cached."""
    spec = parse_tool_spec(ujson.loads(binding))
    check_inline(spec)
    return spec


class StateService:
    def __init__(
        self,
        named: Mapping[str, ToolSpec],
        timeout: float,
        stats: metrics.Metrics,
        inline: bool = False,
    ) -> None:
        self.named = named
        self.inline = inline
        """Whether an agent may bring its own {type, config} instead of a configured name."""
        self.timeout = timeout
        self._stats = stats
        self._pool = gevent.threadpool.ThreadPool(POOL_THREADS)
        self._tools: dict[ToolSpec, Tool] = {}
        self._busy: Counter[ToolSpec] = Counter()
        """Calls whose thread has not finished, per tool, timed out ones included."""
        self._opening = threading.Lock()
        self._used: dict[ToolSpec, float] = {}
        """When each tool was last called: the least recently used inline ones are closed."""
        for name, spec in named.items():  # an MCP server takes seconds to start: not on a call
            self._pool.spawn(self._warm, name, spec)

    def binding(self, value: object) -> str:
        """A registration's ``state_tool`` checked and made canonical, for the registry."""
        if isinstance(value, str):
            if value not in self.named:
                known = ", ".join(sorted(self.named)) or "none"
                raise StateError("bad_value", f"no state tool named {value!r}; configured: {known}")
            return ujson.dumps(value)
        if not self.inline:
            known = ", ".join(sorted(self.named)) or "none"
            raise StateError(
                "bad_value",
                "inline state tools are off on this node (state_tools_inline: true turns them "
                f"on); name a configured one: {known}",
            )
        spec = parse_tool_spec(value)  # a SpecError names the key
        check_inline(spec)
        return ujson.dumps({"type": spec.type, "config": spec.settings}, sort_keys=True)

    def _inline_spec(self, binding: str) -> ToolSpec:
        """A stored inline binding, checked again: the node may have restarted with inline
        tools off, or with rules the agent's tool no longer meets."""
        if not self.inline:
            raise StateError(
                "unavailable",
                "this agent's inline state tool is off (state_tools_inline is false on this "
                "node); register the agent again with a configured tool",
            )
        try:
            return _checked_inline(binding)
        except StateError as exc:
            raise StateError(
                "unavailable", f"this agent's inline state tool is refused: {exc}"
            ) from None

    def call(self, binding: str, operation: str, *args: Any) -> Any:
        """Run ``operation`` on the agent's tool; a StateError says what went wrong.

        A failure of the store (not of the caller's key or value) is also one warning line
        naming the agent, the key and the tool, so that an operator sees which store fails.
        """
        try:
            return self._call(binding, operation, *args)
        except StateError as exc:
            if exc.kind not in CALLER_FAULTS:
                log.warning(
                    "state %s for agent %s %s on tool %s failed: %s",
                    operation,
                    args[0],
                    _keys_named(operation, args[1:]),
                    _tool_named(binding),
                    " ".join(str(exc).split()),  # a client's message may span lines
                )
            raise

    def _call(self, binding: str, operation: str, *args: Any) -> Any:
        found = ujson.loads(binding)
        spec = self.named.get(found) if isinstance(found, str) else self._inline_spec(binding)
        if spec is None:
            raise StateError("unavailable", f"the state tool {found!r} is no longer configured")
        self._used[spec] = time.monotonic()
        if not isinstance(found, str):
            self._close_idle_inline(keep=spec)
        started = time.perf_counter()
        self._stats.incr(f"{metrics.STATE_CALLS}.{spec.type}")
        if self._busy[spec] >= CALLS_PER_TOOL:  # a stuck store may not take every thread
            self._stats.incr(f"{metrics.STATE_ERRORS}.{spec.type}.busy")
            raise StateError(
                "timeout",
                f"the {spec.type} state tool has {CALLS_PER_TOOL} calls that have "
                "not finished; try again later",
            )
        self._busy[spec] += 1
        # Captured, not raised on the thread (runtime/threads.py).
        running = self._pool.spawn(captured, self._run, spec, operation, args)
        running.rawlink(lambda _: self._done(spec))  # when the thread ends, not the wait
        try:
            ok, value = running.get(timeout=self.timeout)
            if not ok:
                raise value
            return value
        except gevent.Timeout:
            self._stats.incr(f"{metrics.STATE_ERRORS}.{spec.type}.timeout")
            raise StateError(
                "timeout", f"the {spec.type} state tool did not answer within {self.timeout:g}s"
            ) from None
        except StateError as exc:
            self._stats.incr(f"{metrics.STATE_ERRORS}.{spec.type}.{exc.kind}")
            raise
        except Exception as exc:  # noqa: BLE001 - any client's failure is the store's
            self._stats.incr(f"{metrics.STATE_ERRORS}.{spec.type}.backend")
            raise StateError("backend", f"the {spec.type} state tool failed: {exc}") from None
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            self._stats.timing(f"{metrics.STATE_CALL_TIME}.{spec.type}", elapsed_ms)

    def _close_idle_inline(self, keep: ToolSpec) -> None:
        """Keep at most ``MAX_INLINE_TOOLS`` inline tools open: every distinct config an
        HTTP client sends opens connections, which must not pile up."""
        named = set(self.named.values())
        inline = [s for s in list(self._tools) if s not in named and s != keep]
        excess = len(inline) + 1 - MAX_INLINE_TOOLS
        for spec in sorted(inline, key=lambda s: self._used.get(s, 0.0))[: max(0, excess)]:
            if self._busy[spec] == 0:  # one in use is closed on a later call instead
                self._pool.spawn(self._tools.pop(spec).close)
                self._used.pop(spec, None)

    def _done(self, spec: ToolSpec) -> None:
        self._busy[spec] -= 1

    def _run(self, spec: ToolSpec, operation: str, args: tuple[Any, ...]) -> Any:
        """On a worker thread. A failure says nothing of the tool's secrets: a client's
        message may quote its URL, password and all."""
        try:
            return getattr(self._open(spec), operation)(*args)
        except StateError as exc:
            raise StateError(exc.kind, scrub(str(exc), spec)) from None
        except Exception as exc:  # noqa: BLE001 - any client's failure is the store's
            failed = scrub(str(exc), spec)
            raise StateError("backend", f"the {spec.type} state tool failed: {failed}") from None

    def _open(self, spec: ToolSpec) -> Tool:
        tool = self._tools.get(spec)
        if tool is None:
            with self._opening:  # held only while a tool opens, not for calls on open ones
                tool = self._tools.get(spec)
                if tool is None:
                    tool = self._tools[spec] = open_tool(spec, self.timeout)
        return tool

    def _warm(self, name: str, spec: ToolSpec) -> None:
        """Open a configured tool at start-up (on a worker thread); a failure is retried
        by the first call, which reports it."""
        try:
            self._open(spec)
        except Exception as exc:  # noqa: BLE001 - any client's failure: the first call retries
            said = scrub(str(exc), spec)
            log.warning("state tool %s could not be opened at start-up: %s", name, said)
        else:
            log.info("state tool %s is open", name)

    def close(self) -> None:
        for tool in list(self._tools.values()):  # a start-up opening may still add one
            tool.close()
        self._pool.kill()
