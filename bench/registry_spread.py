"""Registration to visible at every node, on real processes, beside Serf's user events.

For each N, in one run: N ``caxton-actors run`` nodes, then N ``serf agent -profile=lan``
agents, on loopback. A steady load (``--rate`` per second, at random nodes, for
``--seconds``) of

- caxton: ``PUT /agents/{id}``; the write's version is the owner's head right after it.
  A poller per node reads ``GET /registry/digest`` every 20 ms on a kept-open connection;
  the agent is visible at a node once that node's head for the owner reaches the version;
- Serf: ``serf event`` (RPC ``event``, not coalesced); a ``stream`` of user events per
  agent, kept open, stamps each arrival.

The latency of one registration or event is from its acknowledgement until the last other
node has it; one that some node never got within 15 s is counted apart. Polling every
20 ms adds up to 20 ms to caxton's figures; Serf's are pushed.

With ``--encrypt`` every node of a cluster gets one fresh key (caxton ``--gossip-keys``,
Serf ``-encrypt``: AES-256-GCM both); ``--encrypt both`` runs each cluster in plaintext and
encrypted back to back, the order alternating, so the two compare within one run.

Run: python -m bench.registry_spread [--sizes 5,10,20] [--rate 10] [--seconds 30]
     [--systems caxton,serf] [--encrypt [yes|both]]
"""

from __future__ import annotations

import argparse
import http.client
import random
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from bench.common import request_json, start_cluster, table
from bench.peers.caxton_driver import HTTP_OFFSET, CaxtonDriver
from bench.peers.measure import find_base_port
from bench.peers.serf_driver import RPC_OFFSET, SerfDriver, SerfRPC
from caxton_actors.wire.keyring import generate_key

HEADERS = ["N", "system", "events", "never everywhere", "p50", "p99", "max"]
Run = Callable[[Path, int, float, float, "str | None"], tuple[list[float], int]]
POLL = 0.02
SETTLE = 15.0  # seconds after the last registration for stragglers


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _steady(rate: float, seconds: float, act: Callable[[int], None]) -> None:
    """Call ``act(k)`` for k = 0, 1, ... at Poisson times, ``rate`` a second."""
    rng = random.Random(7)
    start = time.monotonic()
    next_at, k = start, 0
    while next_at < start + seconds:
        time.sleep(max(0.0, next_at - time.monotonic()))
        act(k)
        k += 1
        next_at += rng.expovariate(rate)


