"""The ``CandleStore`` seam."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from marketcast.market import BarKey, Candle
from marketcast.types import Millis


class CandleStore(Protocol):
    """Recent candles per key: at most ``capacity`` per key, unique by open time.

    Writing a candle whose open time is already stored replaces it (an open bar is updated
    many times before it closes). When a key holds more than ``capacity`` candles the oldest
    are dropped.
    """

    async def upsert(self, key: BarKey, candle: Candle) -> None: ...

    async def upsert_many(self, key: BarKey, candles: Sequence[Candle]) -> None: ...

    async def last(self, key: BarKey, count: int) -> list[Candle]:
        """The newest ``count`` candles, ascending."""
        ...

    async def range(
        self, key: BarKey, start: Millis | None, end: Millis | None, limit: int
    ) -> list[Candle]:
        """Candles with ``start <= time < end`` (None = unbounded), the newest ``limit`` of
        them, ascending."""
        ...

    async def count(self, key: BarKey) -> int: ...

    async def close(self) -> None: ...
