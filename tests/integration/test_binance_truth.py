"""Issue 18, "Upstream truth", for Binance: a real ``marketcast serve`` against the shipped
FakeBinance whose clock is days behind this machine's and runs 20x faster than real time.

Why a clock in the past: bars are final only on the upstream's word (a closed kline, a newer
REST row, or a close time before the *upstream's* clock). A fake in the past makes every bar
look over to this machine's clock, so a feed that judged by it would publish open bars as
closed, with values that still change. Why 20x: ten drops need minutes of market to show
real gap-fills across several 1- and 5-minute bars; at 20x, 10 minutes of market take ~30 s
of wall time, while one push of the fake (0.1 s) is still only 2 s of market.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import re
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from marketcast.feeds.binance import BinanceFeed
from marketcast.feeds.binance_protocol import KlineEvent
from marketcast.market import BarKey, Candle, Quote
from marketcast.sim.binance import FakeBinance
from marketcast.sim.market import DAY, MINUTE, FakeClock, Market
from marketcast.types import Symbol
from tests.integration.harness import Client, Server, client, served, until

pytestmark = pytest.mark.integration

SPEED = 20.0
KEYS = [("BTCUSDT", "1", MINUTE), ("ETHUSDT", "1", MINUTE), ("BTCUSDT", "5", 5 * MINUTE)]


def past_market() -> Market:
    """A market whose clock is a day and some hours (whole minutes) behind real time."""
    real_minute = int(time.time() * 1000) // MINUTE * MINUTE
    clock = FakeClock(SPEED, origin_ms=real_minute - DAY - 7 * 60 * MINUTE - 13 * MINUTE)
    return Market(["BTCUSDT", "ETHUSDT"], clock=clock, history_days=0.5)


def served_against(
    tmp_path: Path, fake: FakeBinance, **settings: object
) -> contextlib.AbstractAsyncContextManager[Server]:
    """The server with Binance serving BTCUSDT and ETHUSDT from ``fake``."""
    return served(
        tmp_path,
        binance_symbols="BTCUSDT,ETHUSDT",
        binance_ws_url=fake.ws_url,
        binance_rest_url=fake.rest_url,
        stream_grace_period=0.5,
        sim_symbols="AAPL",
        **settings,
    )


@contextlib.asynccontextmanager
async def fake_binance(market: Market) -> AsyncIterator[FakeBinance]:
    # Pings every second: the pongs count toward the 5 messages a second too.
    fake = FakeBinance(market, push_interval=0.1, ping_interval=1.0, shutdown_grace=0.2)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


async def working_connection(fake: FakeBinance, age: float = 0.6) -> None:
    """Until a connection is open and has been for ``age`` s (pushes every 0.1 s: it has
    delivered data)."""
    await until(
        lambda: any(time.monotonic() - r.opened_at >= age for r in fake.open_connections()),
        within=30,
        what="an upstream connection working",
    )


def truth(market: Market, symbol: str, spec: int, first: int, last: int) -> list[list[float]]:
    """The fake's final bars opening in ``[first, last]``: time, open, high, low, close, volume."""
    out = []
    for t, agg, closed in market.bars(symbol, spec, first, last + 1):
        assert closed, (symbol, spec, t)
        out.append([t, agg.open, agg.high, agg.low, agg.close, agg.volume])
    return out


def reaches(rows: list[list[float]], newest: int) -> Callable[[], bool]:
    return lambda: bool(rows) and rows[-1][0] >= newest


def bar_row(p: dict[str, Any]) -> list[float]:
    return [p["time"], p["open"], p["high"], p["low"], p["close"], p["volume"]]


