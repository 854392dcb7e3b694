"""A simulated order book, and a diff stream with faults — pure, no I/O, deterministic.

Why here and shaped like Binance: the simulator and the fake Binance send their books through
the same diff path as the real upstream (``binance_sync``), so the path is exercised, and
tested, on data whose truth is known. ``SimBook`` keeps a plausible book around a mid price
given from outside (the simulator's walk): a spread of a few ticks, sizes with some
randomness, levels that appear and vanish, tens to hundreds of levels a side. Each ``step``
returns the levels that changed as a ``depthUpdate`` payload with Binance-like ``U``/``u``;
``snapshot`` returns the book as ``GET /api/v3/depth`` would, with its ``lastUpdateId``.

Decimal-exact by construction: prices are held as integer ticks and quantities as integer
lots, and written as decimal strings (8 places, like Binance) from those integers, never from
a float. A float parsed from such a string is then the exact decimal for up to 15 significant
digits, the rule the served book relies on (``levels``).

``FaultyDepthStream`` wraps a ``SimBook`` and, by rates and a seed, drops, repeats and swaps
adjacent events, and serves snapshots from an older state than the stream's. The true book
stays available for every recent update id (``true_at``), for tests to compare against.
Randomness is seeded through ``zlib.crc32`` (Python's ``hash`` is salted per process).
"""

from __future__ import annotations

import math
import random
import zlib
from collections import deque
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Final, TypedDict

#: Decimal places Binance writes prices and quantities with.
PLACES: Final = 8
#: Level counts per side a book keeps between, unless told otherwise.
LEVELS: Final = (50, 200)
#: The ``lastUpdateId`` a new book starts from (any positive number would do).
FIRST_UPDATE_ID: Final = 1_000_000


class DepthUpdatePayload(TypedDict):
    """A ``depthUpdate`` event as Binance writes it."""

    e: str
    E: int
    s: str
    U: int
    u: int
    b: list[list[str]]
    a: list[list[str]]


class DepthSnapshotBody(TypedDict):
    """A ``GET /api/v3/depth`` answer as Binance writes it."""

    lastUpdateId: int
    bids: list[list[str]]
    asks: list[list[str]]


#: One side as decimal strings, best first.
StrLevels = list[list[str]]


def increment(decimals: int) -> str:
    """The tick (or lot) of an instrument quoted with ``decimals`` places: ``2`` -> ``"0.01"``,
    ``0`` -> ``"1"`` (``sim.market.Instrument`` gives ``decimals`` and ``size_decimals``)."""
    return "1" if decimals <= 0 else "0." + "0" * (decimals - 1) + "1"


class _Scale:
    """An increment (tick or lot) as an integer of ``10**-places`` units, for exact strings."""

    def __init__(self, increment: str, what: str) -> None:
        try:
            value = Decimal(increment)
        except InvalidOperation:
            value = Decimal(-1)
        if not (value.is_finite() and value > 0):
            raise ValueError(f"expected the {what} as a positive decimal string, got {increment!r}")
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)  # finite
        self.places = max(PLACES, -exponent)
        self.units = int(value.scaleb(self.places))
        self.size = float(value)
        self._unit = 10**self.places

    def text(self, count: int) -> str:
        """``count`` increments as a decimal string with ``places`` places."""
        whole, frac = divmod(count * self.units, self._unit)
        return f"{whole}.{frac:0{self.places}d}"


