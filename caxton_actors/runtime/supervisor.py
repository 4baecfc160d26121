"""One-for-one supervision, after Erlang/OTP's supervisor with its restart intensity.

Each child actor lives in a :class:`Slot`: peers and the HTTP resources hold the slot,
never a ref, so the actor that replaces a crashed one is reached without anyone being
told its new ref. A crash restarts that child alone; more than ``max_restarts``
restarts within ``within`` seconds, of any child, and the supervisor gives up: the node
stops and exits non-zero, so that its own supervisor (systemd, Kubernetes) starts a
fresh process. A crash loop inside one process would only hide a fault that a process
restart may cure (a file, a port, memory).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import gevent
import gevent.queue
import pykka

from caxton_actors import metrics
from caxton_actors.runtime.actor import GeventFuture, watch

log = logging.getLogger(__name__)

# Erlang's intensity and period: a fourth restart within a minute stops the node.
MAX_RESTARTS = 3
WITHIN = 60.0

A = TypeVar("A", bound=pykka.Actor)


class Slot(Generic[A]):
    """One supervised actor under its fixed name: its current ref, or none between a
    crash and the restart (then it is dead to callers, as a stopped actor's ref is)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ref: pykka.ActorRef[A] | None = None

    def is_alive(self) -> bool:
        return self.ref is not None and self.ref.is_alive()

    def tell(self, message: Any) -> None:
        if self.ref is None:
            raise pykka.ActorDeadError(f"the {self.name} actor is not running")
        self.ref.tell(message)

    def ask(self, message: Any, *, block: Literal[False]) -> pykka.Future[Any]:
        if self.ref is not None:
            return self.ref.ask(message, block=block)
        future: GeventFuture[Any] = GeventFuture()
        dead = pykka.ActorDeadError(f"the {self.name} actor is not running")
        future.set_exception((pykka.ActorDeadError, dead, None))
        return future


Start = Callable[[], pykka.ActorRef[Any]]


@dataclass(slots=True)
class _Child:
    slot: Slot[Any]
    restart: Start


@dataclass(frozen=True, slots=True)
class _Exit:
    """A child's actor ended: ``cause`` is what it crashed on (None: it stopped)."""

    name: str
    ref: pykka.ActorRef[Any] | None
    """The actor that ended; None when its restart failed before there was one."""
    cause: BaseException | None
    what: str


class Supervisor:
    """Starts children, restarts each one that ends while the supervisor runs.

    ``restarted(name)`` is called after each successful restart, for the node to tell
    the other actors; ``give_up(reason)`` once, when the restart intensity is exceeded.
    """

    def __init__(
        self,
        stats: metrics.Metrics,
        restarted: Callable[[str], None],
        give_up: Callable[[str], None],
        *,
        max_restarts: int = MAX_RESTARTS,
        within: float = WITHIN,
    ) -> None:
        self._stats = stats
        self._restarted = restarted
        self._give_up = give_up
        self._max_restarts = max_restarts
        self._within = within
        self._children: dict[str, _Child] = {}
        self._restarts: deque[float] = deque()
        self._exits: gevent.queue.Queue[_Exit] = gevent.queue.Queue()
        self._stopping = False
        self._loop = gevent.spawn(self._run)

    def start(
        self, slot: Slot[A], start: Callable[[], pykka.ActorRef[A]], restart: Start | None = None
    ) -> None:
        """Start a child now (its exception, if any, is the caller's: a node that cannot
        start does not start), and after each crash with ``restart`` (default ``start``)."""
        self._children[slot.name] = _Child(slot, restart or start)
        self._adopt(slot, start())

    def stop(self) -> None:
        """Stop every child, the last started first; nothing is restarted any more."""
        self._stopping = True
        if self._loop is not gevent.getcurrent():
            self._loop.kill()
        for child in reversed(list(self._children.values())):
            ref = child.slot.ref
            if ref is not None and ref.is_alive():
                ref.stop(block=True)
            child.slot.ref = None

    def _adopt(self, slot: Slot[Any], ref: pykka.ActorRef[Any]) -> None:
        slot.ref = ref
        watch(ref, lambda cause: self._exits.put(_Exit(slot.name, ref, cause, _ended(cause))))

    def _run(self) -> None:
        """One exit at a time, so that two crashes never restart concurrently."""
        while True:
            ended = self._exits.get()
            child = self._children[ended.name]
            if self._stopping or ended.ref is not child.slot.ref:
                continue  # a stop we asked for, or news of an actor already replaced
            child.slot.ref = None
            if not self._within_intensity(ended):
                return
            self._restart(child)

    def _within_intensity(self, ended: _Exit) -> bool:
        """Count this restart; False (after saying so, once) when it is one too many."""
        now = time.monotonic()
        while self._restarts and now - self._restarts[0] > self._within:
            self._restarts.popleft()
        if len(self._restarts) >= self._max_restarts:
            reason = (
                f"the {ended.name} actor {ended.what}, after {len(self._restarts)} "
                f"restarts within {self._within:g}s"
            )
            log.error("%s: stopping the node", reason, exc_info=ended.cause)
            self._give_up(reason)
            return False
        self._restarts.append(now)
        log.error(
            "the %s actor %s; restarting it (restart %d of %d allowed within %gs)",
            ended.name,
            ended.what,
            len(self._restarts),
            self._max_restarts,
            self._within,
            exc_info=ended.cause,
        )
        return True

    def _restart(self, child: _Child) -> None:
        name = child.slot.name
        self._stats.incr(f"{metrics.ACTOR_RESTARTS}.{name}")
        try:
            ref = child.restart()
        except Exception as exc:  # noqa: BLE001 - a failed restart counts as another crash
            self._exits.put(_Exit(name, None, exc, "could not be restarted"))
            return
        self._adopt(child.slot, ref)
        self._restarted(name)


def _ended(cause: BaseException | None) -> str:
    if cause is None:
        return "stopped unasked"
    return f"crashed ({type(cause).__name__}: {cause})"
