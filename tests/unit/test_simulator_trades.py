"""SimulatorFeed's trades (``TradeKey``): the very trades its candles are built from.

Driven like ``test_simulator``: a fake clock that only moves when the feed sleeps, so every
run is hours of trading in no real time and the same run twice is the same data.
"""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise

import pytest

from marketcast.channels.orderbook import BookKey
from marketcast.channels.trades import Trade, TradeKey
from marketcast.feeds.simulator import SimulatorFeed
from marketcast.market import BarKey, Candle, QuoteKey, StreamKey
from marketcast.settings import DEFAULT_SIM_SYMBOLS
from marketcast.timeframes import bucket_start
from marketcast.types import Millis, Resolution, Symbol
from tests.unit.test_simulator import FakeTime, Recorder, make_feed

BTC1 = BarKey("BTCUSDT", "1")
BTC_TRADES = TradeKey("BTCUSDT")


class TradeRecorder(Recorder):
    """A ``Recorder`` that also remembers every ``on_event``."""

    def __init__(self, feed: SimulatorFeed) -> None:
        super().__init__(feed)
        self.events: list[tuple[StreamKey, object]] = []

    async def on_event(self, key: StreamKey, event: object) -> None:
        self.events.append((key, event))

    def trades(self, symbol: Symbol) -> list[Trade]:
        found = []
        for key, event in self.events:
            assert isinstance(key, TradeKey), "the simulator's only events are trades"
            assert isinstance(event, Trade)
            if key.symbol == symbol:
                found.append(event)
        return found


async def run(
    feed: SimulatorFeed, fake: FakeTime, keys: list[StreamKey], seconds: float
) -> TradeRecorder:
    recorder = TradeRecorder(feed)
    for key in keys:
        await feed.watch(key)
    await feed.start(recorder)
    await fake.advance(seconds)
    return recorder


def assert_tick_test(trades: list[Trade], start_price: float) -> None:
    """The documented side rule: up is a buy, down a sell, unchanged keeps the side."""
    previous_price, previous_side = start_price, "buy"
    for trade in trades:
        if trade.price > previous_price:
            assert trade.side == "buy", trade
        elif trade.price < previous_price:
            assert trade.side == "sell", trade
        else:
            assert trade.side == previous_side, trade
        previous_price, previous_side = trade.price, trade.side


def buckets(trades: list[Trade], resolution: Resolution) -> dict[Millis, list[Trade]]:
    """The trades of each bucket, oldest bucket first."""
    found: dict[Millis, list[Trade]] = {}
    for trade in trades:
        found.setdefault(bucket_start(trade.time, resolution), []).append(trade)
    return found


def test_every_symbol_advertises_trades() -> None:
    feed = make_feed(FakeTime())
    infos = feed.symbols()
    assert [i.symbol for i in infos] == list(DEFAULT_SIM_SYMBOLS)
    assert all(i.kinds == {BarKey, QuoteKey, TradeKey, BookKey} for i in infos)


async def test_watching_an_unknown_symbol_or_kind_is_refused() -> None:
    feed = make_feed(FakeTime())
    with pytest.raises(ValueError, match="does not serve 'XRPUSDT'"):
        await feed.watch(TradeKey("XRPUSDT"))
    with pytest.raises(ValueError, match="cannot watch"):
        await feed.watch(StreamKey("BTCUSDT"))


async def test_trades_make_up_the_candles_of_their_bucket() -> None:
    fake = FakeTime()
    feed = make_feed(fake, speed=10)  # a trade per 2.5 simulated seconds, 24 a minute
    keys: list[StreamKey] = [BTC1, BarKey("BTCUSDT", "5"), BTC_TRADES]
    recorder = await run(feed, fake, keys, 90)  # 15 simulated minutes
    await feed.close()
    trades = recorder.trades("BTCUSDT")
    assert len(trades) > 300
    assert [t.id for t in trades] == list(range(1, len(trades) + 1)), "one id per trade"
    assert all(a.time < b.time for a, b in pairwise(trades))
    assert_tick_test(trades, make_feed(FakeTime()).price("BTCUSDT"))
    assert {t.side for t in trades} == {"buy", "sell"}
    for key in keys[:2]:
        assert isinstance(key, BarKey)
        bars = recorder.final(key)
        by_bucket = buckets(trades, key.resolution)
        assert [b.time for b in bars] == list(by_bucket), "every bucket traded"
        assert sum(b.closed for b in bars) >= len(bars) - 1
        for bar in bars:
            bucket = by_bucket[bar.time]
            # The exact decimal sum of the sizes, not a float one (issue 14: no binary noise).
            volume = sum((Decimal(repr(t.quantity)) for t in bucket), Decimal(0))
            prices = [t.price for t in bucket]
            assert (bar.open, bar.high, bar.low, bar.close, Decimal(repr(bar.volume))) == (
                prices[0],
                max(prices),
                min(prices),
                prices[-1],
                volume,
            ), (key, bar)


