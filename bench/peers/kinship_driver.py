"""kinship (``pip install kinship``) nodes, one Python interpreter each, run from
``kinship_node.py`` and asked for their views over stdin/stdout pipes.

kinship's API is in-process (``kinship.Cluster``, ``kinship.blocking.Cluster``); there is no
agent binary, so each node is a small script. Its idle cost is therefore kinship's Rust thread
plus an interpreter blocked on ``stdin.readline()`` and one blocked on the event stream:
no Python code runs between requests, but RSS includes the interpreter (``python_baseline``
in the results measures a bare ``python -c 'import kinship'``).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.peers.driver import ProcessDriver, View

NODE_SCRIPT = Path(__file__).with_name("kinship_node.py")


class KinshipDriver(ProcessDriver):
    system = "kinship"

    def __init__(
        self,
        workdir: Path,
        base_port: int,
        encrypt_key: str | None = None,
        python: str = sys.executable,
    ) -> None:
        super().__init__(workdir, base_port)
        self.encrypt_key = encrypt_key
        self.python = python
        self.bufs: dict[int, bytearray] = {}
        self.seq = 0
        self.dead_events: dict[int, int] = {}
        self.boot_at: dict[int, float] = {}

    def start(self, i: int, seeds: Sequence[int]) -> None:
        argv = [
            self.python,
            str(NODE_SCRIPT),
            "--name",
            self.node_name(i),
            "--bind",
            f"127.0.0.1:{self.gossip_port(i)}",
            "--seeds",
            ",".join(f"127.0.0.1:{self.gossip_port(s)}" for s in seeds),
        ]
        if self.encrypt_key:
            argv += ["--key", self.encrypt_key]
        self._spawn(i, argv, stdin_pipe=True)
        self.bufs[i] = bytearray()

    def _ask(self, i: int, cmd: str, timeout: float = 2.0) -> dict[str, Any] | None:
        proc = self.procs.get(i)
        if proc is None or proc.poll() is not None or proc.stdin is None or proc.stdout is None:
            return None
        self.seq += 1
        rid = str(self.seq)
        try:
            proc.stdin.write(f"{cmd} {rid}\n".encode())
            proc.stdin.flush()
        except OSError:
            return None
        fd = proc.stdout.fileno()
        buf = self.bufs[i]
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in buf:
                line, _, rest = bytes(buf).partition(b"\n")
                buf[:] = rest
                with contextlib.suppress(ValueError):
                    msg: dict[str, Any] = json.loads(line)
                    if msg.get("id") == rid:
                        return msg
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None
                buf += chunk

    def view(self, i: int) -> View | None:
        msg = self._ask(i, "v")
        if msg is None:
            return None
        self.dead_events[i] = int(msg.get("dead", 0))
        if msg.get("boot_at") is not None:
            self.boot_at[i] = float(msg["boot_at"])
        if msg.get("error"):
            raise RuntimeError(f"kinship node {i} failed to start: {msg['error']}")
        view = msg.get("view")
        return None if view is None else {str(k): str(v) for k, v in view.items()}

    def failure_events(self, i: int) -> int | None:
        if self.running(i):
            self.view(i)
        return self.dead_events.get(i)

    def started_at(self, i: int) -> float | None:
        return self.boot_at.get(i)

    def leave(self, i: int) -> None:
        proc = self.procs.get(i)
        if proc is None or proc.stdin is None:
            raise RuntimeError(f"node {i} is not running")
        self.seq += 1
        proc.stdin.write(f"leave {self.seq}\n".encode())
        proc.stdin.flush()
