"""``caxton-actors agents`` against a real node: filters by card, and ``--watch``."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
from typing import IO, Any

from tests.integration.conftest import NodeProcess
from tests.support.cards import card

SCOPE = "cli-watch"  # the session's node is shared: a scope of this test's own
WAIT = 10.0


def _lines(stream: IO[str]) -> queue.Queue[str]:
    """``stream``'s lines as they come, so that a test can wait for one with a timeout."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _next_event(lines: queue.Queue[str], watch: subprocess.Popen[str]) -> dict[str, Any]:
    try:
        event: dict[str, Any] = json.loads(lines.get(timeout=WAIT))
    except queue.Empty:
        ended = watch.poll()
        why = f"it exited {ended}: {watch.stderr.read() if watch.stderr else ''}" if ended else ""
        raise AssertionError(f"no event from the watch within {WAIT}s; {why}") from None
    return event


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "caxton_actors", "agents", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def test_watch_prints_the_snapshot_then_each_change(api: NodeProcess) -> None:
    http = f"127.0.0.1:{api.port}"
    command = [sys.executable, "-m", "caxton_actors", "agents", "--watch", "--json"]
    watch = subprocess.Popen(
        [*command, "--http", http, "--scope", SCOPE, "--skill", "plan-trip"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watch.stdout is not None
        assert watch.stderr is not None
        lines = _lines(watch.stdout)
        snapshot = _next_event(lines, watch)
        assert snapshot["event"] == "snapshot", snapshot
        assert snapshot["data"]["agents"] == []
        assert snapshot["id"] == snapshot["data"]["version"]

        trip = card("Trip", [("plan-trip", ["travel"])])
        other = card("Other", [("cook", ["food"])])
        assert api.request("PUT", f"/agents/w1?scope={SCOPE}", {"card": trip}).status == 201
        assert api.request("PUT", f"/agents/w2?scope={SCOPE}", {"card": other}).status == 201
        added = _next_event(lines, watch)
        assert (added["event"], added["data"]["id"], added["data"]["scope"]) == (
            "added",
            "w1",
            SCOPE,
        )
        assert added["data"]["skills"] == ["plan-trip"]

        listed = _cli("--http", http, "--scope", SCOPE, "--tag", "travel")
        assert listed.returncode == 0, listed.stderr
        header, *rows = listed.stdout.splitlines()
        assert header.split()[:3] == ["AGENT", "SCOPE", "NODE"]
        assert [row.split()[:2] for row in rows] == [["w1", SCOPE]]

        assert api.request("DELETE", f"/agents/w1?scope={SCOPE}").status == 204
        removed = _next_event(lines, watch)
        assert (removed["event"], removed["data"]["id"]) == ("removed", "w1")
        assert lines.empty()  # w2 has another skill: never seen

        watch.send_signal(signal.SIGINT)  # Ctrl-C
        assert watch.wait(timeout=WAIT) == 0
        assert watch.stderr.readline().startswith("watching agents at")
    finally:
        watch.kill()
        watch.wait()
        api.request("DELETE", f"/agents/w2?scope={SCOPE}")
