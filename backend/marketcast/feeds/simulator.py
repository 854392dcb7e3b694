"""``SimulatorFeed``: the default feed — seeded random prices, no network.

The prices come from ``feeds.sim_prices`` (a mean-reverting walk per symbol, time-reversible
so history can be generated backward to meet the live price exactly); this module runs them
in simulated time — ``sim = anchor + (real - anchor) * speed`` — with the clock and sleep
injected, so tests drive hours of trading in no real time. Two runs with the same seed and
clock produce the same data.

Each tick is one trade per symbol that has a watched key (bars, quote or trades): it goes into
every watched bar of the symbol and, numbered and signed by ``feeds.sim_trades``, to its
watched trades key, so a trades tape and the bars agree.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from marketcast.channels.orderbook import BookKey
from marketcast.channels.trades import TradeKey
from marketcast.errors import ConfigurationError
from marketcast.feeds.aggregate import CandleBuilder
from marketcast.feeds.base import FeedSink, log_sink_failure
from marketcast.feeds.sim_books import SimBooks
from marketcast.feeds.sim_history import HistoryMemo
from marketcast.feeds.sim_prices import Walk, bar_between, profile_for, stable_seed
from marketcast.feeds.sim_trades import TradeTape
from marketcast.feeds.status import FeedStatus
from marketcast.market import BarKey, Candle, QuoteKey, StreamKey, SymbolInfo
from marketcast.protocol import SYMBOL_PATTERN
from marketcast.settings import Settings
from marketcast.timeframes import RESOLUTIONS, bucket_start
from marketcast.types import Millis, Symbol

log = logging.getLogger(__name__)

#: Flat bars a re-watched key's backfill builds at most, the newest: the buckets of a long
#: idle (36,000 one-minute ones after an hour at 600x) beyond the default store capacity
#: would cost CPU to build and be evicted at once. Older ones stay a hole that recovery fills
#: from the history the simulator generates.
MAX_BACKFILL_BARS: Final = 1000
#: Shortest sleep of the timer loop, in real seconds: guarantees progress when a bar end and
#: the clock disagree by a rounding error.
_MIN_SLEEP: Final = 0.001
_SYMBOL_RE: Final = re.compile(SYMBOL_PATTERN)
#: The key classes every simulated symbol can be watched with.
KINDS: Final[frozenset[type[StreamKey]]] = frozenset({BarKey, QuoteKey, TradeKey, BookKey})


class SimulatorFeed:
    """A ``Feed`` of simulated symbols; every resolution is native, nothing is aggregated."""

    name: str = "simulator"

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        seed: int = 7,
        speed: float = 1.0,
        tick_interval: float = 0.25,
        anchor: float | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        _check_config(symbols, speed, tick_interval)
        self._seed = seed
        self._speed = speed
        self._tick_interval = tick_interval
        self._clock = clock
        self._sleep = sleep
        #: The real instant at which simulated time equals real time; speed scales from it.
        #: Workers of one cluster share it (``sim_anchor``) so their simulated clocks agree.
        self._anchor = clock() if anchor is None else anchor
        #: Per symbol, for the feed's lifetime: a re-watch continues the same walk.
        self._walks = {
            s: Walk(profile_for(s), random.Random(stable_seed(seed, "walk", s)), self.now())
            for s in symbols
        }
        #: Per symbol, for the feed's lifetime: trade ids go on across unwatch and re-watch.
        self._tapes = {s: TradeTape(w.price) for s, w in self._walks.items()}
        #: The order books of symbols with a watched book key, moved by each tick's price.
        self._books = SimBooks(seed)
        #: Insertion-ordered set (sets of str-keyed objects iterate in a salted order).
        self._watched: dict[StreamKey, None] = {}
        #: Bar keys whose builder the live stream owns: from the start of ``watch`` (its
        #: backfill awaits the sink, and a history request may run meanwhile) to ``unwatch``.
        #: A history request reads their builders and never changes them.
        self._live: set[BarKey] = set()
        #: One per key ever watched or backfilled, kept after unwatch so a re-watch continues
        #: the same bar instead of opening a second one at the same time.
        self._builders: dict[BarKey, CandleBuilder] = {}
        #: Per key, the newest bar of the last ``end=None`` backfill: paging back with an
        #: ``end`` regenerates from the same bar, so pages join up even if prices moved since.
        self._anchors: dict[BarKey, Candle] = {}
        self._history = HistoryMemo(seed)
        #: Where ``watch`` hands a re-watched key's missed bars, while started.
        self._sink: FeedSink | None = None
        #: Per idle key, the open bar a history request last anchored it at. The next watch
        #: continues it (a bootstrap's or a cluster catch-up's open bar goes on live, and bars
        #: that closed since are live news), after closing what the builder still held from
        #: before: the request itself leaves the builder alone, or a bar the live stream
        #: published open would never be closed.
        self._pending: dict[BarKey, Candle] = {}
        self._task: asyncio.Task[None] | None = None  # the timer loop, while started
        #: For ``status()``: when the last tick delivered a trade (clock time), and how many
        #: real seconds late the last tick ran (the event loop was busy).
        self._last_delivery: float | None = None
        self._lag = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SimulatorFeed:
        speed, tick = settings.sim_speed, settings.sim_tick_interval
        return cls(
            settings.sim_symbols,
            seed=settings.sim_seed,
            speed=speed,
            tick_interval=tick,
            anchor=settings.sim_anchor,
        )

    def now(self) -> Millis:
        """Simulated time, ms UTC."""
        return round((self._anchor + (self._clock() - self._anchor) * self._speed) * 1000)

    def price(self, symbol: Symbol) -> float:
        """The symbol's current price (the last trade, or its start price)."""
        return self._walk(symbol).price

    def symbols(self) -> Sequence[SymbolInfo]:
        kinds = [(s, w.profile.asset_class) for s, w in self._walks.items()]
        return [SymbolInfo(s, kind, self.name, RESOLUTIONS, KINDS) for s, kind in kinds]

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, sink: FeedSink) -> None:
        if self._task is not None:
            raise RuntimeError("SimulatorFeed.start called twice: it is already running")
        self._sink = sink
        self._task = asyncio.create_task(self._run(sink), name="simulator-feed")
        log.info(
            "simulator started: %d symbols, %g simulated seconds per second",
            len(self._walks),
            self._speed,
        )

    def status(self) -> FeedStatus:
        """For ``/metrics`` (``feeds.status``): the timer loop is the "connection"; the lag
        is how late its last tick ran, the age that of the last trade it delivered."""
        running = self._task is not None and not self._task.done()
        last = self._last_delivery
        return FeedStatus(
            connected=running,
            connections=0,
            last_message_age=None if last is None else max(self._clock() - last, 0.0),
            lag=self._lag if running else None,
            state="running" if running else "stopped",
        )

    async def close(self) -> None:
        self._sink = None
        task, self._task = self._task, None
        if task is None:
            return
        log.info("simulator stopped")
        task.cancel()
        await asyncio.wait([task])
        if not task.cancelled() and task.exception() is not None:
            log.error("simulator feed had crashed", exc_info=task.exception())

    async def watch(self, key: StreamKey) -> None:
        walk = self._walk(key.symbol)
        if type(key) not in KINDS:
            raise ValueError(f"the simulator cannot watch {key!r}: not one of its kinds")
        if isinstance(key, BarKey):
            self._check_key(key)
            builder = self._builders.setdefault(key, CandleBuilder(key.resolution))
            self._live.add(key)
            if key not in self._watched and self._sink is not None:
                # Before the key counts as watched, so no tick can publish its backlog first.
                await self._backfill(self._sink, key, builder)
        if not any(k.symbol == key.symbol for k in self._watched):
            # The walk stood still while unwatched; resume from here rather than taking one
            # step that spans the whole pause.
            walk.time = max(walk.time, self.now())
        self._watched[key] = None
        if isinstance(key, BookKey) and not self._books.running(key.symbol):
            profile = walk.profile
            changes = self._books.start(
                key.symbol, walk.price, profile.decimals, profile.size_decimals
            )
            if self._sink is not None:
                for change in changes:
                    await _guarded(self._sink.on_book(key.symbol, change), key)

    async def unwatch(self, key: StreamKey) -> None:
        self._watched.pop(key, None)
        if isinstance(key, BarKey):
            self._live.discard(key)
        if isinstance(key, BookKey) and not any(
            isinstance(k, BookKey) and k.symbol == key.symbol for k in self._watched
        ):
            self._books.stop(key.symbol)

    async def _backfill(self, sink: FeedSink, key: BarKey, builder: CandleBuilder) -> None:
        """Close every bucket that ended while ``key`` was not watched and hand the bars to
        the store (``FeedSink.on_backfill``), not to the live stream: one idle day is 1,440
        one-minute bars, which sent live closed every subscriber as a slow consumer. From a
        history request's anchor on (``_pending``) the bars are news and published as usual.
        Only the current bucket's bar, opened by the next trade, is then published."""
        now, anchor = self.now(), self._pending.pop(key, None)
        if anchor is None:
            backlog, news = builder.close_until(now, keep=MAX_BACKFILL_BARS), []
        else:
            backlog = builder.close_until(anchor.time, keep=MAX_BACKFILL_BARS)
            builder.seed(anchor)
            news = builder.close_until(now, keep=MAX_BACKFILL_BARS)
        if backlog:
            await _guarded(sink.on_backfill(key, backlog), key)
        for candle in news:
            await _guarded(sink.on_candle(key, candle), key)

    # -- history --------------------------------------------------------------------------------

    @property
    def generated_bars(self) -> int:
        """History bars generated so far (not sliced from the memo): what requests cost."""
        return self._history.generated_bars

    async def fetch_history(self, key: BarKey, end: Millis | None, limit: int) -> list[Candle]:
        """``end=None`` anchors the key at its current open bar (``_open_bar``) and generates
        backward. An ``end`` at or before that anchor regenerates from the same anchor and
        slices, so pages join up exactly; a later ``end`` re-anchors first. History stops at
        the epoch and ``MAX_HISTORY_BARS`` behind the anchor. Live state is never changed: a
        request that re-seeded a watched key's builder dropped the bar it was about to close."""
        self._check_key(key)
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        anchor = self._anchors.get(key)
        if end is None or anchor is None or end > anchor.time:
            anchor = self._anchors[key] = self._open_bar(key)
        return self._history.page(key, self._walk(key.symbol).profile, anchor, end, limit)

    def _open_bar(self, key: BarKey) -> Candle:
        """The bar a history request is anchored at. A live key's builder is only read: its
        bar when it is the current bucket's, else one made up for the bucket, which the next
        trade's bar replaces. An idle key's anchor continues its last one (or the bar it was
        left with) and waits in ``_pending`` for the next watch."""
        now, walk = self.now(), self._walk(key.symbol)
        start = bucket_start(now, key.resolution)
        builder = self._builders.get(key)
        current = None if builder is None else builder.current
        live = key in self._live or key in self._watched
        if live and current is not None and current.time == start:
            return current
        if not live:
            current = self._pending.get(key, current)
        price = walk.price
        if current is not None and current.time == start:  # continue it, at the current price
            high, low = max(current.high, price), min(current.low, price)
            bar = Candle(start, current.open, high, low, price, current.volume)
        else:
            rng = random.Random(stable_seed(self._seed, "open", key.symbol, key.resolution))
            made = bar_between(walk.profile, rng, start, walk.level, (now - start) / 1000)
            bar = Candle(start, made.open, made.high, made.low, price, made.volume)
        if not live:
            self._pending[key] = bar
        return bar

    # -- the timer loop -------------------------------------------------------------------------

    async def _run(self, sink: FeedSink) -> None:
        for key, builder in self._watched_bars():  # watched before the feed started
            await self._backfill(sink, key, builder)
        next_tick = self._clock()
        while True:
            if self._clock() >= next_tick:
                self._lag = self._clock() - next_tick
                await self._tick(sink)
                next_tick = max(next_tick + self._tick_interval, self._clock())
            await self._close_due(sink)
            wake = next_tick
            due = [b.next_close_at for k, b in self._watched_bars() if b.next_close_at is not None]
            if due:
                wake = min(wake, self._anchor + (min(due) / 1000 - self._anchor) / self._speed)
            await self._sleep(max(wake - self._clock(), _MIN_SLEEP))

    async def _tick(self, sink: FeedSink) -> None:
        """One trade per symbol that has a watched key, delivered to each of its keys: into
        its bars, as its trade (``on_event``), as the quote it moved."""
        now = self.now()
        by_symbol: dict[Symbol, list[StreamKey]] = {}
        for watched in self._watched:
            by_symbol.setdefault(watched.symbol, []).append(watched)
        for symbol, keys in by_symbol.items():
            walk = self._walks[symbol]
            price, size = walk.step(now)
            trade = self._tapes[symbol].record(now, price, size)  # numbered even if unwatched
            for key in keys:
                if isinstance(key, BarKey):
                    candles = self._builders[key].add_trade(now, price, size)
                    await self._deliver(sink, key, candles)
                elif key not in self._watched:  # unwatched while an earlier delivery awaited
                    continue
                elif isinstance(key, TradeKey):
                    await _guarded(sink.on_event(key, trade), key)
                elif isinstance(key, BookKey):
                    continue  # the symbol's book moves once per tick, below
                else:
                    await _guarded(sink.on_quote(symbol, walk.quote(now)), key)
            for change in self._books.step(symbol, price, now):
                await _guarded(sink.on_book(symbol, change), keys[0])
        if by_symbol:
            self._last_delivery = self._clock()

    async def _close_due(self, sink: FeedSink) -> None:
        now = self.now()
        for key, builder in self._watched_bars():
            await self._deliver(sink, key, builder.close_until(now))

    async def _deliver(self, sink: FeedSink, key: BarKey, candles: list[Candle]) -> None:
        for candle in candles:
            if key not in self._watched:  # unwatched while an earlier delivery awaited
                return
            await _guarded(sink.on_candle(key, candle), key)

    def _watched_bars(self) -> list[tuple[BarKey, CandleBuilder]]:
        return [(k, self._builders[k]) for k in self._watched if isinstance(k, BarKey)]

    def _walk(self, symbol: Symbol) -> Walk:
        if symbol not in self._walks:
            served = ", ".join(self._walks)
            raise ValueError(f"the simulator does not serve {symbol!r}; it serves {served}")
        return self._walks[symbol]

    def _check_key(self, key: BarKey) -> None:
        self._walk(key.symbol)
        if key.resolution not in RESOLUTIONS:
            expected = ", ".join(RESOLUTIONS)
            raise ValueError(f"unsupported resolution {key.resolution!r}; expected {expected}")


async def _guarded(delivery: Awaitable[None], key: StreamKey) -> None:
    """A failing sink must not stop the feed for every other key: log and go on."""
    try:
        await delivery
    except Exception as exc:
        log_sink_failure(log, f"an update for {key}", exc)


def _check_config(symbols: Sequence[str], speed: float, tick_interval: float) -> None:
    if isinstance(symbols, str) or not symbols:
        raise ConfigurationError(
            f"sim_symbols must list at least one symbol (e.g. BTCUSDT,EUR/USD), got {symbols!r}"
        )
    for index, symbol in enumerate(symbols):
        if not isinstance(symbol, str) or not _SYMBOL_RE.match(symbol):
            raise ConfigurationError(
                f"sim_symbols contains {symbol!r}: expected upper-case letters and digits, "
                "optionally BASE/QUOTE, like BTCUSDT, EUR/USD or AAPL"
            )
        if symbol in symbols[:index]:
            raise ConfigurationError(f"sim_symbols lists {symbol!r} twice")
    for name, value in (("sim_speed", speed), ("sim_tick_interval", tick_interval)):
        if not (math.isfinite(value) and value > 0):
            raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
