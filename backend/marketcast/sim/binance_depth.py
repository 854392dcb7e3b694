"""The fake Binance's order books: ``<symbol>@depth@100ms`` and ``<symbol>@depth`` diff events,
``GET /api/v3/depth`` snapshots, and the faults a client's book sync must survive.

Why a module of its own: the book's rules are ``book.sim_book``'s (a plausible book, exact
decimal strings, update ids chained like Binance's, ``FaultyDepthStream`` for the faults);
this module only puts them on the fake's clock and wire, so ``sim.binance`` just routes.

- One book per symbol, made the first time it is asked for (a push to a depth subscriber or
  a REST request), stepped once per ``STEP_MS`` of the fake's clock. Stepping is lazy, like
  the fake's other streams: every push and every REST request first catches the book up with
  the clock, so it is the same book whoever asks, and it costs nothing while nobody does. A
  catch-up of more than ``MAX_CATCH_UP`` steps skips the older part (a quiet spell: fewer
  events, ids still chained), so a fast clock or a long idle spell cannot stall the loop.
- The mid price is the market tape's price at that instant, interpolated between consecutive
  trades (one every ``TICK_MS``): the book follows the klines and trades of the same fake
  instead of jumping with each trade's jitter.
- Every event delivered (after the faults) goes to the symbol's log, and each connection
  reads the log from its own cursor. Faults are upstream of every client, as on Binance: two
  connections see the same drops. A subscription's first push sends nothing (as for trades):
  a client sees the events made after it subscribed.
- ``@depth@100ms`` sends each event; ``@depth`` (1000 ms) sends the events delivered in each
  whole second of fake time merged into one while their ids chain (``U`` = previous ``u`` + 1).
  A fault breaks the chain and starts a new merged event, so a drop, a repeat or a swap shows
  on the slow stream too instead of being hidden inside a merge.
- ``GET /api/v3/depth`` as Binance documents it: ``limit`` defaults to 100 and is at most 5000
  (a larger one is cut to 5000); the weight is 5, 25, 50 or 250 for limits up to 100, 500,
  1000 and 5000 (``depth_weight``). The fake's choices where the docs are silent: a ``limit``
  that is not digits is refused with -1100, one below 1 with -1130.

Faults (``set_faults``, rates per event from ``sim_book.Faults``): dropped, repeated and
swapped diff events and snapshots older than the stream. Each fault injected is recorded with
the ids it touched (``records``), and ``true_book`` gives the book as it truly was at a recent
update id, for tests to compare a client's book with.
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

import orjson

from marketcast.book.sim_book import (
    DepthUpdatePayload,
    Faults,
    FaultyDepthStream,
    SimBook,
    StrLevels,
    increment,
)
from marketcast.sim import binance_control as control
from marketcast.sim.market import TICK_MS, Market

#: Fake milliseconds between two events of ``@depth@100ms`` (one step of the book).
STEP_MS: Final = 100
#: Fake milliseconds one ``@depth`` event covers.
SLOW_MS: Final = 1_000
#: Stream kinds (after ``<symbol>@``) this module serves.
DEPTH_KINDS: Final = frozenset({"depth@100ms", "depth"})
DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 5_000
#: (largest limit, weight) of ``GET /api/v3/depth``; beyond the last, 250.
_WEIGHTS: Final = ((100, 5), (500, 25), (1_000, 50))
#: Steps one catch-up takes at most (10 s of fake time); older time is skipped.
MAX_CATCH_UP: Final = 100
#: Delivered events kept per symbol for the connections to read: a connection further behind
#: (a stalled reader) resumes at the oldest kept, with a gap its client must notice.
LOG_SIZE: Final = 4_096
#: Faults remembered per kind and symbol (a fake left running for days stays bounded).
RECORDS: Final = 10_000
#: True states kept per symbol for ``true_book`` (~20 kB each for a 200-level book).
HISTORY: Final = 256
_DEPTH_STREAM: Final = re.compile(r"^([a-z0-9]+)@depth(@100ms)?$")
_LIMIT: Final = re.compile(r"^[0-9]{1,20}$")


def depth_weight(limit: str | None) -> int:
    """Binance's request weight of ``GET /api/v3/depth`` for ``limit`` as sent (None: absent;
    a value that is refused still costs the default's weight)."""
    value = int(limit) if limit is not None and _LIMIT.match(limit) else DEFAULT_LIMIT
    for most, weight in _WEIGHTS:
        if value <= most:
            return weight
    return 250


