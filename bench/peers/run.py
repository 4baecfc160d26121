"""Side-by-side cluster benchmark of SWIM membership systems on one machine (127.0.0.1).

    python -m bench.peers.run --system serf --nodes 5,10,20
    python -m bench.peers.run --system kinship --nodes 5,10,20,40 --idle-seconds 300

For each N it starts a fresh cluster and measures, in this order:

1. join convergence: nodes 0..N-2 start and converge; then one more node starts and the clock
   runs until every node's view shows all N alive (views polled every ``--poll`` s); repeated
   ``--trials`` times with a fresh joiner, each but the last leaving again before the next;
2. idle resources: after ``--settle`` s, CPU % and RSS of every node over ``--cpu-seconds`` with
   nobody polling, and (tcpdump on lo) the UDP datagrams and bytes each node sends during the
   first ``--udp-seconds`` of that window;
3. false positives: ``--idle-seconds`` more of idle while views are polled every
   ``--fp-poll`` s; counts (observer, member) pairs seen failed/suspect, and the failure events
   the systems themselves reported over the whole idle time (steps 2 and 3);
4. kill -9: SIGKILL of one node per trial; time until the first other node marks it failed,
   and until all do;
5. leave: graceful leave of one node per trial; time until all others see it left.

Results print as a Markdown table and go to ``bench/results/peers-<system>.json``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from bench.common import table
from bench.peers.caxton_driver import HTTP_OFFSET, CaxtonDriver
from bench.peers.driver import FAILED, LEFT, SUSPECT, Driver, View
from bench.peers.kinship_driver import KinshipDriver
from bench.peers.measure import (
    CpuWindow,
    UdpCapture,
    all_alive,
    find_base_port,
    marks,
    now,
    rss_mb,
    wait_for,
)
from bench.peers.serf_driver import RPC_OFFSET, SerfDriver

RESULTS = Path(__file__).resolve().parents[1] / "results"

DriverFactory = Callable[[Path, int, "str | None"], Driver]


def _serf(workdir: Path, base: int, key: str | None) -> Driver:
    return SerfDriver(workdir, base, key)


def _kinship(workdir: Path, base: int, key: str | None) -> Driver:
    return KinshipDriver(workdir, base, key)


def _caxton(workdir: Path, base: int, key: str | None) -> Driver:
    return CaxtonDriver(workdir, base, key)


SYSTEMS: dict[str, DriverFactory] = {"serf": _serf, "kinship": _kinship, "caxton": _caxton}
"""Add a system here: a factory ``(workdir, base_port, encrypt_key) -> Driver``."""


@dataclass
class Settings:
    poll: float = 0.05
    settle: float = 10.0
    cpu_seconds: float = 30.0
    udp_seconds: float = 20.0
    idle_seconds: float = 60.0
    fp_poll: float = 0.5
    trials: int = 3
    detect_timeout: float = 60.0
    encrypt: bool = False


@dataclass
class Trial:
    victim: str
    first_s: float | None
    all_s: float | None
    observers: int
    reached: int
    first_suspect_s: float | None = None


@dataclass
class JoinTrial:
    joiner: str
    all_s: float
    """From spawning the joiner until every node's view shows all N alive."""
    first_s: float
    """Until the first other node's view shows the joiner alive."""
    from_boot_s: float | None
    """``all_s`` counted from ``Driver.started_at`` (after interpreter startup) instead."""


