"""What a node tells its peers: the setting, else the bind address, else an interface's."""

from __future__ import annotations

import logging

import pytest

from caxton_actors.address import Address
from caxton_actors.config import ConfigError, load_config
from caxton_actors.wire import advertise
from caxton_actors.wire.advertise import advertised, interface_addresses, pick

ANY = Address("0.0.0.0", 7946)


@pytest.mark.parametrize(
    ("addresses", "chosen"),
    [
        (["127.0.0.1", "203.0.113.7", "10.1.2.3", "192.168.0.9"], "10.1.2.3"),
        (["127.0.0.1", "169.254.1.1", "203.0.113.7"], "203.0.113.7"),
        (["127.0.0.1", "100.64.0.5", "203.0.113.7"], "100.64.0.5"),
        (["127.0.0.1"], None),
        ([], None),
    ],
)
def test_the_first_private_address_wins_as_in_memberlist(
    addresses: list[str], chosen: str | None
) -> None:
    assert pick(addresses) == chosen


def test_this_machine_lists_its_loopback_among_its_interfaces() -> None:
    assert "127.0.0.1" in interface_addresses()


def test_the_setting_wins_and_its_missing_port_is_the_bound_one() -> None:
    setting = Address("10.9.9.9", 0)
    assert advertised(ANY, 7001, setting, "gossip.advertise_address") == Address("10.9.9.9", 7001)
    natted = Address("10.9.9.9", 17946)
    assert advertised(ANY, 7001, natted, "gossip.advertise_address") == natted


def test_a_bound_address_is_advertised_as_it_is() -> None:
    bound = Address("127.0.0.2", 7946)
    assert advertised(bound, 7946, None, "gossip.advertise_address") == bound


def test_bound_to_all_an_interface_address_is_advertised_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(advertise, "interface_addresses", lambda: ["127.0.0.1", "10.0.3.4"])
    with caplog.at_level(logging.INFO):
        assert advertised(ANY, 7946, None, "gossip.advertise_address") == Address("10.0.3.4", 7946)
    assert "advertising 10.0.3.4:7946" in caplog.text


def test_bound_to_all_with_no_network_falls_back_to_loopback_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(advertise, "interface_addresses", lambda: ["127.0.0.1"])
    assert advertised(ANY, 7946, None, "http.advertise_address") == Address("127.0.0.1", 7946)
    assert "set http.advertise_address" in caplog.text


def test_advertise_settings_take_ip_addresses_only() -> None:
    config = load_config(
        None, {"CAXTON_GOSSIP_ADVERTISE": "10.0.0.5", "CAXTON_HTTP_ADVERTISE": "[fd00::5]:80"}, {}
    )
    assert config.gossip.advertise_address == Address("10.0.0.5", 0)
    assert config.http.advertise_address == Address("fd00::5", 80)
    with pytest.raises(ConfigError) as named:
        load_config(None, {"CAXTON_GOSSIP_ADVERTISE": "caxton-0.caxton-gossip"}, {})
    assert named.value.key == "CAXTON_GOSSIP_ADVERTISE"
    assert "must be an IP address" in str(named.value)
