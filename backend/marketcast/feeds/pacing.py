"""Pacing for upstream clients — pure, no I/O, no clock of its own.

Two small tools that every upstream client needs and that must be testable without waiting:

- ``SlidingWindow`` answers "may I send now, and if not, how long until I may?" for a limit of
  the form *at most N events in any window of W seconds*. It is used for Binance's 5 control
  messages per second and for Twelve Data's request budget. A token bucket was the first idea,
  but a bucket of size N refilling at N/W lets 2N events through in one window (a full bucket
  followed by a refill), and both providers count per window; the sliding log never exceeds N
  in *any* window, which is the property the fakes check.
- ``Backoff`` is full-jitter exponential backoff (a delay drawn uniformly from
  ``[0, min(cap, base * 2**attempt)]``), so that many clients cut off together do not come
  back together. The random source is injected so tests are deterministic. For connections,
  ``after_connection`` escalates only while attempts fail or connections die before any data:
  an upstream that drops working connections now and then (Binance does, ~10 times a minute
  at worst) must cost about ``base`` each time, not a delay that keeps growing.

Callers pass the current time in (seconds, any monotonic origin); nothing here sleeps.
``UpstreamError`` is how paced clients report a failed request.
"""

from __future__ import annotations

import math
import random
from collections import deque

from marketcast.errors import FeedError


class UpstreamError(FeedError):
    """A failed upstream request, in one line naming what to check; ``permanent`` when
    retrying cannot help (an unknown symbol)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class SlidingWindow:
    """At most ``limit`` events in any ``window`` seconds."""

    def __init__(self, limit: int, window: float) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1 event, got {limit}")
        if not (math.isfinite(window) and window > 0):
            raise ValueError(f"window must be a positive number of seconds, got {window!r}")
        self.limit = limit
        self.window = window
        #: Times of the last ``limit`` events, oldest first; older ones no longer matter.
        self._times: deque[float] = deque(maxlen=limit)

    def wait_time(self, now: float) -> float:
        """Seconds until one more event fits (0.0: it fits now)."""
        if len(self._times) < self.limit:
            return 0.0
        return max(0.0, self._times[0] + self.window - now)

    def record(self, now: float) -> None:
        """Count one event at ``now``; call only when ``wait_time(now)`` is 0."""
        if self._times and now < self._times[-1]:
            now = self._times[-1]  # a clock that stepped back must not open extra room
        self._times.append(now)

    def try_acquire(self, now: float) -> bool:
        """Record an event if it fits now; tell whether it did."""
        if self.wait_time(now) > 0:
            return False
        self.record(now)
        return True

    def block_until(self, until: float) -> None:
        """Treat the window as full until ``until`` (an upstream said we are over its limit)."""
        for _ in range(self.limit):
            self._times.append(until - self.window)


class Backoff:
    """Full-jitter exponential backoff between ``base`` and ``cap`` seconds."""

    def __init__(self, base: float, cap: float, *, rng: random.Random | None = None) -> None:
        if not (math.isfinite(base) and base > 0):
            raise ValueError(f"backoff base must be a positive number of seconds, got {base!r}")
        if not (math.isfinite(cap) and cap >= base):
            raise ValueError(f"backoff cap must be >= base ({base}), got {cap!r}")
        self.base = base
        self.cap = cap
        self._rng = rng or random.Random()
        #: Failures since the last success; the ceiling doubles with each one.
        self.attempt = 0

    def ceiling(self) -> float:
        """The largest delay the next ``next_delay`` may return."""
        # 2**attempt overflows float for huge attempts; the cap is reached long before.
        return min(self.cap, self.base * 2.0 ** min(self.attempt, 62))

    def next_delay(self) -> float:
        """A delay for the next retry, and one more failure counted."""
        delay = self._rng.uniform(0.0, self.ceiling())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """A success: the next failure starts from ``base`` again."""
        self.attempt = 0

    def after_connection(self, *, delivered: bool) -> float:
        """The delay before reconnecting once a connection (or an attempt) has ended.

        ``delivered``: the connection carried data, so the upstream was working and the drop
        says nothing about it being down; the delay starts from ``base`` again. Otherwise (the
        attempt failed, or the connection died before any data) the ceiling keeps doubling:
        reconnecting at once to an upstream that refuses or kills every connection would
        only spend the connection-attempt budget."""
        if delivered:
            self.reset()
        return self.next_delay()
