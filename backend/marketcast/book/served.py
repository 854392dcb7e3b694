"""The books one worker serves, and the frames their subscribers get — pure, no I/O.

A worker that serves a symbol's book receives its changes as ``binance_sync`` outcomes
(``Applied``: a diff from ``prev_seq`` to ``seq``; ``Reset``: the whole book again at ``seq``),
relayed from the book's owner (``cluster.book_relay``), and serves each watched topic of the
symbol in one of two modes:

- ``diff``: every change goes out at once as an ``orderbook.update`` carrying ``prev_seq`` and
  ``seq``; a reset goes out as the whole book flagged ``reset``. The frames are final and
  ordered by ``seq``, so the connection's snapshot hold (``delivery.connection``) releases,
  after a subscribe's snapshot at ``seq`` S, exactly the diffs after S: a client can prove it
  missed nothing by checking each ``prev_seq`` against the ``seq`` it holds.
- ``levels``: the best ``depth`` levels of each side, at most one frame per ``interval`` per
  topic, sent only when they changed. The frames carry no order and are not final, so a slow
  client's queue keeps only the newest (latest wins), like quotes.

Why the throttle is here and not in the outbox: a levels frame is a function of the book at
one instant; building one per upstream change only to conflate it away later costs a
``top(depth)`` and a JSON encoding per change (10 a second per symbol on Binance's 100 ms
stream, more in a burst). Waiting for the interval to end and building one then costs one.

Scheduling is the caller's (``call_later``, ``clock``), so tests drive time by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from marketcast.book.binance_sync import Applied, Reset
from marketcast.book.levels import OrderBook, Row, Sides
from marketcast.types import Topic
from marketcast.wire import Frame, envelope

Mode = Literal["levels", "diff"]
#: Seconds between two levels frames of one topic, at most.
LEVELS_INTERVAL: Final = 0.1


class Cancellable(Protocol):
    def cancel(self) -> None: ...


#: ``loop.call_later``'s shape: (delay in seconds, callback) -> a handle to cancel.
CallLater = Callable[[float, Callable[[], None]], Cancellable]


@dataclass(slots=True)
class _View:
    """One watched topic of a book: its mode and, for ``levels``, its depth and what it last
    sent (compared before sending again)."""

    topic: Topic
    mode: Mode
    depth: int
    #: The last levels sent (``levels`` only): an unchanged top is not sent again.
    sent: Sides | None = None
    #: ``clock()`` when the last levels frame went out; the next waits for the interval.
    sent_at: float = float("-inf")
    #: The flush scheduled for the end of the interval, if one is.
    pending: Cancellable | None = None
    #: ``diff`` only: the reset frame last built for a slow client (``reset_frame``), kept
    #: until the book changes, so many clients overflowing at once cost one encoding.
    reset: Frame | None = None


@dataclass(slots=True)
class _Book:
    """One symbol's book as served: the levels, the upstream time of its last change, and
    the topics watching it."""

    levels: OrderBook = field(default_factory=OrderBook)
    #: False until the first ``Reset``: a book not joined yet has nothing to serve.
    ready: bool = False
    time: int | None = None
    views: dict[Topic, _View] = field(default_factory=dict)


class ServedBooks:
    """The books of the symbols this worker serves (see the module docstring)."""

    def __init__(
        self,
        publish: Callable[[Frame], None],
        call_later: CallLater,
        clock: Callable[[], float],
        *,
        update_type: str,
        interval: float = LEVELS_INTERVAL,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"the levels interval must be > 0 seconds, got {interval}")
        #: Where frames go: the hub (through the bus, in a cluster).
        self._publish = publish
        self._call_later = call_later
        self._clock = clock
        self._interval = interval
        #: The message type of every update (the family's: ``channels.orderbook``).
        self._update_type = update_type
        self._books: dict[str, _Book] = {}
        #: The symbol of every watched topic (``reset_frame`` is asked by topic).
        self._symbols: dict[Topic, str] = {}

    # -- topics ---------------------------------------------------------------------------

    def watch(self, symbol: str, topic: Topic, mode: Mode, depth: int = 0) -> None:
        """Serve ``topic``: ``symbol``'s book in ``mode`` (``levels``: its best ``depth``)."""
        if mode == "levels" and depth < 1:
            raise ValueError(f"a levels topic needs a depth >= 1, got {depth}")
        book = self._books.setdefault(symbol, _Book())
        book.views.setdefault(topic, _View(topic, mode, depth if mode == "levels" else 0))
        self._symbols[topic] = symbol

    def unwatch(self, symbol: str, topic: Topic) -> None:
        book = self._books.get(symbol)
        view = None if book is None else book.views.pop(topic, None)
        if view is not None:
            self._symbols.pop(topic, None)
        if view is not None and view.pending is not None:
            view.pending.cancel()

    def watched(self, symbol: str) -> bool:
        book = self._books.get(symbol)
        return book is not None and bool(book.views)

    # -- upstream -------------------------------------------------------------------------

    def on_reset(
        self, symbol: str, reset: Reset, time: int | None = None, *, replay: bool = False
    ) -> bool:
        """The book joined (again) at ``reset.seq``: diff topics get it whole, flagged. A
        ``replay`` (another worker's book, sent to whoever lacked it: ``cluster.book_relay``)
        is ignored where the book is held at that ``seq`` already. Whether it was applied."""
        book = self._books.setdefault(symbol, _Book())
        if replay and book.ready and book.levels.seq == reset.seq:
            return False
        book.levels.replace(reset.bids, reset.asks, reset.seq)
        book.ready, book.time = True, time
        bids, asks = book.levels.snapshot()
        for view in book.views.values():
            if view.mode == "diff":
                view.reset = None
                payload = {"seq": reset.seq, "prev_seq": None, "reset": True}
                self._publish(self._diff_frame(view.topic, symbol, book.time, bids, asks, payload))
            else:
                self._levels_changed(symbol, book, view)
        return True

    def on_applied(self, symbol: str, applied: Applied) -> bool:
        """One diff from ``prev_seq`` to ``seq``; whether it continued the book held. One that
        does not (no book yet, or a diff lost on the way) is not applied, and the book is no
        longer held: nothing more goes out of it until a reset replaces it."""
        book = self._books.get(symbol)
        if book is None or not book.ready:
            return False
        if applied.prev_seq != book.levels.seq:
            book.ready = False
            return False
        book.levels.apply(applied.bids, applied.asks)
        book.levels.seq, book.time = applied.seq, applied.time
        bids = [[price, qty] for price, qty in applied.bids]
        asks = [[price, qty] for price, qty in applied.asks]
        for view in book.views.values():
            if view.mode == "diff":
                view.reset = None
                payload = {"seq": applied.seq, "prev_seq": applied.prev_seq}
                self._publish(
                    self._diff_frame(view.topic, symbol, applied.time, bids, asks, payload)
                )
            else:
                self._levels_changed(symbol, book, view)
        return True

    def ready(self, symbol: str) -> bool:
        """Whether ``symbol``'s book is held: joined, and every diff since applied."""
        book = self._books.get(symbol)
        return book is not None and book.ready

    def forget(self, symbol: str) -> None:
        """Drop ``symbol``'s book if no topic watches it (``cluster.book_relay``: neither
        served nor owned here any more)."""
        book = self._books.get(symbol)
        if book is not None and not book.views:
            del self._books[symbol]

    # -- snapshots ------------------------------------------------------------------------

    def snapshot(self, symbol: str, topic: Topic) -> dict[str, Any] | None:
        """What a subscribe reply carries for ``topic``, read at this instant (no await
        between it and the hub registration, or a diff could fall between): ``seq``, the
        upstream ``time`` of the last change, and the whole book (``diff``) or its best
        ``depth`` levels (``levels``). None while the book is not joined yet."""
        book = self._books.get(symbol)
        view = None if book is None else book.views.get(topic)
        if book is None or view is None or not book.ready:
            return None
        bids, asks = book.levels.snapshot() if view.mode == "diff" else book.levels.top(view.depth)
        return {"seq": book.levels.seq, "time": book.time, "bids": bids, "asks": asks}

    def reset_frame(self, topic: Topic) -> Frame | None:
        """The whole book of a ``diff`` topic as it is now, flagged ``reset`` as after an
        upstream resync: what a client too slow for the diffs gets instead of them
        (``delivery.connection``). None for a ``levels`` topic (its frames conflate: latest
        wins) or a book not joined yet. Read at once: no diff of it can be published between
        this and the frames it replaces, so the client misses nothing."""
        symbol = self._symbols.get(topic)
        book = None if symbol is None else self._books.get(symbol)
        view = None if book is None else book.views.get(topic)
        if symbol is None or book is None or view is None or view.mode != "diff" or not book.ready:
            return None
        if view.reset is None:
            bids, asks = book.levels.snapshot()
            payload = {"seq": book.levels.seq, "prev_seq": None, "reset": True}
            view.reset = self._diff_frame(topic, symbol, book.time, bids, asks, payload)
        return view.reset

    def whole(self, symbol: str) -> tuple[int, int | None, list[Row], list[Row]] | None:
        """``(seq, time, bids, asks)``: the whole book held, None if it is not held."""
        book = self._books.get(symbol)
        if book is None or not book.ready:
            return None
        bids, asks = book.levels.snapshot()
        return book.levels.seq, book.time, bids, asks

    def book(self, symbol: str) -> OrderBook | None:
        """The served book of ``symbol`` (for tests and health), None before its first reset."""
        book = self._books.get(symbol)
        return book.levels if book is not None and book.ready else None

    # -- levels throttle --------------------------------------------------------------------

    def _levels_changed(self, symbol: str, book: _Book, view: _View) -> None:
        if view.pending is not None:
            return  # the flush at the end of this interval will read the newest book
        due = view.sent_at + self._interval
        wait = due - self._clock()
        if wait <= 0:
            self._flush(symbol, book, view)
        else:
            view.pending = self._call_later(wait, lambda: self._flush(symbol, book, view, due))

    def _flush(self, symbol: str, book: _Book, view: _View, due: float | None = None) -> None:
        """Send the levels if they changed. A deferred flush (``due``: when it was meant to
        run) counts as sent when it was due, not when its timer ran: timers run a little
        late, and counting from then let a 100 ms upstream cadence slip a little further
        behind every interval until each update waited up to a whole interval."""
        view.pending = None
        if book.views.get(view.topic) is not view:
            return  # unwatched meanwhile
        top = book.levels.top(view.depth)
        if top == view.sent:
            return
        now = self._clock()
        view.sent, view.sent_at = top, now if due is None else min(now, due)
        payload = {
            "topic": view.topic,
            "symbol": symbol,
            "mode": "levels",
            "depth": view.depth,
            "seq": book.levels.seq,
            "time": book.time,
            "bids": top[0],
            "asks": top[1],
        }
        self._publish(Frame(envelope(self._update_type, payload), view.topic))

    def _diff_frame(
        self,
        topic: Topic,
        symbol: str,
        time: int | None,
        bids: list[list[float]],
        asks: list[list[float]],
        seqs: dict[str, Any],
    ) -> Frame:
        """A diff-mode update: final and ordered by ``seq`` (see the module docstring)."""
        payload = {"topic": topic, "symbol": symbol, "mode": "diff", **seqs, "time": time}
        payload["bids"], payload["asks"] = bids, asks
        return Frame(envelope(self._update_type, payload), topic, int(seqs["seq"]), True)
