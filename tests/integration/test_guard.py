"""The front door of a real node: tokens on every route, Host and forgery checks, a
network bind that needs tokens, HTTPS, and caps on what one client may hold."""

from __future__ import annotations

import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon
import falcon.inspect
import gevent
import gevent.socket
import pykka
import pytest

from caxton_actors.actors import http as http_actor
from caxton_actors.actors.http import HttpActor, listen
from caxton_actors.address import Address
from caxton_actors.http.access import Scope
from caxton_actors.http.app import create_app
from caxton_actors.http.resources import MAX_SUBSCRIBERS, Actors
from caxton_actors.metrics import NullMetrics
from caxton_actors.runtime.actor import GeventActor
from caxton_actors.state.service import StateService
from tests.integration.conftest import NodeProcess, free_port, start_node
from tests.support.tls import self_signed

SECRETS = {
    Scope.READ: "read-secret-0123456789",
    Scope.WRITE: "write-secret-0123456789",
    Scope.ADMIN: "admin-secret-0123456789",
}
TOKENS = ",".join(f"{scope}-token:{scope}:{secret}" for scope, secret in SECRETS.items())
PUBLIC = {
    ("/", "GET"),  # the status page: static, it asks for the token itself
    ("/", "HEAD"),
    ("/health", "GET"),
    ("/health", "HEAD"),
    ("/health/ready", "GET"),
}
ADMIN_PATHS = {"/keyring", "/cluster/join", "/cluster/leave"}
SAMPLE = {
    "agent_id": "a1",
    "key": "k",
    "conversation_id": "c1",
    "correlation_id": "r1",
    "scope": "s1",
}
PARAMETER = re.compile(r"{(\w+)(?::\w+)?}")
# A stream past the guard would never end: a bad query ends it with a 400 at once.
STREAMS = {"/agents/watch": "?scope=not/one"}


def _routes() -> list[tuple[str, str]]:
    """Every (path, method) the app serves, with sample values in its parameters."""
    ref: pykka.ActorRef[Any] = GeventActor.start()  # routes are only inspected
    try:
        app = create_app(
            Actors(ref, None, None, (), 1.0, StateService({}, 1.0, NullMetrics())), NullMetrics()
        )
        return sorted(
            (
                PARAMETER.sub(lambda m: SAMPLE[m[1]], route.path) + STREAMS.get(route.path, ""),
                method.method,
            )
            for route in falcon.inspect.inspect_routes(app)
            for method in route.methods
            if not method.internal and method.method != "OPTIONS"
        )
    finally:
        pykka.ActorRegistry.stop_all()


def _needed(path: str, method: str) -> Scope | None:
    """The policy the API documents, restated: a new route falls under it by default."""
    if (path, method) in PUBLIC:
        return None
    if path in ADMIN_PATHS:
        return Scope.ADMIN
    return Scope.READ if method in ("GET", "HEAD") else Scope.WRITE


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    node = start_node(tmp_path_factory.mktemp("guarded"), env={"CAXTON_HTTP_TOKENS": TOKENS})
    yield node
    node.signal(signal.SIGTERM)


def _cli(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=30)


def _bearer(scope: Scope) -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRETS[scope]}"}


@pytest.mark.parametrize(("path", "method"), _routes())
def test_every_route_asks_for_its_token(guarded: NodeProcess, path: str, method: str) -> None:
    needed = _needed(path, method)
    body: dict[str, Any] | None = {} if method in ("POST", "PUT") else None
    anonymous = guarded.request(method, path, body)
    if needed is None:
        assert anonymous.status not in (401, 403), anonymous.raw
        return
    assert anonymous.status == 401
    if method != "HEAD":
        assert "Bearer" in anonymous.json["description"]
    assert anonymous.headers["www-authenticate"] == "Bearer"
    for scope in Scope:
        reply = guarded.request(method, path, body, headers=_bearer(scope))
        if scope < needed:
            assert reply.status == 403, (scope, reply.raw)
            if method != "HEAD":
                assert f"needs {needed}" in reply.json["description"]
        else:
            assert reply.status not in (401, 403), (scope, reply.raw)


def test_a_wrong_secret_is_refused_and_never_echoed(guarded: NodeProcess) -> None:
    reply = guarded.request(
        "GET", "/agents", headers={"Authorization": "Bearer not-a-token-at-all"}
    )
    assert reply.status == 401
    assert b"not-a-token" not in reply.raw
    log = guarded.log()
    assert "not-a-token" not in log
    assert not any(secret in log for secret in SECRETS.values())


