"""The ``trades`` family: every aggregate trade of a symbol, in upstream id order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from marketcast.market import StreamKey
from marketcast.types import Millis

#: Which side took liquidity: ``buy`` when the buyer crossed the spread (Binance ``m`` false).
Side = Literal["buy", "sell"]


@dataclass(frozen=True, slots=True)
class Trade:
    """One (aggregate) trade. ``id`` is the upstream's, strictly increasing per symbol: it is
    how gaps are filled and repeats dropped."""

    id: int
    time: Millis
    price: float
    quantity: float
    side: Side


@dataclass(frozen=True, slots=True)
class TradeKey(StreamKey):
    """Identifies one trade stream: a symbol."""
