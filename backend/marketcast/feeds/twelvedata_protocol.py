"""Twelve Data's wire formats and polling rules — pure, no I/O.

- ``parse_time_series``: a ``time_series`` body -> ascending candles. The API writes the
  newest bar first, leaves ``volume`` out for forex, and reports errors in the body with
  ``status: "error"`` (sometimes under HTTP 200), so the body decides, not the HTTP status.
  Datetimes are read as UTC: the feed always asks for ``timezone=UTC``.
- Finality is the upstream's word, never this machine's clock: every bar but the newest of a
  response is final (a newer one exists), and the newest is final only once the upstream's
  own clock — the ``Date`` of its answer — has reached its close. Ours may run ahead of the
  API's: a bar closed by it could reach clients before the API has its final values.
- ``PolledSeries``: one key's state across polls. Each poll returns the bars from the last
  one delivered closed on (see ``TwelveDataFeed``), so the bar held open comes back final in
  the poll that first shows a newer one.
  Resolution ``3`` has no Twelve Data interval: it is polled as ``1min`` and built with the
  same ``CandleAggregator`` as any other aggregated series.
- ``parse_quote``: a ``/quote`` body -> a ``Quote``, for quotes polled within the same budget
  as the bars (see ``TwelveDataFeed``).
- ``parse_price_event``: a ``price`` event of the quotes WebSocket (kept for the captures; the
  WebSocket is a separate subscription the REST budget cannot pay for).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final

from marketcast.errors import FeedError
from marketcast.feeds.aggregate import CandleAggregator
from marketcast.feeds.gapfill import SeriesSync
from marketcast.market import Candle, Quote
from marketcast.timeframes import bucket_start, next_bucket, nominal_ms
from marketcast.types import Millis, Resolution, Symbol

#: Twelve Data interval per resolution; ``3`` is polled as ``1min`` and aggregated.
INTERVALS: Final[dict[Resolution, str]] = {
    "1": "1min",
    "3": "1min",
    "5": "5min",
    "15": "15min",
    "30": "30min",
    "60": "1h",
    "120": "2h",
    "240": "4h",
    "D": "1day",
    "W": "1week",
    "M": "1month",
}
#: Resolutions built from a finer Twelve Data series, and the series they are built from.
AGGREGATED: Final[dict[Resolution, Resolution]] = {"3": "1"}
MAX_OUTPUTSIZE: Final = 5000
#: Resolutions whose bars the upstream's clock may close. Daily and longer bars are in the
#: exchange's time zone whatever ``timezone`` says, so their close is not a UTC instant we
#: can compare with; only a newer row closes them.
CLOCK_CLOSES: Final = frozenset({"1", "3", "5", "15", "30", "60", "120", "240"})


class TwelveDataError(FeedError):
    """An error reported by the API (``status: "error"`` body, or an HTTP error)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"twelvedata error {code}: {message}")
        self.code = code
        self.message = message

    @property
    def out_of_credits(self) -> bool:
        return self.code == 429


class TwelveDataFormatError(ValueError):
    """A body that does not have the documented shape."""


def source_of(resolution: Resolution) -> Resolution:
    """The resolution actually polled for ``resolution``."""
    return AGGREGATED.get(resolution, resolution)


def parse_datetime(text: object, resolution: Resolution) -> Millis:
    """``YYYY-MM-DD HH:MM:SS`` (intraday) or ``YYYY-MM-DD`` as UTC, floored to the bucket."""
    if not isinstance(text, str):
        raise TwelveDataFormatError(f"'datetime' must be a string, got {text!r}")
    for layout in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            moment = datetime.strptime(text, layout).replace(tzinfo=UTC)
        except ValueError:
            continue
        return bucket_start(int(moment.timestamp()) * 1000, resolution)
    raise TwelveDataFormatError(
        f"'datetime' must look like 2024-04-15 or 2024-04-15 13:45:00, got {text!r}"
    )


