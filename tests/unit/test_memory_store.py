"""MemoryCandleStore: the shared CandleStore contract, plus what is specific to memory."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from marketcast.store.base import CandleStore
from marketcast.store.memory import MemoryCandleStore
from tests.unit.store_contract import KEY, CandleStoreContract, StoreFactory, bar


class TestMemoryCandleStore(CandleStoreContract):
    @pytest.fixture
    async def store_factory(self) -> AsyncIterator[StoreFactory]:
        made: list[MemoryCandleStore] = []

        async def make(capacity: int) -> CandleStore:
            store = MemoryCandleStore(capacity)
            made.append(store)
            return store

        yield make
        for store in made:
            await store.close()


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity must be >= 1 candle per key, got 0"):
        MemoryCandleStore(0)


async def test_negative_counts_are_refused() -> None:
    store = MemoryCandleStore(10)
    with pytest.raises(ValueError, match="count must be >= 0, got -1"):
        await store.last(KEY, -1)
    with pytest.raises(ValueError, match="limit must be >= 0, got -2"):
        await store.range(KEY, None, None, -2)


async def test_close_forgets_everything() -> None:
    store = MemoryCandleStore(10)
    await store.upsert(KEY, bar(0))
    await store.close()
    assert await store.count(KEY) == 0


async def test_put_replaces_the_newest_and_appends_as_upsert_does() -> None:
    """``put`` (the ingest path's synchronous write) keeps a series exactly as ``upsert``
    does: a new version of the newest bar replaces it, a newer bar is appended and trims
    to the capacity, an older one lands in order."""
    put, upserted = MemoryCandleStore(3), MemoryCandleStore(3)
    writes = [bar(0), bar(0, 2.0), bar(1), bar(1, 3.0), bar(2), bar(3), bar(3, 4.0), bar(2, 5.0)]
    for candle in writes:
        put.put(KEY, candle)
        await upserted.upsert(KEY, candle)
        assert await put.last(KEY, 3) == await upserted.last(KEY, 3)
    assert [c.time for c in await put.last(KEY, 3)] == [bar(1).time, bar(2).time, bar(3).time]
    assert (await put.last(KEY, 1))[0].close == 4.0