class DepthSession(control.Session):
    """``binance_control.Session`` that also accepts ``<symbol>@depth@100ms`` and
    ``<symbol>@depth``: the control rules stay that module's, the depth streams are this one's."""

    def valid_stream(self, name: object) -> bool:
        if super().valid_stream(name):
            return True
        match = _DEPTH_STREAM.match(name) if isinstance(name, str) else None
        return match is not None and self.is_symbol(match.group(1).upper())


@dataclass
class DepthRecord:
    """What the faults did to one symbol's stream: ``(U, u)`` of every event dropped, sent
    twice, or held back and sent after the next one; ``(lastUpdateId, newest update id)`` of
    every snapshot served older than the stream."""

    dropped: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=RECORDS))
    duplicated: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=RECORDS))
    reordered: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=RECORDS))
    lagged: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=RECORDS))
    #: Snapshots served, lagging or not.
    snapshots: int = 0


class _Book:
    """One symbol's faulty stream, how far it has been stepped, and what it delivered."""

    def __init__(self, stream: FaultyDepthStream, stepped_ms: int) -> None:
        self.stream = stream
        #: Fake time of the last step; the next is due ``STEP_MS`` later.
        self.stepped_ms = stepped_ms
        #: (delivery index, fake time delivered, payload), oldest first.
        self.log: deque[tuple[int, int, DepthUpdatePayload]] = deque(maxlen=LOG_SIZE)
        self.next_index = 0
        self.record = DepthRecord()


