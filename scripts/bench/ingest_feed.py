"""The ingest scenario's upstream: 1-minute klines of many symbols, every resolution aggregated.

``KlineFeed`` is a marketcast ``Feed`` serving ``symbol(0) .. symbol(n - 1)`` at every
resolution. Each upstream update is one symbol's 1-minute kline, as an exchange sends it once
a second: the same open bar again with a new close, and every 60th update of a symbol closes
that bar (the next one opens a minute later). The feed builds every coarser resolution from it
with marketcast's own ``CandleAggregator`` — the code the Twelve Data feed uses for the
resolutions it aggregates — so one update moves eleven keys: the kline itself, then 3, 5, 15,
30, 60, 120, 240, D, W and M. They go to the stream manager together (``on_candles``: one
store-and-publish batch, one Redis round trip) or, with ``calls="each"`` or a marketcast
without ``on_candles`` (``--marketcast-src`` of an older commit), one ``on_candle`` per key,
each awaited as every feed does today.

Why the publish time travels in ``close``: a coarse bar's close is the newest finer bar's
close, so the stamp taken when the update reached the feed survives aggregation and every
resolution's frame carries it (``volume`` is summed, ``open`` is the oldest part's). Bar times
start at ``BAR_TIME_BASE`` (2100) so nothing else ever collides with them.

``KlineDriver`` plays the upstream: ``connections`` tasks, each one upstream connection that
hands its symbols' updates to the feed one after the other, awaiting each (as a feed reading
a socket does). ``saturate``: each connection sends its next update as soon as the previous
one returned and the loop had one turn; ``rate``: updates per second overall, shared by the
connections, late ones sent in a burst (at most ``BURST_MAX``) and the lag reported.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from marketcast.feeds.aggregate import CandleAggregator
from marketcast.market import BarKey, Candle, StreamKey, SymbolInfo
from marketcast.timeframes import RESOLUTIONS
from marketcast.types import Millis

from .common import BAR_TIME_BASE, now_us, symbol
from .gcmeter import GcMeter

#: One bar of a symbol is updated this many times, then closed (once a second for a minute).
UPDATES_PER_BAR = 60
MINUTE_MS = 60_000
#: Most updates one connection sends in one go when catching up in ``rate`` mode.
BURST_MAX = 200
#: How long a driver may overrun its window (a store stalled on Redis) before it is cancelled.
OVERRUN_S = 2.0


class CandleSink(Protocol):
    """What the feed hands candles to: ``StreamManager``."""

    async def on_candle(self, key: BarKey, candle: Candle) -> None: ...


#: ``StreamManager.on_candles``, where the marketcast under test has it.
CandlesCall = Callable[[Sequence[tuple[BarKey, Candle]]], Awaitable[None]]


def kline(seq: int, stamp_us: int) -> Candle:
    """A symbol's ``seq``-th 1-minute update: bar ``seq // 60``, closed on the 60th, every
    price the stamp (so aggregated bars carry it too)."""
    price = float(stamp_us)
    minute: Millis = BAR_TIME_BASE + (seq // UPDATES_PER_BAR) * MINUTE_MS
    closed = seq % UPDATES_PER_BAR == UPDATES_PER_BAR - 1
    return Candle(minute, price, price, price, price, 1.0, closed)


class KlineFeed:
    """A ``Feed`` of ``symbols`` benchmark symbols; see the module docstring."""

    name = "bench"

    def __init__(self, symbols: int, *, calls: str = "batch") -> None:
        if calls not in ("batch", "each"):
            raise ValueError(f"calls must be 'batch' or 'each', got {calls!r}")
        self._calls = calls
        self.resolutions = RESOLUTIONS
        self._infos = [
            SymbolInfo(symbol(i), "crypto", "bench", RESOLUTIONS, frozenset({BarKey}))
            for i in range(symbols)
        ]
        self.keys = [[BarKey(info.symbol, r) for r in RESOLUTIONS] for info in self._infos]
        #: Per symbol, each coarser resolution's key and the aggregator building it.
        self._coarse = [
            [(key, CandleAggregator(key.resolution, source=RESOLUTIONS[0])) for key in keys[1:]]
            for keys in self.keys
        ]
        self._sink: CandleSink | None = None
        self._many: CandlesCall | None = None
        self.watched: set[StreamKey] = set()
        #: Candles handed to the sink (a coarse bar closing and the next opening: two).
        self.candles = 0

    @property
    def batched(self) -> bool:
        """Whether updates go to the sink as one ``on_candles`` batch each."""
        return self._many is not None

    # -- Feed ------------------------------------------------------------------------------

    def symbols(self) -> Sequence[SymbolInfo]:
        return self._infos

    async def start(self, sink: CandleSink) -> None:
        self._sink = sink
        self._many = getattr(sink, "on_candles", None) if self._calls == "batch" else None

    async def close(self) -> None:
        self._sink = None

    async def watch(self, key: StreamKey) -> None:
        self.watched.add(key)

    async def unwatch(self, key: StreamKey) -> None:
        self.watched.discard(key)

    async def fetch_history(self, key: BarKey, end: Millis | None, limit: int) -> list[Candle]:
        """No history: the series starts with the first update."""
        return []

    # -- the upstream ------------------------------------------------------------------------

    async def update(self, index: int, seq: int, stamp_us: int) -> int:
        """Symbol ``index``'s ``seq``-th kline update; returns the candles it moved."""
        sink = self._sink
        if sink is None:
            raise RuntimeError("KlineFeed.update before start")
        first = kline(seq, stamp_us)
        items = [(self.keys[index][0], first)]
        append = items.append
        for key, aggregator in self._coarse[index]:
            for bar in aggregator.add_candle(first):
                append((key, bar))
        self.candles += len(items)
        many = self._many
        if many is not None:
            await many(items)
        else:
            for key, candle in items:
                await sink.on_candle(key, candle)
        return len(items)


