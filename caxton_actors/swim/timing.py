"""Protocol timing, with presets named and valued like memberlist's.

``lan`` suits one data centre, ``wan`` links across regions, ``local`` a single
host. Every field can be overridden; all durations are seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Timing:
    probe_interval: float
    probe_timeout: float
    indirect_checks: int
    gossip_interval: float
    gossip_nodes: int
    retransmit_mult: int
    suspicion_mult: int
    suspicion_max_timeout_mult: int
    push_pull_interval: float
    awareness_max_multiplier: int
    dead_node_reclaim_time: float
    """How long a dead or left member's tombstone is kept before it is reaped."""
    gossip_to_the_dead_time: float
    """How long a member gone dead or left is still gossiped to, so it can refute a lie."""

    def retransmit_limit(self, cluster_size: int) -> int:
        """How many times each update is piggybacked: grows as log(N)."""
        return self.retransmit_mult * math.ceil(math.log10(cluster_size + 1))

    def suspicion_timeout(self, cluster_size: int) -> float:
        """The shortest time a suspect waits to be declared dead (all confirmations in)."""
        scale = max(1.0, math.log10(max(1, cluster_size)))
        return self.suspicion_mult * scale * self.probe_interval

    def push_pull_period(self, cluster_size: int) -> float:
        """Full-state exchanges slow down past 32 members, so their load stays flat."""
        if cluster_size <= 32:
            return self.push_pull_interval
        return self.push_pull_interval * (math.ceil(math.log2(cluster_size) - 5) + 1)

    def with_overrides(self, **fields: float) -> Timing:
        return replace(self, **fields)  # type: ignore[arg-type]


LAN = Timing(
    probe_interval=1.0,
    probe_timeout=0.5,
    indirect_checks=3,
    gossip_interval=0.2,
    gossip_nodes=3,
    retransmit_mult=4,
    suspicion_mult=4,
    suspicion_max_timeout_mult=6,
    push_pull_interval=30.0,
    awareness_max_multiplier=8,
    dead_node_reclaim_time=60.0,
    gossip_to_the_dead_time=30.0,
)
WAN = replace(
    LAN,
    probe_interval=5.0,
    probe_timeout=3.0,
    gossip_interval=0.5,
    gossip_nodes=4,
    suspicion_mult=6,
    push_pull_interval=60.0,
    gossip_to_the_dead_time=60.0,
)
LOCAL = replace(
    LAN,
    probe_interval=1.0,
    probe_timeout=0.2,
    gossip_interval=0.1,
    retransmit_mult=2,
    suspicion_mult=3,
    push_pull_interval=15.0,
    gossip_to_the_dead_time=15.0,
)
PRESETS = {"lan": LAN, "wan": WAN, "local": LOCAL}
