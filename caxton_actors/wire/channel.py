"""A node's gossip channel: packets to bytes and back, sealed when the node has keys.

Outbound, a packet is encoded (``codec``) and, with a keyring, sealed with the
primary key, the protocol version and cluster label as associated data: a message
from another cluster, another protocol version or a key this node lacks fails
authentication and is never decoded. Inbound, the reverse; every failure is a
:class:`~caxton_actors.wire.codec.DecodeError` whose reason is counted.

The keyring is replaced, never changed, when keys rotate: whoever holds the channel
sees either the old keyring or the new one.
"""

from __future__ import annotations

from caxton_actors.engine.messages import Packet
from caxton_actors.wire import codec
from caxton_actors.wire.keyring import OVERHEAD, SEALED, Keyring, SealError


class Channel:
    def __init__(self, cluster: str, keyring: Keyring | None) -> None:
        self.cluster = cluster
        self.keyring = keyring
        self._aad = f"caxton/{codec.VERSION}/{cluster}".encode()

    @property
    def encrypted(self) -> bool:
        return self.keyring is not None

    def pack(
        self, packet: Packet, limit: int = codec.MAX_DATAGRAM, key: bytes | None = None
    ) -> bytes:
        """At most ``limit`` bytes on the wire, seal included; sealed with the primary key,
        or with ``key`` while it is installed (to answer a member in the key it spoke)."""
        keyring = self.keyring
        if keyring is None:
            return codec.encode(packet, self.cluster, limit)
        plaintext = codec.encode(packet, self.cluster, limit - OVERHEAD)
        index = keyring.keys.index(key) if key in keyring.keys else 0
        return keyring.seal(plaintext, self._aad, index)

    def unpack(self, data: bytes, limit: int = codec.MAX_DATAGRAM) -> tuple[Packet, bytes | None]:
        """The packet, and the key that opened it if not the primary: the sender seals with
        a key this node no longer does, so it missed a rotation (or this node did)."""
        if len(data) > limit:
            raise codec.DecodeError("oversized", f"{len(data)} bytes")
        keyring = self.keyring
        if keyring is None:
            if data[:1] == bytes([SEALED]):
                raise codec.DecodeError("encrypted")  # a cluster with keys: not ours
            return codec.decode(data, self.cluster, limit), None
        try:
            plaintext, index = keyring.open(data, self._aad)
        except SealError as exc:
            raise codec.DecodeError(exc.reason) from None
        return codec.decode(plaintext, self.cluster, limit), keyring.keys[index] if index else None
