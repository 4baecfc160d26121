"""Side-by-side cluster benchmark of SWIM membership systems on one machine, interleaved.

    python -m bench.peers.run --quick --nodes 5,10                # smoke, ~3 min
    python -m bench.peers.run --nodes 5,10,20,40,100 --loss 0     # full, ~35 min estimated
    python -m bench.peers.run --nodes 20 --loss 0.01,0.05         # loss, ~14 min estimated
    python -m bench.peers.run --system serf,kinship --nodes 20 --idle-seconds 300

For each N and each loss it runs one fresh cluster of every ``--system`` in turn, the order
rotating from one (N, loss) to the next so no system always goes first, and measures each with
``bench.peers.scenario.run_cluster``: paced start, join convergence of the last joiner, idle
CPU/RSS/UDP, false positives, kill -9 (first suspect, first failed, all failed), leave.

Every cluster runs in a fresh network namespace (``bench.peers.netns``, root only) whose
nftables rule drops ``--loss`` of the UDP datagrams at random; TCP (the harness's polling) is
not touched. Without root, ``ip`` or ``nft`` the clusters run on the host's lo and only
``--loss 0`` is allowed; ``--no-netns`` asks for the host's lo.

``--quick`` shortens every window to a smoke run (one trial); the full preset is the default.
The estimated total time is printed at the start. Results print as one Markdown table (rows by
N, then loss, then system) and every raw number goes to ``bench/results/peers*.json``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import os
import platform
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from types import FrameType
from typing import Any

from bench.common import table
from bench.peers import netns
from bench.peers.caxton_driver import HTTP_OFFSET, CaxtonDriver
from bench.peers.driver import Driver
from bench.peers.kinship_driver import KinshipDriver
from bench.peers.measure import find_base_port, rss_mb
from bench.peers.scenario import (
    QUICK,
    RunResult,
    Settings,
    kill_trials,
    log,
    mean,
    median,
    run_cluster,
)
from bench.peers.serf_driver import RPC_OFFSET, SerfDriver

RESULTS = Path(__file__).resolve().parents[1] / "results"
PORT_OFFSETS = (0, RPC_OFFSET, HTTP_OFFSET)
"""Every port a node may take is ``base + offset + i`` for one of these."""

DriverFactory = Callable[[Path, int, "str | None"], Driver]


def _serf(workdir: Path, base: int, key: str | None) -> Driver:
    return SerfDriver(workdir, base, key)


def _kinship(workdir: Path, base: int, key: str | None) -> Driver:
    return KinshipDriver(workdir, base, key)


def _caxton(workdir: Path, base: int, key: str | None) -> Driver:
    return CaxtonDriver(workdir, base, key)


SYSTEMS: dict[str, DriverFactory] = {"caxton": _caxton, "serf": _serf, "kinship": _kinship}
"""Add a system here: a factory ``(workdir, base_port, encrypt_key) -> Driver``."""

START_S = {"caxton": 0.4, "serf": 0.05, "kinship": 0.1}
"""Seconds per node of a paced start on 2 cores, for the time estimate."""


def run_order(systems: Sequence[str], k: int) -> list[str]:
    """The systems in the order the ``k``-th (N, loss) runs them: rotated by ``k``."""
    shift = k % len(systems)
    return [*systems[shift:], *systems[:shift]]


def cluster_seconds(system: str, n: int, s: Settings) -> float:
    """A rough duration of one ``run_cluster``, teardown included."""
    trials = kill_trials(n, s.trials)
    detect = 1.5 + 4 * max(1.0, math.log10(n))  # memberlist: suspicion 4 x log10(N) probes
    return (
        1 + n * START_S.get(system, 0.5)  # paced start, convergence
        + 3 + 1.5 * s.trials + 4 * (s.trials - 1)  # joins, and the leaves between them
        + s.settle + s.cpu_seconds + s.idle_seconds
        + trials * (detect + 2) + trials * 2.5  # kill -9, leave
        + 1
    )  # fmt: skip


def estimate_seconds(
    systems: Sequence[str], sizes: Sequence[int], losses: Sequence[float], s: Settings
) -> float:
    return len(losses) * sum(cluster_seconds(x, n, s) for x in systems for n in sizes)


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
        return f"Serf {out.stdout.splitlines()[0]}" if out.stdout else "Serf ?"
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
    return _fmt(median(values)) + (f" ({missed} timed out)" if missed else "")


def summary_rows(results: Sequence[RunResult]) -> list[list[str]]:
    """One row per result, the columns of ``HEADERS``."""
    rows = []
    for r in results:
        fp = f"{r.fp_failure_events if r.fp_failure_events is not None else '?'}"
        fp += f" / {r.fp_polled_failed}"
        rows.append(
            [
                str(r.nodes),
                _fmt(r.join_s),
                _fmt(r.join_from_boot_s),
                _fmt(median([t.first_suspect_s for t in r.kill])),
                _fmt_trials([t.first_s for t in r.kill]),
                _fmt_trials([t.all_s for t in r.kill]),
                _fmt_trials([t.all_s for t in r.leave]),
                _fmt(mean(r.cpu_pct)),
                _fmt(mean(r.rss_mb), 1),
                _fmt(mean(r.udp_pkts_per_s)),
                _fmt(mean(r.udp_ip_bytes_per_s), 0),
                fp,
            ]
        )
    return rows


HEADERS = [
    "N",
    "join conv. (s)",
    "join after boot (s)",
    "kill -9 suspect (s)",
    "kill -9 first (s)",
    "kill -9 all (s)",
    "leave all (s)",
    "idle CPU %/node",
    "RSS MB/node",
    "UDP pkt/s/node",
    "UDP B/s/node (IP)",
    "false pos. (events / polled)",
]


def loss_cell(r: RunResult) -> str:
    """Loss in %, as set / as the nftables counters measured it (``-``: host lo)."""
    measured = "-" if r.loss_measured is None else f"{100 * r.loss_measured:.2f}"
    return f"{100 * r.loss:g} / {measured}"


def results_table(results: Sequence[RunResult], systems: Sequence[str]) -> str:
    """One table, rows grouped by N, then loss, then system in ``systems`` order."""
    ordered = sorted(results, key=lambda r: (r.nodes, r.loss, systems.index(r.system)))
    rows = [
        [row[0], loss_cell(r), r.system, *row[1:]]
        for r, row in zip(ordered, summary_rows(ordered), strict=True)
    ]
    return table([HEADERS[0], "loss % (set / measured)", "system", *HEADERS[1:]], rows)


# -------------------------------------------------------------------------------------------------


def add_cluster_arguments(ap: argparse.ArgumentParser, nodes: str) -> None:
    """The options every cluster run takes (this script's and ``encrypt_pair``'s)."""
    ap.add_argument("--nodes", default=nodes, help="comma-separated cluster sizes")
    ap.add_argument("--quick", action="store_true", help="smoke preset: short windows, 1 trial")
    full = Settings()
    for name in ("poll", "settle", "cpu_seconds", "udp_seconds", "idle_seconds", "fp_poll"):
        ap.add_argument(
            "--" + name.replace("_", "-"),
            type=float,
            help=f"default {getattr(full, name)}, --quick {getattr(QUICK, name)}",
        )
    ap.add_argument("--trials", type=int, help="join, kill and leave trials (default 3)")
    ap.add_argument("--detect-timeout", type=float, help="kill/leave timeout, + N/5 s")
    ap.add_argument("--start-batch", type=int, help="nodes spawned before waiting (default 10)")
    ap.add_argument("--keep-workdir", action="store_true", help="keep node logs and pcaps")


def cluster_settings(
    ap: argparse.ArgumentParser, args: argparse.Namespace, encrypt: bool = False
) -> tuple[Settings, list[int]]:
    """The preset (full or ``--quick``) with the options given on top, and the sizes."""
    preset = QUICK if args.quick else Settings()
    given = {
        f.name: getattr(args, f.name)
        for f in fields(Settings)
        if getattr(args, f.name, None) is not None
    }
    s = Settings(**{**asdict(preset), **given, "encrypt": encrypt})
    s.udp_seconds = min(s.udp_seconds, s.cpu_seconds)
    sizes = [int(x) for x in args.nodes.split(",") if x.strip()]
    if any(n < 4 for n in sizes):
        ap.error("every cluster size must be at least 4")
    if s.trials < 1 or s.start_batch < 1:
        ap.error("--trials and --start-batch must be at least 1")
    return s, sizes


def exit_on_signals() -> None:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so every started node is stopped."""

    def on_term(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)


