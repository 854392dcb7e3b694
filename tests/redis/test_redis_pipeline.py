"""``OrderedPipeline`` against a real redis-server: answers in order, at most ``depth`` in
flight, an error reply failing only its own command, a lost connection failing all in flight."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from marketcast.redis_pipeline import OrderedPipeline, pack


async def test_answers_come_in_order_with_at_most_depth_in_flight(redis_client: Redis) -> None:
    pipeline = OrderedPipeline(redis_client, depth=3)
    answers = []
    for _ in range(50):
        answers.append(await pipeline.send(pack(b"INCR", b"counter")))
        assert pipeline.in_flight <= 3
    assert await asyncio.gather(*answers) == list(range(1, 51))
    assert await redis_client.get("counter") == b"50"
    await pipeline.close()


async def test_arguments_are_sent_byte_exact(redis_client: Redis) -> None:
    """Bulk strings carry their length: separators inside an argument are data."""
    pipeline = OrderedPipeline(redis_client, depth=2)
    value = b"a\r\nb\nc*3\r\n$1\r\n\x00"
    assert await (await pipeline.send(pack(b"SET", b"k\r\n", value))) == b"OK"
    assert await redis_client.get("k\r\n") == value
    await pipeline.close()


async def test_an_error_reply_fails_only_its_own_command(redis_client: Redis) -> None:
    pipeline = OrderedPipeline(redis_client, depth=4)
    first = await pipeline.send(pack(b"SET", b"text", b"not a number"))
    failing = await pipeline.send(pack(b"INCR", b"text"))
    after = await pipeline.send(pack(b"INCR", b"number"))
    assert await first == b"OK"
    with pytest.raises(ResponseError, match="not an integer"):
        await failing
    assert await after == 1
    await pipeline.close()


async def test_a_lost_connection_fails_every_command_in_flight_and_the_next_reconnects(
    redis_client: Redis,
) -> None:
    pipeline = OrderedPipeline(redis_client, depth=4)
    connection_id = await (await pipeline.send(pack(b"CLIENT", b"ID")))
    blocked = await pipeline.send(pack(b"BLPOP", b"nothing-here", b"5"))
    behind = await pipeline.send(pack(b"PING"))
    assert pipeline.in_flight == 2
    killed = await redis_client.execute_command("CLIENT", "KILL", "ID", str(connection_id))
    assert killed == 1
    for answer in (blocked, behind):
        with pytest.raises(RedisConnectionError):
            await answer
    assert pipeline.in_flight == 0
    assert await (await pipeline.send(pack(b"PING"))) == b"PONG"
    assert await (await pipeline.send(pack(b"CLIENT", b"ID"))) != connection_id
    await pipeline.close()


async def test_an_idle_pipeline_gives_its_connection_back_to_the_pool(
    redis_client: Redis,
) -> None:
    pipeline = OrderedPipeline(redis_client, depth=2)
    pool = redis_client.connection_pool
    assert await (await pipeline.send(pack(b"PING"))) == b"PONG"
    await asyncio.sleep(0)  # the reader ends once nothing is in flight
    assert pipeline.in_flight == 0
    assert pipeline._connection is None
    assert not pool._in_use_connections  # type: ignore[attr-defined]
    await pipeline.close()


async def test_close_cancels_what_is_in_flight(redis_client: Redis) -> None:
    pipeline = OrderedPipeline(redis_client, depth=2)
    blocked = await pipeline.send(pack(b"BLPOP", b"nothing-here", b"5"))
    await pipeline.close()
    assert blocked.cancelled()
    assert await redis_client.ping()
