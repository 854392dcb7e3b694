"""Binance aggregate trades without a socket: the parsers, the fake's REST answers and stream
payloads, and the gap rule (``TradeSync``, ``TradeFills``) with a recording sink.

Why no socket: the order rule (every id once, increasing, gaps filled from REST before the
next live trade) is about sequences, and sequences are cheapest to check exhaustively here;
``tests/integration/test_binance_trades_feed.py`` runs the same feed against the fake.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Sequence
from itertools import pairwise
from typing import Any, cast
from urllib.parse import urlencode

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request

from marketcast.channels.orderbook import BookKey
from marketcast.channels.trades import Trade, TradeKey
from marketcast.feeds.binance import BinanceFeed
from marketcast.feeds.binance_protocol import (
    AggTradeEvent,
    UpstreamFormatError,
    key_of_stream,
    parse_agg_trades,
    parse_frame,
    streams_for,
)
from marketcast.feeds.binance_trades import TradeFills, TradeSync
from marketcast.feeds.pacing import UpstreamError
from marketcast.market import BarKey, Candle, Quote, QuoteKey, StreamKey
from marketcast.sim import binance_control
from marketcast.sim.binance_rest import KlinesApi, agg_trade_event, agg_trade_row
from marketcast.sim.market import TICK_MS, FakeClock, Market
from marketcast.types import Symbol

BTC = TradeKey("BTCUSDT")
ETH = TradeKey("ETHUSDT")

EVENT = (
    '{"e":"aggTrade","E":1672515782136,"s":"BNBBTC","a":12345,"p":"0.001","q":"100",'
    '"f":100,"l":105,"T":1672515782130,"m":true,"M":true}'
)


def trade(n: int) -> Trade:
    return Trade(n, 1_700_000_000_000 + n, 100.0 + n, 1.0, "buy" if n % 2 else "sell")


# -- parsers ------------------------------------------------------------------------------------


def test_agg_trade_event_raw_and_combined() -> None:
    raw = parse_frame(EVENT)
    assert raw == AggTradeEvent(
        "bnbbtc@aggTrade",
        TradeKey("BNBBTC"),
        1672515782136,
        Trade(12345, 1672515782130, 0.001, 100.0, "sell"),  # m: the buyer was the maker
    )
    combined = parse_frame(f'{{"stream":"bnbbtc@aggTrade","data":{EVENT}}}')
    assert combined == raw
    taker_buy = parse_frame(EVENT.replace('"m":true', '"m":false'))
    assert isinstance(taker_buy, AggTradeEvent)
    assert taker_buy.trade.side == "buy"


def test_agg_trade_event_needs_only_the_fields_it_uses() -> None:
    """``f``, ``l`` and ``M`` ("Ignore") may be absent; ``a p q T m s E`` may not."""
    data = orjson.loads(EVENT)
    for optional in ("f", "l", "M"):
        del data[optional]
    event = parse_frame(orjson.dumps({"stream": "bnbbtc@aggTrade", "data": data}))
    assert isinstance(event, AggTradeEvent)
    assert event.trade.id == 12345


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("a", "12345", "'a' must be an integer"),
        ("a", None, "'a' must be an integer"),
        ("p", "abc", "'p' must be a decimal string"),
        ("q", True, "'q' must be a decimal string"),
        ("T", 1.5, "'T' must be an integer"),
        ("m", "true", "'m' must be a boolean"),
        ("s", 5, "'s' must be a string"),
        ("E", None, "'E' must be an integer"),
    ],
)
def test_agg_trade_event_errors_name_the_field(field: str, value: object, message: str) -> None:
    data = orjson.loads(EVENT)
    data[field] = value
    with pytest.raises(UpstreamFormatError, match=message):
        parse_frame(orjson.dumps({"stream": "bnbbtc@aggTrade", "data": data}))


def test_rest_agg_trades_rows() -> None:
    body = [
        {"a": 26129, "p": "0.01633102", "q": "4.70443515", "f": 27781, "l": 27781,
         "T": 1498793709153, "m": True, "M": True},
        {"a": 26130, "p": "0.01633200", "q": "1.00000000", "f": 27782, "l": 27790,
         "T": 1498793709160, "m": False, "M": True},
    ]  # fmt: skip
    assert parse_agg_trades(body) == [
        Trade(26129, 1498793709153, 0.01633102, 4.70443515, "sell"),
        Trade(26130, 1498793709160, 0.016332, 1.0, "buy"),
    ]
    assert parse_agg_trades([]) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"a": 1}, "expected a JSON array"),
        ([[1, "2"]], "row 0: expected an object"),
        ([{"a": 1, "p": "1", "q": "1", "T": 5}], "row 0: field 'm' must be a boolean"),
        (
            [
                {"a": 2, "p": "1", "q": "1", "T": 5, "m": True},
                {"a": 2, "p": "1", "q": "1", "T": 6, "m": True},
            ],
            "strictly ascending id",
        ),
    ],
)
def test_rest_agg_trades_errors(body: Any, message: str) -> None:
    with pytest.raises(UpstreamFormatError, match=message):
        parse_agg_trades(body)


def test_trade_stream_names() -> None:
    assert streams_for(TradeKey("BTCUSDT")) == ("btcusdt@aggTrade",)
    assert key_of_stream("ethusdt@aggTrade") == TradeKey("ETHUSDT")
    assert key_of_stream("ethusdt@trade") is None
    session = binance_control.Session(1024, lambda s: s == "BTCUSDT")
    assert session.valid_stream("btcusdt@aggTrade")
    assert not session.valid_stream("ethusdt@aggTrade")


# -- the fake's trades ----------------------------------------------------------------------------


@pytest.fixture
def frozen() -> Market:
    """A market whose clock stands still (at 12:00:02 of its origin day)."""
    origin = 1_700_006_400_000  # a whole day in ms
    clock = FakeClock(1.0, origin_ms=origin + 2, real=lambda: 0.0)
    return Market(["BTCUSDT"], clock=clock, history_days=0.5)


def ask(api: KlinesApi, **params: object) -> tuple[int, Any, Headers]:
    request = Request("/api/v3/aggTrades?" + urlencode(params), Headers())
    response = api.answer(cast(ServerConnection, None), request)
    assert response is not None
    return response.status_code, orjson.loads(response.body), response.headers


def test_fake_rest_agg_trades_pages_by_id_like_binance(frozen: Market) -> None:
    api = KlinesApi(frozen)
    tape = frozen.tapes["BTCUSDT"]
    newest = frozen.clock.now_ms() // TICK_MS
    status, rows, headers = ask(api, symbol="BTCUSDT")
    assert status == 200
    assert len(rows) == 500
    assert [r["a"] for r in rows] == list(range(newest - 499, newest + 1))
    assert headers["X-MBX-USED-WEIGHT-1M"] == "4"  # aggTrades' documented weight
    _, rows, _ = ask(api, symbol="BTCUSDT", fromId=newest - 9, limit=3)
    assert [r["a"] for r in rows] == [newest - 9, newest - 8, newest - 7]
    _, rows, _ = ask(api, symbol="BTCUSDT", fromId=newest - 1, limit=1000)
    assert [r["a"] for r in rows] == [newest - 1, newest]  # nothing after now
    assert ask(api, symbol="BTCUSDT", fromId=newest + 1)[1] == []
    _, rows, _ = ask(api, symbol="BTCUSDT", fromId=0, limit=2)
    assert [r["a"] for r in rows] == [tape.first_trade, tape.first_trade + 1]
    # Rows are the tape's trades, exactly as the stream carries them.
    row = rows[0]
    tick = tape.tick(row["a"])
    assert row == agg_trade_row(row["a"], tick)
    assert parse_agg_trades(rows)[0] == Trade(
        row["a"],
        row["a"] * TICK_MS,
        tick.close,
        tick.volume,
        "buy" if tick.taker_volume else "sell",
    )
    event = agg_trade_event("BTCUSDT", row["a"], tick, event_time=5)
    assert {k: v for k, v in event.items() if k not in ("e", "E", "s")} == row
    assert "M" not in agg_trade_event("BTCUSDT", 1, tick, event_time=5, omit_optional=True)


def test_fake_rest_agg_trades_by_time(frozen: Market) -> None:
    api = KlinesApi(frozen)
    newest = frozen.clock.now_ms() // TICK_MS
    t = (newest - 100) * TICK_MS
    _, rows, _ = ask(api, symbol="BTCUSDT", startTime=t - 1, limit=2)  # inclusive, oldest first
    assert [r["a"] for r in rows] == [newest - 100, newest - 99]
    _, rows, _ = ask(api, symbol="BTCUSDT", startTime=t, endTime=t + 3 * TICK_MS)
    assert [r["a"] for r in rows] == [newest - 100 + i for i in range(4)]
    _, rows, _ = ask(api, symbol="BTCUSDT", endTime=t, limit=2)  # the newest up to endTime
    assert [r["a"] for r in rows] == [newest - 101, newest - 100]
    assert ask(api, symbol="BTCUSDT", startTime=t + 1, endTime=t + 2)[1] == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, -1102),
        ({"symbol": "NOPE"}, -1121),
        ({"symbol": "BTCUSDT", "limit": 0}, -1130),
        ({"symbol": "BTCUSDT", "limit": 1001}, -1130),
        ({"symbol": "BTCUSDT", "fromId": "x"}, -1100),
        ({"symbol": "BTCUSDT", "fromId": 5, "startTime": 0}, -1128),
    ],
)
def test_fake_rest_agg_trades_errors(frozen: Market, params: dict[str, object], code: int) -> None:
    status, body, _ = ask(KlinesApi(frozen), **params)
    assert (status, body["code"]) == (400, code)


# -- the gap rule -------------------------------------------------------------------------------


def test_sync_starts_from_the_first_trade_and_drops_repeats() -> None:
    sync = TradeSync()
    assert sync.on_live(trade(10)) == [trade(10)]  # no predecessor: nothing to fetch
    assert sync.on_live(trade(11)) == [trade(11)]
    assert sync.on_live(trade(11)) == []
    assert sync.on_live(trade(3)) == []
    assert sync.repeats == 2
    assert not sync.filling


def test_sync_holds_live_trades_behind_a_gap_until_rest_fills_it() -> None:
    sync = TradeSync()
    sync.on_live(trade(10))
    assert sync.on_live(trade(14)) == []
    assert sync.on_live(trade(15)) == []
    assert sync.on_live(trade(15)) == []
    assert sync.repeats == 1
    assert sync.wanted() == (11, 13)
    assert sync.on_page([trade(11)]) == [trade(11)]  # short of the gap: still held
    assert sync.wanted() == (12, 13)
    # REST may already have trades the stream sent since: they are not delivered twice.
    page = [trade(12), trade(13), trade(14), trade(15), trade(16)]
    assert sync.on_page(page) == [trade(12), trade(13), trade(14), trade(15)]
    assert not sync.filling
    assert sync.last == 15
    assert sync.skipped == 0
    assert sync.on_live(trade(16)) == [trade(16)]


def test_sync_fills_only_the_newest_part_of_a_long_gap() -> None:
    sync = TradeSync(max_gap=5)
    sync.on_live(trade(1))
    sync.on_live(trade(100))
    assert sync.wanted() == (95, 99)
    assert sync.on_page([trade(n) for n in range(95, 101)]) == [
        *(trade(n) for n in range(95, 100)),
        trade(100),
    ]
    assert sync.skipped == 93  # ids 2..94


def test_sync_gives_up_and_continues_from_the_live_trades() -> None:
    sync = TradeSync()
    sync.on_live(trade(1))
    sync.on_live(trade(5))
    sync.on_live(trade(6))
    assert sync.on_page([trade(2)]) == [trade(2)]
    assert sync.give_up() == [trade(5), trade(6)]
    assert sync.skipped == 2
    assert sync.last == 6
    assert not sync.filling


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=-3, max_value=30), min_size=1, max_size=60),
    st.integers(min_value=1, max_value=7),
    st.integers(min_value=0, max_value=5),
)
def test_sync_delivers_every_id_once_in_order(steps: list[int], page_size: int, lag: int) -> None:
    """Live ids that jump ahead, repeat or go back, and a REST that serves pages of
    ``page_size`` and lacks the newest ``lag`` ids: whatever comes, delivered ids strictly
    increase, and with enough pages no id between the first and the last is missing."""
    sync = TradeSync()
    delivered: list[int] = []
    live = [1_000]
    for step in steps:
        live.append(live[-1] + step)
    top = max(live)
    for n in live:
        delivered += [t.id for t in sync.on_live(trade(n))]
        while (wanted := sync.wanted()) is not None:
            start = wanted[0]
            page = [trade(i) for i in range(start, min(start + page_size, top + 1 - lag))]
            got = sync.on_page(page)
            delivered += [t.id for t in got]
            if not got and sync.filling:
                delivered += [t.id for t in sync.give_up()]
    assert all(a < b for a, b in pairwise(delivered))
    assert delivered[0] == live[0]
    assert delivered[-1] == top
    if lag == 0:
        assert delivered == list(range(live[0], top + 1))


# -- the fills, with a recording sink -----------------------------------------------------------


class Truth:
    """A REST that knows ``ids`` and records what it was asked; ``fail`` makes the next
    requests raise, ``hold`` pauses them until set, ``later`` are ids it learns once it has
    answered one request (a database behind the stream)."""

    def __init__(self, ids: Sequence[int], later: Sequence[int] = ()) -> None:
        self.trades = {i: trade(i) for i in ids}
        self.later = list(later)
        self.asked: list[tuple[Symbol, int, int]] = []
        self.fail = 0
        self.hold: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def fetch(self, symbol: Symbol, from_id: int, limit: int) -> list[Trade]:
        self.asked.append((symbol, from_id, limit))
        self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.fail > 0:
            self.fail -= 1
            raise UpstreamError("binance REST answered 500")
        page = [self.trades[i] for i in sorted(self.trades) if i >= from_id][:limit]
        self.trades.update({i: trade(i) for i in self.later})
        return page


class Sink:
    """A ``FeedSink`` that records the events it is given, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[StreamKey, object]] = []

    async def on_candle(self, key: BarKey, candle: Candle) -> None:
        pass

    async def on_backfill(self, key: BarKey, candles: Sequence[Candle]) -> None:
        pass

    async def on_quote(self, symbol: Symbol, quote: Quote) -> None:
        pass

    async def on_event(self, key: StreamKey, event: object) -> None:
        self.events.append((key, event))

    def ids(self, key: TradeKey) -> list[int]:
        return [e.id for k, e in self.events if k == key and isinstance(e, Trade)]


