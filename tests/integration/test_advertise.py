"""A node bound to every address tells peers and routes an address they can reach."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from caxton_actors.wire.advertise import interface_addresses, pick
from caxton_actors.wire.keyring import generate_key
from tests.integration.conftest import NodeProcess, free_port, start_node

SECRET = "advertise-test-secret-0123"
AUTH = {"Authorization": f"Bearer {SECRET}"}


def _start(tmp_path: Path, *extra: str) -> NodeProcess:
    port = free_port()
    return start_node(
        tmp_path,
        "--node-name", "n", "--sqlite-path", str(tmp_path / "n.db"),
        "--http-bind", f"0.0.0.0:{port}",
        "--gossip-enabled", "true", "--gossip-bind", "0.0.0.0:0",
        *extra,
        env={"CAXTON_HTTP_TOKENS": f"t:admin:{SECRET}", "CAXTON_GOSSIP_KEYS": generate_key()},
        port=port,
        test_flags=False,
    )  # fmt: skip


def _me(node: NodeProcess) -> dict[str, str]:
    members = node.request("GET", "/members", headers=AUTH).json["members"]
    return next(m for m in members if m["name"] == "n")


def test_bound_to_all_it_advertises_an_interface_address(tmp_path: Path) -> None:
    chosen = pick(interface_addresses())
    if chosen is None:
        pytest.skip("this machine has no non-loopback IPv4 interface")
    node = _start(tmp_path)
    try:
        me = _me(node)
        assert me["address"].rsplit(":", 1)[0] == chosen
        assert me["http_address"] == f"{chosen}:{node.port}"
        put = node.request("PUT", "/agents/a1", {"capabilities": []}, headers=AUTH)
        assert put.status == 201
        route = node.request("GET", "/agents/a1/route", headers=AUTH).json
        assert route["route"] == f"http://{chosen}:{node.port}"
        assert f"advertising {chosen}" in node.log()
    finally:
        node.signal(signal.SIGTERM)


def test_the_advertise_settings_win(tmp_path: Path) -> None:
    node = _start(tmp_path, "--gossip-advertise", "10.9.9.9:17946", "--http-advertise", "10.9.9.9")
    try:
        me = _me(node)
        assert me["address"] == "10.9.9.9:17946"
        assert me["http_address"] == f"10.9.9.9:{node.port}"
    finally:
        node.signal(signal.SIGTERM)
