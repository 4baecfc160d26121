"""A five-node cluster through the real metrics pipeline, drawn as the dashboard draws it.

nodes (``--statsd-prefix <node>``) -> npm ``statsd`` (1 s flushes) -> Graphite's
``carbon-cache`` -> ``graphite-web``'s render API -> ``docs/dashboard/*.png``, one PNG per
panel of ``bench/panels.py`` that names a file, each target the Grafana dashboard's own
with ``$node`` as ``*``. Vertical lines mark the scenario's events, sent to carbon as
``scenario.*`` points.

The scenario, on loopback, gossip in plaintext (loopback needs no keys), HTTP without
tokens: five nodes join through n0; a steady load of reads, state tool calls and
short-lived correlations runs throughout; then registrations, garbage datagrams at one
node's gossip port, ``kill -9`` of n3, n2 starved of CPU, SIGTERM of n4 (a graceful
leave), n3 restarted on its file, more registrations, and the left node's agents
forgotten 60 s after it left. docs/dashboard.md shows and explains the pictures.

Needs Debian's graphite-carbon and graphite-web, node, and statsd in
deploy/graphite/node_modules (deploy/graphite/install.sh installs all three).

Run: python -m bench.dashboard [--out docs/dashboard] [--keep DIR]   (about 3.5 minutes)
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import table
from bench.graphite import ROOT, Graphite, Missing, free_port, wait_until
from bench.panels import NODE, PANELS, Panel

NODES = ("n0", "n1", "n2", "n3", "n4")
KILLED, LEAVING, STARVED = "n3", "n4", "n2"
STARVE_SECONDS, STARVE_CYCLE = 16.0, (1.6, 0.4)
"""The starved node is stopped 1.6 s, then runs 0.4 s, for 16 s: a ping that reaches it
stopped waits past the protocol period (1 s), so its peers suspect it, and it must refute.
Running every 2 s, it refutes within the suspicion timeout (4 s at least): never dead."""
END = 180.0
"""The run ends here: n4's agents are forgotten 60 s after it left (+70 s), and n3, back
at +90 s, has had as long to forget them too."""
OUT = ROOT / "docs" / "dashboard"
NODE_CONFIG = """caxton_config:
  state_tools:
    files:
      type: filesystem
      config:
        root: "{root}"
    broken:   # its root is a file: every call fails, for the errors panel
      type: filesystem
      config:
        root: "{broken}"
