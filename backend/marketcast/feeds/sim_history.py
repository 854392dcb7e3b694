"""The simulator's generated history: bars before an anchor, memoised per key.

Why a module of its own: ``SimulatorFeed`` (``feeds.simulator``) decides *where* a key's
history is anchored, which is about live state; this is what is generated behind an anchor
and how it is kept so that paging and repeated requests are cheap. Nothing here reads the
clock or touches a live bar: it gets an anchor and answers from it.

Generation is backward and sequential (``sim_prices.bar_between``): bar ``i`` closes at bar
``i - 1``'s open, so reaching bar ``i`` means generating every bar between it and the anchor.
"""

from __future__ import annotations

import random
from array import array
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterator
from itertools import repeat
from typing import Final

from marketcast.feeds.sim_prices import Profile, bar_between, stable_seed
from marketcast.market import BarKey, Candle
from marketcast.timeframes import nominal_ms, previous_bucket
from marketcast.types import Millis, Resolution

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


class _Backward:
    """One key's history generated backward from one anchor, kept so that a repeated or a
    paging request costs a slice instead of a regeneration (the generation is sequential: bar
    ``i`` needs every bar between it and the anchor).

    Index 0 is the anchor, index ``i`` the ``i``-th bar before it. Older bars are pulled from
    ``HistoryMemo._older_bars`` only as deep as a request reaches (``HISTORY_MEMO_BARS``
    bounds what is kept). They depend on the anchor only through its open time and open price
    — each bar closes at the next one's open and the random stream is seeded per key — so a
    re-anchor within the same bucket, whose open bar only moved its close, keeps them; another
    open time or open price starts afresh.
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


class HistoryMemo:
    """Every key's ``_Backward`` for its current anchor, least recently used first, at most
    ``HISTORY_MEMO_BARS`` bars over all keys."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._memo: OrderedDict[BarKey, _Backward] = OrderedDict()
        #: History bars generated so far (not sliced from the memo): what requests cost.
        self.generated_bars = 0

    def page(
        self, key: BarKey, profile: Profile, anchor: Candle, end: Millis | None, limit: int
    ) -> list[Candle]:
        """The newest ``limit`` bars opening before ``end`` (``None``: up to and including
        ``anchor``), ascending; bars older than ``MAX_HISTORY_BARS`` behind it do not exist."""
        memo = self._memo.get(key)
        if memo is None or not memo.fits(anchor):
            memo = self._memo[key] = _Backward(anchor, self._older_bars(key, profile, anchor))
        memo.anchor = anchor  # same older bars; the open bar's latest state
        self._memo.move_to_end(key)
        generated = len(memo)
        first = 0 if end is None else memo.first_before(end, key.resolution)
        bars = memo.page(first, min(first + limit, MAX_HISTORY_BARS))
        self.generated_bars += len(memo) - generated
        self._trim()
        return bars

    def _trim(self) -> None:
        """Drop the least recently used keys' history until ``HISTORY_MEMO_BARS`` holds; the
        newest key always stays (one key never exceeds the bound)."""
        total = sum(len(memo) for memo in self._memo.values())
        while total > HISTORY_MEMO_BARS and len(self._memo) > 1:
            _, dropped = self._memo.popitem(last=False)
            total -= len(dropped)

    def _older_bars(self, key: BarKey, profile: Profile, anchor: Candle) -> Iterator[Candle]:
        """The bars before ``anchor``, newest first, until the epoch; each closes at the next
        one's open. Seeded per key, so they depend on the anchor's open time and price only."""
        rng = random.Random(stable_seed(self._seed, "history", key.symbol, key.resolution))
        bar = anchor
        while True:
            start = previous_bucket(bar.time, key.resolution)
            if start < 0:
                return
            seconds = (bar.time - start) / 1000
            bar = bar_between(profile, rng, start, profile.level(bar.open), seconds)
            yield bar
