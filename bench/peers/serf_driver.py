"""HashiCorp Serf agents (``apt-get install serf``), queried over their msgpack RPC port.

Each node is ``serf agent -profile=lan -node NAME -bind 127.0.0.1:PORT -rpc-addr
127.0.0.1:RPCPORT [-join 127.0.0.1:SEEDPORT]``. Views come from the RPC ``members`` command
(what ``serf members -format json`` prints) on a connection kept open per node, so polling
every 50 ms costs no process spawns. A ``member-failed`` event handler appends one line per
failed member to a file, which ``failure_events`` counts.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.peers import msgpack_lite
from bench.peers.driver import ALIVE, FAILED, LEAVING, LEFT, ProcessDriver, View

RPC_OFFSET = 1000
"""Node i's RPC port is ``base_port + RPC_OFFSET + i``."""

_STATUS = {"alive": ALIVE, "failed": FAILED, "leaving": LEAVING, "left": LEFT}


class SerfRPC:
    """One handshaken connection to an agent's RPC port (IPC protocol version 1)."""

    def __init__(self, port: int, timeout: float | None = 2.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.seq = 0
        self.request("handshake", {"Version": 1}, reply_body=False)

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("serf RPC closed")
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def send(self, command: str, body: dict[str, Any] | None = None) -> int:
        self.seq += 1
        payload = msgpack_lite.packb({"Command": command, "Seq": self.seq})
        if body is not None:
            payload += msgpack_lite.packb(body)
        self.sock.sendall(payload)
        return self.seq

    def request(
        self, command: str, body: dict[str, Any] | None = None, *, reply_body: bool = True
    ) -> Any:
        seq = self.send(command, body)
        header = msgpack_lite.unpack(self._read)
        if header.get("Seq") != seq:
            raise ConnectionError(f"serf RPC out of step: {header!r}")
        if header.get("Error"):
            raise RuntimeError(f"serf {command}: {header['Error']}")
        return msgpack_lite.unpack(self._read) if reply_body else None

    def read_header(self) -> Any:
        """The next header of a ``stream``: one per event that arrives."""
        header = msgpack_lite.unpack(self._read)
        if header.get("Error"):
            raise RuntimeError(f"serf stream: {header['Error']}")
        return header

    def read_body(self) -> Any:
        return msgpack_lite.unpack(self._read)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class SerfDriver(ProcessDriver):
    system = "serf"

    def __init__(self, workdir: Path, base_port: int, encrypt_key: str | None = None) -> None:
        super().__init__(workdir, base_port)
        binary = shutil.which("serf")
        if binary is None:
            raise RuntimeError("serf is not installed: apt-get update && apt-get install -y serf")
        self.binary = binary
        self.encrypt_key = encrypt_key
        self.rpc: dict[int, SerfRPC] = {}

    def rpc_port(self, i: int) -> int:
        return self.base_port + RPC_OFFSET + i

    def _failed_file(self, i: int) -> Path:
        return self.workdir / f"{self.node_name(i)}.failed"

    def start(self, i: int, seeds: Sequence[int]) -> None:
        handler = f"member-failed=cat >> {shlex.quote(str(self._failed_file(i)))}"
        argv = [
            self.binary,
            "agent",
            "-profile=lan",
            "-log-level=warn",
            "-node",
            self.node_name(i),
            "-bind",
            f"127.0.0.1:{self.gossip_port(i)}",
            "-rpc-addr",
            f"127.0.0.1:{self.rpc_port(i)}",
            "-event-handler",
            handler,
        ]
        if self.encrypt_key:
            argv += ["-encrypt", self.encrypt_key]
        for seed in seeds:
            argv += ["-join", f"127.0.0.1:{self.gossip_port(seed)}"]
        self._spawn(i, argv)

    def _conn(self, i: int) -> SerfRPC | None:
        conn = self.rpc.get(i)
        if conn is None and self.running(i):
            try:
                conn = self.rpc[i] = SerfRPC(self.rpc_port(i))
            except OSError:
                return None
        return conn

    def view(self, i: int) -> View | None:
        conn = self._conn(i)
        if conn is None:
            return None
        try:
            reply = conn.request("members")
        except (OSError, ConnectionError, RuntimeError):
            conn.close()
            self.rpc.pop(i, None)
            return None
        return {
            str(m["Name"]): _STATUS.get(str(m["Status"]), str(m["Status"]))
            for m in reply["Members"]
        }

    def failure_events(self, i: int) -> int | None:
        try:
            text = self._failed_file(i).read_text()
        except FileNotFoundError:
            return 0
        return sum(1 for line in text.splitlines() if line.strip())

    def leave(self, i: int) -> None:
        # What ``serf leave`` does: the agent broadcasts its leave, then shuts down. The reply
        # only comes once it is done, so it is not awaited.
        conn = self._conn(i)
        if conn is None:
            raise RuntimeError(f"node {i} has no RPC connection")
        conn.send("leave")

    def kill(self, i: int) -> None:
        self._drop(i)
        super().kill(i)

    def _drop(self, i: int) -> None:
        conn = self.rpc.pop(i, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        for i in list(self.rpc):
            self._drop(i)
        super().close()