class SimBook:
    """One symbol's simulated book: integer ticks -> integer lots per side (``bids``, ``asks``).

    ``tick``/``lot``: the instrument's price and quantity increments as decimal strings
    (``increment``); ``levels``: the fewest and most levels a side keeps; ``notional``: a
    level's mean size in quote units at the starting price (deeper levels are larger)."""

    def __init__(
        self,
        symbol: str,
        mid_price: float,
        *,
        tick: str,
        lot: str,
        seed: int = 7,
        levels: tuple[int, int] = LEVELS,
        notional: float = 2_000.0,
        first_update_id: int = FIRST_UPDATE_ID,
    ) -> None:
        low, high = levels
        if not 1 <= low <= high:
            raise ValueError(f"expected levels (low, high) with 1 <= low <= high, got {levels}")
        self.symbol = symbol
        self.tick = _Scale(tick, "tick size")
        self.lot = _Scale(lot, "lot size")
        self.levels = levels
        self._rng = random.Random(zlib.crc32(f"{seed}:{symbol}:book".encode()))
        #: Mean lots of a level: ``notional`` quote units at the starting price.
        self._mean_lots = max(1.0, notional / mid_price / self.lot.size)
        self.last_update_id = first_update_id
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        mid = self._ticks(mid_price)
        #: Mean ticks between levels: about 2 ppm of the price (12 ticks for BTCUSDT at 60,000
        #: with a 0.01 tick), so a side spans about as far as the price moves in seconds.
        self.spacing = max(1, round(mid * 2e-6))
        best_bid, best_ask = mid - self._rng.randint(0, 1), mid + self._rng.randint(1, 2)
        for side, best, away in ((self.bids, best_bid, -1), (self.asks, best_ask, 1)):
            price = best
            for _ in range(self._rng.randint(low, high)):
                if price <= 0:
                    break
                side[price] = self._size(abs(price - best))
                price += away * self._gap()

    # -- the walk ---------------------------------------------------------------------------

    def step(self, mid_price: float, now_ms: int) -> DepthUpdatePayload:
        """Move the book to ``mid_price``: the levels that changed (quantity 0: removed), never
        none, as one ``depthUpdate`` with ``U`` = the previous ``u`` + 1."""
        rng = self._rng
        mid = self._ticks(mid_price)
        best_bid = mid - rng.randint(0, 2)
        best_ask = max(best_bid + 1, mid + rng.randint(1, 3))
        bid_changes: dict[int, int] = {}
        ask_changes: dict[int, int] = {}
        self._move(self.bids, bid_changes, best_bid, -1)
        self._move(self.asks, ask_changes, best_ask, 1)
        if not bid_changes and not ask_changes:  # a sure change: the best bid's size
            size = self.bids[best_bid]
            self._set(self.bids, bid_changes, best_bid, size + 1)
        if rng.random() < 0.1:  # a level added and removed within the interval: Binance
            side, changes, best, away = (  # sends it with 0 for a book that never held it
                (self.bids, bid_changes, best_bid, -1)
                if rng.random() < 0.5
                else (self.asks, ask_changes, best_ask, 1)
            )
            phantom = best + away * rng.randint(1, 40)
            if phantom > 0 and phantom not in side and phantom not in changes:
                changes[phantom] = 0
        first = self.last_update_id + 1
        # Binance counts every change of the book, many per level and event.
        self.last_update_id += len(bid_changes) + len(ask_changes) + rng.randint(0, 5)
        return {
            "e": "depthUpdate",
            "E": now_ms,
            "s": self.symbol,
            "U": first,
            "u": self.last_update_id,
            "b": self._texts(bid_changes, bids=True),
            "a": self._texts(ask_changes, bids=False),
        }

    def snapshot(self, limit: int | None = None) -> tuple[int, StrLevels, StrLevels]:
        """``(lastUpdateId, bids, asks)``, best first, at most ``limit`` levels a side."""
        return (
            self.last_update_id,
            self._texts(self.bids, bids=True, limit=limit),
            self._texts(self.asks, bids=False, limit=limit),
        )

    def snapshot_body(self, limit: int | None = None) -> DepthSnapshotBody:
        last, bids, asks = self.snapshot(limit)
        return {"lastUpdateId": last, "bids": bids, "asks": asks}

    def texts(
        self, bids: dict[int, int], asks: dict[int, int], limit: int | None = None
    ) -> tuple[StrLevels, StrLevels]:
        """Sides held as ticks -> lots (a copy kept by ``FaultyDepthStream``) as strings."""
        return self._texts(bids, bids=True, limit=limit), self._texts(asks, bids=False, limit=limit)

    # -- internals --------------------------------------------------------------------------

    def _move(self, side: dict[int, int], changes: dict[int, int], best: int, away: int) -> None:
        """One side towards its new best price ``best`` (``away``: -1 bids, +1 asks)."""
        rng = self._rng
        low, high = self.levels
        old_best = (max if away < 0 else min)(side, default=best)
        # Levels past the new best are taken out (traded through, or cancelled).
        for price in [p for p in side if (p - best) * away < 0]:
            self._set(side, changes, price, 0)
        # A best that moved away from the book leaves a hole: its top part fills at once.
        hole = min((old_best - best) * away, 20 * self.spacing)
        price = best + away * self._gap()
        while (price - best) * away < hole:
            self._set(side, changes, price, self._size(abs(price - best)))
            price += away * self._gap()
        if best not in side or rng.random() < 0.5:
            self._set(side, changes, best, self._size(0))
        # Churn: orders placed and cancelled, mostly near the top.
        reach = max(4, len(side)) * self.spacing
        for _ in range(rng.randint(1, 6)):
            distance = min(int(rng.expovariate(8.0 / reach)), 2 * reach)
            price = best + away * distance
            if price != best and price in side and rng.random() < 0.35:
                self._set(side, changes, price, 0)
            else:
                self._set(side, changes, price, self._size(distance))
        # Level counts kept within bounds, at the far end.
        if len(side) > high or (len(side) > low and rng.random() < 0.2):
            ordered = sorted(side, key=lambda p: (p - best) * away)
            extra = max(len(side) - high, 1)
            for price in ordered[-extra:]:
                if price != best:
                    self._set(side, changes, price, 0)
        if len(side) < low or (len(side) < high and rng.random() < 0.2):
            far = (min if away < 0 else max)(side, default=best)
            for _ in range(max(low - len(side), 1)):
                far += away * self._gap()
                self._set(side, changes, far, self._size(abs(far - best)))

    def _set(self, side: dict[int, int], changes: dict[int, int], price: int, lots: int) -> None:
        if price <= 0:  # a low-priced symbol's bids stop above zero
            return
        if lots:
            if side.get(price) == lots:
                return
            side[price] = lots
        elif side.pop(price, None) is None:
            return
        changes[price] = lots

    def _size(self, distance: int) -> int:
        """Lots for a level ``distance`` ticks from the best: random, larger deeper down."""
        scale = self._mean_lots * (1.0 + distance / 50.0)
        return max(1, round(scale * self._rng.lognormvariate(-0.5, 1.0)))

    def _gap(self) -> int:
        """Ticks to the next level: ``spacing`` on average, at least 1."""
        return self._rng.randint(1, 2 * self.spacing - 1)

    def _ticks(self, price: float) -> int:
        if not (math.isfinite(price) and price > 0):
            raise ValueError(f"expected a positive finite mid price, got {price!r}")
        return max(round(price / self.tick.size), 3)  # room for a best bid of one tick

    def _texts(self, levels: dict[int, int], *, bids: bool, limit: int | None = None) -> StrLevels:
        prices = sorted(levels, reverse=bids)
        if limit is not None:
            prices = prices[:limit]
        price_text, lot_text = self.tick.text, self.lot.text
        return [[price_text(p), lot_text(levels[p])] for p in prices]


