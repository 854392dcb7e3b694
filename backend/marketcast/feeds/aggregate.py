"""Candle building and aggregation — pure, no I/O, no clock.

Two jobs share this module because they share one rule: a series never has a hole and a bar
is emitted with ``closed=True`` exactly once.

- ``CandleBuilder`` turns trades into bars of one resolution (the simulator, and any upstream
  that sends trades rather than klines). Empty buckets become flat bars so that charts and
  aggregations downstream never have to guess what a missing bar means.
- ``CandleAggregator`` / ``aggregate`` build a resolution an upstream lacks from a finer one
  (3 from 1, W from D, ...). A finer open bar is updated many times before it closes, so the
  coarse bar is recomputed from the latest version of each finer bar instead of accumulating
  deltas, which would double count volume and keep stale highs and lows.

Both add volumes, and a binary float sum of decimal values is noisy (``0.1 + 0.2`` is
``0.30000000000000004``), so every sum goes through ``decimal_sum``: the one place where a
value bound for the wire is computed rather than copied (see "Numbers on the wire" in
docs/websocket.md). It lives here, not in a module of its own, because the layering
(docs/architecture.md) lets every feed import this module, and the ones that add already do;
open, high, low and close are only ever selected, never computed.

All buckets are UTC and come from ``marketcast.timeframes``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import NamedTuple

from marketcast.market import Candle
from marketcast.timeframes import bucket_start, next_bucket, nominal_ms, previous_bucket
from marketcast.types import Millis, Resolution

# -- decimal values -----------------------------------------------------------------------------


def decimals_of(value: float) -> int:
    """How many decimals the decimal value ``value`` stands for has: those of its shortest
    repr, the text ``repr`` and orjson write (``5.43488`` -> 5, ``1e-05`` -> 5, ``12.0`` -> 0).

    A float parsed from an upstream's decimal string (``float("21.63272000")``) has exactly
    the string's significant decimals, as long as the string has at most 15 significant
    digits. Infinities and NaN count as 0, so arithmetic on them goes on as before instead of
    raising on the ingest path; the parsers refuse them where the upstream could send them.
    """
    if value % 1 == 0:  # the fast path: whole volumes (stocks, forex), zero; ints too
        return 0
    text = repr(value)  # a float, not whole: below 2**52, "0.25", "1e-05", "1.5e-07", "inf"
    point = text.find(".")
    if "e" not in text:
        return len(text) - point - 1 if point >= 0 else 0
    mantissa, _, exponent = text.partition("e")
    return (len(mantissa) - point - 1 if point >= 0 else 0) - int(exponent)


def decimal_sum(a: float, b: float) -> float:
    """``a + b`` as decimal values: the float nearest to the exact decimal sum, so its shortest
    repr is that sum (``decimal_sum(0.1, 0.2)`` is ``0.3``). A difference is
    ``decimal_sum(a, -b)``.

    The rule: the sum is rounded to the most decimals either term has (``decimals_of``). The
    exact decimal sum of values with at most ``d`` decimals has at most ``d`` decimals, so the
    rounding drops no digit of it, only the binary noise. Unlike rounding to a configured
    precision it needs no instrument metadata (the Twelve Data feed has none), cannot cut a
    value finer than expected (an upstream may change a symbol's step size), and keeps to the
    instrument's decimals whenever the terms do (the simulator rounds its prices and sizes to
    them).

    Exact while ``|a| + |b|``, counted in units of the last decimal, stays below 2**51 (about
    2.2e15: 15 significant digits; 22 million BTC at 8 decimals, 22 billion shares at 5): the
    error of the float sum, the terms' own included, is then below half a unit of the last
    decimal, and ``round`` is correctly rounded. Beyond that a double cannot hold such a
    decimal anyway, and the result still has at most that many decimals: no noise is added.
    Properties checked against ``decimal.Decimal``: tests/unit/test_decimal_sums.py.
    """
    if a % 1 == 0 and b % 1 == 0:  # the fast path: whole numbers (below 2**53) add exactly
        return a + b
    places = max(decimals_of(a), decimals_of(b))
    return round(a + b, places) if places else a + b  # NaN and infinities as they are


def _flat_bars(
    start: Millis, stop: Millis, price: float, resolution: Resolution, keep: int | None = None
) -> list[Candle]:
    """Closed zero-volume bars for every bucket in ``[start, stop)``, all at ``price`` — or,
    with ``keep``, for the newest ``keep`` of them only (older buckets are skipped, not built,
    so the work is bounded whatever the span)."""
    if keep is not None and resolution != "M":  # every other bucket has one fixed length
        start = max(start, stop - keep * nominal_ms(resolution))
    bars: list[Candle] = []
    while start < stop:
        bars.append(Candle(start, price, price, price, price, 0.0, closed=True))
        start = next_bucket(start, resolution)
    if keep is not None and len(bars) > keep:  # months, whose lengths differ
        del bars[: len(bars) - keep]
    return bars


def _check_aligned(candle: Candle, resolution: Resolution, role: str) -> None:
    """Refuse a candle whose time is not a bucket open: it would silently land in a wrong bar."""
    expected = bucket_start(candle.time, resolution)
    if expected != candle.time:
        raise ValueError(
            f"{role} candle time {candle.time} is not the open of a {resolution!r} bucket "
            f"(expected {expected})"
        )


class CandleBuilder:
    """Folds trades into the bars of one resolution.

    After ``close_until`` has closed the current bar the builder holds *no* open bar: the next
    trade opens it. An open bar is never invented without a trade, so a live open bar always
    has a real open price; flat bars are only emitted already closed, for buckets that have
    fully elapsed without a trade.
    """

    def __init__(self, resolution: Resolution) -> None:
        self.resolution: Resolution = resolution
        #: The bar still taking trades; None before the first trade and after close_until.
        self._bar: Candle | None = None
        #: When there is no open bar but a history: the first bucket that has no bar emitted
        #: yet, and the price its flat bar would carry. Trades before that bucket are late.
        self._resume: tuple[Millis, float] | None = None

    @property
    def current(self) -> Candle | None:
        """The open bar, if a trade (or ``seed``) opened one and it has not been closed."""
        return self._bar

    @property
    def next_close_at(self) -> Millis | None:
        """The earliest time at which ``close_until`` would emit something; lets a timer sleep
        exactly until a bar is due instead of polling."""
        if self._bar is not None:
            return next_bucket(self._bar.time, self.resolution)
        if self._resume is not None:
            return next_bucket(self._resume[0], self.resolution)
        return None

    def seed(self, candle: Candle) -> None:
        """Continue from ``candle`` (e.g. the last bar of a backfill), replacing any state.

        An open candle becomes the bar that the next trades update, so the live bar keeps the
        backfill's open time and open price; a closed one only sets where the series resumes.
        Whatever the builder held and had not emitted closed is dropped, so only whoever owns
        the live stream may seed (the simulator, when a key is watched): a history request
        that re-seeded a streaming builder cost every subscriber the bar it was about to close.
        """
        _check_aligned(candle, self.resolution, "seed")
        if candle.closed:
            self._bar = None
            self._resume = (next_bucket(candle.time, self.resolution), candle.close)
        else:
            self._bar = candle
            self._resume = None

    def add_trade(self, ts: Millis, price: float, size: float) -> list[Candle]:
        """Apply one trade; return the candles to emit, oldest first (closed ones before the
        open one). A trade older than the current bucket is late and ignored."""
        if not (math.isfinite(price) and price > 0):
            raise ValueError(f"trade price must be a finite positive number, got {price!r}")
        if not (math.isfinite(size) and size >= 0):
            raise ValueError(f"trade size must be a finite number >= 0, got {size!r}")
        start = bucket_start(ts, self.resolution)
        emitted: list[Candle] = []
        bar = self._bar
        if bar is not None:
            if start < bar.time:
                return []
            if start == bar.time:
                bar = Candle(
                    bar.time,
                    bar.open,
                    max(bar.high, price),
                    min(bar.low, price),
                    price,
                    decimal_sum(bar.volume, size),
                )
                self._bar = bar
                return [bar]
            emitted.append(replace(bar, closed=True))
            emitted += _flat_bars(
                next_bucket(bar.time, self.resolution), start, bar.close, self.resolution
            )
        elif self._resume is not None:
            resume_at, last_close = self._resume
            if start < resume_at:
                return []
            emitted += _flat_bars(resume_at, start, last_close, self.resolution)
        bar = Candle(start, price, price, price, price, size)
        self._bar = bar
        self._resume = None
        emitted.append(bar)
        return emitted

    def close_until(self, now: Millis, *, keep: int | None = None) -> list[Candle]:
        """Close every bar whose bucket ended at or before ``now``; return them, oldest first.

        Called by a timer so that a bar closes on time even when no trade arrives. Buckets that
        elapsed without a trade come out as flat closed bars; the bucket containing ``now`` is
        left without a bar until its first trade. ``keep`` bounds the flat bars to the newest
        ``keep`` (a key left idle for a long time: the older buckets are skipped, not built).
        """
        current = bucket_start(now, self.resolution)
        bar = self._bar
        if bar is not None:
            if current <= bar.time:
                return []
            emitted = [replace(bar, closed=True)]
            emitted += _flat_bars(
                next_bucket(bar.time, self.resolution), current, bar.close, self.resolution, keep
            )
            self._bar = None
            self._resume = (current, bar.close)
            return emitted
        if self._resume is not None and current > self._resume[0]:
            resume_at, last_close = self._resume
            self._resume = (current, last_close)
            return _flat_bars(resume_at, current, last_close, self.resolution, keep)
        return []


def can_aggregate(source: Resolution, target: Resolution) -> bool:
    """Whether every ``source`` bucket lies inside exactly one ``target`` bucket.

    That needs the target's length to be a multiple of the source's *and* its bucket opens to
    be source bucket opens: weeks open on Monday, four days after the epoch, which is fine for
    any source up to a day; months have no fixed length, so only sources dividing a day fit.
    """
    if source == target:
        return True
    if source == "M":
        return False
    size = nominal_ms(source)
    if target == "M":
        return nominal_ms("D") % size == 0
    target_size = nominal_ms(target)
    some_open = bucket_start(100 * target_size, target)
    return target_size % size == 0 and some_open % size == 0


class _Summary(NamedTuple):
    """OHLV of the finer bars of a coarse bucket that are no longer the newest one."""

    open: float
    high: float
    low: float
    volume: float


def _summarize(parts: Sequence[Candle]) -> _Summary:
    """Fold ``parts`` (ascending, non-empty) left to right. The volume is an exact decimal sum
    (``decimal_sum``), so it does not depend on the order; the fold keeps the order of a direct
    sum anyway, so incremental and batch results are equal to the last bit even beyond the
    magnitudes where the sum is exact."""
    first = parts[0]
    high, low, volume = first.high, first.low, first.volume
    for part in parts[1:]:
        high = max(high, part.high)
        low = min(low, part.low)
        volume = decimal_sum(volume, part.volume)
    return _Summary(first.open, high, low, volume)


class CandleAggregator:
    """Builds ``target`` candles from a stream of ``source`` candles (open updates included).

    The coarse bar is closed when the finer bar that ends its bucket arrives closed, or when a
    finer bar of a later bucket arrives. It does not fill holes: a coarse bucket with no finer
    bar gets no bar, mirroring its input (``CandleBuilder`` input has no holes anyway).
    """

    def __init__(self, target: Resolution, *, source: Resolution) -> None:
        if not can_aggregate(source, target):
            raise ValueError(
                f"cannot aggregate {source!r} candles into {target!r}: expected a source whose "
                f"buckets each fit inside one {target!r} bucket"
            )
        self.target: Resolution = target
        self.source: Resolution = source
        #: Open time of the coarse bar being built; None between a close and the next input.
        self._start: Millis | None = None
        #: Open time of the finer bucket that ends the coarse one: its closing closes the bar.
        self._last_part: Millis = 0
        #: Latest version of every finer bar of the current coarse bucket, by open time.
        self._parts: dict[Millis, Candle] = {}
        #: Open time of the newest finer bar; only it is expected to change, so the others are
        #: kept folded in ``_settled`` and an update costs O(1) instead of O(parts).
        self._newest: Millis = 0
        self._settled: _Summary | None = None
        #: Coarse bars opening before this were emitted closed; later input for them is late.
        self._done_until: Millis | None = None

    def add_candle(self, candle: Candle) -> list[Candle]:
        """Apply one finer candle; return the coarse candles to emit, oldest first."""
        if self._start is not None and candle.time == self._newest:
            # The common case, a new version of the newest finer bar: its time was checked
            # when that bar arrived and lies in the current coarse bucket, so what the full
            # path below would do reduces to this.
            self._parts[candle.time] = candle
            bar = self._bar(candle)
            if candle.closed and candle.time == self._last_part:
                bar = replace(bar, closed=True)
                self._finish()
            return [bar]
        _check_aligned(candle, self.source, "source")
        start = bucket_start(candle.time, self.target)
        if self._done_until is not None and start < self._done_until:
            return []
        emitted: list[Candle] = []
        if self._start is not None:
            if start < self._start:
                return []
            if start > self._start:
                emitted.append(replace(self._bar(self._parts[self._newest]), closed=True))
                self._finish()
        if self._start is None:
            self._start = start
            self._last_part = previous_bucket(next_bucket(start, self.target), self.source)
            self._parts = {}
            self._settled = None
        self._put(candle)
        bar = self._bar(self._parts[self._newest])
        if candle.closed and candle.time == self._last_part:
            bar = replace(bar, closed=True)
            self._finish()
        emitted.append(bar)
        return emitted

    def _put(self, candle: Candle) -> None:
        parts = self._parts
        if not parts or candle.time > self._newest:
            if parts:
                previous = parts[self._newest]
                self._settled = (
                    _summarize([previous])
                    if self._settled is None
                    else _Summary(
                        self._settled.open,
                        max(self._settled.high, previous.high),
                        min(self._settled.low, previous.low),
                        decimal_sum(self._settled.volume, previous.volume),
                    )
                )
            self._newest = candle.time
            parts[candle.time] = candle
            return
        parts[candle.time] = candle
        if candle.time < self._newest:
            older = [parts[t] for t in sorted(parts) if t != self._newest]
            self._settled = _summarize(older)

    def _bar(self, newest: Candle) -> Candle:
        """The coarse bar of the current bucket, ``newest`` being its newest finer bar.

        It runs for every coarse resolution of every finer update, so ``max`` and ``min`` are
        written as conditionals: the same results (``max(a, b)`` is ``a`` unless ``b > a``,
        NaN included) without a call each: about a quarter of ``add_candle``'s common case
        (docs/performance.md, the ninth full run)."""
        start, settled = self._start, self._settled
        assert start is not None
        if settled is None:
            return Candle(
                start, newest.open, newest.high, newest.low, newest.close, newest.volume, False
            )
        high, low = settled.high, settled.low
        return Candle(
            start,
            settled.open,
            newest.high if newest.high > high else high,
            newest.low if newest.low < low else low,
            newest.close,
            decimal_sum(settled.volume, newest.volume),
            False,
        )

    def _finish(self) -> None:
        assert self._start is not None
        self._done_until = next_bucket(self._start, self.target)
        self._start = None
        self._parts = {}
        self._settled = None


def aggregate(candles: Sequence[Candle], target: Resolution, *, source: Resolution) -> list[Candle]:
    """Batch form of ``CandleAggregator`` for history: the final version of every coarse bar,
    ascending. Input may hold several versions of a finer bar; the last one (in time order,
    then input order) wins, as it would live."""
    aggregator = CandleAggregator(target, source=source)
    latest: dict[Millis, Candle] = {}
    for candle in sorted(candles, key=lambda c: c.time):
        for bar in aggregator.add_candle(candle):
            latest[bar.time] = bar
    return list(latest.values())
