"""HTTP benchmarks against a real node process, driven by wrk over loopback.

(a) PUT /agents/{id}: distinct ids, a JSON body with two capabilities;
(b) GET /health/gossip on the node, and on a bare Falcon app (one resource, the
    same JSON body from memory, the same ujson handler) served by the same
    server class (_NoDelayServer, gevent pywsgi) in its own process;
    GET /health (no actor ask) and GET /agents?capability=X on the node.

wrk runs on the same 2 cores as the server, so it takes CPU the server could use.
Run from the repo root: ``python -m bench.http`` (not ``python bench/http.py``,
which would put bench/ first on sys.path and shadow the standard library's http).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import free_port, table

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 20.0
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}

PUT_LUA = """
next_tid = 1
function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end
n = 0
function request()
  n = n + 1
  local body = string.format('{"capabilities":["cap-%d","cap-%d"]}', n % 100, (n + 50) % 100)
  return wrk.format("PUT", string.format("/agents/%s-%d-%d", phase, tid, n),
                    {["Content-Type"] = "application/json"}, body)
end
"""

LIST_LUA = """
n = 0
function request()
  n = n + 1
  return wrk.format("GET", "/agents?capability=cap-" .. (n % 100))
end
"""


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    bad: str  # non-2xx responses and socket errors, empty when none
    cpu: float  # server CPU seconds per wall second during the run (1.0 = one core)


def run_wrk(
    url: str, pid: int, *, seconds: int, threads: int, conns: int, lua: str | None = None
) -> WrkResult:
    """One wrk run; ``pid`` is the server whose CPU use is measured alongside."""
    command = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency", url]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        if lua is not None:
            script.write(lua)
            script.flush()
            command[1:1] = ["-s", script.name]
        cpu_before, wall_before = cpu_seconds(pid), time.perf_counter()
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        cpu = (cpu_seconds(pid) - cpu_before) / (time.perf_counter() - wall_before)
    latency = {
        int(m[1]): float(m[2]) * UNITS[m[3]]
        for m in re.finditer(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    }
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if rps is None or total is None or 50 not in latency or 99 not in latency:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    bad = [
        line.strip() for line in out.splitlines() if "Non-2xx" in line or "Socket errors" in line
    ]
    return WrkResult(float(rps[1]), latency[50], latency[99], int(total[1]), "; ".join(bad), cpu)


def cpu_per_req(result: WrkResult) -> float:
    return result.cpu / result.rps


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get_json(port: int, path: str) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"GET {path}: {resp.status} {body!r}")
        return json.loads(body)
    finally:
        conn.close()


@contextmanager
def process(command: list[str], port: int, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server, wait until GET /health answers, SIGTERM it on the way out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAXTON_")}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command} did not start:\n{log_path.read_text()}")
            try:
                get_json(port, "/health")
                break
            except OSError:
                time.sleep(0.05)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serve_bare(port: int) -> None:
    """The baseline: one Falcon resource, ujson, the node's HTTP actor; nothing else."""
    import falcon  # noqa: PLC0415 - only the child process needs these
    import gevent.event  # noqa: PLC0415

    from caxton_actors.actors.http import HttpActor, listen  # noqa: PLC0415
    from caxton_actors.address import Address  # noqa: PLC0415
    from caxton_actors.http.media import json_handler  # noqa: PLC0415

    class Gossip:
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            resp.media = {"peer_count": 0, "last_sync": None, "agent_count": 0, "status": "healthy"}

    class Health:
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            resp.media = {"status": "ok"}

    app = falcon.App()
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = json_handler
    app.add_route("/health/gossip", Gossip())
    app.add_route("/health", Health())
    HttpActor.start(app, listen(Address("127.0.0.1", port)), 1.0)  # the node's own server
    gevent.event.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="HTTP benchmarks of a caxton-actors node")
    parser.add_argument("--seconds", type=int, default=10, help="duration of each wrk run")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t")
    parser.add_argument("--connections", type=int, default=16, help="wrk -c")
    parser.add_argument(
        "--rounds", type=int, default=2, help="caxton/bare GET /health/gossip pairs, interleaved"
    )
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare is not None:
        serve_bare(args.serve_bare)
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get update && apt-get install -y wrk")
    print(f"reproduce: cd {ROOT} && {sys.executable} -m bench.http {' '.join(sys.argv[1:])}")
    settings = f"wrk -t{args.threads} -c{args.connections} -d{args.seconds}s --latency"
    print(f"{settings}; {os.cpu_count()} cpus shared by wrk and the server")
    print(f"load average before: {Path('/proc/loadavg').read_text().strip()}")

    def load(url: str, pid: int, lua: str | None = None, seconds: int = args.seconds) -> WrkResult:
        return run_wrk(
            url, pid, seconds=seconds, threads=args.threads, conns=args.connections, lua=lua
        )

    def wrk(url: str, pid: int, lua: str | None = None) -> WrkResult:
        load(url, pid, lua, seconds=2)  # warm-up, not reported
        return load(url, pid, lua)

    rows: list[tuple[str, WrkResult]] = []
    with tempfile.TemporaryDirectory(prefix="caxton-bench-") as tmp:
        node_port, bare_port = free_port(), free_port()
        node_cmd = [sys.executable, "-m", "caxton_actors", "run", "--node-name", "bench"]
        node_cmd += ["--sqlite-path", f"{tmp}/state.db", "--http-bind", f"127.0.0.1:{node_port}"]
        bare_cmd = [sys.executable, "-m", "bench.http", "--serve-bare", str(bare_port)]
        node_log, bare_log = Path(tmp) / "node.log", Path(tmp) / "bare.log"
        with process(node_cmd, node_port, node_log) as node:
            base = f"http://127.0.0.1:{node_port}"
            load(f"{base}/", node.pid, f'phase = "warm"\n{PUT_LUA}', seconds=2)
            put = load(f"{base}/", node.pid, f'phase = "agent"\n{PUT_LUA}')
            rows.append(("caxton PUT /agents/{id}", put))
            agents = get_json(node_port, "/health/gossip")["agent_count"]
            with process(bare_cmd, bare_port, bare_log) as bare:
                servers = {
                    "caxton": (f"{base}/health/gossip", node.pid),
                    "bare falcon": (f"http://127.0.0.1:{bare_port}/health/gossip", bare.pid),
                }
                for url, pid in servers.values():
                    load(url, pid, seconds=2)  # warm-up, not reported
                runs: dict[str, list[WrkResult]] = {name: [] for name in servers}
                for i in range(args.rounds):  # alternate the order: noise hits both alike
                    for name in sorted(servers, reverse=i % 2 == 1):
                        runs[name].append(load(*servers[name]))
                        rows.append(
                            (f"{name} GET /health/gossip #{len(runs[name])}", runs[name][-1])
                        )
            rows.append(("caxton GET /health (no actor ask)", wrk(f"{base}/health", node.pid)))
            listed = wrk(f"{base}/", node.pid, LIST_LUA)
            rows.append(("caxton GET /agents?capability=X (100/page)", listed))
        problems = [
            line for line in node_log.read_text().splitlines() if "ERROR" in line or "Trace" in line
        ]

    report(rows, runs, agents, problems)


