"""``BookRelay``: one worker joins a symbol's book upstream, every worker serves it.

A symbol's book is one upstream resource whatever views of it clients ask for (``diff``,
``levels`` at any depth), so it has one owner in the cluster: the worker holding the lease of
``book_source(symbol)`` (``cluster.leases``, the same leases as bars; ``LocalOwnership`` with
one worker). Only the owner has a depth link. Each change its feed makes (``binance_sync``'s
``Applied`` and ``Reset``) goes on the bus as a *relay message* on the symbol's relay topic,
and every worker that serves the symbol — the owner too, through the bus's local delivery —
applies it to its ``ServedBooks``, which builds its own clients' frames. Every worker holds the
same book at the same ``seq``, so a diff-mode client's ``prev_seq`` chain means the same on any
worker, and a takeover is one more upstream ``reset``.

Relay messages are frames on ``relay_topic(symbol)`` (no client can name it: client topics are
built by the server from a route and params) whose text is JSON, each naming its sender
(``by``, a token drawn per process):

- ``{"k":"reset","by","seq","time","bids","asks"}``: the owner (re)joined the upstream book;
- ``{"k":"diff","by","prev_seq","seq","time","bids","asks"}``: one change;
- ``{"k":"ask","by"}``: a worker lacks the book (it just began serving the symbol, or a diff
  did not continue the book it held);
- ``{"k":"replay",...}``: the owner's book as it is, in answer to an ask.

Why the owner applies only its own messages: its book is its feed's, and it answers the asks.
The old owner's last diff can reach Redis after a new owner's first reset; every other worker
then notices a gap and asks, but an owner that let it break its own book would hold none to
answer with, and every worker's book would stay frozen until the upstream next resynced.

Why a replay is not a reset: every worker that serves the symbol receives it, and those that
already hold the book at that ``seq`` must not send their diff clients a needless whole book.
A worker applies a replay only when it lacks the book or holds another ``seq``; an upstream
reset it always applies (a new owner's book at an equal ``seq`` need not be the same book:
each simulator makes its own).

Why the receiving side checks every diff against the ``seq`` it holds: Redis pub/sub drops
what is published while a subscriber is cut off, and a takeover can interleave the old owner's
last message with the new owner's first. A diff that does not continue the book marks it not
held (its diff clients get nothing more until a whole book comes) and asks the owner for a
replay; asks repeat at most every ``ASK_INTERVAL`` while diffs keep arriving, so a lost ask is
retried and a burst of them costs one.

Why each symbol's sends are serialised (``_sending``): a replay must reach the bus after every
diff the owner applied before building it, or a worker would get the replay and then an older
diff. A bus publish to Redis awaits its round trip, and two sends in flight may take two
connections of the pool.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from marketcast.book.binance_sync import Applied, Reset
from marketcast.book.served import ServedBooks
from marketcast.channels.orderbook import book_source
from marketcast.cluster.ownership import Ownership
from marketcast.delivery.hub import Hub
from marketcast.types import Symbol, Topic
from marketcast.wire import Frame

log = logging.getLogger("marketcast.books")

#: Seconds between two asks for the same book, at least (see the module docstring).
ASK_INTERVAL: Final = 0.5
#: The prefix of relay topics; ``~`` is no route's character, so none collides.
RELAY_PREFIX: Final = "orderbook~"


def relay_topic(symbol: Symbol) -> Topic:
    return f"{RELAY_PREFIX}{symbol}"


@dataclass(frozen=True, slots=True)
class RelayMessage:
    """A relay message, checked whole before anything of it is applied."""

    kind: str
    sender: str
    #: A diff's change (``diff``), or the whole book (``reset``, ``replay``); neither: ``ask``.
    applied: Applied | None = None
    reset: Reset | None = None
    time: int | None = None


def encode_message(message: RelayMessage) -> str:
    """The JSON text of ``message``, as ``parse_message`` reads it."""
    out: dict[str, Any] = {"k": message.kind, "by": message.sender}
    applied, reset = message.applied, message.reset
    if applied is not None:
        out |= {"prev_seq": applied.prev_seq, "seq": applied.seq, "time": applied.time}
        out |= {"bids": applied.bids, "asks": applied.asks}
    elif reset is not None:
        out |= {"seq": reset.seq, "time": message.time, "bids": reset.bids, "asks": reset.asks}
    return orjson.dumps(out).decode()


def parse_message(text: str) -> RelayMessage:
    """The message ``text`` holds; ValueError saying what was expected and what came."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"expected JSON, got {text[:80]!r}: {exc}") from None
    if not isinstance(message, dict):
        raise ValueError(f"expected a JSON object, got {text[:80]!r}")
    kind, sender = message.get("k"), message.get("by")
    if kind not in ("reset", "replay", "diff", "ask") or not isinstance(sender, str):
        raise ValueError(
            f"expected k of reset, replay, diff or ask and a sender, got {text[:80]!r}"
        )
    if kind == "ask":
        return RelayMessage(kind, sender)
    seq, time = _integer(message, "seq"), message.get("time", "missing")
    if not (time is None or (isinstance(time, int) and not isinstance(time, bool))):
        raise ValueError(f"expected time to be an integer or null, got {time!r:.40}")
    bids, asks = _rows(message, "bids"), _rows(message, "asks")
    if kind == "diff":
        applied = Applied(_integer(message, "prev_seq"), seq, bids, asks, time or 0)
        return RelayMessage(kind, sender, applied=applied, time=time)
    reset = Reset(seq, [[p, q] for p, q in bids], [[p, q] for p, q in asks])
    return RelayMessage(kind, sender, reset=reset, time=time)


