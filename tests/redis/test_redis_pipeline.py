"""``OrderedPipeline`` against a real redis-server: answers in order, at most ``depth`` in
flight, an error reply failing only its own command, a lost connection failing all in flight."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

import marketcast.redis_pipeline as redis_pipeline
from marketcast.redis_health import CONNECTION_ERRORS, connect
from marketcast.redis_pipeline import OrderedPipeline, pack
from tests.redis.redis_server import RedisServer


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


async def test_answers_are_read_from_the_stream_itself_with_redis_pys_own_parser(
    redis_client: Redis,
) -> None:
    """The installed redis-py (no hiredis) reads exactly: the pipeline reads the answers
    from the connection's stream itself, many at once, and the connection goes back to the
    pool with nothing of the stream left unread (redis-py's next command on it works)."""
    pipeline = OrderedPipeline(redis_client, depth=8)
    answers = [await pipeline.send(pack(b"SET", b"big", b"x" * 100_000))]
    assert isinstance(redis_pipeline.exact_stream(pipeline._connection), asyncio.StreamReader)
    answers += [await pipeline.send(pack(b"GET", b"big")) for _ in range(5)]
    answers.append(await pipeline.send(pack(b"MGET", b"big", b"none")))
    results = await asyncio.gather(*answers)
    assert results[0] == b"OK"
    assert results[1:6] == [b"x" * 100_000] * 5
    assert results[6] == [b"x" * 100_000, None]
    await asyncio.sleep(0)  # the reader ends once nothing is in flight
    assert pipeline._connection is None
    for _ in range(3):  # redis-py on the connections the pipeline used and gave back
        assert await redis_client.get("big") == b"x" * 100_000
    await pipeline.close()


async def test_without_an_exact_parser_redis_py_reads_the_answers(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where redis-py's parser may read ahead (hiredis), its own reads are used: the same
    answers, in order, errors failing only their own command."""

    class NoSuchParser:
        pass

    monkeypatch.setattr(redis_pipeline, "_ExactParser", NoSuchParser)
    pipeline = OrderedPipeline(redis_client, depth=3)
    sent = [await pipeline.send(pack(b"INCR", b"n")) for _ in range(5)]
    failing = await pipeline.send(pack(b"EVALSHA", b"0" * 40, b"0"))
    after = await pipeline.send(pack(b"INCR", b"n"))
    assert await asyncio.gather(*sent) == [1, 2, 3, 4, 5]
    with pytest.raises(NoScriptError):
        await failing
    assert await after == 6
    await pipeline.close()


async def test_an_error_reply_raises_what_redis_py_would_raise(redis_client: Redis) -> None:
    """An error reply read from the stream becomes redis-py's own exception for it."""
    pipeline = OrderedPipeline(redis_client, depth=2)
    failing = await pipeline.send(pack(b"EVALSHA", b"0" * 40, b"0"))
    after = await pipeline.send(pack(b"PING"))
    with pytest.raises(NoScriptError, match=r"NOSCRIPT|No matching script"):
        await failing
    assert await after == b"PONG"
    await pipeline.close()


async def test_an_answer_slower_than_the_socket_timeout_fails_what_is_in_flight(
    redis_server: RedisServer,
) -> None:
    """Each read is bounded by the connection's socket timeout, as redis-py's: a Redis that
    stops answering fails the commands in flight as unreachable, and the next command gets a
    fresh connection."""
    client = connect(redis_server.url, timeout=0.2, name="slow-answer")
    pipeline = OrderedPipeline(client, depth=2)
    try:
        blocked = await pipeline.send(pack(b"BLPOP", b"nothing-here", b"3"))
        behind = await pipeline.send(pack(b"PING"))
        for answer in (blocked, behind):
            with pytest.raises(CONNECTION_ERRORS):
                await answer
        assert await (await pipeline.send(pack(b"PING"))) == b"PONG"
    finally:
        await pipeline.close()
        await client.aclose()
