"""Fuzzing the gossip decoder and the decrypt path: hostile bytes are a counted drop,
never another exception (an exception in a transport greenlet would go unnoticed).

CI runs a few thousand cases each; a longer run: ``FUZZ_EXAMPLES=100000 pytest
tests/unit/test_wire_fuzz.py`` (see docs/architecture.md for the last one's result).
"""

from __future__ import annotations

import contextlib
import os

import ujson
from hypothesis import given, settings
from hypothesis import strategies as st

from caxton_actors.address import Address
from caxton_actors.engine.messages import Packet
from caxton_actors.swim.messages import Alive, Gossip
from caxton_actors.wire.channel import Channel
from caxton_actors.wire.codec import MAX_STREAM_MESSAGE, DecodeError, MessageType, UpdateType
from caxton_actors.wire.keyring import Keyring, generate_key, parse_key

PLAIN = Channel("caxton", None)
SEALED = Channel("caxton", Keyring((parse_key(generate_key()),)))
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2000"))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=30,
)
updates = st.builds(
    lambda kind, fields: [kind, *fields],
    st.sampled_from([*UpdateType, 0]),
    st.lists(json_values, max_size=5),
)
envelopes = st.builds(
    lambda kind, payload, trailing: [3, "caxton", "n1", kind, payload, *trailing],
    st.sampled_from([*MessageType, 0, 99]),  # every type, and two that are none
    st.lists(json_values, max_size=6) | json_values,
    st.lists(json_values, max_size=4)
    | st.tuples(json_values, json_values, st.lists(updates, max_size=3)).map(list),
)
"""Version 3 envelopes: a payload, then a wall clock, heads and updates, all arbitrary."""


def _unpacks_or_drops(channel: Channel, data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        channel.unpack(data, MAX_STREAM_MESSAGE)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.binary(max_size=1500))
def test_any_bytes_are_a_packet_or_a_drop(data: bytes) -> None:
    _unpacks_or_drops(PLAIN, data)
    _unpacks_or_drops(SEALED, data)


@settings(max_examples=EXAMPLES, deadline=None)
@given(envelopes)
def test_any_well_formed_json_envelope_is_a_packet_or_a_drop(envelope: list[object]) -> None:
    data = ujson.dumps(envelope).encode()
    _unpacks_or_drops(PLAIN, data)


@settings(max_examples=EXAMPLES // 2, deadline=None)
@given(st.integers(min_value=0, max_value=200), st.binary(min_size=1, max_size=8))
def test_a_tampered_sealed_packet_is_dropped(position: int, noise: bytes) -> None:
    packet = Packet("n1", Gossip(), (Alive("n2", 7, Address("10.0.0.2", 7946)),))
    data = bytearray(SEALED.pack(packet))
    position %= len(data)
    data[position : position + len(noise)] = bytes(b ^ 0x5A for b in noise)
    try:
        opened = SEALED.unpack(bytes(data))[0]
    except DecodeError as exc:
        reason = exc.reason
    else:
        assert opened == packet  # only if the noise changed nothing
        return
    assert reason in ("unencrypted", "truncated", "auth_failed", "oversized")
