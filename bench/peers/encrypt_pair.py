"""Plaintext against encrypted gossip for one system, interleaved in one run.

    python -m bench.peers.encrypt_pair --system caxton --nodes 5,10
    python -m bench.peers.encrypt_pair --system serf --nodes 5,10 --rounds 2

For each N and each round it runs two fresh clusters back to back through
``bench.peers.run.run_cluster`` (the same phases, settings and measurements as
``bench.peers.run``): one in plaintext and one whose nodes all get one fresh random 32-byte key
(caxton ``--gossip-keys``, Serf ``-encrypt``, kinship ``keys=[...]``). The order alternates
(plaintext first for the first N in round 0, encrypted first for the next, and so on), so
a slow drift of the shared machine's load does not land on one side only. Rounds pool: idle
figures are means over every node of every round, kill -9 and leave figures medians over
every trial.

Prints the summary table of ``bench.peers.run`` with a mode column, then the ratios
encrypted / plaintext; writes every raw number to
``bench/results/encrypt-pair-<system>.json`` (``--out`` to change).
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
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bench.common import table
from bench.peers.measure import find_base_port
from bench.peers.run import (
    HEADERS,
    PORT_OFFSETS,
    RESULTS,
    SYSTEMS,
    add_cluster_arguments,
    cluster_settings,
    exit_on_signals,
    summary_rows,
    system_version,
)
from bench.peers.scenario import RunResult, log, run_cluster

MODES = ("plaintext", "encrypted")


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _median(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def pool(n: int, runs: Sequence[RunResult]) -> RunResult:
    """One result from several clusters of the same N: every node and every trial."""
    out = RunResult(nodes=n)
    for r in runs:
        out.join += r.join
        out.cpu_pct += r.cpu_pct
        out.cpu_pct_ticks += r.cpu_pct_ticks
        out.rss_mb += r.rss_mb
        out.udp_pkts_per_s += r.udp_pkts_per_s
        out.udp_ip_bytes_per_s += r.udp_ip_bytes_per_s
        out.udp_payload_bytes_per_s += r.udp_payload_bytes_per_s
        out.udp_unattributed_packets += r.udp_unattributed_packets
        out.fp_polled_failed += r.fp_polled_failed
        out.fp_polled_suspect += r.fp_polled_suspect
        out.kill += r.kill
        out.leave += r.leave
        out.notes += r.notes
    events = [r.fp_failure_events for r in runs]
    out.fp_failure_events = None if None in events else sum(e or 0 for e in events)
    out.join_s = _median([t.all_s for t in out.join])
    out.join_from_boot_s = _median([t.from_boot_s for t in out.join])
    return out


def _ratio(enc: float | None, plain: float | None) -> str:
    if enc is None or plain is None or plain == 0:
        return "n/a"
    return f"{enc / plain:.2f}"


def _per_datagram(r: RunResult) -> float | None:
    pkts, payload = _mean(r.udp_pkts_per_s), _mean(r.udp_payload_bytes_per_s)
    return None if not pkts or payload is None else payload / pkts


def ratio_row(n: int, plain: RunResult, enc: RunResult) -> list[str]:
    per_plain, per_enc = _per_datagram(plain), _per_datagram(enc)
    delta = "n/a" if per_plain is None or per_enc is None else f"{per_enc - per_plain:+.1f}"
    return [
        str(n),
        _ratio(_mean(enc.cpu_pct), _mean(plain.cpu_pct)),
        _ratio(_mean(enc.udp_ip_bytes_per_s), _mean(plain.udp_ip_bytes_per_s)),
        _ratio(_mean(enc.udp_pkts_per_s), _mean(plain.udp_pkts_per_s)),
        "n/a" if per_plain is None else f"{per_plain:.1f}",
        "n/a" if per_enc is None else f"{per_enc:.1f}",
        delta,
        _ratio(_median([t.first_s for t in enc.kill]), _median([t.first_s for t in plain.kill])),
        _ratio(_median([t.all_s for t in enc.kill]), _median([t.all_s for t in plain.kill])),
    ]


RATIO_HEADERS = [
    "N",
    "CPU enc/plain",
    "UDP B/s enc/plain",
    "UDP pkt/s enc/plain",
    "payload B/datagram plain",
    "payload B/datagram enc",
    "Δ B/datagram",
    "kill -9 first enc/plain",
    "kill -9 all enc/plain",
]


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0915 - a flat CLI script
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--system", choices=sorted(SYSTEMS), required=True)
    add_cluster_arguments(ap, "5,10")
    ap.add_argument("--rounds", type=int, default=1, help="plaintext+encrypted pairs per N")
    ap.add_argument("--out", type=Path, help="default bench/results/encrypt-pair-SYSTEM.json")
    args = ap.parse_args(argv)
    s, sizes = cluster_settings(ap, args)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    exit_on_signals()

    out: dict[str, Any] = {
        "system": args.system,
        "version": system_version(args.system),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "argv": list(argv if argv is not None else sys.argv[1:]),
        "host": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "loadavg_at_start": os.getloadavg(),
        },
        "settings": asdict(s),
        "runs": [],
    }
    path = args.out or RESULTS / f"encrypt-pair-{args.system}.json"
    results: dict[tuple[int, str], list[RunResult]] = {}
    top = Path(tempfile.mkdtemp(prefix=f"encpair-{args.system}-"))
    try:
        for k, n in enumerate(sizes):
            for rnd in range(args.rounds):
                order = MODES if (k + rnd) % 2 == 0 else MODES[::-1]
                for mode in order:
                    workdir = top / f"n{n}-r{rnd}-{mode}"
                    key = None
                    if mode == "encrypted":
                        key = base64.b64encode(secrets.token_bytes(32)).decode()
                    base = find_base_port(n + s.trials, offsets=PORT_OFFSETS)
                    driver = SYSTEMS[args.system](workdir, base, key)
                    log(f"{args.system} N={n} round {rnd} {mode}: ports {base}.., {workdir}")
                    try:
                        res = run_cluster(driver, n, replace(s, encrypt=key is not None), workdir)
                    except RuntimeError as exc:
                        log(f"N={n} {mode} failed: {exc}")
                        res = RunResult(nodes=n, notes=[f"failed: {exc}"])
                    finally:
                        driver.close()
                    results.setdefault((n, mode), []).append(res)
                    out["runs"].append({"round": rnd, "mode": mode, **asdict(res)})
                    out["host"]["loadavg_at_end"] = os.getloadavg()
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(json.dumps(out, indent=2) + "\n")
    finally:
        if args.keep_workdir:
            log(f"logs kept in {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)

    rows, ratios = [], []
    for n in sizes:
        pooled = {mode: pool(n, results.get((n, mode), [])) for mode in MODES}
        for mode in MODES:
            row = summary_rows([pooled[mode]])[0]
            rows.append([row[0], mode, *row[1:]])
        ratios.append(ratio_row(n, pooled["plaintext"], pooled["encrypted"]))
    rounds = f"{args.rounds} round(s)"
    print(f"\n### {out['version']} ({args.system}), lan timing, plaintext vs encrypted, {rounds}\n")
    print(table([HEADERS[0], "mode", *HEADERS[1:]], rows))
    print("\nEncrypted / plaintext:\n")
    print(table(RATIO_HEADERS, ratios))
    print("\nkill -9 trials (first / all, s):\n")
    trial_rows = []
    for n in sizes:
        for mode in MODES:
            trials = [t for r in results.get((n, mode), []) for t in r.kill]
            cells = ", ".join(
                f"{'n/a' if t.first_s is None else f'{t.first_s:.2f}'}"
                f" / {'n/a' if t.all_s is None else f'{t.all_s:.2f}'}"
                for t in trials
            )
            trial_rows.append([str(n), mode, cells])
    print(table(["N", "mode", "trials"], trial_rows))
    for (n, mode), runs in results.items():
        for r in runs:
            for note in r.notes:
                print(f"\n- N={n} {mode}: {note}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