@dataclass
class DriveResult:
    """What one driven window did, counted by publish stamp."""

    updates: int = 0
    in_window: int = 0
    candles_in_window: int = 0
    errors: int = 0
    max_lag_us: int = 0
    cancelled: bool = False
    #: In-window updates per symbol: what each subscriber of its keys should receive.
    per_symbol: list[int] = field(default_factory=list)
    first_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "updates": self.updates,
            "in_window": self.in_window,
            "candles_in_window": self.candles_in_window,
            "errors": self.errors,
            "max_lag_us": self.max_lag_us,
            "cancelled": self.cancelled,
            "per_symbol": self.per_symbol,
            "first_error": self.first_error,
        }


class Upstream(Protocol):
    """What ``KlineDriver`` drives: ``KlineFeed``, or the raw baseline's (``ingest_raw``)."""

    async def update(self, index: int, seq: int, stamp_us: int) -> int: ...


class KlineDriver:
    """Drives ``feed`` from ``connections`` concurrent upstream connections."""

    def __init__(self, feed: Upstream, symbols: int, connections: int) -> None:
        if connections < 1 or connections > symbols:
            raise ValueError(f"need 1..{symbols} connections, got {connections}")
        self.feed = feed
        self.symbols = symbols
        self.connections = connections
        #: Updates sent so far per symbol: the next one's ``seq``.
        self.seq = [0] * symbols

    async def run(self, mode: str, rate: float, t0: int, t1: int) -> DriveResult:
        if mode not in ("saturate", "rate"):
            raise ValueError(f"mode must be 'saturate' or 'rate', got {mode!r}")
        if mode == "rate" and rate <= 0:
            raise ValueError(f"rate mode needs a positive rate, got {rate}")
        result = DriveResult(per_symbol=[0] * self.symbols)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (t1 - now_us()) / 1e6 + OVERRUN_S
        share = rate / self.connections
        try:
            async with asyncio.timeout_at(deadline):
                await asyncio.gather(
                    *(
                        self._connection(c, mode, share, t0, t1, result)
                        for c in range(self.connections)
                    )
                )
        except TimeoutError:
            result.cancelled = True
        return result

    async def _connection(
        self, first: int, mode: str, rate: float, t0: int, t1: int, result: DriveResult
    ) -> None:
        mine = list(range(first, self.symbols, self.connections))
        position = 0
        start, sent = now_us(), 0
        interval_us = 1e6 / rate if mode == "rate" else 0.0
        while True:
            now = now_us()
            if now >= t1:
                return
            burst = 1
            if mode == "rate":
                due = int((now - start) / interval_us) + 1
                burst = min(due - sent, BURST_MAX)
                if burst <= 0:
                    await asyncio.sleep(max(start + sent * interval_us - now, 0) / 1e6)
                    continue
                result.max_lag_us = max(result.max_lag_us, now - int(start + sent * interval_us))
            for _ in range(burst):
                index = mine[position]
                position = (position + 1) % len(mine)
                await self._one(index, t0, t1, result)
                sent += 1
            if mode == "saturate":
                await asyncio.sleep(0)

    async def _one(self, index: int, t0: int, t1: int, result: DriveResult) -> None:
        seq = self.seq[index]
        self.seq[index] = seq + 1
        stamp = now_us()
        result.updates += 1
        counted = t0 <= stamp < t1
        if counted:
            result.in_window += 1
            result.per_symbol[index] += 1
        try:
            candles = await self.feed.update(index, seq, stamp)
        except Exception as exc:
            result.errors += 1
            if result.first_error is None:
                result.first_error = f"{type(exc).__name__}: {exc}"
            return
        if counted:
            result.candles_in_window += candles


async def drive_window(
    driver: KlineDriver, gc_meter: GcMeter, command: dict[str, Any]
) -> dict[str, Any]:
    """A ``drive`` command of either ingest process (marketcast's, the raw baseline's): the
    GC frozen first if asked, one driven window, and what the ``driven`` answer carries
    (the counts and the GC time the window took)."""
    if command.get("gc_freeze"):
        gc.collect()
        gc.freeze()
    before = gc_meter.snapshot()
    result = await driver.run(
        str(command["mode"]),
        float(command.get("rate", 0)),
        int(command["t0"]),
        int(command["t1"]),
    )
    gc_ms = sum(gc_meter.snapshot()["gc_ms"]) - sum(before["gc_ms"])
    return {**result.to_json(), "gc_ms": round(gc_ms, 1)}
