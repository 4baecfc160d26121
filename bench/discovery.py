"""Discovery with A2A AgentCards (issue 15): lookups by skill, watch events, bytes at rest.

(1) Lookup by skill among carded agents (1.7 KiB cards, three skills each: a skill on 1 %,
    one on 10 % and one on 0.1 % of agents), a page of 100: (a) in-process on a
    ``Replica``, (b) over HTTP on a real node the agents were registered on (16 kept-open
    connections in parallel); lookup by capability on the same set is the peer.
(2) Registration to watch event: N nodes on loopback (``lan``), one ``GET /agents/watch``
    per node; a ``PUT`` of an agent with a 16 KiB card on one node, timed from the PUT sent
    to each node's ``added`` event.
(3) Gossip bytes per node at rest: the same cluster with no agents, then with carded agents
    registered across it, their digests equal and the heads' rotation over (tcpdump on
    ``lo``, as ``bench/peers`` counts UDP).

    python -m bench.discovery            # about 10 minutes; needs tcpdump and root for (3)
    python -m bench.discovery --quick    # about 80 s: 10,000 agents for (1), 5 nodes
    python -m bench.discovery --parts 2  # only (2); parts 1, 2, 3
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import percentile, request_json, start_cluster, table, us
from bench.peers.caxton_driver import HTTP_OFFSET, CaxtonDriver
from bench.peers.measure import UdpCapture, find_base_port, rss_mb
from bench.registry import timed
from caxton_actors.engine.membership import MIN_ROTATION_PROBES, ROTATING_HEADS, ROTATION_CYCLES
from caxton_actors.registry import cards
from caxton_actors.registry.query import Query
from caxton_actors.registry.replica import Limits, Replica
from caxton_actors.swim.timing import LAN

RARE, COMMON, NICHE = 100, 10, 1000  # skill pools: each skill on 1 %, 10 %, 0.1 % of agents
PAGE = 100
CLIENTS = 16  # kept-open connections registering in parallel
PROBE_SKILL = "watch-probe"
BIG_CARD = 16 * 1024 - 256  # bytes: the largest card a node takes, less a margin
WATCH_INTERVAL = 0.25  # seconds between two PUTs of (2)
STRAGGLERS = 15.0  # seconds (2) waits after the last PUT
WARM_UP = 50  # untimed lookups before the timed ones
AGREE_TIMEOUT = 300.0  # seconds (3) waits for every node's digest to agree
VOCABULARY = (
    "route plan book trip flight hotel invoice payment refund order ship track parcel "
    "translate summarize document search index query report chart forecast sales stock "
    "price quote contract review legal claim policy insurance patient record schedule "
    "meeting calendar email draft reply ticket support triage incident alert monitor "
    "deploy build test code review merge audit compliance risk score fraud detect image "
    "caption speech transcribe recipe menu grocery weather travel visa expense budget"
)
WORDS = VOCABULARY.split()


# ---------------------------------------------------------------------------------------------
# Cards


def _skill(skill_id: str, rng: random.Random) -> dict[str, Any]:
    return {
        "id": skill_id,
        "name": skill_id.replace("-", " ").capitalize(),
        "description": " ".join(rng.choices(WORDS, k=14)).capitalize() + ".",
        "tags": [f"tag-{rng.randrange(50)}", f"area-{rng.randrange(500)}"],
        "examples": [f"Please {' '.join(rng.choices(WORDS, k=9))}."],
        "inputModes": ["text/plain", "application/json"],
        "outputModes": ["application/json"],
    }


def card(i: int, skill_ids: Sequence[str]) -> dict[str, Any]:
    """A realistic A2A 1.0 AgentCard for agent ``i``: words drawn from ``WORDS`` by seed."""
    rng = random.Random(i)
    return {
        "name": f"{rng.choice(WORDS).capitalize()} agent {i}",
        "description": " ".join(rng.choices(WORDS, k=30)).capitalize() + ".",
        "version": "1.2.0",
        "supportedInterfaces": [
            {
                "url": f"https://agents.example.com/{i}/a2a",
                "protocolBinding": "JSONRPC",
                "protocolVersion": "1.0",
            }
        ],
        "provider": {"organization": "Example Corp", "url": "https://example.com"},
        "documentationUrl": f"https://docs.example.com/agents/{i}",
        "capabilities": {"streaming": True, "pushNotifications": False},
        "defaultInputModes": ["text/plain", "application/json"],
        "defaultOutputModes": ["text/plain", "application/json"],
        "skills": [_skill(skill_id, rng) for skill_id in skill_ids],
    }


def fleet_card(i: int) -> str:
    """Agent ``i``'s card as compact JSON: one skill of each pool."""
    ids = (f"skill-{i % RARE:02d}", f"family-{i % COMMON}", f"task-{i % NICHE:03d}")
    return compact(card(i, ids))


