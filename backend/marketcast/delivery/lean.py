"""Lighter stand-ins for the per-connection objects of uvicorn's WebSocket protocol.

Why: an idle WebSocket connection is mostly the objects its server keeps for it, and uvicorn's
``websockets-sansio`` protocol keeps some heavy ones for every connection whether it uses them
or not (measured with ``tracemalloc`` on uvicorn 0.55, Python 3.11, per connection):

- its receive queue, an ``asyncio.Queue``: four empty deques (items, getters, putters,
  and the waiters of the ``Event`` that ``join`` would wait on) — about 3.3 KB, for a queue
  that is empty almost all the time and never bounded, joined or waited on by more than the
  one task that serves the connection;
- its ``writable`` event, an ``asyncio.Event`` with an empty ``deque`` of waiters — 0.7 KB,
  for an event that nobody waits on unless the transport's buffer fills up;
- the permessage-deflate factories offered to the client, kept by the ``websockets`` protocol
  object after the handshake has used them — 0.9 KB with uvicorn's own factory;
- its instance ``__dict__`` of 37 attributes, past the 30 up to which CPython shares the
  keys of a class's instance dicts — ~1.3 KB more than a shared-keys dict.

``LeanQueue`` and ``LeanEvent`` behave the same for every call uvicorn and marketcast make
(``put_nowait``/``get``/``empty``; ``set``/``clear``/``is_set``/``wait``) but allocate their
containers only while something is queued or waiting. ``slim_protocol`` puts them in place of
uvicorn's and drops the factories; the WebSocket entry (``delivery.transport``) calls it when
it hands a connection to marketcast — before the application has received anything, so
nobody waits on either object yet, and what uvicorn already queued (the ``websocket.connect``
message, maybe a first frame) moves over in order; the handshake's response is computed by
then, so the factories have been used (the negotiated extensions, which frames need, stay).
``LeanSansIOProtocol``, as uvicorn's protocol class, builds the lean objects from the start
and keeps its dict under the limit with ``__slots__``.

Like the direct write path (``delivery.direct``) this relies on uvicorn's implementation, not
on ASGI: ``slim_protocol`` touches only uvicorn's ``WebSocketsSansIOProtocol`` (and
subclasses), swaps only the stock ``asyncio`` types, and otherwise leaves the protocol as it
is — which costs memory, never correctness. ``tests/unit/test_lean.py`` checks the stand-ins
against ``asyncio``'s semantics (order, wake-ups, cancellation);
``tests/integration/test_lean_protocol.py`` pins that a connection served by a real uvicorn
gets them and still subscribes, receives, replies in order and closes, with either protocol
class; the slow-consumer tests drive ``writable`` through backpressure.
"""

from __future__ import annotations

import asyncio
from typing import Any, Generic, Literal, TypeVar

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

T = TypeVar("T")


class LeanQueue(Generic[T]):
    """An unbounded FIFO queue with ``asyncio.Queue``'s ``put_nowait``, ``get``,
    ``get_nowait``, ``empty`` and ``qsize``, whose lists exist only while in use.

    ``get`` follows ``asyncio.Queue.get``: a getter is woken by a put and then takes the
    head of the queue itself, so an item is never handed to a getter that is cancelled before
    it runs; a woken getter that is cancelled passes the wake-up on to the next one.
    """

    __slots__ = ("_getters", "_items")

    def __init__(self) -> None:
        #: Queued items, oldest first; None while empty.
        self._items: list[T] | None = None
        #: Futures of the ``get`` calls waiting, oldest first; None while there are none.
        self._getters: list[asyncio.Future[None]] | None = None

    def qsize(self) -> int:
        return 0 if self._items is None else len(self._items)

    def empty(self) -> bool:
        return self._items is None

    def put_nowait(self, item: T) -> None:
        if self._items is None:
            self._items = [item]
        else:
            self._items.append(item)
        self._wake_next()

    def get_nowait(self) -> T:
        items = self._items
        if items is None:
            raise asyncio.QueueEmpty
        item = items.pop(0)
        if not items:
            self._items = None
        return item

    async def get(self) -> T:
        while self._items is None:
            getter = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = [getter]
            else:
                self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()  # in case it was not done yet
                getters = self._getters
                if getters is not None and getter in getters:
                    getters.remove(getter)
                    if not getters:
                        self._getters = None
                if self._items is not None and not getter.cancelled():
                    self._wake_next()
                raise
        return self.get_nowait()

    def _wake_next(self) -> None:
        getters = self._getters
        while getters:
            getter = getters.pop(0)
            if not getters:
                self._getters = None
            if not getter.done():
                getter.set_result(None)
                return

    def __repr__(self) -> str:
        return f"<LeanQueue items={self.qsize()} getters={len(self._getters or ())}>"


