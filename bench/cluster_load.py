"""A hub that never lies: load one node of a real cluster, count false suspicions.

Starts N real nodes on loopback (lan timing), registers agents on node 0, then for
DURATION seconds drives node 0 with wrk on ``GET /agents?capability=...`` while a
writer thread registers agents as fast as node 0 takes them. Node 0 sends statsd to
this script, which collects its hub loop lag. Afterwards every node's log is searched
for a member turning suspect or dead: on a healthy cluster that is a false positive.

    python -m bench.cluster_load --nodes 20 --seconds 30
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import percentile, table

AGENTS = 1000


def _free_port() -> int:
    """A port free for both TCP and UDP (gossip uses both)."""
    while True:
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port: int = tcp.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port


def _request(port: int, method: str, path: str, body: object = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    try:
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


class LagCollector:
    """Node 0's statsd datagrams: keeps the hub loop lag samples sent while collecting."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.lags: list[float] = []
        self.collecting = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            for line in data.decode().splitlines():
                if line.startswith("caxton_hub_loop_lag_ms:") and self.collecting.is_set():
                    self.lags.append(float(line.split(":")[1].split("|")[0]))


def start_cluster(
    workdir: Path, nodes: int, statsd: str
) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    gossip = [_free_port() for _ in range(nodes)]
    http_ports = [_free_port() for _ in range(nodes)]
    procs = []
    for i in range(nodes):
        command = [
            sys.executable, "-m", "caxton_actors", "run",
            "--node-name", f"n{i}",
            "--sqlite-path", str(workdir / f"n{i}.db"),
            "--http-bind", f"127.0.0.1:{http_ports[i]}",
            "--gossip-enabled", "true",
            "--gossip-bind", f"127.0.0.1:{gossip[i]}",
            "--gossip-seeds", f"127.0.0.1:{gossip[0]}",
        ]  # fmt: skip
        if i == 0:
            command += ["--statsd", statsd]
        log = (workdir / f"n{i}.log").open("wb")
        procs.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
    return procs, http_ports


def wait_converged(port: int, nodes: int, timeout: float = 60.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            status, body = _request(port, "GET", "/members")
            alive = [m for m in json.loads(body)["members"] if m["state"] == "alive"]
            if status == 200 and len(alive) == nodes:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"no convergence within {timeout}s")


def load(port: int, seconds: float) -> tuple[str, int]:
    """wrk on lookups and a writer thread, together; wrk's output and the writes done."""
    writes = 0
    stop = time.monotonic() + seconds

    def writer() -> None:
        nonlocal writes
        while time.monotonic() < stop:
            _request(port, "PUT", f"/agents/load-{writes}", {"capabilities": ["w"]})
            writes += 1

    thread = threading.Thread(target=writer)
    thread.start()
    url = f"http://127.0.0.1:{port}/agents?capability=c3&limit=100"
    wrk = ["wrk", "-t1", "-c16", f"-d{int(seconds)}s", "--latency", url]
    out = subprocess.run(wrk, capture_output=True, text=True, check=True).stdout
    thread.join()
    return out, writes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="caxton-load-"))
    lags = LagCollector()
    procs, ports = start_cluster(workdir, args.nodes, lags.address)
    try:
        converged = wait_converged(ports[-1], args.nodes)
        for i in range(AGENTS):
            _request(ports[0], "PUT", f"/agents/seed-{i}", {"capabilities": [f"c{i % 10}"]})
        lags.collecting.set()
        out, writes = load(ports[0], args.seconds)
        time.sleep(3)  # let any suspicion raised during the load show up
        lags.collecting.clear()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    accused = []
    for i in range(args.nodes):
        text = (workdir / f"n{i}.log").read_text(errors="replace")
        accused += re.findall(r"member (\S+) \w+ -> (suspect|dead)", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"99%\s+(\S+)", out)
    samples = lags.lags
    print(f"{args.nodes} nodes converged in {converged:.1f}s; load on n0 for {args.seconds:g}s")
    headers = ["GET /agents rps (wrk)", "GET p99", "PUTs done", "hub lag p99 ms",
               "hub lag max ms", "lag samples", "false suspicions"]  # fmt: skip
    row = [
        rps[1] if rps else "?",
        p99[1] if p99 else "?",
        writes,
        f"{percentile(samples, 99):.1f}" if samples else "?",
        f"{max(samples):.1f}" if samples else "?",
        len(samples),
        len(accused),
    ]
    print(table(headers, [row]))
    if accused:
        print("accused:", accused[:10])


if __name__ == "__main__":
    main()
