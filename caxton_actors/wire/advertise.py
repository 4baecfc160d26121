"""The address a node tells its peers: where they reach its gossip and its HTTP API.

Bound to one address, that address; bound to all (``0.0.0.0``), the address of an
interface, as memberlist picks one: the first private IPv4 address (RFC 1918 or the
shared 100.64/10), else the first other non-loopback one. In a pod that is the pod IP;
on a laptop, the LAN address. A setting (``gossip.advertise_address``,
``http.advertise_address``) overrides both, for NAT or a host with several networks.
Always an IP literal: peers take no names off the wire.
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import socket
import struct
import sys

import gevent.socket

from caxton_actors.address import Address

log = logging.getLogger(__name__)

WILDCARDS = frozenset({"0.0.0.0", "::", ""})
_SIOCGIFFLAGS = 0x8913  # Linux's ioctl numbers: an interface's flags, its IPv4 address
_SIOCGIFADDR = 0x8915
_IFF_UP = 0x1
# memberlist's private blocks: RFC 1918 and the shared address space of RFC 6598.
_PRIVATE = tuple(
    ipaddress.IPv4Network(block)
    for block in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
)


def interface_addresses() -> list[str]:
    """Each interface's IPv4 address, for interfaces that are up, in index order.

    Linux only (the ioctls); elsewhere none, and the host name decides.
    """
    if sys.platform != "linux":
        return []
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                flags = fcntl.ioctl(probe.fileno(), _SIOCGIFFLAGS, request)
                address = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, request)
            except OSError:  # no IPv4 address on it
                continue
            if struct.unpack_from("H", flags, 16)[0] & _IFF_UP:
                found.append(socket.inet_ntoa(address[20:24]))
    return found


def pick(addresses: list[str]) -> str | None:
    """The first private address, else the first other non-loopback one."""
    usable = [ipaddress.IPv4Address(a) for a in addresses]
    usable = [a for a in usable if not (a.is_loopback or a.is_link_local or a.is_unspecified)]
    for address in usable:
        if any(address in block for block in _PRIVATE):
            return str(address)
    return str(usable[0]) if usable else None


def advertised(bind: Address, port: int, advertise: Address | None, setting: str) -> Address:
    """What to tell peers of a socket bound to ``bind`` (its real port ``port``).

    ``advertise``: the setting named ``setting``, whose port 0 means the bound one.
    """
    if advertise is not None:
        return Address(advertise.host, advertise.port or port)
    host = bind.host
    if host in WILDCARDS:
        chosen = pick(interface_addresses())
        if chosen is None:
            log.warning(
                "bound to %s with no non-loopback interface address: advertising 127.0.0.1; "
                "set %s for peers on other hosts",
                bind,
                setting,
            )
            return Address("127.0.0.1", port)
        log.info("bound to %s: advertising %s:%d (%s overrides)", bind, chosen, port, setting)
        return Address(chosen, port)
    try:
        return Address(str(ipaddress.ip_address(host)), port)
    except ValueError:  # a name: looked up once, at start, by gevent's resolver
        return Address(str(gevent.socket.getaddrinfo(host, None)[0][4][0]), port)
