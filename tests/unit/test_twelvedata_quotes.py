"""Twelve Data quotes and finality, pure: ``parse_quote``, the upstream clock from ``Date``,
the newest row closed only by that clock; and the fake's ``/quote`` against the parser and
against its own ``time_series`` at one frozen instant."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from marketcast.feeds.twelvedata_protocol import (
    TwelveDataError,
    TwelveDataFormatError,
    parse_quote,
    parse_time_series,
    upstream_clock,
)
from marketcast.market import Quote
from marketcast.sim.market import TICK_MS, FakeClock, Market
from marketcast.sim.twelvedata import FakeTwelveData

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "upstreams" / "twelvedata"

#: A forex ``/quote`` answer with the documented fields (values made up, no volume for forex).
FOREX_QUOTE: dict[str, Any] = {
    "symbol": "EUR/USD",
    "name": "Euro / US Dollar",
    "exchange": "Forex",
    "datetime": "2026-08-14",
    "timestamp": 1786665600,
    "last_quote_at": 1786667160,
    "open": "1.16210",
    "high": "1.16580",
    "low": "1.16120",
    "close": "1.16455",
    "previous_close": "1.16200",
    "change": "0.00255",
    "percent_change": "0.21945",
    "is_market_open": True,
    "fifty_two_week": {"low": "1.01770", "high": "1.18300", "range": "1.0177 - 1.183"},
    "currency_base": "Euro",
    "currency_quote": "US Dollar",
}


def minute_body(*rows: str) -> dict[str, Any]:
    """A ``time_series`` 1min body, newest first, forex (no volume)."""
    values = [
        {"datetime": t, "open": "1.1", "high": "1.2", "low": "1.0", "close": "1.15"} for t in rows
    ]
    return {"meta": {"symbol": "EUR/USD", "interval": "1min"}, "values": values, "status": "ok"}


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


# -- parse_quote ----------------------------------------------------------------------------------


def test_forex_quote_maps_to_a_quote_at_the_upstreams_time() -> None:
    quote = parse_quote(FOREX_QUOTE)
    # No book in /quote: both sides are the last price; no volume for forex.
    assert quote == Quote(1786667160_000, 1.16455, 1.16455, 1.16455, None, 0.00255, 0.21945)


def test_stock_quote_keeps_its_volume_and_falls_back_to_timestamp() -> None:
    body = {**FOREX_QUOTE, "volume": "67903927"}
    del body["last_quote_at"]
    quote = parse_quote(body)
    assert quote.volume == 67903927.0
    assert quote.time == 1786665600_000


def test_quote_error_body_and_bad_shapes_are_refused() -> None:
    with pytest.raises(TwelveDataError) as refused:
        parse_quote({"code": 429, "message": "out of credits", "status": "error"})
    assert refused.value.out_of_credits
    for bad in (
        [],
        {**FOREX_QUOTE, "last_quote_at": None, "timestamp": None},
        {**FOREX_QUOTE, "close": "NaN"},
        {**FOREX_QUOTE, "close": None},
        {**FOREX_QUOTE, "change": "inf"},
    ):
        with pytest.raises(TwelveDataFormatError):
            parse_quote(bad)


# -- finality: the upstream's clock, never ours -----------------------------------------------------


def test_upstream_clock_reads_the_date_header() -> None:
    assert upstream_clock("Fri, 14 Aug 2026 00:27:00 GMT") == ms("2026-08-14T00:27:00")
    for unreadable in (None, "", "yesterday", "Fri, 14 Aug 2026 00:27:00"):
        assert upstream_clock(unreadable) is None


def test_the_newest_row_stays_open_whatever_this_machines_clock_says() -> None:
    # The capture is from 2020: our clock is years past its close, and it stays open.
    body = json.loads((FIXTURES / "time_series_usdrub_1min.json").read_text())
    (only,) = parse_time_series(body, "1")
    assert not only.closed


def test_the_newest_row_closes_when_the_upstreams_clock_passes_its_close() -> None:
    body = minute_body("2026-08-14 00:26:00", "2026-08-14 00:25:00")
    for upstream_now, closed in (
        (None, False),
        (ms("2026-08-14T00:26:59"), False),
        (ms("2026-08-14T00:27:00"), True),
        (ms("2026-08-14T03:00:00"), True),
    ):
        older, newest = parse_time_series(body, "1", upstream_now=upstream_now)
        assert older.closed, "a newer row exists"
        assert newest.closed is closed, upstream_now


def test_daily_bars_close_only_on_a_newer_row() -> None:
    # Daily bars are in the exchange's day, not a UTC one: the clock does not close them.
    body = json.loads((FIXTURES / "time_series_eurusd_1day.json").read_text())
    candles = parse_time_series(body, "D", upstream_now=ms("2030-01-01T00:00:00"))
    assert [c.closed for c in candles] == [True, True, False]


# -- the fake --------------------------------------------------------------------------------------


@pytest.fixture
def frozen() -> Market:
    """A market whose clock stands still 25 s into a minute, so answers can be compared."""
    origin = ms("2026-08-14T00:26:25")
    return Market(["EUR/USD", "AAPL"], clock=FakeClock(origin_ms=origin, real=lambda: 0.0))


async def test_fake_quote_agrees_with_the_parser_and_its_time_series(frozen: Market) -> None:
    fake = FakeTwelveData(frozen, api_key="k")
    await fake.start()
    try:
        async with httpx.AsyncClient(
            base_url=fake.rest_url, headers={"Authorization": "apikey k"}
        ) as http:
            answer = await http.get("/quote", params={"symbol": "EUR/USD"})
            stock = (await http.get("/quote", params={"symbol": "AAPL"})).json()
            series = await http.get(
                "/time_series",
                params={"symbol": "EUR/USD", "interval": "1min", "outputsize": "2"},
            )
            days = await http.get(
                "/time_series",
                params={"symbol": "EUR/USD", "interval": "1day", "outputsize": "2"},
            )
            unknown = await http.get("/quote", params={"symbol": "XAU/USD"})
            unauthorised = await http.get("/quote", params={"symbol": "EUR/USD", "apikey": "x"})
    finally:
        await fake.stop()
    now = frozen.clock.now_ms()
    body = answer.json()
    assert answer.headers["date"] == format_datetime(
        datetime.fromtimestamp(now // 1000, tz=UTC), usegmt=True
    )
    assert set(body) >= {"symbol", "datetime", "timestamp", "last_quote_at", "close"}
    assert set(body) >= {"previous_close", "change", "percent_change", "currency_base"}
    assert "volume" not in body
    assert "volume" in stock
    assert all(isinstance(body[k], str) for k in ("open", "high", "low", "close", "change"))
    assert isinstance(body["timestamp"], int)
    assert isinstance(body["last_quote_at"], int)
    quote = parse_quote(body)
    assert quote.time == (now - now % TICK_MS)  # the last trade, at the fake's clock
    upstream_now = upstream_clock(series.headers["date"])
    assert upstream_now == now - now % 1000
    minute = parse_time_series(series.json(), "1", upstream_now=upstream_now)
    assert quote.last == minute[-1].close  # the running minute ends at the last trade
    assert not minute[-1].closed
    assert minute[0].closed
    today, yesterday = days.json()["values"]
    assert body["datetime"] == today["datetime"]
    assert body["open"] == today["open"]
    assert body["previous_close"] == yesterday["close"]
    assert quote.change == pytest.approx(quote.last - float(yesterday["close"]))
    assert unknown.json()["code"] == 404
    assert unauthorised.json()["code"] == 401
    assert [r.path for r in fake.requests] == ["/quote"] * 2 + ["/time_series"] * 2 + ["/quote"] * 2
