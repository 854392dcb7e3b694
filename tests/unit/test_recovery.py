"""``StreamManager.recover``: bars since a time, from the store, filled from the feed."""

from __future__ import annotations

from collections.abc import Sequence

from marketcast.bus.memory import MemoryBus
from marketcast.feeds.base import FeedSink
from marketcast.market import BarKey, Candle, StreamKey, SymbolInfo
from marketcast.recovery import FetchTally
from marketcast.store.memory import MemoryCandleStore
from marketcast.streams import StreamManager
from marketcast.types import Millis
from tests.unit.test_simulator import FakeTime, make_feed

KEY = BarKey("BTCUSDT", "1")
MINUTE = 60_000
NOW = 100  # the feed's history: closed bars 0..99 (in minutes)
LIMIT = 100  # bars one recovery answer may hold


def bar(minute: int) -> Candle:
    return Candle(minute * MINUTE, 1, 1, 1, 1, 1, closed=True)


class HistoryFeed:
    """A feed whose history is the minutes 0..NOW-1; can be told to fail."""

    name = "history"

    def __init__(self, minutes: range | set[int] = range(NOW)) -> None:
        #: The minutes the upstream has bars for (a set with gaps: a market pause).
        self.minutes = sorted(minutes)
        self.fail = False
        self.calls: list[tuple[Millis | None, int]] = []

    def symbols(self) -> Sequence[SymbolInfo]:
        return [SymbolInfo("BTCUSDT", "crypto", self.name, ("1",))]

    async def start(self, sink: FeedSink) -> None:
        pass

    async def close(self) -> None:
        pass

    async def watch(self, key: StreamKey) -> None:
        pass

    async def unwatch(self, key: StreamKey) -> None:
        pass

    async def fetch_history(self, key: BarKey, end: Millis | None, limit: int) -> list[Candle]:
        self.calls.append((end, limit))
        if self.fail:
            raise ConnectionError("upstream down")
        bars = [bar(m) for m in self.minutes if end is None or m * MINUTE < end]
        return bars[-limit:] if limit else []


async def manager(
    stored: range | set[int], upstream: range | set[int] = range(NOW)
) -> tuple[StreamManager, HistoryFeed]:
    """A manager over a store holding the ``stored`` minutes."""
    feed = HistoryFeed(upstream)
    store = MemoryCandleStore(1000)
    await store.upsert_many(KEY, [bar(m) for m in sorted(stored)])
    streams = StreamManager([feed], store, MemoryBus(), grace_period=0, history_size=1000)
    return streams, feed