def caxton(
    workdir: Path, n: int, rate: float, seconds: float, key: str | None = None
) -> tuple[list[float], int]:
    base = find_base_port(n, offsets=(0, RPC_OFFSET, HTTP_OFFSET))
    driver = CaxtonDriver(workdir, base, key)
    try:
        start_cluster(driver, n)
        names = [driver.node_name(i) for i in range(n)]
        seen: list[dict[str, list[tuple[int, float]]]] = [{m: [] for m in names} for _ in names]
        stop = threading.Event()

        def poll(i: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", driver.http_port(i), timeout=5)
            while not stop.is_set():
                heads = request_json(conn, "GET", "/registry/digest")["heads"]  # type: ignore[index]
                stamp = time.monotonic()
                for owner, version in heads.items():
                    history = seen[i][owner]
                    if not history or version > history[-1][0]:
                        history.append((version, stamp))
                time.sleep(POLL)

        pollers = [threading.Thread(target=poll, args=(i,), daemon=True) for i in range(n)]
        for thread in pollers:
            thread.start()
        writers = {
            i: http.client.HTTPConnection("127.0.0.1", driver.http_port(i), timeout=5)
            for i in range(n)
        }
        rng = random.Random(11)
        acked: list[tuple[int, int, float]] = []

        def register(k: int) -> None:
            i = rng.randrange(n)
            request_json(writers[i], "PUT", f"/agents/spread-{k}", {"capabilities": ["bench"]})
            stamp = time.monotonic()
            heads = request_json(writers[i], "GET", "/registry/digest")["heads"]  # type: ignore[index]
            acked.append((i, heads[names[i]], stamp))

        _steady(rate, seconds, register)
        time.sleep(SETTLE)
        stop.set()
        for thread in pollers:
            thread.join()
        latencies, lost = [], 0
        for owner, version, stamp in acked:
            arrivals = [
                min((t for v, t in seen[j][names[owner]] if v >= version), default=None)
                for j in range(n)
                if j != owner
            ]
            if None in arrivals:
                lost += 1
            else:
                latencies.append(max(t for t in arrivals if t is not None) - stamp)
        return latencies, lost
    finally:
        driver.close()


def serf(
    workdir: Path, n: int, rate: float, seconds: float, key: str | None = None
) -> tuple[list[float], int]:
    base = find_base_port(n, offsets=(0, RPC_OFFSET))
    driver = SerfDriver(workdir, base, key)
    try:
        start_cluster(driver, n)
        arrivals: list[dict[int, float]] = [{} for _ in range(n)]
        streams = [SerfRPC(driver.rpc_port(i), timeout=None) for i in range(n)]
        for rpc in streams:  # subscribed before the first event
            rpc.request("stream", {"Type": "user"}, reply_body=False)

        def follow(i: int) -> None:
            rpc = streams[i]
            while True:
                try:
                    rpc.read_header()
                    event = rpc.read_body()
                except (OSError, ConnectionError):
                    return
                arrivals[i][int(event["Payload"])] = time.monotonic()

        for i in range(n):
            threading.Thread(target=follow, args=(i,), daemon=True).start()
        senders = [SerfRPC(driver.rpc_port(i)) for i in range(n)]
        rng = random.Random(11)
        sent: list[tuple[int, int, float]] = []

        def fire(k: int) -> None:
            i = rng.randrange(n)
            body = {"Name": "spread", "Payload": str(k).encode(), "Coalesce": False}
            senders[i].request("event", body, reply_body=False)
            sent.append((i, k, time.monotonic()))

        _steady(rate, seconds, fire)
        time.sleep(SETTLE)
        for rpc in streams + senders:
            rpc.close()
        latencies, lost = [], 0
        for origin, k, stamp in sent:
            if any(k not in arrivals[j] for j in range(n) if j != origin):
                lost += 1  # Serf's user events are best effort: no repair
            else:
                latencies.append(max(arrivals[j][k] for j in range(n) if j != origin) - stamp)
        return latencies, lost
    finally:
        driver.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="5,10,20")
    parser.add_argument("--rate", type=float, default=10.0, help="registrations per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--systems", default="caxton,serf", help="caxton, serf or both")
    parser.add_argument(
        "--encrypt",
        nargs="?",
        const="yes",
        default="no",
        choices=["no", "yes", "both"],
        help="one fresh key for every node of a cluster; both: plaintext and encrypted",
    )
    args = parser.parse_args(argv)

    def on_term(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)  # so each driver's ``finally: close()`` kills its nodes

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    print(f"reproduce: {sys.executable} -m bench.registry_spread {' '.join(argv or sys.argv[1:])}")
    runs: dict[str, Run] = {"caxton": caxton, "serf": serf}
    systems = [name.strip() for name in args.systems.split(",") if name.strip()]
    if unknown := set(systems) - set(runs):
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    modes = {"no": [False], "yes": [True], "both": [False, True]}[args.encrypt]
    headers = HEADERS if args.encrypt == "no" else [*HEADERS[:2], "gossip", *HEADERS[2:]]
    rows = []
    top = Path(tempfile.mkdtemp(prefix="registry-spread-"))
    for turn, n in enumerate(int(s) for s in args.sizes.split(",")):
        for system in systems:  # plaintext first at the 1st, 3rd, ... N; encrypted at the others
            for encrypted in modes if turn % 2 == 0 else modes[::-1]:
                key = generate_key() if encrypted else None
                mode = "encrypted" if encrypted else "plaintext"
                workdir = top / f"{system}-{n}-{mode}"
                latencies, lost = runs[system](workdir, n, args.rate, args.seconds, key)
                row = [
                    str(n),
                    system,
                    str(len(latencies) + lost),
                    str(lost),
                    f"{statistics_ms(latencies, 0.5)}",
                    f"{statistics_ms(latencies, 0.99)}",
                    f"{max(latencies) * 1000:.0f} ms",
                ]
                if args.encrypt != "no":
                    row.insert(2, mode)
                rows.append(row)
                print(table(headers, rows[-1:]), flush=True)
    print(f"\n{args.rate:g} a second for {args.seconds:g} s, acknowledged to the last node:")
    print(table(headers, rows))


def statistics_ms(values: list[float], q: float) -> str:
    return f"{_percentile(values, q) * 1000:.0f} ms"


if __name__ == "__main__":
    main()