async def test_closed_bars_equal_the_upstreams_under_drops_with_its_clock_in_the_past(
    tmp_path: Path,
) -> None:
    market = past_market()
    closed: dict[tuple[str, str], list[list[float]]] = {(s, r): [] for s, r, _ in KEYS}
    quotes: list[float] = []  # monotonic receive times
    async with (
        fake_binance(market) as fake,
        served_against(
            tmp_path, fake, binance_reconnect_min=1.0, binance_reconnect_max=4.0
        ) as server,
        contextlib.AsyncExitStack() as stack,
    ):
        # One client per subscription: a client waiting for one reply skips other frames.
        collectors = []
        for symbol, resolution, _ in KEYS:
            c = await stack.enter_async_context(client(server))
            reply = await c.subscribe_bars(symbol, resolution, snapshot=5)
            assert reply["payload"]["status"] == "ok", reply
            # The snapshot's closed bars count too: they come from REST, judged final then.
            closed[(symbol, resolution)] += [
                bar_row(b) for b in reply["payload"]["bars"] if b["closed"]
            ]
            collectors.append(asyncio.create_task(collect(c, closed, quotes)))
        c = await stack.enter_async_context(client(server))
        reply = await c.request("quotes.subscribe", {"symbol": "BTCUSDT", "params": {}})
        assert reply["payload"]["status"] == "ok", reply
        collectors.append(asyncio.create_task(collect(c, closed, quotes)))
        try:
            rng = random.Random(18)
            for n in range(10):
                await working_connection(fake)
                await asyncio.sleep(rng.uniform(0.5, 2.0))
                fake.drop()
                if n % 3 == 1:  # the upstream refuses reconnects for a while
                    fake.refuse_connections(rng.uniform(1.5, 3.0))
            last_drop = time.monotonic()
            end = market.clock.now_ms()
            await working_connection(fake)
            # Every key recovers: its closed bars reach the last one over at the last drop
            # (gap-filled), and quotes flow again.
            for symbol, resolution, spec in KEYS:
                newest = end - end % spec - spec
                await until(
                    reaches(closed[(symbol, resolution)], newest),
                    within=40,
                    what=f"{symbol} {resolution} closed bars up to {newest}",
                )
            await until(lambda: bool(quotes) and quotes[-1] > last_drop, 20, "a quote")
        finally:
            for collector in collectors:
                collector.cancel()
            await asyncio.gather(*collectors, return_exceptions=True)
        log = server.log()
    for symbol, resolution, spec in KEYS:
        got = closed[(symbol, resolution)]
        times = [int(row[0]) for row in got]
        assert times == list(range(times[0], times[-1] + 1, spec)), (
            f"{symbol} {resolution}: a closed bar missing or repeated: {times}"
        )
        expected = truth(market, symbol, spec, times[0], times[-1])
        assert len(expected) == len(got)
        for mine, theirs in zip(got, expected, strict=True):
            assert mine == pytest.approx(theirs, rel=1e-6), (symbol, resolution, mine, theirs)
    assert len(closed[("BTCUSDT", "1")]) >= 12
    assert len(closed[("BTCUSDT", "5")]) >= 3
    assert len(fake.connections) >= 11, "ten drops, each followed by a reconnect"
    assert fake.refused, "the refusals were exercised"
    assert fake.max_concurrent_connections() <= 1
    assert max(r.max_messages_per_second() for r in fake.connections) <= 5
    assert sum(r.pongs for r in fake.connections) >= 1
    assert not [r for r in fake.connections if r.close_reason in ("too many messages", "no pong")]
    assert "gap-fill" in log
    assert "Traceback" not in log


async def collect(
    c: Client, closed: dict[tuple[str, str], list[list[float]]], quotes: list[float]
) -> None:
    while True:
        frame = await c.recv(within=60)
        p = frame["payload"]
        if frame["type"] == "bars.update" and p["closed"]:
            closed[(p["symbol"], p["resolution"])].append(bar_row(p))
        elif frame["type"] == "quotes.update":
            quotes.append(time.monotonic())


#: The link's line after a session ended (not a failed attempt), with the delay it chose.
RECONNECT = re.compile(r"binance link \d+: (?!cannot connect).*; reconnecting in ([0-9.]+) s")


