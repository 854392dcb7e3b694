"""``SimulatorFeed``: the default feed — seeded random prices, no network.

The prices come from ``feeds.sim_prices`` (a mean-reverting walk per symbol, time-reversible
so history can be generated backward to meet the live price exactly); this module runs them
in simulated time — ``sim = anchor + (real - anchor) * speed`` — with the clock and sleep
injected, so tests drive hours of trading in no real time. Two runs with the same seed and
clock produce the same data.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import time
from array import array
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from itertools import repeat
from typing import Final

from marketcast.errors import ConfigurationError
from marketcast.feeds.aggregate import CandleBuilder
from marketcast.feeds.base import FeedSink
from marketcast.feeds.sim_prices import (
    Walk,
    bar_between,
    profile_for,
    stable_seed,
)
from marketcast.feeds.status import FeedStatus
from marketcast.market import BarKey, Candle, StreamKey, SymbolInfo
from marketcast.protocol import SYMBOL_PATTERN
from marketcast.settings import Settings
from marketcast.timeframes import (
    RESOLUTIONS,
    bucket_start,
    next_bucket,
    nominal_ms,
    previous_bucket,
)
from marketcast.types import Millis, Resolution, Symbol

log = logging.getLogger(__name__)

#: Deepest a history request reaches behind its anchor, in bars: bounds the CPU one request
#: can take (generation is sequential); older bars simply do not exist in the simulator.
MAX_HISTORY_BARS: Final = 20_000
#: Generated history bars kept for reuse (``_Backward``), over all keys of one feed: 48 bytes
#: each, so at most about 4.8 MB, plus a few KB per key for its suspended generator. Room for
#: 50 keys paged 2,000 bars deep, or 5 at full depth; the least recently used key's bars are
#: dropped first. Kept as columns of plain numbers, not ``Candle``s: a quarter of the memory,
#: and nothing for the garbage collector to walk (50,000 candles add about 16 ms to each full
#: collection, the pause ``gcpolicy`` exists to avoid); rebuilding 1,000 candles for a reply
#: costs about 2 ms, against about 10 ms to generate them.
HISTORY_MEMO_BARS: Final = 100_000
#: Flat bars a re-watched key's backfill builds at most, the newest: the buckets of a long
#: idle (36,000 one-minute ones after an hour at 600x) beyond the default store capacity
#: would cost CPU to build and be evicted at once. Older ones stay a hole that recovery fills
#: from the history the simulator generates.
MAX_BACKFILL_BARS: Final = 1000
#: Shortest sleep of the timer loop, in real seconds: guarantees progress when a bar end and
#: the clock disagree by a rounding error.
_MIN_SLEEP: Final = 0.001
_SYMBOL_RE: Final = re.compile(SYMBOL_PATTERN)


class _Backward:
    """One key's history generated backward from one anchor, kept so that a repeated or a
    paging request costs a slice instead of a regeneration (the generation is sequential: bar
    ``i`` needs every bar between it and the anchor).

    Index 0 is the anchor, index ``i`` the ``i``-th bar before it. Older bars are pulled from
    ``SimulatorFeed._backward`` only as deep as a request reaches (``HISTORY_MEMO_BARS`` bounds
    what is kept). They depend on the anchor only through its open time and open price — each
    bar closes at the next one's open and the random stream is seeded per key — so a re-anchor
    within the same bucket, whose open bar only moved its close, keeps them; another open time
    or open price starts afresh.
    """

    __slots__ = ("_columns", "_source", "_times", "anchor", "exhausted")

    def __init__(self, anchor: Candle, older: Iterator[Candle]) -> None:
        self.anchor = anchor
        #: The generator of the bars before the anchor, suspended after the last one kept.
        self._source = older
        #: Open times of the bars generated so far, newest first (``_times[i]`` is bar i + 1).
        self._times = array("q")
        #: Their open, high, low, close and volume: one column each, in ``_times``'s order.
        self._columns = tuple(array("d") for _ in range(5))
        #: The generator has ended (the epoch is reached).
        self.exhausted = False

    def __len__(self) -> int:
        """Bars generated so far, not counting the anchor."""
        return len(self._times)

    def fits(self, anchor: Candle) -> bool:
        """Whether ``anchor`` leads to the same older bars as the one this was built for."""
        return anchor.time == self.anchor.time and anchor.open == self.anchor.open

    def first_before(self, end: Millis, resolution: Resolution) -> int:
        """The index of the newest bar opening before ``end`` (``MAX_HISTORY_BARS`` if none
        can), generating as deep as it takes."""
        if self.anchor.time < end:
            return 0
        if resolution != "M":
            # Fixed-length buckets: the deepest reachable bar is known without generating, so
            # a page beyond it (``to=1``) costs nothing instead of the whole depth.
            size = nominal_ms(resolution)
            deepest = max(self.anchor.time - (MAX_HISTORY_BARS - 1) * size, self.anchor.time % size)
            if end <= deepest:
                return MAX_HISTORY_BARS
        times = self._times
        while (not times or times[-1] >= end) and self.extend(1):
            pass
        return bisect_right(times, -end, key=lambda time: -time) + 1

    def extend(self, count: int) -> int:
        """Generate up to ``count`` more bars (fewer at the epoch or ``MAX_HISTORY_BARS``);
        return how many were generated."""
        room = min(count, MAX_HISTORY_BARS - 1 - len(self._times))
        opens, highs, lows, closes, volumes = self._columns
        made = 0
        while made < room and not self.exhausted:
            bar = next(self._source, None)
            if bar is None:
                self.exhausted = True
                break
            self._times.append(bar.time)
            opens.append(bar.open)
            highs.append(bar.high)
            lows.append(bar.low)
            closes.append(bar.close)
            volumes.append(bar.volume)
            made += 1
        return made

    def page(self, first: int, stop: int) -> list[Candle]:
        """Bars ``first <= i < stop`` that exist, ascending by time; generates what is missing."""
        if first >= stop:
            return []
        self.extend(stop - 1 - len(self._times))
        low, high = max(first, 1) - 1, stop - 1  # positions in the columns, newest first
        times = self._times[low:high][::-1]
        columns = [column[low:high][::-1] for column in self._columns]
        bars = list(map(Candle, times, *columns, repeat(True)))  # generated bars are closed
        if first == 0:
            bars.append(self.anchor)
        return bars


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
        #: Insertion-ordered set (sets of str-keyed objects iterate in a salted order).
        self._watched: dict[StreamKey, None] = {}
        #: One per key ever watched or backfilled, kept after unwatch so a re-watch continues
        #: the same bar instead of opening a second one at the same time.
        self._builders: dict[BarKey, CandleBuilder] = {}
        #: Per key, the newest bar of the last ``end=None`` backfill: paging back with an
        #: ``end`` regenerates from the same bar, so pages join up even if prices moved since.
        self._anchors: dict[BarKey, Candle] = {}
        #: Generated history per key for its current anchor, least recently used first; at
        #: most ``HISTORY_MEMO_BARS`` bars over all keys (``_trim_memo``).
        self._memo: OrderedDict[BarKey, _Backward] = OrderedDict()
        #: History bars generated so far (not sliced from the memo): what requests cost.
        self.generated_bars = 0
        #: Where ``watch`` hands a re-watched key's missed bars, while started.
        self._sink: FeedSink | None = None
        #: Per unwatched key, when a history request last anchored its builder at the current
        #: bar (simulated ms). A watch that follows it (the first watch after a bootstrap, a
        #: cluster worker's catch-up before it takes a key over) missed nothing while idle:
        #: bars that closed since that anchor are live news and are published as usual.
        #: Without it (a key left idle since its ``unwatch``) every missed bar is backlog.
        self._anchored_unwatched: dict[BarKey, Millis] = {}
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
        return [SymbolInfo(s, kind, self.name, RESOLUTIONS) for s, kind in kinds]

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
        if isinstance(key, BarKey):
            self._check_key(key)
            builder = self._builders.setdefault(key, CandleBuilder(key.resolution))
            if key not in self._watched and self._sink is not None:
                # Before the key counts as watched, so no tick can publish its backlog first.
                await self._backfill(self._sink, key, builder)
        if not any(k.symbol == key.symbol for k in self._watched):
            # The walk stood still while unwatched; resume from here rather than taking one
            # step that spans the whole pause.
            walk.time = max(walk.time, self.now())
        self._watched[key] = None

    async def unwatch(self, key: StreamKey) -> None:
        self._watched.pop(key, None)
        if isinstance(key, BarKey):
            self._anchored_unwatched.pop(key, None)

    async def _backfill(self, sink: FeedSink, key: BarKey, builder: CandleBuilder) -> None:
        """Close every bucket that ended while ``key`` was not watched and hand the bars to
        the store (``FeedSink.on_backfill``), not to the live stream: one idle day is 1,440
        one-minute bars, which sent live closed every subscriber as a slow consumer. Only the
        current bucket's bar, opened by the next trade, is then published."""
        missed = builder.close_until(self.now(), keep=MAX_BACKFILL_BARS)
        anchored = self._anchored_unwatched.pop(key, None)
        if anchored is None:
            backlog, news = missed, []
        else:  # only what closed before the anchor is backlog (see ``_anchored_unwatched``)
            backlog = [c for c in missed if next_bucket(c.time, key.resolution) <= anchored]
            news = missed[len(backlog) :]
        if backlog:
            await _guarded(sink.on_backfill(key, backlog), key)
        for candle in news:
            await _guarded(sink.on_candle(key, candle), key)

    # -- history --------------------------------------------------------------------------------

    async def fetch_history(self, key: BarKey, end: Millis | None, limit: int) -> list[Candle]:
        """``end=None`` anchors the key at its current open bar (the builder's, else a new one
        closing at the current price, which then seeds the builder) and generates backward.
        An ``end`` at or before that anchor regenerates from the same anchor and slices, so
        pages join up exactly; a later ``end`` re-anchors first. History stops at the epoch
        and ``MAX_HISTORY_BARS`` behind the anchor."""
        self._check_key(key)
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        anchor = self._anchors.get(key)
        if end is None or anchor is None or end > anchor.time:
            anchor = self._anchors[key] = self._open_bar(key)
        memo = self._memo.get(key)
        if memo is None or not memo.fits(anchor):
            older = self._backward(key, anchor)
            next(older)  # the anchor itself
            memo = self._memo[key] = _Backward(anchor, older)
        memo.anchor = anchor  # same older bars; the open bar's latest state
        self._memo.move_to_end(key)
        generated = len(memo)
        first = 0 if end is None else memo.first_before(end, key.resolution)
        bars = memo.page(first, min(first + limit, MAX_HISTORY_BARS))
        self.generated_bars += len(memo) - generated
        self._trim_memo()
        return bars

    def _trim_memo(self) -> None:
        """Drop the least recently used keys' history until ``HISTORY_MEMO_BARS`` holds; the
        newest key always stays (one key never exceeds the bound)."""
        total = sum(len(memo) for memo in self._memo.values())
        while total > HISTORY_MEMO_BARS and len(self._memo) > 1:
            _, dropped = self._memo.popitem(last=False)
            total -= len(dropped)

    def _open_bar(self, key: BarKey) -> Candle:
        now, walk = self.now(), self._walk(key.symbol)
        start = bucket_start(now, key.resolution)
        builder = self._builders.get(key)
        if builder is None:
            builder = self._builders[key] = CandleBuilder(key.resolution)
        live, price = builder.current, walk.price
        if live is not None and live.time == start:  # continue it, at the current price
            high, low = max(live.high, price), min(live.low, price)
            bar = Candle(start, live.open, high, low, price, live.volume)
        else:
            rng = random.Random(stable_seed(self._seed, "open", key.symbol, key.resolution))
            bar = bar_between(walk.profile, rng, start, walk.level, (now - start) / 1000)
            bar = Candle(start, bar.open, bar.high, bar.low, price, bar.volume)
        if key not in self._watched or live is None or live.time == start:
            # A watched key whose bar just ended keeps it: the next tick closes it properly.
            builder.seed(bar)
        if key not in self._watched:
            self._anchored_unwatched[key] = now
        return bar

    def _backward(self, key: BarKey, anchor: Candle) -> Iterator[Candle]:
        """``anchor``, then the bars before it, newest first; each closes at the next's open."""
        profile = self._walk(key.symbol).profile
        rng = random.Random(stable_seed(self._seed, "history", key.symbol, key.resolution))
        bar = anchor
        while True:
            yield bar
            start = previous_bucket(bar.time, key.resolution)
            if start < 0:
                return
            seconds = (bar.time - start) / 1000
            bar = bar_between(profile, rng, start, profile.level(bar.open), seconds)

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
        """One trade per symbol that has a watched key, delivered to each of its keys."""
        now = self.now()
        by_symbol: dict[Symbol, list[StreamKey]] = {}
        for watched in self._watched:
            by_symbol.setdefault(watched.symbol, []).append(watched)
        for symbol, keys in by_symbol.items():
            walk = self._walks[symbol]
            price, size = walk.step(now)
            for key in keys:
                if isinstance(key, BarKey):
                    candles = self._builders[key].add_trade(now, price, size)
                    await self._deliver(sink, key, candles)
                elif key in self._watched:
                    await _guarded(sink.on_quote(symbol, walk.quote(now)), key)
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
    except Exception:
        log.exception("sink failed to take an update for %s", key)


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