def _integer(message: dict[str, Any], name: str) -> int:
    value = message.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"expected {name} to be an integer, got {value!r:.40}")
    return value


def _rows(message: dict[str, Any], name: str) -> list[tuple[float, float]]:
    rows = message.get(name)
    if not isinstance(rows, list):
        raise ValueError(f"expected {name} to be an array of [price, quantity], got {rows!r:.40}")
    out: list[tuple[float, float]] = []
    for row in rows:
        if not (
            isinstance(row, list)
            and len(row) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in row)
        ):
            raise ValueError(f"expected {name} rows of two numbers, got {row!r:.40}")
        out.append((float(row[0]), float(row[1])))
    return out


@dataclass(slots=True)
class _Symbol:
    """What this worker does with one symbol's book."""

    #: Local views exist (``serve``): this worker's clients read the book.
    served: bool = False
    #: This worker holds the book's lease and runs it upstream (``own``).
    owned: bool = False
    #: ``clock()`` of the last ask; asks wait ``ASK_INTERVAL`` after it.
    asked_at: float = float("-inf")
    #: A replay is queued to be sent (one answers every ask made before it is built).
    replaying: bool = False
    #: Serialises this symbol's sends (see the module docstring).
    sending: asyncio.Lock = field(default_factory=asyncio.Lock)


class _Link:
    """The relay's hub subscriber for one symbol's relay topic."""

    __slots__ = ("_relay", "_symbol")

    def __init__(self, relay: BookRelay, symbol: Symbol) -> None:
        self._relay = relay
        self._symbol = symbol

    def deliver(self, frame: Frame) -> None:
        self._relay.receive(self._symbol, frame)


