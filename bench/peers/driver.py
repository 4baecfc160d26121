"""The ``Driver`` protocol every benchmarked membership system implements, and a base class.

A driver runs node ``i`` (0-based) of one cluster as its own OS process group on 127.0.0.1 and
answers for it: its member view, its pids, and the faults the scenarios inject. Views are
normalised to the states in ``STATES`` so scenarios compare systems without knowing them.

A new system subclasses ``ProcessDriver`` and writes ``start``, ``view`` and ``leave`` (and,
optionally, ``failure_events``); killing, pausing, pids and cleanup come from the base class.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Final, Protocol, runtime_checkable

ALIVE: Final = "alive"
SUSPECT: Final = "suspect"
FAILED: Final = "failed"
LEAVING: Final = "leaving"
LEFT: Final = "left"
STATES: Final = (ALIVE, SUSPECT, FAILED, LEAVING, LEFT)

View = dict[str, str]
"""A node's member view: member name -> one of ``STATES``, the node itself included."""

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the harness dies, so no node outlives a
    harness killed with -9 (the ``finally`` cleanup covers every other way out)."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@runtime_checkable
class Driver(Protocol):
    """One membership system under test: N nodes on 127.0.0.1, each its own process group."""

    system: str

    def node_name(self, i: int) -> str:
        """The member name node ``i`` has in every view."""
        ...

    def gossip_port(self, i: int) -> int:
        """The UDP port node ``i`` gossips from; packet counts are keyed on it."""
        ...

    def start(self, i: int, seeds: Sequence[int]) -> None:
        """Spawn node ``i`` joining the nodes ``seeds`` (empty: it starts the cluster). Returns
        as soon as the process is spawned; ``view(i)`` is ``None`` until it answers."""
        ...

    def view(self, i: int) -> View | None:
        """Node ``i``'s member view right now, or ``None`` if it does not answer (yet)."""
        ...

    def failure_events(self, i: int) -> int | None:
        """How many times node ``i`` has declared some member failed/dead since it started, from
        the system's own event stream, or ``None`` if the driver cannot tell."""
        ...

    def started_at(self, i: int) -> float | None:
        """``time.monotonic()`` (system-wide CLOCK_MONOTONIC) at which node ``i``'s membership
        layer began to start, after process and interpreter startup; ``None`` if unknown."""
        ...

    def kill(self, i: int) -> None:
        """SIGKILL node ``i``'s process group: a crash, no goodbye."""
        ...

    def pause(self, i: int) -> None:
        """SIGSTOP node ``i``'s process group."""
        ...

    def resume(self, i: int) -> None:
        """SIGCONT node ``i``'s process group."""
        ...

    def leave(self, i: int) -> None:
        """Ask node ``i`` to leave gracefully and exit. Returns once asked, not once done."""
        ...

    def pids(self, i: int) -> list[int]:
        """The live pids of node ``i`` whose CPU time and RSS count as the node's."""
        ...

    def close(self) -> None:
        """Kill every node still running and reap it. Safe to call twice."""
        ...


class ProcessDriver:
    """The process handling every driver shares: spawn, signals, pids and cleanup.

    Subclasses set ``system``, implement ``start`` (calling ``_spawn``), ``view`` and ``leave``,
    and may override ``failure_events``, ``started_at``, ``node_name`` and ``gossip_port``.
    """

    system = "process"

    def __init__(self, workdir: Path, base_port: int) -> None:
        self.workdir = workdir
        self.base_port = base_port
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []
        workdir.mkdir(parents=True, exist_ok=True)

    def node_name(self, i: int) -> str:
        return f"{self.system}-{i:02d}"

    def gossip_port(self, i: int) -> int:
        return self.base_port + i

    def _spawn(self, i: int, argv: Sequence[str], *, stdin_pipe: bool = False) -> None:
        """Start ``argv`` as node ``i`` in a new session (so a process group of its own), with
        stdout piped when ``stdin_pipe`` (a request/reply channel) and stderr to a log file."""
        if i in self.procs and self.procs[i].poll() is None:
            raise RuntimeError(f"node {i} is already running")
        log = (self.workdir / f"{self.node_name(i)}.log").open("ab")
        self._logs.append(log)
        self.procs[i] = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdin_pipe else log,
            stderr=log,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - the harness is single-threaded
        )

    def _signal(self, i: int, sig: signal.Signals) -> None:
        proc = self.procs.get(i)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    def kill(self, i: int) -> None:
        self._signal(i, signal.SIGKILL)
        proc = self.procs.get(i)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    def pause(self, i: int) -> None:
        self._signal(i, signal.SIGSTOP)

    def resume(self, i: int) -> None:
        self._signal(i, signal.SIGCONT)

    def failure_events(self, i: int) -> int | None:
        return None

    def started_at(self, i: int) -> float | None:
        return None

    def pids(self, i: int) -> list[int]:
        proc = self.procs.get(i)
        return [] if proc is None or proc.poll() is not None else [proc.pid]

    def running(self, i: int) -> bool:
        proc = self.procs.get(i)
        return proc is not None and proc.poll() is None

    def wait_exit(self, i: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for node ``i`` to exit by itself."""
        proc = self.procs.get(i)
        if proc is None:
            return True
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def close(self) -> None:
        for proc in self.procs.values():
            # Signal the group even if its leader exited: a child may still hold it.
            for sig in (signal.SIGCONT, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, sig)
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        for log in self._logs:
            log.close()
        self._logs.clear()
