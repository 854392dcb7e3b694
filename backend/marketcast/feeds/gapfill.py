"""Gap-filling one candle series from a live stream and a REST backfill — pure, no I/O.

A live kline stream says nothing about what happened while it was down. Rather than guessing
from timers, ``SeriesSync`` *detects* a gap from the data itself: the stream shows a bar newer
than the open bar it last showed (so that bar's close was missed), or a bar more than one
bucket after the last closed one. Then the key is *syncing*: live candles are buffered, the
feed fetches REST rows from the first missing bar on, and ``finish_sync`` returns the missing
closed bars in order followed by the buffered live candles. The sink therefore sees an
ascending series in which each closed bar appears exactly once, whatever the reason for the
gap (a dropped connection, a rotation, ``serverShutdown``, a stall, a key watched again after
a pause). If the REST API keeps lacking the bars (it lags, or the data does not exist) the sync
gives up after ``max_attempts`` and closes the pending open bar with the last values seen, so a
series never stays stuck; ``gave_up`` counts those cases for the logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Final

from marketcast.market import Candle
from marketcast.timeframes import next_bucket
from marketcast.types import Millis, Resolution

#: Fetch attempts that may leave a gap before the sync accepts it.
DEFAULT_MAX_ATTEMPTS: Final = 3


class SeriesSync:
    """Orders one key's candles from the live stream and from REST rows."""

    def __init__(self, resolution: Resolution, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> None:
        self.resolution: Resolution = resolution
        self.max_attempts = max_attempts
        #: Open time of the newest bar delivered closed; nothing at or before it goes out again.
        self.last_closed: Millis | None = None
        #: The newest bar delivered while still open (its close is still owed to the sink).
        self.open_bar: Candle | None = None
        #: While True, live candles wait in ``_buffer`` for the REST rows of the gap.
        self.syncing = False
        self._buffer: list[Candle] = []
        self._attempts = 0
        self.gave_up = 0

    # -- state from history ---------------------------------------------------------------------

    def seed(self, candles: Sequence[Candle]) -> None:
        """Take the state of a backfill (ascending) that the sink already has (e.g. the store's
        bootstrap), without emitting anything. Older than the current state: ignored."""
        for candle in candles:
            self._accept(candle)

    # -- live data ------------------------------------------------------------------------------

    def on_live(self, candle: Candle) -> list[Candle]:
        """A candle from the live stream; returns what to deliver now (maybe nothing)."""
        if self.syncing:
            self._buffer.append(candle)
            return []
        if self._gap_before(candle):
            self.syncing = True
            self._buffer = [candle]
            return []
        return self._accept(candle)

    def sync_from(self) -> Millis | None:
        """Where the REST fetch of a sync starts: the first bar not delivered closed."""
        if self.last_closed is not None:
            return next_bucket(self.last_closed, self.resolution)
        if self.open_bar is not None:
            return self.open_bar.time
        return None

    def sync_until(self) -> Millis | None:
        """The oldest buffered live bar: once the REST rows reach it, the gap is covered."""
        return self._buffer[0].time if self._buffer else None

    def finish_sync(self, rows: Sequence[Candle]) -> list[Candle]:
        """Apply REST rows (ascending, the newest maybe open), then the buffered live
        candles. If a gap is still there the key stays syncing (fetch again), up to
        ``max_attempts``; then the gap is accepted."""
        out: list[Candle] = []
        for row in rows:
            if self.open_bar is not None and row.time > self.open_bar.time:
                # Rows are ascending: a newer row means the one for our open bar is missing,
                # so close it with the last values seen rather than never.
                out += self._close_open_bar()
            out += self._accept(row)
        buffer, self._buffer = self._buffer, []
        self.syncing = False
        for index, candle in enumerate(buffer):
            if self._gap_before(candle):
                self._attempts += 1
                if self._attempts < self.max_attempts:
                    self.syncing = True
                    self._buffer = buffer[index:]
                    return out
                self.gave_up += 1
                out += self._close_open_bar()
            out += self._accept(candle)
        self._attempts = 0
        return out

    # -- rules ----------------------------------------------------------------------------------

    def _gap_before(self, candle: Candle) -> bool:
        if self.last_closed is not None and candle.time <= self.last_closed:
            return False  # a repeat: dropped by _accept, no gap
        if self.open_bar is not None:
            return candle.time > self.open_bar.time
        if self.last_closed is None:
            return False  # nothing known yet: the first candle starts the series
        return candle.time > next_bucket(self.last_closed, self.resolution)

    def _accept(self, candle: Candle) -> list[Candle]:
        if self.last_closed is not None and candle.time <= self.last_closed:
            return []
        if self.open_bar is not None and candle.time < self.open_bar.time:
            return []  # an older version arriving late
        if candle.closed:
            self.last_closed = candle.time
            self.open_bar = None
        else:
            self.open_bar = candle
        return [candle]

    def _close_open_bar(self) -> list[Candle]:
        bar = self.open_bar
        if bar is None:
            return []
        return self._accept(replace(bar, closed=True))
