"""SimulatorFeed, driven by a fake clock and a fake sleep: hours of trading in no real time."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import pairwise

import pytest

from marketcast.errors import ConfigurationError
from marketcast.feeds import sim_history
from marketcast.feeds.base import Feed
from marketcast.feeds.sim_history import MAX_HISTORY_BARS
from marketcast.feeds.sim_prices import asset_class_of
from marketcast.feeds.simulator import MAX_BACKFILL_BARS, SimulatorFeed
from marketcast.market import BarKey, Candle, Quote, QuoteKey, StreamKey
from marketcast.settings import DEFAULT_SIM_SYMBOLS, Settings
from marketcast.timeframes import RESOLUTIONS, bucket_start, next_bucket
from marketcast.types import Millis, Resolution, Symbol

#: 2024-05-06 09:59:30 UTC, a Monday, in real (= simulated, at start) seconds.
START = datetime(2024, 5, 6, 9, 59, 30, tzinfo=UTC).timestamp()
BTC1 = BarKey("BTCUSDT", "1")


class FakeTime:
    """A clock that only moves when the feed sleeps."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds > 0, "the feed must never busy-loop"
        self.now += seconds
        await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Let the feed run until ``seconds`` of fake real time have passed."""
        target = self.now + seconds
        for _ in range(10_000_000):
            if self.now >= target:
                return
            await asyncio.sleep(0)
        raise AssertionError("the fake clock did not advance: is the feed running?")


class Recorder:
    """A FeedSink that remembers every update with the simulated time it arrived at."""

    def __init__(self, feed: SimulatorFeed) -> None:
        self.feed = feed
        self.candles: list[tuple[BarKey, Candle, Millis]] = []
        self.quotes: list[tuple[Symbol, Quote]] = []
        self.backfills: list[tuple[BarKey, list[Candle]]] = []

    async def on_candle(self, key: BarKey, candle: Candle) -> None:
        self.candles.append((key, candle, self.feed.now()))

    async def on_backfill(self, key: BarKey, candles: Sequence[Candle]) -> None:
        self.backfills.append((key, list(candles)))

    async def on_quote(self, symbol: Symbol, quote: Quote) -> None:
        self.quotes.append((symbol, quote))

    def bars(self, key: BarKey) -> list[Candle]:
        return [c for k, c, _ in self.candles if k == key]

    def final(self, key: BarKey) -> list[Candle]:
        latest: dict[Millis, Candle] = {}
        for candle in self.bars(key):
            latest[candle.time] = candle
        return list(latest.values())


def make_feed(
    fake: FakeTime, *, seed: int = 7, speed: float = 1.0, tick_interval: float = 0.25
) -> SimulatorFeed:
    return SimulatorFeed(
        DEFAULT_SIM_SYMBOLS,
        seed=seed,
        speed=speed,
        tick_interval=tick_interval,
        clock=fake.clock,
        sleep=fake.sleep,
    )


async def run(
    feed: SimulatorFeed, fake: FakeTime, keys: list[StreamKey], seconds: float
) -> Recorder:
    recorder = Recorder(feed)
    for key in keys:
        await feed.watch(key)
    await feed.start(recorder)
    await fake.advance(seconds)
    return recorder


def assert_valid_series(bars: list[Candle], resolution: Resolution, decimals: int) -> None:
    for a, b in pairwise(bars):
        assert next_bucket(a.time, resolution) == b.time
    for bar in bars:
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
        assert bar.low > 0
        assert bar.volume >= 0
        for price in (bar.open, bar.high, bar.low, bar.close):
            assert round(price, decimals) == price


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("symbols", "message"),
    [
        ([], r"at least one symbol.*got \[\]"),
        (["BTCUSDT", "btcusdt"], "'btcusdt'"),
        (["EUR/USD", "EUR/USD"], "'EUR/USD' twice"),
        (["A B"], "'A B'"),
    ],
)
def test_bad_symbol_lists_are_refused(symbols: list[str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SimulatorFeed(symbols)


def test_bad_speed_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"sim_speed.*got 0"):
        SimulatorFeed(["AAPL"], speed=0)


def test_from_settings_and_symbols() -> None:
    settings = Settings(sim_symbols=["BTCUSDT", "EUR/USD", "AAPL"], sim_seed=3, sim_speed=10)
    feed = SimulatorFeed.from_settings(settings)
    infos = {info.symbol: info for info in feed.symbols()}
    assert {s: i.asset_class for s, i in infos.items()} == {
        "BTCUSDT": "crypto",
        "EUR/USD": "forex",
        "AAPL": "stock",
    }
    assert all(i.source == "simulator" and i.resolutions == RESOLUTIONS for i in infos.values())
    assert feed.price("BTCUSDT") == 60_000.0
    assert feed.price("EUR/USD") == 1.08


def test_asset_classes() -> None:
    assert [asset_class_of(s) for s in ["ETHBTC", "SOLUSDC", "USD/JPY", "BRK.B"]] == [
        "crypto",
        "crypto",
        "forex",
        "stock",
    ]


def test_it_is_a_feed() -> None:
    feed: Feed = SimulatorFeed(["AAPL"])
    assert feed.name == "simulator"


# -- history ----------------------------------------------------------------------------------


@pytest.mark.parametrize("resolution", RESOLUTIONS)
@pytest.mark.parametrize(("symbol", "decimals"), [("BTCUSDT", 2), ("EUR/USD", 5), ("AAPL", 2)])
async def test_history_shape(symbol: str, decimals: int, resolution: Resolution) -> None:
    fake = FakeTime()
    feed = make_feed(fake)
    bars = await feed.fetch_history(BarKey(symbol, resolution), None, 300)
    assert len(bars) == 300
    assert_valid_series(bars, resolution, decimals)
    assert bars[-1].time == bucket_start(feed.now(), resolution)
    assert bars[-1].close == feed.price(symbol)
    assert [b.closed for b in bars] == [True] * 299 + [False]


async def test_history_is_deterministic() -> None:
    a, b = make_feed(FakeTime()), make_feed(FakeTime())
    other = make_feed(FakeTime(), seed=8)
    key = BarKey("ETHUSDT", "15")
    assert await a.fetch_history(key, None, 50) == await b.fetch_history(key, None, 50)
    assert await a.fetch_history(key, None, 50) != await other.fetch_history(key, None, 50)


async def test_history_pages_join_up_even_after_prices_moved() -> None:
    fake = FakeTime()
    feed = make_feed(fake)
    newest = await feed.fetch_history(BTC1, None, 100)
    await run(feed, fake, [BTC1], 30)  # live trades move the price
    page = await feed.fetch_history(BTC1, newest[50].time, 20)
    assert page == newest[30:50]
    older = await feed.fetch_history(BTC1, newest[0].time, 10)
    assert older[-1].close == newest[0].open
    assert_valid_series(older + newest, "1", 2)
    await feed.close()


async def test_history_limits_and_bounds() -> None:
    feed = make_feed(FakeTime())
    assert await feed.fetch_history(BTC1, None, 0) == []
    assert len(await feed.fetch_history(BarKey("BTCUSDT", "M"), None, 10_000)) == 653
    # The depth bound: nothing further back than MAX_HISTORY_BARS behind the anchor.
    assert await feed.fetch_history(BTC1, 0, 10) == []
    oldest = (await feed.fetch_history(BTC1, None, MAX_HISTORY_BARS + 5))[0]
    assert (feed.now() - oldest.time) // 60_000 == MAX_HISTORY_BARS - 1
    with pytest.raises(ValueError, match="does not serve 'XRPUSDT'"):
        await feed.fetch_history(BarKey("XRPUSDT", "1"), None, 10)


async def test_a_later_end_re_anchors_at_the_current_bar() -> None:
    fake = FakeTime()
    feed = make_feed(fake)
    first = await feed.fetch_history(BTC1, None, 3)
    await run(feed, fake, [BTC1], 150)
    await feed.close()
    later = await feed.fetch_history(BTC1, feed.now() + 1, 3)
    assert later[-1].time == bucket_start(feed.now(), "1") > first[-1].time
    assert later[-1].close == feed.price("BTCUSDT")
    assert not later[-1].closed


async def fresh_history(key: BarKey, end: Millis | None, limit: int) -> list[Candle]:
    """What a new feed (empty memo) answers, anchored where ``make_feed(FakeTime())`` is."""
    feed = make_feed(FakeTime())
    if end is not None:
        await feed.fetch_history(key, None, 1)  # the anchor a paging client starts from
    return await feed.fetch_history(key, end, limit)


@pytest.mark.parametrize("resolution", ["1", "W", "M"])
async def test_memoised_history_equals_fresh_generation(
    resolution: Resolution, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the memo holds — nothing, a shallow prefix, a deeper one, or a key evicted
    and regenerated — every page equals what a feed with an empty memo generates."""
    monkeypatch.setattr(sim_history, "HISTORY_MEMO_BARS", 1_500)  # evictions happen below
    key = BarKey("BTCUSDT", resolution)
    feed = make_feed(FakeTime())
    newest = await feed.fetch_history(key, None, 300)
    assert newest == await fresh_history(key, None, 300)
    ends = [newest[-1].time + 1, newest[-1].time, newest[150].time, newest[0].time, 1, 0]
    for end in ends + ends[::-1]:
        for limit in (1, 299, 1_000):
            assert await feed.fetch_history(key, end, limit) == await fresh_history(
                key, end, limit
            ), (end, limit)
    other = BarKey("ETHUSDT", "1")
    await feed.fetch_history(other, None, 1)
    await feed.fetch_history(other, 1_000, 1_000)  # deep enough to evict ``key``'s bars
    assert await feed.fetch_history(key, newest[0].time, 1_000) == await fresh_history(
        key, newest[0].time, 1_000
    )


