"""The two clocks a node reads, behind one seam, so a test can set one node's apart.

``monotonic`` measures every timeout and expiry (correlations, tombstones, down
owners, suspicion): it never jumps. ``wall`` is Unix time, only for what is shown
(``last_seen``, ``created_at``) and what goes on the wire (registry versions, the
time stamped on each gossip packet). The pure core reads neither: its shells pass
both readings in.
"""

from __future__ import annotations

import time


class Clock:
    def wall(self) -> float:
        """Unix seconds."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds from an arbitrary start; only differences mean anything."""
        return time.monotonic()

    def wall_ms(self) -> int:
        return int(self.wall() * 1000)

    def to_wall(self, monotonic: float) -> float:
        """When a monotonic reading was, in Unix seconds (for display)."""
        return self.wall() - (self.monotonic() - monotonic)


SYSTEM = Clock()
