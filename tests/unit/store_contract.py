"""The behaviour every ``CandleStore`` must have, as a reusable test class.

Not collected by itself (its name does not start with ``Test``). An implementation's test
module subclasses it and provides one fixture, ``store_factory``: an async callable that
takes a capacity and returns an empty store, and that closes (and for Redis, wipes) every
store it made when the test ends::

    class TestRedisCandleStore(CandleStoreContract):
        @pytest.fixture
        async def store_factory(self) -> AsyncIterator[StoreFactory]: ...
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from marketcast.market import BarKey, Candle
from marketcast.store.base import CandleStore
from marketcast.types import Millis

StoreFactory = Callable[[int], Awaitable[CandleStore]]

KEY = BarKey("BTCUSDT", "1")
OTHER = BarKey("BTCUSDT", "5")
STEP = 60_000
T0 = 1_714_989_600_000  # 2024-05-06 10:00 UTC


def bar(index: int, close: float = 1.0, *, closed: bool = True) -> Candle:
    """A candle at ``T0 + index`` minutes whose close tells versions apart."""
    return Candle(T0 + index * STEP, 1.0, max(1.0, close), min(1.0, close), close, 1.0, closed)


def times(candles: list[Candle]) -> list[int]:
    return [(c.time - T0) // STEP for c in candles]


class CandleStoreContract:
    """Subclass with a ``store_factory`` fixture to run the suite against an implementation."""

    @pytest.fixture
    async def store(self, store_factory: StoreFactory) -> CandleStore:
        return await store_factory(100)

    async def test_unknown_key_is_empty(self, store: CandleStore) -> None:
        assert await store.count(KEY) == 0
        assert await store.last(KEY, 10) == []
        assert await store.range(KEY, None, None, 10) == []

    async def test_appends_in_order(self, store: CandleStore) -> None:
        for i in range(5):
            await store.upsert(KEY, bar(i))
        assert times(await store.last(KEY, 10)) == [0, 1, 2, 3, 4]
        assert await store.count(KEY) == 5

    async def test_replaces_by_open_time(self, store: CandleStore) -> None:
        await store.upsert(KEY, bar(0))
        await store.upsert(KEY, bar(1, 2.0, closed=False))
        await store.upsert(KEY, bar(1, 3.0, closed=False))
        await store.upsert(KEY, bar(1, 4.0, closed=True))
        assert await store.last(KEY, 10) == [bar(0), bar(1, 4.0, closed=True)]
        # An older candle is replaced in place, too.
        await store.upsert(KEY, bar(0, 9.0))
        assert await store.last(KEY, 10) == [bar(0, 9.0), bar(1, 4.0, closed=True)]
        assert await store.count(KEY) == 2

    async def test_out_of_order_inserts_end_up_sorted(self, store: CandleStore) -> None:
        for i in [5, 1, 3, 0, 4, 2, 3]:
            await store.upsert(KEY, bar(i, float(i + 1)))
        result = await store.last(KEY, 10)
        assert times(result) == [0, 1, 2, 3, 4, 5]
        assert [c.close for c in result] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]

    async def test_upsert_many_mixes_new_and_replaced(self, store: CandleStore) -> None:
        await store.upsert_many(KEY, [bar(2), bar(3)])
        await store.upsert_many(KEY, [bar(0), bar(1), bar(2, 5.0), bar(4)])
        await store.upsert_many(KEY, [])
        result = await store.last(KEY, 10)
        assert times(result) == [0, 1, 2, 3, 4]
        assert result[2].close == 5.0

    async def test_capacity_drops_the_oldest(self, store_factory: StoreFactory) -> None:
        store = await store_factory(3)
        for i in range(5):
            await store.upsert(KEY, bar(i))
        assert times(await store.last(KEY, 10)) == [2, 3, 4]
        assert await store.count(KEY) == 3
        # An insert older than everything kept is dropped at once; a newer one evicts.
        await store.upsert(KEY, bar(0))
        assert times(await store.last(KEY, 10)) == [2, 3, 4]
        await store.upsert_many(KEY, [bar(6), bar(5)])
        assert times(await store.last(KEY, 10)) == [4, 5, 6]

    async def test_capacity_is_per_key(self, store_factory: StoreFactory) -> None:
        store = await store_factory(2)
        for i in range(3):
            await store.upsert(KEY, bar(i))
        await store.upsert(OTHER, bar(0))
        assert await store.count(KEY) == 2
        assert await store.count(OTHER) == 1

    async def test_keys_are_independent(self, store: CandleStore) -> None:
        await store.upsert(KEY, bar(0, 2.0))
        await store.upsert(OTHER, bar(0, 3.0))
        assert [c.close for c in await store.last(KEY, 5)] == [2.0]
        assert [c.close for c in await store.last(OTHER, 5)] == [3.0]

    async def test_last_returns_newest_ascending(self, store: CandleStore) -> None:
        await store.upsert_many(KEY, [bar(i) for i in range(10)])
        assert times(await store.last(KEY, 3)) == [7, 8, 9]
        assert await store.last(KEY, 0) == []

    @pytest.mark.parametrize(
        ("start", "end", "limit", "expected"),
        [
            (None, None, 100, list(range(10))),
            (None, None, 3, [7, 8, 9]),
            (2, 5, 100, [2, 3, 4]),  # start inclusive, end exclusive
            (2, 8, 2, [6, 7]),  # the newest `limit` of the matches
            (None, 4, 2, [2, 3]),
            (7, None, 100, [7, 8, 9]),
            (5, 5, 100, []),
            (8, 2, 100, []),
            (20, None, 100, []),
            (None, -3, 100, []),
            (2, 8, 0, []),
        ],
    )
    async def test_range(
        self,
        store: CandleStore,
        start: int | None,
        end: int | None,
        limit: int,
        expected: list[int],
    ) -> None:
        await store.upsert_many(KEY, [bar(i) for i in range(10)])

        def at(index: int | None) -> Millis | None:
            return None if index is None else T0 + index * STEP

        assert times(await store.range(KEY, at(start), at(end), limit)) == expected

    async def test_range_bounds_between_open_times(self, store: CandleStore) -> None:
        await store.upsert_many(KEY, [bar(i) for i in range(4)])
        # start rounds up to the next stored open time, end excludes the bar opening there.
        result = await store.range(KEY, T0 + 1, T0 + 3 * STEP + 1, 10)
        assert times(result) == [1, 2, 3]

    async def test_results_are_copies(self, store: CandleStore) -> None:
        await store.upsert_many(KEY, [bar(i) for i in range(3)])
        result = await store.last(KEY, 3)
        result.clear()
        assert await store.count(KEY) == 3
