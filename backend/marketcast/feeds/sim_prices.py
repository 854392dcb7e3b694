"""The simulator's price model — pure, no I/O, no clock: how one symbol's price moves.

Why a module of its own: ``SimulatorFeed`` (``feeds.simulator``) is about time — ticks,
watching, history requests, backfills — while this is the arithmetic of one walk, which the
feed, its history generator and the tests share, and which can be read and checked alone.

Each symbol's price follows a mean-reverting random walk (an Ornstein-Uhlenbeck process on the
log price, sampled exactly so any time step is valid): locally it looks like a random walk with
the asset class's volatility, and over years of backfilled monthly bars it stays plausible
instead of drifting to zero or infinity. The process is time-reversible, which is what lets
history be generated *backward* from the current price so that it meets the live price exactly.
Everything random is seeded through ``zlib.crc32`` (Python's ``hash`` is salted per process).
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass
from typing import Final

from marketcast.feeds.aggregate import decimal_sum
from marketcast.market import Candle, Quote
from marketcast.timeframes import bucket_start
from marketcast.types import Millis, Symbol

#: Trades per simulated second assumed when sizing backfilled volume.
HISTORY_TRADE_RATE: Final = 4.0


#: Realistic starting prices for the default symbols; other symbols get a stable made-up one.
_KNOWN_STARTS: Final = {"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0, "EUR/USD": 1.08, "AAPL": 190.0}


@dataclass(frozen=True, slots=True)
class Profile:
    """How one symbol's prices behave; derived from its asset class and name.

    ``decimals`` and ``size_decimals`` are the instrument's precision: every price and size
    the model makes up is rounded to them (``price``, ``size``), and every value computed from
    those is an exact decimal sum (``aggregate.decimal_sum``), so no simulated number on the
    wire has more decimals than its instrument (docs/websocket.md, "Numbers on the wire")."""

    asset_class: str
    start: float
    #: Price decimals (a tick is ``10**-decimals``).
    decimals: int
    #: Volatility of the log price per sqrt(second).
    sigma: float
    #: Mean-reversion rate per second; sigma / sqrt(2 theta) is the long-run spread of prices.
    theta: float
    #: Bid/ask spread relative to the price.
    spread: float
    #: Typical trade value in quote currency; sizes are this over the price.
    notional: float
    #: Size and volume decimals (the smallest trade is ``10**-size_decimals``).
    size_decimals: int

    def price(self, level: float) -> float:
        """The quoted price for a log deviation ``level`` from the start price."""
        tick = 10.0**-self.decimals
        return max(round(self.start * math.exp(level), self.decimals), tick)

    def level(self, price: float) -> float:  # the inverse of price(), up to rounding
        return math.log(price / self.start)

    def step(self, level: float, seconds: float, z: float) -> float:
        """Exact OU transition over ``seconds`` (same law forward and backward in time)."""
        decay = math.exp(-self.theta * seconds)
        spread = self.sigma * math.sqrt((1.0 - decay * decay) / (2.0 * self.theta))
        return level * decay + spread * z

    def size(self, price: float, factor: float) -> float:
        size = round(self.notional / price * factor, self.size_decimals)
        return max(size, 10.0**-self.size_decimals)


def asset_class_of(symbol: Symbol) -> str:
    """``forex`` for ``BASE/QUOTE``, ``crypto`` for exchange pairs, else ``stock``."""
    if "/" in symbol:
        return "forex"
    if symbol.endswith(("USDT", "BUSD", "USDC", "BTC")):
        return "crypto"
    return "stock"


def stable_seed(*parts: object) -> int:
    return zlib.crc32(":".join(str(part) for part in parts).encode())


def profile_for(symbol: Symbol) -> Profile:
    """Asset-class behaviour; the start price is known or derived from the name."""
    kind = asset_class_of(symbol)
    unit = (stable_seed("start", symbol) % 10_000) / 10_000  # in [0, 1)
    if kind == "forex":
        jpy = symbol.endswith("/JPY")  # yen pairs trade around 150 and quote 3 decimals
        start = _KNOWN_STARTS.get(symbol, 100 + 60 * unit if jpy else 0.5 + 1.5 * unit)
        return Profile(kind, start, 3 if jpy else 5, *_vol(0.08, 0.05), 1e-4, 100_000, 0)
    if kind == "crypto":
        in_btc = symbol.endswith("BTC")  # priced in bitcoin: small numbers, 8 decimals
        start = _KNOWN_STARTS.get(symbol, 0.001 + 0.1 * unit if in_btc else 10 ** (4 * unit))
        return Profile(kind, start, 8 if in_btc else 2, *_vol(0.6, 0.35), 1e-4, 5_000, 5)
    start = _KNOWN_STARTS.get(symbol, 10 + 490 * unit)
    return Profile(kind, start, 2, *_vol(0.25, 0.2), 2e-4, 20_000, 0)


def _vol(annual: float, long_run: float) -> tuple[float, float]:
    """(sigma, theta) per second from annual volatility and long-run spread of log prices."""
    sigma = annual / math.sqrt(365 * 86_400)
    return sigma, sigma * sigma / (2 * long_run * long_run)


def bar_between(
    profile: Profile, rng: random.Random, time: Millis, end_level: float, seconds: float
) -> Candle:
    """A bar lasting ``seconds`` that closes at ``end_level``: its open is one backward
    step, its wicks reach beyond both by a random fraction of the bar's volatility."""
    open_level = profile.step(end_level, seconds, rng.gauss())
    wick = 0.5 * profile.sigma * math.sqrt(seconds)
    o, c = profile.price(open_level), profile.price(end_level)
    high = profile.price(max(open_level, end_level) + abs(rng.gauss()) * wick)
    low = profile.price(min(open_level, end_level) - abs(rng.gauss()) * wick)
    volume = seconds * HISTORY_TRADE_RATE * profile.size(c, rng.lognormvariate(0, 0.4))
    volume = round(volume, profile.size_decimals)
    return Candle(time, o, max(high, o, c), min(low, o, c), c, volume, closed=True)