"""


@dataclass
class Node:
    name: str
    http_port: int = field(default_factory=free_port)
    gossip_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Cluster:
    """Real ``caxton-actors run`` processes; every one is stopped by :meth:`stop_all`."""

    def __init__(self, workdir: Path, statsd: str) -> None:
        self.workdir = workdir
        self.statsd = statsd
        self.nodes = {name: Node(name) for name in NODES}
        self.config = workdir / "node.yaml"
        broken = workdir / "broken-state-root"
        broken.write_text("a file where a directory should be\n")
        root = workdir / "state"
        self.config.write_text(NODE_CONFIG.format(root=root, broken=broken))

    def start(self, name: str) -> None:
        node = self.nodes[name]
        seed = self.nodes[NODES[0]].gossip_port
        argv = [
            sys.executable, "-m", "caxton_actors", "run", "--config", str(self.config),
            "--node-name", name, "--sqlite-path", str(self.workdir / f"{name}.db"),
            "--http-bind", f"127.0.0.1:{node.http_port}",
            "--gossip-enabled", "true", "--gossip-bind", f"127.0.0.1:{node.gossip_port}",
            "--statsd", self.statsd, "--statsd-prefix", name,
        ]  # fmt: skip
        if name != NODES[0]:
            argv += ["--gossip-seeds", f"127.0.0.1:{seed}"]
        with (self.workdir / f"{name}.log").open("ab") as log:
            node.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        wait_until(lambda: self._answers(name), 30, f"{name} is up")

    def _answers(self, name: str) -> bool:
        proc = self.nodes[name].proc
        if proc is not None and proc.poll() is not None:
            tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")
        return self.request(name, "GET", "/health") == 200

    def running(self) -> list[str]:
        return [name for name, node in self.nodes.items() if node.running()]

    def request(
        self, name: str, method: str, path: str, body: object = None, host: str = ""
    ) -> int:
        """The status, or 0 when the node did not answer."""
        node = self.nodes[name]
        conn = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=2)
        headers = {"Content-Type": "application/json"} if method in ("PUT", "POST") else {}
        if host:
            headers["Host"] = host
        try:
            payload = None if body is None else json.dumps(body).encode()
            conn.request(method, path, body=payload, headers=headers)
            reply = conn.getresponse()
            reply.read()
            return reply.status
        except (OSError, http.client.HTTPException):
            return 0
        finally:
            conn.close()

    def peers_alive(self, name: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.nodes[name].http_port, timeout=5)
        try:
            conn.request("GET", "/members")
            members = json.loads(conn.getresponse().read())["members"]
        except (OSError, http.client.HTTPException, ValueError, KeyError):
            return -1
        finally:
            conn.close()
        return sum(1 for m in members if m["state"] == "alive") - 1

    def signal(self, name: str, signum: int) -> None:
        proc = self.nodes[name].proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signum)
            proc.wait(timeout=20)

    def stop_all(self) -> None:
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                node.proc.kill()
                node.proc.wait(timeout=10)


READS = (
    "/health/gossip",
    "/agents?capability=cap-{n}&limit=20",
    "/health/gossip",
    "/registry/digest",
    "/health/gossip",
    "/agents?capability=cap-{n}&limit=20",
    "/health/gossip",
    "/members",
    "/health/gossip",
    "/agents/agent-n0-100{n}/route",
)
"""Each node's client reads every 0.5 s in this order: per node, 1 read a second of
/health/gossip, 0.4 of /agents?capability=, 0.2 of each other route."""


class Load:
    """Background traffic until stopped. A client per node, so that one stalled node holds
    up only its own: the reads above. And one more, at the running nodes in turn: a state
    write and read each second, a correlation that expires every 5 s, and every 10 s a
    refused request (an unknown Host name), a bad state key, and two calls to the broken
    state tool, 5 s apart from the bad key."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.stopped = threading.Event()
        self.agents: list[tuple[str, str]] = []  # (node, agent id) with the files tool
        self.threads = [
            threading.Thread(target=self._reads, args=(name,), name=f"load-{name}", daemon=True)
            for name in NODES
        ]
        self.threads.append(threading.Thread(target=self._writes, name="load", daemon=True))

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(timeout=5)

    def _reads(self, name: str) -> None:
        tick = 0
        while not self.stopped.wait(0.5):
            tick += 1
            if self.cluster.nodes[name].running():
                self.cluster.request(name, "GET", READS[tick % len(READS)].format(n=tick % 10))

    def _writes(self) -> None:
        tick = 0
        while not self.stopped.wait(0.1):
            tick += 1
            running = self.cluster.running()
            if not running:
                continue
            node = running[tick % len(running)]
            if tick % 10 == 0:
                self._state(tick)
            if tick % 50 == 0:
                self.cluster.request(node, "POST", "/correlations", {"sender_id": "load", "ttl": 1})
            if tick % 100 == 0:
                self._refused(node)
            if tick % 100 == 50 and self.cluster.nodes[NODES[0]].running():
                for _ in range(2):
                    self.cluster.request(NODES[0], "PUT", "/agents/broken-0/state/k", {"x": 1})

    def _live(self) -> list[tuple[str, str]]:
        return [(n, a) for n, a in list(self.agents) if self.cluster.nodes[n].running()]

    def _state(self, tick: int) -> None:
        live = self._live()
        if live:
            node, agent = live[tick % len(live)]
            key = f"/agents/{agent}/state/checkpoints/{agent}/latest"
            self.cluster.request(node, "PUT", key, {"step": tick})
            self.cluster.request(node, "GET", key)

    def _refused(self, node: str) -> None:
        self.cluster.request(node, "GET", "/health/gossip", host="attacker.example")
        live = self._live()
        if live:
            owner, agent = live[0]
            self.cluster.request(owner, "PUT", f"/agents/{agent}/state/.hidden", {"x": 1})


class Timeline:
    """The scenario's events, each one point at carbon (``scenario.<slug>``) that the
    PNGs draw as a dashed vertical line; offsets count from the moment all nodes are up."""

    def __init__(self, graphite: Graphite) -> None:
        self.graphite = graphite
        self.begun = time.time()  # the graphs start here, as the first node starts
        self.started = self.begun
        self.events: list[tuple[float, str, str]] = []  # (when, slug, label)

    def start(self, label: str) -> None:
        self.started = time.time()
        self.mark("up", label)

    def mark(self, slug: str, label: str) -> None:
        now = time.time()
        self.events.append((now, slug, label))
        self.graphite.send(f"scenario.{slug}", 1, now)
        print(f"  +{now - self.started:5.1f} s  {label}", flush=True)

    def table(self) -> str:
        rows = [(f"{when - self.started:+.0f} s", label) for when, _, label in self.events]
        return table(["when", "event"], rows)