def raise_fd_limit() -> None:
    """Open files up to the hard limit: 100 nodes take a few hundred pipes and sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def run_one(
    system: str, n: int, loss: float, s: Settings, key: str | None, workdir: Path, use_ns: bool
) -> RunResult:
    """One cluster of ``system``, in a fresh namespace with ``loss`` if ``use_ns``."""
    with contextlib.ExitStack() as stack:
        ns = stack.enter_context(netns.Netns(loss)) if use_ns else None
        where = f"netns {ns.name}, loss {100 * loss:g} %" if ns else "host lo"
        try:
            base = find_base_port(n + s.trials, offsets=PORT_OFFSETS)
            driver = SYSTEMS[system](workdir, base, key)
            stack.callback(driver.close)
            log(f"{system} N={n}: {where}, ports {base}.., workdir {workdir}")
            res = run_cluster(driver, n, s, workdir)
        except RuntimeError as exc:
            log(f"{system} N={n} failed: {exc}")
            res = RunResult(nodes=n, system=system, notes=[f"failed: {exc}"])
        res.loss = loss
        if ns is not None:
            counts = ns.counters()
            res.netns, res.loss_measured = ns.name, counts.fraction
            res.udp_in_passed, res.udp_in_dropped = counts.passed, counts.dropped
            log(f"{system} N={n}: UDP in {counts.passed} passed, {counts.dropped} dropped")
    return res


def _floats(ap: argparse.ArgumentParser, text: str) -> list[float]:
    try:
        losses = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        ap.error(f"--loss takes fractions like 0,0.01,0.05, not {text!r}")
    if not losses or any(not 0 <= x < 1 for x in losses):
        ap.error("--loss takes fractions in [0, 1), e.g. 0,0.01,0.05")
    return losses


def _default_out(systems: Sequence[str], losses: Sequence[float], quick: bool) -> Path:
    parts = ["peers"]
    parts += [] if list(systems) == list(SYSTEMS) else list(systems)
    parts += ["loss"] if any(losses) else []
    parts += ["quick"] if quick else []
    return RESULTS / ("-".join(parts) + ".json")


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0915 - a flat CLI script
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--system", default=",".join(SYSTEMS), help="comma-separated, run in turn")
    add_cluster_arguments(ap, "5,10,20,40,100")
    ap.add_argument("--loss", default="0", help="UDP loss fractions, e.g. 0,0.01,0.05")
    ap.add_argument("--no-netns", action="store_true", help="run on the host's lo (loss 0)")
    ap.add_argument("--encrypt", action="store_true", help="give every node the same 32-byte key")
    ap.add_argument("--out", type=Path, help="JSON output (default bench/results/peers*.json)")
    args = ap.parse_args(argv)
    systems = [x.strip() for x in args.system.split(",") if x.strip()]
    if not systems or any(x not in SYSTEMS for x in systems):
        ap.error(f"--system takes a comma-separated list of {', '.join(SYSTEMS)}")
    losses = _floats(ap, args.loss)
    s, sizes = cluster_settings(ap, args, args.encrypt)
    use_ns = not args.no_netns
    if use_ns:
        reason = netns.unavailable_reason()
        if reason is not None and any(losses):
            ap.exit(2, f"--loss needs a network namespace per cluster: {reason}\n")
        if reason is not None:
            log(f"no network namespace ({reason}): clusters run on the host's lo")
            use_ns = False
        for name in netns.sweep_stale():
            log(f"deleted namespace {name} left by a dead harness")
    elif any(losses):
        ap.error("--loss other than 0 needs the namespaces --no-netns turns off")
    key = base64.b64encode(secrets.token_bytes(32)).decode() if s.encrypt else None
    raise_fd_limit()
    exit_on_signals()

    combos = [(n, loss) for n in sizes for loss in losses]
    estimate = estimate_seconds(systems, sizes, losses, s)
    log(
        f"{len(combos) * len(systems)} clusters ({', '.join(systems)} x N {args.nodes}"
        f" x loss {args.loss}): estimated {estimate / 60:.0f} min"
    )
    out: dict[str, Any] = {
        "systems": systems,
        "versions": {x: system_version(x) for x in systems},
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "argv": list(argv if argv is not None else sys.argv[1:]),
        "host": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "loadavg_at_start": os.getloadavg(),
        },
        "settings": asdict(s),
        "estimated_s": estimate,
        "runs": [],
    }
    if "kinship" in systems:
        out["python_baseline_rss_mb"] = {
            "bare": python_baseline_rss(sys.executable, "sys"),
            "import kinship": python_baseline_rss(sys.executable, "sys, kinship"),
        }
    path = args.out or _default_out(systems, losses, args.quick)
    results: list[RunResult] = []
    t0 = time.monotonic()
    top = Path(tempfile.mkdtemp(prefix="peers-"))
    try:
        for k, (n, loss) in enumerate(combos):
            for system in run_order(systems, k):
                workdir = top / f"n{n}-loss{loss:g}-{system}"
                results.append(run_one(system, n, loss, s, key, workdir, use_ns))
                out["runs"] = [asdict(r) for r in results]
                out["host"]["loadavg_at_end"] = os.getloadavg()
                out["elapsed_s"] = time.monotonic() - t0
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(out, indent=2) + "\n")
    finally:
        if args.keep_workdir:
            log(f"logs kept in {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)
    log(f"done in {(time.monotonic() - t0) / 60:.1f} min (estimated {estimate / 60:.0f}); {path}")
    versions = ", ".join(out["versions"].values())
    print(f"\n### {versions}; lan timing{', encrypted' if s.encrypt else ''}\n")
    print(results_table(results, systems))
    for r in results:
        for note in r.notes:
            print(f"\n- {r.system} N={r.nodes} loss {100 * r.loss:g} %: {note}")
    if "python_baseline_rss_mb" in out:
        rss = out["python_baseline_rss_mb"]
        print(
            f"\nIdle interpreter RSS: bare {_fmt(rss['bare'], 1)} MB,"
            f" with kinship imported {_fmt(rss['import kinship'], 1)} MB"
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
