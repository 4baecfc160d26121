"""Where a node's resident memory goes: by library imported, and for an idle node.

Each step is a fresh interpreter that imports one more library than the step before
(``VmRSS`` after the import, and what that library adds alone on a bare interpreter),
then Python's own allocations after ``import caxton_actors.node`` grouped by the
package whose code allocated them (``tracemalloc``), then one real idle node's RSS
split into anonymous and file-backed pages (``/proc/<pid>/smaps_rollup``).

    python -m bench.memory
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import free_port, health_answers, table

STEPS = (
    ("CPython", "pass"),
    ("gevent, pykka", "import gevent, pykka"),
    ("ujson, statsd", "import ujson, statsd"),
    ("ssl", "import ssl"),
    ("Falcon", "import falcon"),
    ("SQLAlchemy", "import sqlalchemy"),
    ("caxton_actors (the rest)", "import caxton_actors.node"),
)
RSS = "print(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])"
BY_PACKAGE = """
import collections, sys, tracemalloc
tracemalloc.start(64)
import caxton_actors.node
sizes = collections.Counter()
for stat in tracemalloc.take_snapshot().statistics("traceback"):
    # The innermost frame that is not the import machinery's: the module importing.
    frames = [f.filename for f in stat.traceback if not f.filename.startswith("<")]
    path = frames[-1] if frames else "<import machinery>"
    if "site-packages/" in path:
        name = path.split("site-packages/")[1].split("/")[0].split(".")[0]
    elif "/caxton_actors/" in path:
        name = "caxton_actors"
    else:
        name = "standard library"
    sizes[name] += stat.size
for name, size in sizes.most_common(8):
    print(name, size)
"""
IDLE_SECONDS = 10.0


def rss_kb(code: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\n{RSS}"], capture_output=True, text=True, check=True
    )
    return int(out.stdout.split()[-1])


def idle_node(workdir: str) -> dict[str, int]:
    """``smaps_rollup`` of a lone node with gossip on loopback, ``IDLE_SECONDS`` after /health."""
    port = free_port()
    command = [
        sys.executable, "-m", "caxton_actors", "run",
        "--node-name", "memory",
        "--sqlite-path", os.path.join(workdir, "memory.db"),
        "--http-bind", f"127.0.0.1:{port}",
        "--gossip-enabled", "true",
        "--gossip-bind", f"127.0.0.1:{free_port()}",
    ]  # fmt: skip
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not health_answers(port):
            if child.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the node did not answer /health: {command}")
            time.sleep(0.05)
        time.sleep(IDLE_SECONDS)
        rollup = Path(f"/proc/{child.pid}/smaps_rollup").read_text().splitlines()[1:]
        return {line.split(":")[0]: int(line.split()[1]) for line in rollup}
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=30)


def mb(kb: float) -> str:
    return f"{kb / 1024:.1f}"


def main() -> None:
    bare = rss_kb("pass")
    rows = []
    code = "pass"
    before = 0
    for name, imports in STEPS:
        code = f"{code}\n{imports}"
        total = rss_kb(code)
        alone = rss_kb(imports) - bare if imports != "pass" else bare
        rows.append((name, mb(total), mb(total - before), mb(alone)))
        before = total
    print(table(("imported", "RSS MB", "+ step MB", "alone MB"), rows))
    out = subprocess.run(
        [sys.executable, "-c", BY_PACKAGE], capture_output=True, text=True, check=True
    )
    sizes = [line.rsplit(" ", 1) for line in out.stdout.splitlines()]
    print()
    print(table(("allocated by", "Python heap MB"), [(n, mb(int(s) / 1024)) for n, s in sizes]))
    with tempfile.TemporaryDirectory() as workdir:
        smaps = idle_node(workdir)
    print()
    print(
        table(
            ("idle node", "RSS MB", "anonymous MB", "file-backed MB"),
            [
                (
                    f"lone, gossip on, {IDLE_SECONDS:.0f} s after /health",
                    mb(smaps["Rss"]),
                    mb(smaps["Anonymous"]),
                    mb(smaps["Rss"] - smaps["Anonymous"]),
                )
            ],
        )
    )


if __name__ == "__main__":
    main()
