"""RedisBus against a real redis-server: the shared Bus contract (the suite MemoryBus passes),
then what only a cluster has — other workers, lost subscriptions and resync."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Collection

import pytest
from redis.asyncio import Redis

from marketcast.bus.base import Bus
from marketcast.bus.redis import RedisBus
from marketcast.channels.bars import bar_update
from marketcast.market import BarKey, Candle
from marketcast.redis_health import connect
from marketcast.store.redis import RedisCandleStore
from marketcast.types import Millis, Topic
from marketcast.wire import Frame
from tests.integration.harness import free_port
from tests.redis.redis_server import RedisServer
from tests.unit.bus_contract import TOPIC, BusContract, BusFactory, frame

KEY = BarKey("BTCUSDT", "1")
MINUTE = 60_000


class Draws(random.Random):
    """Jitter at a fixed fraction of each ceiling, recording the ceilings asked for."""

    def __init__(self, fraction: float) -> None:
        super().__init__(0)
        self.fraction = fraction
        self.ceilings: list[float] = []

    def uniform(self, a: float, b: float) -> float:
        self.ceilings.append(b)
        return a + (b - a) * self.fraction


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until ``check()`` holds; fail after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


MakeBus = Callable[..., Awaitable[RedisBus]]


@pytest.fixture
async def make_bus(redis_server: RedisServer, redis_client: Redis) -> AsyncIterator[MakeBus]:
    """RedisBus instances ("workers") on one channel; all closed afterwards."""
    made: list[tuple[RedisBus, Redis]] = []

    async def make(
        worker: str,
        retry_delay: tuple[float, float] = (0.05, 1.0),
        rng: random.Random | None = None,
        url: str | None = None,
    ) -> RedisBus:
        subscriber = connect(url or redis_server.url, timeout=2.0, name=worker, retries=0)
        bus = RedisBus(
            redis_client,
            subscriber,
            channel="test:updates",
            worker_id=worker,
            retry_delay=retry_delay,
            rng=rng,
        )
        made.append((bus, subscriber))
        return bus

    yield make
    for bus, subscriber in made:
        await bus.close()
        await subscriber.aclose()


class TestRedisBus(BusContract):
    @pytest.fixture
    async def bus_factory(self, make_bus: MakeBus) -> BusFactory:
        count = 0

        async def make() -> Bus:
            nonlocal count
            count += 1
            return await make_bus(f"worker-{count}")

        return make


async def test_other_workers_receive_each_frame_once(make_bus: MakeBus) -> None:
    a, b = await make_bus("a"), await make_bus("b")
    got_a: list[Frame] = []
    got_b: list[Frame] = []
    await a.start(got_a.append)
    await b.start(got_b.append)
    await eventually(lambda: a.connected and b.connected)
    sent = [frame(0), frame(0, closed=True), frame(MINUTE)]
    for item in sent:
        await a.publish(item)
    await eventually(lambda: len(got_b) == 3)
    await asyncio.sleep(0.1)  # an echo of a's own frames would arrive by now
    assert got_b == sent
    assert got_a == sent


async def test_a_closed_bar_from_two_owners_is_delivered_once(make_bus: MakeBus) -> None:
    """During a takeover old and new owner may both publish a bar: each worker shows it once."""
    a, b, c = await make_bus("a"), await make_bus("b"), await make_bus("c")
    got_c: list[Frame] = []
    await a.start(lambda _: None)
    await b.start(lambda _: None)
    await c.start(got_c.append)
    await eventually(lambda: a.connected and b.connected and c.connected)
    await a.publish(frame(0, closed=True, text="from a"))
    await b.publish(frame(0, closed=True, text="from b"))
    await a.publish(frame(0, text="stale open bar"))
    await b.publish(frame(MINUTE, text="next"))
    await eventually(lambda: bool(got_c) and got_c[-1].text == "next")
    assert [f.text for f in got_c] == ["from a", "next"]


def store_source(
    store: RedisCandleStore,
) -> Callable[[Collection[Topic] | None, Callable[[Topic], Millis | None]], Awaitable[list[Frame]]]:
    """A resync source for one key (what cluster.resync.StoreResync does for every key)."""

    async def source(
        topics: Collection[Topic] | None, floor: Callable[[Topic], Millis | None]
    ) -> list[Frame]:
        start = floor(TOPIC)
        if start is None or (topics is not None and TOPIC not in topics):
            return []
        return [bar_update(TOPIC, KEY, c) for c in await store.range(KEY, start, None, 100)]

    return source


def candle(index: int, *, closed: bool = True) -> Candle:
    return Candle(index * MINUTE, 1.0, 1.0, 1.0, 1.0, 1.0, closed)


def closed_times(frames: list[Frame]) -> list[int]:
    return [f.order // MINUTE for f in frames if f.final and f.order is not None]


async def stored_and_published(
    store: RedisCandleStore, bus: RedisBus, candles: list[Candle]
) -> None:
    """What an owner's ingest does per candle: store, then publish."""
    for c in candles:
        await store.upsert(KEY, c)
        await bus.publish(bar_update(TOPIC, KEY, c))


