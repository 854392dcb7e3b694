"""A change of a symbol's order book is data for every book view of the symbol this worker
serves: none of them is reported stale while the book moves, and they are once it stops."""

from __future__ import annotations

from marketcast.book.binance_sync import Applied, Reset
from marketcast.bus.memory import MemoryBus
from marketcast.channels.orderbook import BookKey, book_source
from marketcast.delivery.hub import Hub
from marketcast.staleness import StalenessTracker
from marketcast.store.memory import MemoryCandleStore
from marketcast.streams import StreamManager
from tests.unit.test_streams import RecordingFeed


async def test_book_changes_keep_book_views_fresh() -> None:
    now = [1000.0]
    feed, hub, bus = RecordingFeed(), Hub(), MemoryBus()
    await bus.start(hub.publish)
    streams = StreamManager(
        [feed],
        MemoryCandleStore(10),
        bus,
        grace_period=0,
        history_size=10,
        staleness=StalenessTracker(intervals=3, max_seconds=300),
        hub=hub,
    )
    await streams.start()
    streams._staleness.clock = lambda: now[0]  # time by hand
    levels, diff = BookKey("BTCUSDT", "levels", 20), BookKey("BTCUSDT", "diff", 0)
    for key in (levels, diff):
        await streams.acquire(key)
    assert feed.watched == [book_source("BTCUSDT")]  # one upstream book for both views
    await streams.on_book("BTCUSDT", Reset(10, [[100.0, 1.0]], [[101.0, 1.0]]))
    for seq in range(11, 20):
        now[0] += 100.0  # 900 s in all, three times the 300-s threshold
        await streams.on_book("BTCUSDT", Applied(seq - 1, seq, [(100.0, float(seq))], [], 0))
        assert streams._staleness.tracker.check(now[0]) == []
    assert streams.state(diff) == {
        "seq": 19,
        "time": 0,
        "bids": [[100.0, 19.0]],
        "asks": [[101.0, 1.0]],
    }
    now[0] += 301.0  # the book stopped moving
    assert set(streams._staleness.tracker.check(now[0])) == {levels, diff}
    await streams._stop_book(levels)
    assert streams._staleness.tracker.stale_keys() == [diff]
    await streams.close()
