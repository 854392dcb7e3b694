"""Twelve Data quotes and every feed's status, against the fakes on 127.0.0.1: the feed alone,
then a real ``marketcast serve`` with WebSocket clients and ``/metrics``."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from marketcast.feeds.twelvedata import TwelveDataFeed
from marketcast.market import BarKey, Candle, Quote, QuoteKey
from marketcast.sim.binance import FakeBinance
from marketcast.sim.market import DAY, TICK_MS, FakeClock, Market
from marketcast.sim.twelvedata import FakeTwelveData
from marketcast.types import Symbol
from tests.integration.harness import Server, client, served, until

pytestmark = pytest.mark.integration

KEY = "td-quotes-secret"


@contextlib.asynccontextmanager
async def fake_twelvedata(market: Market) -> AsyncIterator[FakeTwelveData]:
    fake = FakeTwelveData(market, api_key=KEY)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def expected_quote(market: Market, symbol: Symbol, time: int) -> tuple[float, float]:
    """(last, change) the fake answers for a quote stamped ``time``: the trade of that tick,
    and its distance from the previous day's close, both as 5-decimal strings parse."""
    tape = market.tapes[symbol]
    last = tape.tick(time // TICK_MS).close
    day = time - time % DAY
    previous = tape.aggregate(day - DAY, day)
    assert previous is not None
    return float(f"{last:.5f}"), float(f"{last - previous.close:.5f}")


class Sink:
    def __init__(self) -> None:
        self.candles: list[Candle] = []
        self.quotes: list[Quote] = []

    async def on_candle(self, key: BarKey, candle: Candle) -> None:
        self.candles.append(candle)

    async def on_backfill(self, key: BarKey, candles: Sequence[Candle]) -> None:
        raise AssertionError("the Twelve Data feed fills its gaps through on_candle")

    async def on_quote(self, symbol: Symbol, quote: Quote) -> None:
        assert symbol == "EUR/USD"
        self.quotes.append(quote)


async def test_feed_polls_quotes_and_bars_within_one_budget_and_reports_status() -> None:
    # The fake's clock an hour ahead of ours from the start: no answer can be late.
    ahead = (int(time.time()) // 60 + 60) * 60_000
    market = Market(
        ["EUR/USD", "GBP/USD"], clock=FakeClock(120.0, origin_ms=ahead), history_days=1.5
    )
    sink = Sink()
    async with fake_twelvedata(market) as fake:
        feed = TwelveDataFeed(
            ["EUR/USD", "GBP/USD"],
            rest_url=fake.rest_url,
            api_key=KEY,
            budget=3,
            window=0.5,
            min_poll=0.01,
        )
        assert feed.status().state == "idle"
        assert feed.status().lag is None
        await feed.start(sink)
        try:
            for key in (QuoteKey("EUR/USD"), BarKey("EUR/USD", "1"), BarKey("GBP/USD", "5")):
                await feed.watch(key)
            await until(lambda: len(sink.quotes) >= 4 and len(sink.candles) >= 4)
            status = feed.status()
            await feed.unwatch(QuoteKey("EUR/USD"))
            quotes_then = len(fake.requests)
            polled = [r.path for r in fake.requests]
            await until(lambda: len(fake.requests) >= quotes_then + 6)
        finally:
            await feed.close()
    # One budget for every request, quotes included: never more than 3 in any 0.5 s.
    assert fake.max_requests_in(0.5) <= 3
    assert polled.count("/quote") >= 4
    assert polled.count("/time_series") >= 4
    assert all(r.path == "/time_series" for r in fake.requests[quotes_then + 1 :])
    assert all(r.code == 200 for r in fake.requests)
    for quote in sink.quotes:
        last, change = expected_quote(market, "EUR/USD", quote.time)
        assert (quote.bid, quote.ask, quote.last, quote.change) == (last, last, last, change)
        assert quote.volume is None  # forex
    assert [q.time for q in sink.quotes] == sorted(q.time for q in sink.quotes)
    assert status.state == "polling"
    assert status.connected
    assert status.last_message_age is not None
    assert 0 <= status.last_message_age < 10
    assert status.lag == 0.0  # our clock minus the fake's Date, which is ahead


def samples_of(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def feed_metrics(server: Server, feed: str, within: float = 20.0) -> dict[str, float]:
    """The ``marketcast_upstream_*`` samples of ``feed``, once its age and lag are reported."""
    wanted = ("last_message_age_seconds", "lag_seconds", "up")
    deadline = asyncio.get_running_loop().time() + within
    async with httpx.AsyncClient() as http:
        while True:
            response = await http.get(f"{server.http}/metrics", timeout=5)
            assert response.status_code == 200
            found = {
                name.removeprefix("marketcast_upstream_"): value
                for (name, labels), value in samples_of(response.text).items()
                if name.startswith("marketcast_upstream_") and ("feed", feed) in labels
            }
            if all(name in found for name in wanted):
                return found
            assert asyncio.get_running_loop().time() < deadline, found
            await asyncio.sleep(0.1)


async def test_quotes_subscribe_for_a_twelvedata_symbol_end_to_end(tmp_path: Path) -> None:
    market = Market(["EUR/USD", "GBP/USD"], clock=FakeClock(120.0), history_days=1.5)
    async with (
        fake_twelvedata(market) as fake,
        served(
            tmp_path,
            twelvedata_symbols="EUR/USD,GBP/USD",
            twelvedata_rest_url=fake.rest_url,
            twelvedata_api_key=KEY,
            twelvedata_budget=3,
            twelvedata_budget_window=1.0,
            twelvedata_min_poll=0.05,
            sim_symbols="AAPL",
        ) as server,
        client(server, max_queue=None) as c,
    ):
        reply = await c.request("quotes.subscribe", {"symbol": "EUR/USD", "params": {}})
        assert reply["type"] == "quotes.subscribe.response", reply
        bars = await c.subscribe_bars("GBP/USD", "1")
        assert bars["type"] == "bars.subscribe.response", bars
        quotes: list[dict[str, Any]] = []
        while len(quotes) < 3:
            frame = await c.recv_until(lambda f: f["type"] == "quotes.update", within=20)
            quotes.append(frame["payload"])
        status = await feed_metrics(server, "twelvedata")
        log = server.log()
    assert fake.max_requests_in(1.0) <= 3
    assert {"/quote", "/time_series"} <= {r.path for r in fake.requests}
    for quote in quotes:
        assert quote["symbol"] == "EUR/USD"
        last, change = expected_quote(market, "EUR/USD", quote["time"])
        assert (quote["bid"], quote["ask"], quote["last"]) == (last, last, last)
        assert quote["change"] == change
        assert "volume" not in quote  # forex: the feed does not know it
    assert status["up"] == 1
    assert 0 <= status["last_message_age_seconds"] < 10
    assert status["lag_seconds"] >= 0
    assert KEY not in log


async def test_binance_status_reaches_metrics(tmp_path: Path) -> None:
    market = Market(["BTCUSDT"], clock=FakeClock(60.0), history_days=0.1)
    fake = FakeBinance(market, push_interval=0.05, ping_interval=1.0)
    await fake.start()
    try:
        async with (
            served(
                tmp_path,
                binance_symbols="BTCUSDT",
                binance_ws_url=fake.ws_url,
                binance_rest_url=fake.rest_url,
                sim_symbols="AAPL",
            ) as server,
            client(server, max_queue=None) as c,
        ):
            await c.subscribe_bars("BTCUSDT", "1")
            await c.recv_until(lambda f: f["type"] == "bars.update", within=20)
            status = await feed_metrics(server, "binance")
    finally:
        await fake.stop()
    assert status["up"] == 1
    assert status["connections"] == 1
    assert 0 <= status["last_message_age_seconds"] < 10
    assert status["lag_seconds"] >= 0


async def test_a_history_request_leaves_a_polled_series_alone() -> None:
    """A history fetch between two polls of a watched key must not mark the bars it saw as
    delivered: every closed bar still reaches the sink, once, in order (issue: history never
    changes live state)."""
    market = Market(["EUR/USD"], clock=FakeClock(120.0), history_days=0.5)
    sink = Sink()
    key = BarKey("EUR/USD", "1")
    async with fake_twelvedata(market) as fake:
        feed = TwelveDataFeed(
            ["EUR/USD"], rest_url=fake.rest_url, api_key=KEY, budget=8, window=0.5, min_poll=1.5
        )
        await feed.start(sink)
        try:
            await feed.fetch_history(key, None, 50)  # the bootstrap, before the watch
            await feed.watch(key)
            await until(lambda: sum(c.closed for c in sink.candles) >= 1)
            for _ in range(6):
                # A history request once bars closed that no poll has delivered yet.
                newest = max(c.time for c in sink.candles if c.closed)
                await until(lambda t=newest: market.clock.now_ms() > t + 3 * 60_000)
                await feed.fetch_history(key, None, 50)
                await until(lambda t=newest: any(c.time > t and c.closed for c in sink.candles))
        finally:
            await feed.close()
    times = [c.time for c in sink.candles if c.closed]
    assert len(times) >= 7
    assert times == sorted(set(times)), "a closed bar repeated or out of order"
    steps = {b - a for a, b in itertools.pairwise(times)}
    assert steps == {60_000}, f"a closed bar is missing: {times}"
