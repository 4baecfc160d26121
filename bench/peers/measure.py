"""Measurements that work for any ``Driver``: view polling, /proc CPU and RSS, UDP capture."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.peers.driver import ALIVE, Driver, View, die_with_parent

CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# Ports


def _free(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            if kind == socket.SOCK_STREAM:
                # As Go's and tokio's listeners do, so a TIME_WAIT left on the port is no bar.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def find_base_port(count: int, offsets: Sequence[int] = (0,), start: int = 21000) -> int:
    """A base port ``b`` such that ``b + off + i`` is free (TCP and UDP) for every offset and
    ``i < count``. Searches upwards from ``start`` in steps of 500 below the kernel's ephemeral
    range (32768 up), which other programs' connections fill unpredictably."""
    for base in range(start, 32768 - max(offsets) - count, 500):
        if all(_free(base + off + i) for off in offsets for i in range(count)):
            return base
    raise RuntimeError("no free port range on 127.0.0.1 between 21000 and 32268")


# ---------------------------------------------------------------------------------------------
# Polling views


def now() -> float:
    return time.monotonic()


def wait_for(
    driver: Driver,
    observers: Iterable[int],
    done: Callable[[View], bool],
    timeout: float,
    interval: float = 0.05,
    on_view: Callable[[int, View, float], None] | None = None,
) -> dict[int, float]:
    """Poll the views of ``observers`` every ``interval`` until ``done(view)`` holds for each,
    at most ``timeout`` seconds. Returns, per observer that got there, the monotonic time of
    the reply in which it first did. An observer is not asked again once done, unless
    ``on_view`` wants every view (then all are polled until all are done)."""
    pending = list(observers)
    reached: dict[int, float] = {}
    deadline = now() + timeout
    while pending and now() < deadline:
        sweep_start = now()
        for i in list(pending):
            view = driver.view(i)
            stamp = now()
            if view is None:
                continue
            if on_view is not None:
                on_view(i, view, stamp)
            if done(view):
                reached[i] = stamp
                pending.remove(i)
        time.sleep(max(0.0, interval - (now() - sweep_start)))
    return reached


def all_alive(names: Iterable[str]) -> Callable[[View], bool]:
    wanted = list(names)
    return lambda view: all(view.get(name) == ALIVE for name in wanted)


def marks(name: str, states: Iterable[str]) -> Callable[[View], bool]:
    accepted = set(states)
    return lambda view: view.get(name) in accepted


# ---------------------------------------------------------------------------------------------
# CPU and RSS from /proc


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of ``pid`` in clock ticks, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5), after pid and comm


def cpu_ns(pid: int) -> int | None:
    """On-CPU nanoseconds of ``pid``'s live threads (``/proc/PID/task/*/schedstat``), far finer
    than clock ticks; a thread that exits takes its time with it. None if the pid is gone."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return None
    total = 0
    for task in tasks:
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((task / "schedstat").read_text().split()[0])
    return total


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class ResourceSample:
    cpu_pct: list[float] = field(default_factory=list)
    """Per node: CPU time over the window / wall time, in % of one core (from schedstat)."""
    cpu_pct_ticks: list[float] = field(default_factory=list)
    """The same from utime+stime in /proc/PID/stat, at clock-tick (10 ms) resolution."""
    rss_mb: list[float] = field(default_factory=list)
    """Per node: VmRSS at the end of the window."""


class CpuWindow:
    """CPU time of each node's pids between ``begin()`` and ``end()``."""

    def __init__(self, driver: Driver, nodes: Sequence[int]) -> None:
        self.driver = driver
        self.nodes = list(nodes)
        self.t0 = 0.0
        self.ticks0: dict[int, int] = {}
        self.ns0: dict[int, int] = {}

    def _ticks(self, i: int) -> int:
        return sum(cpu_ticks(pid) or 0 for pid in self.driver.pids(i))

    def _ns(self, i: int) -> int:
        return sum(cpu_ns(pid) or 0 for pid in self.driver.pids(i))

    def begin(self) -> None:
        self.t0 = now()
        self.ticks0 = {i: self._ticks(i) for i in self.nodes}
        self.ns0 = {i: self._ns(i) for i in self.nodes}

    def end(self) -> ResourceSample:
        wall = now() - self.t0
        out = ResourceSample()
        for i in self.nodes:
            used = (self._ticks(i) - self.ticks0[i]) / CLK_TCK
            out.cpu_pct_ticks.append(100 * used / wall)
            out.cpu_pct.append(100 * (self._ns(i) - self.ns0[i]) / 1e9 / wall)
            out.rss_mb.append(sum(rss_mb(p) or 0.0 for p in self.driver.pids(i)))
        return out