def register(cluster: Cluster, load: Load, wave: int, per_node: int, names: list[str]) -> None:
    """``per_node`` agents on each of ``names``, about 25 a second, a third of them with
    the files state tool."""
    for i in range(per_node):
        for name in names:
            agent = f"agent-{name}-{wave * 1000 + i}"
            body: dict[str, object] = {"capabilities": [f"cap-{i % 10}", "chat"]}
            if i % 3 == 0:
                body["state_tool"] = "files"
                load.agents.append((name, agent))
            cluster.request(name, "PUT", f"/agents/{agent}", body)
            time.sleep(0.04)


def garbage(cluster: Cluster, name: str, count: int) -> None:
    """Datagrams no node sends, at one node's gossip port: each is dropped and counted."""
    rng = random.Random(11)
    port = cluster.nodes[name].gossip_port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for _ in range(count):
            udp.sendto(rng.randbytes(rng.randrange(8, 200)), ("127.0.0.1", port))
            time.sleep(0.05)


def starve(cluster: Cluster, name: str) -> None:
    """A node that runs only now and then, as on an overloaded host: stopped (SIGSTOP) for
    most of every cycle, for a while."""
    proc = cluster.nodes[name].proc
    deadline = time.monotonic() + STARVE_SECONDS
    while proc is not None and proc.poll() is None and time.monotonic() < deadline:
        proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(STARVE_CYCLE[0])
        finally:
            proc.send_signal(signal.SIGCONT)
        time.sleep(STARVE_CYCLE[1])


def sleep_until(timeline: Timeline, offset: float) -> None:
    time.sleep(max(0.0, timeline.started + offset - time.time()))


def scenario(cluster: Cluster, load: Load, timeline: Timeline) -> None:
    steps: list[tuple[float, Callable[[], object]]] = [
        (5, lambda: timeline.mark("register", "registrations: 30 agents on each node")),
        (5, lambda: register(cluster, load, 1, 30, list(NODES))),
        (5, lambda: cluster.request(NODES[0], "PUT", "/agents/broken-0",
                                    {"capabilities": ["x"], "state_tool": "broken"})),
        (20, lambda: timeline.mark("garbage", "60 garbage datagrams at n1")),
        (20, lambda: garbage(cluster, "n1", 60)),
        (30, lambda: timeline.mark("kill", f"kill -9 {KILLED}")),
        (30, lambda: cluster.signal(KILLED, signal.SIGKILL)),
        (50, lambda: timeline.mark("starve", f"{STARVED} starved of CPU for {STARVE_SECONDS:g} s")),
        (50, lambda: starve(cluster, STARVED)),
        (70, lambda: timeline.mark("leave", f"SIGTERM {LEAVING} (leave)")),
        (70, lambda: cluster.signal(LEAVING, signal.SIGTERM)),
        (90, lambda: timeline.mark("restart", f"{KILLED} restarted")),
        (90, lambda: cluster.start(KILLED)),
        (110, lambda: timeline.mark("register2", "registrations: 25 more on each running node")),
        (110, lambda: register(cluster, load, 2, 25, cluster.running())),
    ]  # fmt: skip
    for offset, step in steps:
        sleep_until(timeline, offset)
        step()
    sleep_until(timeline, END)


UNIT_LABELS = {
    "short": "",
    "pps": "messages/s",
    "Bps": "bytes/s",
    "ops": "per second",
    "reqps": "requests/s",
    "ms": "ms (log scale)",
}
TABLEAU = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
TABLEAU += ["#bcbd22", "#17becf", "#393b79", "#637939", "#843c39", "#7f7f7f"]
PNG_STYLE = [
    ("format", "png"),
    ("width", "1000"),
    ("height", "380"),
    ("tz", "UTC"),
    ("lineWidth", "2"),
    ("fontSize", "11"),
    ("hideLegend", "false"),  # shown even past graphite's 10 series
    ("colorList", ",".join(TABLEAU)),
    ("lineMode", "staircase"),
    ("bgcolor", "white"),
    ("fgcolor", "black"),
    ("majorGridLineColor", "#cccccc"),
    ("minorGridLineColor", "#eeeeee"),
]


NODE_COLORS = {
    "n0": "#1f77b4",
    "n1": "#ff7f0e",
    "n2": "#2ca02c",
    "n3": "#d62728",
    "n4": "#9467bd",
}
GAUGE_SPREAD = 0.0125
"""A gauge's node lines are drawn this share of its highest value apart (n0 true, n4 the
highest), so five nodes that agree are five lines, not one."""
Params = list[tuple[str, str]]
EVENT_COLORS = {
    "up": "#555555",
    "register": "#17becf",
    "garbage": "#bcbd22",
    "kill": "#000000",
    "starve": "#e377c2",
    "leave": "#8c564b",
    "restart": "#393b79",
    "register2": "#17becf",
}


