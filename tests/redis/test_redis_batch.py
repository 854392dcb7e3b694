"""Several keys' candles stored and published in one round trip (``publish_stored_many``), and
the bus reader that reads the subscription's stream itself, against a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

import marketcast.bus.redis as bus_redis
import marketcast.bus.redis_messages as redis_messages
import marketcast.redis_pipeline as redis_pipeline
from marketcast.bus.redis import RedisBus
from marketcast.channels.bars import bar_update
from marketcast.market import BarKey, Candle
from marketcast.redis_health import connect
from marketcast.store.redis import PUBLISH_BATCH, RedisCandleStore
from marketcast.wire import Frame
from tests.redis.redis_server import RedisServer
from tests.redis.test_redis_bus import eventually

MINUTE = 60_000
KEYS = [BarKey("BTCUSDT", r) for r in ("1", "5", "60", "D")]


def topic(key: BarKey) -> str:
    return f'bars:{{"resolution":"{key.resolution}","symbol":"{key.symbol}"}}'


def items(keys: list[BarKey], index: int) -> list[tuple[BarKey, Candle, Frame]]:
    out = []
    for key in keys:
        candle = Candle(index * MINUTE, 1.0, 2.0, 0.5, 1.5, float(index), closed=False)
        out.append((key, candle, bar_update(topic(key), key, candle)))
    return out


def unpack(command: bytes) -> list[bytes]:
    """The arguments of one packed command (a RESP array of bulk strings)."""
    assert command.startswith(b"*"), command[:20]
    head, rest = command[1:].split(b"\r\n", 1)
    args = []
    for _ in range(int(head)):
        size, rest = rest[1:].split(b"\r\n", 1)
        args.append(rest[: int(size)])
        assert rest[int(size) : int(size) + 2] == b"\r\n"
        rest = rest[int(size) + 2 :]
    assert rest == b""
    return args


def record_commands(bus: RedisBus, monkeypatch: pytest.MonkeyPatch) -> list[list[bytes]]:
    """The arguments of every store call ``bus`` sends from now on (sent as usual); the
    caller's ``monkeypatch.undo()`` stops the recording."""
    sent: list[list[bytes]] = []
    pipeline = bus._pipeline
    send = pipeline.send

    async def recorded(command: bytes) -> asyncio.Future[object]:
        sent.append(unpack(command))
        return await send(command)

    monkeypatch.setattr(pipeline, "send", recorded)
    return sent


def message_of(command: list[bytes]) -> bytes:
    """ARGV[3] of a store call: the batch's one message."""
    assert command[2] == b"0"  # no KEYS: the sets are named in ARGV
    return command[3 + 2]


def candles_of(command: list[bytes]) -> int:
    """The candles a store call writes: the sets it names, ARGV[7]."""
    return len(command[3 + 6].split(b"\n"))


@pytest.fixture
async def workers(
    redis_server: RedisServer, redis_client: Redis
) -> AsyncIterator[tuple[RedisBus, RedisBus, list[Frame], list[Frame]]]:
    subscribers = [connect(redis_server.url, timeout=2.0, name=n, retries=0) for n in "ab"]
    owner, receiver = (
        RedisBus(redis_client, s, channel="batch:updates", worker_id=n)
        for s, n in zip(subscribers, ("owner", "receiver"), strict=True)
    )
    local: list[Frame] = []
    remote: list[Frame] = []
    await owner.start(local.append)
    await receiver.start(remote.append)
    await eventually(lambda: owner.connected and receiver.connected)
    yield owner, receiver, local, remote
    for bus in (owner, receiver):
        await bus.close()
    for subscriber in subscribers:
        await subscriber.aclose()


