"""Issue 14, "Numbers on the wire", for the real upstreams: their decimals reach the wire as
they were sent, and what marketcast computes from them (Twelve Data's aggregated bars) is the
exact decimal result.

Driven by the captures in tests/fixtures/upstreams (the shared ones, byte for byte) and by
bodies of the same documented shapes where no capture has what is checked (a trade, a volume
to add up). Every value is read back from the frame's JSON text as a ``Decimal`` and compared
with the upstream's decimal string, so ``0.7000000000000001`` fails where ``0.7`` passes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import orjson
import pytest

from marketcast.channels.bars import bar_update
from marketcast.channels.quotes import quote_update
from marketcast.channels.trades import TradeKey, TradesFamily
from marketcast.feeds.aggregate import aggregate
from marketcast.feeds.binance_protocol import (
    AggTradeEvent,
    BookTickerEvent,
    KlineEvent,
    MiniTickerEvent,
    parse_frame,
    parse_klines,
)
from marketcast.feeds.binance_rules import QuoteAssembler
from marketcast.feeds.twelvedata_protocol import (
    PolledSeries,
    parse_price_event,
    parse_quote,
    parse_time_series,
)
from marketcast.market import BarKey, Candle, Quote

FIXTURES: Final = Path(__file__).resolve().parents[1] / "fixtures" / "upstreams"
LATER: Final = 2_000_000_000_000  # "now" after every capture: all their bars are over
OHLCV: Final = ("open", "high", "low", "close", "volume")


def numbers(text: str) -> dict[str, Any]:
    """A frame's payload, its numbers read as the decimals its text holds."""
    payload: dict[str, Any] = json.loads(text, parse_float=Decimal)["payload"]
    return payload


def bar_numbers(key: BarKey, candle: Candle) -> dict[str, Any]:
    return numbers(bar_update("topic", key, candle).text)


def sent(*texts: str) -> list[Decimal]:
    """The upstream's decimal strings, as numbers (``"0.20800000"`` is ``0.208``)."""
    return [Decimal(text) for text in texts]


# -- Binance: every value as sent ---------------------------------------------------------------


def test_rest_kline_rows_reach_the_wire_as_sent() -> None:
    rows = orjson.loads((FIXTURES / "binance/rest_klines_btcusdt_1m.json").read_bytes())
    candles = parse_klines(rows, LATER)
    assert len(candles) == len(rows) == 10
    for row, candle in zip(rows, candles, strict=True):
        payload = bar_numbers(BarKey("BTCUSDT", "1"), candle)
        assert [payload[f] for f in OHLCV] == sent(*row[1:6])


@pytest.mark.parametrize(
    "name",
    [
        "binance/ws_kline_btcusdt_1d_sequence.jsonl",
        "binance/ws_kline_btcusdt_5m.json",
        "binance/ws_kline_combined_slfusdt_1m.json",
    ],
)
def test_kline_frames_reach_the_wire_as_sent(name: str) -> None:
    lines = [line for line in (FIXTURES / name).read_text().splitlines() if line.strip()]
    for line in lines:
        event = parse_frame(line)
        assert isinstance(event, KlineEvent)
        raw = orjson.loads(line)
        k = raw.get("data", raw)["k"]
        payload = bar_numbers(event.key, event.candle)
        assert [payload[f] for f in OHLCV] == sent(k["o"], k["h"], k["l"], k["c"], k["v"])


def test_agg_trades_reach_the_wire_as_sent() -> None:
    """The documented ``aggTrade`` shape (no capture has one)."""
    data = {
        "e": "aggTrade",
        "E": 1672515782136,
        "s": "BNBBTC",
        "a": 12345,
        "p": "0.00123400",
        "q": "100.05000000",
        "f": 100,
        "l": 105,
        "T": 1672515782136,
        "m": True,
        "M": True,
    }
    event = parse_frame(orjson.dumps({"stream": "bnbbtc@aggTrade", "data": data}))
    assert isinstance(event, AggTradeEvent)
    payload = numbers(TradesFamily().update("topic", TradeKey("BNBBTC"), event.trade).text)
    assert [payload["price"], payload["quantity"]] == sent("0.001234", "100.05")


def _binance_quote() -> Quote:
    assembler = QuoteAssembler()
    assert assembler.on_event(BookTickerEvent("BTCUSDT", 1, 60685.21, 60685.22), 1) is None
    ticker = MiniTickerEvent("BTCUSDT", 2, close=60685.22, open=60000.1, volume=12345.67891)
    quote = assembler.on_event(ticker, 2)
    assert quote is not None
    return quote


def test_binance_quotes_reach_the_wire_as_sent() -> None:
    payload = numbers(quote_update("topic", "BTCUSDT", _binance_quote()).text)
    values = [payload[f] for f in ("bid", "ask", "last", "volume")]
    assert values == sent("60685.21", "60685.22", "60685.22", "12345.67891")


