"""A simulator key watched again after a pause: its missed bars reach the store, not the wire.

The simulator and the stream manager together, on a fake clock: the key runs, its last
subscriber leaves, a hundred simulated minutes pass, a subscriber comes back. Before, the
hundred flat bars were published at once (a day of them closed clients as slow consumers).
"""

from __future__ import annotations

from itertools import pairwise

from marketcast.bus.memory import MemoryBus
from marketcast.market import BarKey, Candle
from marketcast.store.memory import MemoryCandleStore
from marketcast.streams import StreamManager
from marketcast.timeframes import next_bucket
from marketcast.wire import Frame
from tests.unit.test_simulator import FakeTime, make_feed

KEY = BarKey("BTCUSDT", "1")
MINUTE = 60_000


async def test_missed_bars_are_stored_and_only_the_current_bar_is_published() -> None:
    fake = FakeTime()
    feed = make_feed(fake, speed=60)  # a 1-minute bar every real second
    store = MemoryCandleStore(1_000)
    bus = MemoryBus()
    frames: list[Frame] = []
    await bus.start(frames.append)
    streams = StreamManager([feed], store, bus, grace_period=0, history_size=100)
    await streams.start()

    await streams.acquire(KEY)
    await fake.advance(3.2)
    streams.release(KEY)
    await fake.advance(100)  # the key stops at once (no grace); 100 minutes pass unwatched
    assert streams.active_keys() == []
    [last_seen] = await store.last(KEY, 1)
    assert not last_seen.closed, "it stopped with a bar open"

    frames.clear()
    await streams.acquire(KEY)
    await fake.advance(0.5)
    assert frames, "the current bar is live"
    current = frames[0].order
    assert current is not None
    assert not frames[0].final, "the first live update opens the current bar"
    assert all(f.order is not None and f.order >= current for f in frames), "no backlog"
    assert streams.repeats_dropped == 0, "the feed never tried to send the backlog live"
    missed = await store.range(KEY, last_seen.time, current, 1_000)
    assert [c.time for c in missed] == list(range(last_seen.time, current, MINUTE))
    assert len(missed) >= 100, "the hundred minutes nobody watched"
    assert all(c.closed for c in missed), "are in the store, closed"

    history = await streams.snapshot(KEY, 1_000, None)
    assert_continuous(history)
    assert history[-1].time >= current
    await streams.close()


def assert_continuous(bars: list[Candle]) -> None:
    holes = [(a.time, b.time) for a, b in pairwise(bars) if next_bucket(a.time, "1") != b.time]
    assert not holes, f"holes in the stored series: {holes[:3]}"
