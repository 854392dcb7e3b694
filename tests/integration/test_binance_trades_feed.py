"""The real ``BinanceFeed`` against the shipped FakeBinance on 127.0.0.1: aggregate trades
across upstream drops, a killed upstream, a stalled stream and a slow REST.

What is asserted is the consumer's view: every trade id exactly once, strictly increasing,
no hole between the first and the last, each trade equal to the fake's (deterministic) tape,
and the gaps closed by ``GET /api/v3/aggTrades`` rather than by luck. The fake's clock runs
60x (a trade every ~83 ms of wall time), so a drop of a fraction of a second loses trades.
Nothing waits a fixed time: each step waits, bounded, for the state it needs.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from itertools import pairwise

import pytest

from marketcast.channels.trades import Trade, TradeKey
from marketcast.feeds.binance import BinanceFeed
from marketcast.market import BarKey, Candle, Quote, StreamKey
from marketcast.sim.binance import FakeBinance
from marketcast.sim.market import TICK_MS, FakeClock, Market
from marketcast.types import Symbol
from tests.integration.harness import until

pytestmark = pytest.mark.integration

SPEED = 60.0
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
BTC, ETH = TradeKey("BTCUSDT"), TradeKey("ETHUSDT")


class Sink:
    """A ``FeedSink`` that records every trade and bar it is given, in order."""

    def __init__(self) -> None:
        self.trades: dict[Symbol, list[Trade]] = {s: [] for s in SYMBOLS}
        self.candles = 0

    async def on_candle(self, key: BarKey, candle: Candle) -> None:
        self.candles += 1

    async def on_backfill(self, key: BarKey, candles: Sequence[Candle]) -> None:
        raise AssertionError("the Binance feed fills its gaps through on_candle")

    async def on_quote(self, symbol: Symbol, quote: Quote) -> None:
        pass

    async def on_event(self, key: StreamKey, event: object) -> None:
        assert isinstance(key, TradeKey), key
        assert isinstance(event, Trade), event
        self.trades[key.symbol].append(event)

    def newest(self, symbol: Symbol) -> int:
        trades = self.trades[symbol]
        return trades[-1].id if trades else -1


@contextlib.asynccontextmanager
async def running(
    rest_delay: float = 0.0,
) -> AsyncIterator[tuple[Market, FakeBinance, BinanceFeed, Sink]]:
    market = Market(SYMBOLS, clock=FakeClock(SPEED), history_days=0.1)
    fake = FakeBinance(market, push_interval=0.05, ping_interval=2.0, rest_delay=rest_delay)
    await fake.start()
    feed = BinanceFeed(
        SYMBOLS,
        ws_url=fake.ws_url,
        rest_url=fake.rest_url,
        reconnect_min=0.05,
        reconnect_max=0.5,
        stall_timeout=30.0,
        timeout=10.0,
    )
    sink = Sink()
    await feed.start(sink)
    try:
        yield market, fake, feed, sink
    finally:
        await feed.close()
        await fake.stop()


def now_id(market: Market) -> int:
    """The id of the fake's newest trade."""
    return market.clock.now_ms() // TICK_MS


async def trades_past(sink: Sink, trade_id: int, what: str) -> None:
    """Until both symbols have received a trade newer than ``trade_id``."""
    await until(lambda: all(sink.newest(s) > trade_id for s in SYMBOLS), 30, what)


def agg_trade_requests(fake: FakeBinance) -> list[dict[str, str]]:
    return [params for _, path, params, _ in fake.rest_requests if path == "/api/v3/aggTrades"]


def assert_every_trade_once(market: Market, sink: Sink) -> None:
    for symbol in SYMBOLS:
        got = sink.trades[symbol]
        ids = [t.id for t in got]
        assert all(a < b for a, b in pairwise(ids)), f"{symbol}: an id repeated or out of order"
        assert ids == list(range(ids[0], ids[-1] + 1)), f"{symbol}: a hole in {ids}"
        tape = market.tapes[symbol]
        for t in got:
            tick = tape.tick(t.id)
            side = "buy" if tick.taker_volume else "sell"
            assert (t.time, t.side) == (t.id * TICK_MS, side), (symbol, t)
            assert (t.price, t.quantity) == pytest.approx((tick.close, tick.volume)), (symbol, t)