async def test_a_batch_is_one_script_call_stored_then_published_in_order(
    workers: tuple[RedisBus, RedisBus, list[Frame], list[Frame]],
    redis_client: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner, _, local, remote = workers
    store = RedisCandleStore(redis_client, 100)
    await owner.publish_stored_many(store, items(KEYS, 0))  # loads the script
    commands = record_commands(owner, monkeypatch)
    batch = items(KEYS, 1)
    await owner.publish_stored_many(store, batch)
    assert [command[0] for command in commands] == [b"EVAL"]
    assert candles_of(commands[0]) == len(KEYS)  # every key named, one call
    monkeypatch.undo()
    frames = [frame for _, _, frame in items(KEYS, 0) + batch]
    assert local == frames  # this worker's hub got them once written, in order
    await eventually(lambda: len(remote) == len(frames))
    assert remote == frames  # the other worker got each message, in order
    for key, candle, _ in batch:
        assert await store.last(key, 5) == [
            Candle(0, 1.0, 2.0, 0.5, 1.5, 0.0),
            candle,
        ]


async def test_a_large_batch_goes_in_calls_of_publish_batch_candles(
    workers: tuple[RedisBus, RedisBus, list[Frame], list[Frame]],
    redis_client: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner, _, local, remote = workers
    store = RedisCandleStore(redis_client, 1000)
    await owner.publish_stored_many(store, items(KEYS[:1], 0))
    batch = [item for index in range(1, PUBLISH_BATCH + 11) for item in items(KEYS[:1], index)]
    commands = record_commands(owner, monkeypatch)
    await owner.publish_stored_many(store, batch)
    monkeypatch.undo()
    assert [candles_of(command) for command in commands] == [PUBLISH_BATCH, 10]
    assert message_of(commands[0]) == b""  # only the last call publishes
    assert [f.order for f in local] == [i * MINUTE for i in range(PUBLISH_BATCH + 11)]
    await eventually(lambda: len(remote) == PUBLISH_BATCH + 11)
    assert await store.count(KEYS[0]) == PUBLISH_BATCH + 11


async def test_a_store_on_another_redis_is_written_then_published_per_candle(
    workers: tuple[RedisBus, RedisBus, list[Frame], list[Frame]], redis_server: RedisServer
) -> None:
    owner, _, local, remote = workers
    other = connect(redis_server.url, timeout=2.0, name="other")
    try:
        store = RedisCandleStore(other, 100, prefix="elsewhere")
        batch = items(KEYS, 0)
        await owner.publish_stored_many(store, batch)
        assert local == [frame for _, _, frame in batch]
        await eventually(lambda: len(remote) == len(batch))
        assert await store.last(KEYS[-1], 1) == [batch[-1][1]]
    finally:
        await other.aclose()


async def test_the_reader_falls_back_to_redis_py_where_its_parser_buffers(
    redis_server: RedisServer, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a parser that may read ahead (hiredis), the stream is not read directly."""

    class NoSuchParser:
        pass

    monkeypatch.setattr(redis_pipeline, "_ExactParser", NoSuchParser)
    subscriber = connect(redis_server.url, timeout=2.0, name="fallback", retries=0)
    bus = RedisBus(redis_client, subscriber, channel="fallback:updates", worker_id="reader")
    got: list[Frame] = []
    try:
        await bus.start(got.append)
        await eventually(lambda: bus.connected)
        frames = [frame for _, _, frame in items(KEYS, 0)]
        await bus.publish(frames[0])  # its own: delivered locally, its echo skipped
        for frame in frames:
            await redis_client.publish(
                "fallback:updates", redis_messages.encode(b"F", b"someone-else", frame)
            )
        await eventually(lambda: len(got) == 5)
        await asyncio.sleep(0.1)  # an echo of its own frame would be here by now
        assert got == [frames[0], *frames]
    finally:
        await bus.close()
        await subscriber.aclose()


async def test_the_reader_reads_the_stream_itself_with_redis_pys_own_parser(
    redis_server: RedisServer,
) -> None:
    """The installed redis-py (no hiredis) reads exactly: the fast path is the one taken."""
    subscriber = connect(redis_server.url, timeout=2.0, name="plain", retries=0)
    pubsub = subscriber.pubsub()
    try:
        await pubsub.subscribe("plain:updates")
        assert await pubsub.get_message(timeout=2.0) is not None  # the confirmation
        assert isinstance(redis_pipeline.exact_stream(pubsub.connection), asyncio.StreamReader)
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await subscriber.aclose()


async def test_callers_queued_together_share_at_most_in_flight_calls(
    workers: tuple[RedisBus, RedisBus, list[Frame], list[Frame]],
    redis_client: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Group commit, pipelined: updates arriving together go out as at most ``IN_FLIGHT``
    script calls (whole callers each), each carrying one ``B`` message; each caller returns
    once its own frames reached this worker's hub; the other worker gets every frame once,
    in the callers' order."""
    owner, _, local, remote = workers
    store = RedisCandleStore(redis_client, 100)
    await owner.publish_stored_many(store, items(KEYS, 0))
    await eventually(lambda: len(remote) == len(KEYS))
    commands = record_commands(owner, monkeypatch)
    batches = [items(KEYS, index) for index in range(1, 6)]

    async def caller(batch: list[tuple[BarKey, Candle, Frame]]) -> None:
        await owner.publish_stored_many(store, batch)
        # Returned only once its own frames were delivered here.
        assert all(frame in local for _, _, frame in batch)

    await asyncio.gather(*(caller(batch) for batch in batches))
    monkeypatch.undo()
    assert [command[0] for command in commands] == [b"EVAL"] * bus_redis.IN_FLIGHT
    carried = []
    for command in commands:
        assert candles_of(command) % len(KEYS) == 0  # whole callers
        sender, frames = redis_messages.decode_batch(message_of(command))
        assert sender == b"owner"
        carried += frames
    frames = [frame for batch in batches for _, _, frame in batch]
    assert carried == frames
    assert local[len(KEYS) :] == frames
    await eventually(lambda: len(remote) == len(KEYS) + len(frames))
    assert remote[len(KEYS) :] == frames
    for key in KEYS:
        assert [c.time for c in await store.last(key, 10)] == [i * MINUTE for i in range(6)]


async def test_queued_callers_go_in_calls_of_at_most_publish_batch_candles(
    workers: tuple[RedisBus, RedisBus, list[Frame], list[Frame]],
    redis_client: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner, _, local, remote = workers
    store = RedisCandleStore(redis_client, 1000)
    await owner.publish_stored_many(store, items(KEYS, 0))
    callers = 2 * PUBLISH_BATCH // len(KEYS) + 3  # more than the calls in flight can carry
    commands = record_commands(owner, monkeypatch)
    batches = [items(KEYS, index) for index in range(1, callers + 1)]
    await asyncio.gather(*(owner.publish_stored_many(store, batch) for batch in batches))
    monkeypatch.undo()
    sizes = [candles_of(command) for command in commands]
    assert sum(sizes) == callers * len(KEYS)
    assert all(size <= PUBLISH_BATCH and size % len(KEYS) == 0 for size in sizes), sizes
    assert len(sizes) == 3  # 32 callers, 32 callers, then the other 3
    frames = [frame for batch in batches for _, _, frame in batch]
    assert local[len(KEYS) :] == frames
    await eventually(lambda: len(remote) == len(KEYS) + len(frames))
    assert remote[len(KEYS) :] == frames


async def test_a_failed_write_raises_in_its_callers_and_publishes_nothing_of_it(
    workers: tuple[RedisBus, RedisBus, list[Frame], list[Frame]], redis_client: Redis
) -> None:
    """A key holding something else than a sorted set makes the script fail: every caller of
    that batch gets the error, none of its frames is delivered anywhere; the next write works."""
    owner, _, local, remote = workers
    store = RedisCandleStore(redis_client, 100)
    await redis_client.set(store.redis_key(KEYS[2]), "not a sorted set")
    batches = [items(KEYS, index) for index in range(2)]
    outcomes = await asyncio.gather(
        *(owner.publish_stored_many(store, batch) for batch in batches), return_exceptions=True
    )
    assert all(isinstance(outcome, ResponseError) for outcome in outcomes), outcomes
    assert "WRONGTYPE" in str(outcomes[0])
    assert local == []
    await redis_client.delete(store.redis_key(KEYS[2]))
    after = items(KEYS, 5)
    await owner.publish_stored_many(store, after)
    assert local == [frame for _, _, frame in after]
    await eventually(lambda: len(remote) == len(KEYS))
    assert remote == local  # nothing of the failed batch ever reached the other worker


async def test_the_reader_skips_a_malformed_batch_and_reads_on(
    workers: tuple[RedisBus, RedisBus, list[Frame], list[Frame]],
    redis_client: Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, _, _, remote = workers
    frames = [frame for _, _, frame in items(KEYS, 0)]
    await redis_client.publish("batch:updates", b"B\nsomeone\nt\n1\n0\n999\n{}")
    await redis_client.publish("batch:updates", redis_messages.encode_batch(b"someone", frames))
    await eventually(lambda: len(remote) == len(frames))
    assert remote == frames
    assert "malformed bus batch" in caplog.text
