"""Gossip keys at run time, for the membership actor that owns the channel.

Three things change a node's keyring: the operator's rotation (applied here, then asked of
every member on sealed streams, in greenlets, so the actor never waits on the network), a
member's request in such a rotation, and a member's offer of a newer keyring when this node
missed a rotation. Every change is saved beside the database before it takes effect, and
the channel's keyring is replaced, never changed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import gevent
import gevent.event

from caxton_actors.address import Address
from caxton_actors.engine.messages import Packet
from caxton_actors.runtime.actor import Request
from caxton_actors.swim.members import Members
from caxton_actors.swim.messages import State
from caxton_actors.wire import codec, keyring
from caxton_actors.wire.channel import Channel
from caxton_actors.wire.keyring import Keyring, KeyringOffer, KeyringReply, KeyringRequest
from caxton_actors.wire.transport import StreamError, Transport

log = logging.getLogger(__name__)

# Seconds between two offers of our keys to a member that seals with an older one.
KEY_OFFER_INTERVAL = 5.0
_NOT_ENCRYPTED = "gossip is not encrypted on this node (gossip.keys)"


@dataclass(frozen=True, slots=True)
class KeyringReport:
    """What every member said to one keyring request, this node's first."""

    replies: tuple[tuple[str, KeyringReply], ...]
    """By member name: its keys afterwards, or why it refused."""
    unreachable: tuple[tuple[str, str], ...]
    """By member name: why no reply came (dead, refused the stream, wrong key...)."""


@dataclass(frozen=True, slots=True)
class ChangeKeys(Request["gevent.event.AsyncResult[KeyringReport]"]):
    """To the membership actor, from the HTTP API: apply ``request`` here, then ask every
    member to. Answered at once with a result that the fan-out fills, so that the actor
    never waits on the network."""

    request: KeyringRequest


class KeyKeeper:
    def __init__(
        self, members: Members, channel: Channel, transport: Transport, path: Path
    ) -> None:
        self._members = members
        self._channel = channel
        self._transport = transport
        self._path = path
        self._offered: dict[str, float] = {}
        """Members offered our keys, and when (an entry a member: bounded by the table)."""

    def change(self, request: KeyringRequest) -> KeyringReply:
        """Apply a change (or a list) here."""
        ring = self._channel.keyring
        if ring is None:
            return KeyringReply((), _NOT_ENCRYPTED)
        try:
            changed = keyring.change(ring, request)
        except keyring.KeyringError as exc:
            return KeyringReply(keyring.fingerprints(ring), str(exc))
        if changed != ring:
            error = self._keep(changed)
            if error:
                return KeyringReply(keyring.fingerprints(ring), error)
            assert request.key is not None  # a change names its key
            log.info("gossip keyring: %s %s", request.op, keyring.fingerprint(request.key))
        return KeyringReply(keyring.fingerprints(changed))

    def adopt(self, offer: KeyringOffer) -> KeyringReply:
        """A member's keyring, if newer than ours: we missed a rotation while down."""
        ring = self._channel.keyring
        if ring is None:
            return KeyringReply((), _NOT_ENCRYPTED)
        adopted = keyring.newer(ring, offer)
        if adopted is None:
            return KeyringReply(keyring.fingerprints(ring), "not newer than this node's keys")
        error = self._keep(adopted)
        if error:
            return KeyringReply(keyring.fingerprints(ring), error)
        log.warning(
            "gossip keyring: took a member's newer keys (epoch %d -> %d): this node missed "
            "a rotation",
            ring.epoch,
            adopted.epoch,
        )
        return KeyringReply(keyring.fingerprints(adopted))

    def offer(self, member: str, key: bytes) -> None:
        """``member`` sealed with ``key``, not our primary: offer it our keys, in its key,
        at most once per ``KEY_OFFER_INTERVAL``."""
        addr = self._members.address_of(member)
        now = time.monotonic()
        last = self._offered.get(member)
        ring = self._channel.keyring
        if addr is None or ring is None or (last is not None and now - last < KEY_OFFER_INTERVAL):
            return
        self._offered[member] = now
        offer = Packet(self._members.name, KeyringOffer(ring.keys, ring.epoch))
        gevent.spawn(
            self._send_offer, addr, self._channel.pack(offer, codec.MAX_STREAM_REQUEST, key)
        )

    def rotate(self, request: KeyringRequest) -> gevent.event.AsyncResult[KeyringReport]:
        """Apply ``request`` here, then ask every other member; the result fills when all
        have answered or failed."""
        result: gevent.event.AsyncResult[KeyringReport] = gevent.event.AsyncResult()
        mine = self.change(request)
        if mine.error:
            result.set(KeyringReport(((self._members.name, mine),), ()))
        else:
            gevent.spawn(self._ask_members, request, mine, result)
        return result

    def _send_offer(self, to: Address, data: bytes) -> None:
        try:
            self._exchange(to, data)  # the answer says whether it took them: nothing to do
        except (StreamError, codec.DecodeError) as exc:
            log.debug("keyring offer to %s:%d failed: %s", *to, exc)

    def _keep(self, changed: Keyring) -> str:
        """Save ``changed``, then use it; the error, if it could not be saved. The fsyncs
        run on a thread: the hub must never wait on a disk."""
        error = gevent.get_hub().threadpool.apply(_save, (self._path, changed))
        if error:
            log.error("cannot save the gossip keyring to %s: %s", self._path, error)
            return f"cannot save the keyring: {error}"
        self._channel.keyring = changed
        return ""

    def _ask_members(
        self,
        request: KeyringRequest,
        mine: KeyringReply,
        result: gevent.event.AsyncResult[KeyringReport],
    ) -> None:
        """Every other member at once; a member that is down is reported, not waited for."""
        me = self._members.name
        others = [r for r in self._members.records() if r.name != me and r.state is not State.LEFT]
        up = [r for r in others if r.state is not State.DEAD]
        asked = [gevent.spawn(self._ask_member, r.addr, request) for r in up]
        gevent.joinall(asked)
        replies, unreachable = [(me, mine)], [(r.name, "dead") for r in others if r not in up]
        for record, greenlet in zip(up, asked, strict=True):
            if isinstance(greenlet.value, KeyringReply):
                replies.append((record.name, greenlet.value))
            else:
                unreachable.append((record.name, str(greenlet.value)))
        result.set(KeyringReport(tuple(replies), tuple(unreachable)))

    def _ask_member(self, to: Address, request: KeyringRequest) -> KeyringReply | str:
        try:
            answer = self._exchange(to, self._channel.pack(Packet(self._members.name, request)))
        except (StreamError, codec.DecodeError) as exc:
            return str(exc)
        if not isinstance(answer.message, KeyringReply):
            return "answered something else"
        return answer.message

    def _exchange(self, to: Address, data: bytes) -> Packet:
        packet, _ = self._channel.unpack(self._transport.exchange(to, data))
        return packet


def _save(path: Path, ring: Keyring) -> str:
    """On a worker thread: why the keyring could not be saved, or nothing (an exception
    raised there would be printed whole by gevent's pool)."""
    try:
        keyring.save_keyring(path, ring)
    except OSError as exc:
        return str(exc)
    return ""