def format_datetime(ms: Millis) -> str:
    """A ``start_date`` value, UTC (the requests say ``timezone=UTC``)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def check_status(body: Any) -> None:
    """Raise ``TwelveDataError`` if ``body`` is an error body."""
    if isinstance(body, dict) and body.get("status") == "error":
        code = body.get("code")
        raise TwelveDataError(
            code if isinstance(code, int) else 0, str(body.get("message", "(no message)"))
        )


def upstream_clock(date_header: str | None) -> Millis | None:
    """The upstream's clock from the ``Date`` header of its answer (whole seconds, so never
    ahead of it); None when absent or unreadable."""
    if not date_header:
        return None
    try:
        moment = parsedate_to_datetime(date_header)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None  # RFC 9110 dates are GMT; one without a zone is not trusted
    return int(moment.timestamp()) * 1000


def parse_time_series(
    body: Any, resolution: Resolution, *, upstream_now: Millis | None = None
) -> list[Candle]:
    """A ``time_series`` body -> candles ascending, all closed but the newest, which is open
    unless ``upstream_now`` (the upstream's clock, see ``upstream_clock``) has reached its
    close."""
    check_status(body)
    if not isinstance(body, dict) or not isinstance(body.get("values"), list):
        raise TwelveDataFormatError(f"expected {{values: [...], status: 'ok'}}, got {body!r:.200}")
    by_time: dict[Millis, Candle] = {}
    for index, row in enumerate(body["values"]):
        if not isinstance(row, dict):
            raise TwelveDataFormatError(f"values[{index}] must be an object, got {row!r}")
        time = parse_datetime(row.get("datetime"), resolution)
        volume = _decimal(row, "volume") if "volume" in row else 0.0
        candle = Candle(
            time,
            _decimal(row, "open"),
            _decimal(row, "high"),
            _decimal(row, "low"),
            _decimal(row, "close"),
            volume,
            closed=True,
        )
        by_time.setdefault(time, candle)  # newest first: the first row of a bucket wins
    candles = [by_time[t] for t in sorted(by_time)]
    if candles:
        last = candles[-1]
        over = (
            upstream_now is not None
            and resolution in CLOCK_CLOSES
            and next_bucket(last.time, resolution) <= upstream_now
        )
        if not over:
            candles[-1] = Candle(last.time, last.open, last.high, last.low, last.close, last.volume)
    return candles


def quote_params(symbol: Symbol) -> dict[str, str]:
    """Query parameters of one ``/quote`` request (the API key goes in a header). The default
    ``1day`` interval makes ``change`` and ``percent_change`` the change since the previous
    day's close, as the other feeds report it."""
    return {"symbol": symbol, "format": "JSON"}


def parse_quote(body: Any) -> Quote:
    """A ``/quote`` body -> a quote stamped with the upstream's time of it.

    The answer has no book, so bid and ask are the last price (as for a stock's ``price``
    event). Its time is ``last_quote_at`` (unix seconds), or ``timestamp`` (the open of the
    quote's interval) when that is missing; forex quotes carry no ``volume``."""
    check_status(body)
    if not isinstance(body, dict):
        raise TwelveDataFormatError(f"expected a quote object, got {body!r:.200}")
    stamp = body.get("last_quote_at", body.get("timestamp"))
    if isinstance(stamp, str) and stamp.isdigit():
        stamp = int(stamp)
    if not isinstance(stamp, int) or isinstance(stamp, bool):
        raise TwelveDataFormatError(f"quote without last_quote_at/timestamp: {body!r:.200}")
    last = _decimal(body, "close")
    return Quote(
        stamp * 1000,
        last,
        last,
        last,
        _optional_decimal(body, "volume"),
        _optional_decimal(body, "change"),
        _optional_decimal(body, "percent_change"),
    )


def parse_price_event(event: Mapping[str, Any]) -> tuple[Symbol, Quote] | None:
    """A quotes-WebSocket ``price`` event -> (symbol, quote); other events -> None. Without
    bid/ask (stocks) both sides are the price: the event carries no book."""
    if event.get("event") != "price":
        return None
    symbol, timestamp, price = event.get("symbol"), event.get("timestamp"), event.get("price")
    if not isinstance(symbol, str) or not isinstance(timestamp, int):
        raise TwelveDataFormatError(f"price event without symbol/timestamp: {event!r:.200}")
    if not isinstance(price, int | float) or isinstance(price, bool):
        raise TwelveDataFormatError(f"'price' must be a number, got {price!r}")
    bid, ask, volume = event.get("bid", price), event.get("ask", price), event.get("day_volume")
    return symbol, Quote(
        timestamp * 1000,
        float(bid),
        float(ask),
        float(price),
        float(volume) if isinstance(volume, int | float) else None,
    )


def time_series_params(
    symbol: Symbol,
    resolution: Resolution,
    *,
    outputsize: int,
    start: Millis | None = None,
    end: Millis | None = None,
) -> dict[str, str]:
    """Query parameters of one ``time_series`` request (the API key goes in a header)."""
    params = {
        "symbol": symbol,
        "interval": INTERVALS[resolution],
        "outputsize": str(max(1, min(outputsize, MAX_OUTPUTSIZE))),
        "timezone": "UTC",
        "order": "desc",
        "format": "JSON",
    }
    if start is not None:
        params["start_date"] = format_datetime(start)
    if end is not None:
        params["end_date"] = format_datetime(end)
    return params


class PolledSeries:
    """One key's candles across polls of its source series."""

    def __init__(self, resolution: Resolution) -> None:
        self.resolution: Resolution = resolution
        self.source: Resolution = source_of(resolution)
        #: Source-level state: which bars went out closed, which one is open.
        self._sync = SeriesSync(self.source, max_attempts=1)
        self._aggregator = (
            CandleAggregator(resolution, source=self.source) if self.source != resolution else None
        )

    @property
    def known(self) -> bool:
        return self._sync.last_closed is not None or self._sync.open_bar is not None

    def parts_per_bar(self) -> int:
        """Source bars per bar: how many rows a first poll needs to build a whole bar."""
        return max(1, nominal_ms(self.resolution) // nominal_ms(self.source))

    def cursor(self) -> Millis | None:
        """The oldest source bar the next poll must include (``start_date``)."""
        return self._sync.sync_from()

    def seed(self, rows: Sequence[Candle]) -> None:
        """Take the state of a backfill the sink already has; nothing is emitted."""
        self.apply(rows)

    def apply(self, rows: Sequence[Candle]) -> list[Candle]:
        """A poll's rows (ascending, newest open) -> the candles of this key to deliver."""
        if not rows:
            return []
        if not self.known:
            # Without history, deliver only the newest bar (and the one it closed): older
            # rows would reach subscribers after their snapshot, out of order. An aggregated
            # bar needs every part of its bucket.
            first = bucket_start(rows[-1].time, self.resolution)
            rows = [row for row in rows if row.time >= first] if self._aggregator else rows[-2:]
        out = self._sync.finish_sync(rows)
        if self._aggregator is None:
            return out
        return [bar for part in out for bar in self._aggregator.add_candle(part)]


def _optional_decimal(row: Mapping[str, Any], field: str) -> float | None:
    return _decimal(row, field) if row.get(field) is not None else None


def _decimal(row: Mapping[str, Any], field: str) -> float:
    """A decimal string (``"1.06490"``) as the double whose shortest repr is its value
    (``1.0649``): it reaches the wire as sent (docs/websocket.md, "Numbers on the wire");
    the 3-minute bars add volumes with ``aggregate.decimal_sum``."""
    value = row.get(field)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TwelveDataFormatError(f"field {field!r} must be a decimal string, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):  # "NaN" and "inf" parse, but no client could chart them
        raise TwelveDataFormatError(f"field {field!r} must be a decimal string, got {value!r}")
    return number
