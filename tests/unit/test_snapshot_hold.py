"""A snapshot's hold is a token of its subscribe call, settled with the request's reply.

Driven through the real ``Subscriptions``, ``StreamManager``, ``Hub`` and ``Connection``
(over the fake transport of ``test_lazy_writer``); what the adapter does per request is
``reply`` then ``settle(ok=True)``, or ``settle(ok=False)`` then the error reply.
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson

from marketcast.bus.memory import MemoryBus
from marketcast.channels.bars import bar_update
from marketcast.delivery.hub import Hub
from marketcast.market import BarKey, Candle, StreamKey
from marketcast.store.memory import MemoryCandleStore
from marketcast.streams import StreamManager
from marketcast.subscriptions import Subscriptions
from tests.unit.test_lazy_writer import connection, settle, written
from tests.unit.test_streams import KEY, RecordingFeed

PARAMS = {"resolution": KEY.resolution}


async def served(feed: RecordingFeed | None = None) -> tuple[StreamManager, Subscriptions, Hub]:
    hub = Hub()
    bus = MemoryBus()
    await bus.start(hub.publish)
    streams = StreamManager(
        [feed or RecordingFeed()], MemoryCandleStore(100), bus, grace_period=0, history_size=100
    )
    await streams.start()
    return streams, Subscriptions(streams, hub, max_per_connection=10), hub


def bar(minute: int, *, closed: bool) -> Candle:
    return Candle(minute * 60_000, 1, 1, 1, 1, 1, closed=closed)


def frames_written(raw: bytes) -> list[dict[str, object]]:
    """The JSON frames in what the fake transport got (each frame's 2-byte header cut)."""
    found = []
    for part in raw.split(b"\x81")[1:]:
        start = part.index(b"{")
        found.append(orjson.loads(part[start:]))
    return found


async def test_a_failed_request_after_the_hold_leaves_the_client_unsubscribed() -> None:
    streams, subscriptions, hub = await served()
    conn, protocol, _ = connection()
    result = await subscriptions.subscribe(conn, "bars", KEY.symbol, PARAMS, snapshot=3)
    assert result.snapshot, "the store had the feed's history"
    topic = result.topic
    # A live update arrives while the reply is being built; then building it fails.
    await streams.on_candle(KEY, bar(5, closed=False))
    conn.settle(ok=False)
    conn.reply('{"type":"error","payload":{"code":"internal_error","message":"x"}}')
    await settle()
    assert topic not in conn.subscriptions
    assert hub.subscriber_count(topic) == 0
    # Nothing held was released, and nothing later reaches the client.
    await streams.on_candle(KEY, bar(5, closed=True))
    await settle()
    assert [f["type"] for f in frames_written(written(protocol))] == ["error"]
    await streams.close()


async def test_a_successful_reply_releases_what_the_snapshot_lacks_after_it() -> None:
    streams, subscriptions, _ = await served()
    conn, protocol, _ = connection()
    result = await subscriptions.subscribe(conn, "bars", KEY.symbol, PARAMS, snapshot=3)
    assert result.snapshot is not None
    newest = result.snapshot[-1]["time"]
    await streams.on_candle(KEY, bar(5, closed=False))
    conn.reply('{"type":"bars.subscribe.response","payload":{}}')
    conn.settle(ok=True)
    await settle()
    frames = frames_written(written(protocol))
    assert [f["type"] for f in frames] == ["bars.subscribe.response", "bars.update"]
    assert frames[1]["payload"]["time"] == 5 * 60_000 > newest  # type: ignore[index]
    assert result.topic in conn.subscriptions
    await streams.close()


async def test_an_update_the_snapshot_holds_is_dropped_when_it_arrives_after_the_reply() -> None:
    """The store is written before the bus: the snapshot can hold a final element whose
    update reaches this worker only after the reply (another worker's bus message)."""
    streams, subscriptions, hub = await served()
    conn, protocol, _ = connection()
    result = await subscriptions.subscribe(conn, "bars", KEY.symbol, PARAMS, snapshot=3)
    assert result.snapshot is not None
    assert result.snapshot[-1]["closed"] is True
    newest = result.snapshot[-1]["time"]
    conn.reply('{"type":"bars.subscribe.response","payload":{}}')
    conn.settle(ok=True)
    late = bar_update(result.topic, KEY, bar(newest // 60_000, closed=True))
    hub.publish(late)  # the snapshot's newest bar, late: dropped
    hub.publish(bar_update(result.topic, KEY, bar(newest // 60_000 + 1, closed=False)))
    hub.publish(late)  # after a newer update every update passes again (the hold is gone)
    await settle()
    frames = frames_written(written(protocol))
    assert [f["type"] for f in frames] == ["bars.subscribe.response"] + ["bars.update"] * 2
    times = [f["payload"]["time"] for f in frames[1:]]  # type: ignore[index]
    assert times == [newest + 60_000, newest]
    await streams.close()


async def test_a_snapshot_ending_open_leaves_no_hold_after_the_reply() -> None:
    streams, subscriptions, hub = await served()
    await streams.on_candle(KEY, bar(5, closed=False))  # the newest bar is open
    conn, protocol, _ = connection()
    result = await subscriptions.subscribe(conn, "bars", KEY.symbol, PARAMS, snapshot=3)
    assert result.snapshot is not None
    assert result.snapshot[-1]["closed"] is False
    conn.reply('{"type":"bars.subscribe.response","payload":{}}')
    conn.settle(ok=True)
    hub.publish(bar_update(result.topic, KEY, bar(5, closed=False)))  # the same open bar
    await settle()
    frames = frames_written(written(protocol))
    assert [f["type"] for f in frames] == ["bars.subscribe.response", "bars.update"]
    await streams.close()


class EagerFeed(RecordingFeed):
    """A feed whose first update follows its watch at once, as the simulator's next tick can:
    it is published before the subscribe call that started the key resumes."""

    async def watch(self, key: StreamKey) -> None:
        await super().watch(key)
        assert isinstance(key, BarKey)
        loop = asyncio.get_running_loop()
        loop.call_soon(lambda: loop.create_task(self.sink.on_candle(key, bar(5, closed=False))))


async def first_subscriber_frames(feed: RecordingFeed) -> list[dict[str, object]]:
    """What the first subscriber of ``KEY`` (no snapshot) gets once its reply is sent."""
    streams, subscriptions, _ = await served(feed)
    conn, protocol, _ = connection()
    await subscriptions.subscribe(conn, "bars", KEY.symbol, PARAMS)
    conn.reply('{"type":"bars.subscribe.response","payload":{}}')
    conn.settle(ok=True)
    await settle()
    await streams.close()
    return frames_written(written(protocol))


async def test_the_first_subscriber_gets_the_update_that_follows_the_start_at_once() -> None:
    feed = EagerFeed()
    frames = await first_subscriber_frames(feed)
    assert feed.watched == [KEY]
    assert [f["type"] for f in frames] == ["bars.subscribe.response", "bars.update"], frames
    assert frames[1]["payload"]["time"] == 5 * 60_000  # type: ignore[index]


async def test_a_subscribe_cancelled_while_its_key_starts_gives_its_reference_back() -> None:
    streams, subscriptions, hub = await served()
    conn, _, _ = connection()
    task = asyncio.create_task(subscriptions.subscribe(conn, "bars", KEY.symbol, PARAMS))
    await asyncio.sleep(0)  # the key's start is under way
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert not conn.subscriptions
    assert hub.subscriber_count(streams.topic(KEY)) == 0
    await settle()
    assert streams.active_keys() == [], "the key stops: nobody holds it"
    await streams.close()


class SeedingFeed(EagerFeed):
    """A feed that also publishes history while it starts a key (as Binance does with the
    recent trades it fetches before its stream), before its first live update."""

    async def watch(self, key: StreamKey) -> None:
        await super().watch(key)
        assert isinstance(key, BarKey)
        await self.sink.on_candle(key, bar(3, closed=True))  # history, while starting


async def test_what_a_feed_publishes_while_starting_is_not_news_to_the_first_subscriber() -> None:
    frames = await first_subscriber_frames(SeedingFeed())
    assert [f["type"] for f in frames] == ["bars.subscribe.response", "bars.update"], frames
    assert frames[1]["payload"]["time"] == 5 * 60_000  # type: ignore[index]
