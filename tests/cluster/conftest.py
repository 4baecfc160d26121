"""A cluster of real node processes on loopback, for the tests in this folder."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import NodeProcess, free_port, start_node

SIZE = 5
_handed_out: set[int] = set()


def fresh_port() -> int:
    """A port free for TCP and UDP alike, never handed out before in this run."""
    while True:
        port = free_port()
        if port in _handed_out:
            continue
        try:
            free = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            free.bind(("127.0.0.1", port))
            free.close()
        except OSError:
            continue
        _handed_out.add(port)
        return port


class Cluster:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.nodes: dict[str, NodeProcess] = {}
        self.gossip_ports: dict[str, int] = {}

    def start(self, name: str, seeds: list[str], *extra: str) -> NodeProcess:
        port = self.gossip_ports.setdefault(name, fresh_port())
        seed_list = ",".join(f"127.0.0.1:{self.gossip_ports[s]}" for s in seeds)
        node = start_node(
            self.workdir,
            "--gossip-enabled",
            "true",
            "--gossip-bind",
            f"127.0.0.1:{port}",
            *(["--gossip-seeds", seed_list] if seeds else []),
            *extra,
            name=name,
            db_name=f"{name}.db",
            port=fresh_port(),
        )
        self.nodes[name] = node
        return node

    def view(self, name: str) -> dict[str, str]:
        members = self.nodes[name].request("GET", "/members").json["members"]
        return {m["name"]: m["state"] for m in members}

    def views(self, exclude: str = "") -> dict[str, dict[str, str]]:
        return {
            n: self.view(n) for n, p in self.nodes.items() if n != exclude and p.proc.poll() is None
        }

    def converged(self) -> bool:
        """Every running node lists every node started, all of them alive."""
        everyone = dict.fromkeys(self.nodes, "alive")
        return all(view == everyone for view in self.views().values())

    def wait_converged(self, timeout: float = 20) -> None:
        wait_until(self.converged, timeout, "all nodes see all alive")

    def declared(self, observer: str, member: str, state: str) -> bool:
        """Whether ``observer``'s log ever shows ``member`` turning ``state``."""
        pattern = rf"member {member} \w+ -> {state} "
        return re.search(pattern, self.nodes[observer].log()) is not None

    def stop_all(self) -> None:
        for node in self.nodes.values():
            if node.proc.poll() is None:
                node.proc.kill()
                node.proc.wait(timeout=10)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(tmp_path)
    try:
        for i in range(SIZE):
            running.start(f"n{i}", seeds=["n0"] if i else [])
        running.wait_converged()
        yield running
    finally:
        running.stop_all()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``caxton-actors`` command."""
    return subprocess.run(
        [sys.executable, "-m", "caxton_actors", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