async def test_repeated_history_requests_generate_nothing() -> None:
    fake = FakeTime()
    feed = make_feed(fake)
    first = await feed.fetch_history(BTC1, None, 1_000)
    assert feed.generated_bars == 999, "the anchor is the open bar; the rest is generated"
    assert await feed.fetch_history(BTC1, None, 1_000) == first
    assert await feed.fetch_history(BTC1, first[500].time, 400) == first[100:500]
    assert feed.generated_bars == 999, "repeats and pages inside the memo are slices"
    page = await feed.fetch_history(BTC1, first[0].time, 1_000)
    assert feed.generated_bars == 1_999, "a deeper page generates only what is new"
    assert await feed.fetch_history(BTC1, first[0].time, 1_000) == page
    assert await feed.fetch_history(BTC1, 1, 1_000) == []
    assert feed.generated_bars == 1_999, "a page beyond the depth bound costs nothing"
    # Live trades move the open bar's close, not its open: re-anchoring keeps the memo.
    await run(feed, fake, [BTC1], 5)
    await feed.close()
    again = await feed.fetch_history(BTC1, None, 1_000)
    assert again[:-1] == first[:-1]
    assert again[-1].time == first[-1].time
    assert feed.generated_bars == 1_999
    # A new bucket is a new anchor: its history is generated afresh.
    fake.now += 60
    await feed.fetch_history(BTC1, None, 10)
    assert feed.generated_bars == 1_999 + 9


