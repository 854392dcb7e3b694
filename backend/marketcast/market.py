"""Domain records: what a candle and a quote are inside marketcast, independent of the wire.

They are dataclasses with slots rather than pydantic models because they sit on the hot path
(every tick creates one) and never need validation: feeds build them from already-parsed
upstream data. Keys are frozen (they are hashed); the records built per event (``Candle``,
``Quote``) are not, and are never changed once built: a frozen dataclass sets each field
through ``object.__setattr__``, which made building a candle cost four times as much, eleven
times per upstream kline once its resolutions are aggregated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from marketcast.types import Millis, Resolution, Symbol


@dataclass(slots=True)
class Candle:
    """One OHLCV bar. ``time`` is the bucket's open time; ``closed`` means final."""

    time: Millis
    open: float
    high: float
    low: float
    close: float
    volume: float
    closed: bool = False


@dataclass(slots=True)
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
class StreamKey:
    """What a feed is asked to watch: one stream of one channel family for one symbol.

    Each family subclasses it (``BarKey``, ``QuoteKey``, ``channels.trades.TradeKey``); the
    class says which family a key belongs to (``channels.Registry.of_key``), so nothing below
    the registry branches on route names."""

    symbol: Symbol


@dataclass(frozen=True, slots=True)
class BarKey(StreamKey):
    """Identifies one candle series: a symbol at a resolution."""

    resolution: Resolution
    #: The hash, computed once: one candle looks its key up in several dicts on the ingest
    #: path (its ingest record, the store's series, a cluster's owned keys), and a dataclass
    #: hashes a fresh tuple of its fields on every lookup.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((BarKey, self.symbol, self.resolution)))

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True, slots=True)
class QuoteKey(StreamKey):
    """Identifies one quote stream: a symbol."""


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    """A symbol this server serves, and where its data comes from."""

    symbol: Symbol
    asset_class: str
    source: str
    resolutions: tuple[Resolution, ...]
    #: The key classes the feed can watch for this symbol: a family whose key class is
    #: missing (trades of a forex pair) is refused at subscribe with a typed error.
    kinds: frozenset[type[StreamKey]] = frozenset({BarKey, QuoteKey})


@dataclass(frozen=True, slots=True)
class RecentRecord:
    """One kept event: its order within its stream (a trade's id) and its snapshot element."""

    order: int
    value: Mapping[str, Any]