def test_binance_quote_change_is_the_exact_difference() -> None:
    payload = numbers(quote_update("topic", "BTCUSDT", _binance_quote()).text)
    assert payload["change"] == Decimal("60685.22") - Decimal("60000.1")


# -- Twelve Data: as sent, and added up exactly -------------------------------------------------


def test_time_series_captures_reach_the_wire_as_sent() -> None:
    for name, resolution in (("time_series_eurusd_1day", "D"), ("time_series_usdrub_1min", "1")):
        body = json.loads((FIXTURES / f"twelvedata/{name}.json").read_text())
        candles = parse_time_series(body, resolution, upstream_now=LATER)
        rows = list(reversed(body["values"]))  # newest first upstream
        assert len(candles) == len(rows)
        for row, candle in zip(rows, candles, strict=True):
            payload = bar_numbers(BarKey("X", resolution), candle)
            assert [payload[f] for f in OHLCV[:4]] == sent(*(row[f] for f in OHLCV[:4]))
            assert payload["volume"] == 0  # forex: no volume


def test_a_captured_minute_aggregated_into_three_keeps_its_prices() -> None:
    body = json.loads((FIXTURES / "twelvedata/time_series_usdrub_1min.json").read_text())
    rows = parse_time_series(body, "1", upstream_now=LATER)
    [bar] = PolledSeries("3").apply(rows)
    payload = bar_numbers(BarKey("USD/RUB", "3"), bar)
    assert [payload[f] for f in OHLCV[:4]] == sent("63.97310", "63.97500", "63.97310", "63.97370")


def test_captured_price_events_reach_the_wire_as_sent() -> None:
    lines = (FIXTURES / "twelvedata/ws_price_events.jsonl").read_text().splitlines()
    for line in filter(None, lines):
        event = json.loads(line, parse_float=Decimal)
        parsed = parse_price_event(json.loads(line))
        assert parsed is not None
        payload = numbers(quote_update("topic", parsed[0], parsed[1]).text)
        assert payload["last"] == event["price"]
        assert payload["bid"] == event.get("bid", event["price"])
        assert payload["ask"] == event.get("ask", event["price"])
        if "day_volume" in event:
            assert payload["volume"] == event["day_volume"]


def test_a_quote_reaches_the_wire_as_sent() -> None:
    body = {"symbol": "BTC/USD", "timestamp": 1786665600, "close": "60685.22000"}
    body |= {"volume": "1234.56789", "change": "685.12", "percent_change": "1.14187"}
    payload = numbers(quote_update("topic", "BTC/USD", parse_quote(body)).text)
    values = [payload[f] for f in ("last", "volume", "change", "change_percent")]
    assert values == sent("60685.22", "1234.56789", "685.12", "1.14187")


def crypto_minutes(volumes: Sequence[str]) -> dict[str, Any]:
    """A ``time_series`` 1min body of the documented shape with a volume per row (crypto
    pairs have one), newest first, from 2024-04-15 13:00 on."""
    values = [
        {
            "datetime": f"2024-04-15 13:{minute:02d}:00",
            "open": "63500.10",
            "high": "63510.55",
            "low": "63490.01",
            "close": "63505.25",
            "volume": volume,
        }
        for minute, volume in enumerate(volumes)
    ]
    return {"meta": {"symbol": "BTC/USD", "interval": "1min"}, "values": values[::-1]}


#: Six minutes: two 3-minute bars whose float sums are noisy (0.7000000000000001, 6.6000...03).
VOLUMES: Final = ("0.1", "0.2", "0.4", "1.1", "2.2", "3.3")


def _three_minute_volumes(bars: Sequence[Candle]) -> list[Decimal]:
    return [numbers(bar_update("t", BarKey("BTC/USD", "3"), bar).text)["volume"] for bar in bars]


def test_three_minute_bars_polled_live_have_the_exact_volume() -> None:
    rows = parse_time_series(crypto_minutes(VOLUMES), "1", upstream_now=LATER)
    series = PolledSeries("3")
    series.seed(rows[:1])  # known: every later row is delivered
    latest: dict[int, Candle] = {}
    for row in rows[1:]:
        for bar in series.apply([row]):
            latest[bar.time] = bar
    assert _three_minute_volumes(list(latest.values())) == sent("0.7", "6.6")


def test_three_minute_history_has_the_exact_volume() -> None:
    rows = parse_time_series(crypto_minutes(VOLUMES), "1", upstream_now=LATER)
    bars = aggregate(rows, "3", source="1")
    assert _three_minute_volumes(bars) == sent("0.7", "6.6")


def test_every_value_checked_here_is_a_plain_json_number() -> None:
    """The representation chosen: JSON numbers, never strings, written shortest."""
    text = bar_update("t", BarKey("X", "1"), Candle(0, 0.208, 0.2081, 0.208, 0.2081, 624.6)).text
    assert '"open":0.208,"high":0.2081,"low":0.208,"close":0.2081,"volume":624.6' in text
    quote = quote_update("t", "X", Quote(0, 1.5, 1.75, 1.625, 1e-05)).text
    assert '"volume":0.00001' in quote