class BookRelay:
    """The books this worker serves or owns, relayed over the bus (module docstring)."""

    def __init__(
        self,
        books: ServedBooks,
        hub: Hub,
        publish: Callable[[Frame], Awaitable[None]],
        ownership: Ownership,
        *,
        clock: Callable[[], float],
        on_change: Callable[[Symbol], None] = lambda symbol: None,
    ) -> None:
        self.books = books
        self._hub = hub
        #: The bus's publish: this worker's hub at once, then every other worker's.
        self._publish = publish
        self._ownership = ownership
        self._clock = clock
        #: Called after each change applied here (the stream manager's staleness touch).
        self._on_change = on_change
        #: This process's name on the relay messages it sends (the owner's filter above).
        self._id = secrets.token_hex(6)
        self._symbols: dict[Symbol, _Symbol] = {}
        self._links: dict[Symbol, _Link] = {}
        #: The start of each served symbol's ownership demand, shared by its views.
        self._wants: dict[Symbol, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: Frames being published by this relay, by ``id``, with the message each encodes.
        self._sent: dict[int, tuple[Frame, RelayMessage]] = {}
        #: Counters, for tests and logs: asks sent, replays sent, gaps noticed.
        self.asks = self.replays = self.gaps = 0

    # -- local demand (the stream manager's book views) -----------------------------------

    async def serve(self, symbol: Symbol) -> None:
        """This worker's clients read ``symbol``'s book: receive its relay messages, ask for
        the book if it is not held, and want it upstream (taken if nobody owns it). Returns
        once the ownership answered; concurrent callers share the one demand."""
        state = self._state(symbol)
        state.served = True
        self._link(symbol)
        if not self.books.ready(symbol):
            self._ask(symbol, state)
        want = self._wants.get(symbol)
        if want is None:
            want = self._wants[symbol] = asyncio.create_task(
                self._ownership.want(book_source(symbol)), name=f"want-book-{symbol}"
            )
        try:
            await asyncio.shield(want)
        except asyncio.CancelledError:
            raise
        except Exception:
            if self._wants.get(symbol) is want:
                del self._wants[symbol]
            raise

    async def unserve(self, symbol: Symbol) -> None:
        """No client here reads ``symbol``'s book any more."""
        state = self._symbols.get(symbol)
        if state is None or not state.served:
            return
        state.served = False
        self._wants.pop(symbol, None)
        self._drop_unless_used(symbol)
        await self._ownership.unwant(book_source(symbol))

    # -- ownership (start_upstream / stop_upstream of ``book_source``) ---------------------

    def own(self, symbol: Symbol) -> None:
        """This worker now runs ``symbol``'s book upstream; its feed's first change is a
        reset that every serving worker applies."""
        self._state(symbol).owned = True
        self._link(symbol)

    def disown(self, symbol: Symbol) -> None:
        state = self._symbols.get(symbol)
        if state is not None:
            state.owned = False
            self._drop_unless_used(symbol)

    # -- the owner's feed -----------------------------------------------------------------

    async def publish(self, symbol: Symbol, change: Applied | Reset) -> None:
        """A change from this worker's feed (the caller checked the ingest gate)."""
        if isinstance(change, Reset):
            await self._send(symbol, RelayMessage("reset", self._id, reset=change))
        else:
            await self._send(symbol, RelayMessage("diff", self._id, change, time=change.time))

    # -- relay messages -----------------------------------------------------------------

    def receive(self, symbol: Symbol, frame: Frame) -> None:
        """One relay message of ``symbol`` from the bus (any worker's, this one's too)."""
        state = self._symbols.get(symbol)
        if state is None:
            return
        sent = self._sent.get(id(frame))
        if sent is not None and sent[0] is frame:
            message = sent[1]  # this worker's own, delivered here first: nothing to parse
        else:
            try:
                message = parse_message(frame.text)
            except ValueError as exc:
                log.warning("ignoring a malformed book relay message of %s: %s", symbol, exc)
                return
        kind = message.kind
        if kind == "ask":
            if self._answers(symbol, state):
                state.replaying = True
                self._spawn(self._replay(symbol, state))
            return
        if state.owned and message.sender != self._id:
            return  # the owner's book comes from its own feed only (module docstring)
        if message.applied is not None:
            held = self.books.ready(symbol)
            if self.books.on_applied(symbol, message.applied):
                self._on_change(symbol)
                return
            self.gaps += held  # a diff that did not continue the book held
            self._ask(symbol, state)
        elif message.reset is not None:
            replay = kind == "replay"
            if self.books.on_reset(symbol, message.reset, message.time, replay=replay):
                self._on_change(symbol)

    async def close(self) -> None:
        for task in [*self._tasks, *self._wants.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._wants.values(), return_exceptions=True)
        self._wants.clear()

    # -- internals --------------------------------------------------------------------------

    def _state(self, symbol: Symbol) -> _Symbol:
        state = self._symbols.get(symbol)
        if state is None:
            state = self._symbols[symbol] = _Symbol()
        return state

    def _link(self, symbol: Symbol) -> None:
        if symbol not in self._links:
            link = self._links[symbol] = _Link(self, symbol)
            self._hub.add(relay_topic(symbol), link)

    def _drop_unless_used(self, symbol: Symbol) -> None:
        """Neither served nor owned here: stop receiving the symbol and drop its book (held
        on, it would be served stale to the next subscriber before a fresh one came)."""
        state = self._symbols.get(symbol)
        if state is None or state.served or state.owned:
            return
        del self._symbols[symbol]
        link = self._links.pop(symbol, None)
        if link is not None:
            self._hub.remove(relay_topic(symbol), link)
        self.books.forget(symbol)

    def _answers(self, symbol: Symbol, state: _Symbol) -> bool:
        """Whether this worker answers an ask with a replay: it owns the book and holds it
        (before its join it holds none, and the join is a reset for all anyway), and no
        replay is queued already (that one answers this ask too)."""
        return state.owned and not state.replaying and self.books.ready(symbol)

    def _ask(self, symbol: Symbol, state: _Symbol) -> None:
        now = self._clock()
        if now - state.asked_at < ASK_INTERVAL:
            return
        state.asked_at = now
        self.asks += 1
        self._spawn(self._send(symbol, RelayMessage("ask", self._id)))

    async def _replay(self, symbol: Symbol, state: _Symbol) -> None:
        async with state.sending:
            state.replaying = False
            # Built inside the lock: after every diff sent before it (module docstring).
            snapshot = self.books.whole(symbol)
            if snapshot is None or not state.owned:
                return
            seq, time, bids, asks = snapshot
            self.replays += 1
            message = RelayMessage("replay", self._id, reset=Reset(seq, bids, asks), time=time)
            await self._publish_message(symbol, message)

    async def _send(self, symbol: Symbol, message: RelayMessage) -> None:
        state = self._symbols.get(symbol)
        if state is None:  # neither served nor owned: nothing to keep in order with
            await self._publish_message(symbol, message)
            return
        async with state.sending:
            await self._publish_message(symbol, message)

    async def _publish_message(self, symbol: Symbol, message: RelayMessage) -> None:
        """Publish ``message``; while the bus delivers it here, ``receive`` knows the frame
        and takes the message as it is rather than parsing the text it was just encoded to
        (every change of every book this worker owns passes here)."""
        frame = Frame(encode_message(message), relay_topic(symbol))
        self._sent[id(frame)] = (frame, message)
        try:
            await self._publish(frame)
        finally:
            del self._sent[id(frame)]

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
