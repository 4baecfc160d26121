"""Seed addresses to socket addresses, outside any actor.

A seed is a name as much as an address (a StatefulSet's
``caxton-1.caxton-gossip:7946``): it is resolved when the node joins, not when
it starts, and a name that does not resolve yet (its pod is not up) is tried
again with backoff. Resolution waits on DNS, so it runs in its own greenlet,
never in the membership actor, whose every delay would delay acks.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gevent
import gevent.socket

from caxton_actors.address import Address

log = logging.getLogger(__name__)

RETRY_MAX = 30.0


@dataclass(frozen=True, slots=True)
class Resolved:
    addresses: tuple[Address, ...]
    skipped: tuple[str, ...]
    """Each seed not contacted, with the reason."""
    unresolved: tuple[Address, ...]


def resolve(seeds: Sequence[Address], me: Address) -> Resolved:
    addresses: list[Address] = []
    skipped: list[str] = []
    unresolved: list[Address] = []
    for seed in seeds:
        try:
            info = gevent.socket.getaddrinfo(seed.host, seed.port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            skipped.append(f"{seed}: {exc}")
            unresolved.append(seed)
            continue
        addr = Address(str(info[0][4][0]), int(info[0][4][1]))
        if addr == me:
            skipped.append(f"{seed}: this node")
        else:
            addresses.append(addr)
    return Resolved(tuple(addresses), tuple(skipped), tuple(unresolved))


def keep_resolving(
    seeds: Sequence[Address], me: Address, join: Callable[[tuple[Address, ...]], None]
) -> gevent.Greenlet[..., None]:
    """Join what resolves now; retry the rest with backoff until every name resolves."""

    def run() -> None:
        pending, delay = tuple(seeds), 1.0
        while pending:
            result = resolve(pending, me)
            if result.addresses:
                join(result.addresses)
            pending = result.unresolved
            if pending:
                log.info("seeds not resolvable yet, retrying in %gs: %s", delay, result.skipped)
                gevent.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)

    return gevent.spawn(run)
