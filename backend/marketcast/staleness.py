"""Staleness: which running keys have had no upstream data for too long.

Why: when an upstream goes silent (an outage, a ban, a budget too small for the number of
keys) clients would otherwise see a chart that simply stops, indistinguishable from a quiet
market. A key is *stale* when nothing arrived for it for ``intervals`` of its bar interval,
capped at ``max_seconds`` (a daily bar would otherwise need days to look stale) — quotes use
the cap. Stale keys are listed by ``/readyz`` and the symbols endpoint, and when a bar key turns
stale its subscribers get its newest bar once more with ``stale: true`` (see docs/websocket.md);
the next update without the flag means data flows again.

Only keys this process watches upstream are tracked (``watching``/``forget``), so a worker
that receives a key through the bus from another worker never flags it.

``StalenessTracker`` is pure (time passed in); ``StalenessMonitor`` is its small timer loop.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from marketcast.market import StreamKey

log = logging.getLogger("marketcast.staleness")


class LastData:
    """When a watched key's last data arrived (or its watching began): a touch writes here.

    Why an object of its own: the tracker finds it by key once per touch, and a caller on the
    ingest path that keeps one per key anyway (``ingest_records.IngestRecord`` is one) hands it
    to ``watching`` and writes ``at`` itself, with no lookup in the tracker at all."""

    __slots__ = ("at",)

    def __init__(self, at: float = 0.0) -> None:
        self.at = at


class StalenessTracker:
    """Last-data times of watched keys, and which of them are stale."""

    def __init__(
        self,
        *,
        intervals: float,
        max_seconds: float,
        interval_of: Callable[[StreamKey], float | None] = lambda key: None,
    ) -> None:
        if intervals <= 0 or max_seconds <= 0:
            raise ValueError(
                f"staleness needs positive intervals and max_seconds, got {intervals}, "
                f"{max_seconds}"
            )
        self.intervals = intervals
        self.max_seconds = max_seconds
        #: A key's nominal seconds between updates, from its channel family
        #: (``Family.stale_after``: a bar's period); None: only ``max_seconds`` applies.
        self.interval_of = interval_of
        #: Watched key -> when its last data arrived. Why a cell rather than a float: a touch
        #: then finds the key once and writes into its cell, where a plain value took a lookup
        #: to test and a second to store; a key's hash is a Python call, and a touch runs for
        #: every key of every upstream update.
        self._seen: dict[StreamKey, LastData] = {}
        #: Watched key -> its threshold, computed once (``threshold`` asks the family).
        self._thresholds: dict[StreamKey, float] = {}
        #: How many watched keys have each threshold (a handful of values): the smallest sets
        #: the timer's pace without a walk over every key.
        self._threshold_counts: dict[float, int] = {}
        #: (when the key is due to be looked at, order, key), earliest first. Why a heap:
        #: walking every watched key at each check stalled the event loop for 45 ms at 22,000
        #: keys on a slow machine; with it a check looks only at the keys whose deadline
        #: passed, and pushes back the ones that had data since (each key at most once per
        #: threshold). Entries of forgotten or stale keys are dropped when they come up.
        self._due: list[tuple[float, int, StreamKey]] = []
        self._order = itertools.count()
        self._stale: set[StreamKey] = set()

    def threshold(self, key: StreamKey) -> float:
        """Seconds without data after which ``key`` is stale."""
        interval = self.interval_of(key)
        if interval is None:
            return self.max_seconds
        return min(self.intervals * interval, self.max_seconds)

    def watching(self, key: StreamKey, now: float, cell: LastData | None = None) -> None:
        """Start watching ``key`` from ``now``. ``cell``: where its last-data time is kept,
        for a caller that writes it itself (``LastData``); one of the tracker's otherwise.

        Writing into a cell does not bring a stale key back: while ``any_stale``, such a
        caller also calls ``touch`` (or ``touch_many``) for its keys."""
        if cell is None:
            cell = LastData()
        cell.at = now
        self._seen[key] = cell
        self._stale.discard(key)
        threshold = self._thresholds.get(key)
        if threshold is None:
            threshold = self._thresholds[key] = self.threshold(key)
            self._threshold_counts[threshold] = self._threshold_counts.get(threshold, 0) + 1
        heapq.heappush(self._due, (now + threshold, next(self._order), key))

    def forget(self, key: StreamKey) -> None:
        self._seen.pop(key, None)
        self._stale.discard(key)
        threshold = self._thresholds.pop(key, None)
        if threshold is not None:
            left = self._threshold_counts[threshold] - 1
            if left:
                self._threshold_counts[threshold] = left
            else:
                del self._threshold_counts[threshold]

    @property
    def any_stale(self) -> bool:
        """Whether some watched key is stale now: usually not."""
        return bool(self._stale)

    def touch(self, key: StreamKey, now: float) -> bool:
        """Data arrived for ``key``; True if it was stale until now."""
        seen = self._seen.get(key)
        if seen is None:
            return False
        seen.at = now
        stale = self._stale
        if stale and key in stale:  # usually empty: no second lookup per candle
            stale.discard(key)
            heapq.heappush(self._due, (now + self._thresholds[key], next(self._order), key))
            return True
        return False

    def touch_many(self, keys: Iterable[StreamKey], now: float) -> None:
        """``touch`` for each of ``keys``: one call for the keys of an upstream update (a
        kline and every resolution aggregated from it), not one per key."""
        seen, stale = self._seen, self._stale
        for key in keys:
            cell = seen.get(key)
            if cell is not None:
                cell.at = now
                if stale and key in stale:  # usually empty: no second lookup per key
                    self.touch(key, now)

    def check(self, now: float) -> list[StreamKey]:
        """Keys that turned stale since the last check."""
        due, seen_at, stale = self._due, self._seen, self._stale
        turned: list[StreamKey] = []
        while due and due[0][0] <= now:
            _, _, key = heapq.heappop(due)
            cell = seen_at.get(key)
            if cell is None or key in stale:
                continue  # forgotten, or stale already (a touch pushes it back)
            seen, threshold = cell.at, self._thresholds[key]
            if now - seen >= threshold:
                stale.add(key)
                turned.append(key)
            else:
                heapq.heappush(due, (seen + threshold, next(self._order), key))
        return turned

    def is_stale(self, key: StreamKey) -> bool:
        return key in self._stale

    def stale_keys(self) -> list[StreamKey]:
        return list(self._stale)

    def next_check_in(self) -> float:
        """How long a timer may sleep and still notice staleness within ~10% of a threshold."""
        return max(0.05, min(self._threshold_counts, default=self.max_seconds) / 10)


class StalenessMonitor:
    """Runs ``tracker.check`` on a timer and reports keys that turn stale."""

    def __init__(
        self,
        tracker: StalenessTracker,
        on_stale: Callable[[StreamKey], Awaitable[None]],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.tracker = tracker
        self._on_stale = on_stale
        self.clock = clock
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="staleness-monitor")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])

    async def check_now(self) -> None:
        for key in self.tracker.check(self.clock()):
            log.warning(
                "no upstream data for %s for %.0f s: marked stale", key, self.tracker.threshold(key)
            )
            try:
                await self._on_stale(key)
            except Exception:
                log.exception("could not publish the stale flag of %s", key)

    async def _run(self) -> None:
        while True:
            await self._sleep(self.tracker.next_check_in())
            await self.check_now()
