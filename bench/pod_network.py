"""Five pods on a bridge (issue 12): a rolling restart and a partition heal, timed.

The pods and the scenarios are the tests' (``tests/netns/pods.py``,
``tests/netns/scenarios.py``): each node in its own network namespace with its own
address, bound to ``0.0.0.0`` with no advertise setting, seeds given as names in
per-namespace hosts files; a restarted pod gets a new namespace and a new address and
keeps its data directory.

- Rolling restart, highest ordinal first: SIGTERM (the node leaves), start the same name
  at a new address, wait until every view is whole before the next, while an agent is
  registered on every running pod every half second. Per restart: how long the old
  process took to exit, and from the new pod's start until it answers ``/health``, until
  every node lists all five alive at their current addresses ("view whole"), and until
  every node routes the restarted node's agents to its new address.
- Partition: two pods cut off from three on the bridge (nftables) until each side lists
  the other dead, and ``--holds`` seconds more (past ``gossip_to_the_dead_time``, the
  heal needs a full-state exchange), three agents registered on every pod meanwhile,
  then healed: from the heal until every view is whole, and until every agent routes
  right everywhere and every registry digest is equal.

Needs root. Run: python -m bench.pod_network [--runs 2] [--profiles local,lan]
[--holds 0,20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from bench.common import table
from tests.netns.pods import PodNetwork, partition_unavailable_reason, unavailable_reason
from tests.netns.scenarios import SIZE, partition_heal, rolling_restart, start_all


def _s(seconds: float) -> str:
    return f"{seconds:.1f} s"


def run_rolling(profile: str, run: int) -> list[list[object]]:
    with tempfile.TemporaryDirectory(prefix="pods-") as workdir:
        network = PodNetwork(Path(workdir), profile)
        try:
            started = start_all(network)
            result = rolling_restart(network)
        finally:
            network.close()
    print(
        f"# {profile} run {run}: parallel start of {SIZE}: all ready {_s(started.ready_s)}, "
        f"every view whole {_s(started.whole_s)}; {len(result.acknowledged)} agents "
        f"acknowledged ({result.refused} writes refused by a stopping pod), all routed "
        f"right {_s(result.final_s)} after the last restart; dead: {len(result.dead)}, "
        f"suspect: {len(result.suspect)}",
        file=sys.stderr,
    )
    for line in result.dead + result.suspect:
        print(f"#   {line}", file=sys.stderr)
    return [
        [
            profile,
            run,
            r.name,
            f"{r.old_ip} → {r.new_ip}",
            _s(r.stop_s),
            _s(r.ready_s),
            _s(r.whole_s),
            _s(r.routes_s),
            _s(r.outage_s),
        ]
        for r in result.restarts
    ]


def run_partition(profile: str, run: int, hold: float) -> list[object]:
    with tempfile.TemporaryDirectory(prefix="pods-") as workdir:
        network = PodNetwork(Path(workdir), profile)
        try:
            start_all(network)
            result = partition_heal(network, hold=hold)
        finally:
            network.close()
    served = sum(result.served.values())
    return [
        profile,
        run,
        _s(hold),
        _s(result.detect_s),
        _s(result.held_s),
        f"{served} of {len(result.served)}",
        _s(result.whole_s),
        _s(result.routes_s),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--profiles", default="local", help="comma-separated: local,lan")
    parser.add_argument(
        "--holds", default="0,20", help="seconds each partition is held past the deaths"
    )
    args = parser.parse_args(argv)
    reason = unavailable_reason() or partition_unavailable_reason()
    if reason is not None:
        print(f"pod network unavailable: {reason}", file=sys.stderr)
        return 2
    profiles = args.profiles.split(",")
    restarts: list[list[object]] = []
    partitions: list[list[object]] = []
    for profile in profiles:
        for run in range(1, args.runs + 1):
            restarts += run_rolling(profile, run)
            partitions += [
                run_partition(profile, run, float(hold)) for hold in args.holds.split(",")
            ]
    print("Rolling restart, per restart (from the new pod's start):\n")
    print(
        table(
            [
                "profile",
                "run",
                "node",
                "address",
                "exit",
                "ready",
                "view whole",
                "routes",
                "SIGTERM to view whole",
            ],
            restarts,
        )
    )
    print("\nRolling restart, over every restart:\n")
    summary = []
    for profile in profiles:
        mine = [r for r in restarts if r[0] == profile]
        for column, label in ((6, "view whole"), (7, "routes"), (8, "SIGTERM to view whole")):
            values = [float(str(r[column]).split()[0]) for r in mine]
            summary.append(
                [
                    profile,
                    label,
                    len(values),
                    _s(statistics.median(values)),
                    _s(max(values)),
                ]
            )
    print(table(["profile", "from the pod's start until", "restarts", "median", "max"], summary))
    print("\nPartition of 2 from 3, then heal:\n")
    print(
        table(
            [
                "profile",
                "run",
                "held past the deaths",
                "each side sees the other dead",
                "partition held",
                "pods serving their side",
                "view whole after heal",
                "registry whole after heal",
            ],
            partitions,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
