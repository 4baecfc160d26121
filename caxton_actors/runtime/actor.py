"""Pykka actors as gevent greenlets.

Pykka 4 keeps its whole runtime behind three hooks: the inbox, the future and
the loop starter. Filling them with a gevent queue, an ``AsyncResult`` and
``gevent.spawn`` runs every actor of a node as a greenlet on one hub, without
monkey-patching the process. The hooks are private API, so ``pyproject.toml``
pins pykka's minor version and ``tests/unit/test_runtime.py`` exercises them. Two
more private methods are wrapped (``_handle_failure``, ``_actor_loop``) so that a
supervisor can watch an actor end and learn why (``tests/unit/test_supervisor.py``).
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar, cast

import gevent
import gevent.event
import gevent.queue
import pykka

if TYPE_CHECKING:
    from types import TracebackType

    from pykka._actor import ActorInbox
    from pykka._envelope import Envelope
    from pykka._future import GetHookFunc
    from pykka._types import OptExcInfo

__all__ = ["GeventActor", "GeventFuture", "Mailbox", "Ping", "Request", "ask", "watch"]

T = TypeVar("T")
R = TypeVar("R")


class GeventFuture(pykka.Future[T]):
    """A pykka future resolved through a gevent ``AsyncResult``.

    ``get()`` yields to the hub instead of blocking the thread, so a greenlet
    waiting on an actor never stalls the others.
    """

    def __init__(self) -> None:
        super().__init__()
        self._result: gevent.event.AsyncResult = gevent.event.AsyncResult()

    def get(self, *, timeout: float | None = None) -> T:
        try:
            return super().get(timeout=timeout)
        except NotImplementedError:
            pass
        try:
            value: T = self._result.get(timeout=timeout)
        except gevent.Timeout:
            raise pykka.Timeout(f"{timeout} seconds") from None
        return value

    def _refuse_second_value(self) -> None:
        if self._result.ready() or self._get_hook is not None:
            raise RuntimeError("future already set")

    def set(self, value: Any | None = None) -> None:
        self._refuse_second_value()
        self._result.set(value)

    def set_exception(self, exc_info: OptExcInfo | None = None) -> None:
        self._refuse_second_value()
        info = exc_info or sys.exc_info()
        assert info[1] is not None
        self._result.set_exception(info[1], exc_info=info)  # keeps the actor's traceback

    def set_get_hook(self, func: GetHookFunc[T]) -> None:
        if self._result.ready():
            raise RuntimeError("future already set")
        super().set_get_hook(func)


class Request(Generic[R]):
    """A message its actor answers with an ``R``, so that :func:`ask` returns one.

    Empty ``__slots__``: slotted dataclass subclasses stay without a ``__dict__``.
    """

    __slots__ = ()


class Mailbox(Protocol):
    """Where messages for an actor go: a pykka ``ActorRef``, or a supervisor's ``Slot``
    (``runtime/supervisor.py``), which is always its actor's latest incarnation."""

    def is_alive(self) -> bool: ...

    def tell(self, message: Any) -> None:
        """Raises ``pykka.ActorDeadError`` when the actor is not running."""

    def ask(self, message: Any, *, block: Literal[False]) -> pykka.Future[Any]: ...


def ask(ref: Mailbox, request: Request[R], timeout: float) -> R:
    """Ask ``ref`` and wait up to ``timeout`` seconds, typed by the request.

    Raises ``pykka.Timeout`` when no answer comes in time, ``pykka.ActorDeadError``
    when the actor is not running, and whatever the actor raised answering.
    """
    return cast(R, ref.ask(request, block=False).get(timeout=timeout))


@dataclass(frozen=True, slots=True)
class Ping(Request[bool]):
    """Asks any actor whether it is processing messages; it answers ``True``."""


# Messages an actor takes from a full inbox before it lets the hub run others.
FAIR_SHARE = 64


class FairInbox(gevent.queue.Queue):  # type: ignore[misc]  # gevent ships no stubs for it
    """A gevent queue whose reader yields to the hub every ``FAIR_SHARE`` messages.

    Taking a message that is already there does not switch greenlets, so without this an
    actor handed 10,000 messages at once (a pushed table of 10,000 members) would hold the
    hub for all of them, and the node's acks, and its health probe, would wait.
    """

    def __init__(self) -> None:
        super().__init__()
        self._taken = 0

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        self._taken += 1
        if self._taken >= FAIR_SHARE:
            self._taken = 0
            gevent.sleep(0)
        return super().get(block, timeout)


class GeventActor(pykka.Actor):
    """Base of every actor in a node: one greenlet, one gevent queue.

    Its end can be watched (:func:`watch`): that is how a supervisor learns of a crash.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._exit: gevent.event.AsyncResult = gevent.event.AsyncResult()
        self._crash: BaseException | None = None
        self._watched = False
        _LIVE[self.actor_urn] = self

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Ping):
            return True
        return super().on_receive(message)

    def on_failure(self, *_exc_info: object) -> None:
        """After a crash, release what a stop would (sockets, timers, threads): pykka calls
        only this, and a restarted successor needs them free."""
        self.on_stop()

    def _handle_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop on a crash, keeping its cause for the watcher. A watched actor's first crash
        is not logged here: the watcher logs it with what it does about it, so that one
        crash is one log record."""
        first = self._crash is None
        if first:
            self._crash = exception_value
        if first and self._watched:
            pykka.ActorRegistry.unregister(self.actor_ref)
            self.actor_stopped.set()
            return
        super()._handle_failure(exception_type, exception_value, traceback)

    def _actor_loop(self) -> None:
        try:
            super()._actor_loop()
        finally:
            self._exit.set(self._crash)

    @staticmethod
    def _create_actor_inbox() -> ActorInbox:
        inbox: ActorInbox = FairInbox()
        return inbox

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return GeventFuture()

    def _start_actor_loop(self) -> None:
        gevent.spawn(self._actor_loop)

    def take_ready(self, accept: Callable[[Any], bool], limit: int) -> list[Envelope[Any]]:
        """Remove and return the envelopes already waiting at the head of the inbox.

        Stops at the first message ``accept`` refuses, so order is kept. The
        caller owns the returned envelopes and must resolve their ``reply_to``.
        This is how an actor batches: one wake-up handles everything queued.
        """
        inbox: gevent.queue.Queue[Envelope[Any]] = self.actor_inbox
        taken: list[Envelope[Any]] = []
        while len(taken) < limit and not inbox.empty():
            if not accept(inbox.peek_nowait().message):
                break
            taken.append(inbox.get_nowait())
        return taken


_LIVE: weakref.WeakValueDictionary[str, GeventActor] = weakref.WeakValueDictionary()
"""Every actor not yet collected, by URN: what :func:`watch` finds an actor by, since a
ref keeps its actor only privately."""


def watch(ref: pykka.ActorRef[Any], on_exit: Callable[[BaseException | None], None]) -> None:
    """Call ``on_exit`` once the actor's greenlet has ended: with what it crashed on, or
    None when it was stopped. It runs in the hub's loop, so it must not block (put the
    news on a queue). The actor's crash is then the watcher's to log."""
    actor = _LIVE.get(ref.actor_urn)
    if actor is None:  # already ended and collected
        on_exit(None)
        return
    actor._watched = True
    actor._exit.rawlink(lambda result: on_exit(result.value))
