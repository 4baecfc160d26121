"""Gossip encryption: sealed messages open only under an installed key, whatever the bytes."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caxton_actors.wire.keyring import (
    KEY_BYTES,
    OVERHEAD,
    SEALED,
    Keyring,
    KeyringError,
    SealError,
    encode_key,
    fingerprint,
    generate_key,
    load_keyring,
    parse_key,
    save_keyring,
)

AAD = b"v1|prod"
K1, K2, K3 = (parse_key(generate_key()) for _ in range(3))
RING = Keyring((K1,))


def _reason(ring: Keyring, data: bytes, aad: bytes = AAD) -> str:
    with pytest.raises(SealError) as caught:
        ring.open(data, aad)
    return caught.value.reason


# Sealing and opening.


def test_a_sealed_message_opens_with_the_primary() -> None:
    sealed = RING.seal(b'{"t": "ping"}', AAD)
    assert sealed[0] == SEALED
    assert len(sealed) == len(b'{"t": "ping"}') + OVERHEAD
    assert RING.open(sealed, AAD) == (b'{"t": "ping"}', 0)


def test_every_seal_uses_a_fresh_nonce() -> None:
    assert len({RING.seal(b"same", AAD) for _ in range(50)}) == 50


def test_an_empty_message_seals_and_opens() -> None:
    assert RING.open(RING.seal(b"", AAD), AAD) == (b"", 0)


def test_a_ring_without_the_key_cannot_open() -> None:
    assert _reason(Keyring((K2,)), RING.seal(b"secret", AAD)) == "auth_failed"


def test_other_associated_data_does_not_open() -> None:
    assert _reason(RING, RING.seal(b"secret", AAD), b"v1|staging") == "auth_failed"


def test_any_flipped_bit_is_refused() -> None:
    sealed = RING.seal(b"ping", AAD)
    for position in range(len(sealed)):
        for bit in range(8):
            damaged = bytearray(sealed)
            damaged[position] ^= 1 << bit
            expected = "unencrypted" if position == 0 else "auth_failed"
            assert _reason(RING, bytes(damaged)) == expected, (position, bit)


def test_plaintext_and_short_messages_are_named() -> None:
    assert _reason(RING, b"") == "unencrypted"
    assert _reason(RING, b'{"v": 1}') == "unencrypted"
    assert _reason(RING, RING.seal(b"ping", AAD)[: OVERHEAD - 1]) == "truncated"


# Rotation.


def test_a_rotation_keeps_the_cluster_talking() -> None:
    old, new = Keyring((K1,)), Keyring((K2,))
    both = old.install(K2)
    assert both.keys == (K1, K2)
    assert both.open(old.seal(b"a", AAD), AAD) == (b"a", 0)
    assert both.open(new.seal(b"b", AAD), AAD) == (b"b", 1)

    switched = both.use(K2)
    assert switched.primary == K2
    assert _reason(old, switched.seal(b"c", AAD)) == "auth_failed"
    assert switched.open(old.seal(b"d", AAD), AAD) == (b"d", 1)

    done = switched.remove(K1)
    assert done.keys == (K2,)
    assert _reason(done, old.seal(b"e", AAD)) == "auth_failed"
    assert done.open(switched.seal(b"f", AAD), AAD) == (b"f", 0)


def test_every_change_raises_the_epoch() -> None:
    ring = Keyring((K1,), epoch=4)
    installed = ring.install(K2)
    again = installed.install(K2)
    used = again.use(K2)
    removed = used.remove(K1)
    assert again.keys == installed.keys
    assert [r.epoch for r in (ring, installed, again, used, removed)] == [4, 5, 6, 7, 8]


def test_the_primary_cannot_be_removed() -> None:
    with pytest.raises(KeyringError, match="cannot remove the primary key: use another key"):
        Keyring((K1, K2)).remove(K1)


def test_an_uninstalled_key_cannot_be_used() -> None:
    with pytest.raises(KeyringError, match=f"key {fingerprint(K2)} is not installed"):
        Keyring((K1,)).use(K2)


def test_an_unknown_key_cannot_be_removed() -> None:
    with pytest.raises(KeyringError, match="is not installed"):
        Keyring((K1, K2)).remove(K3)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ((), "at least one key"),
        ((K1, K1), "listed twice"),
        ((K1, b"short"), "key 1 is 5 bytes"),
    ],
)
def test_a_bad_keyring_is_refused(keys: tuple[bytes, ...], message: str) -> None:
    with pytest.raises(KeyringError, match=message):
        Keyring(keys)


def test_a_bad_key_cannot_be_installed() -> None:
    with pytest.raises(KeyringError, match="16 bytes"):
        RING.install(bytes(16))


def test_the_repr_shows_fingerprints_not_keys() -> None:
    text = repr(Keyring((K1, K2), epoch=3))
    assert fingerprint(K1) in text
    assert fingerprint(K2) in text
    assert encode_key(K1) not in text
    assert repr(K1) not in text


# Key text.


def test_a_generated_key_parses() -> None:
    text = generate_key()
    key = parse_key(f"  {text}\n")
    assert len(key) == KEY_BYTES
    assert encode_key(key) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("not a key!", "not base64"),
        (base64.urlsafe_b64encode(b"\xff" * 32).decode(), "not base64"),
        (base64.b64encode(b"\xff" * 32).decode().rstrip("="), "not base64"),
        ("kéy=", "not base64"),
        (base64.b64encode(bytes(16)).decode(), "decodes to 16 bytes; a key is 32 random bytes"),
    ],
)
def test_a_bad_key_text_is_refused(text: str, message: str) -> None:
    with pytest.raises(KeyringError, match=message) as caught:
        parse_key(text)
    assert "\n" not in str(caught.value)


def test_a_fingerprint_is_short_and_hides_the_key() -> None:
    shown = fingerprint(K1)
    assert shown.startswith("sha256:")
    assert len(shown) == len("sha256:") + 16
    assert encode_key(K1) not in shown
    assert fingerprint(K1) != fingerprint(K2)


# The keyring file.


def test_a_saved_keyring_loads(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    ring = Keyring((K2, K1), epoch=7)
    save_keyring(path, ring)
    assert load_keyring(path) == ring
    assert path.stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["keyring.json"]


def test_a_save_replaces_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    save_keyring(path, Keyring((K1,)))
    save_keyring(path, Keyring((K1,)).install(K2))
    assert load_keyring(path) == Keyring((K1, K2), epoch=1)
    assert os.listdir(tmp_path) == ["keyring.json"]


def test_a_missing_file_is_no_keyring(tmp_path: Path) -> None:
    assert load_keyring(tmp_path / "keyring.json") is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        (b"[]", "expected"),
        (json.dumps({"keys": [encode_key(K1)]}).encode(), "bad epoch None"),
        (json.dumps({"epoch": -1, "keys": [encode_key(K1)]}).encode(), "bad epoch -1"),
        (json.dumps({"epoch": True, "keys": [encode_key(K1)]}).encode(), "bad epoch True"),
        (json.dumps({"epoch": 0, "keys": encode_key(K1)}).encode(), "bad keys"),
        (json.dumps({"epoch": 0, "keys": [1]}).encode(), "bad keys"),
        (json.dumps({"epoch": 0, "keys": []}).encode(), "at least one key"),
        (json.dumps({"epoch": 0, "keys": [encode_key(K1), "AAAA"]}).encode(), "key 1: decodes"),
        (json.dumps({"epoch": 0, "keys": [encode_key(K1)] * 2}).encode(), "listed twice"),
    ],
)
def test_a_bad_keyring_file_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "keyring.json"
    path.write_bytes(content)
    with pytest.raises(KeyringError, match=message) as caught:
        load_keyring(path)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_unreadable_keyring_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="cannot read"):
        load_keyring(tmp_path)  # a directory


# Whatever arrives on the network.


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_raise_only_a_seal_error(data: bytes) -> None:
    ring = Keyring((K1, K2))
    marked = bytes([SEALED]) + data
    padded = bytes([SEALED]).ljust(OVERHEAD, b"\0") + data  # long enough that keys are tried
    for message in (data, marked, padded):
        with pytest.raises(SealError):
            ring.open(message, AAD)


@st.composite
def _damaged(draw: st.DrawFn) -> tuple[bytes, bytes, bytes]:
    """A real sealed message and a copy after a few flips, cuts and extensions."""
    plaintext = draw(st.binary(max_size=200))
    sealed = RING.seal(plaintext, AAD)
    message = bytearray(sealed)
    for _ in range(draw(st.integers(0, 3))):
        change = draw(st.sampled_from(["flip", "cut", "extend"]))
        if change == "flip" and message:
            message[draw(st.integers(0, len(message) - 1))] ^= draw(st.integers(1, 255))
        elif change == "cut":
            del message[draw(st.integers(0, len(message))) :]
        else:
            message += draw(st.binary(min_size=1, max_size=16))
    return plaintext, sealed, bytes(message)


@settings(max_examples=2000, deadline=None)
@given(_damaged())
def test_a_damaged_message_never_opens(case: tuple[bytes, bytes, bytes]) -> None:
    plaintext, sealed, message = case
    if message == sealed:
        assert RING.open(message, AAD) == (plaintext, 0)
    else:
        with pytest.raises(SealError):
            RING.open(message, AAD)
