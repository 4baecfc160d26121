"""How far each member's wall clock is from ours, from the times on its datagrams.

Every ack a node's membership sends to a member carries its wall clock in
milliseconds (``Packet.sent_at``). What one datagram says of the sender's clock against ours is
off by the time it took to get here, on the wire and in our mailbox, and that delay
only ever makes the sender look behind: so the most a member's clock was ahead of
ours over a stretch of datagrams is the estimate (as NTP keeps its smallest delay).

A member is reported once its clock has stayed beyond ``SKEW_BOUND`` for
``SKEW_CONFIRM`` seconds of ours (measured on the monotonic clock) and reported
again each ``SKEW_CONFIRM`` after, from that stretch's datagrams; one datagram within
the bound clears it. A node that stalls (stopped, or a blocked hub) reads the
datagrams that piled up all at once, every one of them late: they look like a
member far behind, but they come within a moment of each other and fresh ones
follow, which end the run before it is confirmed.

Pure: no clock read, the shell's two readings come with every sample.
"""

from __future__ import annotations

from dataclasses import dataclass

# Seconds a member's wall clock may be off ours before it is reported. Well above what
# delays add to one datagram (milliseconds on a LAN, under a second across a WAN, as
# the wan profile's probe timeouts assume); well below what changes behaviour (past
# MAX_CLOCK_SKEW, 300 s, a member's registry heads are refused). A host kept by NTP is
# within milliseconds; a free-running one drifts a second or more a day, so 5 s finds
# one within days of losing its time source. EDB PGD calls 5 s of skew critical;
# HBase warns at 10 s and refuses a server at 30 s.
SKEW_BOUND = 5.0
# Seconds of ours a member's clock must stay beyond the bound before it is reported.
SKEW_CONFIRM = 5.0


@dataclass(slots=True)
class _Run:
    """A member's datagrams since its clock was last seen within the bound."""

    since: float
    """When (monotonic) this stretch began: the first datagram beyond the bound, or the
    last report."""
    ahead: float
    """The most its clock was ahead of ours in this stretch, in seconds (negative: behind)."""


class Skew:
    def __init__(self) -> None:
        self._runs: dict[str, _Run] = {}
        self._skewed: dict[str, float] = {}
        self._warned: dict[str, None] = {}

    def skewed(self) -> dict[str, float]:
        """Members whose clocks are off ours: seconds ahead (negative: behind), rounded."""
        return {name: round(ahead, 1) for name, ahead in self._skewed.items()}

    def observe(self, member: str, sent_at: int, now: float, wall: float) -> float | None:
        """One datagram from ``member`` stamped ``sent_at`` (its wall clock, ms), taken at
        our ``now`` (monotonic) and ``wall`` (Unix seconds). Returns the skew the first time
        the member is found skewed (to be said once), else None."""
        ahead = sent_at / 1000 - wall
        if abs(ahead) <= SKEW_BOUND:
            self._runs.pop(member, None)
            self._skewed.pop(member, None)
            return None
        run = self._runs.get(member)
        if run is None:
            self._runs[member] = _Run(now, ahead)
            return None
        run.ahead = max(run.ahead, ahead)
        if now - run.since < SKEW_CONFIRM:
            return None
        self._skewed[member] = run.ahead
        self._runs[member] = _Run(now, ahead)
        if member in self._warned:
            return None
        self._warned[member] = None
        return round(self._skewed[member], 1)

    def forget(self, member: str) -> None:
        """``member`` is dead or gone: nothing it said holds any more."""
        self._runs.pop(member, None)
        self._skewed.pop(member, None)
        self._warned.pop(member, None)
