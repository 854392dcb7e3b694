"""The behaviour every ``RecentStore`` must have, run here against ``MemoryRecentStore``.

``RecentStoreContract`` is not collected by itself (its name does not start with ``Test``):
an implementation's test module subclasses it and provides one fixture, ``store``, an empty
store that is closed (and for Redis, wiped) when the test ends. ``tests/redis/
test_redis_recent.py`` runs the same cases against ``RedisRecentStore``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from marketcast.market import RecentRecord
from marketcast.store.recent import MemoryRecentStore, RecentStore

NAME = "trades:BTCUSDT"
OTHER = "trades:ETHUSDT"


def trade(order: int, price: float = 1.0) -> RecentRecord:
    """A record whose value tells versions of the same order apart by its price."""
    return RecentRecord(order, {"id": order, "p": price, "q": 0.5, "m": False})


def orders(records: list[RecentRecord]) -> list[int]:
    return [r.order for r in records]


async def append_all(store: RecentStore, name: str, numbers: range, keep: int = 5) -> None:
    for order in numbers:
        await store.append(name, trade(order), keep)


class RecentStoreContract:
    """Subclass with a ``store`` fixture to run the suite against an implementation."""

    async def test_unknown_name_is_empty(self, store: RecentStore) -> None:
        assert await store.last(NAME, 10) == []

    async def test_keeps_order_oldest_first(self, store: RecentStore) -> None:
        await append_all(store, NAME, range(1, 4))
        assert await store.last(NAME, 10) == [trade(1), trade(2), trade(3)]

    async def test_values_round_trip(self, store: RecentStore) -> None:
        value = {"id": 7, "p": 0.1 + 0.2, "s": "BTCUSDT", "m": True, "x": None, "n": {"a": [1]}}
        await store.append(NAME, RecentRecord(7, value), 5)
        assert await store.last(NAME, 1) == [RecentRecord(7, value)]

    async def test_trims_to_keep(self, store: RecentStore) -> None:
        await append_all(store, NAME, range(1, 8), keep=5)
        assert orders(await store.last(NAME, 10)) == [3, 4, 5, 6, 7]

    async def test_last_is_the_newest_count(self, store: RecentStore) -> None:
        await append_all(store, NAME, range(1, 6))
        assert orders(await store.last(NAME, 2)) == [4, 5]

    async def test_count_larger_than_kept_returns_all(self, store: RecentStore) -> None:
        await append_all(store, NAME, range(1, 4))
        assert orders(await store.last(NAME, 500)) == [1, 2, 3]

    async def test_count_zero_or_negative_returns_nothing(self, store: RecentStore) -> None:
        await append_all(store, NAME, range(1, 4))
        assert await store.last(NAME, 0) == []
        assert await store.last(NAME, -1) == []

    async def test_equal_order_is_a_repeat(self, store: RecentStore) -> None:
        await store.append(NAME, trade(5, 1.0), 5)
        await store.append(NAME, trade(5, 2.0), 5)
        assert await store.last(NAME, 10) == [trade(5, 1.0)]

    async def test_older_order_is_a_repeat(self, store: RecentStore) -> None:
        await append_all(store, NAME, range(5, 8))
        await store.append(NAME, trade(6, 9.0), 5)  # a takeover re-delivering kept trades
        await store.append(NAME, trade(1), 5)  # older than anything kept
        await store.append(NAME, trade(8), 5)
        assert await store.last(NAME, 10) == [trade(5), trade(6), trade(7), trade(8)]

    async def test_gaps_in_orders_are_kept(self, store: RecentStore) -> None:
        for order in (10, 12, 40):
            await store.append(NAME, trade(order), 5)
        assert orders(await store.last(NAME, 10)) == [10, 12, 40]

    async def test_names_are_independent(self, store: RecentStore) -> None:
        await append_all(store, NAME, range(10, 13))
        await append_all(store, OTHER, range(1, 3))  # older orders: not repeats of NAME's
        assert orders(await store.last(NAME, 10)) == [10, 11, 12]
        assert orders(await store.last(OTHER, 10)) == [1, 2]
        await append_all(store, OTHER, range(3, 10), keep=2)  # trimming OTHER spares NAME
        assert orders(await store.last(NAME, 10)) == [10, 11, 12]
        assert orders(await store.last(OTHER, 10)) == [8, 9]

    async def test_a_smaller_keep_applies_from_the_next_append(self, store: RecentStore) -> None:
        await append_all(store, NAME, range(1, 6), keep=5)
        await store.append(NAME, trade(6), 3)
        assert orders(await store.last(NAME, 10)) == [4, 5, 6]

    async def test_keep_zero_keeps_nothing(self, store: RecentStore) -> None:
        await store.append(NAME, trade(1), 0)
        assert await store.last(NAME, 10) == []

    async def test_negative_keep_is_refused(self, store: RecentStore) -> None:
        with pytest.raises(ValueError, match=r"non-negative|>= 0"):
            await store.append(NAME, trade(1), -1)


class TestMemoryRecentStore(RecentStoreContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[RecentStore]:
        store = MemoryRecentStore()
        yield store
        await store.close()


async def test_close_forgets_everything() -> None:
    store = MemoryRecentStore()
    await append_all(store, NAME, range(1, 4))
    await store.close()
    assert await store.last(NAME, 10) == []