async def test_trades_arrive_once_in_order_across_drops_and_a_killed_upstream() -> None:
    async with running() as (market, fake, feed, sink):
        for key in (BTC, BarKey("BTCUSDT", "1"), ETH):
            await feed.watch(key)
        await trades_past(sink, -1, "the first trades")
        # One connection carries the trades and the klines, subscribed through it (paced:
        # the first trades may come from the tape each watch starts from, before that).
        wanted = {"btcusdt@aggTrade", "ethusdt@aggTrade", "btcusdt@kline_1m"}
        await until(lambda: wanted <= fake.subscriptions(), 30, "every stream subscribed")
        assert len(fake.open_connections()) == 1
        assert feed.links() == 1

        # 1. A drop, and reconnects refused long enough for trades to be missed.
        dropped_at = now_id(market)
        fake.drop()
        fake.refuse_connections(0.6)
        await until(lambda: now_id(market) >= dropped_at + 5, 30, "trades made while down")
        await trades_past(sink, dropped_at + 5, "trades after the drop")
        await until(lambda: feed.trades.fills >= 2, 30, "both keys' gaps filled")

        # 2. The upstream dies (port closed: REST too) and comes back on the same port.
        fills = feed.trades.fills
        killed_at = now_id(market)
        await fake.kill()
        await until(lambda: feed.status().connections == 0, 30, "the feed noticing the kill")
        await until(lambda: now_id(market) >= killed_at + 5, 30, "trades made while dead")
        await fake.start()
        await trades_past(sink, killed_at + 5, "trades after the restart")
        await until(lambda: feed.trades.fills >= fills + 2, 30, "the gaps of the kill filled")

    assert_every_trade_once(market, sink)
    assert feed.trades.unfilled == 0
    requests = agg_trade_requests(fake)
    fills = [r for r in requests if "fromId" in r]
    assert len(fills) >= 4
    assert all(r["limit"] == "1000" for r in fills)
    # Besides the fills, one request per watch: the newest trades it starts from.
    seeds = [r for r in requests if "fromId" not in r]
    assert sorted(r["symbol"] for r in seeds) == ["BTCUSDT", "ETHUSDT"]
    assert all(r["limit"] == "500" for r in seeds)
    assert len(fake.connections) >= 2
    assert fake.refused
    assert fake.max_concurrent_connections() <= 1
    assert max(r.max_messages_per_second() for r in fake.connections) <= 5


async def test_a_stalled_stream_and_a_slow_rest_still_deliver_every_trade() -> None:
    """The stream goes silent for a while on the same connection (its trades are never sent),
    and REST answers late: the live trades after the stall wait for the fill, in order."""
    async with running(rest_delay=0.3) as (market, fake, feed, sink):
        fake.omit_optional = True  # aggTrade events without "M" ("Ignore") are accepted
        for key in (BTC, ETH):
            await feed.watch(key)
        await trades_past(sink, -1, "the first trades")
        stalled_at = now_id(market)
        fake.stall(0.6)
        await until(lambda: now_id(market) >= stalled_at + 5, 30, "trades made while stalled")
        await trades_past(sink, stalled_at + 8, "trades after the stall")
        assert len(fake.connections) == 1, "a stall, not a reconnect"
        assert feed.trades.fills >= 2

    assert_every_trade_once(market, sink)
    assert feed.malformed_frames == 0


async def test_unwatch_drops_the_stream_and_a_new_watch_starts_from_the_newest_trades() -> None:
    async with running() as (market, fake, feed, sink):
        await feed.watch(BTC)
        await until(lambda: sink.newest("BTCUSDT") > 0, 30, "the first trade")
        await feed.unwatch(BTC)
        await until(lambda: not fake.open_connections(), 30, "the idle link closed")
        stopped = sink.newest("BTCUSDT")
        before = len(sink.trades["BTCUSDT"])
        await until(lambda: now_id(market) >= stopped + 5, 30, "trades nobody watched")
        await feed.watch(BTC)
        await until(lambda: sink.newest("BTCUSDT") > stopped + 5, 30, "trades after re-watching")
        # Each watch starts afresh from the newest trades (one REST request without an id:
        # fewer than 500 were made meanwhile, so they reach back over the pause), then the
        # stream follows them without a hole.
        assert agg_trade_requests(fake) == [{"symbol": "BTCUSDT", "limit": "500"}] * 2
        ids = [t.id for t in sink.trades["BTCUSDT"][before:]]
        assert ids[0] <= stopped + 1
        assert ids == list(range(ids[0], ids[-1] + 1))
