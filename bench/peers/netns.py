"""A fresh network namespace per cluster, with random UDP loss from an nftables rule.

``with Netns(name, loss):`` creates ``ip netns add NAME``, brings its ``lo`` up, loads
``ruleset(loss)`` and moves the calling thread into it (``setns(2)``). Every process the
harness spawns inside the block (nodes, tcpdump) starts in the namespace, and every socket it
opens (view polling over TCP) connects to the namespace's 127.0.0.1. On exit the thread goes
back to the host namespace and the namespace is deleted; kill the nodes before leaving.

The input hook drops that fraction of UDP datagrams at random (``numgen random mod 10000``),
so each datagram is lost independently with probability ``loss``; TCP (the harness's own
HTTP/RPC polling, memberlist's push-pull and fallback pings) is untouched. Two counters, one
on the drop rule and one on the UDP that passes, measure the loss actually applied.

Namespaces are named ``peers<pid>x<k>``; ``sweep_stale`` deletes those of dead harnesses.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from types import TracebackType

CLONE_NEWNET = 0x40000000
TABLE = "peers_loss"
SCALE = 10000
"""Loss resolution: ``numgen random mod SCALE < round(loss * SCALE)``."""
PREFIX = "peers"

_libc = ctypes.CDLL(None, use_errno=True)


def _run(*argv: str, stdin: str | None = None) -> str:
    out = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {out.stderr.strip() or out.returncode}")
    return out.stdout


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def ruleset(loss: float) -> str:
    """The nftables script for one namespace: count all UDP in, drop ``loss`` of it."""
    threshold = round(loss * SCALE)
    drop = (
        f"    meta l4proto udp numgen random mod {SCALE} < {threshold}"
        ' counter drop comment "dropped"\n'
        if threshold
        else ""
    )
    return (
        f"table inet {TABLE} {{\n  chain input {{\n"
        "    type filter hook input priority 0; policy accept;\n"
        f'{drop}    meta l4proto udp counter comment "passed"\n  }}\n}}\n'
    )


@dataclass
class LossCounters:
    passed: int
    dropped: int

    @property
    def fraction(self) -> float | None:
        total = self.passed + self.dropped
        return self.dropped / total if total else None


def parse_counters(nft_json: str) -> LossCounters:
    """The packet counters of the ``passed`` and ``dropped`` rules in ``nft -j list table``."""
    counts = {"passed": 0, "dropped": 0}
    for item in json.loads(nft_json).get("nftables", []):
        rule = item.get("rule")
        if not rule or rule.get("comment") not in counts:
            continue
        for expr in rule.get("expr", []):
            if "counter" in expr:
                counts[rule["comment"]] = int(expr["counter"]["packets"])
    return LossCounters(**counts)


def unavailable_reason() -> str | None:
    """Why namespaces with loss cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces and nftables need root"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"{tool} not found: apt-get install -y {package}"
    probe = f"{PREFIX}{os.getpid()}probe"
    try:
        _run("ip", "netns", "add", probe)
        _run("ip", "netns", "exec", probe, "nft", "-f", "-", stdin=ruleset(0.01))
    except (OSError, RuntimeError) as exc:
        return f"cannot make a network namespace with an nftables rule: {exc}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


def sweep_stale() -> list[str]:
    """Delete the namespaces left by harnesses that died (their pid is gone)."""
    if shutil.which("ip") is None:
        return []
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    gone = []
    for line in listed.stdout.splitlines():
        match = re.fullmatch(rf"({PREFIX}(\d+)x\d+)\b.*", line.strip())
        if match and not os.path.exists(f"/proc/{match.group(2)}"):
            subprocess.run(["ip", "netns", "del", match.group(1)], capture_output=True, check=False)
            gone.append(match.group(1))
    return gone


class Netns:
    """A fresh namespace with ``loss`` UDP loss; the calling thread is in it inside ``with``."""

    _count = 0

    def __init__(self, loss: float) -> None:
        Netns._count += 1
        self.name = f"{PREFIX}{os.getpid()}x{Netns._count}"
        self.loss = loss
        self._host: int | None = None

    def __enter__(self) -> Netns:
        _run("ip", "netns", "add", self.name)
        try:
            self._host = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
            target = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
            try:
                _setns(target)
            finally:
                os.close(target)
            _run("ip", "link", "set", "lo", "up")
            _run("nft", "-f", "-", stdin=ruleset(self.loss))
        except BaseException:
            self.close()
            raise
        return self

    def counters(self) -> LossCounters:
        """UDP datagrams that reached the input hook so far: passed and dropped."""
        return parse_counters(_run("nft", "-j", "list", "table", "inet", TABLE))

    def close(self) -> None:
        """Back to the host namespace, then delete this one. Safe to call twice."""
        if self._host is not None:
            _setns(self._host)
            os.close(self._host)
            self._host = None
        with contextlib.suppress(OSError):
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
