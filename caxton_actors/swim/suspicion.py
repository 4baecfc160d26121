"""Lifeguard's dynamic suspicion timeout.

A suspect starts with a long timeout that shrinks, on a log scale, as other
members independently confirm the suspicion: a node that many find silent is
declared dead quickly, while one suspected by a single (perhaps overloaded)
member gets time to refute.
"""

from __future__ import annotations

import math


class Suspicion:
    def __init__(
        self, started: float, min_timeout: float, max_timeout: float, expected: int, by: str
    ) -> None:
        self._started = started
        self._min = min_timeout
        self._max = max_timeout
        self._expected = expected
        self._confirmed_by = {by}

    def confirm(self, by: str) -> bool:
        """Record an independent confirmation; False if ``by`` had already said so."""
        if by in self._confirmed_by:
            return False
        self._confirmed_by.add(by)
        return True

    @property
    def deadline(self) -> float:
        confirmations = len(self._confirmed_by) - 1  # the first suspector is not a confirmation
        if self._expected < 1:
            return self._started + self._min
        fraction = math.log(confirmations + 1) / math.log(self._expected + 1)
        timeout = max(self._min, self._max - (self._max - self._min) * fraction)
        return self._started + timeout
