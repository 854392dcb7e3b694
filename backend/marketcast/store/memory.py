"""``MemoryCandleStore``: the default ``CandleStore``, a bounded sorted list per key.

Writes are dominated by one pattern — the newest bar of a key is replaced a few times a
second and, once per bucket, a new bar is appended — so both are O(1) here; only an
out-of-order write (a backfill landing after live bars) pays for a bisect and an insert.
Nothing awaits inside a method, so each call is atomic for asyncio callers.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from marketcast.market import BarKey, Candle
from marketcast.types import Millis


class _Series:
    """One key's candles, ascending by open time, at most ``capacity`` of them."""

    __slots__ = ("candles", "times")

    def __init__(self) -> None:
        #: Open times, parallel to ``candles``, kept apart so bisect needs no key function
        #: and no per-lookup allocation.
        self.times: list[Millis] = []
        self.candles: list[Candle] = []

    def upsert(self, candle: Candle, capacity: int) -> None:
        times, candles = self.times, self.candles
        if not times or candle.time > times[-1]:
            times.append(candle.time)
            candles.append(candle)
        elif candle.time == times[-1]:
            candles[-1] = candle
        else:
            index = bisect_left(times, candle.time)
            if times[index] == candle.time:
                candles[index] = candle
                return
            times.insert(index, candle.time)
            candles.insert(index, candle)
        excess = len(times) - capacity
        if excess > 0:
            del times[:excess]
            del candles[:excess]


def _check_count(name: str, value: int) -> None:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


class MemoryCandleStore:
    """``CandleStore`` in process memory; lost on restart, private to one worker."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1 candle per key, got {capacity}")
        #: Candles kept per key; the oldest beyond it are dropped on write.
        self.capacity = capacity
        self._series: dict[BarKey, _Series] = {}

    async def upsert(self, key: BarKey, candle: Candle) -> None:
        self.put(key, candle)

    def put(self, key: BarKey, candle: Candle) -> None:
        """``upsert`` without the coroutine: for callers on the ingest path that own this
        exact store type (``MemoryBus.publish_stored_many``)."""
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series()
        elif series.times and series.times[-1] == candle.time:
            series.candles[-1] = candle  # ``upsert``'s common case, without its call
            return
        series.upsert(candle, self.capacity)

    async def upsert_many(self, key: BarKey, candles: Sequence[Candle]) -> None:
        if not candles:
            return
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series()
        for candle in candles:
            series.upsert(candle, self.capacity)

    async def last(self, key: BarKey, count: int) -> list[Candle]:
        """The newest ``count`` candles, ascending."""
        _check_count("count", count)
        series = self._series.get(key)
        if series is None or count == 0:
            return []
        return series.candles[-count:]

    async def range(
        self, key: BarKey, start: Millis | None, end: Millis | None, limit: int
    ) -> list[Candle]:
        """Candles with ``start <= time < end`` (None = unbounded), the newest ``limit`` of
        them, ascending."""
        _check_count("limit", limit)
        series = self._series.get(key)
        if series is None or limit == 0:
            return []
        times = series.times
        low = 0 if start is None else bisect_left(times, start)
        high = len(times) if end is None else bisect_left(times, end)
        low = max(low, high - limit)
        return series.candles[low:high] if low < high else []

    async def count(self, key: BarKey) -> int:
        series = self._series.get(key)
        return 0 if series is None else len(series.times)

    async def close(self) -> None:
        """Drop everything: nothing outlives the store, and a closed store holds no memory."""
        self._series.clear()
