"""One rate-limited log line for connections the worker turned away.

Why rate-limited: the moments that turn connections away — the TCP connection cap reached,
``accept()`` failing because file descriptors ran out, clients cut for trickling their
request — come in floods (a load spike, a slowloris attack). A line per connection would
then write megabytes of log at the worst moment (asyncio's own handler logs an ERROR with a
traceback per failed ``accept()``, thousands a second), while no line at all (uvloop, whose
libuv closes such connections silently) leaves the operator guessing why clients fail.
``RefusalLog`` writes the first refusal at once and then at most one WARNING per interval,
with how many were turned away, and why, since the previous line.

No I/O and no global state: one ``RefusalLog`` per server (``marketcast.serving``), timed
with the running loop's clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("marketcast.http")

#: The message asyncio's selector loop gives its exception handler when ``accept()`` fails
#: with EMFILE, ENFILE, ENOBUFS or ENOMEM (``selector_events._accept_connection``).
ACCEPT_OUT_OF_RESOURCES = "socket.accept() out of system resource"

#: Seconds between two lines of one ``RefusalLog`` at most.
DEFAULT_INTERVAL = 10.0

ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


class RefusalLog:
    """Counts turned-away connections by reason; logs at most one line per ``interval``.

    The first refusal after a quiet interval is logged at once (the operator sees the
    problem when it starts); later ones are summed and logged by a timer when the interval
    since the previous line is over, so the last of a burst is reported too.
    """

    def __init__(self, interval: float = DEFAULT_INTERVAL, logger: logging.Logger = log) -> None:
        self.interval = interval
        self._log = logger
        #: Refusals per reason since the last line, in the order the reasons first came.
        self._counts: dict[str, int] = {}
        #: Loop time of the last line written; None before the first.
        self._last_line: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        #: Every refusal ever noted, per reason (for tests and future metrics).
        self.totals: dict[str, int] = {}

    def note(self, reason: str) -> None:
        """One connection (or ``accept()`` attempt) turned away for ``reason``: a short
        phrase naming the setting, written after the count (``3 over …``)."""
        self._counts[reason] = self._counts.get(reason, 0) + 1
        self.totals[reason] = self.totals.get(reason, 0) + 1
        if self._timer is not None:
            return  # a line is already due at the end of the interval
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._last_line is None or now - self._last_line >= self.interval:
            self._flush(loop, first=True)
        else:
            self._timer = loop.call_at(self._last_line + self.interval, self._flush, loop)

    def close(self) -> None:
        """Stop the pending timer (the server stops); what it would have said is logged now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._write("turned connections away since the last report", "")

    def _flush(self, loop: asyncio.AbstractEventLoop, first: bool = False) -> None:
        self._timer = None
        self._last_line = loop.time()
        if first:
            tail = f"; further ones are summed up here every {self.interval:g}s at most"
            self._write("turning connections away", tail)
        else:
            self._write(f"turned connections away in the last {self.interval:g}s", "")

    def _write(self, head: str, tail: str) -> None:
        if not self._counts:
            return
        reasons = ", ".join(f"{count} {reason}" for reason, count in self._counts.items())
        self._counts = {}
        self._log.warning("%s: %s%s", head, reasons, tail)


def accept_failure_handler(report: RefusalLog, fallback: ExceptionHandler) -> ExceptionHandler:
    """A loop exception handler that counts failed ``accept()`` calls into ``report``.

    Everything else goes to ``fallback`` (the handler installed before, or the loop's
    default). asyncio retries the accept a second later by itself, so nothing is lost by
    not logging the traceback: the line says what happened and which setting to look at.
    """

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> object:
        if context.get("message") == ACCEPT_OUT_OF_RESOURCES:
            exc = context.get("exception")
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else "no resources"
            report.note(
                f"accept() attempt(s) failed ({detail.lower()}: raise the file-descriptor "
                "limit, or lower MARKETCAST_MAX_TCP_CONNECTIONS)"
            )
            return None
        return fallback(loop, context)

    return handle


def install_accept_failure_log(
    loop: asyncio.AbstractEventLoop, report: RefusalLog
) -> ExceptionHandler | None:
    """Route the loop's failed-``accept()`` errors to ``report``; keep every other error.

    Returns the handler installed before (None: the loop's default), for the caller to put
    back when its server stops: the loop may outlive it (a server embedded in tests).

    Only asyncio's own loop reports these errors: uvloop (libuv) accepts and closes such
    connections itself, without telling the process (the connection cap is what keeps a
    worker clear of its file-descriptor limit there).
    """
    previous = loop.get_exception_handler()

    def default(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        loop.default_exception_handler(context)

    loop.set_exception_handler(accept_failure_handler(report, previous or default))
    return previous
