"""One kinship node for the peers benchmark, run as its own interpreter by ``KinshipDriver``.

    python kinship_node.py --name N --bind 127.0.0.1:P [--seeds 127.0.0.1:S,...] [--key B64]

It starts a ``kinship.blocking.Cluster`` with ``Config.lan()`` on a thread and then answers
one-line requests on stdin with one JSON line on stdout, so it costs nothing while nobody
asks:

- ``v ID`` -> ``{"id": ID, "view": {name: state} | null, "dead": n, "suspect": n,
  "boot_at": t}``: the
  view holds every member this node has ever listed, tombstones included (``members()`` drops
  dead and left ones, ``member(name)`` still has them); ``dead``/``suspect`` count
  ``MemberDead``/``MemberSuspect`` events seen since start; ``boot_at`` is ``time.monotonic()``
  just before ``Cluster.start()``, after the interpreter started and imported kinship.
- ``leave ID`` -> ``cluster.leave()``, ``close()``, ``{"id": ID, "left": true}``, exit.

It imports nothing from this repository, so it runs from any working directory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

import kinship
from kinship.blocking import Cluster

_STATE = {
    kinship.State.ALIVE: "alive",
    kinship.State.SUSPECT: "suspect",
    kinship.State.DEAD: "failed",
    kinship.State.LEFT: "left",
}


class Node:
    def __init__(self, cfg: kinship.Config) -> None:
        self.cfg = cfg
        self.cluster: Cluster | None = None
        self.error: str | None = None
        self.known: set[str] = set()
        self.dead = 0
        self.suspect = 0
        self.lock = threading.Lock()
        self.boot_at: float | None = None

    def boot(self) -> None:
        self.boot_at = time.monotonic()  # CLOCK_MONOTONIC: comparable across processes
        try:
            cluster = Cluster(self.cfg).start(timeout=30)
        except Exception as exc:  # noqa: BLE001 - reported to the harness, not raised
            self.error = repr(exc)
            return
        threading.Thread(target=self.count, args=(cluster,), daemon=True).start()
        self.cluster = cluster

    def count(self, cluster: Cluster) -> None:
        for event in cluster.events():
            with self.lock:
                if isinstance(event, kinship.MemberDead):
                    self.dead += 1
                elif isinstance(event, kinship.MemberSuspect):
                    self.suspect += 1

    def view(self) -> dict[str, str] | None:
        cluster = self.cluster
        if cluster is None:
            return None
        self.known.update(m.name for m in cluster.members())
        out: dict[str, str] = {}
        for name in self.known:
            member = cluster.member(name)
            if member is not None:
                out[name] = _STATE[member.state]
        return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--bind", required=True)
    parser.add_argument("--seeds", default="")
    parser.add_argument("--key", default="")
    args = parser.parse_args()
    fields: dict[str, object] = {"name": args.name, "bind": args.bind}
    fields["seeds"] = [s for s in args.seeds.split(",") if s]
    if args.key:
        fields["keys"] = [args.key]
    else:
        fields["insecure_plaintext"] = True
    node = Node(kinship.Config.lan(**fields))
    threading.Thread(target=node.boot, daemon=True).start()

    def reply(obj: dict[str, object]) -> None:
        sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    for line in sys.stdin:
        parts = line.split()
        if len(parts) != 2:
            continue
        cmd, rid = parts
        if cmd == "v":
            with node.lock:
                dead, suspect = node.dead, node.suspect
            reply(
                {
                    "id": rid,
                    "view": node.view(),
                    "dead": dead,
                    "suspect": suspect,
                    "boot_at": node.boot_at,
                    "error": node.error,
                }
            )
        elif cmd == "leave" and node.cluster is not None:
            node.cluster.leave(timeout=5.0)
            node.cluster.close(timeout=1.0)
            reply({"id": rid, "left": True})
            break
    os._exit(0)


if __name__ == "__main__":
    main()