def test_a_writer_registers_and_a_reader_reads(guarded: NodeProcess) -> None:
    put = guarded.request(
        "PUT", "/agents/w1", {"capabilities": ["x"]}, headers=_bearer(Scope.WRITE)
    )
    assert put.status == 201
    read = guarded.request("GET", "/agents/w1", headers=_bearer(Scope.READ))
    assert read.json["id"] == "w1"
    assert guarded.request("DELETE", "/agents/w1", headers=_bearer(Scope.READ)).status == 403


def test_the_cli_presents_its_token(guarded: NodeProcess) -> None:
    command = [
        sys.executable,
        "-m",
        "caxton_actors",
        "agents",
        "--http",
        f"127.0.0.1:{guarded.port}",
    ]
    refused = _cli(*command)
    assert refused.returncode == 1
    assert "401" in refused.stderr
    with_token = _cli(*command, "--token", SECRETS[Scope.READ])
    assert with_token.returncode == 0, with_token.stderr
    assert with_token.stdout.startswith("AGENT")


def test_another_host_name_is_misdirected(api: NodeProcess) -> None:
    """DNS rebinding: a page's own name, pointed at this node, is not answered."""
    rebound = api.request("GET", "/agents", headers={"Host": f"evil.example:{api.port}"})
    assert rebound.status == 421
    assert "http.allowed_hosts" in rebound.json["description"]
    for host in (f"localhost:{api.port}", f"127.0.0.1:{api.port}", "[::1]", "LOCALHOST."):
        assert api.request("GET", "/agents", headers={"Host": host}).status == 200, host


def test_configured_host_names_are_answered(tmp_path: Path) -> None:
    node = start_node(tmp_path, "--http-allowed-hosts", "caxton.internal")
    try:
        named = node.request("GET", "/agents", headers={"Host": "caxton.internal:8080"})
        assert named.status == 200
        other = node.request("GET", "/agents", headers={"Host": "caxton.example:8080"})
        assert other.status == 421
    finally:
        node.signal(signal.SIGTERM)


