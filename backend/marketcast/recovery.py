"""Recovery for a reconnecting client: every bar since a time, and whether that is all of them.

A client that lost its connection (slow consumer 4008, a deploy's 1001, a network drop)
resubscribes with ``since`` = the open time after its last closed bar and must end up with
every closed bar exactly once. The store usually holds them; where it does not, the feed is
asked:

- a **leading hole**: the store's oldest bar is newer than ``since`` (the store's capacity
  was smaller than the outage, or the store lost the key);
- an **inner hole**: two stored bars further apart than one bucket (the key was stopped for a
  while and restarted; an upstream outage the feed did not backfill).

Filled bars are returned, not stored: the store's content stays what the ingest path wrote.
A hole the feed returns nothing for is taken as a market pause (weekends, sessions), not a
loss. Recovery is reported incomplete when the answer would exceed ``limit`` bars, when the
feed fails, when there are more holes than ``MAX_HOLE_FETCHES``, or when the feed's history
does not reach back to ``since``.
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


@dataclass(frozen=True, slots=True)
class Hole:
    """Open times ``start <= t < end`` the store lacks (``end`` None: up to the newest)."""

    start: Millis
    end: Millis | None
    #: A leading hole is filled only if the feed reaches back to ``start``.
    leading: bool


def find_holes(stored: list[Candle], since: Millis, covered: bool, key: BarKey) -> list[Hole]:
    """The holes in ``stored`` (ascending, all ``>= since``); ``covered``: the store also holds
    a bar at or before ``since``."""
    holes: list[Hole] = []
    if not covered:
        holes.append(Hole(since, stored[0].time if stored else None, leading=True))
    for before, after in pairwise(stored):
        expected = next_bucket(before.time, key.resolution)
        if expected < after.time:
            holes.append(Hole(expected, after.time, leading=False))
    return holes


async def recover_bars(
    store: CandleStore, feed: Feed, key: BarKey, since: Millis, limit: int
) -> tuple[list[Candle], bool]:
    """Every bar of ``key`` opening at or after ``since`` (the newest ``limit``), and whether
    that is all of them."""
    stored = await store.range(key, since, None, limit)
    complete = True
    if len(stored) == limit and await store.range(key, since, stored[0].time, 1):
        complete = False  # more bars since ``since`` than one answer may carry
        holes_after = stored[0].time
    else:
        holes_after = since
    covered = not complete or bool(await store.range(key, None, since + 1, 1))
    holes = find_holes(stored, holes_after, covered, key)
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
