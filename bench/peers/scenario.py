"""The measured life of one cluster, for any ``Driver``: start, join, idle, kill -9, leave.

``run_cluster`` runs, in this order:

1. start: node 0, then nodes 1..N-2 seeded with node 0 in batches of ``start_batch``, each
   batch answering before the next is spawned (100 interpreters at once on 2 cores would
   time out), until all N-1 see each other alive;
2. join convergence: one more node starts and the clock runs until every node's view shows
   all N alive (views polled every ``poll`` s); repeated ``trials`` times with a fresh joiner,
   each but the last leaving again before the next;
3. idle resources: after ``settle`` s, CPU % and RSS of every node over ``cpu_seconds`` with
   nobody polling, and (tcpdump on lo) the UDP datagrams and bytes each node sends during the
   first ``udp_seconds`` of that window;
4. false positives: ``idle_seconds`` more of idle while views are polled every ``fp_poll`` s;
   counts (observer, member) pairs seen failed/suspect, and the failure events the systems
   themselves reported over the whole idle time (steps 3 and 4);
5. kill -9: SIGKILL of one node per trial; time until the first other node marks it suspect,
   failed, and until all mark it failed;
6. leave: graceful leave of one node per trial; time until all others see it left.

Timeouts grow with N: ``detect_timeout + N/5`` for kill and leave, ``60 + 2N`` s for the
first N-1 to converge, ``30 + N`` s for a join.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.peers.driver import FAILED, LEFT, SUSPECT, Driver, View
from bench.peers.measure import CpuWindow, UdpCapture, all_alive, marks, now, wait_for


@dataclass
class Settings:
    poll: float = 0.05
    settle: float = 10.0
    cpu_seconds: float = 30.0
    udp_seconds: float = 20.0
    idle_seconds: float = 45.0
    fp_poll: float = 0.5
    trials: int = 3
    detect_timeout: float = 60.0
    start_batch: int = 10
    encrypt: bool = False


QUICK = Settings(settle=2.0, cpu_seconds=5.0, udp_seconds=4.0, idle_seconds=5.0, trials=1)
"""``--quick``: short windows and one trial, for smoke runs."""


@dataclass
class Trial:
    victim: str
    first_s: float | None
    all_s: float | None
    observers: int
    reached: int
    first_suspect_s: float | None = None
    """kill -9 only: the first other node's view showing the victim suspect (never for Serf,
    whose views have no suspect state)."""


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
    system: str = ""
    loss: float = 0.0
    """The UDP loss set for this cluster (a fraction)."""
    netns: str | None = None
    """The network namespace the cluster ran in, or None: the host's lo."""
    udp_in_passed: int | None = None
    udp_in_dropped: int | None = None
    """nftables counters over the cluster's life: UDP datagrams delivered and dropped."""
    loss_measured: float | None = None
    start_s: float | None = None
    """From spawning node 0 until all N-1 first nodes answered (paced start)."""
    bootstrap_s: float | None = None
    """From spawning node 0 until the N-1 first nodes saw each other alive."""
    view_sweep_s: float | None = None
    """One poll of every view after the start: the resolution of the timings at this N."""
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