def fills(truth: Truth, sink: Sink, **options: int) -> TradeFills:
    async def no_sleep(seconds: float) -> None:
        await asyncio.sleep(0)

    return TradeFills(
        emit=sink.on_event,
        fetch=truth.fetch,
        sleep=no_sleep,
        retry=(0.01, 0.05),
        rng=random.Random(1),
        **options,
    )


async def settled(trades: TradeFills, key: TradeKey) -> None:
    """Until no fill of ``key`` runs (bounded: a fill that never ends fails the test)."""
    for _ in range(5_000):
        sync = trades.sync(key)
        if sync is None or not sync.filling:
            return
        await asyncio.sleep(0.001)
    pytest.fail(f"the fill of {key} did not end")


async def test_a_gap_is_filled_page_by_page_before_the_live_trades_held_meanwhile() -> None:
    truth, sink = Truth(range(1, 40)), Sink()
    trades = fills(truth, sink, page_size=4)
    trades.watch(BTC)
    await trades.on_live(BTC, trade(1))
    truth.hold = asyncio.Event()
    await trades.on_live(BTC, trade(20))  # ids 2..19 missing
    await asyncio.wait_for(truth.entered.wait(), 5)
    for n in (21, 21, 20, 22):  # arrive while the fill waits for REST; repeats among them
        await trades.on_live(BTC, trade(n))
    assert sink.ids(BTC) == [1]
    truth.hold.set()
    await settled(trades, BTC)
    assert sink.ids(BTC) == list(range(1, 23))
    assert [a[1] for a in truth.asked] == [2, 6, 10, 14, 18]  # fromId = last delivered + 1
    assert trades.fills == 1
    assert trades.unfilled == 0
    await trades.on_live(BTC, trade(23))
    assert sink.ids(BTC)[-1] == 23
    await trades.close()


