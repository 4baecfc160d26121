"""Every metric the node emits, named here and nowhere else.

Plain statsd has no tags, so a name carries no node name, address or user
data; the one variable part a name may have (an HTTP route's name) comes from
a fixed table and still goes through :func:`sanitize`, because ``:`` and ``|``
would break the line format.
"""

from __future__ import annotations

import re
from typing import Protocol

import gevent

from caxton_actors.config import StatsdConfig

# The seed's names, unchanged.
GOSSIP_MESSAGES_SENT = "caxton_gossip_messages_sent_total"  # counter
GOSSIP_PEERS = "caxton_gossip_peers"  # gauge: members alive or suspect, this node excluded
AGENT_REGISTRY_SIZE = "caxton_agent_registry_size"  # gauge

GOSSIP_BYTES_SENT = "caxton_gossip_bytes_sent_total"  # counter
GOSSIP_DROPPED = "caxton_gossip_dropped_total"  # counter, suffixed .<reason>
GOSSIP_SUSPICIONS = "caxton_gossip_suspicions_total"  # counter: members this node saw turn suspect
GOSSIP_REFUTATIONS = "caxton_gossip_refutations_total"  # counter: suspicions of this node refuted
GOSSIP_DEATHS = "caxton_gossip_deaths_total"  # counter: members this node saw turn dead
GOSSIP_NAME_CONFLICTS = "caxton_gossip_name_conflicts_total"  # counter: our name, another node
GOSSIP_HEALTH_SCORE = "caxton_gossip_health_score"  # gauge: Lifeguard's local health, 0 is best
GOSSIP_PROBE_RTT = "caxton_gossip_probe_rtt_ms"  # timer: direct and indirect probe round trips
HTTP_REQUESTS = "caxton_http_requests_total"  # counter, suffixed .<route>
HTTP_RESPONSES = "caxton_http_responses_total"  # counter, suffixed .<status class>
HTTP_REQUEST_TIME = "caxton_http_request_ms"  # timer, suffixed .<route>
HTTP_REFUSED = "caxton_http_refused_total"  # counter, suffixed .<reason>: host, unauthorized, ...
HUB_LOOP_LAG = "caxton_hub_loop_lag_ms"  # timer
REGISTRY_BATCH_SIZE = "caxton_registry_batch_size"  # timer (a distribution of counts)
REGISTRY_COMMIT_TIME = "caxton_registry_commit_ms"  # timer
AGENT_REGISTRY_UNREACHABLE = "caxton_agent_registry_unreachable"  # gauge: owner dead or left
REGISTRY_UPDATES_DROPPED = "caxton_registry_updates_dropped_total"  # counter, suffixed .<reason>
REGISTRY_PULLS = "caxton_registry_pulls_total"  # counter: deltas asked of peers
WATCHES_DROPPED = "caxton_registry_watches_dropped_total"  # counter: watchers too slow to keep
STATE_CALLS = "caxton_state_calls_total"  # counter, suffixed .<tool type>
STATE_ERRORS = "caxton_state_errors_total"  # counter, suffixed .<tool type>.<kind>
STATE_CALL_TIME = "caxton_state_call_ms"  # timer, suffixed .<tool type>
CORRELATIONS_EXPIRED = "caxton_correlations_expired_total"  # counter
ACTOR_RESTARTS = "caxton_actor_restarts_total"  # counter, suffixed .<actor>: after a crash

# Seconds between two sendings of every gauge's last value, besides each change: a
# gauge that holds still is still a point in every flush of the statsd server, so a
# graph is a line, not gaps. Telegraf's statsd input forgets gauges at each flush
# (delete_gauges defaults to true) and flushes every 10 s, as etsy statsd does.
GAUGE_INTERVAL = 10.0

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def sanitize(part: str) -> str:
    """Make ``part`` safe inside a statsd metric name."""
    return _UNSAFE.sub("_", part) or "_"


class Metrics(Protocol):
    def incr(self, name: str, count: int = 1) -> None: ...
    def gauge(self, name: str, value: float) -> None: ...
    def timing(self, name: str, ms: float) -> None: ...


class NullMetrics:
    """Metrics switched off: every call returns at once."""

    def incr(self, name: str, count: int = 1) -> None:
        pass

    def gauge(self, name: str, value: float) -> None:
        pass

    def timing(self, name: str, ms: float) -> None:
        pass


class StatsdMetrics:
    """Fire-and-forget UDP datagrams to a statsd server; each gauge's last value is
    kept, for :meth:`resend_gauges` (gauge names are fixed, so the table stays small)."""

    def __init__(self, host: str, port: int, prefix: str) -> None:
        import statsd  # noqa: PLC0415 - only a node with statsd.address set pays for it

        self._client = statsd.StatsClient(host, port, prefix=prefix or None)
        self._gauges: dict[str, float] = {}

    def incr(self, name: str, count: int = 1) -> None:
        self._client.incr(name, count)

    def gauge(self, name: str, value: float) -> None:
        self._gauges[name] = value
        self._client.gauge(name, value)

    def timing(self, name: str, ms: float) -> None:
        self._client.timing(name, ms)

    def resend_gauges(self) -> None:
        """In as few datagrams as fit (the client packs lines up to 512 bytes)."""
        with self._client.pipeline() as batch:
            for name, value in dict(self._gauges).items():  # a copy: one atomic read
                batch.gauge(name, value)


def resend_gauges_forever(stats: StatsdMetrics) -> None:
    """Every :data:`GAUGE_INTERVAL` seconds, every gauge again: the body of a greenlet
    that runs as long as the node does."""
    while True:
        gevent.sleep(GAUGE_INTERVAL)
        stats.resend_gauges()


def make_metrics(config: StatsdConfig) -> Metrics:
    """The statsd client; its address is looked up once, here, so a name that does not
    resolve stops the start with an error naming the setting."""
    if config.address is None:
        return NullMetrics()
    try:
        return StatsdMetrics(config.address.host, config.address.port, config.prefix)
    except OSError as exc:
        raise OSError(
            f"cannot send metrics to {config.address} (statsd.address): {exc.strerror or exc}"
        ) from None
