"""The stream manager: refcounted keys with a grace period, ingest order, closed-bar once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from marketcast.bus.memory import MemoryBus
from marketcast.channels.trades import Trade, TradeKey
from marketcast.feeds.base import FeedSink
from marketcast.market import BarKey, Candle, QuoteKey, StreamKey, SymbolInfo
from marketcast.store.memory import MemoryCandleStore
from marketcast.streams import StreamManager
from marketcast.types import Millis
from marketcast.wire import Frame

KEY = BarKey("BTCUSDT", "1")


class RecordingFeed:
    """A feed that records what the manager asks of it."""

    name = "recording"

    def __init__(self) -> None:
        self.watched: list[StreamKey] = []
        self.unwatched: list[StreamKey] = []
        self.history_calls = 0

    def symbols(self) -> Sequence[SymbolInfo]:
        return [SymbolInfo("BTCUSDT", "crypto", self.name, ("1", "5"))]

    async def start(self, sink: FeedSink) -> None:
        self.sink = sink

    async def close(self) -> None:
        pass

    async def watch(self, key: StreamKey) -> None:
        self.watched.append(key)

    async def unwatch(self, key: StreamKey) -> None:
        self.unwatched.append(key)

    async def fetch_history(self, key: BarKey, end: Millis | None, limit: int) -> list[Candle]:
        self.history_calls += 1
        return [Candle(t * 60_000, 1, 1, 1, 1, 0, closed=True) for t in range(5)]


async def manager(grace: float = 0.0) -> tuple[StreamManager, RecordingFeed, list[Frame]]:
    feed = RecordingFeed()
    bus = MemoryBus()
    frames: list[Frame] = []
    await bus.start(frames.append)
    streams = StreamManager(
        [feed], MemoryCandleStore(100), bus, grace_period=grace, history_size=100
    )
    await streams.start()
    return streams, feed, frames


async def test_first_acquire_starts_with_history_last_release_stops() -> None:
    streams, feed, _ = await manager()
    await streams.acquire(KEY)
    await streams.acquire(KEY)
    assert feed.watched == [KEY]
    assert feed.history_calls == 1
    assert len(await streams.snapshot(KEY, 10, None)) == 5
    streams.release(KEY)
    await asyncio.sleep(0.01)
    assert feed.unwatched == []
    streams.release(KEY)
    await asyncio.sleep(0.01)
    assert feed.unwatched == [KEY]


async def test_resubscribe_within_grace_period_keeps_the_key() -> None:
    streams, feed, _ = await manager(grace=0.2)
    await streams.acquire(KEY)
    streams.release(KEY)
    await streams.acquire(KEY)
    await asyncio.sleep(0.3)
    assert feed.unwatched == []
    assert feed.watched == [KEY]
    await streams.close()


async def test_concurrent_first_subscribers_share_one_start() -> None:
    streams, feed, _ = await manager()
    await asyncio.gather(*(streams.acquire(QuoteKey("BTCUSDT")) for _ in range(5)))
    assert feed.watched == [QuoteKey("BTCUSDT")]


async def test_candle_is_stored_before_it_is_published() -> None:
    store = MemoryCandleStore(100)
    seen: list[list[Candle]] = []

    class StoreReadingBus(MemoryBus):
        async def publish(self, frame: Frame) -> None:
            seen.append(await store.last(KEY, 1))

    streams = StreamManager(
        [RecordingFeed()], store, StoreReadingBus(), grace_period=0, history_size=100
    )
    candle = Candle(600_000, 2, 3, 1, 2.5, 7)
    await streams.on_candle(KEY, candle)
    assert seen == [[candle]]


async def test_closed_bar_is_published_once_even_if_the_feed_repeats_it() -> None:
    streams, _, frames = await manager()
    bar = Candle(60_000, 1, 2, 1, 2, 5, closed=True)
    await streams.on_candle(KEY, Candle(60_000, 1, 2, 1, 1.5, 4))
    await streams.on_candle(KEY, bar)
    await streams.on_candle(KEY, bar)  # a gap-fill repeating a delivered bar
    await streams.on_candle(KEY, Candle(0, 1, 1, 1, 1, 1, closed=True))  # older than that
    await streams.on_candle(KEY, Candle(60_000, 1, 9, 1, 9, 9))  # re-opening a final bar
    await streams.on_candle(KEY, Candle(120_000, 2, 2, 2, 2, 1))
    assert [(f.order, f.final) for f in frames] == [
        (60_000, False),
        (60_000, True),
        (120_000, False),
    ]
    assert streams.repeats_dropped == 3


async def test_backfilled_bars_are_stored_never_published() -> None:
    streams, _, frames = await manager()
    await streams.on_candle(KEY, Candle(60_000, 1, 2, 1, 1.5, 4))  # open when the key stopped
    missed = [Candle(t * 60_000, 1, 2, 1, 2, 5, closed=True) for t in (1, 2, 3)]
    await streams.on_backfill(KEY, missed)
    assert await streams.snapshot(KEY, 10, None) == missed, "the open bar closed, then the rest"
    assert [f.order for f in frames] == [60_000], "nothing of the backfill went live"
    await streams.on_candle(KEY, missed[-1])  # the feed repeating one: still never published
    await streams.on_candle(KEY, Candle(240_000, 2, 2, 2, 2, 1))
    assert [(f.order, f.final) for f in frames] == [(60_000, False), (240_000, False)]
    assert streams.repeats_dropped == 1


async def test_backfill_leaves_newer_and_final_stored_bars_alone() -> None:
    """In a cluster another owner may have stored real bars: filler bars do not replace them."""
    streams, _, frames = await manager()
    real_open = Candle(3 * 60_000, 7, 7, 7, 7, 1)
    await streams.on_candle(KEY, real_open)
    flat = [Candle(t * 60_000, 1, 1, 1, 1, 0, closed=True) for t in (1, 2)]
    await streams.on_backfill(KEY, flat)
    assert await streams.snapshot(KEY, 10, None) == [real_open], "older than the newest"
    real_final = Candle(3 * 60_000, 7, 8, 6, 7, 9, closed=True)
    await streams.on_candle(KEY, real_final)
    await streams.on_backfill(KEY, [Candle(3 * 60_000, 1, 1, 1, 1, 0, closed=True)])
    assert await streams.snapshot(KEY, 10, None) == [real_final], "a final bar stays"
    assert [(f.order, f.final) for f in frames] == [(180_000, False), (180_000, True)]


async def test_a_trades_snapshot_never_joins_across_a_pause() -> None:
    """Trades kept before a key stopped stay kept (another worker may still resync from them),
    but a snapshot is only the newest run of consecutive ids: it never joins the trades before
    a pause to those after it (the feed did not deliver what happened meanwhile)."""
    feed = TradeFeed()
    bus = MemoryBus()
    await bus.start(lambda frame: None)
    streams = StreamManager([feed], MemoryCandleStore(100), bus, grace_period=0, history_size=100)
    await streams.start()
    key = TradeKey("BTCUSDT")
    family = streams.channels.of_key(key)
    await streams.acquire(key)
    for trade_id in (1, 2, 3):
        await feed.sink.on_event(key, Trade(trade_id, trade_id, 1.0, 1.0, "buy"))
    assert [r.order for r in family.joined(await streams.recent(key, 10))] == [1, 2, 3]
    streams.release(key)
    await until_stopped(streams)
    await streams.acquire(key)
    for trade_id in (40, 41):
        await feed.sink.on_event(key, Trade(trade_id, trade_id, 1.0, 1.0, "sell"))
    kept = await streams.recent(key, 10)
    assert [r.order for r in kept] == [1, 2, 3, 40, 41]
    assert [r.order for r in family.joined(kept)] == [40, 41]
    await streams.close()


class TradeFeed(RecordingFeed):
    def symbols(self) -> Sequence[SymbolInfo]:
        return [SymbolInfo("BTCUSDT", "crypto", self.name, ("1",), frozenset({BarKey, TradeKey}))]


async def until_stopped(streams: StreamManager) -> None:
    for _ in range(200):  # the stop runs in a task of its own once the grace period ends
        if not streams.active_keys():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the key did not stop")
