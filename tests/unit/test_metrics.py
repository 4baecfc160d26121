"""Metrics reach a real UDP socket in statsd's line format, or cost nothing."""

from __future__ import annotations

import socket
import time

import gevent
import pytest

from caxton_actors import metrics
from caxton_actors.address import Address
from caxton_actors.config import StatsdConfig


def test_names_are_sanitized_for_the_line_format() -> None:
    assert metrics.sanitize("a:b|c@d e") == "a_b_c_d_e"
    assert metrics.sanitize("agents.list_1-x") == "agents.list_1-x"
    assert metrics.sanitize("") == "_"


def test_statsd_datagrams_carry_prefix_and_type() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(2)
        port = server.getsockname()[1]
        stats = metrics.make_metrics(StatsdConfig(Address("127.0.0.1", port), "prod.eu"))
        stats.incr(metrics.GOSSIP_MESSAGES_SENT, 3)
        stats.gauge(metrics.AGENT_REGISTRY_SIZE, 42)
        stats.timing(metrics.HUB_LOOP_LAG, 1.5)
        received = [server.recv(1024).decode() for _ in range(3)]
    assert received == [
        "prod.eu.caxton_gossip_messages_sent_total:3|c",
        "prod.eu.caxton_agent_registry_size:42|g",
        "prod.eu.caxton_hub_loop_lag_ms:1.500000|ms",
    ]


def test_no_address_means_no_socket() -> None:
    assert isinstance(metrics.make_metrics(StatsdConfig()), metrics.NullMetrics)


def _drain(server: socket.socket) -> list[str]:
    """Every line waiting on ``server``, without waiting for more."""
    lines: list[str] = []
    server.setblocking(False)
    try:
        while True:
            lines += server.recv(65536).decode().splitlines()
    except BlockingIOError:
        return lines
    finally:
        server.setblocking(True)


def test_each_gauges_last_value_is_sent_again_and_nothing_else() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        stats = metrics.make_metrics(StatsdConfig(Address("127.0.0.1", port)))
        assert isinstance(stats, metrics.StatsdMetrics)
        stats.gauge(metrics.GOSSIP_PEERS, 1)
        stats.gauge(metrics.GOSSIP_PEERS, 3)
        stats.gauge(metrics.AGENT_REGISTRY_SIZE, 42)
        stats.incr(metrics.GOSSIP_DEATHS)
        stats.timing(metrics.HUB_LOOP_LAG, 1.5)
        time.sleep(0.1)
        assert len(_drain(server)) == 5
        stats.resend_gauges()
        time.sleep(0.1)
        assert _drain(server) == ["caxton_gossip_peers:3|g", "caxton_agent_registry_size:42|g"]


def test_gauges_are_sent_again_every_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "GAUGE_INTERVAL", 0.05)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        stats = metrics.StatsdMetrics("127.0.0.1", server.getsockname()[1], "")
        stats.gauge(metrics.GOSSIP_HEALTH_SCORE, 0)
        resending = gevent.spawn(metrics.resend_gauges_forever, stats)
        gevent.sleep(0.38)
        resending.kill()
        time.sleep(0.1)
        lines = _drain(server)
    assert lines[0] == "caxton_gossip_health_score:0|g"  # on change
    assert 6 <= lines.count("caxton_gossip_health_score:0|g") <= 9  # and every 50 ms
    assert set(lines) == {"caxton_gossip_health_score:0|g"}
