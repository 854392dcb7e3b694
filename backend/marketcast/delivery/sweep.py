"""``SlowConsumerSweep``: once a second, close the clients that are too far behind (4008).

Why a sweep and not a check per write: the fan-out writes each frame to each client that keeps
up straight from ``Connection.deliver``, and must stay at an integer add per delivery there
(the bytes it wrote). Measuring what still waits for a client costs a system call
(``DirectSink.unsent``), and being a second late to notice a client that is seconds behind
changes nothing. So one timer per app (built by ``create_app``, started and stopped with the
app's lifespan) visits, once a second, only the connections that wrote since the previous
sweep — each registers itself in ``FanoutStats.wrote`` with its first write of a period — or
that still have bytes not known to be taken (``delivery.lag.LagTracker``). Idle connections, the
vast majority, cost nothing.

Why a sweep is cut into steps (``SWEEP_STEP`` connections each, the next one queued with
``call_soon``): with thousands of clients that all wrote, one pass is thousands of Python
steps and, every few seconds, as many system calls — 20-50 ms on a slow machine, all at once,
and every update that arrived meanwhile waited for it (the ingest scenario's p99 with 5,000
clients was that stall). In steps, frames are delivered between them, so a pass delays any
one update by one step at most.

Why the sweep keeps the trackers rather than the connections: a tracker exists only while a
connection has something unconfirmed, so an idle connection carries no marks, and a
connection that closes is forgotten at the next sweep (it is ``stopped``) without telling
anybody.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from time import perf_counter
from typing import Final

from marketcast.delivery.lag import LagTracker, SlowConsumerLimits, Swept
from marketcast.delivery.stats import FanoutStats
from marketcast.errors import CloseCode

log = logging.getLogger("marketcast.ws")

#: Seconds between two sweeps: the resolution of the lag bound.
SWEEP_INTERVAL: Final = 1.0
#: Connections looked at in one step of a sweep (see the module docstring): ~1-2 ms each.
SWEEP_STEP: Final = 256


class SlowConsumerSweep:
    """The per-app timer that measures lagging connections and closes slow consumers."""

    def __init__(
        self,
        limits: SlowConsumerLimits,
        stats: FanoutStats,
        *,
        clock: Callable[[], float] = perf_counter,
        interval: float = SWEEP_INTERVAL,
    ) -> None:
        self.limits = limits
        self._stats = stats
        #: ``perf_counter`` by default: the clock ``Frame.created`` is read from.
        self._clock = clock
        self._interval = interval
        #: Connections with bytes not yet known to be taken (or frames queued).
        self._trackers: dict[Swept, LagTracker] = {}
        self._timer: asyncio.TimerHandle | None = None
        #: The pass under way, one step per ``call_soon``, and its next step's handle.
        self._steps: Iterator[None] | None = None
        self._next_step: asyncio.Handle | None = None

    @property
    def tracked(self) -> int:
        """Connections the next sweep will look at besides the ones that write meanwhile."""
        return len(self._trackers)

    def start(self) -> None:
        """Begin sweeping (from the app's lifespan, on its event loop)."""
        if self._timer is None:
            # Connections register only while a sweep runs: without one the set would only
            # grow (an app served without its lifespan).
            self._stats.wrote = set()
            self._schedule()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._next_step is not None:
            self._next_step.cancel()
            self._next_step = None
        self._steps = None
        self._stats.wrote = None
        self._trackers.clear()

    def _schedule(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self._interval, self._tick)

    def _tick(self) -> None:
        self._schedule()  # first: a failing sweep must not end the sweeping
        if self._steps is not None:
            self._step_all()  # a pass still under way after a whole interval: finish it now
        self._steps = self._pass(self._clock())
        self._step()

    def _step(self) -> None:
        """One step of the pass under way; the next is queued behind what waits meanwhile."""
        self._next_step = None
        steps = self._steps
        if steps is None:
            return
        try:
            next(steps)
        except StopIteration:
            self._steps = None
            return
        except Exception:
            self._steps = None
            log.exception("slow-consumer sweep failed")
            return
        self._next_step = asyncio.get_running_loop().call_soon(self._step)

    def _step_all(self) -> None:
        if self._next_step is not None:
            self._next_step.cancel()
            self._next_step = None
        steps, self._steps = self._steps, None
        try:
            for _ in steps or ():
                pass
        except Exception:
            log.exception("slow-consumer sweep failed")

    def sweep(self, now: float) -> None:
        """One whole pass at once (see ``_pass``)."""
        for _ in self._pass(now):
            pass

    def _pass(self, now: float) -> Iterator[None]:
        """Fold in what each connection wrote, measure the ones that are due, close the ones
        beyond a bound, and forget the ones that have nothing unconfirmed; pausing after
        every ``SWEEP_STEP`` connections."""
        trackers = self._trackers
        fresh = self._stats.wrote
        if fresh:
            self._stats.wrote = set()
            for conn in fresh:
                if conn not in trackers:
                    trackers[conn] = LagTracker()
        limits = self.limits
        for looked, (conn, tracker) in enumerate(list(trackers.items()), 1):
            if not looked % SWEEP_STEP:
                yield
            if conn.stopped:
                trackers.pop(conn, None)
                continue
            tracker.wrote(conn.take_written(), now)
            queued = len(conn.outbox) > 0
            if tracker.due(now, limits, queued=queued):
                verdict = tracker.measure(conn.backlog(), now, limits)
                if verdict is not None:
                    trackers.pop(conn, None)
                    self._stats.slow_consumer(verdict.limit)
                    conn.terminate(CloseCode.SLOW_CONSUMER, verdict.reason)
                    continue
            if tracker.settled and not queued:
                trackers.pop(conn, None)
