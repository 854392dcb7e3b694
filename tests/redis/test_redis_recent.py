"""RedisRecentStore against a real redis-server: the shared RecentStore contract (the same
suite MemoryRecentStore passes), plus what is specific to Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest
from redis.asyncio import Redis

from marketcast.errors import ServiceUnavailable
from marketcast.market import RecentRecord
from marketcast.redis_health import RedisHealth, connect
from marketcast.store.recent import RecentStore
from marketcast.store.redis_recent import RedisRecentStore
from tests.redis.redis_server import RedisServer
from tests.unit.test_recent_store import NAME, RecentStoreContract, orders, trade


class TestRedisRecentStore(RecentStoreContract):
    @pytest.fixture
    async def store(self, redis_client: Redis) -> AsyncIterator[RecentStore]:
        store = RedisRecentStore(redis_client, prefix="test")
        yield store
        await store.close()
        await redis_client.flushdb()


async def test_key_layout(redis_client: Redis) -> None:
    store = RedisRecentStore(redis_client)
    assert store.redis_key(NAME) == "marketcast:recent:trades:BTCUSDT"
    assert RedisRecentStore(redis_client, prefix="p").redis_key(NAME) == "p:recent:trades:BTCUSDT"
    await store.append(NAME, trade(41), 500)
    await store.append(NAME, trade(42), 500)
    assert await redis_client.type(store.redis_key(NAME)) == b"zset"
    kept = await redis_client.zrange(store.redis_key(NAME), 0, -1, withscores=True)
    assert kept == [
        (orjson.dumps({"o": 41, "v": trade(41).value}), 41.0),
        (orjson.dumps({"o": 42, "v": trade(42).value}), 42.0),
    ]
    assert kept[0][0] == b'{"o":41,"v":{"id":41,"p":1.0,"q":0.5,"m":false}}'


async def test_two_workers_share_one_store(redis_client: Redis) -> None:
    old_owner = RedisRecentStore(redis_client)
    new_owner = RedisRecentStore(redis_client)
    for order in (1, 2, 3):
        await old_owner.append(NAME, trade(order), 500)
    for order in (2, 3, 4):  # the new owner re-delivers what the old one already stored
        await new_owner.append(NAME, trade(order, 9.0), 500)
    assert await old_owner.last(NAME, 10) == [trade(1), trade(2), trade(3), trade(4, 9.0)]


async def test_concurrent_appends_keep_each_order_once(redis_client: Redis) -> None:
    stores = [RedisRecentStore(redis_client) for _ in range(4)]
    # 80 at once: below the client's pool of 100 connections (beyond it redis-py raises
    # MaxConnectionsError, a ConnectionError, which the store reports as an outage).
    await asyncio.gather(
        *(store.append(NAME, trade(order), 50) for order in range(1, 21) for store in stores)
    )
    kept = await stores[0].last(NAME, 100)
    assert orders(kept) == sorted(set(orders(kept)))  # strictly increasing: no duplicates
    assert kept[-1].order == 20


async def test_orders_near_2_53_compare_exactly(redis_client: Redis) -> None:
    store = RedisRecentStore(redis_client)
    top = 2**53 - 1
    await store.append(NAME, trade(top - 1), 5)
    await store.append(NAME, trade(top), 5)
    await store.append(NAME, trade(top, 2.0), 5)  # equal: a repeat
    await store.append(NAME, trade(top - 1, 2.0), 5)  # one below: a repeat
    assert await store.last(NAME, 5) == [trade(top - 1), trade(top)]


async def test_orders_a_score_cannot_hold_are_refused(redis_client: Redis) -> None:
    store = RedisRecentStore(redis_client)
    with pytest.raises(ValueError, match="order must be below 2\\*\\*53"):
        await store.append(NAME, trade(2**53), 5)
    assert await store.last(NAME, 5) == []


async def test_append_is_one_round_trip(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RedisRecentStore(redis_client)
    await store.append(NAME, trade(1), 5)  # loads the script

    commands: list[object] = []
    execute: Callable[..., Awaitable[object]] = redis_client.execute_command

    async def counted(*args: object, **options: object) -> object:
        commands.append(args[0])
        return await execute(*args, **options)

    monkeypatch.setattr(redis_client, "execute_command", counted)
    await store.append(NAME, trade(2), 5)
    await store.append(NAME, trade(2), 5)  # a repeat costs the same
    assert commands == ["EVALSHA", "EVALSHA"]


async def test_script_survives_a_flushed_script_cache(redis_client: Redis) -> None:
    store = RedisRecentStore(redis_client)
    await store.append(NAME, trade(1), 5)
    await redis_client.script_flush()  # what a Redis restart does to loaded scripts
    await store.append(NAME, trade(2), 5)
    assert orders(await store.last(NAME, 5)) == [1, 2]


async def test_close_leaves_the_client_open(redis_client: Redis) -> None:
    store = RedisRecentStore(redis_client)
    await store.append(NAME, trade(1), 5)
    await store.close()
    assert await redis_client.ping()
    assert orders(await RedisRecentStore(redis_client).last(NAME, 5)) == [1]


async def test_an_outage_is_service_unavailable_and_reported(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = RedisServer(tmp_path_factory.mktemp("recent-restart"))
    server.start()
    client = connect(server.url, timeout=1.0, name="recent")
    health = RedisHealth(client, interval=60.0, timeout=1.0)
    store = RedisRecentStore(client, health=health)
    try:
        assert await health.probe()
        await store.append(NAME, trade(1), 5)
        server.stop()
        with pytest.raises(ServiceUnavailable, match="retry shortly"):
            await store.append(NAME, trade(2), 5)
        assert not health.reachable
        assert health.epoch == 1
        with pytest.raises(ServiceUnavailable):
            await store.last(NAME, 5)
        server.start()  # nothing is persisted: the restarted Redis is empty
        assert await health.probe()
        await store.append(NAME, RecentRecord(2, {"id": 2}), 5)
        assert await store.last(NAME, 5) == [RecentRecord(2, {"id": 2})]
    finally:
        await store.close()
        await client.aclose()
        server.stop()