async def test_a_watch_starts_from_the_newest_trades_and_the_stream_joins_them() -> None:
    """The seed (the newest trades, from REST before the stream) goes first; the first live
    trade then has a predecessor, so the trades between the two are filled by id."""
    truth, sink = Truth(range(1, 40)), Sink()
    trades = fills(truth, sink, page_size=4)
    trades.watch(BTC)
    await trades.seed(BTC, [trade(n) for n in (7, 8, 9)])
    assert sink.ids(BTC) == [7, 8, 9]
    await trades.on_live(BTC, trade(15))  # 10..14 happened between the seed and the stream
    await settled(trades, BTC)
    assert sink.ids(BTC) == list(range(7, 16))
    assert [a[1] for a in truth.asked] == [10, 14]
    await trades.close()


async def test_a_gap_rest_cannot_fill_is_logged_and_the_key_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "marketcast.feeds.binance")
    truth, sink = Truth(range(1, 40)), Sink()
    truth.fail = 10
    trades = fills(truth, sink, max_attempts=3)
    trades.watch(BTC)
    for n in (1, 2, 9, 10):
        await trades.on_live(BTC, trade(n))
    await settled(trades, BTC)
    assert sink.ids(BTC) == [1, 2, 9, 10]
    assert len(truth.asked) == 3
    assert trades.unfilled == 1
    assert "ids 3..8 could not be filled" in caplog.text
    # The next gap is filled again as usual.
    truth.fail = 0
    await trades.on_live(BTC, trade(13))
    await settled(trades, BTC)
    assert sink.ids(BTC) == [1, 2, 9, 10, 11, 12, 13]
    await trades.close()


