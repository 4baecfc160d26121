"""HTTP facade actor: serves the Falcon app with gevent's WSGI server.

Each request runs in its own greenlet on the node's hub and asks the other
actors for what it needs. Stopping the actor stops accepting, then waits up to
the drain timeout for the requests in flight.

No client can hold more than its share: connections per client address are
capped, a request's line and headers must arrive within a deadline, and an idle
connection is closed.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from collections import Counter
from pathlib import Path
from typing import Any

import falcon
import gevent
import gevent.pool
import gevent.server
import gevent.socket
from gevent.pywsgi import WSGIHandler, WSGIServer

from caxton_actors.address import Address
from caxton_actors.runtime.actor import GeventActor

log = logging.getLogger(__name__)

# Connections served at once; more wait in the listen backlog.
MAX_CONNECTIONS = 1000
# Connections one client address may hold at once; the next is answered 503 and closed.
MAX_CONNECTIONS_PER_CLIENT = 128
# Seconds a connection may sit idle or stalled before it is closed.
IDLE_TIMEOUT = 30.0
# Seconds a request's headers may take once its first line is in (a slow-headers attack
# holds a connection for as long as it is allowed to).
HEADER_TIMEOUT = 10.0
_TOO_MANY_BODY = (
    b'{"title": "503 Service Unavailable", "description": "too many connections from this address"}'
)
_TOO_MANY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_TOO_MANY_BODY), _TOO_MANY_BODY)
)


class _FairHandler(WSGIHandler):  # type: ignore[misc]  # gevent ships no stubs for pywsgi
    """One request per turn: a keep-alive client with its next request already waiting
    would otherwise be served again and again while other connections wait."""

    def handle_one_request(self) -> Any:
        gevent.sleep(0)
        return super().handle_one_request()

    def read_request(self, raw_requestline: str) -> Any:
        """The headers, within ``HEADER_TIMEOUT``; later, the connection gets a 400 and is
        closed (pywsgi answers a ValueError so)."""
        with gevent.Timeout(HEADER_TIMEOUT, ValueError("the headers took too long")):
            return super().read_request(raw_requestline)

    def get_environ(self) -> Any:
        """With the connection's socket, so that an event stream can tell when its
        client has gone."""
        environ = super().get_environ()
        environ[CLIENT_SOCKET] = self.socket
        return environ

    def log_request(self) -> None:
        """No access log: formatting one line per request cost about 5% of the CPU."""


CLIENT_SOCKET = "caxton.client_socket"
"""The WSGI environ key of the connection's socket."""


class _Server(WSGIServer):  # type: ignore[misc]  # gevent ships no stubs for pywsgi
    """pywsgi with socket options set at accept, before any TLS handshake, and a cap on
    the connections of each client address."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._per_client: Counter[str] = Counter()

    def do_read(self) -> Any:
        accepted = super().do_read()
        if accepted is not None:
            sock = accepted[0]
            # pywsgi writes headers and body in two sends; with Nagle on, a keep-alive
            # client waits for a delayed ACK between them (about 40 ms a request).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(IDLE_TIMEOUT)  # a client that stalls lets go of its greenlet
        return accepted

    def wrap_socket_and_handle(self, client_socket: socket.socket, address: Any) -> None:
        """A failed handshake (a plain HTTP client, a client that does not trust the
        certificate) is the client's problem: a debug line, not a traceback."""
        try:
            tls_socket = self.wrap_socket(client_socket, **self.ssl_args)
        except OSError as exc:  # ssl.SSLError, a timeout, a reset
            log.debug("TLS handshake with %s failed: %s", address[0], exc)
            client_socket.close()
            return
        with contextlib.closing(tls_socket):
            self.handle(tls_socket, address)

    def handle(self, sock: socket.socket, address: Any) -> None:
        client = address[0]
        if self._per_client[client] >= MAX_CONNECTIONS_PER_CLIENT:
            with contextlib.suppress(OSError):
                sock.sendall(_TOO_MANY)
            sock.close()
            return
        self._per_client[client] += 1
        try:
            super().handle(sock, address)
        finally:
            self._per_client[client] -= 1
            if not self._per_client[client]:
                del self._per_client[client]


def listen(bind: Address) -> gevent.socket.socket:
    """Bind the API's socket before any actor starts: its port goes into the node's metadata."""
    try:
        return gevent.server._tcp_listener((bind.host, bind.port), backlog=1024, reuse_addr=True)
    except OSError as exc:
        raise OSError(f"cannot listen on {bind} (http.bind_address): {exc.strerror}") from exc


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The server's TLS settings, loaded at start so that a bad file stops the node there."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
        raise OSError(
            f"cannot load http.tls_cert {cert} with http.tls_key {key}: {reason}"
        ) from None
    return context


class HttpActor(GeventActor):
    def __init__(
        self,
        app: falcon.App[Any, Any],
        listener: gevent.socket.socket,
        drain_timeout: float,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__()
        self._drain_timeout = drain_timeout
        # A pool, not bare greenlets: stop() waits only for handlers it can see in one.
        pool = gevent.pool.Pool(MAX_CONNECTIONS)
        ssl_args = {} if tls is None else {"ssl_context": tls}
        self._server = _Server(
            listener,
            app,
            log=None,
            error_log=log,
            spawn=pool,
            handler_class=_FairHandler,
            **ssl_args,
        )
        self._scheme = "http" if tls is None else "https"

    def on_start(self) -> None:
        self._server.start()
        log.info("HTTP API listening on %s://%s:%d", self._scheme, *self._server.address[:2])

    def on_stop(self) -> None:
        self._server.stop(timeout=self._drain_timeout)