def big_card(i: int) -> str:
    """Agent ``i``'s card with skills added up to ``BIG_CARD`` bytes; the first is the probe's."""
    ids = [PROBE_SKILL]
    while True:
        text = compact(card(i, [*ids, f"bulk-{len(ids)}"]))
        if len(text.encode()) > BIG_CARD:
            return compact(card(i, ids))
        ids.append(f"bulk-{len(ids)}")


def compact(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def agent_id(i: int) -> str:
    return f"agent-{i:07d}"


# ---------------------------------------------------------------------------------------------
# (1) Lookups by skill


@dataclass(frozen=True)
class Lookup:
    label: str
    kind: str
    """The query parameter: ``skill`` or ``capability``."""
    prefix: str
    pool: int
    """How many such terms: each is on 1 / pool of the agents (``fleet_card``)."""

    def term(self, rng: random.Random) -> str:
        return f"{self.prefix}-{rng.randrange(self.pool):0{len(str(self.pool - 1))}d}"

    @property
    def matches(self) -> str:
        return f"{100 / self.pool:g} %"


LOOKUPS = (
    Lookup("skill", "skill", "skill", RARE),
    Lookup("capability (peer)", "capability", "skill", RARE),
    Lookup("skill", "skill", "family", COMMON),
    Lookup("skill", "skill", "task", NICHE),
)


def in_process(texts: Sequence[str], lookups: int) -> tuple[dict[Lookup, list[int]], str]:
    """Each lookup's times (ns) on a Replica holding ``texts``, and how it was filled."""
    replica = Replica("bench", 60.0, Limits(max_agents_per_node=10**9))
    before = rss_mb(os.getpid()) or 0.0
    started = time.perf_counter()
    for i, text in enumerate(texts):
        capabilities = cards.terms(text).capabilities()
        replica.register(agent_id(i), capabilities, time.monotonic(), time.time(), card=text)
    seconds = time.perf_counter() - started
    grown = (rss_mb(os.getpid()) or 0.0) - before
    rng = random.Random(3)
    times: dict[Lookup, list[int]] = {}
    for lookup in LOOKUPS:
        samples = times[lookup] = []
        for _ in range(lookups):
            term = lookup.term(rng)
            query = Query(skill=term) if lookup.kind == "skill" else Query(capability=term)
            timed(samples, replica.page, query, None, PAGE, False)
    note = (
        f"filled in {seconds:.1f} s ({len(texts) / seconds:,.0f} agents/s, card terms parsed "
        f"per agent); the replica grew the process by {grown:,.0f} MB "
        f"({grown * 1024 * 1024 / len(texts):,.0f} B/agent, the card text itself not counted)"
    )
    return times, note


def register(
    ports: Sequence[int], bodies: Sequence[tuple[str, bytes]], clients: int = CLIENTS
) -> tuple[float, list[int], list[str]]:
    """``PUT /agents/{id}`` of every (id, body) from ``clients`` threads, client ``c`` on
    ``ports[c % len(ports)]`` over one kept-open connection: the seconds it took, each
    PUT's time (ns) and the refusals."""
    todo: Iterator[tuple[str, bytes]] = iter(bodies)  # next() is atomic under the GIL
    lock = threading.Lock()
    latencies: list[int] = []
    refused: list[str] = []

    def client(port: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/json"}
        mine: list[int] = []
        for agent, body in todo:
            asked = time.perf_counter_ns()
            conn.request("PUT", f"/agents/{agent}", body, headers)
            reply = conn.getresponse()
            answer = reply.read()
            mine.append(time.perf_counter_ns() - asked)
            if reply.status not in (200, 201):
                with lock:
                    refused.append(f"{agent}: {reply.status} {answer[:200]!r}")
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [
        threading.Thread(target=client, args=(ports[c % len(ports)],)) for c in range(clients)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies, refused


def bodies(texts: Sequence[str]) -> list[tuple[str, bytes]]:
    return [(agent_id(i), f'{{"card":{text}}}'.encode()) for i, text in enumerate(texts)]


def over_http(
    workdir: Path, texts: Sequence[str], lookups: int
) -> tuple[dict[Lookup, list[int]], str]:
    """Each lookup's times (ns) over HTTP on one node holding ``texts``, and what it took."""
    os.environ["CAXTON_REGISTRY_MAX_AGENTS"] = str(len(texts))  # the node inherits it
    driver = CaxtonDriver(workdir / "lookup", find_base_port(1, offsets=(0, HTTP_OFFSET)))
    try:
        start_cluster(driver, 1)
        pid, port = driver.pids(0)[0], driver.http_port(0)
        empty = rss_mb(pid) or 0.0
        seconds, latencies, refused = register([port], bodies(texts))
        if refused:
            raise SystemExit(f"{len(refused)} registrations refused, first: {refused[0]}")
        full = rss_mb(pid) or 0.0
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for i in range(WARM_UP):  # untimed: the first requests' one-off costs
            request_json(conn, "GET", f"/agents?skill=skill-{i % RARE:02d}&limit={PAGE}")
        rng = random.Random(3)
        times: dict[Lookup, list[int]] = {}
        for lookup in LOOKUPS:
            samples = times[lookup] = []
            for _ in range(lookups):
                path = f"/agents?{lookup.kind}={lookup.term(rng)}&limit={PAGE}"
                timed(samples, request_json, conn, "GET", path)
        after = rss_mb(pid) or 0.0
    finally:
        driver.close()
    note = (
        f"registered over HTTP in {seconds:.1f} s ({len(texts) / seconds:,.0f} agents/s, "
        f"{CLIENTS} connections; PUT p50 {us(percentile(latencies, 50))}, "
        f"p99 {us(percentile(latencies, 99))}); node RSS {empty:.0f} MB empty, "
        f"{full:.0f} MB with the agents ({(full - empty) * 1024 / len(texts):.1f} KiB/agent), "
        f"{after:.0f} MB after the lookups"
    )
    return times, note


def lookup_table(
    agents: int, local: dict[Lookup, list[int]], remote: dict[Lookup, list[int]]
) -> str:
    rows = []
    for lookup in LOOKUPS:
        a, b = local[lookup], remote[lookup]
        rows.append(
            [
                f"{agents:,}",
                lookup.label,
                lookup.matches,
                us(percentile(a, 50)),
                us(percentile(a, 99)),
                us(percentile(b, 50)),
                us(percentile(b, 99)),
                f"{percentile(b, 50) / percentile(a, 50):.1f}x",
            ]
        )
    headers = ["agents", "lookup, 100 a page", "matches", "Replica p50", "p99",
               "HTTP p50", "p99", "HTTP ÷ Replica p50"]  # fmt: skip
    return table(headers, rows)


# ---------------------------------------------------------------------------------------------
# (2) Registration to watch event


class Watcher(threading.Thread):
    """``GET /agents/watch?skill=PROBE_SKILL`` on one node (HTTP/1.0: no chunking, so each
    line is a line): when each agent's ``added`` event arrived (``perf_counter``)."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=None)
        request = f"GET /agents/watch?skill={PROBE_SKILL} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
        self.sock.sendall(request.encode())
        self.arrivals: dict[str, float] = {}
        self.ready = threading.Event()

    def run(self) -> None:
        event = ""
        with self.sock.makefile("rb") as stream:
            for line in stream:
                stamp = time.perf_counter()
                if line.startswith(b"event: "):
                    event = line[7:].strip().decode()
                    if event == "snapshot":
                        self.ready.set()
                elif line.startswith(b"data: ") and event == "added":
                    self.arrivals.setdefault(json.loads(line[6:])["id"], stamp)

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@dataclass(frozen=True)
class Sent:
    agent: str
    writer: int
    watcher: int
    at: float


def watch_events(workdir: Path, n: int, samples: int) -> tuple[list[list[object]], str]:
    driver = CaxtonDriver(workdir / "watch", find_base_port(n, offsets=(0, HTTP_OFFSET)))
    try:
        start_cluster(driver, n)
        # Untimed: a node's first card loads the A2A SDK (cards.validate), a one-off cost.
        for i in range(n):
            warm = [(f"warm-{i}", f'{{"card":{fleet_card(i)}}}'.encode())]
            register([driver.http_port(i)], warm, clients=1)
        watchers = [Watcher(driver.http_port(i)) for i in range(n)]
        for watcher in watchers:
            watcher.start()
        for watcher in watchers:
            if not watcher.ready.wait(10):
                raise SystemExit("a watch sent no snapshot within 10 s")
        sent, size = put_probes(driver, n, samples)
        deadline = time.monotonic() + STRAGGLERS
        while time.monotonic() < deadline and not all(
            s.agent in w.arrivals for s in sent for w in watchers
        ):
            time.sleep(0.2)
        for watcher in watchers:
            watcher.close()
    finally:
        driver.close()
    return watch_rows(n, sent, watchers), f"card {size:,} B as compact JSON"


def put_probes(driver: CaxtonDriver, n: int, samples: int) -> tuple[list[Sent], int]:
    """``samples`` PUTs of big-carded agents, one every ``WATCH_INTERVAL``, the writer
    turning over the nodes and each sample's watcher over the writer's others."""
    conns = [http.client.HTTPConnection("127.0.0.1", driver.http_port(i)) for i in range(n)]
    headers = {"Content-Type": "application/json"}
    sent: list[Sent] = []
    size = 0
    for k in range(samples):
        writer = k % n
        watcher = (writer + 1 + (k // n) % (n - 1)) % n
        text = big_card(k)
        size = len(text.encode())
        body = f'{{"card":{text}}}'.encode()
        agent = f"probe-{k:04d}"
        at = time.perf_counter()
        conns[writer].request("PUT", f"/agents/{agent}", body, headers)
        reply = conns[writer].getresponse()
        answer = reply.read()
        if reply.status != 201:
            raise SystemExit(f"PUT {agent}: {reply.status} {answer[:300]!r}")
        sent.append(Sent(agent, writer, watcher, at))
        time.sleep(max(0.0, at + WATCH_INTERVAL - time.perf_counter()))
    for conn in conns:
        conn.close()
    return sent, size


def watch_rows(n: int, sent: Sequence[Sent], watchers: Sequence[Watcher]) -> list[list[object]]:
    def latency(s: Sent, i: int) -> float | None:
        got = watchers[i].arrivals.get(s.agent)
        return None if got is None else (got - s.at) * 1000

    kinds: dict[str, list[float | None]] = {
        "the writer itself": [latency(s, s.writer) for s in sent],
        "node k ≠ writer (one a PUT, k turning)": [latency(s, s.watcher) for s in sent],
        f"last of the {n - 1} others": [
            None if None in (got := [latency(s, i) for i in range(n) if i != s.writer])
            else max(t for t in got if t is not None)
            for s in sent
        ],
    }  # fmt: skip
    rows: list[list[object]] = []
    for where, values in kinds.items():
        ms = [v for v in values if v is not None]
        rows.append(
            [n, where, len(values), f"{percentile(ms, 50):.0f} ms",
             f"{percentile(ms, 99):.0f} ms", f"{max(ms):.0f} ms", len(values) - len(ms)]
        )  # fmt: skip
    return rows


# ---------------------------------------------------------------------------------------------
# (3) Bytes at rest


def rotation_seconds(n: int) -> float:
    """How long heads ride in rotation after the last news (``engine/membership.Heads``)."""
    probes = max(MIN_ROTATION_PROBES, ROTATION_CYCLES * math.ceil(n / ROTATING_HEADS))
    return probes * LAN.probe_interval


def digests(driver: CaxtonDriver, n: int) -> list[tuple[int, str]]:
    found = []
    for i in range(n):
        conn = http.client.HTTPConnection("127.0.0.1", driver.http_port(i), timeout=10)
        answer: Any = request_json(conn, "GET", "/registry/digest")
        conn.close()
        found.append((answer["agents"], answer["digest"]))
    return found


def quiet_bytes(driver: CaxtonDriver, n: int, seconds: float) -> tuple[list[float], list[float]]:
    """Once the heads' rotation is over: UDP bytes (IP) and datagrams a second, per node."""
    time.sleep(rotation_seconds(n) + 5)
    before = digests(driver, n)
    capture = UdpCapture([driver.gossip_port(i) for i in range(n)], driver.workdir / "rest.pcap")
    capture.start()
    try:
        time.sleep(seconds)
    finally:
        count = capture.stop()
    if digests(driver, n) != before:
        print("warning: a registry digest changed during the window: not at rest")
    ports = [driver.gossip_port(i) for i in range(n)]
    return (
        [count.ip_bytes.get(p, 0) / count.seconds for p in ports],
        [count.packets.get(p, 0) / count.seconds for p in ports],
    )


def at_rest(
    workdir: Path, n: int, texts: Sequence[str], seconds: float
) -> tuple[list[list[object]], str]:
    driver = CaxtonDriver(workdir / "rest", find_base_port(n, offsets=(0, HTTP_OFFSET)))
    try:
        start_cluster(driver, n)
        empty = quiet_bytes(driver, n, seconds)
        ports = [driver.http_port(i) for i in range(n)]
        took, _, refused = register(ports, bodies(texts), clients=max(CLIENTS, n))
        if refused:
            raise SystemExit(f"{len(refused)} registrations refused, first: {refused[0]}")
        started = time.perf_counter()
        while len(set(found := digests(driver, n))) > 1 or found[0][0] != len(texts):
            if time.perf_counter() - started > AGREE_TIMEOUT:
                raise SystemExit(f"digests did not agree within {AGREE_TIMEOUT:g} s: {found}")
            time.sleep(0.5)
        agreed = time.perf_counter() - started
        full = quiet_bytes(driver, n, seconds)
        rss = [rss_mb(driver.pids(i)[0]) or 0.0 for i in range(n)]
    finally:
        driver.close()
    rows: list[list[object]] = []
    for agents, (sent, packets) in ((0, empty), (len(texts), full)):
        rows.append(
            [n, f"{agents:,}", f"{statistics.median(sent):.0f}", f"{min(sent):.0f}",
             f"{max(sent):.0f}", f"{statistics.median(packets):.2f}",
             f"{statistics.median(sent) / statistics.median(empty[0]):.2f}"]
        )  # fmt: skip
    note = (
        f"{len(texts):,} agents registered across the {n} nodes in {took:.1f} s; every digest "
        f"equal {agreed:.1f} s later; node RSS with them: median {statistics.median(rss):.0f} MB"
        f"; windows of {seconds:g} s, each {rotation_seconds(n) + 5:g} s after the last news"
    )
    return rows, note


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    agents: int
    lookups: int
    watch_nodes: int
    samples: int
    rest_nodes: int
    rest_agents: int
    seconds: float


FULL = Sizes(100_000, 2_000, 20, 200, 20, 10_000, 30.0)
QUICK = Sizes(10_000, 300, 5, 40, 5, 2_000, 10.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smoke check, about 80 s")
    parser.add_argument("--parts", default="1,2,3", help="which figures: 1, 2, 3")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    parts = set(args.parts.split(","))
    root = Path(__file__).resolve().parents[1]
    print(f"reproduce: cd {root} && {sys.executable} -m bench.discovery {' '.join(sys.argv[1:])}")
    print(f"python {platform.python_version()}, {os.cpu_count()} cpus, load {os.getloadavg()}")
    for text in (fleet_card(0), big_card(0)):
        cards.validate(json.loads(text))  # the node would refuse a card the SDK does not take
    with tempfile.TemporaryDirectory(prefix="caxton-discovery-") as tmp:
        workdir = Path(tmp)
        if "1" in parts:
            texts = [fleet_card(i) for i in range(sizes.agents)]
            mean = sum(len(t.encode()) for t in texts) / len(texts)
            local, filled = in_process(texts, sizes.lookups)
            remote, registered = over_http(workdir, texts, sizes.lookups)
            print(f"\n## (1) lookups by skill, {sizes.lookups} of each, cards {mean:,.0f} B mean")
            print(lookup_table(sizes.agents, local, remote))
            print(f"Replica: {filled}\nHTTP: {registered}")
        if "2" in parts:
            rows, note = watch_events(workdir, sizes.watch_nodes, sizes.samples)
            print(f"\n## (2) PUT sent to `added` event, one PUT every {WATCH_INTERVAL:g} s; {note}")
            headers = ["N", "watch on", "PUTs", "p50", "p99", "max", "never seen"]
            print(table(headers, rows))
        if "3" in parts:
            texts = [fleet_card(i) for i in range(sizes.rest_agents)]
            rows, note = at_rest(workdir, sizes.rest_nodes, texts, sizes.seconds)
            print("\n## (3) UDP bytes sent per node at rest (IP bytes, tcpdump on lo)")
            headers = ["N", "agents", "B/s/node median", "min", "max", "pkt/s/node",
                       "÷ 0 agents"]  # fmt: skip
            print(table(headers, rows))
            print(note)


if __name__ == "__main__":
    main()
