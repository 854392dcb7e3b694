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
import logging
import time
from collections.abc import Awaitable, Callable

from marketcast.market import StreamKey

log = logging.getLogger("marketcast.staleness")


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
        #: Watched key -> time of its last data (or of the start of watching).
        self._seen: dict[StreamKey, float] = {}
        self._stale: set[StreamKey] = set()

    def threshold(self, key: StreamKey) -> float:
        """Seconds without data after which ``key`` is stale."""
        interval = self.interval_of(key)
        if interval is None:
            return self.max_seconds
        return min(self.intervals * interval, self.max_seconds)

    def watching(self, key: StreamKey, now: float) -> None:
        self._seen[key] = now
        self._stale.discard(key)

    def forget(self, key: StreamKey) -> None:
        self._seen.pop(key, None)
        self._stale.discard(key)

    def touch(self, key: StreamKey, now: float) -> bool:
        """Data arrived for ``key``; True if it was stale until now."""
        seen = self._seen
        if key not in seen:
            return False
        seen[key] = now
        stale = self._stale
        if stale and key in stale:  # usually empty: no second lookup per candle
            stale.discard(key)
            return True
        return False

    def check(self, now: float) -> list[StreamKey]:
        """Keys that turned stale since the last check."""
        turned = [
            key
            for key, seen in self._seen.items()
            if key not in self._stale and now - seen >= self.threshold(key)
        ]
        self._stale.update(turned)
        return turned

    def is_stale(self, key: StreamKey) -> bool:
        return key in self._stale

    def stale_keys(self) -> list[StreamKey]:
        return list(self._stale)

    def next_check_in(self) -> float:
        """How long a timer may sleep and still notice staleness within ~10% of a threshold."""
        thresholds = [self.threshold(key) for key in self._seen] or [self.max_seconds]
        return max(0.05, min(thresholds) / 10)


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
