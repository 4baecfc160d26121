"""A one-shot wake-up that an actor re-arms after every message.

Pure protocol components say when they next want to run
(``next_deadline()``); the actor arms this timer for that moment and, when it
fires, tells itself a message. No polling: an idle node sleeps until the
protocol has something to do. How late each ring comes is the hub's loop lag
(``runtime/lag.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gevent
import gevent.hub

from caxton_actors.runtime import lag


class Alarm:
    def __init__(self, fire: Callable[[], None]) -> None:
        self._fire = fire
        self._timer: object | None = None
        self._at: float | None = None
        self._due = 0.0
        """When the armed timer should ring: ``at``, or its arming if ``at`` had passed."""

    def arm(self, at: float) -> None:
        """Fire at monotonic time ``at`` (replacing any earlier arming)."""
        if self._at == at:
            return
        self.cancel()
        self._at = at
        loop = gevent.get_hub().loop
        loop.update_now()  # the loop's cached clock may be stale: never fire early
        now = time.monotonic()
        self._due = max(at, now)
        timer = loop.timer(self._due - now)
        timer.start(self._ring)
        self._timer = timer

    def arm_by(self, at: float) -> None:
        """Fire no later than ``at``: arm it unless already armed to fire sooner."""
        if self._at is None or at < self._at:
            self.arm(at)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.close()  # type: ignore[attr-defined]
            self._timer = None
            self._at = None

    def _ring(self) -> None:
        lag.rang(max(0.0, time.monotonic() - self._due))
        self._timer = None
        self._at = None
        self._fire()
