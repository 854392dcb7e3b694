"""The server's phases — starting, ready, draining, stopped — and the graceful drain.

Why a phase object of its own: three parts must agree on it at the same instant. ``/readyz``
answers 503 as soon as draining starts (so a load balancer stops sending new clients), the
WebSocket endpoint refuses new connections from then on, and the open connections are told
(``notice``), flushed and closed with 1001 — in that order, before the ASGI server tears the
sockets down. Uvicorn on its own closes every WebSocket with 1012 at once on SIGTERM and drops
whatever was queued; ``marketcast.serving`` therefore calls ``drain()`` first.

No I/O here: drainers are registered callables (the WebSocket adapter registers one), and the
phase is plain state, so this is tested without a server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from enum import Enum

log = logging.getLogger("marketcast.lifecycle")

#: Something that finishes its part of a drain: tells clients, flushes, closes.
Drainer = Callable[[], Awaitable[None]]


class Phase(Enum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"


class Lifecycle:
    """One per app; read by readiness and the endpoint, driven by lifespan and signals."""

    def __init__(self) -> None:
        self.phase = Phase.STARTING
        self._drainers: list[Drainer] = []
        #: The one drain in progress; a second caller (a second signal, then the lifespan
        #: shutdown) awaits the same drain instead of starting another.
        self._drain: asyncio.Task[None] | None = None
        #: ``cut_drain()`` was called: no drain waits any more (a second exit signal).
        self._cut = False

    def is_ready(self) -> bool:
        """Ready to take new clients: started and not draining."""
        return self.phase is Phase.READY

    @property
    def accepting(self) -> bool:
        """Whether the WebSocket endpoint admits a new connection."""
        return self.phase is Phase.READY

    @property
    def draining(self) -> bool:
        return self.phase in (Phase.DRAINING, Phase.STOPPED)

    def mark_ready(self) -> None:
        if self.phase is Phase.STARTING:
            self.phase = Phase.READY

    def mark_stopped(self) -> None:
        self.phase = Phase.STOPPED

    def add_drainer(self, drainer: Drainer) -> None:
        self._drainers.append(drainer)

    async def drain(self) -> None:
        """Stop being ready at once, then run every drainer; idempotent and shareable.

        Returns early, without an error, once ``cut_drain()`` was called: the lifespan
        shutdown awaits this too, and must go on to close the feeds and stores rather than
        wait out a notice period the operator asked to skip.
        """
        if self._drain is None:
            self._stop_accepting()
            if self._cut:
                return
            self._drain = asyncio.get_running_loop().create_task(self._run(), name="drain")
        drain = self._drain
        try:
            await asyncio.shield(drain)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            # Our own caller being cancelled is not ours to swallow; the drain being cut is.
            if drain.cancelled() and self._cut and (task is None or task.cancelling() == 0):
                return
            raise

    def cut_drain(self) -> None:
        """Give up the drain's notice and flush (a second SIGTERM or Ctrl-C): stop now.

        Cancels the drain in progress (its drainers stop waiting; the ASGI server then closes
        the remaining connections itself, with 1012) and makes any later ``drain()`` return
        at once, having only turned readiness off.
        """
        if self._cut:
            return
        self._cut = True
        self._stop_accepting()
        log.info("drain cut short: closing the remaining connections now")
        if self._drain is not None:
            self._drain.cancel()

    def _stop_accepting(self) -> None:
        if self.phase in (Phase.STARTING, Phase.READY):
            self.phase = Phase.DRAINING
            log.info("draining: readiness off, new connections refused")

    async def _run(self) -> None:
        results = await asyncio.gather(*(d() for d in self._drainers), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                log.error("a drainer failed: %r", result)
        log.info("drained")
