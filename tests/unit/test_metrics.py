"""Metrics reach a real UDP socket in statsd's line format, or cost nothing."""

from __future__ import annotations

import socket

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