async def test_a_lost_subscription_is_resynced_from_the_store(
    make_bus: MakeBus, redis_client: Redis
) -> None:
    store = RedisCandleStore(redis_client, 100)
    owner = await make_bus("owner")
    # A long retry delay keeps the receiver disconnected while the owner publishes.
    receiver = await make_bus("receiver", retry_delay=(0.5, 0.5), rng=Draws(1.0))
    receiver.set_resync(store_source(store))
    got: list[Frame] = []
    await owner.start(lambda _: None)
    await receiver.start(got.append)
    await eventually(lambda: owner.connected and receiver.connected)
    await stored_and_published(store, owner, [candle(0), candle(1, closed=False)])
    await eventually(lambda: len(got) == 2)

    await redis_client.client_kill_filter(_type="pubsub")  # the receiver's subscription drops
    await eventually(lambda: not receiver.connected, within=2.0)
    await stored_and_published(store, owner, [candle(1), candle(2), candle(3, closed=False)])
    await eventually(lambda: receiver.connected and receiver.subscriptions == 2)
    await stored_and_published(store, owner, [candle(3), candle(4)])
    await eventually(lambda: closed_times(got) == [0, 1, 2, 3, 4])
    await asyncio.sleep(0.1)
    assert closed_times(got) == [0, 1, 2, 3, 4]


async def test_a_resync_request_fills_what_the_store_gained(
    make_bus: MakeBus, redis_client: Redis
) -> None:
    """After a takeover the new owner writes the gap into the store, then asks for a resync:
    every worker delivers the bars its clients lack, once, before the live stream goes on."""
    store = RedisCandleStore(redis_client, 100)
    old_owner, new_owner, receiver = (
        await make_bus("old"),
        await make_bus("new"),
        await make_bus("receiver"),
    )
    receiver.set_resync(store_source(store))
    got: list[Frame] = []
    for bus, sink in ((old_owner, None), (new_owner, None), (receiver, got.append)):
        await bus.start(sink or (lambda _: None))
    await eventually(lambda: old_owner.connected and new_owner.connected and receiver.connected)
    await stored_and_published(store, old_owner, [candle(0), candle(1)])
    await eventually(lambda: closed_times(got) == [0, 1])
    await old_owner.close()  # the old owner dies; bars 2 and 3 never reach the bus
    await store.upsert_many(KEY, [candle(1), candle(2), candle(3), candle(4, closed=False)])
    await new_owner.request_resync(TOPIC)
    await stored_and_published(store, new_owner, [candle(4), candle(5)])
    await eventually(lambda: closed_times(got) == [0, 1, 2, 3, 4, 5])
    await asyncio.sleep(0.1)
    assert closed_times(got) == [0, 1, 2, 3, 4, 5]
    times = [f.order for f in got]
    assert times == sorted(times)  # never an older bar after a newer one