class Walk:
    """One symbol's live price: the state that survives unwatch/watch."""

    __slots__ = ("day", "day_open", "day_volume", "level", "price", "profile", "rng", "time")

    def __init__(self, profile: Profile, rng: random.Random, now: Millis) -> None:
        self.profile = profile
        self.rng = rng
        self.level = 0.0
        self.price = profile.price(0.0)
        #: Simulated time of the last step; the next step covers the time since.
        self.time = now
        #: The UTC day the change and the volume refer to, and the price it opened at.
        self.day = bucket_start(now, "D")
        self.day_open = self.price
        self.day_volume = 0.0

    def step(self, now: Millis) -> tuple[float, float]:
        """Advance to ``now``; return the trade (price, size) made there."""
        seconds = max(now - self.time, 0) / 1000
        self.time = max(self.time, now)
        self.level = self.profile.step(self.level, seconds, self.rng.gauss())
        day = bucket_start(now, "D")
        if day != self.day:
            self.day, self.day_open, self.day_volume = day, self.price, 0.0
        self.price = self.profile.price(self.level)
        size = self.profile.size(self.price, self.rng.lognormvariate(0, 0.75))
        self.day_volume = decimal_sum(self.day_volume, size)
        return self.price, size

    def quote(self, now: Millis) -> Quote:
        """Bid/ask at least one tick either side of the last price, so bid < ask always.

        Made-up values (the half spread) are rounded to the instrument's price decimals;
        values computed from decimal ones (bid, ask, change, the day's volume) are exact
        decimal sums (``decimal_sum``), so they have at most the instrument's decimals too."""
        price, places = self.price, self.profile.decimals
        half = max(round(price * self.profile.spread / 2, places), 10.0**-places)
        change = decimal_sum(price, -self.day_open)
        bid, ask = decimal_sum(price, -half), decimal_sum(price, half)
        percent = round(change / self.day_open * 100, 4)
        return Quote(now, bid, ask, price, self.day_volume, change, percent)