class LeanEvent(asyncio.Event):
    """``asyncio.Event`` (it is one, for ``isinstance``) whose list of waiters exists only
    while somebody waits. Every public method is its own; the base class's state is unused."""

    __slots__ = ("_flag", "_waiting")

    def __init__(self, value: bool = False) -> None:  # no super().__init__(): no deque
        self._flag = value
        #: Futures of the ``wait`` calls pending; None while there are none.
        self._waiting: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        if not self._flag:
            self._flag = True
            for waiter in self._waiting or ():
                if not waiter.done():
                    waiter.set_result(None)

    def clear(self) -> None:
        self._flag = False

    async def wait(self) -> Literal[True]:
        if self._flag:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiting is None:
            self._waiting = [waiter]
        else:
            self._waiting.append(waiter)
        try:
            await waiter
            return True
        finally:
            waiting = self._waiting
            if waiting is not None:
                waiting.remove(waiter)
                if not waiting:
                    self._waiting = None

    def __repr__(self) -> str:
        state = "set" if self._flag else "unset"
        return f"<LeanEvent [{state}, waiters:{len(self._waiting or ())}]>"


class LeanSansIOProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol, built with the lean objects and a compact
    instance dict: meant as the ``ws`` protocol class (or the base of it) that
    ``marketcast serve`` gives uvicorn.

    Why slots: uvicorn's protocol keeps 37 attributes in its instance ``__dict__``. Past 30
    keys CPython stops sharing the keys of a class's instance dicts, so every connection
    carries a dict with its own keys table, ~1.5 KB (measured: 7.8 KB per protocol object with
    34 keys, 6.5 KB with 19). ``__slots__`` takes the attributes set once in ``__init__``
    and never deleted out of the dict, which keeps it under the limit with room for uvicorn to
    add a few; the handshake's ``request``/``response``/``scope`` stay in the dict (they are
    set later, and ``delivery.direct`` drops the first two from it).

    Why the lean objects here too: a connection served by another path than the WebSocket
    entry (a path left to the router, which refuses it) never reaches ``slim_protocol``; built
    in ``__init__`` (where nothing has been queued or awaited yet) every connection has them.
    """

    __slots__ = (
        "app",
        "app_state",
        "asgi_version",
        "client",
        "config",
        "connections",
        "default_headers",
        "logger",
        "loop",
        "ping_interval",
        "ping_timeout",
        "root_path",
        "scheme",
        "server",
        "tasks",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = LeanQueue()  # type: ignore[assignment]
        self.writable = LeanEvent(self.writable.is_set())


def slim_protocol(protocol: Any) -> bool:
    """Give uvicorn's ``protocol`` the lean objects (see the module docstring) before the
    application receives anything, and drop its permessage-deflate factories; False when it
    is not uvicorn's ``websockets-sansio`` protocol, and nothing was changed.

    A ``LeanSansIOProtocol`` already has the lean objects; any other subclass of uvicorn's
    protocol gets them here, as long as they are the stock ``asyncio`` ones (a subclass that
    put something else there is left alone).
    """
    if not isinstance(protocol, WebSocketsSansIOProtocol):
        return False
    uvicorn_protocol: Any = protocol
    queue = uvicorn_protocol.queue
    if type(queue) is asyncio.Queue:
        lean: LeanQueue[Any] = LeanQueue()
        while not queue.empty():
            lean.put_nowait(queue.get_nowait())
        uvicorn_protocol.queue = lean
    writable = uvicorn_protocol.writable
    if type(writable) is asyncio.Event:
        uvicorn_protocol.writable = LeanEvent(writable.is_set())
    conn: Any = getattr(protocol, "conn", None)
    # The 101 response is already computed (uvicorn accepts the request before it calls the
    # application), so the factories offered have been used; ``extensions`` (negotiated) stay.
    if getattr(conn, "available_extensions", None):
        conn.available_extensions = None
    return True