# ---------------------------------------------------------------------------------------------
# UDP packets per node: tcpdump on lo, then a small pcap reader


@dataclass
class UdpCount:
    seconds: float
    packets: dict[int, int]
    """Per source port: datagrams sent."""
    ip_bytes: dict[int, int]
    """Per source port: IP bytes sent (UDP payload + 8 UDP + 20 IPv4 header)."""
    payload_bytes: dict[int, int]
    other_packets: int
    """Captured datagrams whose source port is no node's gossip port."""


def port_filter(ports: Iterable[int]) -> str:
    """A pcap filter matching ``ports``, runs of consecutive ports as one ``portrange`` (a
    filter of 100 single ports would be a long BPF program)."""
    runs: list[list[int]] = []
    for port in sorted(set(ports)):
        if runs and port == runs[-1][1] + 1:
            runs[-1][1] = port
        else:
            runs.append([port, port])
    return " or ".join(f"port {a}" if a == b else f"portrange {a}-{b}" for a, b in runs)


class UdpCapture:
    """``tcpdump -i lo`` filtered to the nodes' UDP ports, written to a pcap file.

    Loopback shows each datagram once, from its sender's port, so counting by source port
    gives what each node sends. Needs tcpdump (``apt-get install tcpdump``) and CAP_NET_RAW.
    """

    def __init__(self, ports: Sequence[int], pcap: Path) -> None:
        self.ports = sorted(ports)
        self.pcap = pcap
        self.proc: subprocess.Popen[bytes] | None = None
        self.t0 = 0.0

    @staticmethod
    def available() -> bool:
        return shutil.which("tcpdump") is not None

    def start(self) -> None:
        argv = ["tcpdump", "-i", "lo", "-n", "-U", "-s", "96", "-w", str(self.pcap)]
        argv += ["-Z", "root", f"udp and ({port_filter(self.ports)})"]
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - the harness is single-threaded
        )
        assert self.proc.stderr is not None
        # tcpdump says "listening on lo" once the filter is attached.
        deadline = now() + 5
        line = b""
        while now() < deadline and b"listening" not in line:
            line = self.proc.stderr.readline()
            if not line:
                break
        self.t0 = now()

    def stop(self) -> UdpCount:
        seconds = now() - self.t0
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
            if self.proc.stderr is not None:
                self.proc.stderr.close()
        return count_pcap(self.pcap, set(self.ports), seconds)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


_LINK_HEADER = {0: 4, 1: 14, 12: 0, 101: 0, 113: 16, 276: 20}


def count_pcap(path: Path, ports: set[int], seconds: float) -> UdpCount:
    """Datagrams and bytes per source UDP port in a classic pcap file (IPv4 only)."""
    data = path.read_bytes() if path.exists() else b""
    count = UdpCount(seconds, {}, {}, {}, 0)
    if len(data) < 24:
        return count
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0] & 0xFFFF
    skip = _LINK_HEADER.get(linktype)
    if skip is None:
        raise ValueError(f"unsupported pcap link type {linktype}")
    pos = 24
    while pos + 16 <= len(data):
        incl, _orig = struct.unpack(endian + "II", data[pos + 8 : pos + 16])
        frame = data[pos + 16 : pos + 16 + incl]
        pos += 16 + incl
        ip = frame[skip:]
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        sport, _dport, ulen = struct.unpack(">HHH", ip[ihl : ihl + 6])
        if sport not in ports:
            count.other_packets += 1
            continue
        count.packets[sport] = count.packets.get(sport, 0) + 1
        count.ip_bytes[sport] = count.ip_bytes.get(sport, 0) + total
        count.payload_bytes[sport] = count.payload_bytes.get(sport, 0) + ulen - 8
    return count