def report(
    rows: list[tuple[str, WrkResult]],
    runs: dict[str, list[WrkResult]],
    agents: int,
    problems: list[str],
) -> None:
    gossip = max(runs["caxton"], key=lambda r: r.rps)
    bare_gossip = max(runs["bare falcon"], key=lambda r: r.rps)
    print(
        table(
            ["endpoint", "requests/s", "p50", "p99", "requests", "server CPU", "CPU/req", "errors"],
            [
                [
                    name,
                    f"{r.rps:,.0f}",
                    f"{r.p50_ms:.2f} ms",
                    f"{r.p99_ms:.2f} ms",
                    f"{r.requests:,}",
                    f"{r.cpu:.0%}",
                    f"{r.cpu / r.rps * 1e6:.0f} µs",
                    r.bad or "none",
                ]
                for name, r in rows
            ],
        )
    )
    print(f"agents registered when the GETs ran: {agents:,} (2 capabilities each, 100 in all)")
    pairs = zip(runs["caxton"], runs["bare falcon"], strict=True)
    print(
        f"GET /health/gossip caxton/bare, best run of each: requests/s "
        f"{gossip.rps / bare_gossip.rps:.2f}, p99 {gossip.p99_ms / bare_gossip.p99_ms:.2f}; "
        f"per round (requests/s): {', '.join(f'{c.rps / b.rps:.2f}' for c, b in pairs)}; "
        f"server CPU per request (best runs) caxton/bare: "
        f"{cpu_per_req(gossip) / cpu_per_req(bare_gossip):.2f}"
    )
    print(f"load average after: {Path('/proc/loadavg').read_text().strip()}")
    print(
        "server CPU: the server process's CPU time per wall second (100% = one core); "
        "CPU/req: that CPU time per request served, which machine noise distorts less"
    )
    if problems:
        print(f"node log: {len(problems)} ERROR/traceback lines, first: {problems[0]}")


if __name__ == "__main__":
    main()
