"""Seeds are resolved at join time, skipped when they are this node, retried when not found."""

from __future__ import annotations

import gevent

from caxton_actors.address import Address
from caxton_actors.wire.seeds import keep_resolving, resolve

ME = Address("127.0.0.1", 7946)


def test_resolve_names_skips_this_node_and_reports_failures() -> None:
    found = resolve(
        [Address("localhost", 7000), Address("127.0.0.1", 7946), Address("no-such.invalid", 1)],
        ME,
    )
    assert found.addresses == (Address("127.0.0.1", 7000),)
    assert found.skipped[0] == "127.0.0.1:7946: this node"
    assert found.skipped[1].startswith("no-such.invalid:1: ")
    assert found.unresolved == (Address("no-such.invalid", 1),)


def test_unresolved_names_are_retried_in_the_background() -> None:
    joined: list[tuple[Address, ...]] = []
    greenlet = keep_resolving(
        [Address("localhost", 7000), Address("no-such.invalid", 1)], ME, joined.append
    )
    gevent.sleep(0.2)
    assert joined == [(Address("127.0.0.1", 7000),)]
    assert not greenlet.dead  # still trying the name that does not resolve
    greenlet.kill()
    done = keep_resolving([Address("localhost", 7001)], ME, joined.append)
    done.join(timeout=5)
    assert done.dead
    assert joined[-1] == (Address("127.0.0.1", 7001),)
