"""The ``book_levels`` scenario's order books: levels-20 frames through marketcast's real
order-book path, and the same frames built by the baselines.

What every process agrees on: the ``orderbook`` levels topic of a benchmark symbol as
marketcast spells it, the subscribe request, how a client tells a levels frame from anything
else, and where the publish stamp travels.

Why the stamp travels in the quantity of the 20th (deepest served) ask: a levels frame is a
view of the book, not a message the publisher writes, so the stamp has to be *in the book*.
Every update sets that level's quantity to the publish time in µs (``1234567890.0``); it is
the last level of the frame, which ends ``,<stamp>.0]]}}``, so a client finds it from the
end like the bars' ``volume``. Since that level is in the top 20, every update moves the top
20 and marketcast builds a levels frame for it; when the previous frame of the topic went out
less than ``LEVELS_INTERVAL`` (100 ms) before, the frame waits for the interval to end and
then carries the newest book, so the client's latency includes that wait, as a real
subscriber's would (``docs/performance.md``, "Order-book levels").

The book (``LevelSource``): per symbol 50 levels a side on a 0.01 tick around 60,123.45 with
sizes in the style of ``common.book_side`` (seeded per symbol: every server holds the same
book). The first update of a symbol is the whole book (marketcast: a ``Reset``); each later
one is a diff with ``seq`` one higher (an ``Applied``) that changes, like a Binance 100 ms
diff, a few levels: one of the best five bids and one of the best five asks, two bids and one
ask beyond the top 20 (the book's work, not the frame's), and the stamp level. Only
quantities change, never the prices, so the deepest served ask stays the 20th.

The baselines (``LevelsFrames``) keep the same book, apply the same changes, and encode the
top 20 into the frame marketcast's ``book.served`` writes, field for field, so the bytes are
the same (a unit test compares them).
"""

from __future__ import annotations

import random
from collections.abc import Container
from dataclasses import dataclass
from typing import Any, Final

import orjson

from .common import book_side, symbol

#: Levels a side in every levels frame: the scenario's ``depth``.
DEPTH: Final = 20
#: Levels a side in the book behind the frames: deeper than what is served, as upstream.
BOOK_DEPTH: Final = 50
ROUTE: Final = "orderbook"
UPDATE_TYPE: Final = f"{ROUTE}.update"
#: How every levels frame starts (``wire.envelope`` writes ``type`` first).
UPDATE_PREFIX: Final = b'{"type":"' + UPDATE_TYPE.encode() + b'",'
#: The ``seq`` of a symbol's first book (its reset); each update adds one.
FIRST_SEQ: Final = 1_000_000
#: Printed under the scenario's table: what its latency and delivery figures include.
TABLE_NOTE: Final = (
    "levels: marketcast sends a topic's levels at most every 100 ms (book.served), so its "
    "p50/p99 include that wait and updates that meet in one interval arrive as one frame "
    "(ok%pub under 100); the baselines send one frame per update"
)
#: Quantities the changed near-top and deep levels take, in turn.
_SIZES: Final = (0.25, 1.2, 0.01934, 3.5, 0.5, 0.00871, 2.0, 0.4162, 0.1, 7.25, 0.03, 1.05)


def book_topic(sym: str, depth: int = DEPTH) -> str:
    """The levels topic of ``sym`` as marketcast spells it (``channels.orderbook``: keys
    sorted, compact JSON)."""
    return ROUTE + ':{"depth":' + str(depth) + ',"mode":"levels","symbol":"' + sym + '"}'


def subscribe_text(sym: str, request_id: int) -> bytes:
    """``orderbook.subscribe`` to ``sym``'s levels-20 topic."""
    params = {"mode": "levels", "depth": DEPTH}
    return orjson.dumps(
        {
            "type": f"{ROUTE}.subscribe",
            "id": request_id,
            "payload": {"symbol": sym, "params": params},
        }
    )


def stamp_of(frame: bytes) -> int:
    """The publish time (µs) in a levels frame: the quantity of its last ask, written as a
    float with a zero fraction (``[60123.65,1234567.0]]}}``)."""
    start = frame.rindex(b",", -48) + 1
    return int(frame[start : frame.index(b".", start)])


@dataclass(frozen=True, slots=True)
class BookUpdate:
    """One publish of a symbol's book: the whole book (``reset``: every level, best first,
    as rows) or a diff (the changed levels as ``(price, quantity)``) from ``prev_seq``."""

    reset: bool
    seq: int
    prev_seq: int
    bids: list[Any]
    asks: list[Any]
    #: The upstream time of the change, ms (None for a reset: ``on_book`` passes none).
    time: int | None