@dataclass
class RunResult:
    nodes: int
    bootstrap_s: float | None = None
    join_s: float | None = None
    """Median of ``join[*].all_s``."""
    join_from_boot_s: float | None = None
    join: list[JoinTrial] = field(default_factory=list)
    cpu_pct: list[float] = field(default_factory=list)
    cpu_pct_ticks: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    udp_seconds: float | None = None
    udp_pkts_per_s: list[float] = field(default_factory=list)
    udp_ip_bytes_per_s: list[float] = field(default_factory=list)
    udp_payload_bytes_per_s: list[float] = field(default_factory=list)
    udp_unattributed_packets: int = 0
    idle_observed_s: float | None = None
    fp_failure_events: int | None = None
    fp_polled_failed: int = 0
    fp_polled_suspect: int = 0
    fp_polled_s: float | None = None
    kill: list[Trial] = field(default_factory=list)
    leave: list[Trial] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _median(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _sum_events(driver: Driver, nodes: Sequence[int]) -> int | None:
    total = 0
    for i in nodes:
        n = driver.failure_events(i)
        if n is None:
            return None
        total += n
    return total


def run_cluster(driver: Driver, n: int, s: Settings, workdir: Path) -> RunResult:  # noqa: PLR0915
    res = RunResult(nodes=n)
    names = [driver.node_name(i) for i in range(n)]

    # -- 1. join convergence ------------------------------------------------------------------
    t_boot = now()
    driver.start(0, [])
    if not wait_for(driver, [0], lambda v: True, timeout=15, interval=0.05):
        raise RuntimeError(f"{driver.system} node 0 did not come up; logs in {workdir}")
    for i in range(1, n - 1):
        driver.start(i, [0])
        time.sleep(0.05)
    first = list(range(n - 1))
    got = wait_for(driver, first, all_alive(names[: n - 1]), timeout=60 + n, interval=0.2)
    if len(got) < n - 1:
        raise RuntimeError(f"the first {n - 1} nodes did not converge; logs in {workdir}")
    res.bootstrap_s = max(got.values()) - t_boot
    log(f"N={n}: {n - 1} nodes converged in {res.bootstrap_s:.1f} s; starting the last one")
    time.sleep(3.0)

    # Each trial joins a fresh node (new name and port) to the N-1; all but the last leave again.
    live = list(range(n - 1))
    for k in range(s.trials):
        joiner = n - 1 + k
        if k:
            driver.leave(joiner - 1)
            gone = driver.node_name(joiner - 1)
            wait_for(driver, live, marks(gone, [LEFT]), s.detect_timeout, s.poll)
            time.sleep(3.0)
        res.join.append(_join_trial(driver, joiner, live, s, workdir))
    last = n - 1 + s.trials - 1
    res.join_s = _median([t.all_s for t in res.join])
    res.join_from_boot_s = _median([t.from_boot_s for t in res.join])
    everyone = [*live, last]

    # -- 2. idle CPU, RSS and UDP -------------------------------------------------------------
    time.sleep(s.settle)
    events0 = _sum_events(driver, everyone)
    idle_t0 = now()
    window = CpuWindow(driver, everyone)
    capture: UdpCapture | None = None
    if UdpCapture.available():
        capture = UdpCapture([driver.gossip_port(i) for i in everyone], workdir / f"idle-{n}.pcap")
    else:
        res.notes.append("tcpdump not found: no UDP counts (apt-get install tcpdump)")
    window.begin()
    try:
        if capture is not None:
            capture.start()
            time.sleep(s.udp_seconds)
            counts = capture.stop()
            res.udp_seconds = counts.seconds
            for i in everyone:
                port = driver.gossip_port(i)
                res.udp_pkts_per_s.append(counts.packets.get(port, 0) / counts.seconds)
                res.udp_ip_bytes_per_s.append(counts.ip_bytes.get(port, 0) / counts.seconds)
                res.udp_payload_bytes_per_s.append(
                    counts.payload_bytes.get(port, 0) / counts.seconds
                )
            res.udp_unattributed_packets = counts.other_packets
        time.sleep(max(0.0, s.cpu_seconds - (now() - window.t0)))
    finally:
        if capture is not None:
            capture.kill()
    sample = window.end()
    res.cpu_pct, res.cpu_pct_ticks, res.rss_mb = sample.cpu_pct, sample.cpu_pct_ticks, sample.rss_mb
    log(
        f"N={n}: idle CPU {_mean(res.cpu_pct) or 0:.2f} %/node, RSS {_mean(res.rss_mb) or 0:.1f}"
        f" MB/node, UDP {_mean(res.udp_pkts_per_s) or 0:.2f} pkt/s/node"
    )

    # -- 3. false positives -------------------------------------------------------------------
    failed: set[tuple[int, str]] = set()
    suspect: set[tuple[int, str]] = set()

    def watch(i: int, view: View, _stamp: float) -> None:
        for name, state in view.items():
            if state == FAILED:
                failed.add((i, name))
            elif state == SUSPECT:
                suspect.add((i, name))

    fp_t0 = now()
    wait_for(driver, everyone, lambda v: False, s.idle_seconds, s.fp_poll, on_view=watch)
    res.fp_polled_s = now() - fp_t0
    res.fp_polled_failed, res.fp_polled_suspect = len(failed), len(suspect)
    events1 = _sum_events(driver, everyone)
    res.idle_observed_s = now() - idle_t0
    if events0 is not None and events1 is not None:
        res.fp_failure_events = events1 - events0
    log(
        f"N={n}: {res.fp_failure_events} failure events in {res.idle_observed_s:.0f} s idle;"
        f" polled: {len(failed)} failed, {len(suspect)} suspect pairs"
    )

    # -- 4. kill -9 and 5. leave --------------------------------------------------------------
    trials = max(1, min(s.trials, (n - 2) // 2))
    if trials < s.trials:
        res.notes.append(f"{trials} kill/leave trial(s) at N={n} to keep a quorum of live nodes")
    candidates = everyone[1:]  # never the seed; the last joiner goes last
    kill_victims, leave_victims = candidates[:trials], candidates[trials : 2 * trials]
    down: set[int] = set()
    for victim in kill_victims:
        res.kill.append(_kill_trial(driver, victim, everyone, down, s))
        down.add(victim)
        time.sleep(2.0)
    for victim in leave_victims:
        res.leave.append(_leave_trial(driver, victim, everyone, down, s))
        down.add(victim)
        time.sleep(2.0)
    return res


def _join_trial(
    driver: Driver, joiner: int, live: Sequence[int], s: Settings, workdir: Path
) -> JoinTrial:
    nodes = [*live, joiner]
    names = [driver.node_name(i) for i in nodes]
    t0 = now()
    driver.start(joiner, [0])
    got = wait_for(driver, nodes, all_alive(names), timeout=30 + len(nodes), interval=s.poll)
    if len(got) < len(nodes):
        raise RuntimeError(f"join of node {joiner} did not converge; logs in {workdir}")
    boot = driver.started_at(joiner)
    trial = JoinTrial(
        joiner=driver.node_name(joiner),
        all_s=max(got.values()) - t0,
        first_s=min(t for i, t in got.items() if i != joiner) - t0,
        from_boot_s=None if boot is None else max(got.values()) - boot,
    )
    log(f"N={len(nodes)}: join of {trial.joiner} converged in {trial.all_s:.2f} s")
    return trial


def _kill_trial(
    driver: Driver, victim: int, everyone: Sequence[int], down: set[int], s: Settings
) -> Trial:
    name = driver.node_name(victim)
    observers = [i for i in everyone if i != victim and i not in down]
    suspects: dict[int, float] = {}

    def note(i: int, view: View, stamp: float) -> None:
        if view.get(name) == SUSPECT:
            suspects.setdefault(i, stamp)

    t0 = now()
    driver.kill(victim)
    got = wait_for(driver, observers, marks(name, [FAILED]), s.detect_timeout, s.poll, note)
    trial = Trial(
        victim=name,
        first_s=min(got.values()) - t0 if got else None,
        all_s=max(got.values()) - t0 if len(got) == len(observers) else None,
        observers=len(observers),
        reached=len(got),
        first_suspect_s=min(suspects.values()) - t0 if suspects else None,
    )
    log(f"N={len(everyone)}: kill -9 {name}: first {trial.first_s}, all {trial.all_s}")
    return trial


def _leave_trial(
    driver: Driver, victim: int, everyone: Sequence[int], down: set[int], s: Settings
) -> Trial:
    name = driver.node_name(victim)
    observers = [i for i in everyone if i != victim and i not in down]
    t0 = now()
    driver.leave(victim)
    got = wait_for(driver, observers, marks(name, [LEFT]), s.detect_timeout, s.poll)
    trial = Trial(
        victim=name,
        first_s=min(got.values()) - t0 if got else None,
        all_s=max(got.values()) - t0 if len(got) == len(observers) else None,
        observers=len(observers),
        reached=len(got),
    )
    log(f"N={len(everyone)}: leave {name}: first {trial.first_s}, all {trial.all_s}")
    return trial


# -------------------------------------------------------------------------------------------------


def python_baseline_rss(python: str, imports: str) -> float | None:
    """RSS of an idle interpreter that imported ``imports``: the floor under a kinship node."""
    proc = subprocess.Popen(
        [python, "-c", f"import {imports}; print('ok', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        time.sleep(0.5)
        return rss_mb(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def system_version(system: str) -> str:
    if system == "serf":
        out = subprocess.run(["serf", "version"], capture_output=True, text=True, check=False)
        return out.stdout.splitlines()[0] if out.stdout else "?"
    if system == "caxton":
        from caxton_actors import __version__  # noqa: PLC0415

        return f"caxton-actors {__version__}"
    if system == "kinship":
        import kinship  # noqa: PLC0415 - only needed for this system

        return f"kinship {kinship.__version__}"
    return "?"


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _fmt_trials(values: Sequence[float | None]) -> str:
    """Median of the trials that got there, flagging those that timed out."""
    missed = sum(v is None for v in values)
    return _fmt(_median(values)) + (f" ({missed} timed out)" if missed else "")


def summary_rows(results: Sequence[RunResult]) -> list[list[str]]:
    rows = []
    for r in results:
        fp = f"{r.fp_failure_events if r.fp_failure_events is not None else '?'}"
        fp += f" / {r.fp_polled_failed}"
        rows.append(
            [
                str(r.nodes),
                _fmt(r.join_s),
                _fmt(r.join_from_boot_s),
                _fmt_trials([t.first_s for t in r.kill]),
                _fmt_trials([t.all_s for t in r.kill]),
                _fmt_trials([t.all_s for t in r.leave]),
                _fmt(_mean(r.cpu_pct)),
                _fmt(_mean(r.rss_mb), 1),
                _fmt(_mean(r.udp_pkts_per_s)),
                _fmt(_mean(r.udp_ip_bytes_per_s), 0),
                fp,
            ]
        )
    return rows


HEADERS = [
    "N",
    "join conv. (s)",
    "join after boot (s)",
    "kill -9 first (s)",
    "kill -9 all (s)",
    "leave all (s)",
    "idle CPU %/node",
    "RSS MB/node",
    "UDP pkt/s/node",
    "UDP B/s/node (IP)",
    "false pos. (events / polled)",
]


def add_cluster_arguments(ap: argparse.ArgumentParser, nodes: str) -> None:
    """The options every cluster run takes (this script's and ``encrypt_pair``'s)."""
    ap.add_argument("--system", choices=sorted(SYSTEMS), required=True)
    ap.add_argument("--nodes", default=nodes, help="comma-separated cluster sizes")
    ap.add_argument("--poll", type=float, default=Settings.poll)
    ap.add_argument("--settle", type=float, default=Settings.settle)
    ap.add_argument("--cpu-seconds", type=float, default=Settings.cpu_seconds)
    ap.add_argument("--udp-seconds", type=float, default=Settings.udp_seconds)
    ap.add_argument("--idle-seconds", type=float, default=Settings.idle_seconds)
    ap.add_argument("--fp-poll", type=float, default=Settings.fp_poll)
    ap.add_argument("--trials", type=int, default=Settings.trials, help="kill and leave trials")
    ap.add_argument("--detect-timeout", type=float, default=Settings.detect_timeout)
    ap.add_argument("--keep-workdir", action="store_true", help="keep node logs and pcaps")


def cluster_settings(
    ap: argparse.ArgumentParser, args: argparse.Namespace, encrypt: bool = False
) -> tuple[Settings, list[int]]:
    """The settings and cluster sizes ``add_cluster_arguments`` gave, checked."""
    s = Settings(
        poll=args.poll,
        settle=args.settle,
        cpu_seconds=args.cpu_seconds,
        udp_seconds=min(args.udp_seconds, args.cpu_seconds),
        idle_seconds=args.idle_seconds,
        fp_poll=args.fp_poll,
        trials=args.trials,
        detect_timeout=args.detect_timeout,
        encrypt=encrypt,
    )
    sizes = [int(x) for x in args.nodes.split(",") if x.strip()]
    if any(n < 4 for n in sizes):
        ap.error("every cluster size must be at least 4")
    if s.trials < 1:
        ap.error("--trials must be at least 1")
    return s, sizes


def exit_on_signals() -> None:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so every started node is stopped."""

    def on_term(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_cluster_arguments(ap, "5,10,20")
    ap.add_argument("--encrypt", action="store_true", help="give every node the same 32-byte key")
    ap.add_argument(
        "--out", type=Path, help="JSON output (default bench/results/peers-SYSTEM.json)"
    )
    args = ap.parse_args(argv)
    s, sizes = cluster_settings(ap, args, args.encrypt)
    key = base64.b64encode(secrets.token_bytes(32)).decode() if s.encrypt else None
    exit_on_signals()

    out: dict[str, Any] = {
        "system": args.system,
        "version": system_version(args.system),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "host": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "loadavg_at_start": os.getloadavg(),
        },
        "settings": asdict(s),
        "runs": [],
    }
    if args.system == "kinship":
        out["python_baseline_rss_mb"] = {
            "bare": python_baseline_rss(sys.executable, "sys"),
            "import kinship": python_baseline_rss(sys.executable, "sys, kinship"),
        }
    results: list[RunResult] = []
    top = Path(tempfile.mkdtemp(prefix=f"peers-{args.system}-"))
    try:
        for n in sizes:
            workdir = top / f"n{n}"
            base = find_base_port(n + s.trials, offsets=(0, RPC_OFFSET, HTTP_OFFSET))
            driver = SYSTEMS[args.system](workdir, base, key)
            log(f"{args.system} N={n}: ports {base}.., workdir {workdir}")
            try:
                res = run_cluster(driver, n, s, workdir)
            except RuntimeError as exc:
                log(f"N={n} failed: {exc}")
                res = RunResult(nodes=n, notes=[f"failed: {exc}"])
            finally:
                driver.close()
            results.append(res)
            out["runs"] = [asdict(r) for r in results]
            out["host"]["loadavg_at_end"] = os.getloadavg()
            path = args.out or RESULTS / f"peers-{args.system}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(out, indent=2) + "\n")
    finally:
        if args.keep_workdir:
            log(f"logs kept in {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)
    print(f"\n### {out['version']} ({args.system}), lan timing\n")
    print(table(HEADERS, summary_rows(results)))
    for r in results:
        for note in r.notes:
            print(f"\n- N={r.nodes}: {note}")
    if "python_baseline_rss_mb" in out:
        base = out["python_baseline_rss_mb"]
        print(
            f"\nIdle interpreter RSS: bare {_fmt(base['bare'], 1)} MB,"
            f" with kinship imported {_fmt(base['import kinship'], 1)} MB"
        )
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
