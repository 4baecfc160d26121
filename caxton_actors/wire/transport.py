"""Gossip on the network: UDP datagrams, and TCP for full-state exchanges.

Both use gevent sockets, so waiting on the network yields the hub. UDP and TCP
share one port number, as in memberlist. A stream message is a 4-byte
big-endian length and that many bytes of envelope.
"""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Callable

import gevent
import gevent.server
import gevent.socket

from caxton_actors.swim.messages import Addr
from caxton_actors.wire.codec import MAX_DATAGRAM, MAX_STREAM_MESSAGE

log = logging.getLogger(__name__)

# The default buffer holds a few hundred small datagrams; a busy hub needs more slack.
RECEIVE_BUFFER = 4 * 1024 * 1024
STREAM_TIMEOUT = 5.0
_LENGTH = struct.Struct(">I")


class StreamError(Exception):
    """A full-state exchange that failed: refused, timed out, or too large."""


class UdpEndpoint:
    """A bound UDP socket with a reader greenlet handing each datagram to ``receive``."""

    def __init__(self, bind: Addr, receive: Callable[[bytes, Addr], None]) -> None:
        self._sock = gevent.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self._sock.bind(bind)
        self.port: int = self._sock.getsockname()[1]
        self._receive = receive
        self._reader = gevent.spawn(self._read_forever)

    def send(self, data: bytes, to: Addr) -> None:
        try:
            self._sock.sendto(data, to)
        except OSError as exc:  # unreachable, no route: the protocol treats it as loss
            log.debug("send to %s failed: %s", to, exc)

    def close(self) -> None:
        self._reader.kill()
        self._sock.close()

    def _read_forever(self) -> None:
        while True:
            data, addr = self._sock.recvfrom(MAX_DATAGRAM + 1)
            self._receive(data, (addr[0], addr[1]))


def _read_exact(sock: gevent.socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 65536))
        if not chunk:
            raise StreamError("connection closed mid-message")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(sock: gevent.socket.socket) -> bytes:
    (length,) = _LENGTH.unpack(_read_exact(sock, _LENGTH.size))
    if length > MAX_STREAM_MESSAGE:
        raise StreamError(f"stream message of {length} bytes is over the limit")
    return _read_exact(sock, length)


def write_frame(sock: gevent.socket.socket, data: bytes) -> None:
    sock.sendall(_LENGTH.pack(len(data)) + data)


def exchange(to: Addr, data: bytes, timeout: float = STREAM_TIMEOUT) -> bytes:
    """Send one stream message and read the answer (the client side of a push-pull)."""
    try:
        with gevent.Timeout(timeout), gevent.socket.create_connection(to) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            write_frame(sock, data)
            return read_frame(sock)
    except (OSError, gevent.Timeout, struct.error) as exc:
        raise StreamError(f"exchange with {to[0]}:{to[1]} failed: {exc}") from None


class StreamListener:
    """Answers each inbound stream message with what ``answer`` returns for it."""

    def __init__(self, bind: Addr, answer: Callable[[bytes, Addr], bytes | None]) -> None:
        self._answer = answer
        self._server = gevent.server.StreamServer(bind, self._handle)
        self._server.start()

    def close(self) -> None:
        self._server.stop(timeout=1)

    def _handle(self, sock: gevent.socket.socket, addr: tuple[str, int]) -> None:
        try:
            with gevent.Timeout(STREAM_TIMEOUT):
                reply = self._answer(read_frame(sock), (addr[0], addr[1]))
                if reply is not None:
                    write_frame(sock, reply)
        except (OSError, StreamError, gevent.Timeout, struct.error) as exc:
            log.debug("stream from %s dropped: %s", addr, exc)