# -- live ------------------------------------------------------------------------------------


async def test_live_bars_continue_history() -> None:
    fake = FakeTime()
    feed = make_feed(fake)
    history = await feed.fetch_history(BTC1, None, 10)
    recorder = await run(feed, fake, [BTC1], 5)
    first = recorder.bars(BTC1)[0]
    assert (first.time, first.open) == (history[-1].time, history[-1].open)
    assert first.high >= history[-1].high
    assert first.volume >= history[-1].volume
    await feed.close()


async def test_closed_bars_are_emitted_at_bucket_boundaries() -> None:
    fake = FakeTime()
    feed = make_feed(fake, speed=600)  # ten simulated minutes per real second
    keys: list[StreamKey] = [BTC1, BarKey("BTCUSDT", "5"), BarKey("EUR/USD", "1")]
    start = feed.now()
    recorder = await run(feed, fake, keys, 6)
    for key in keys:
        assert isinstance(key, BarKey)
        bars = recorder.final(key)
        assert_valid_series(bars, key.resolution, 5 if key.symbol == "EUR/USD" else 2)
        assert bars[0].time == bucket_start(start, key.resolution)
        # The bucket holding "now" has a bar once a trade landed in it (a tick spans 150
        # simulated seconds here); until then the newest bar is the previous one, closed.
        current = bucket_start(feed.now(), key.resolution)
        assert bars[-1].time == current or (
            bars[-1].closed and next_bucket(bars[-1].time, key.resolution) == current
        )
        closes = [(c, at) for k, c, at in recorder.candles if k == key and c.closed]
        assert [c.time for c, _ in closes] == [b.time for b in bars if b.closed]
        assert all(b.closed for b in bars[:-1])
        for candle, at in closes:
            end = next_bucket(candle.time, key.resolution)
            assert end <= at <= end + 1000, "closed within a simulated second of its end"
    await feed.close()