async def test_a_dropped_working_connection_is_replaced_within_two_seconds(
    tmp_path: Path,
) -> None:
    """Drops of working connections, the upstream accepting again at once: each next
    connection opens within ~2 s, however many drops came before (the backoff does not grow)."""
    drops = 4
    market = past_market()
    async with (
        fake_binance(market) as fake,
        served_against(
            tmp_path, fake, binance_reconnect_min=1.0, binance_reconnect_max=30.0
        ) as server,
        client(server) as c,
    ):
        reply = await c.subscribe_bars("BTCUSDT", "1")
        assert reply["payload"]["status"] == "ok", reply
        for n in range(drops):
            await working_connection(fake, age=1.0)
            assert len(fake.connections) == n + 1
            fake.drop()
        await until(lambda: len(fake.connections) == drops + 1, 15, "the last reconnect")
        log = await server.wait_for_log(lambda text: len(RECONNECT.findall(text)) >= drops)
    chosen = [float(d) for d in RECONNECT.findall(log)]
    assert len(chosen) == drops, log
    # The protocol bound, exact: after a working connection the delay is at most
    # reconnect_min (1 s), jitter included.
    assert max(chosen) <= 1.0, chosen
    records = fake.connections
    gaps = []
    for before, after in itertools.pairwise(records):
        assert before.closed_at is not None
        gaps.append(after.opened_at - before.closed_at)
    # Measured at the fake: delay + a handshake. The median keeps one scheduling hiccup of a
    # loaded machine from failing the bound; a growing backoff would exceed it on most drops.
    assert sorted(gaps)[len(gaps) // 2] < 2.0, gaps
    assert max(gaps) < 6.0, gaps


class Sink:
    def __init__(self) -> None:
        self.candles: list[Candle] = []

    async def on_candle(self, key: BarKey, candle: Candle) -> None:
        self.candles.append(candle)

    async def on_backfill(self, key: BarKey, candles: Sequence[Candle]) -> None:
        raise AssertionError("the Binance feed fills its gaps through on_candle")

    async def on_quote(self, symbol: Symbol, quote: Quote) -> None:
        pass


async def test_connection_attempts_stay_within_the_attempt_window(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Binance's 300 attempts per 5 minutes, scaled down to 3 per 60 s: quick reconnects
    after working connections still wait once the window is full."""
    caplog.set_level(logging.WARNING, "marketcast")
    market = past_market()
    async with fake_binance(market) as fake:
        feed = BinanceFeed(
            ["BTCUSDT"],
            ws_url=fake.ws_url,
            rest_url=fake.rest_url,
            reconnect_min=0.05,
            reconnect_max=0.2,
            connect_limit=3,
            connect_window=60.0,
            timeout=5.0,
        )
        await feed.start(Sink())
        try:
            await feed.watch(BarKey("BTCUSDT", "1"))
            for _ in range(3):
                await working_connection(fake, age=0.3)
                fake.drop()
            await until(
                lambda: "limit of connection attempts" in caplog.text, 10, "the window holding"
            )
            assert len(fake.connections) == 3
            assert not fake.open_connections()
        finally:
            await feed.close()


class GatedSink(Sink):
    """Holds every ETHUSDT candle in the sink until released (a slow store write)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def on_candle(self, key: BarKey, candle: Candle) -> None:
        if key.symbol == "ETHUSDT":
            self.entered.set()
            await self.release.wait()
        await super().on_candle(key, candle)


async def test_a_key_held_in_the_sink_does_not_hold_other_keys() -> None:
    """Ingest locks are per key: while one key's delivery waits, another's goes through."""
    with socket.socket() as sock:  # a port nobody listens on: the links just back off
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    feed = BinanceFeed(
        ["BTCUSDT", "ETHUSDT"],
        ws_url=f"ws://127.0.0.1:{port}",
        rest_url=f"http://127.0.0.1:{port}",
        reconnect_min=5.0,
        reconnect_max=5.0,
        timeout=1.0,
    )
    sink = GatedSink()
    await feed.start(sink)
    btc, eth = BarKey("BTCUSDT", "1"), BarKey("ETHUSDT", "1")
    try:
        for key in (btc, eth):
            await feed.watch(key)
        t0 = 1_700_000_040_000
        held = asyncio.create_task(
            feed.on_event(
                KlineEvent("ethusdt@kline_1m", eth, t0 + 1, Candle(t0, 1, 2, 1, 2, 1, False))
            )
        )
        await asyncio.wait_for(sink.entered.wait(), 5)
        candle = Candle(t0, 5, 6, 5, 6, 1, False)
        await asyncio.wait_for(
            feed.on_event(KlineEvent("btcusdt@kline_1m", btc, t0 + 1, candle)), 5
        )
        assert sink.candles == [candle]
        sink.release.set()
        await asyncio.wait_for(held, 5)
        assert len(sink.candles) == 2
    finally:
        await feed.close()