async def test_a_rest_behind_the_stream_is_asked_again() -> None:
    """REST's data source lags the stream: a short page that does not reach the held trade is
    retried (after a delay) rather than taken as the end of the gap."""
    truth, sink = Truth(range(1, 5), later=range(5, 10)), Sink()
    trades = fills(truth, sink)
    trades.watch(BTC)
    await trades.on_live(BTC, trade(1))
    await trades.on_live(BTC, trade(8))
    await settled(trades, BTC)
    assert sink.ids(BTC) == list(range(1, 9))
    assert [a[1] for a in truth.asked] == [2, 5]
    assert trades.unfilled == 0
    await trades.close()


async def test_a_long_gap_is_filled_from_its_newest_part(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "marketcast.feeds.binance")
    truth, sink = Truth(range(1, 200)), Sink()
    trades = fills(truth, sink, page_size=10, max_pages=3)
    trades.watch(BTC)
    await trades.on_live(BTC, trade(1))
    await trades.on_live(BTC, trade(100))
    await settled(trades, BTC)
    assert sink.ids(BTC) == [1, *range(70, 101)]
    assert [a[1] for a in truth.asked] == [70, 80, 90]
    assert "a gap of 98 trades; filling its newest 30 only" in caplog.text
    await trades.close()


async def test_one_key_held_by_its_fill_does_not_hold_another() -> None:
    truth, sink = Truth(range(1, 40)), Sink()
    truth.hold = asyncio.Event()
    trades = fills(truth, sink)
    for key in (BTC, ETH):
        trades.watch(key)
        await trades.on_live(key, trade(1))
    await trades.on_live(BTC, trade(5))
    await asyncio.wait_for(truth.entered.wait(), 5)
    await trades.on_live(ETH, trade(2))
    assert sink.ids(ETH) == [1, 2]
    assert sink.ids(BTC) == [1]
    truth.hold.set()
    await settled(trades, BTC)
    assert sink.ids(BTC) == [1, 2, 3, 4, 5]
    await trades.close()