# -- faults ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Faults:
    """Rates of the faults ``FaultyDepthStream`` injects, each a probability per event (or
    per snapshot for ``lagging_snapshot``)."""

    drop: float = 0.0
    duplicate: float = 0.0
    #: The event is held back and sent after the next one (adjacent events swapped).
    reorder: float = 0.0
    #: The snapshot comes from an older state: 1 to ``max_lag`` events behind the stream.
    lagging_snapshot: float = 0.0
    max_lag: int = 5

    @classmethod
    def all(cls, rate: float = 0.05, *, lagging_snapshot: float = 0.5) -> Faults:
        """Every fault on: events dropped, repeated and swapped at ``rate`` each."""
        return cls(rate, rate, rate, lagging_snapshot)


class FaultyDepthStream:
    """A ``SimBook``'s true diff events, delivered with ``faults``; the true book kept for the
    last ``history`` update ids (at least ``max_lag + 1``, for the lagging snapshots)."""

    def __init__(
        self,
        book: SimBook,
        faults: Faults = Faults(),
        *,
        seed: int = 7,
        history: int = 64,
        keep_true_events: bool = False,
    ) -> None:
        self.book = book
        self.faults = faults
        self._rng = random.Random(zlib.crc32(f"{seed}:{book.symbol}:faults".encode()))
        #: (update id, bids, asks) of the latest states, oldest first.
        self._states: deque[tuple[int, dict[int, int], dict[int, int]]] = deque(
            maxlen=max(history, faults.max_lag + 1)
        )
        self._record()
        self._held: DepthUpdatePayload | None = None
        #: Every event of the true stream, in order, if ``keep_true_events`` (tests only: it
        #: grows without bound).
        self.true_events: list[DepthUpdatePayload] | None = [] if keep_true_events else None
        #: Counters, for tests and logs.
        self.dropped = self.duplicated = self.reordered = self.lagged = 0

    def step(self, mid_price: float, now_ms: int) -> list[DepthUpdatePayload]:
        """Advance the true book one event; the events delivered now, in delivery order."""
        rng, faults = self._rng, self.faults
        true = self.book.step(mid_price, now_ms)
        self._record()
        if self.true_events is not None:
            self.true_events.append(true)
        event: DepthUpdatePayload | None = true
        if rng.random() < faults.drop:
            self.dropped += 1
            event = None
        elif self._held is None and rng.random() < faults.reorder:
            self.reordered += 1
            self._held, event = event, None
            return []
        out: list[DepthUpdatePayload] = []
        if event is not None:
            out.append(event)
            if rng.random() < faults.duplicate:
                self.duplicated += 1
                out.append(event)
        if self._held is not None:
            out.append(self._held)
            self._held = None
        return out

    def snapshot(self, limit: int | None = None) -> DepthSnapshotBody:
        """A ``GET /api/v3/depth`` answer: the current book, or an older one."""
        states = self._states
        index = len(states) - 1
        if self._rng.random() < self.faults.lagging_snapshot and index > 0:
            index -= self._rng.randint(1, min(self.faults.max_lag, index))
            self.lagged += 1
        last, bids, asks = states[index]
        bid_texts, ask_texts = self.book.texts(bids, asks, limit)
        return {"lastUpdateId": last, "bids": bid_texts, "asks": ask_texts}

    def true_at(self, update_id: int) -> tuple[StrLevels, StrLevels] | None:
        """The true book right after update id ``update_id`` (best first, as strings), if it
        is one of the recent states; None otherwise."""
        for last, bids, asks in reversed(self._states):
            if last == update_id:
                return self.book.texts(bids, asks)
            if last < update_id:
                break
        return None

    def _record(self) -> None:
        book = self.book
        self._states.append((book.last_update_id, dict(book.bids), dict(book.asks)))
