"""The simulator's trades tape — pure, no I/O, no clock: how a walk's steps become ``Trade``s.

Why a module of its own: ``SimulatorFeed`` (``feeds.simulator``) decides *when* a symbol
trades and who hears of it; this is what a trade is called and which side took it, a rule a
reader can check here without the timer loop.

Every step of a symbol's walk (``sim_prices.Walk.step``) is one trade, whether or not its
trades are watched: the same trade goes into the symbol's candles, so a trades tape and the
bars of the same stretch agree (open = first price, close = last, volume = sum of sizes).

- **Ids** number the walk's trades, 1, 2, 3, ... for the life of the feed: strictly increasing
  and never reused, across unwatch and re-watch. A trade made while only the symbol's bars or
  quotes were watched keeps its number, so a re-watched tape continues after a jump in ids
  rather than repeating them.
- **Side** is the tick test: ``buy`` when the price is above the previous trade's (the buyer
  lifted the offer), ``sell`` when below, and the previous trade's side when unchanged. The
  first trade compares with the walk's start price and a ``buy`` before it.
"""

from __future__ import annotations

from marketcast.channels.trades import Side, Trade
from marketcast.types import Millis


class TradeTape:
    """One symbol's trades as its walk makes them: the state that survives unwatch/watch."""

    __slots__ = ("last_id", "price", "side")

    def __init__(self, price: float) -> None:
        #: The id of the last trade made; the next one is ``last_id + 1``.
        self.last_id = 0
        #: The last trade's price and side (before any trade: the start price, a buy).
        self.price = price
        self.side: Side = "buy"

    def record(self, time: Millis, price: float, quantity: float) -> Trade:
        """The trade the walk just made at ``time``: numbered and signed (tick test)."""
        if price > self.price:
            self.side = "buy"
        elif price < self.price:
            self.side = "sell"
        self.last_id += 1
        self.price = price
        return Trade(self.last_id, time, price, quantity, self.side)
