"""Real nodes for integration tests: `caxton-actors run` in a subprocess on free ports."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

START_TIMEOUT = 20.0


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass
class NodeProcess:
    proc: subprocess.Popen[bytes]
    port: int
    db_path: Path
    log_path: Path
    tls: ssl.SSLContext | None = None  # set: the node speaks HTTPS

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """One request on a fresh connection (keep-alive is tested on its own)."""
        conn = (
            http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            if self.tls is None
            else http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10, context=self.tls)
        )
        json_body = body is not None or (method == "POST" and raw is None)
        sent = {"Content-Type": "application/json"} if json_body else {}
        sent.update(headers or {})
        payload = json.dumps(body).encode() if body is not None else raw
        try:
            conn.request(method, path, body=payload, headers=sent)
            resp = conn.getresponse()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int, timeout: float = 15.0) -> int:
        self.proc.send_signal(signum)
        return self.proc.wait(timeout=timeout)


def start_node(
    workdir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    db_name: str = "state.db",
    port: int | None = None,
    test_flags: bool = True,
    name: str = "itest",
    tls: ssl.SSLContext | None = None,
) -> NodeProcess:
    """Start a node; ``test_flags`` gives it a name, a file in ``workdir`` and a free port."""
    port = port or free_port()
    db_path = workdir / db_name
    log_path = workdir / f"node-{port}.log"
    command = [sys.executable, "-m", "caxton_actors", "run", *args]
    if test_flags:
        command += [
            "--node-name",
            name,
            "--sqlite-path",
            str(db_path),
            "--http-bind",
            f"127.0.0.1:{port}",
        ]
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env={**_clean_env(), **(env or {})},
        )
    node = NodeProcess(proc, port, db_path, log_path, tls)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"node exited with {proc.returncode}:\n{node.log()}")
        try:
            if node.request("GET", "/health").status == 200:
                return node
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"node did not answer /health within {START_TIMEOUT}s:\n{node.log()}")


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CAXTON_")}


@pytest.fixture(scope="session")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """One node shared by the tests that only talk to its API."""
    running = start_node(tmp_path_factory.mktemp("api"))
    yield running
    running.signal(signal.SIGTERM)


class StatsdListener:
    """A real UDP socket standing in for the statsd server."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.lines: list[str] = []

    def collect(self, until: float) -> list[str]:
        deadline = time.monotonic() + until
        while time.monotonic() < deadline:
            try:
                data, _ = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            self.lines.extend(data.decode().splitlines())
        return self.lines