def minutes(bars: list[Candle]) -> list[int]:
    return [b.time // MINUTE for b in bars]


async def test_store_covers_since() -> None:
    streams, feed = await manager(range(50, 100))
    bars, complete = await streams.recover(KEY, 60 * MINUTE, LIMIT)
    assert minutes(bars) == list(range(60, 100))
    assert complete
    assert feed.calls == [], "the store alone answered"


async def test_since_between_buckets_is_covered() -> None:
    streams, _ = await manager(range(50, 100))
    bars, complete = await streams.recover(KEY, 60 * MINUTE + 1, LIMIT)
    assert minutes(bars) == list(range(61, 100))
    assert complete


async def test_hole_before_the_store_is_filled_from_the_feed() -> None:
    streams, feed = await manager(range(50, 100))
    bars, complete = await streams.recover(KEY, 20 * MINUTE, LIMIT)
    assert minutes(bars) == list(range(20, 100))
    assert complete
    assert feed.calls == [(50 * MINUTE, 100)]


async def test_inner_hole_is_filled_from_the_feed() -> None:
    """The key was stopped for minutes 70..79 and restarted: the store has a hole."""
    streams, feed = await manager(set(range(50, 70)) | set(range(80, 100)))
    bars, complete = await streams.recover(KEY, 60 * MINUTE, LIMIT)
    assert minutes(bars) == list(range(60, 100))
    assert complete
    assert feed.calls == [(80 * MINUTE, 100)]


async def test_hole_the_feed_has_nothing_for_is_a_market_pause() -> None:
    upstream = set(range(NOW)) - set(range(70, 80))
    streams, _ = await manager(upstream & set(range(50, 100)), upstream=upstream)
    bars, complete = await streams.recover(KEY, 60 * MINUTE, LIMIT)
    assert minutes(bars) == [m for m in range(60, 100) if not 70 <= m < 80]
    assert complete


async def test_too_many_holes_only_the_newest_are_filled() -> None:
    streams, feed = await manager(set(range(50, 100, 2)))  # a hole after every stored bar
    bars, complete = await streams.recover(KEY, 50 * MINUTE, LIMIT)
    assert not complete
    assert len(feed.calls) == 4
    assert minutes(bars)[-9:] == list(range(90, 99))
    assert 89 not in minutes(bars)


async def test_empty_store_is_filled_from_the_feed() -> None:
    streams, _ = await manager(range(0))
    bars, complete = await streams.recover(KEY, 90 * MINUTE, LIMIT)
    assert minutes(bars) == list(range(90, 100))
    assert complete


async def test_since_older_than_history_size_is_incomplete() -> None:
    streams, _ = await manager(range(50, 100))
    bars, complete = await streams.recover(KEY, 0, 60)
    assert minutes(bars) == list(range(40, 100)), "the newest history_size bars"
    assert not complete


async def test_store_covering_more_than_history_size_is_incomplete() -> None:
    streams, _ = await manager(range(50, 100))
    bars, complete = await streams.recover(KEY, 55 * MINUTE, 30)
    assert minutes(bars) == list(range(70, 100))
    assert not complete


async def test_failing_feed_leaves_recovery_incomplete() -> None:
    streams, feed = await manager(range(50, 100))
    feed.fail = True
    bars, complete = await streams.recover(KEY, 20 * MINUTE, LIMIT)
    assert minutes(bars) == list(range(50, 100))
    assert not complete


async def test_since_in_the_future_is_complete_and_empty() -> None:
    streams, _ = await manager(range(50, 100))
    bars, complete = await streams.recover(KEY, 500 * MINUTE, LIMIT)
    assert bars == []
    assert complete


async def test_a_hole_older_than_a_full_answer_is_not_fetched() -> None:
    """The store holds the newest ``limit`` bars since ``since``: older bars could not be in
    the answer, so the feed is not asked (the answer is incomplete, as it was after asking)."""
    streams, feed = await manager(range(50, 100))
    tally = FetchTally()
    bars, complete = await streams.recover(KEY, 20 * MINUTE, 50, tally=tally)
    assert minutes(bars) == list(range(50, 100))
    assert not complete
    assert feed.calls == []
    assert tally == FetchTally(bars=0, calls=0)


async def test_a_gap_between_a_bar_before_since_and_the_next_is_filled() -> None:
    """The key stopped at minute 20 and restarted at 50; the client resumes from 30."""
    streams, feed = await manager(set(range(10, 21)) | set(range(50, 100)))
    bars, complete = await streams.recover(KEY, 30 * MINUTE, LIMIT)
    assert minutes(bars) == list(range(30, 100))
    assert complete
    assert feed.calls == [(50 * MINUTE, 100)]


async def test_a_gap_before_since_the_feed_has_nothing_for_is_a_market_pause() -> None:
    upstream = set(range(NOW)) - set(range(21, 50))
    streams, _ = await manager(upstream & set(range(10, 100)), upstream=upstream)
    bars, complete = await streams.recover(KEY, 30 * MINUTE, LIMIT)
    assert minutes(bars) == list(range(50, 100))
    assert complete


async def test_the_tally_counts_what_the_feed_was_asked_for() -> None:
    streams, _ = await manager(set(range(50, 70)) | set(range(80, 100)))
    tally = FetchTally()
    await streams.recover(KEY, 20 * MINUTE, LIMIT, tally=tally)
    assert tally == FetchTally(bars=50 + 80, calls=2), "minutes 0..49 and 0..79, all returned"
    await streams.recover(KEY, 90 * MINUTE, LIMIT, tally=tally)
    assert tally.calls == 2, "the store alone answered"
    history = FetchTally()
    bars = await streams.history(KEY, None, None, LIMIT, tally=history)
    assert minutes(bars) == list(range(0, 70)) + list(range(80, 100))
    assert history == FetchTally(bars=50, calls=1), "the 50 bars before the oldest stored"


async def test_since_zero_on_a_full_store_costs_the_simulator_nothing() -> None:
    """The ``since: 0`` request that cost 18 ms: the store holds a full answer, so the
    simulator is not asked to generate the 2,000 bars behind it."""
    feed = make_feed(FakeTime())
    key = BarKey("BTCUSDT", "1")
    store = MemoryCandleStore(1_000)
    streams = StreamManager([feed], store, MemoryBus(), grace_period=0, history_size=1_000)
    await streams.ensure_history(key)
    generated = feed.generated_bars
    tally = FetchTally()
    bars, complete = await streams.recover(key, 0, 1_000, tally=tally)
    assert bars == await store.last(key, 1_000)
    assert not complete
    assert tally == FetchTally()
    assert feed.generated_bars == generated
