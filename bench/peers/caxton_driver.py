"""caxton-actors nodes: ``python -m caxton_actors run`` with gossip on, asked over HTTP.

Views come from ``GET /members`` on a keep-alive connection per node; failures are the
node's own log lines of a member turning dead; a graceful leave is SIGTERM (the node
says goodbye, then exits). With an ``encrypt_key`` every node gets ``--gossip-keys KEY``
(base64 of 32 bytes, Serf's ``-encrypt`` format): all gossip sealed with AES-256-GCM.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.peers.driver import ALIVE, FAILED, LEFT, SUSPECT, ProcessDriver, View

HTTP_OFFSET = 2000
"""Node i's HTTP port is ``base_port + HTTP_OFFSET + i``."""

_STATE = {"alive": ALIVE, "suspect": SUSPECT, "dead": FAILED, "left": LEFT}
_DEATH = re.compile(r"member \S+ \w+ -> dead ")


class CaxtonDriver(ProcessDriver):
    system = "caxton"

    def __init__(self, workdir: Path, base_port: int, encrypt_key: str | None = None) -> None:
        super().__init__(workdir, base_port)
        self.encrypt_key = encrypt_key
        self.http: dict[int, http.client.HTTPConnection] = {}

    def http_port(self, i: int) -> int:
        return self.base_port + HTTP_OFFSET + i

    def start(self, i: int, seeds: Sequence[int]) -> None:
        argv = [
            sys.executable, "-m", "caxton_actors", "run",
            "--node-name", self.node_name(i),
            "--sqlite-path", str(self.workdir / f"{self.node_name(i)}.db"),
            "--http-bind", f"127.0.0.1:{self.http_port(i)}",
            "--gossip-enabled", "true",
            "--gossip-profile", "lan",
            "--gossip-bind", f"127.0.0.1:{self.gossip_port(i)}",
        ]  # fmt: skip
        if self.encrypt_key:
            argv += ["--gossip-keys", self.encrypt_key]  # AES-256-GCM, as Serf's -encrypt
        if seeds:
            argv += ["--gossip-seeds", ",".join(f"127.0.0.1:{self.gossip_port(s)}" for s in seeds)]
        self._spawn(i, argv)

    def view(self, i: int) -> View | None:
        if not self.running(i):
            return None
        conn = self.http.get(i)
        if conn is None:
            conn = self.http[i] = http.client.HTTPConnection(
                "127.0.0.1", self.http_port(i), timeout=2
            )
        try:
            conn.request("GET", "/members")
            reply = conn.getresponse()
            members = json.loads(reply.read())["members"]
        except (OSError, http.client.HTTPException, ValueError, KeyError):
            conn.close()
            self.http.pop(i, None)
            return None
        return {m["name"]: _STATE[m["state"]] for m in members}

    def failure_events(self, i: int) -> int | None:
        log = self.workdir / f"{self.node_name(i)}.log"
        try:
            return len(_DEATH.findall(log.read_text(errors="replace")))
        except FileNotFoundError:
            return 0

    def leave(self, i: int) -> None:
        self._signal(i, signal.SIGTERM)

    def kill(self, i: int) -> None:
        self._drop(i)
        super().kill(i)

    def _drop(self, i: int) -> None:
        conn = self.http.pop(i, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        for i in list(self.http):
            self._drop(i)
        super().close()
