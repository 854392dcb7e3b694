"""Keeping the garbage collector's full collections off the fan-out.

Why: the server keeps many long-lived objects — each key's history (1,000 candles per key by
default), every connection's objects, the app itself — and CPython's full (generation-2)
collection walks all of them. Measured in the benchmark, one such collection took 190-590 ms
with 200 keys loaded, stopping every delivery meanwhile (docs/performance.md). ``gc.freeze()``
moves everything alive into a permanent generation that collections skip.

When: once after start-up (a full collection first, nothing is being served yet), and again
shortly after new topics appear — a new topic means a key's history is being loaded
(``StreamManager.ensure_history`` runs right after the hub registers the first subscriber),
and a burst of subscriptions is frozen once, ``settle`` seconds after the last. Those later
freezes only collect the young generations first: a full collection is what they avoid.

The cost, stated: frozen objects are never examined again, so an object frozen while alive
that later becomes unreachable *only through a reference cycle* (e.g. a closed connection's
task and coroutine) is not freed. That is bounded by what is alive at each freeze, and
freezes happen only at start-up and when the set of topics grows. ``MARKETCAST_GC_FREEZE=false``
turns all of it off.
"""

from __future__ import annotations

import asyncio
import gc
import logging

log = logging.getLogger("marketcast.gc")


class GcFreezer:
    """Freezes the collector's tracked objects at start-up and after new topics settle."""

    def __init__(self, *, enabled: bool, settle: float = 1.0) -> None:
        self.enabled = enabled
        #: Seconds without a new topic before freezing: one freeze per burst of subscribes,
        #: and time for the new keys' history to be loaded and stored.
        self.settle = settle
        #: The pending debounced freeze, re-armed by every new topic.
        self._timer: asyncio.TimerHandle | None = None
        #: How many freezes ran (tests, debugging).
        self.freezes = 0

    def freeze_now(self, *, full: bool = True) -> None:
        """Collect (fully, or only the young generations), then freeze what survived."""
        self._timer = None
        if not self.enabled:
            return
        gc.collect(2 if full else 1)
        gc.freeze()
        self.freezes += 1
        log.debug("gc frozen (%d objects permanent)", gc.get_freeze_count())

    def _freeze_young(self) -> None:
        self.freeze_now(full=False)

    def soon(self) -> None:
        """A new topic appeared: freeze once things have settled (no-op outside a loop)."""
        if not self.enabled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_later(self.settle, self._freeze_young)

    def cancel(self) -> None:
        """Stop a pending freeze (shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
