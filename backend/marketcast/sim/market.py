"""The fake upstreams' market: a deterministic trade tape and the bars built from it.

Why a pure function of time: the fake servers can be killed and restarted (or run in another
process) and still tell the same story, so a test can compare what a client received with
``bar(...)`` computed afterwards. There is one trade every ``TICK_MS`` of *fake* time whose
price and size depend only on (seed, symbol, tick index): a few slow sine waves for trends and
a hashed jitter for noise. The tick index is the trade's id too (``Tape.first_trade`` on), so
a fake streaming trades and one answering for them by id agree without sharing any state.
Bars are aggregates of those trades over their bucket; aggregates of whole minutes, hours
and days are cached, so a monthly bar costs at most a few hundred merges.

Time is accelerated: ``FakeClock`` maps real time to fake time at ``speed`` (300 makes a 1-minute
bar close every 0.2 s), so tests see many bars close in a few seconds. The tape starts
``history_days`` before the clock's origin: REST history has that depth and no more.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from marketcast.timeframes import bucket_start, next_bucket
from marketcast.types import Millis

TICK_MS: Final = 5_000
MINUTE: Final = 60_000
HOUR: Final = 3_600_000
DAY: Final = 86_400_000
_MASK: Final = (1 << 64) - 1

#: Interval lengths in ms; "W" and "M" are calendar buckets (Monday weeks, calendar months).
IntervalSpec = int | str


class FakeClock:
    """Fake time ``origin + (real - anchor) * speed`` in ms; the real clock is injectable."""

    def __init__(
        self,
        speed: float = 1.0,
        origin_ms: Millis | None = None,
        real: Callable[[], float] = time.time,
    ) -> None:
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a positive number, got {speed!r}")
        self.speed = speed
        self._real = real
        self._anchor = real()
        #: Fake time at the anchor; whole minutes so bars line up with the start.
        self.origin_ms = (
            origin_ms if origin_ms is not None else int(self._anchor * 1000) // MINUTE * MINUTE
        )

    def now_ms(self) -> Millis:
        return self.origin_ms + int((self._real() - self._anchor) * self.speed * 1000)

    def real_seconds(self, fake_ms: float) -> float:
        """Real seconds that ``fake_ms`` of fake time take."""
        return fake_ms / 1000 / self.speed


def floor_to(spec: IntervalSpec, t: Millis) -> Millis:
    if isinstance(spec, int):
        return t - t % spec
    return bucket_start(t, "W" if spec == "W" else "M")


def after(spec: IntervalSpec, start: Millis) -> Millis:
    """The open time of the bucket after the one opening at ``start``."""
    if isinstance(spec, int):
        return start + spec
    return next_bucket(start, "W" if spec == "W" else "M")


def before(spec: IntervalSpec, start: Millis) -> Millis:
    """The open time of the bucket before the one opening at ``start``."""
    return floor_to(spec, start - 1)


@dataclass(frozen=True, slots=True)
class Agg:
    """Trades of a time range, summarised."""

    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    taker_volume: float
    taker_quote: float
    count: int
    first_tick: int
    last_tick: int

    def then(self, later: Agg) -> Agg:
        """This range followed by ``later``."""
        return Agg(
            self.open,
            max(self.high, later.high),
            min(self.low, later.low),
            later.close,
            self.volume + later.volume,
            self.quote_volume + later.quote_volume,
            self.taker_volume + later.taker_volume,
            self.taker_quote + later.taker_quote,
            self.count + later.count,
            self.first_tick,
            later.last_tick,
        )


def _merge(parts: list[Agg]) -> Agg | None:
    if not parts:
        return None
    total = parts[0]
    for part in parts[1:]:
        total = total.then(part)
    return total


@dataclass(frozen=True, slots=True)
class Instrument:
    """How a symbol trades on the fake: price level, decimals, whether volume is reported."""

    symbol: str
    base_price: float
    decimals: int
    size_decimals: int
    #: Twelve Data reports no volume for forex pairs.
    has_volume: bool = True
    #: Typical trade value in quote currency.
    notional: float = 2_000.0

    @classmethod
    def for_symbol(cls, symbol: str) -> Instrument:
        known = _KNOWN.get(symbol)
        if known is not None:
            return known
        unit = (zlib.crc32(symbol.encode()) % 10_000) / 10_000
        if "/" in symbol and not symbol.startswith(("BTC/", "ETH/")):
            return cls(symbol, 0.5 + 1.5 * unit, 5, 0, has_volume=False, notional=100_000)
        return cls(symbol, 10 ** (1 + 3 * unit), 2, 4)


_KNOWN: Final = {
    "BTCUSDT": Instrument("BTCUSDT", 60_000.0, 2, 5),
    "ETHUSDT": Instrument("ETHUSDT", 3_000.0, 2, 4),
    "BNBUSDT": Instrument("BNBUSDT", 600.0, 2, 3),
    "EUR/USD": Instrument("EUR/USD", 1.08, 5, 0, has_volume=False, notional=100_000),
    "GBP/USD": Instrument("GBP/USD", 1.27, 5, 0, has_volume=False, notional=100_000),
    "USD/JPY": Instrument("USD/JPY", 150.0, 3, 0, has_volume=False, notional=100_000),
    "AAPL": Instrument("AAPL", 190.0, 2, 0, notional=20_000),
    "BTC/USD": Instrument("BTC/USD", 60_000.0, 2, 5),
}


def _unit(x: int) -> float:
    """splitmix64 of ``x`` as a float in [0, 1): cheap, stable across processes."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return ((x ^ (x >> 31)) >> 11) / float(1 << 53)


