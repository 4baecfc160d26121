"""The cost of sealing and opening one gossip datagram of about 1,200 bytes.

``Channel.pack(packet)`` and ``Channel.unpack(data)`` with no keyring (codec only) and with
a one-key ``Keyring`` (codec plus AES-256-GCM), and ``Keyring.seal``/``open`` alone. Best of
``--repeat`` timeit runs, in microseconds per call.

Run: python -m bench.seal_cost [--repeat 7]
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable
from dataclasses import replace

from caxton_actors.address import Address
from caxton_actors.engine.messages import Packet
from caxton_actors.registry.records import Head
from caxton_actors.swim.messages import Alive, Gossip, Suspect, Update
from caxton_actors.wire.channel import Channel
from caxton_actors.wire.keyring import Keyring, generate_key, parse_key

TARGET = 1200


def datagram(target: int = TARGET) -> Packet:
    """A gossip packet carrying alive/suspect updates, then registry heads, as many as keep
    its plaintext encoding at most ``target`` bytes."""
    channel = Channel("caxton", None)
    updates: list[Update] = []
    heads: list[Head] = []
    best = Packet("node-00", Gossip())
    for i in range(200):
        name = f"node-{i + 1:02d}"
        if i % 4 == 3:
            heads.append(Head(name, 1000 + i))
        elif i % 4 == 2:
            updates.append(Suspect(name, 1_764_000_000_000 + i, "node-00"))
        else:
            updates.append(Alive(name, 1_764_000_000_000 + i, Address("10.0.0.1", 7946 + i)))
        packet = Packet("node-00", Gossip(), tuple(updates), tuple(heads))
        if len(channel.pack(packet)) > target:
            break
        best = packet
    for i in range(200):  # fill the rest with heads, which are small
        packet = replace(best, heads=(*best.heads, Head(f"owner-{i:02d}", i)))
        if len(channel.pack(packet)) > target:
            break
        best = packet
    return best


def per_call_us(fn: Callable[[], object], repeat: int) -> float:
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat, number)) / number * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    packet = datagram()
    plain = Channel("caxton", None)
    sealed = Channel("caxton", Keyring((parse_key(generate_key()),)))
    keyring = sealed.keyring
    assert keyring is not None
    plain_bytes, sealed_bytes = plain.pack(packet), sealed.pack(packet)
    assert plain.unpack(plain_bytes)[0] == packet == sealed.unpack(sealed_bytes)[0]
    aad = b"caxton/2/caxton"
    box = keyring.seal(plain_bytes, aad)

    def row(what: str, fn_plain: Callable[[], object], fn_sealed: Callable[[], object]) -> str:
        a, b = per_call_us(fn_plain, args.repeat), per_call_us(fn_sealed, args.repeat)
        return f"| {what} | {a:.1f} | {b:.1f} | {b - a:+.1f} | {b / a:.2f} |"

    print(f"python {sys.version.split()[0]}; datagram {len(plain_bytes)} B plaintext,")
    print(f"{len(sealed_bytes)} B sealed; best of {args.repeat}, µs per call\n")
    print("| call | plaintext (µs) | sealed (µs) | difference (µs) | ratio |")
    print("|---|---|---|---|---|")
    print(row("`Channel.pack(packet)`", lambda: plain.pack(packet), lambda: sealed.pack(packet)))
    print(
        row(
            "`Channel.unpack(data)`",
            lambda: plain.unpack(plain_bytes),
            lambda: sealed.unpack(sealed_bytes),
        )
    )
    seal_us = per_call_us(lambda: keyring.seal(plain_bytes, aad), args.repeat)
    open_us = per_call_us(lambda: keyring.open(box, aad), args.repeat)
    print(f"| `Keyring.seal` alone | - | {seal_us:.1f} | | |")
    print(f"| `Keyring.open` alone | - | {open_us:.1f} | | |")


if __name__ == "__main__":
    main()
