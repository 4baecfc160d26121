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
from typing import Protocol

import gevent
import gevent.pool
import gevent.server
import gevent.socket

from caxton_actors.address import Address
from caxton_actors.wire.codec import MAX_DATAGRAM, MAX_STREAM_MESSAGE, MAX_STREAM_REQUEST

log = logging.getLogger(__name__)

# The default buffer holds a few hundred small datagrams; a busy hub needs more slack.
RECEIVE_BUFFER = 4 * 1024 * 1024
STREAM_TIMEOUT = 5.0
# Inbound streams served at once; more wait in the listen backlog. A node opens one
# push-pull a period and a pull per owner behind, so a few dozen is ample, and a flood
# of connections costs a bounded number of greenlets and buffers.
MAX_INBOUND_STREAMS = 64
# Ports tried for port 0 before giving up (one free for UDP and TCP alike is almost sure).
ANY_PORT_ATTEMPTS = 8
_LENGTH = struct.Struct(">I")


class StreamError(Exception):
    """A full-state exchange that failed: refused, timed out, or too large."""


OnDatagram = Callable[[bytes, Address], None]
OnStream = Callable[[bytes, Address], "bytes | None"]
"""Answers one inbound stream message (None: close the stream unanswered)."""


class Transport(Protocol):
    """How a node's gossip meets the network (memberlist's ``Transport``).

    The node gives its membership actor a :class:`SocketTransport`; tests give
    several nodes in one process an in-memory one (``tests/support/memnet.py``).
    """

    port: int

    def open(self, on_datagram: OnDatagram, on_stream: OnStream) -> None:
        """Start handing what arrives to these callbacks (each in a greenlet of its own)."""

    def send(self, data: bytes, to: Address) -> None:
        """One datagram; a failure is loss, never an exception."""

    def exchange(self, to: Address, data: bytes) -> bytes:
        """One stream message and its answer; raises :class:`StreamError`."""

    def close(self) -> None: ...


class SocketTransport:
    """UDP and TCP on one port. Binds when built, so a port in use fails start-up.

    Port 0 asks for any port: the one the UDP socket gets may be taken for TCP, so a few
    are tried.
    """

    def __init__(self, bind: Address) -> None:
        for attempt in range(ANY_PORT_ATTEMPTS if bind.port == 0 else 1):
            try:
                self._udp, self._tcp = _bind_both(bind)
                break
            except OSError:
                if attempt == ANY_PORT_ATTEMPTS - 1 or bind.port != 0:
                    raise
        self.port: int = self._udp.getsockname()[1]
        self._reader: gevent.Greenlet[[OnDatagram], None] | None = None
        self._server: gevent.server.StreamServer | None = None

    def open(self, on_datagram: OnDatagram, on_stream: OnStream) -> None:
        self._reader = gevent.spawn(self._read_forever, on_datagram)
        self._server = gevent.server.StreamServer(
            self._tcp, _answering(on_stream), spawn=gevent.pool.Pool(MAX_INBOUND_STREAMS)
        )
        self._server.start()

    def send(self, data: bytes, to: Address) -> None:
        try:
            self._udp.sendto(data, to)
        except (OSError, ValueError) as exc:  # unreachable, no route: the protocol's loss
            log.debug("send to %s failed: %s", to, exc)

    def exchange(self, to: Address, data: bytes) -> bytes:
        return exchange(to, data)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.kill()
        if self._server is not None:
            self._server.stop(timeout=1)
        self._udp.close()
        self._tcp.close()

    def _read_forever(self, on_datagram: OnDatagram) -> None:
        while True:
            data, addr = self._udp.recvfrom(MAX_DATAGRAM + 1)
            on_datagram(data, Address(addr[0], addr[1]))


def _bind_both(bind: Address) -> tuple[gevent.socket.socket, gevent.socket.socket]:
    udp = gevent.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = gevent.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        udp.bind(bind)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((bind.host, udp.getsockname()[1]))
        tcp.listen(128)
    except OSError:
        udp.close()
        tcp.close()
        raise
    return udp, tcp


def _read_exact(sock: gevent.socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 65536))
        if not chunk:
            raise StreamError("connection closed mid-message")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(sock: gevent.socket.socket, limit: int) -> bytes:
    (length,) = _LENGTH.unpack(_read_exact(sock, _LENGTH.size))
    if length > limit:
        raise StreamError(f"stream message of {length} bytes is over the limit")
    return _read_exact(sock, length)


def write_frame(sock: gevent.socket.socket, data: bytes) -> None:
    sock.sendall(_LENGTH.pack(len(data)) + data)


def exchange(to: Address, data: bytes, timeout: float = STREAM_TIMEOUT) -> bytes:
    """Send one stream message and read the answer (the client side of a push-pull)."""
    # A socket of the address's family, not create_connection, which would look the
    # literal up through the resolver's thread pool on every push-pull.
    family = socket.AF_INET6 if ":" in to[0] else socket.AF_INET
    try:
        with gevent.Timeout(timeout), gevent.socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.connect(to)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            write_frame(sock, data)
            return read_frame(sock, MAX_STREAM_MESSAGE)
    except (OSError, gevent.Timeout, struct.error) as exc:
        raise StreamError(f"exchange with {to[0]}:{to[1]} failed: {exc}") from None


def _answering(answer: OnStream) -> Callable[[gevent.socket.socket, tuple[str, int]], None]:
    """A stream server's handler: one message in, ``answer``'s reply out."""

    def handle(sock: gevent.socket.socket, addr: tuple[str, int]) -> None:
        try:
            with gevent.Timeout(STREAM_TIMEOUT):
                request = read_frame(sock, MAX_STREAM_REQUEST)
                reply = answer(request, Address(addr[0], addr[1]))
                if reply is not None:
                    write_frame(sock, reply)
        except (OSError, StreamError, gevent.Timeout, struct.error) as exc:
            log.debug("stream from %s dropped: %s", addr, exc)

    return handle
