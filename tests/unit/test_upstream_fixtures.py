"""The parsers against real upstream captures (tests/fixtures/upstreams), values checked, and
the fakes' output against the same captures (same keys, same JSON types)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from marketcast.feeds.binance_protocol import KlineEvent, parse_frame, parse_klines
from marketcast.feeds.twelvedata_protocol import parse_price_event, parse_time_series
from marketcast.market import BarKey, Candle, Quote
from marketcast.sim.binance import kline_payload
from marketcast.sim.binance_rest import kline_row
from marketcast.sim.market import FakeClock, Market
from marketcast.sim.twelvedata import FakeTwelveData

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "upstreams"
LATER = 2_000_000_000_000  # "now" after every capture: all their bars are over


def read(name: str) -> str:
    return (FIXTURES / name).read_text()


def lines(name: str) -> list[str]:
    return [line for line in read(name).splitlines() if line.strip()]


def test_fixtures_are_the_shared_captures_byte_for_byte() -> None:
    shared = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
    if not shared.is_dir():
        pytest.skip("../shared/fixtures is not beside this checkout")
    for path in shared.rglob("*"):
        if path.is_file():
            assert (FIXTURES / path.relative_to(shared)).read_bytes() == path.read_bytes(), path


# -- Binance ------------------------------------------------------------------------------------


def test_rest_klines_capture() -> None:
    candles = parse_klines(orjson.loads(read("binance/rest_klines_btcusdt_1m.json")), LATER)
    assert len(candles) == 10
    assert candles[0] == Candle(
        1634943780000, 60685.22, 60729.84, 60670.90, 60719.27, 21.63272, closed=True
    )
    assert candles[-1] == Candle(
        1634944320000, 60739.85, 60739.85, 60739.85, 60739.85, 0.04734, closed=True
    )
    assert [c.time for c in candles] == [1634943780000 + i * 60_000 for i in range(10)]


def test_rest_klines_newest_row_is_open_until_the_upstream_clock_passes_its_close() -> None:
    rows = orjson.loads(read("binance/rest_klines_btcusdt_1m.json"))
    close = 1634944379999  # the close time of the last row
    assert [c.closed for c in parse_klines(rows, server_time=close)] == [True] * 9 + [False]
    assert parse_klines(rows, server_time=close + 1)[-1].closed
    # The upstream's time unknown: only a newer row makes a row final. This machine's clock,
    # years past these bars, has no say: it may be ahead of the upstream's.
    assert [c.closed for c in parse_klines(rows, server_time=None)] == [True] * 9 + [False]


def test_kline_sequence_capture_is_one_open_bar_updating() -> None:
    events = [parse_frame(line) for line in lines("binance/ws_kline_btcusdt_1d_sequence.jsonl")]
    assert len(events) == 10
    assert all(isinstance(e, KlineEvent) for e in events)
    klines = [e for e in events if isinstance(e, KlineEvent)]
    assert {e.key for e in klines} == {BarKey("BTCUSDT", "D")}
    assert {e.candle.time for e in klines} == {1616112000000}
    assert not any(e.candle.closed for e in klines)
    first, last = klines[0], klines[-1]
    assert first.event_time == 1616193759978
    assert first.candle == Candle(1616112000000, 57641.0, 59468.0, 56270.74, 58402.74, 50460.128436)
    assert last.candle.close == 58364.31
    assert last.candle.volume == 50463.631223
    assert [e.candle.volume for e in klines] == sorted(e.candle.volume for e in klines)


def test_raw_kline_capture() -> None:
    event = parse_frame(read("binance/ws_kline_btcusdt_5m.json"))
    assert isinstance(event, KlineEvent)
    assert event.key == BarKey("BTCUSDT", "5")
    assert event.candle == Candle(1617524100000, 57479.99, 57527.97, 57446.11, 57520.11, 89.939679)


def test_combined_kline_capture() -> None:
    event = parse_frame(read("binance/ws_kline_combined_slfusdt_1m.json"))
    assert isinstance(event, KlineEvent)
    assert event.stream == "slfusdt@kline_1m"
    assert event.key == BarKey("SLFUSDT", "1")
    assert event.candle == Candle(1745689500000, 0.208, 0.2081, 0.208, 0.2081, 624.6)


def test_kline_without_the_ignored_field_still_parses() -> None:
    frame = orjson.loads(read("binance/ws_kline_btcusdt_5m.json"))
    del frame["k"]["B"]
    event = parse_frame(orjson.dumps(frame))
    assert isinstance(event, KlineEvent)
    assert event.candle.close == 57520.11


# -- Twelve Data --------------------------------------------------------------------------------


def test_time_series_daily_capture_newest_first_no_volume() -> None:
    candles = parse_time_series(json.loads(read("twelvedata/time_series_eurusd_1day.json")), "D")
    assert candles == [
        Candle(1712793600000, 1.07435, 1.07570, 1.06990, 1.07265, 0.0, closed=True),
        Candle(1712880000000, 1.07300, 1.07300, 1.06225, 1.06400, 0.0, closed=True),
        Candle(1713139200000, 1.06490, 1.06650, 1.06310, 1.06350, 0.0, closed=False),
    ]


def test_time_series_minute_capture() -> None:
    candles = parse_time_series(json.loads(read("twelvedata/time_series_usdrub_1min.json")), "1")
    assert candles == [Candle(1580507880000, 63.97310, 63.97500, 63.97310, 63.97370, 0.0)]


def test_price_event_capture() -> None:
    stock, forex = (
        parse_price_event(json.loads(x)) for x in lines("twelvedata/ws_price_events.jsonl")
    )
    assert stock == ("AAPL", Quote(1592249566000, 342.0157, 342.0157, 342.0157, 27631112.0))
    assert forex == ("XAU/USD", Quote(1647950462000, 1925.05, 1925.32, 1925.18, None))


# -- the fakes speak the same shapes ----------------------------------------------------------------


def shape(value: Any) -> Any:
    """Keys and JSON types, recursively (values ignored)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


