"""Domain records: what a candle and a quote are inside marketcast, independent of the wire.

They are frozen dataclasses with slots rather than pydantic models because they sit on the hot
path (every tick creates one) and never need validation: feeds build them from already-parsed
upstream data.
"""

from __future__ import annotations

from dataclasses import dataclass

from marketcast.types import Millis, Resolution, Symbol


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLCV bar. ``time`` is the bucket's open time; ``closed`` means final."""

    time: Millis
    open: float
    high: float
    low: float
    close: float
    volume: float
    closed: bool = False


@dataclass(frozen=True, slots=True)
class Quote:
    """Top of book plus last trade for one symbol at one instant."""

    time: Millis
    bid: float
    ask: float
    last: float
    volume: float | None = None
    change: float | None = None
    change_percent: float | None = None


@dataclass(frozen=True, slots=True)
class BarKey:
    """Identifies one candle series: a symbol at a resolution."""

    symbol: Symbol
    resolution: Resolution


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    """A symbol this server serves, and where its data comes from."""

    symbol: Symbol
    asset_class: str
    source: str
    resolutions: tuple[Resolution, ...]


@dataclass(frozen=True, slots=True)
class QuoteKey:
    """Identifies one quote stream: a symbol."""

    symbol: Symbol


#: What a feed is asked to watch: one candle series or one quote stream.
StreamKey = BarKey | QuoteKey