class Tape:
    """One instrument's trades: one per ``TICK_MS`` from ``listed_at`` on."""

    #: (period in seconds, amplitude of the log price) of the trend waves.
    _WAVES: Final = ((600.0, 0.0015), (7_200.0, 0.006), (259_200.0, 0.03))

    def __init__(self, instrument: Instrument, seed: int, listed_at: Millis) -> None:
        self.instrument = instrument
        #: Day-aligned, so a cached minute/hour/day block is wholly before or after it.
        self.listed_at = listed_at - listed_at % DAY
        self._key = zlib.crc32(f"{seed}:{instrument.symbol}".encode()) << 20
        self._phases = [2 * math.pi * _unit(self._key + n) for n in range(len(self._WAVES))]
        self._cache: dict[tuple[int, Millis], Agg | None] = {}
        self._ticks: dict[int, Agg] = {}

    @property
    def first_trade(self) -> int:
        """The index (id) of the tape's first trade, the one at ``listed_at``."""
        return -(-self.listed_at // TICK_MS)

    def tick(self, index: int) -> Agg:
        """The trade at ``index * TICK_MS`` (the current minute's are asked for by every
        stream on every push, hence the small cache)."""
        cached = self._ticks.get(index)
        if cached is not None:
            return cached
        if len(self._ticks) > 10_000:
            self._ticks.clear()
        trade = self._ticks[index] = self._trade(index)
        return trade

    def _trade(self, index: int) -> Agg:
        inst = self.instrument
        seconds = index * TICK_MS / 1000
        level = sum(
            amp * math.sin(2 * math.pi * seconds / period + phase)
            for (period, amp), phase in zip(self._WAVES, self._phases, strict=True)
        )
        level += 0.0008 * (_unit(self._key ^ (index * 3 + 1)) - 0.5)
        price = round(inst.base_price * math.exp(level), inst.decimals)
        factor = 0.2 + 1.6 * _unit(self._key ^ (index * 3 + 2))
        size = max(
            round(inst.notional / price * factor, inst.size_decimals), 10.0**-inst.size_decimals
        )
        taker = size if _unit(self._key ^ (index * 3 + 3)) < 0.5 else 0.0
        return Agg(
            price, price, price, price, size, price * size, taker, price * taker, 1, index, index
        )

    def aggregate(self, start: Millis, end: Millis) -> Agg | None:
        """Trades with ``start <= time < end`` (none before ``listed_at``)."""
        start = max(start, self.listed_at)
        start += -start % TICK_MS
        parts: list[Agg] = []
        t = start
        while t < end:
            for size in (DAY, HOUR, MINUTE):
                if t % size == 0 and t + size <= end:
                    block = self._block(size, t)
                    if block is not None:
                        parts.append(block)
                    t += size
                    break
            else:
                stop = min(end, t - t % MINUTE + MINUTE)
                parts += [self.tick(i // TICK_MS) for i in range(t, stop, TICK_MS)]
                t = stop + (-stop % TICK_MS)
        return _merge(parts)

    def _block(self, size: int, t: Millis) -> Agg | None:
        cached = self._cache.get((size, t), _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        if t < self.listed_at:
            block = None
        elif size == MINUTE:
            block = _merge([self.tick(i // TICK_MS) for i in range(t, t + MINUTE, TICK_MS)])
        else:
            smaller = HOUR if size == DAY else MINUTE
            parts = [self._block(smaller, s) for s in range(t, t + size, smaller)]
            block = _merge([p for p in parts if p is not None])
        if len(self._cache) > 500_000:
            self._cache.clear()  # bounded memory for a fake left running for days
        self._cache[(size, t)] = block
        return block


_MISSING: Final = object()


class Market:
    """The tapes of every symbol a fake serves, on one clock."""

    def __init__(
        self, symbols: list[str], *, clock: FakeClock, seed: int = 7, history_days: float = 2.0
    ) -> None:
        self.clock = clock
        self.seed = seed
        listed_at = clock.origin_ms - int(history_days * DAY)
        self.tapes = {s: Tape(Instrument.for_symbol(s), seed, listed_at) for s in symbols}

    def tape(self, symbol: str) -> Tape | None:
        return self.tapes.get(symbol)

    def bar(
        self, symbol: str, spec: IntervalSpec, start: Millis, now: Millis | None = None
    ) -> tuple[Agg, bool] | None:
        """The bar of ``symbol`` opening at ``start`` as of ``now`` (default: the clock), and
        whether it is closed; None if it has no trade yet (or is before the listing)."""
        now = self.clock.now_ms() if now is None else now
        end = after(spec, start)
        agg = self.tapes[symbol].aggregate(start, min(end, now + 1))
        return None if agg is None else (agg, now >= end)

    def bars(
        self, symbol: str, spec: IntervalSpec, start: Millis, end: Millis, now: Millis | None = None
    ) -> list[tuple[Millis, Agg, bool]]:
        """Every bar opening in ``[start, end)`` that has trades by ``now``, ascending."""
        now = self.clock.now_ms() if now is None else now
        tape = self.tapes[symbol]
        t = floor_to(spec, max(start, tape.listed_at))
        if t < start:
            t = after(spec, t)
        out: list[tuple[Millis, Agg, bool]] = []
        while t < end and t <= now:
            bar = self.bar(symbol, spec, t, now)
            if bar is not None:
                out.append((t, *bar))
            t = after(spec, t)
        return out