def node_targets(target: str, step: float) -> list[str]:
    """A target whose series are the nodes (``aliasByNode(..., 2)``) is drawn one node at
    a time in its own colour, a gauge's node i ``i * step`` higher so that nodes with the
    same value stay apart; any other target with every node (``*``)."""
    if not (target.startswith("aliasByNode(") and target.endswith(", 2)")):
        return [target.replace(NODE, "*")]
    if ".gauges." not in target:
        return [f"color({target.replace(NODE, n)}, '{c}')" for n, c in NODE_COLORS.items()]
    return [
        f"alias(color(offset({target.replace(NODE, n)}, {i * step:g}), '{c}'), '{n}')"
        for i, (n, c) in enumerate(NODE_COLORS.items())
    ]


def gauge_step(graphite: Graphite, panel: Panel, frame: list[tuple[str, str]]) -> float:
    """How far apart a gauge's node lines are drawn: 1.25 % of its highest value."""
    if ".gauges." not in panel.target:
        return 0.0
    series = graphite.series([("target", panel.target.replace(NODE, "*")), *frame])
    top = max((v for s in series for v, _ in s["datapoints"] if v is not None), default=0.0)
    return float(f"{max(top, 1.0) * GAUGE_SPREAD:.2g}")


def png_params(graphite: Graphite, panel: Panel, timeline: Timeline, until: float) -> Params:
    frame = [("from", str(int(timeline.begun) - 2)), ("until", str(int(until)))]
    step = gauge_step(graphite, panel, frame)
    targets = node_targets(panel.target, step)
    if panel.stacked:
        targets = [rf"aliasSub(stacked({target}), '^stacked\((.*)\)$', '\1')" for target in targets]
    params = [("target", target) for target in targets]
    for _, slug, label in timeline.events:
        line = f"dashed(color(drawAsInfinite(scenario.{slug}), '{EVENT_COLORS[slug]}'), 4)"
        params.append(("target", f"alias({line}, '{label}')"))
    title = f"{panel.title}  ({panel.metric})"
    if step:
        title += f"  [node i drawn {step:g} x i higher]"
    scale = [("logBase", "10"), ("yMin", "0.1")] if panel.log_scale else [("yMin", "0")]
    labels = [("title", title), ("vtitle", UNIT_LABELS[panel.unit])]
    return [*params, *frame, *labels, *scale, *PNG_STYLE]


def render_all(graphite: Graphite, timeline: Timeline, until: float, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for panel in PANELS:
        if panel.png:
            path = out / panel.png
            path.write_bytes(graphite.render(png_params(graphite, panel, timeline, until)))
            written.append(path)
    return written


def run(workdir: Path, out: Path) -> None:
    with Graphite(workdir / "graphite") as graphite:
        print(f"statsd on {graphite.statsd_address}, graphite-web on :{graphite.ports.web}")
        cluster = Cluster(workdir, graphite.statsd_address)
        load = Load(cluster)
        timeline = Timeline(graphite)
        try:
            for name in NODES:
                cluster.start(name)
            wait_until(
                lambda: all(cluster.peers_alive(n) == len(NODES) - 1 for n in NODES),
                30,
                "all five nodes see each other alive",
            )
            timeline.start("five nodes up")
            load.start()
            scenario(cluster, load, timeline)
        finally:
            load.stop()
            cluster.stop_all()
        until = time.time()
        print(timeline.table())
        time.sleep(3)  # statsd's last flush reaches carbon
        nodes = [n for n in graphite.find("stats.gauges.*") if n in NODES]
        if sorted(nodes) != list(NODES):
            raise RuntimeError(f"graphite has gauges of {nodes}, not of {list(NODES)}")
        for path in render_all(graphite, timeline, until, out):
            print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where the PNGs go")
    parser.add_argument("--keep", type=Path, help="keep the nodes' logs and Graphite's data")
    args = parser.parse_args()
    # SIGTERM unwinds like ^C, through every finally: no node or daemon is left running.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            run(args.keep.resolve(), args.out.resolve())
        else:
            with tempfile.TemporaryDirectory(prefix="caxton-dashboard-") as workdir:
                run(Path(workdir), args.out.resolve())
    except Missing as exc:
        print(f"bench.dashboard: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
