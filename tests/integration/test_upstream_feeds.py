"""The Binance and Twelve Data feeds against the fakes on 127.0.0.1, in this process.

Fake time runs 600x (a 1-minute bar closes every 0.1 s) so every fault is exercised over many
bars in a few seconds; the checks compare what the feed delivered with the fake's own bars.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence

import pytest

from marketcast.feeds.binance import BinanceFeed
from marketcast.feeds.twelvedata import TwelveDataFeed
from marketcast.market import BarKey, Candle, Quote, QuoteKey
from marketcast.sim.binance import FakeBinance
from marketcast.sim.market import FakeClock, Market
from marketcast.sim.twelvedata import FakeTwelveData
from marketcast.types import Symbol

pytestmark = pytest.mark.integration


class Sink:
    """Records what a feed delivers, as the stream manager would receive it."""

    def __init__(self) -> None:
        self.candles: dict[BarKey, list[Candle]] = {}
        self.quotes: list[Quote] = []

    async def on_candle(self, key: BarKey, candle: Candle) -> None:
        self.candles.setdefault(key, []).append(candle)

    async def on_backfill(self, key: BarKey, candles: Sequence[Candle]) -> None:
        raise AssertionError("the upstream feeds fill their gaps in order, through on_candle")

    async def on_quote(self, symbol: Symbol, quote: Quote) -> None:
        self.quotes.append(quote)

    def closed(self, key: BarKey) -> list[Candle]:
        return [c for c in self.candles.get(key, []) if c.closed]


def truth(market: Market, key: BarKey, spec: int, first: int, last: int) -> list[Candle]:
    """The fake's closed bars from ``first`` to ``last`` as a parser reads them."""
    out = []
    for time, agg, closed in market.bars(key.symbol, spec, first, last + 1):
        assert closed
        values = [float(f"{v:.8f}") for v in (agg.open, agg.high, agg.low, agg.close, agg.volume)]
        out.append(Candle(time, *values, closed=True))
    return out


def assert_exact(sink: Sink, market: Market, key: BarKey, spec: int, at_least: int) -> None:
    closed = sink.closed(key)
    assert len(closed) >= at_least, (key, len(closed))
    assert closed == truth(market, key, spec, closed[0].time, closed[-1].time)
    times = [c.time for c in sink.candles[key]]
    assert times == sorted(times), "delivered out of order"


@pytest.fixture
async def market() -> Market:
    return Market(
        ["BTCUSDT", "ETHUSDT", "EUR/USD", "GBP/USD", "AAPL"],
        clock=FakeClock(600.0),
        history_days=0.5,
    )


@pytest.fixture
async def binance(market: Market) -> AsyncIterator[FakeBinance]:
    fake = FakeBinance(market, push_interval=0.05, ping_interval=1.0, shutdown_grace=0.2)
    await fake.start()
    yield fake
    await fake.stop()


def binance_feed(fake: FakeBinance, **options: object) -> BinanceFeed:
    settings: dict[str, object] = {
        "reconnect_min": 0.02,
        "reconnect_max": 0.2,
        "stall_timeout": 3.0,
        "timeout": 5.0,
    }
    settings.update(options)
    return BinanceFeed(
        ["BTCUSDT", "ETHUSDT"], ws_url=fake.ws_url, rest_url=fake.rest_url, **settings
    )  # type: ignore[arg-type]


async def test_binance_faults_lose_no_bar_and_repeat_none(
    market: Market, binance: FakeBinance, caplog: pytest.LogCaptureFixture
) -> None:
    """Drops, serverShutdown, rotation by age, a stall, a malformed frame, a missing field,
    429 and 418 on the gap-fill: every closed bar arrives once, with the fake's values."""
    caplog.set_level(logging.INFO, "marketcast")
    sink, feed = Sink(), binance_feed(binance, max_connection_age=1.5, stall_timeout=0.6)
    one, three = BarKey("BTCUSDT", "1"), BarKey("ETHUSDT", "3")
    await feed.start(sink)
    try:
        await feed.fetch_history(one, None, 20)
        for key in (one, three, QuoteKey("BTCUSDT")):
            await feed.watch(key)

        # Each fault once the previous one has visibly happened, not after a fixed time, so a
        # loaded machine stretches the scenario instead of skipping part of it.
        def reconnected(after: int) -> Callable[[], bool]:
            return lambda: len(binance.connections) > after and feed.status().connected

        await until(lambda: len(sink.closed(one)) >= 3, within=60)
        opened, bars = len(binance.connections), len(sink.closed(one))
        await binance.kill()  # down for several bars (fake time)
        down_from = market.clock.now_ms()
        await until(lambda: market.clock.now_ms() >= down_from + 3 * 60_000, within=60)
        await binance.start()
        await until(lambda: len(sink.closed(one)) > bars + 3 and feed.gap_fills >= 1, within=60)
        opened = len(binance.connections)
        binance.server_shutdown()
        await until(lambda: "serverShutdown announced" in caplog.text, within=60)
        await until(reconnected(opened), within=60)
        opened, malformed = len(binance.connections), feed.malformed_frames
        binance.send_malformed()
        binance.omit_optional = True
        binance.stall(1.4)  # longer than the feed's stall timeout
        await until(lambda: "(stalled)" in caplog.text, within=60)
        await until(lambda: feed.malformed_frames > malformed and reconnected(opened)(), within=60)
        binance.fail_rest(429, retry_after=1)
        binance.fail_rest(418, retry_after=1)
        binance.drop()
        await binance.kill()
        opened, bars = len(binance.connections), len(sink.closed(one))
        await binance.start()
        await until(reconnected(opened), within=60)
        # What the assertions below count, however long it took to happen.
        await until(
            lambda: (
                len(sink.closed(one)) >= max(40, bars + 3)
                and len(sink.closed(three)) >= 12
                and feed.gap_fills >= 3
                and "connection age limit reached" in caplog.text
                and sum(r.pongs for r in binance.connections) >= 1
            ),
            within=60,
        )
        await until(lambda: feed.status().connections == 1, within=60)
        status = feed.status()
        assert (status.connected, status.connections, status.state) == (True, 1, "connected")
        assert status.last_message_age is not None  # how recent is the machine's business
    finally:
        await feed.close()
    assert_exact(sink, market, one, 60_000, at_least=40)
    assert_exact(sink, market, three, 180_000, at_least=12)
    assert sink.quotes
    assert all(q.bid < q.ask for q in sink.quotes)
    assert feed.malformed_frames >= 1
    assert feed.gap_fills >= 3
    assert [s for *_, s in binance.rest_requests if s != 200][:2] == [429, 418]
    records = binance.connections
    assert len(records) >= 5  # initial, drop, shutdown, stall, drop (+ rotations by age)
    assert "connection age limit reached" in caplog.text
    assert "serverShutdown announced" in caplog.text
    assert max(r.max_messages_per_second() for r in records) <= 5
    assert sum(r.pongs for r in records) >= 1  # the server's pings were answered
    assert not [r for r in records if r.close_reason in ("too many messages", "no pong")]