async def bars_of(keys: list[StreamKey]) -> TradeRecorder:
    fake = FakeTime()
    feed = make_feed(fake, speed=60)
    recorder = await run(feed, fake, keys, 20)
    await feed.close()
    return recorder


async def test_bars_and_trades_of_a_symbol_share_one_trade_per_tick() -> None:
    both = await bars_of([BTC1, BTC_TRADES])
    bars_only = await bars_of([BTC1])
    assert both.candles == bars_only.candles, "watching its trades steps the walk no more"
    trades = both.trades("BTCUSDT")
    assert [t.id for t in trades] == list(range(1, len(trades) + 1)), "no step unpublished"
    # Each trade is exactly one update of the open bar, at its time and price.
    updates: list[tuple[Candle, int]] = [(c, at) for k, c, at in both.candles if not c.closed]
    assert len(updates) == len(trades) > 50
    for (candle, at), trade in zip(updates, trades, strict=True):
        assert at == trade.time
        assert (candle.time, candle.close) == (bucket_start(trade.time, "1"), trade.price)


async def test_unwatch_stops_trades_and_a_rewatch_continues_with_larger_ids() -> None:
    fake = FakeTime()
    feed = make_feed(fake)
    recorder = await run(feed, fake, [BTC_TRADES, QuoteKey("ETHUSDT")], 5)
    before = recorder.trades("BTCUSDT")
    assert len(before) >= 15
    await feed.unwatch(BTC_TRADES)
    price = feed.price("BTCUSDT")
    recorder.events.clear()
    await fake.advance(5)
    assert recorder.events == []
    assert recorder.quotes, "other keys keep flowing"
    assert feed.price("BTCUSDT") == price, "an unwatched symbol stands still"
    # Trades made while only the symbol's bars are watched are numbered, not published.
    await feed.watch(BTC1)
    await fake.advance(2)
    unpublished = [c for k, c, _ in recorder.candles if k == BTC1 and not c.closed]
    assert unpublished
    assert recorder.events == []
    await feed.watch(BTC_TRADES)
    await fake.advance(2)
    after = recorder.trades("BTCUSDT")
    assert after
    assert after[0].id == before[-1].id + len(unpublished) + 1
    assert all(a.id < b.id for a, b in pairwise(after))
    assert after[0].time > before[-1].time
    await feed.unwatch(BTC1)
    await feed.unwatch(BTC_TRADES)
    await feed.watch(BTC_TRADES)
    await fake.advance(1)
    again = recorder.trades("BTCUSDT")[len(after) :]
    assert again
    assert again[0].id == after[-1].id + 1, "ids are never reused"
    await feed.close()


async def live_trades(history_requests: bool) -> list[Trade]:
    fake = FakeTime()
    feed = make_feed(fake, speed=600)
    recorder = await run(feed, fake, [BTC1, BTC_TRADES], 0.5)
    for _ in range(40):
        if history_requests:
            await feed.fetch_history(BTC1, feed.now() + 1, 5)  # past the anchor: re-anchor
            await feed.fetch_history(BTC1, None, 5)
            await feed.fetch_history(BarKey("BTCUSDT", "5"), None, 5)  # an idle key
        await fake.advance(0.1)
    await feed.close()
    return recorder.trades("BTCUSDT")


async def test_history_requests_leave_the_trades_unchanged() -> None:
    quiet = await live_trades(False)
    assert len(quiet) > 15
    assert await live_trades(True) == quiet
    assert await live_trades(False) == quiet, "the same seed and clock, the same trades"