@pytest.fixture(scope="module")
def market() -> Market:
    return Market(["BTCUSDT", "EUR/USD"], clock=FakeClock(60.0), history_days=0.1)


def test_fake_kline_payload_has_the_capture_shape(market: Market) -> None:
    captured = orjson.loads(read("binance/ws_kline_btcusdt_5m.json"))
    start = market.clock.origin_ms - 300_000
    agg, closed = market.bar("BTCUSDT", 300_000, start) or pytest.fail("no bar")
    fake = kline_payload("BTCUSDT", "5m", start, agg, closed, event_time=start + 1)
    assert shape(fake) == shape(captured)
    combined = orjson.loads(read("binance/ws_kline_combined_slfusdt_1m.json"))
    assert shape({"stream": "btcusdt@kline_5m", "data": fake}) == shape(combined)


def test_fake_rest_row_has_the_capture_shape(market: Market) -> None:
    captured = orjson.loads(read("binance/rest_klines_btcusdt_1m.json"))[0]
    start = market.clock.origin_ms - 60_000
    agg, _ = market.bar("BTCUSDT", 60_000, start) or pytest.fail("no bar")
    assert shape(kline_row(start, "1m", agg)) == shape(captured)


async def test_fake_time_series_has_the_capture_shape(market: Market) -> None:
    import httpx

    fake = FakeTwelveData(market)
    await fake.start()
    try:
        async with httpx.AsyncClient(base_url=fake.rest_url) as client:
            daily = (
                await client.get(
                    "/time_series",
                    params={"symbol": "EUR/USD", "interval": "1day", "outputsize": "3"},
                )
            ).json()
            minute = (
                await client.get(
                    "/time_series",
                    params={
                        "symbol": "EUR/USD",
                        "interval": "1min",
                        "outputsize": "1",
                        "timezone": "UTC",
                    },
                )
            ).json()
    finally:
        await fake.stop()
    captured_daily = json.loads(read("twelvedata/time_series_eurusd_1day.json"))
    assert shape(daily["meta"]) == shape(captured_daily["meta"])
    assert shape(daily["values"][0]) == shape(captured_daily["values"][0])
    assert daily["status"] == "ok"
    captured_minute = json.loads(read("twelvedata/time_series_usdrub_1min.json"))
    assert shape(minute["values"]) == shape(captured_minute["values"])
    assert len(daily["values"][0]["datetime"]) == len("2024-04-15")
    assert len(minute["values"][0]["datetime"]) == len("2020-01-31 21:58:00")
