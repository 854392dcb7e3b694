"""Binance's wire formats and control protocol — pure, no I/O.

Everything about Binance that can be decided without a socket lives here, so it is tested
against the captured frames in ``tests/fixtures/upstreams/binance`` and with plain values:

- stream names and the resolution <-> interval mapping (every marketcast resolution is native
  on Binance, so nothing is aggregated for it);
- ``parse_frame``: one combined-stream text frame -> a typed event (kline, aggregate trade,
  book ticker, mini ticker, ``serverShutdown``, a control reply or a control error);
- ``parse_klines``: the rows of ``GET /api/v3/klines``, final only on the upstream's word (a
  newer row, or a close time before the upstream's own clock, never this machine's: the two
  clocks differ, and a bar declared final early is published with values that change after);
- ``parse_agg_trades``: the rows of ``GET /api/v3/aggTrades`` (see its docstring for the
  documented facts relied on);
- ``parse_server_time``: ``GET /api/v3/time``;
- (the pacing rules and quote assembly are in ``binance_rules``).

Parse errors are ``UpstreamFormatError`` with a message naming the field, what was expected
and what came, because the one who reads it is debugging a capture.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from marketcast.channels.trades import Trade, TradeKey
from marketcast.market import BarKey, Candle, QuoteKey, StreamKey
from marketcast.types import Millis, Resolution, Symbol

#: Every marketcast resolution is a native Binance interval.
INTERVALS: Final[dict[Resolution, str]] = {
    "1": "1m",
    "3": "3m",
    "5": "5m",
    "15": "15m",
    "30": "30m",
    "60": "1h",
    "120": "2h",
    "240": "4h",
    "D": "1d",
    "W": "1w",
    "M": "1M",
}
RESOLUTION_OF: Final[dict[str, Resolution]] = {v: k for k, v in INTERVALS.items()}
#: Binance's documented limits.
MAX_STREAMS_PER_CONNECTION: Final = 1024
MAX_CONTROL_MESSAGES_PER_SECOND: Final = 5
MAX_KLINES_PER_REQUEST: Final = 1000
#: ``GET /api/v3/aggTrades``: ``limit`` defaults to 500 and may be at most 1000.
MAX_AGG_TRADES_PER_REQUEST: Final = 1000
#: Connection attempts Binance accepts per IP: 300 per 5 minutes.
MAX_CONNECTION_ATTEMPTS: Final = 300
CONNECTION_ATTEMPT_WINDOW: Final = 300.0


class UpstreamFormatError(ValueError):
    """A frame or body that does not have the documented shape."""


# -- stream names -----------------------------------------------------------------------------


def kline_stream(symbol: Symbol, resolution: Resolution) -> str:
    return f"{symbol.lower()}@kline_{INTERVALS[resolution]}"


def agg_trade_stream(symbol: Symbol) -> str:
    return f"{symbol.lower()}@aggTrade"


def streams_for(key: StreamKey) -> tuple[str, ...]:
    """The upstream streams that carry ``key``; a quote needs two (see ``QuoteAssembler``)."""
    if isinstance(key, BarKey):
        return (kline_stream(key.symbol, key.resolution),)
    if isinstance(key, TradeKey):
        return (agg_trade_stream(key.symbol),)
    lower = key.symbol.lower()
    return (f"{lower}@bookTicker", f"{lower}@miniTicker")


def key_of_stream(stream: str) -> StreamKey | None:
    """The key a stream name belongs to (upper-case symbol), or None for other streams."""
    name, _, kind = stream.partition("@")
    if kind.startswith("kline_"):
        resolution = RESOLUTION_OF.get(kind.removeprefix("kline_"))
        return BarKey(name.upper(), resolution) if resolution is not None else None
    if kind in ("bookTicker", "miniTicker"):
        return QuoteKey(name.upper())
    if kind == "aggTrade":
        return TradeKey(name.upper())
    return None


def combined_url(base: str, streams: Iterable[str]) -> str:
    """The combined-stream URL for ``base`` (``wss://host:port``) carrying ``streams``."""
    names = "/".join(streams)
    return f"{base.rstrip('/')}/stream" + (f"?streams={names}" if names else "")


# -- events -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KlineEvent:
    stream: str
    key: BarKey
    event_time: Millis
    candle: Candle


@dataclass(frozen=True, slots=True)
class AggTradeEvent:
    """One ``<symbol>@aggTrade`` event: a trade, and the upstream's clock when it was sent."""

    stream: str
    key: TradeKey
    event_time: Millis
    trade: Trade


@dataclass(frozen=True, slots=True)
class BookTickerEvent:
    symbol: Symbol
    update_id: int
    bid: float
    ask: float


@dataclass(frozen=True, slots=True)
class MiniTickerEvent:
    symbol: Symbol
    event_time: Millis
    close: float
    open: float
    volume: float


@dataclass(frozen=True, slots=True)
class ServerShutdown:
    """Binance will close this connection soon; reconnect now rather than lose data."""

    event_time: Millis


@dataclass(frozen=True, slots=True)
class ControlReply:
    id: int | str | None
    result: Any


@dataclass(frozen=True, slots=True)
class ControlFailure:
    id: int | str | None
    code: int
    message: str


@dataclass(frozen=True, slots=True)
class OtherEvent:
    """A well-formed frame of a stream marketcast does not use; ignored."""

    stream: str


Event = (
    KlineEvent
    | AggTradeEvent
    | BookTickerEvent
    | MiniTickerEvent
    | ServerShutdown
    | ControlReply
    | ControlFailure
    | OtherEvent
)


def parse_frame(text: str | bytes) -> Event:
    """One text frame of a combined-stream connection."""
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise UpstreamFormatError(f"frame is not JSON ({exc}): {_excerpt(text)}") from None
    if not isinstance(frame, dict):
        raise UpstreamFormatError(f"expected a JSON object frame, got {_excerpt(text)}")
    if "stream" in frame:
        stream, data = frame["stream"], frame.get("data")
        if not isinstance(stream, str) or not isinstance(data, dict):
            raise UpstreamFormatError(
                f"expected {{stream: str, data: object}}, got {_excerpt(text)}"
            )
        return parse_payload(stream, data)
    if "error" in frame:
        error = frame["error"]
        if not isinstance(error, dict):
            raise UpstreamFormatError(f"expected error to be an object, got {_excerpt(text)}")
        return ControlFailure(
            frame.get("id"), _int(error, "code"), str(error.get("msg", "(no message)"))
        )
    if "result" in frame and "id" in frame:
        return ControlReply(frame["id"], frame["result"])
    if "e" in frame or ("u" in frame and "s" in frame):  # a raw stream's payload
        return parse_payload("", frame)
    raise UpstreamFormatError(f"unrecognised frame: {_excerpt(text)}")


def parse_payload(stream: str, data: dict[str, Any]) -> Event:
    """The ``data`` of a combined-stream frame (or a raw-stream frame) of ``stream``."""
    kind = data.get("e")
    if kind == "serverShutdown" or stream == "!serverShutdown":
        return ServerShutdown(_int(data, "E"))
    if kind == "kline":
        return parse_kline(stream, data)
    if kind == "aggTrade":
        return parse_agg_trade(stream, data)
    if kind == "24hrMiniTicker":
        return MiniTickerEvent(
            _str(data, "s"),
            _int(data, "E"),
            _decimal(data, "c"),
            _decimal(data, "o"),
            _decimal(data, "v"),
        )
    if stream.endswith("@bookTicker") or ("b" in data and "a" in data and "u" in data):
        return BookTickerEvent(
            _str(data, "s"), _int(data, "u"), _decimal(data, "b"), _decimal(data, "a")
        )
    return OtherEvent(stream)


def parse_kline(stream: str, data: dict[str, Any]) -> KlineEvent:
    """A kline event; fields Binance documents as optional or "ignore" (``B``) may be absent."""
    k = data.get("k")
    if not isinstance(k, dict):
        raise UpstreamFormatError(f"kline event without a 'k' object: {_excerpt(data)}")
    interval = _str(k, "i")
    resolution = RESOLUTION_OF.get(interval)
    if resolution is None:
        raise UpstreamFormatError(
            f"kline interval {interval!r} is not one marketcast serves: expected one of "
            + ", ".join(RESOLUTION_OF)
        )
    closed = k.get("x")
    if not isinstance(closed, bool):
        raise UpstreamFormatError(f"kline field 'x' must be a boolean, got {closed!r}")
    candle = Candle(
        _int(k, "t"),
        _decimal(k, "o"),
        _decimal(k, "h"),
        _decimal(k, "l"),
        _decimal(k, "c"),
        _decimal(k, "v"),
        closed=closed,
    )
    key = BarKey(_str(k, "s"), resolution)
    return KlineEvent(stream or kline_stream(key.symbol, resolution), key, _int(data, "E"), candle)


def parse_agg_trade(stream: str, data: dict[str, Any]) -> AggTradeEvent:
    """A ``<symbol>@aggTrade`` event (raw, or the ``data`` of a combined-stream frame).

    Relied on, from Binance's spot WebSocket Streams documentation: ``e`` is ``"aggTrade"``,
    ``E`` the event time (ms), ``s`` the symbol, ``a`` the aggregate trade id, ``p``/``q``
    price and quantity as decimal strings, ``f``/``l`` the first/last raw trade ids it
    aggregates, ``T`` the trade time (ms), ``m`` "is the buyer the market maker?" and ``M``
    documented as "Ignore". Only ``a``, ``p``, ``q``, ``T``, ``m`` (and ``s``, ``E``) are read,
    so an event without ``f``/``l``/``M`` is accepted."""
    symbol = _str(data, "s")
    return AggTradeEvent(
        stream or agg_trade_stream(symbol), TradeKey(symbol), _int(data, "E"), _trade(data)
    )


def parse_agg_trades(body: Any) -> list[Trade]:
    """Rows of ``GET /api/v3/aggTrades``, ascending by id.

    Relied on, from Binance's spot REST documentation ("Compressed/Aggregate trades list"):
    the body is a JSON array of objects with ``a`` (aggregate trade id), ``p``, ``q`` (decimal
    strings), ``f``, ``l`` (first/last raw trade id), ``T`` (ms), ``m`` (was the buyer the
    maker?) and ``M`` (best price match), oldest first. The request side (``fromId``, ``limit``
    up to 1000, weight 4) is in ``binance_rest.BinanceRest.agg_trades``. Ids that do not
    strictly ascend are refused: gap-filling relies on them as a cursor."""
    if not isinstance(body, list):
        raise UpstreamFormatError(f"expected a JSON array of aggTrades rows, got {_excerpt(body)}")
    trades: list[Trade] = []
    for index, row in enumerate(body):
        if not isinstance(row, dict):
            raise UpstreamFormatError(
                f"aggTrades row {index}: expected an object, got {_excerpt(row)}"
            )
        try:
            trades.append(_trade(row))
        except UpstreamFormatError as exc:
            raise UpstreamFormatError(f"aggTrades row {index}: {exc}") from None
    ids = [t.id for t in trades]
    if ids != sorted(set(ids)):
        raise UpstreamFormatError("aggTrades rows are not in strictly ascending id order")
    return trades


def _trade(obj: Mapping[str, Any]) -> Trade:
    """The trade of an aggTrade event or row: ``a`` is its id; ``m`` (the buyer was the maker)
    makes the seller the taker, so the side is ``sell``."""
    maker = obj.get("m")
    if not isinstance(maker, bool):
        raise UpstreamFormatError(f"field 'm' must be a boolean, got {maker!r}")
    return Trade(
        _int(obj, "a"),
        _int(obj, "T"),
        _decimal(obj, "p"),
        _decimal(obj, "q"),
        "sell" if maker else "buy",
    )


def parse_klines(body: Any, server_time: Millis | None) -> list[Candle]:
    """Rows of ``GET /api/v3/klines``, ascending. Every row but the newest is final (a newer
    one exists); the newest is final only if its close time (field 6) is before
    ``server_time``, the upstream's clock as known *before* the request was sent (its event
    times or ``serverTime``); None: unknown, so the newest row stays open."""
    if not isinstance(body, list):
        raise UpstreamFormatError(f"expected a JSON array of kline rows, got {_excerpt(body)}")
    candles: list[Candle] = []
    for index, row in enumerate(body):
        if not isinstance(row, list) or len(row) < 7:
            raise UpstreamFormatError(
                f"kline row {index}: expected an array of 12 fields, got {_excerpt(row)}"
            )
        fields = dict(enumerate(row))
        last = index == len(body) - 1
        closed = not last or (server_time is not None and _int(fields, 6) < server_time)
        candles.append(
            Candle(
                _int(fields, 0),
                _decimal(fields, 1),
                _decimal(fields, 2),
                _decimal(fields, 3),
                _decimal(fields, 4),
                _decimal(fields, 5),
                closed=closed,
            )
        )
    times = [c.time for c in candles]
    if times != sorted(set(times)):
        raise UpstreamFormatError("kline rows are not in strictly ascending open-time order")
    return candles


def parse_server_time(body: Any) -> Millis:
    """The body of ``GET /api/v3/time``: ``{"serverTime": 1499827319559}``."""
    if not isinstance(body, dict):
        raise UpstreamFormatError(f"expected a JSON object with serverTime, got {_excerpt(body)}")
    return _int(body, "serverTime")


def parse_rest_error(body: bytes) -> tuple[int, str] | None:
    """``(code, msg)`` of a REST error body such as ``{"code":-1121,"msg":"Invalid symbol."}``."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(value, dict) and isinstance(value.get("code"), int):
        return value["code"], str(value.get("msg", ""))
    return None


# -- field readers --------------------------------------------------------------------------


def _excerpt(value: object, limit: int = 200) -> str:
    text = value.decode(errors="replace") if isinstance(value, bytes) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _str(obj: Mapping[Any, Any], field: object) -> str:
    value = obj.get(field)
    if not isinstance(value, str):
        raise UpstreamFormatError(f"field {field!r} must be a string, got {value!r}")
    return value


def _int(obj: Mapping[Any, Any], field: object) -> int:
    value = obj.get(field)
    if not isinstance(value, int) or isinstance(value, bool):
        raise UpstreamFormatError(f"field {field!r} must be an integer, got {value!r}")
    return value


def _decimal(obj: Mapping[Any, Any], field: object) -> float:
    """A decimal Binance writes as a string (``"60685.22000000"``); numbers are tolerated.

    ``float`` of a decimal of up to 15 significant digits is the double whose shortest repr
    is that decimal (``60685.22``), which orjson writes back: the value reaches the wire as
    sent, with no conversion of our own to add noise (docs/websocket.md, "Numbers on the
    wire"). Arithmetic on these values goes through ``aggregate.decimal_sum``."""
    value = obj.get(field)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise UpstreamFormatError(f"field {field!r} must be a decimal string, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise UpstreamFormatError(
            f"field {field!r} must be a decimal string, got {value!r}"
        ) from None