async def test_binance_batches_control_messages_within_the_rate_and_shards_streams(
    market: Market, binance: FakeBinance
) -> None:
    sink, feed = Sink(), binance_feed(binance)
    await feed.start(sink)
    keys = [
        BarKey(s, r)
        for s in ("BTCUSDT", "ETHUSDT")
        for r in ("1", "3", "5", "15", "30", "60", "120", "240", "D", "W", "M")
    ]
    try:
        await feed.watch(keys[0])
        await asyncio.sleep(0.3)
        for key in keys[1:]:  # one at a time, as clients arrive
            await feed.watch(key)
            await asyncio.sleep(0.01)
        wanted = {
            f"{k.symbol.lower()}@kline_{i}"
            for k, i in zip(
                keys,
                ["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "1d", "1w", "1M"] * 2,
                strict=True,
            )
        }
        # Bounded waits, not fixed sleeps: at 3 messages per 2 s the last batch may go out
        # ~2 s after the first, later still on a loaded machine.
        await until(lambda: binance.subscriptions() == wanted)
        assert len(binance.open_connections()) == 1
        for key in keys[5:]:
            await feed.unwatch(key)
        await until(lambda: len(binance.subscriptions()) == 5)
        for key in keys[:5]:
            await feed.unwatch(key)
        await until(lambda: binance.open_connections() == [])  # the last key gone: closed
    finally:
        await feed.close()
    record = binance.connections[0]
    assert sum(1 for _, m in record.messages if "SUBSCRIBE" in m) >= 3
    assert record.max_messages_per_second() <= 5
    assert len(binance.connections) == 1

    # Past the per-connection limit a second connection opens (limit 4 here).
    small = binance_feed(binance, max_streams=4)
    await small.start(Sink())
    try:
        for key in keys[:10]:
            await small.watch(key)
        await until(lambda: len(binance.open_connections()) == 3)
        assert small.links() == 3
    finally:
        await small.close()


async def until(predicate: Callable[[], bool], within: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.fixture
async def twelvedata(market: Market) -> AsyncIterator[FakeTwelveData]:
    fake = FakeTwelveData(market, api_key="td-secret-key")
    await fake.start()
    yield fake
    await fake.stop()


async def test_twelvedata_stays_within_budget_and_backs_off_on_errors(
    market: Market, twelvedata: FakeTwelveData, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sink = Sink()
    feed = TwelveDataFeed(
        ["EUR/USD", "GBP/USD", "AAPL"],
        rest_url=twelvedata.rest_url,
        api_key="td-secret-key",
        budget=4,
        window=1.0,
        min_poll=0.05,
    )
    keys = [BarKey("EUR/USD", r) for r in ("1", "3", "5", "15")]
    keys += [BarKey("GBP/USD", "1"), BarKey("AAPL", "60"), BarKey("AAPL", "D")]
    await feed.start(sink)
    try:
        for key in keys:
            await feed.watch(key)
        # Each step once the previous one has visibly happened, not after a fixed time.
        await until(lambda: all(sink.candles.get(key) for key in keys), within=60)
        twelvedata.fail_next(429, http_status=429)
        twelvedata.fail_next(429)  # out of credits, reported in a 200 body
        twelvedata.fail_next(500, http_status=500)
        twelvedata.fail_next(404)  # a symbol error: that series alone backs off
        await until(lambda: {429, 500, 404} <= {r.code for r in twelvedata.requests}, within=60)
        seen = {key: len(sink.candles.get(key, [])) for key in keys}
        await until(
            lambda: all(len(sink.candles.get(key, [])) > seen[key] for key in keys[:2]),
            within=60,
        )
        assert feed.status().state in ("polling", "paused")
    finally:
        await feed.close()
    assert twelvedata.max_requests_in(1.0) <= 4
    codes = [r.code for r in twelvedata.requests]
    assert {429, 500, 404} <= set(codes)
    assert codes[-1] == 200  # polling went on after the errors
    assert all(len(sink.candles.get(key, [])) > seen[key] for key in keys[:2]), "stopped"
    assert "pausing all polls" in caplog.text
    # Nothing on the client side logs the key (the fake's own debug log shows the header).
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("websockets")]
    assert ours
    assert not [m for m in ours if "td-secret-key" in m]
    assert all("apikey" not in str(r.params) for r in twelvedata.requests)
