"""SWIM at scale in the simulator: dissemination rounds against log N, load per node.

For each cluster size N and seed, a cluster of N simulated nodes (the real
``Engine``, LAN timing, a lossless network) that already know each other,
as if it had been running for a while, then:

(a) idle load: packets each node sends per protocol period (``probe_interval``),
    counted over a window with nothing to disseminate;
(b) dissemination: one node leaves; the time until every other node has seen it
    ``left``, in gossip rounds (``gossip_interval``), and the packets per node that
    this one update cost above the idle load.

The cluster starts settled (``sim.cluster.settled``): joining N nodes through one
seed would cost O(N^2) in full-state exchanges.

Run: python -m bench.sim_scale [--sizes 16,32,...] [--seeds 15] [--jobs 2] [--plot PATH]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

from caxton_actors.sim.cluster import Cluster, Network, settled
from caxton_actors.swim.messages import State
from caxton_actors.swim.timing import LAN

from .common import table

PERFECT = Network()
SIZES = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 10000)
IDLE_PERIODS = 2  # protocol periods counted for (a)
SPREAD_CAP = 10.0  # virtual seconds: give up on (b) after this (50 LAN rounds)
DEFAULT_PLOT = Path(__file__).resolve().parent.parent / "docs" / "sim-scale.png"


@dataclass(frozen=True, slots=True)
class Run:
    size: int
    seed: int
    idle_per_period: float
    """Packets sent per node per protocol period, idle."""
    rounds: float | None
    """Gossip rounds until every other node saw the leave; None if some never did."""
    update_packets: float
    """Packets per node the one update cost, above the idle load."""
    wall: float
    """Seconds of real time for this run, bootstrap included."""
    rss_mb: float


def idle_packets_per_period(cluster: Cluster, periods: int) -> float:
    """Packets each node sends per protocol period, averaged over ``periods``."""
    before = cluster.sent.total()
    cluster.run_for(periods * cluster.timing.probe_interval)
    return (cluster.sent.total() - before) / len(cluster.live) / periods


def spread_of_leave(cluster: Cluster, origin: str, cap: float) -> dict[str, float]:
    """``origin`` leaves; when each other node first saw it ``left`` (within ``cap``)."""
    others = len(cluster.live) - 1
    mark = len(cluster.observed)
    start = cluster.now
    cluster.leave(origin)
    heard: dict[str, float] = {}
    while len(heard) < others and cluster.now < start + cap:
        cluster.run_for(cluster.timing.gossip_interval)
        for seen in cluster.observed[mark:]:
            if seen.member == origin and seen.state is State.LEFT and seen.observer != origin:
                heard.setdefault(seen.observer, seen.at)
        mark = len(cluster.observed)
    return heard


def measure(size: int, seed: int, idle_periods: int = IDLE_PERIODS) -> Run:
    began = time.perf_counter()
    gc.disable()  # millions of long-lived records: spare them the cyclic GC's rescans
    cluster = settled(seed, size, LAN, PERFECT)
    gc.freeze()
    gc.enable()
    timing = cluster.timing
    idle = idle_packets_per_period(cluster, idle_periods)

    start, sent_before = cluster.now, cluster.sent.total()
    origin = cluster.live[seed % size]
    heard = spread_of_leave(cluster, origin, SPREAD_CAP)
    complete = len(heard) == size - 1
    rounds = (max(heard.values()) - start) / timing.gossip_interval if complete else None
    # The last to hear passes the update on ``retransmit_limit`` times, ``gossip_nodes``
    # at a time: run until it is done, so the whole cost of the update is counted.
    limit = timing.retransmit_limit(size)
    cluster.run_for((math.ceil(limit / timing.gossip_nodes) + 2) * timing.gossip_interval)
    window = cluster.now - start
    sent = (cluster.sent.total() - sent_before) / size
    update_packets = sent - idle * window / timing.probe_interval

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return Run(size, seed, idle, rounds, update_packets, time.perf_counter() - began, rss_mb)


@dataclass(frozen=True, slots=True)
class Row:
    size: int
    runs: int
    complete: int
    rounds_median: float
    rounds_max: float
    idle_median: float
    idle_min: float
    idle_max: float
    update_median: float
    limit: int
    wall_median: float
    rss_max: float


def summarize(runs: Sequence[Run]) -> list[Row]:
    rows = []
    for size in sorted({r.size for r in runs}):
        mine = [r for r in runs if r.size == size]
        rounds = [r.rounds for r in mine if r.rounds is not None]
        idle = [r.idle_per_period for r in mine]
        rows.append(
            Row(
                size=size,
                runs=len(mine),
                complete=len(rounds),
                rounds_median=statistics.median(rounds) if rounds else math.nan,
                rounds_max=max(rounds) if rounds else math.nan,
                idle_median=statistics.median(idle),
                idle_min=min(idle),
                idle_max=max(idle),
                update_median=statistics.median(r.update_packets for r in mine),
                limit=LAN.retransmit_limit(size),
                wall_median=statistics.median(r.wall for r in mine),
                rss_max=max(r.rss_mb for r in mine),
            )
        )
    return rows


def log2_fit(rows: Sequence[Row]) -> tuple[float, float, float]:
    """Least squares ``rounds = a + b * log2(N)`` over the medians: (a, b, r squared)."""
    points = [(math.log2(r.size), r.rounds_median) for r in rows if r.complete]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    if len(points) < 2:
        return math.nan, math.nan, math.nan
    b, a = statistics.linear_regression(xs, ys)
    mean = statistics.fmean(ys)
    total = sum((y - mean) ** 2 for y in ys)
    residual = sum((y - (a + b * x)) ** 2 for x, y in points)
    return a, b, 1 - residual / total if total else 1.0


def render(rows: Sequence[Row]) -> str:
    headers = [
        "N",
        "seeds",
        "rounds median",
        "rounds max",
        "seconds median",
        "packets/node/period idle (min to max)",
        "packets/node per update",
        "retransmit limit",
        "wall s/run",
        "peak RSS MiB",
    ]
    body = [
        [
            r.size,
            r.runs if r.complete == r.runs else f"{r.runs} ({r.runs - r.complete} incomplete)",
            f"{r.rounds_median:.1f}",
            f"{r.rounds_max:.1f}",
            f"{r.rounds_median * LAN.gossip_interval:.2f}",
            f"{r.idle_median:.3f} ({r.idle_min:.3f} to {r.idle_max:.3f})",
            f"{r.update_median:.1f}",
            r.limit,
            f"{r.wall_median:.1f}",
            f"{r.rss_max:.0f}",
        ]
        for r in rows
    ]
    return table(headers, body)


def plot(rows: Sequence[Row], path: Path) -> None:
    """Two panels: rounds against N (log x) with the log2 fit; idle packets per period."""
    import matplotlib  # type: ignore[import-not-found, unused-ignore]  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]  # noqa: PLC0415

    done = [r for r in rows if r.complete]
    sizes = [r.size for r in done]
    a, b, r2 = log2_fit(rows)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))

    medians = [r.rounds_median for r in done]
    left.plot(sizes, medians, "o", color="C0", label="median over seeds")
    left.plot(sizes, [r.rounds_max for r in done], "v", color="C3", label="max over seeds")
    lo, hi = min(sizes) / 1.3, max(sizes) * 1.3
    xs = [lo * (hi / lo) ** (i / 100) for i in range(101)]
    left.plot(
        xs,
        [a + b * math.log2(x) for x in xs],
        "--",
        color="C0",
        label=f"fit {a:.2f} + {b:.2f}·log2 N  (R² {r2:.2f})",
    )
    left.set_xscale("log", base=2)
    left.set_xticks(sizes, [str(n) for n in sizes])
    left.set_xlabel("cluster size N")
    left.set_ylabel(f"gossip rounds ({LAN.gossip_interval:g} s) until all saw it")
    left.set_title("Spread of one update (a leave)")
    left.set_ylim(0, max(r.rounds_max for r in done) * 1.4)
    left.grid(True, which="both", alpha=0.3)
    left.legend(loc="upper left")

    right.errorbar(
        [r.size for r in rows],
        [r.idle_median for r in rows],
        yerr=[
            [r.idle_median - r.idle_min for r in rows],
            [r.idle_max - r.idle_median for r in rows],
        ],
        fmt="o-",
        color="C2",
        capsize=3,
        label="median (min to max) over seeds",
    )
    right.axhline(2, color="grey", linestyle=":", label="one ping + one ack")
    right.set_xscale("log", base=2)
    right.set_xticks([r.size for r in rows], [str(r.size) for r in rows])
    right.set_ylim(0, max(3.0, max(r.idle_max for r in rows) * 1.2))
    right.set_xlabel("cluster size N")
    right.set_ylabel(f"packets sent / node / period ({LAN.probe_interval:g} s)")
    right.set_title("Idle load per node")
    right.grid(True, which="both", alpha=0.3)
    right.legend(loc="lower right")

    seeds = sorted({r.runs for r in rows})
    fig.suptitle(
        "caxton_actors SWIM core in the deterministic simulator (LAN timing, no loss; "
        + (f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]} to {seeds[-1]}")
        + " seeds per size)"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def seeds_for(size: int, seeds: int, large_seeds: int, large_from: int) -> range:
    return range(large_seeds if size >= large_from else seeds)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--sizes",
        default=",".join(map(str, SIZES)),
        help="comma-separated cluster sizes (default %(default)s)",
    )
    parser.add_argument("--seeds", type=int, default=15, help="seeds per size (default 15)")
    parser.add_argument(
        "--large-seeds", type=int, default=3, help="seeds per size from --large-from on (default 3)"
    )
    parser.add_argument("--large-from", type=int, default=1024, help="default 1024")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    parser.add_argument("--plot", type=Path, default=DEFAULT_PLOT, help="PNG to write")
    parser.add_argument("--no-plot", action="store_true", help="print the table only")
    parser.add_argument("--save", type=Path, help="also write every run to this JSON file")
    parser.add_argument(
        "--load", type=Path, nargs="+", help="measure nothing: the runs of one or more --save"
    )
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    argline = " ".join(sys.argv[1:] if argv is None else argv)
    print(f"reproduce: {sys.executable} -m bench.sim_scale {argline}".rstrip())
    print(f"python {platform.python_version()}, {platform.machine()}, timing LAN, no loss")

    runs = measure_all(sizes, args) if args.load is None else load(args.load)
    if args.save is not None:
        args.save.write_text(json.dumps([asdict(r) for r in runs], indent=1) + "\n")
    rows = summarize(runs)
    print(render(rows))
    a, b, r2 = log2_fit(rows)
    print(f"fit over the medians: rounds = {a:.2f} + {b:.2f} * log2(N), R^2 = {r2:.3f}")
    if not args.no_plot:
        plot(rows, args.plot)
        print(f"wrote {args.plot}")


def load(paths: Sequence[Path]) -> list[Run]:
    runs = [Run(**fields) for path in paths for fields in json.loads(path.read_text())]
    return sorted(runs, key=lambda r: (r.size, r.seed))


def measure_all(sizes: Sequence[int], args: argparse.Namespace) -> list[Run]:
    tasks = [
        (size, seed)
        for size in sorted(sizes, reverse=True)  # the longest first, to balance the workers
        for seed in seeds_for(size, args.seeds, args.large_seeds, args.large_from)
    ]
    runs: list[Run] = []
    # A fresh process per run: peak RSS is that run's, and memory goes back in between.
    with ProcessPoolExecutor(max_workers=args.jobs, max_tasks_per_child=1) as pool:
        futures = [pool.submit(measure, size, seed) for size, seed in tasks]
        for future in as_completed(futures):
            run = future.result()
            runs.append(run)
            rounds = "incomplete" if run.rounds is None else f"{run.rounds:.1f} rounds"
            print(
                f"  N={run.size} seed={run.seed}: {rounds}, {run.idle_per_period:.3f} "
                f"packets/node/period, {run.wall:.1f} s, {run.rss_mb:.0f} MiB",
                file=sys.stderr,
                flush=True,
            )
    return sorted(runs, key=lambda r: (r.size, r.seed))


if __name__ == "__main__":
    main()
