"""Gap-filling one candle series from a live stream and a REST backfill — pure, no I/O.

A live kline stream says nothing about what happened while it was down. Rather than guessing
from timers, ``SeriesSync`` *detects* a gap from the data itself: the stream shows a bar newer
than the open bar it last showed (so that bar's close was missed), or a bar more than one
bucket after the last closed one. Then the key is *syncing*: live candles are buffered, the
feed fetches REST rows from the first missing bar on, and ``finish_sync`` returns the missing
closed bars in order followed by the buffered live candles. The sink therefore sees an
ascending series in which each closed bar appears exactly once, whatever the reason for the
gap (a dropped connection, a rotation, ``serverShutdown``, a stall, a key watched again after
a pause).

A bar goes out closed only on the upstream's word: the stream's closed kline or a REST row the
upstream marked final (see ``binance_protocol.parse_klines``). If the REST API lags behind the
stream, the key stays syncing and the feed fetches again; a bar is never closed with the last
values seen, because those are a snapshot the upstream may still change (the published bar
would then differ from the upstream's, e.g. a high below the true high). If the upstream lists
newer bars but none at the open bar's time, it has no final version of that bar: it is dropped
(``abandoned`` counts those), not closed. ``max_attempts`` (for pollers that cannot wait)
accepts a remaining gap after that many fetches, again without closing anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from marketcast.market import Candle
from marketcast.timeframes import next_bucket
from marketcast.types import Millis, Resolution

#: Live candles one sync may hold: a bar's open versions are conflated, so this is only
#: reached by a REST API that lags hundreds of bars; past it the oldest are dropped.
MAX_BUFFER: Final = 1_000


class SeriesSync:
    """Orders one key's candles from the live stream and from REST rows."""

    def __init__(self, resolution: Resolution, *, max_attempts: int | None = None) -> None:
        self.resolution: Resolution = resolution
        #: None: keep syncing until the upstream confirms the gap's bars (a feed that can
        #: fetch again); N: accept the gap after N fetches.
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
        self.abandoned = 0

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
            self._hold(candle)
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
        candles. If a gap is still there (the REST API lags behind the stream, or has not
        confirmed the open bar yet) the key stays syncing: fetch again."""
        out: list[Candle] = []
        for row in rows:
            if self.open_bar is not None and row.time > self.open_bar.time:
                # Rows are ascending: the upstream has a newer bar and none at the open bar's
                # time, so it has no final version of it to deliver.
                self._abandon_open_bar()
            out += self._accept(row)
        buffer, self._buffer = self._buffer, []
        self.syncing = False
        for index, candle in enumerate(buffer):
            if self._gap_before(candle):
                self._attempts += 1
                if self.max_attempts is None or self._attempts < self.max_attempts:
                    self.syncing = True
                    self._buffer = buffer[index:]
                    return out
                self.gave_up += 1
                self._abandon_open_bar()
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

    def _hold(self, candle: Candle) -> None:
        """Buffer a live candle while syncing; a newer version of the same bar replaces an
        open one, so a long sync holds about one candle per bar."""
        if self._buffer and self._buffer[-1].time == candle.time and not self._buffer[-1].closed:
            self._buffer[-1] = candle
        else:
            self._buffer.append(candle)
            del self._buffer[:-MAX_BUFFER]

    def _abandon_open_bar(self) -> None:
        if self.open_bar is not None:
            self.open_bar = None
            self.abandoned += 1