class LevelSource:
    """Every symbol's book and the update each publish makes of it (module docstring); one
    per server process, asked in the same order by every target, so every server serves
    the same books."""

    def __init__(self, topics: int) -> None:
        self._books: list[tuple[list[list[float]], list[list[float]]]] = []
        for index in range(topics):
            rng = random.Random(20_000 + index)
            self._books.append((book_side(rng, -1, BOOK_DEPTH), book_side(rng, 1, BOOK_DEPTH)))
        #: Updates published so far per symbol (0: its next one is the reset).
        self._count = [0] * topics

    def next(self, index: int, stamp_us: int, time_ms: int) -> BookUpdate:
        """Symbol ``index``'s next update, stamped ``stamp_us``, at upstream time ``time_ms``."""
        count = self._count[index]
        self._count[index] = count + 1
        seq = FIRST_SEQ + count
        bids, asks = self._books[index]
        stamp = float(stamp_us)
        if count == 0:
            asks_rows = [list(row) for row in asks]
            asks_rows[DEPTH - 1][1] = stamp
            return BookUpdate(True, seq, seq, [list(row) for row in bids], asks_rows, None)
        size = _SIZES[(count + index) % len(_SIZES)]
        deep = DEPTH + (count * 7 + index) % (BOOK_DEPTH - DEPTH)
        other = DEPTH + (deep + 11 - DEPTH) % (BOOK_DEPTH - DEPTH)
        near = count % 5
        bid_changes = [
            (bids[near][0], size),
            (bids[deep][0], _SIZES[count % len(_SIZES)]),
            (bids[other][0], size),
        ]
        ask_changes = [
            (asks[(near + 2) % 5][0], _SIZES[(count + 5) % len(_SIZES)]),
            (asks[DEPTH - 1][0], stamp),
            (asks[deep][0], size),
        ]
        return BookUpdate(False, seq, seq - 1, bid_changes, ask_changes, time_ms)


class _Side:
    """One side of a baseline's book: price -> quantity, and the prices best first (fixed:
    the benchmark's changes never add nor remove a price)."""

    __slots__ = ("levels", "order")

    def __init__(self, rows: list[Any]) -> None:
        self.levels = {float(price): float(qty) for price, qty in rows}
        self.order = [float(price) for price, _ in rows]

    def apply(self, changes: list[Any]) -> None:
        levels = self.levels
        for price, qty in changes:
            levels[price] = qty

    def top(self, depth: int) -> list[list[float]]:
        levels = self.levels
        return [[price, levels[price]] for price in self.order[:depth]]


class LevelsFrames:
    """The baselines' side: each publish applies the symbol's update to its own book and
    encodes the best ``DEPTH`` levels a side as marketcast's levels frame."""

    def __init__(self, topics: int) -> None:
        self.symbols = [symbol(i) for i in range(topics)]
        self.topics = [book_topic(s) for s in self.symbols]
        self._source = LevelSource(topics)
        self._books: list[tuple[_Side, _Side] | None] = [None] * topics
        self._seq = [0] * topics
        self._time: list[int | None] = [None] * topics

    def frame(self, index: int, bar_time: int, stamp_us: int) -> bytes:
        """Topic ``index``'s next levels frame (``bar_time`` is the upstream time, ms)."""
        update = self._source.next(index, stamp_us, bar_time)
        book = self._books[index]
        if update.reset or book is None:
            book = self._books[index] = (_Side(update.bids), _Side(update.asks))
        else:
            book[0].apply(update.bids)
            book[1].apply(update.asks)
        self._seq[index], self._time[index] = update.seq, update.time
        payload = {
            "topic": self.topics[index],
            "symbol": self.symbols[index],
            "mode": "levels",
            "depth": DEPTH,
            "seq": update.seq,
            "time": update.time,
            "bids": book[0].top(DEPTH),
            "asks": book[1].top(DEPTH),
        }
        return orjson.dumps({"type": UPDATE_TYPE, "payload": payload})

    def snapshot(self, index: int) -> dict[str, Any] | None:
        """What a subscribe reply carries (marketcast's ``book`` field): None before the
        symbol's first publish."""
        book = self._books[index]
        if book is None:
            return None
        bids, asks = book[0].top(DEPTH), book[1].top(DEPTH)
        return {"seq": self._seq[index], "time": self._time[index], "bids": bids, "asks": asks}

    def subscribe_reply(
        self, message: str | bytes, topics: Container[str]
    ) -> tuple[str, str | None]:
        """(reply text, topic to subscribe or None) for one client frame: an
        ``orderbook.subscribe`` to a levels-20 topic gets marketcast's reply, with the book."""
        try:
            request = orjson.loads(message)
            request_id = request.get("id")
            sym = str(request["payload"]["symbol"])
            params = request["payload"]["params"]
            depth = int(params.get("depth", DEPTH))
            mode = params.get("mode", "levels")
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
            return _envelope("error", {"code": "invalid_message", "message": "bad request"}), None
        topic = book_topic(sym, depth)
        if request.get("type") != f"{ROUTE}.subscribe" or mode != "levels" or topic not in topics:
            return _envelope("error", {"code": "unknown", "message": "unknown request"}), None
        index = self.topics.index(topic)
        payload = {
            "status": "ok",
            "symbol": sym,
            "message": "subscribed",
            "topic": topic,
            "book": self.snapshot(index),
        }
        return _envelope(f"{ROUTE}.subscribe.response", payload, request_id), topic


def _envelope(type_: str, payload: dict[str, Any], request_id: Any = None) -> str:
    message: dict[str, Any] = {"type": type_, "payload": payload}
    if request_id is not None:
        message["id"] = request_id
    return orjson.dumps(message).decode()
