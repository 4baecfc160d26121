"""Hub loop lag: how late a timer rings after it was due.

A blocked hub delays every actor at once, and a node whose acks are late looks
dead to its peers; this is the number that shows it. It is read off the alarms the
actors arm anyway (``runtime/timer.py``), each of which knows when it was due: a
sampler of its own would wake an idle node twice a second for it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

_RUNNING: list[LoopLagMonitor] = []
"""The monitors started and not stopped: one a node, all of them on this hub."""


def rang(lag: float) -> None:
    """An alarm rang ``lag`` seconds after it was due: tell every running monitor."""
    for monitor in _RUNNING:
        monitor.observe(lag)


class LoopLagMonitor:
    """Reports the alarms' lag, at most once every ``interval`` seconds: the worst one
    since the last report, so a busy node's many alarms cost no more datagrams."""

    def __init__(self, interval: float, report: Callable[[float], None]) -> None:
        self._interval = interval
        self._report = report
        self._worst = 0.0
        self._reported_at = -math.inf

    def start(self) -> None:
        _RUNNING.append(self)

    def stop(self) -> None:
        if self in _RUNNING:
            _RUNNING.remove(self)

    def observe(self, lag: float) -> None:
        self._worst = max(self._worst, lag)
        now = time.monotonic()
        if now - self._reported_at >= self._interval:
            self._reported_at = now
            self._report(self._worst)
            self._worst = 0.0