class DepthBooks:
    """Every symbol's book of one fake Binance, on its market's clock."""

    def __init__(self, market: Market, *, history: int = HISTORY) -> None:
        if history < 1:
            raise ValueError(f"expected a depth history of at least 1 state, got {history}")
        self.market = market
        self.history = history
        #: Applied to every book, those made later too.
        self.faults = Faults()
        self._books: dict[str, _Book] = {}

    # -- for tests and users ----------------------------------------------------------------

    def set_faults(self, faults: Faults) -> None:
        """Inject ``faults`` into every symbol's stream from the next event on."""
        self.faults = faults
        for book in self._books.values():
            book.stream.faults = faults

    def true_book(self, symbol: str, update_id: int) -> tuple[StrLevels, StrLevels] | None:
        """The true book of ``symbol`` right after ``update_id`` (bids, asks, best first, as
        decimal strings), if that id ended an event among the last ``history``; else None."""
        book = self._books.get(symbol)
        return None if book is None else book.stream.true_at(update_id)

    def records(self, symbol: str) -> DepthRecord:
        """The faults injected into ``symbol``'s stream so far (empty before its first use)."""
        book = self._books.get(symbol)
        return DepthRecord() if book is None else book.record

    def newest_id(self, symbol: str) -> int | None:
        """The update id of ``symbol``'s true book as last stepped; None before its first use."""
        book = self._books.get(symbol)
        return None if book is None else book.stream.book.last_update_id

    # -- the wire ---------------------------------------------------------------------------

    def frames(self, cursors: dict[str, int], stream: str, combined: bool, now: int) -> list[str]:
        """The text frames of depth ``stream`` due on one connection at fake time ``now``;
        ``cursors`` is that connection's (stream -> next delivery index to send)."""
        symbol_lower, _, kind = stream.partition("@")
        book = self._book(symbol_lower.upper(), now)
        start = cursors.get(stream)
        if start is None:  # a new subscription: the events from now on
            cursors[stream] = book.next_index
            return []
        skip = max(0, start - book.log[0][0]) if book.log else 0
        entries = list(itertools.islice(book.log, skip, None))
        if kind == "depth":
            whole = now - now % SLOW_MS
            entries = [entry for entry in entries if entry[1] < whole]  # whole seconds only
            payloads = _merge_seconds(entries)
        else:
            payloads = [payload for _, _, payload in entries]
        if entries:
            cursors[stream] = entries[-1][0] + 1
        if combined:
            return [orjson.dumps({"stream": stream, "data": p}).decode() for p in payloads]
        return [orjson.dumps(p).decode() for p in payloads]

    def answer(self, symbol: str, limit_text: str | None, now: int) -> tuple[int, Any]:
        """``GET /api/v3/depth`` of a known ``symbol``: (HTTP status, body)."""
        if limit_text is not None and not _LIMIT.match(limit_text):
            return 400, {"code": -1100, "msg": "Illegal characters found in a parameter."}
        limit = DEFAULT_LIMIT if limit_text is None else int(limit_text)
        if limit < 1:
            return 400, {"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."}
        book = self._book(symbol, now)
        body = book.stream.snapshot(min(limit, MAX_LIMIT))
        newest = book.stream.book.last_update_id
        book.record.snapshots += 1
        if body["lastUpdateId"] < newest:
            book.record.lagged.append((body["lastUpdateId"], newest))
        return 200, body

    # -- the walk ---------------------------------------------------------------------------

    def _book(self, symbol: str, now: int) -> _Book:
        book = self._books.get(symbol)
        if book is None:
            start = now - now % STEP_MS
            instrument = self.market.tapes[symbol].instrument
            sim = SimBook(
                symbol,
                self._mid(symbol, start),
                tick=increment(instrument.decimals),
                lot=increment(instrument.size_decimals),
                seed=self.market.seed,
                notional=instrument.notional,
            )
            seed, history = self.market.seed, self.history
            stream = FaultyDepthStream(sim, self.faults, seed=seed, history=history)
            book = self._books[symbol] = _Book(stream, start)
        due = (now - book.stepped_ms) // STEP_MS
        if due > MAX_CATCH_UP:
            book.stepped_ms += (due - MAX_CATCH_UP) * STEP_MS
        while book.stepped_ms + STEP_MS <= now:
            book.stepped_ms += STEP_MS
            self._step(symbol, book, book.stepped_ms)
        return book

    def _step(self, symbol: str, book: _Book, at: int) -> None:
        stream, record = book.stream, book.record
        dropped, duplicated, reordered = stream.dropped, stream.duplicated, stream.reordered
        first = stream.book.last_update_id + 1
        delivered = stream.step(self._mid(symbol, at), at)
        ids = (first, stream.book.last_update_id)
        if stream.dropped > dropped:
            record.dropped.append(ids)
        if stream.duplicated > duplicated:
            record.duplicated.append(ids)
        if stream.reordered > reordered:
            record.reordered.append(ids)
        for payload in delivered:
            book.log.append((book.next_index, at, payload))
            book.next_index += 1

    def _mid(self, symbol: str, at: int) -> float:
        """The tape's price at fake time ``at``, between the trade before it and the next."""
        tape = self.market.tapes[symbol]
        index = max(at // TICK_MS, tape.first_trade)
        share = min(max((at - index * TICK_MS) / TICK_MS, 0.0), 1.0)
        before, after = tape.tick(index).close, tape.tick(index + 1).close
        return before + (after - before) * share


def _merge_seconds(entries: list[tuple[int, int, DepthUpdatePayload]]) -> list[DepthUpdatePayload]:
    """``@depth`` events: consecutive entries of one second of fake time merged while their ids
    chain; each level keeps its last quantity. A single event is sent as it is."""
    groups: list[list[DepthUpdatePayload]] = []
    second = -1
    for _, at, payload in entries:
        group = groups[-1] if groups else None
        if group is not None and at // SLOW_MS == second and payload["U"] == group[-1]["u"] + 1:
            group.append(payload)
        else:
            groups.append([payload])
            second = at // SLOW_MS
    return [group[0] if len(group) == 1 else _merged(group) for group in groups]


def _merged(group: list[DepthUpdatePayload]) -> DepthUpdatePayload:
    bids: dict[str, str] = {}
    asks: dict[str, str] = {}
    for payload in group:
        bids.update((price, qty) for price, qty in payload["b"])
        asks.update((price, qty) for price, qty in payload["a"])
    first, last = group[0], group[-1]
    return {
        "e": "depthUpdate",
        "E": last["E"],
        "s": last["s"],
        "U": first["U"],
        "u": last["u"],
        "b": [[p, bids[p]] for p in sorted(bids, key=Decimal, reverse=True)],
        "a": [[p, asks[p]] for p in sorted(asks, key=Decimal)],
    }