async def test_redis_restart_drops_and_restores_the_subscription(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = RedisServer(tmp_path_factory.mktemp("restart"))
    server.start()
    publisher = connect(server.url, timeout=1.0, name="pub")
    subscriber = connect(server.url, timeout=1.0, name="sub", retries=0)
    bus = RedisBus(publisher, subscriber, channel="c", worker_id="w", retry_delay=(0.05, 0.2))
    try:
        await bus.start(lambda _: None)
        await eventually(lambda: bus.connected)
        server.stop()
        await eventually(lambda: not bus.connected)
        await bus.publish(frame(0))  # not an error, just counted
        assert bus.publish_failures == 1
        server.start()
        await eventually(lambda: bus.connected and bus.subscriptions == 2)
    finally:
        await bus.close()
        await publisher.aclose()
        await subscriber.aclose()
        server.stop()


async def test_a_candle_is_stored_and_published_in_one_round_trip(
    make_bus: MakeBus, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RedisCandleStore(redis_client, 100)
    owner, receiver = await make_bus("owner"), await make_bus("receiver")
    local: list[Frame] = []
    remote: list[Frame] = []
    await owner.start(local.append)
    await receiver.start(remote.append)
    await eventually(lambda: owner.connected and receiver.connected)
    first = bar_update(TOPIC, KEY, candle(0))
    await owner.publish_stored_many(store, [(KEY, candle(0), first)])  # loads the script

    commands: list[object] = []
    execute = redis_client.execute_command

    async def counted(*args: object, **options: object) -> object:
        commands.append(args[0])
        return await execute(*args, **options)

    monkeypatch.setattr(redis_client, "execute_command", counted)
    pipelined: list[bytes] = []
    send = owner._pipeline.send

    async def recorded(command: bytes) -> asyncio.Future[object]:
        pipelined.append(command)
        return await send(command)

    monkeypatch.setattr(owner._pipeline, "send", recorded)
    second = bar_update(TOPIC, KEY, candle(1))
    await owner.publish_stored_many(store, [(KEY, candle(1), second)])
    assert commands == []  # nothing through redis-py's commands: one packed script call
    # EVAL, the script, 0 keys, and 7 arguments
    assert len(pipelined) == 1
    assert pipelined[0].startswith(b"*10\r\n$4\r\nEVAL\r\n")
    monkeypatch.undo()
    assert local == [first, second]
    await eventually(lambda: len(remote) == 2)
    assert remote == [first, second]
    assert await store.last(KEY, 5) == [candle(0), candle(1)]


async def test_a_store_on_another_redis_is_written_then_published(
    make_bus: MakeBus, redis_server: RedisServer
) -> None:
    """No shared script then: the store write, then the publish, as two round trips."""
    other = connect(redis_server.url, timeout=2.0, name="other")
    try:
        store = RedisCandleStore(other, 100, prefix="elsewhere")
        owner = await make_bus("owner")
        local: list[Frame] = []
        await owner.start(local.append)
        frame_ = bar_update(TOPIC, KEY, candle(0))
        await owner.publish_stored_many(store, [(KEY, candle(0), frame_)])
        assert local == [frame_]
        assert await store.last(KEY, 1) == [candle(0)]
    finally:
        await other.aclose()


async def test_reconnects_wait_a_random_part_of_a_doubling_ceiling(make_bus: MakeBus) -> None:
    """Full jitter: workers cut off together by a Redis restart do not all come back at the
    same instants; the ceiling doubles per failed attempt up to the cap."""
    draws = Draws(0.01)
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: every attempt fails
    bus = await make_bus("w", retry_delay=(0.05, 0.3), rng=draws, url=nowhere)
    await bus.start(lambda _: None)
    await eventually(lambda: len(draws.ceilings) >= 5)
    assert draws.ceilings[:5] == [0.05, 0.1, 0.2, 0.3, 0.3]
    assert not bus.connected
