"""Gossip encryption: AES-256-GCM under a rotating keyring, as in memberlist and Serf.

A sealed message is one marker byte (:data:`SEALED`; a plaintext envelope starts with
``{``), a random 96-bit nonce, then the ciphertext with its 16-byte GCM tag. The caller
chooses the associated data (the cluster label and protocol version), so a message sealed
for one cluster or version does not open in another. A random nonce is safe while a key
seals far fewer than 2^32 messages: at 1,000 datagrams a second a key lasts over a century
before that birthday bound matters, and keys are rotated long before. The primary key seals
and every key opens, so a cluster rotates without a flag day: install the new key
everywhere, use it everywhere, then remove the old one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from caxton_actors.files import write_atomically

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
SEALED = 0x01
"""The first byte of a sealed message; a plaintext envelope starts with ``{``."""
NONCE_BYTES = 12
OVERHEAD = 1 + NONCE_BYTES + 16
"""What sealing adds to a message: marker, nonce and GCM tag."""

_MARKER = bytes([SEALED])
_KEY_HINT = f"a key is {KEY_BYTES} random bytes in base64 (caxton-actors keys generate)"


class SealError(Exception):
    """A message that cannot be opened; ``reason`` is a fixed word to count drops by."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeyringError(Exception):
    """A keyring change refused, or a keyring file that cannot be used; str() is one line."""


def generate_key() -> str:
    """A new random key as base64 text, for a config file or the command line."""
    return encode_key(os.urandom(KEY_BYTES))


def parse_key(text: str) -> bytes:
    """A key from base64 text; refuses anything that is not exactly 32 bytes, loudly."""
    text = text.strip()
    if not text:
        raise KeyringError(f"empty; {_KEY_HINT}")
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or a str that is not ASCII
        raise KeyringError(f"not base64; {_KEY_HINT}") from None
    if len(key) != KEY_BYTES:
        raise KeyringError(f"decodes to {len(key)} bytes; {_KEY_HINT}")
    return key


def encode_key(key: bytes) -> str:
    """A key as base64 text, the form :func:`parse_key` reads."""
    return base64.b64encode(key).decode("ascii")


def fingerprint(key: bytes) -> str:
    """A short name for a key that is safe to log or show: it does not reveal the key."""
    return "sha256:" + hashlib.sha256(key).hexdigest()[:16]


@dataclass(frozen=True, slots=True, repr=False)
class Keyring:
    """Gossip keys, primary first: the primary seals, every key opens.

    Immutable: a change returns a new keyring with a higher ``epoch``, so that the newer of
    two keyrings is known. Each key's cipher is built once here, not per message.
    """

    keys: tuple[bytes, ...]
    epoch: int = 0
    _ciphers: tuple[AESGCM, ...] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyringError("a keyring needs at least one key")
        for index, key in enumerate(self.keys):
            if len(key) != KEY_BYTES:
                raise KeyringError(f"key {index} is {len(key)} bytes; a key is {KEY_BYTES}")
        if len(set(self.keys)) != len(self.keys):
            raise KeyringError("a key is listed twice")
        if self.epoch < 0:
            raise KeyringError(f"epoch {self.epoch} is negative")
        # cryptography costs 35 ms to import: only a node with keys pays it.
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415

        object.__setattr__(self, "_ciphers", tuple(AESGCM(key) for key in self.keys))

    def __repr__(self) -> str:  # fingerprints only: a keyring may end up in a log
        names = ", ".join(fingerprint(key) for key in self.keys)
        return f"Keyring(keys=[{names}], epoch={self.epoch})"

    @property
    def primary(self) -> bytes:
        """The key that seals."""
        return self.keys[0]

    def install(self, key: bytes) -> Keyring:
        """Add ``key`` as a secondary, so messages sealed with it open here."""
        keys = self.keys if key in self.keys else (*self.keys, key)
        return Keyring(keys, self.epoch + 1)

    def use(self, key: bytes) -> Keyring:
        """Seal with an installed ``key`` from now on; the old primary still opens."""
        self._require_installed(key)
        return Keyring((key, *(k for k in self.keys if k != key)), self.epoch + 1)

    def remove(self, key: bytes) -> Keyring:
        """Stop opening messages sealed with ``key``; the primary cannot go."""
        if key == self.primary:
            raise KeyringError("cannot remove the primary key: use another key first")
        self._require_installed(key)
        return Keyring(tuple(k for k in self.keys if k != key), self.epoch + 1)

    def _require_installed(self, key: bytes) -> None:
        if key not in self.keys:
            raise KeyringError(f"key {fingerprint(key)} is not installed: install it first")

    def seal(self, plaintext: bytes, aad: bytes, key: int = 0) -> bytes:
        """Encrypt and authenticate ``plaintext`` (and ``aad``) with the primary key, or
        the ``key``-th (to answer a member in the key it spoke)."""
        nonce = os.urandom(NONCE_BYTES)
        return _MARKER + nonce + self._ciphers[key].encrypt(nonce, plaintext, aad)

    def open(self, data: bytes, aad: bytes) -> tuple[bytes, int]:
        """The plaintext and the index of the key that opened it (0 is the primary).

        Raises :class:`SealError` and nothing else, whatever the bytes.
        """
        if not data or data[0] != SEALED:
            raise SealError("unencrypted")
        if len(data) < OVERHEAD:
            raise SealError("truncated")
        nonce, body = data[1 : 1 + NONCE_BYTES], data[1 + NONCE_BYTES :]
        for index, cipher in enumerate(self._ciphers):
            try:
                return cipher.decrypt(nonce, body, aad), index
            except _invalid_tag():  # evaluated only when decrypt raised
                continue
        raise SealError("auth_failed")


def _invalid_tag() -> type[Exception]:
    from cryptography.exceptions import InvalidTag  # noqa: PLC0415 - see Keyring.__post_init__

    return InvalidTag


def load_keyring(path: Path) -> Keyring | None:
    """The keyring saved at ``path``, or None if there is none yet."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise KeyringError(f"keyring file {path}: cannot read: {err.strerror}") from None
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):  # bad JSON or UTF-8; RecursionError: absurd nesting
        raise KeyringError(f"keyring file {path}: not JSON") from None
    try:
        return _from_json(document)
    except KeyringError as err:
        raise KeyringError(f"keyring file {path}: {err}") from None


def save_keyring(path: Path, ring: Keyring) -> None:
    """Write ``ring`` to ``path`` whole or not at all, readable by its owner only (it holds
    the keys themselves), the rename made durable so a node never comes back with an older
    keyring. An ``OSError`` propagates, and the file at ``path`` is then untouched."""
    document = {"epoch": ring.epoch, "keys": [encode_key(key) for key in ring.keys]}
    data = (json.dumps(document, indent=2) + "\n").encode()
    write_atomically(path, data, sync_directory=True)


def _from_json(document: Any) -> Keyring:
    """The keyring a parsed file describes; what is wrong with it, in one line, if not."""
    expected = 'expected {"epoch": <integer >= 0>, "keys": ["<base64 key>", ...]}'
    if not isinstance(document, dict):
        raise KeyringError(expected)
    epoch, texts = document.get("epoch"), document.get("keys")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise KeyringError(f"bad epoch {epoch!r}; {expected}")
    if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
        raise KeyringError(f"bad keys; {expected}")
    keys = []
    for index, text in enumerate(texts):
        try:
            keys.append(parse_key(text))
        except KeyringError as err:
            raise KeyringError(f"key {index}: {err}") from None
    return Keyring(tuple(keys), epoch)


# Rotation across the cluster: one node asks every member, on a sealed stream.


class KeyOp(StrEnum):
    LIST = "list"
    INSTALL = "install"
    USE = "use"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class KeyringRequest:
    """Change (or list) the receiver's keys. Only a member can send it: it opens only
    with a key the receiver holds."""

    op: KeyOp
    key: bytes | None
    """None for LIST."""


@dataclass(frozen=True, slots=True)
class KeyringReply:
    keys: tuple[str, ...]
    """The receiver's keys afterwards, as fingerprints, primary first."""
    error: str = ""
    """Why the change was refused; empty when it was made."""


@dataclass(frozen=True, slots=True, repr=False)
class KeyringOffer:
    """A member's whole keyring, for a member that spoke a key it no longer seals with: one
    that missed a rotation while it was down. Sealed with the key the laggard spoke, so
    only a holder of a key still installed gets it; taken only if its epoch is newer."""

    keys: tuple[bytes, ...]
    epoch: int

    def __repr__(self) -> str:
        return f"KeyringOffer({len(self.keys)} keys, epoch={self.epoch})"


# How far a member's epoch may run ahead of ours: a rotation raises it by one a change.
MAX_EPOCH_STEP = 1000


def newer(ring: Keyring, offer: KeyringOffer) -> Keyring | None:
    """The offered keyring if it is newer than ``ring`` (and sane), else None."""
    if not ring.epoch < offer.epoch <= ring.epoch + MAX_EPOCH_STEP:
        return None
    try:
        return Keyring(offer.keys, offer.epoch)
    except KeyringError:
        return None


def change(ring: Keyring, request: KeyringRequest) -> Keyring:
    """The keyring after ``request``; raises KeyringError when it is refused."""
    if request.op is KeyOp.LIST:
        return ring
    if request.key is None:
        raise KeyringError(f"{request.op} needs a key")
    if request.op is KeyOp.INSTALL:
        return ring.install(request.key)
    if request.op is KeyOp.USE:
        return ring.use(request.key)
    return ring.remove(request.key)


def fingerprints(ring: Keyring) -> tuple[str, ...]:
    return tuple(fingerprint(key) for key in ring.keys)
