"""An optional ``status()`` a feed may offer, for ``/metrics`` and dashboards.

Why optional (read with ``getattr``) instead of part of the ``Feed`` protocol: feeds that do
not implement it yet still work, and nothing else depends on it. A feed adds a
``status(self) -> FeedStatus`` method; it must be cheap (called at every scrape) and must not
do I/O: it reports what the feed already knows from its own receive path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

log = logging.getLogger("marketcast.feeds")


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """How one feed's upstream is doing, right now."""

    #: The feed is able to deliver: its upstream connection(s) are up (the simulator: its
    #: timer loop runs).
    connected: bool
    #: Open network connections to the upstream (0 for the simulator, which has none).
    connections: int = 0
    #: Seconds since the last message from the upstream; None before the first one.
    last_message_age: float | None = None
    #: Seconds by which the newest data arrived late: its arrival minus the upstream's own
    #: time for it (an event's time, or the ``Date`` of a polled answer), so clock skew is
    #: included, and 0 when the upstream's clock is ahead (the simulator: how late its last
    #: tick ran). None when unknown.
    lag: float | None = None
    #: A short state name, e.g. ``running``, ``connected``, ``reconnecting``, ``polling``,
    #: ``paused``, ``idle``.
    state: str = ""


@runtime_checkable
class ReportsStatus(Protocol):
    def status(self) -> FeedStatus: ...


def feed_status(feed: object) -> FeedStatus | None:
    """``feed.status()`` if the feed has one and it answers; None otherwise.

    A failing ``status()`` must not break ``/metrics``: it is logged (DEBUG) and skipped.
    """
    if not isinstance(feed, ReportsStatus):
        return None
    try:
        status = feed.status()
    except Exception as exc:
        log.debug("status() of feed %r failed: %r", getattr(feed, "name", feed), exc)
        return None
    return status if isinstance(status, FeedStatus) else None
