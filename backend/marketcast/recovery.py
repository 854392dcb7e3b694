"""Recovery for a reconnecting client: every bar since a time, and whether that is all of them.

A client that lost its connection (slow consumer 4008, a deploy's 1001, a network drop)
resubscribes with ``since`` = the open time after its last closed bar and must end up with
every closed bar exactly once. The store usually holds them; where it does not, the feed is
asked:

- a **leading hole**: the store's oldest bar is newer than ``since`` (the store's capacity
  was smaller than the outage, or the store lost the key);
- an **inner hole**: two stored bars further apart than one bucket (the key was stopped for a
  while and restarted; an upstream outage the feed did not backfill) — including the stored
  bar before ``since`` and the first one after it, when ``since`` falls inside such a gap.

Filled bars are returned, not stored: the store's content stays what the ingest path wrote.
A hole the feed returns nothing for is taken as a market pause (weekends, sessions), not a
loss. Recovery is reported incomplete when the answer would exceed ``limit`` bars, when the
feed fails, when there are more holes than ``MAX_HOLE_FETCHES``, or when the feed's history
does not reach back to ``since``.

The store is asked first and the feed only where its answer could change the reply: when the
store already holds ``limit`` bars since ``since``, a hole older than all of them could only
add bars that the newest-``limit`` cut drops again, so it is not fetched (and the reply is
incomplete, as it would be after fetching). Feed history can be costly to produce (the
simulator generates it), and every fetch is tallied in a ``FetchTally`` so that a caller can
charge the request by the work it caused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import pairwise
from typing import Final

from marketcast.feeds.base import Feed
from marketcast.market import BarKey, Candle
from marketcast.store.base import CandleStore
from marketcast.timeframes import next_bucket
from marketcast.types import Millis

log = logging.getLogger("marketcast.recovery")

#: Upstream requests one recovery may make: each hole costs one, and upstream request budgets
#: (Binance's weight per minute) are shared by every client.
MAX_HOLE_FETCHES: Final = 4


@dataclass(slots=True)
class FetchTally:
    """What a request had its feed fetch, summed over every fetch it caused.

    Why a tally handed in rather than a second return value: one request may cause several
    fetches (``StreamManager.history`` bootstraps, then pages back), and ``history`` and
    ``recover`` keep the return types their callers already use. A rate limiter that charges
    a request by its cost makes one tally per request and reads it afterwards.
    """

    #: Bars the feed returned (an upstream's request weight, or the simulator's generated
    #: work), whether or not they ended up in the answer.
    bars: int = 0
    #: ``fetch_history`` calls made (each one is an upstream request for a real feed).
    calls: int = 0

    def add(self, fetched: list[Candle]) -> None:
        self.calls += 1
        self.bars += len(fetched)


@dataclass(frozen=True, slots=True)
class Hole:
    """Open times ``start <= t < end`` the store lacks (``end`` None: up to the newest)."""

    start: Millis
    end: Millis | None
    #: A leading hole is filled only if the feed reaches back to ``start``.
    leading: bool


def find_holes(
    stored: list[Candle], since: Millis, before: Candle | None, key: BarKey
) -> list[Hole]:
    """The holes in ``stored`` (ascending, all ``>= since``), oldest first; ``before``: the
    store's newest bar opening before ``since``.

    The stretch from ``since`` to ``stored[0]`` is a hole unless ``before`` ends where
    ``stored[0]`` opens. It is a leading hole (the feed must reach back to ``since``) only when
    the store has nothing older: a stored older bar proves the series existed, so a feed with
    nothing for the gap means a market pause, as for a hole between stored bars."""
    holes: list[Hole] = []
    first = stored[0].time if stored else None
    if before is None:
        if first is None or since < first:
            holes.append(Hole(since, first, leading=True))
    elif first is not None:
        start = max(since, next_bucket(before.time, key.resolution))
        if start < first:
            holes.append(Hole(start, first, leading=False))
    for older, newer in pairwise(stored):
        expected = next_bucket(older.time, key.resolution)
        if expected < newer.time:
            holes.append(Hole(expected, newer.time, leading=False))
    return holes


async def recover_bars(
    store: CandleStore,
    feed: Feed,
    key: BarKey,
    since: Millis,
    limit: int,
    *,
    tally: FetchTally | None = None,
) -> tuple[list[Candle], bool]:
    """Every bar of ``key`` opening at or after ``since`` (the newest ``limit``), and whether
    that is all of them; ``tally`` (if given) counts what the feed was asked for."""
    stored = await store.range(key, since, None, limit)
    complete = True
    # The store's newest bar older than the answer: where its own series before it ends.
    older = await store.range(key, None, stored[0].time if stored else since, 1)
    before = older[-1] if older else None
    if before is not None and before.time >= since:
        complete = False  # more bars since ``since`` than one answer may carry
        holes = find_holes(stored, stored[0].time, before, key)
    else:
        holes = find_holes(stored, since, before, key)
        if stored and len(stored) >= limit and holes and holes[0].end == stored[0].time:
            # The store already holds the newest ``limit`` bars since ``since``: anything the
            # feed has before them would be cut from the answer again, so do not ask.
            holes = holes[1:]
            complete = False
    if len(holes) > MAX_HOLE_FETCHES:
        complete = False
        holes = holes[-MAX_HOLE_FETCHES:]  # the newest matter most to a live chart
    filled: dict[Millis, Candle] = {}
    for hole in holes:
        try:
            fetched = await feed.fetch_history(key, hole.end, limit)
        except Exception as exc:
            log.warning(
                "recovery of %s/%s from the feed failed: %r", key.symbol, key.resolution, exc
            )
            complete = False
            continue
        if tally is not None:
            tally.add(fetched)
        for candle in fetched:
            if candle.time >= hole.start and (hole.end is None or candle.time < hole.end):
                filled.setdefault(candle.time, candle)
        if hole.leading and not any(c.time <= hole.start for c in fetched):
            complete = False  # the feed's history starts after ``since``
    merged = {**filled, **{c.time: c for c in stored}}  # the store wins where both have a bar
    bars = [merged[t] for t in sorted(merged)]
    if len(bars) > limit:
        bars = bars[-limit:]
        complete = False
    return bars, complete
