"""Hub loop lag: how late a greenlet wakes after asking to sleep.

A blocked hub delays every actor at once, and a node whose acks are late looks
dead to its peers; this is the number that shows it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gevent


class LoopLagMonitor:
    """Sleeps ``interval`` seconds in a loop and reports each wake-up's delay."""

    def __init__(self, interval: float, report: Callable[[float], None]) -> None:
        self._interval = interval
        self._report = report
        self._greenlet: gevent.Greenlet[[], None] | None = None

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill()

    def _run(self) -> None:
        while True:
            asked = time.perf_counter()
            gevent.sleep(self._interval)
            lag = max(0.0, time.perf_counter() - asked - self._interval)
            self._report(lag)
