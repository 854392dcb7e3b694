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
