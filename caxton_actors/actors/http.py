"""HTTP facade actor: serves the Falcon app with gevent's WSGI server.

Each request runs in its own greenlet on the node's hub and asks the other
actors for what it needs. Stopping the actor stops accepting, then waits up to
the drain timeout for the requests in flight.
"""

from __future__ import annotations

import logging
import socket
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
# Seconds a connection may sit idle or stalled before it is closed.
IDLE_TIMEOUT = 30.0


class _FairHandler(WSGIHandler):  # type: ignore[misc]  # gevent ships no stubs for pywsgi
    """One request per turn: a keep-alive client with its next request already waiting
    would otherwise be served again and again while other connections wait."""

    def handle_one_request(self) -> Any:
        gevent.sleep(0)
        return super().handle_one_request()

    def log_request(self) -> None:
        """No access log: formatting one line per request cost about 5% of the CPU."""


class _NoDelayServer(WSGIServer):  # type: ignore[misc]  # gevent ships no stubs for pywsgi
    """pywsgi writes headers and body in two sends; with Nagle on, a keep-alive
    client waits for a delayed ACK between them (about 40 ms a request)."""

    def handle(self, sock: socket.socket, address: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(IDLE_TIMEOUT)  # a client that stalls mid-request lets go of its greenlet
        super().handle(sock, address)


def listen(bind: Address) -> gevent.socket.socket:
    """Bind the API's socket before any actor starts: its port goes into the node's metadata."""
    try:
        return gevent.server._tcp_listener((bind.host, bind.port), backlog=1024, reuse_addr=True)
    except OSError as exc:
        raise OSError(f"cannot listen on {bind} (http.bind_address): {exc.strerror}") from exc


class HttpActor(GeventActor):
    def __init__(
        self, app: falcon.App[Any, Any], listener: gevent.socket.socket, drain_timeout: float
    ) -> None:
        super().__init__()
        self._drain_timeout = drain_timeout
        # A pool, not bare greenlets: stop() waits only for handlers it can see in one.
        pool = gevent.pool.Pool(MAX_CONNECTIONS)
        self._server = _NoDelayServer(
            listener, app, log=None, error_log=log, spawn=pool, handler_class=_FairHandler
        )

    def on_start(self) -> None:
        self._server.start()
        log.info("HTTP API listening on http://%s:%d", *self._server.address[:2])

    def on_stop(self) -> None:
        self._server.stop(timeout=self._drain_timeout)