async def test_unwatch_cancels_a_fill_and_a_new_watch_starts_afresh() -> None:
    truth, sink = Truth(range(1, 100)), Sink()
    truth.hold = asyncio.Event()
    trades = fills(truth, sink)
    trades.watch(BTC)
    await trades.on_live(BTC, trade(1))
    await trades.on_live(BTC, trade(5))
    await asyncio.wait_for(truth.entered.wait(), 5)
    trades.unwatch(BTC)
    await trades.on_live(BTC, trade(6))  # not watched: ignored
    truth.hold.set()
    trades.watch(BTC)
    await trades.on_live(BTC, trade(50))  # the first trade of the new watch: no REST
    await trades.on_live(BTC, trade(51))
    assert sink.ids(BTC) == [1, 50, 51]
    assert len(truth.asked) == 1
    await trades.close()


# -- BinanceFeed wiring -------------------------------------------------------------------------


async def test_the_feed_offers_trades_and_delivers_them_through_on_event() -> None:
    with socket.socket() as sock:  # a port nobody listens on: the events are handed in directly
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    feed = BinanceFeed(
        ["BTCUSDT"],
        ws_url=f"ws://127.0.0.1:{port}",
        rest_url=f"http://127.0.0.1:{port}",
        reconnect_min=30.0,
        reconnect_max=30.0,
        timeout=1.0,
    )
    assert all(i.kinds == {BarKey, QuoteKey, TradeKey, BookKey} for i in feed.symbols())
    sink = Sink()
    await feed.start(sink)
    try:
        await feed.watch(BarKey("BTCUSDT", "1"))
        await feed.watch(BTC)
        assert feed.links() == 1  # klines and trades share the one connection
        unwatched = AggTradeEvent("ethusdt@aggTrade", ETH, 5, trade(1))
        await feed.on_event(unwatched)
        for n in (7, 8, 8):
            await feed.on_event(AggTradeEvent("btcusdt@aggTrade", BTC, 5, trade(n)))
        assert sink.events == [(BTC, trade(7)), (BTC, trade(8))]
        await feed.unwatch(BTC)
        await feed.on_event(AggTradeEvent("btcusdt@aggTrade", BTC, 5, trade(9)))
        assert len(sink.events) == 2
    finally:
        await feed.close()
