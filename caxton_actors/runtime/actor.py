"""Pykka actors as gevent greenlets.

Pykka 4 keeps its whole runtime behind three hooks: the inbox, the future and
the loop starter. Filling them with a gevent queue, an ``AsyncResult`` and
``gevent.spawn`` runs every actor of a node as a greenlet on one hub, without
monkey-patching the process. The hooks are private API, so ``pyproject.toml``
pins pykka's minor version and ``tests/unit/test_runtime.py`` exercises them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import gevent
import gevent.event
import gevent.queue
import pykka

if TYPE_CHECKING:
    from pykka._actor import ActorInbox
    from pykka._envelope import Envelope
    from pykka._future import GetHookFunc
    from pykka._types import OptExcInfo

__all__ = ["GeventActor", "GeventFuture", "Ping", "Request", "ask"]

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


def ask(ref: pykka.ActorRef[Any], request: Request[R], timeout: float) -> R:
    """Ask ``ref`` and wait up to ``timeout`` seconds, typed by the request.

    Raises ``pykka.Timeout`` when no answer comes in time, ``pykka.ActorDeadError``
    when the actor is not running, and whatever the actor raised answering.
    """
    return cast(R, ref.ask(request, block=False).get(timeout=timeout))


@dataclass(frozen=True, slots=True)
class Ping(Request[bool]):
    """Asks any actor whether it is processing messages; it answers ``True``."""


class GeventActor(pykka.Actor):
    """Base of every actor in a node: one greenlet, one gevent queue."""

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Ping):
            return True
        return super().on_receive(message)

    @staticmethod
    def _create_actor_inbox() -> ActorInbox:
        inbox: ActorInbox = gevent.queue.Queue()
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
