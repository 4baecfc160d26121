"""Blocking work on a gevent thread pool, its exception raised in the greenlet that waits.

gevent's pool prints the traceback of any exception a task raises (a hundred lines for a
database that cannot be opened, one for every card that does not validate): a task here
hands its exception back instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import gevent.threadpool

T = TypeVar("T")


def captured(call: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
    """``(True, result)`` or ``(False, exception)``: what a pool task returns."""
    try:
        return True, call(*args)
    except Exception as exc:  # noqa: BLE001 - handed to the caller, which raises it
        return False, exc


def run_in(pool: gevent.threadpool.ThreadPool, call: Callable[..., T], *args: Any) -> T:
    """``call(*args)`` on one of ``pool``'s threads; this greenlet waits, the hub does not."""
    ok, value = pool.apply(captured, (call, *args))
    if not ok:
        raise value
    return cast(T, value)
