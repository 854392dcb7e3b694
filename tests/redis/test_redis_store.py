"""RedisCandleStore against a real redis-server: the shared CandleStore contract (the same
suite MemoryCandleStore passes), plus what is specific to Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from marketcast.store.base import CandleStore
from marketcast.store.redis import RedisCandleStore
from tests.unit.store_contract import KEY, CandleStoreContract, StoreFactory, bar


class TestRedisCandleStore(CandleStoreContract):
    @pytest.fixture
    async def store_factory(self, redis_client: Redis) -> AsyncIterator[StoreFactory]:
        made: list[RedisCandleStore] = []

        async def make(capacity: int) -> CandleStore:
            # A prefix per store: two stores made in one test must not share keys.
            store = RedisCandleStore(redis_client, capacity, prefix=f"test{len(made)}")
            made.append(store)
            return store

        yield make
        for store in made:
            await store.close()
        await redis_client.flushdb()


async def test_two_workers_share_one_store(redis_client: Redis) -> None:
    writer = RedisCandleStore(redis_client, 10)
    reader = RedisCandleStore(redis_client, 10)
    await writer.upsert(KEY, bar(0, 2.0, closed=False))
    await writer.upsert(KEY, bar(0, 3.0))
    assert await reader.last(KEY, 5) == [bar(0, 3.0)]


async def test_large_batches_are_split_and_trimmed(redis_client: Redis) -> None:
    store = RedisCandleStore(redis_client, 1000)
    await store.upsert_many(KEY, [bar(i, float(i + 1)) for i in range(1234)])
    assert await store.count(KEY) == 1000
    newest = await store.last(KEY, 2)
    assert [c.close for c in newest] == [1233.0, 1234.0]


async def test_negative_counts_are_refused(redis_client: Redis) -> None:
    store = RedisCandleStore(redis_client, 10)
    with pytest.raises(ValueError, match="count must be >= 0, got -1"):
        await store.last(KEY, -1)
    with pytest.raises(ValueError, match="limit must be >= 0, got -2"):
        await store.range(KEY, None, None, -2)
    with pytest.raises(ValueError, match="capacity must be >= 1 candle per key, got 0"):
        RedisCandleStore(redis_client, 0)


async def test_script_survives_a_flushed_script_cache(redis_client: Redis) -> None:
    store = RedisCandleStore(redis_client, 10)
    await store.upsert(KEY, bar(0))
    await redis_client.script_flush()  # what a Redis restart does to loaded scripts
    await store.upsert(KEY, bar(1))
    assert await store.count(KEY) == 2