def median(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def kill_trials(n: int, trials: int) -> int:
    """kill -9 and leave trials each at N: at most (N-2)/2, so enough nodes stay alive."""
    return max(1, min(trials, (n - 2) // 2))


def _sum_events(driver: Driver, nodes: Sequence[int]) -> int | None:
    total = 0
    for i in nodes:
        k = driver.failure_events(i)
        if k is None:
            return None
        total += k
    return total


def _answers(_view: View) -> bool:
    return True


def start_nodes(driver: Driver, n: int, s: Settings, workdir: Path) -> None:
    """Start nodes 0..n-2: node 0 alone, then the others seeded with it in batches of
    ``s.start_batch``, waiting for each batch to answer before the next."""
    driver.start(0, [])
    if not wait_for(driver, [0], _answers, timeout=30, interval=0.05):
        raise RuntimeError(f"{driver.system} node 0 did not come up; logs in {workdir}")
    rest = list(range(1, n - 1))
    for k in range(0, len(rest), s.start_batch):
        batch = rest[k : k + s.start_batch]
        for i in batch:
            driver.start(i, [0])
            time.sleep(0.02)
        got = wait_for(driver, batch, _answers, timeout=30 + 2 * len(batch), interval=0.1)
        if len(got) < len(batch):
            missing = sorted(set(batch) - set(got))
            raise RuntimeError(f"nodes {missing} did not come up; logs in {workdir}")


def run_cluster(driver: Driver, n: int, s: Settings, workdir: Path) -> RunResult:  # noqa: PLR0915
    res = RunResult(nodes=n, system=driver.system)
    names = [driver.node_name(i) for i in range(n)]
    tag = f"{driver.system} N={n}"
    detect = s.detect_timeout + n / 5

    # -- 1. start and 2. join convergence -----------------------------------------------------
    t_boot = now()
    start_nodes(driver, n, s, workdir)
    res.start_s = now() - t_boot
    first = list(range(n - 1))
    got = wait_for(driver, first, all_alive(names[: n - 1]), timeout=60 + 2 * n, interval=0.2)
    if len(got) < n - 1:
        raise RuntimeError(f"the first {n - 1} nodes did not converge; logs in {workdir}")
    res.bootstrap_s = max(got.values()) - t_boot
    t_sweep = now()
    for i in first:
        driver.view(i)
    res.view_sweep_s = now() - t_sweep
    log(
        f"{tag}: {n - 1} nodes up in {res.start_s:.1f} s, converged in {res.bootstrap_s:.1f} s"
        f" (one view sweep {1000 * res.view_sweep_s:.0f} ms); starting the last one"
    )
    time.sleep(3.0)

    # Each trial joins a fresh node (new name and port) to the N-1; all but the last leave again.
    live = list(range(n - 1))
    for k in range(s.trials):
        joiner = n - 1 + k
        if k:
            driver.leave(joiner - 1)
            gone = driver.node_name(joiner - 1)
            wait_for(driver, live, marks(gone, [LEFT]), detect, s.poll)
            time.sleep(3.0)
        res.join.append(_join_trial(driver, joiner, live, s, workdir))
    last = n - 1 + s.trials - 1
    res.join_s = median([t.all_s for t in res.join])
    res.join_from_boot_s = median([t.from_boot_s for t in res.join])
    everyone = [*live, last]

    # -- 3. idle CPU, RSS and UDP -------------------------------------------------------------
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
        f"{tag}: idle CPU {mean(res.cpu_pct) or 0:.2f} %/node, RSS {mean(res.rss_mb) or 0:.1f}"
        f" MB/node, UDP {mean(res.udp_pkts_per_s) or 0:.2f} pkt/s/node"
    )

    # -- 4. false positives -------------------------------------------------------------------
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
        f"{tag}: {res.fp_failure_events} failure events in {res.idle_observed_s:.0f} s idle;"
        f" polled: {len(failed)} failed, {len(suspect)} suspect pairs"
    )

    # -- 5. kill -9 and 6. leave --------------------------------------------------------------
    trials = kill_trials(n, s.trials)
    if trials < s.trials:
        res.notes.append(f"{trials} kill/leave trial(s) at N={n} to keep a quorum of live nodes")
    candidates = everyone[1:]  # never the seed; the last joiner goes last
    kill_victims, leave_victims = candidates[:trials], candidates[trials : 2 * trials]
    down: set[int] = set()
    for victim in kill_victims:
        res.kill.append(_trial(driver, victim, everyone, down, s.poll, detect, leave=False))
        down.add(victim)
        time.sleep(2.0)
    for victim in leave_victims:
        res.leave.append(_trial(driver, victim, everyone, down, s.poll, detect, leave=True))
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
    log(f"{driver.system} N={len(nodes)}: join of {trial.joiner} converged in {trial.all_s:.2f} s")
    return trial


def _trial(
    driver: Driver,
    victim: int,
    everyone: Sequence[int],
    down: set[int],
    poll: float,
    timeout: float,
    *,
    leave: bool,
) -> Trial:
    """Kill -9 ``victim`` (or have it leave) and time until the others mark it failed (left);
    for a kill, also the first suspicion any of them shows."""
    name = driver.node_name(victim)
    observers = [i for i in everyone if i != victim and i not in down]
    suspects: dict[int, float] = {}

    def note(i: int, view: View, stamp: float) -> None:
        if view.get(name) == SUSPECT:
            suspects.setdefault(i, stamp)

    t0 = now()
    (driver.leave if leave else driver.kill)(victim)
    got = wait_for(driver, observers, marks(name, [LEFT if leave else FAILED]), timeout, poll, note)
    trial = Trial(
        victim=name,
        first_s=min(got.values()) - t0 if got else None,
        all_s=max(got.values()) - t0 if len(got) == len(observers) else None,
        observers=len(observers),
        reached=len(got),
        first_suspect_s=None if leave or not suspects else min(suspects.values()) - t0,
    )
    what = f"leave {name}:" if leave else f"kill -9 {name}: suspect {_s(trial.first_suspect_s)},"
    log(
        f"{driver.system} N={len(everyone)}: {what} first {_s(trial.first_s)},"
        f" all {_s(trial.all_s)}"
    )
    return trial


# -------------------------------------------------------------------------------------------------


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"