@pytest.mark.parametrize(
    "content_type", [None, "application/x-www-form-urlencoded", "text/plain", "multipart/form-data"]
)
def test_a_post_an_html_form_could_send_is_refused(
    api: NodeProcess, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    for path in ("/cluster/leave", "/conversations", "/correlations"):
        reply = api.request("POST", path, raw=b"participants=a", headers=headers)
        assert reply.status == 415, (path, reply.raw)
        assert "application/json" in reply.json["description"]


def _run_exit(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "caxton_actors", "run", "--node-name", "n"]
    command += ["--sqlite-path", str(tmp_path / "n.db"), *args]
    return subprocess.run(
        command,
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )


def test_a_network_bind_without_tokens_is_refused(tmp_path: Path) -> None:
    done = _run_exit(tmp_path, "--http-bind", "0.0.0.0:0")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "http.tokens" in lines[0]
    assert "http.insecure: true" in lines[0]


def test_a_network_bind_with_tokens_serves_them(tmp_path: Path) -> None:
    port = free_port()
    node = start_node(
        tmp_path,
        "--node-name",
        "n",
        "--sqlite-path",
        str(tmp_path / "n.db"),
        "--http-bind",
        f"0.0.0.0:{port}",
        env={"CAXTON_HTTP_TOKENS": TOKENS},
        port=port,
        test_flags=False,
    )
    try:
        assert node.request("GET", "/agents").status == 401
        assert node.request("GET", "/agents", headers=_bearer(Scope.READ)).status == 200
    finally:
        node.signal(signal.SIGTERM)


def test_the_opt_out_serves_a_network_bind_open(tmp_path: Path) -> None:
    port = free_port()
    node = start_node(
        tmp_path,
        "--node-name",
        "n",
        "--sqlite-path",
        str(tmp_path / "n.db"),
        "--http-bind",
        f"0.0.0.0:{port}",
        "--http-insecure",
        "true",
        port=port,
        test_flags=False,
    )
    try:
        assert node.request("GET", "/agents").status == 200
    finally:
        node.signal(signal.SIGTERM)


def test_https_serves_and_the_cli_verifies_the_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    trusting = ssl.create_default_context(cafile=cert)
    node = start_node(
        tmp_path, "--http-tls-cert", str(cert), "--http-tls-key", str(key), tls=trusting
    )
    try:
        assert node.request("GET", "/health").status == 200
        with socket.create_connection(("127.0.0.1", node.port), timeout=5) as plain:
            plain.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            try:
                answer = plain.recv(1024)
            except ConnectionResetError:
                answer = b""
        assert b"200 OK" not in answer  # no plain HTTP on an HTTPS port
        url = f"https://127.0.0.1:{node.port}"
        command = [sys.executable, "-m", "caxton_actors", "agents", "--http", url]
        unverified = _cli(*command)
        assert unverified.returncode == 1
        assert "CERTIFICATE_VERIFY_FAILED" in unverified.stderr
        verified = _cli(*command, "--ca-cert", str(cert))
        assert verified.returncode == 0, verified.stderr
        assert verified.stdout.startswith("AGENT")
        assert "Traceback" not in node.log()
    finally:
        node.signal(signal.SIGTERM)


def test_a_certificate_that_cannot_load_is_one_line(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    done = _run_exit(
        tmp_path,
        "--http-bind",
        "127.0.0.1:0",
        "--http-tls-cert",
        str(cert),
        "--http-tls-key",
        str(cert),
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "http.tls_key" in lines[0]
    half = _run_exit(tmp_path, "--http-tls-cert", str(cert))
    assert half.returncode == 2
    assert "both http.tls_cert and http.tls_key" in half.stderr


def _open_stream(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n")
    return sock


def _status(sock: socket.socket) -> int:
    return int(sock.recv(4096).split(b" ", 2)[1])


def test_event_streams_are_capped_and_a_gone_client_frees_its_slot(tmp_path: Path) -> None:
    node = start_node(tmp_path, "--gossip-enabled", "true", "--gossip-bind", "127.0.0.1:0")
    streams = []
    try:
        for _ in range(MAX_SUBSCRIBERS):
            streams.append(_open_stream(node.port))
            assert _status(streams[-1]) == 200
        refused = node.request("GET", "/events")
        assert refused.status == 503
        assert f"{MAX_SUBSCRIBERS} event streams" in refused.json["description"]
        assert node.request("GET", "/health").status == 200  # the rest of the API still answers
        streams.pop().close()
        deadline = time.monotonic() + 1.5
        while True:
            streams.append(_open_stream(node.port))
            if _status(streams[-1]) == 200:
                break
            assert time.monotonic() < deadline, "the closed stream's slot was not freed"
            time.sleep(0.1)
    finally:
        for sock in streams:
            sock.close()
        node.signal(signal.SIGTERM)


class _Hello:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"hello": "world"}


@pytest.fixture
def hello_server() -> Iterator[tuple[str, int]]:
    """The HTTP actor in this process, serving one route, with gevent sockets to call it."""
    app = falcon.App()
    app.add_route("/", _Hello())
    listener = listen(Address("127.0.0.1", 0))
    ref = HttpActor.start(app, listener, 1.0)
    yield listener.getsockname()[:2]
    ref.stop()


def _get(sock: gevent.socket.socket) -> bytes:
    sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    answer: bytes = sock.recv(4096)
    return answer


def test_one_client_holds_at_most_its_share_of_connections(
    monkeypatch: pytest.MonkeyPatch, hello_server: tuple[str, int]
) -> None:
    monkeypatch.setattr(http_actor, "MAX_CONNECTIONS_PER_CLIENT", 3)
    held = [gevent.socket.create_connection(hello_server, timeout=5) for _ in range(3)]
    for sock in held:
        assert _get(sock).startswith(b"HTTP/1.1 200")
    extra = gevent.socket.create_connection(hello_server, timeout=5)
    refused = extra.recv(4096)
    assert refused.startswith(b"HTTP/1.1 503")
    assert b"too many connections from this address" in refused
    assert extra.recv(4096) == b""  # and closed
    held.pop().close()
    deadline = time.monotonic() + 2
    while True:  # the closed connection's share is free again
        again = gevent.socket.create_connection(hello_server, timeout=5)
        if _get(again).startswith(b"HTTP/1.1 200"):
            break
        assert time.monotonic() < deadline
        gevent.sleep(0.05)
    for sock in [*held, again, extra]:
        sock.close()


def test_headers_that_dribble_in_are_cut_off(
    monkeypatch: pytest.MonkeyPatch, hello_server: tuple[str, int]
) -> None:
    monkeypatch.setattr(http_actor, "HEADER_TIMEOUT", 0.3)
    slow = gevent.socket.create_connection(hello_server, timeout=5)
    started = time.monotonic()
    slow.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n")  # and never the blank line
    answer = slow.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400")
    assert time.monotonic() - started < 3
    slow.close()