async def test_quotes() -> None:
    fake = FakeTime()
    feed = make_feed(fake)
    recorder = await run(feed, fake, [QuoteKey(s) for s in DEFAULT_SIM_SYMBOLS], 10)
    assert {s for s, _ in recorder.quotes} == set(DEFAULT_SIM_SYMBOLS)
    for symbol, quote in recorder.quotes:
        assert quote.bid < quote.last < quote.ask
        assert quote.ask - quote.bid < quote.last * 0.001
        assert quote.volume is not None
        assert quote.volume > 0
        assert quote.change is not None
        assert quote.change_percent is not None
        start_price = make_feed(FakeTime()).price(symbol)
        assert quote.change == pytest.approx(quote.last - start_price)
    await feed.close()


async def test_at_least_one_update_per_simulated_second_per_symbol_at_defaults() -> None:
    fake = FakeTime()
    settings = Settings()
    feed = make_feed(fake, speed=settings.sim_speed, tick_interval=settings.sim_tick_interval)
    keys: list[StreamKey] = [BarKey(s, "1") for s in DEFAULT_SIM_SYMBOLS]
    keys += [QuoteKey(s) for s in DEFAULT_SIM_SYMBOLS]
    start = feed.now()
    recorder = await run(feed, fake, keys, 60)
    for symbol in DEFAULT_SIM_SYMBOLS:
        seconds = {(q.time - start) // 1000 for s, q in recorder.quotes if s == symbol}
        assert seconds >= set(range(60))
        bar_updates = [at for k, _, at in recorder.candles if k.symbol == symbol]
        assert {(at - start) // 1000 for at in bar_updates} >= set(range(60))
    await feed.close()


async def test_same_seed_same_live_data() -> None:
    results = []
    for _ in range(2):
        fake = FakeTime()
        feed = make_feed(fake, speed=60)
        await feed.fetch_history(BTC1, None, 5)
        recorder = await run(feed, fake, [BTC1, QuoteKey("AAPL")], 20)
        await feed.close()
        results.append((recorder.candles, recorder.quotes))
    assert results[0] == results[1]


async def test_unwatch_stops_delivery_and_rewatch_continues_the_walk() -> None:
    fake = FakeTime()
    feed = make_feed(fake)
    eth = QuoteKey("ETHUSDT")
    recorder = await run(feed, fake, [BTC1, eth], 5)
    await feed.unwatch(BTC1)
    price = feed.price("BTCUSDT")
    recorder.candles.clear()
    recorder.quotes.clear()
    await fake.advance(5)
    assert recorder.candles == []
    assert recorder.quotes, "other keys keep flowing"
    assert feed.price("BTCUSDT") == price, "an unwatched symbol stands still"
    await feed.watch(QuoteKey("BTCUSDT"))
    await fake.advance(0.3)
    first = next(q for s, q in recorder.quotes if s == "BTCUSDT")
    assert abs(first.last - price) < price * 0.001, "the walk resumes where it stopped"
    await feed.close()


async def test_a_rewatched_key_backfills_its_missed_buckets_and_publishes_only_the_current_bar() -> (
    None
):
    fake = FakeTime()
    feed = make_feed(fake, speed=60)  # a 1-minute bar every real second
    recorder = await run(feed, fake, [BTC1], 3.2)
    await feed.unwatch(BTC1)
    open_bar = recorder.bars(BTC1)[-1]
    assert not open_bar.closed, "unwatched with a bar still open"
    await fake.advance(100)  # 100 simulated minutes nobody watches
    recorder.candles.clear()
    assert recorder.backfills == []
    await feed.watch(BTC1)
    now = bucket_start(feed.now(), "1")
    [(key, missed)] = recorder.backfills
    assert key == BTC1
    assert [c.time for c in missed] == list(range(open_bar.time, now, 60_000))
    assert all(c.closed for c in missed)
    assert (missed[0].open, missed[0].close) == (open_bar.open, open_bar.close)
    assert {(c.open, c.high, c.low, c.close, c.volume) for c in missed[1:]} == {
        (open_bar.close,) * 4 + (0.0,)
    }, "the buckets nobody watched are flat"
    await fake.advance(0.5)
    live = recorder.bars(BTC1)
    assert live, "the current bar is published"
    assert (live[0].time, live[0].closed) == (now, False), "it opens the current bucket"
    assert all(c.time >= now for c in live), "no backlog in the live stream"
    assert len(recorder.backfills) == 1
    await feed.close()


async def test_a_bar_closing_between_a_catch_up_and_the_watch_is_published_live() -> None:
    """A cluster worker catches a key up (a history request anchors it at the current bar)
    just before it takes the key over: the bar that closes in between is news, not backlog,
    or the clients of that worker would miss it."""
    fake = FakeTime()
    feed = make_feed(fake, speed=60)
    recorder = await run(feed, fake, [], 0.1)
    anchored = await feed.fetch_history(BTC1, None, 5)  # the catch-up, key not watched
    await fake.advance(1.5)  # its open bar's bucket ends meanwhile
    await feed.watch(BTC1)
    assert recorder.backfills == []
    closed = [c for c in recorder.bars(BTC1) if c.closed]
    assert [c.time for c in closed][:1] == [anchored[-1].time], "published through on_candle"
    await feed.close()


async def test_a_long_idle_backfills_only_the_newest_buckets() -> None:
    fake = FakeTime()
    feed = make_feed(fake, speed=600, tick_interval=5.0)  # ten 1-minute bars a real second
    recorder = await run(feed, fake, [BTC1], 1.0)
    await feed.unwatch(BTC1)
    await fake.advance(300)  # 3,000 simulated minutes nobody watches
    await feed.watch(BTC1)
    [(_, missed)] = recorder.backfills
    # At most the bar open at the unwatch (if a trade had opened one), then the newest flats.
    assert MAX_BACKFILL_BARS <= len(missed) <= MAX_BACKFILL_BARS + 1
    assert next_bucket(missed[-1].time, "1") == bucket_start(feed.now(), "1")
    await feed.close()


async def test_a_key_watched_again_within_its_bucket_has_no_backfill() -> None:
    fake = FakeTime()
    feed = make_feed(fake)
    recorder = await run(feed, fake, [BTC1], 2)
    await feed.unwatch(BTC1)
    await fake.advance(2)
    await feed.watch(BTC1)
    await fake.advance(1)
    assert recorder.backfills == []
    assert {c.time for c in recorder.bars(BTC1)} == {bucket_start(feed.now(), "1")}
    await feed.close()


async def test_a_failing_sink_does_not_stop_the_feed(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeTime()
    feed = make_feed(fake)
    calls: list[Symbol] = []

    class Flaky(Recorder):
        async def on_quote(self, symbol: Symbol, quote: Quote) -> None:
            calls.append(symbol)
            if len(calls) == 1:
                raise RuntimeError("boom")

    await feed.watch(QuoteKey("AAPL"))
    await feed.start(Flaky(feed))
    await fake.advance(2)
    assert len(calls) > 2
    assert "sink failed" in caplog.text
    await feed.close()


async def test_start_twice_is_refused_and_close_is_idempotent() -> None:
    fake = FakeTime()
    feed = make_feed(fake)
    await feed.close()  # before start: nothing to do
    recorder = await run(feed, fake, [BTC1], 1)
    with pytest.raises(RuntimeError, match="already running"):
        await feed.start(recorder)
    await feed.close()
    await feed.close()
    count = len(recorder.candles)
    fake.now += 120
    await asyncio.sleep(0)
    assert len(recorder.candles) == count


# -- history requests never touch live state ---------------------------------------------------


async def live_with_history_requests(requests: bool) -> Recorder:
    """Two watched keys at 600x (a 1-minute bar per 0.1 real s, a trade per 2.5 bars); with
    ``requests``, a history request that re-anchors each key whenever the timer loop is late,
    the moment a bar has ended but is not closed yet, which is when re-seeding lost it."""
    fake = FakeTime()
    feed = make_feed(fake, speed=600)
    keys: list[StreamKey] = [BTC1, BarKey("EUR/USD", "1")]
    recorder = await run(feed, fake, keys, 0.5)
    for step in range(60):
        fake.now += 0.13 if step % 2 else 0.07  # the loop is busy: nothing closes meanwhile
        if requests:
            for key in keys:
                assert isinstance(key, BarKey)
                await feed.fetch_history(key, feed.now() + 1, 5)  # past the anchor: re-anchor
                await feed.fetch_history(key, None, 5)
        await fake.advance(0.05)
    await feed.close()
    return recorder


async def test_history_requests_leave_the_live_stream_unchanged() -> None:
    quiet = await live_with_history_requests(False)
    busy = await live_with_history_requests(True)
    for key in (BTC1, BarKey("EUR/USD", "1")):
        closed = [c.time for c in busy.bars(key) if c.closed]
        assert len(closed) > 50
        assert closed == list(range(closed[0], closed[-1] + 1, 60_000)), "no gap, no repeat"
    assert busy.candles == quiet.candles, "the same updates, as if nobody asked for history"


async def test_a_history_request_on_an_idle_key_keeps_the_bar_it_left_open() -> None:
    """The bar open at the unwatch was published open; it must still close (as backlog) on
    the re-watch, even though a history request anchored the idle key somewhere later."""
    fake = FakeTime()
    feed = make_feed(fake, speed=60)
    recorder = await run(feed, fake, [BTC1], 3.2)
    await feed.unwatch(BTC1)
    open_bar = recorder.bars(BTC1)[-1]
    assert not open_bar.closed
    await fake.advance(10)
    anchored = await feed.fetch_history(BTC1, None, 5)
    await feed.watch(BTC1)
    [(_, missed)] = recorder.backfills
    assert [c.time for c in missed] == list(range(open_bar.time, anchored[-1].time, 60_000))
    assert all(c.closed for c in missed)
    assert (missed[0].open, missed[0].close) == (open_bar.open, open_bar.close)
    recorder.candles.clear()
    await fake.advance(0.5)
    first = recorder.bars(BTC1)[0]
    assert (first.time, first.open) == (anchored[-1].time, anchored[-1].open), "live continues it"
    await feed.close()
