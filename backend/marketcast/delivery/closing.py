"""Closing a client that may still be reading: wait while it makes progress, then abort.

Why: the close frame goes out behind everything the transport and the kernel already hold
for the client — up to megabytes for a slow consumer. The plain close (``close_timeout``,
2 s, then a TCP abort) cuts a client that reads slowly but steadily before it reaches its
close frame, so it never learns why it was dropped (4008) and sees an abnormal closure.
``close_patiently`` keeps the connection while the client keeps taking bytes — at least
once per ``close_timeout`` — until it has taken the close frame itself, for at most
``patience`` seconds; only a client that stopped reading, or is still too far from its
close frame when the patience runs out, is aborted. A client that reads nothing is cut as
soon as before.

Why an abort with a TCP reset rather than leaving it to uvicorn: uvicorn closes the socket
gracefully some seconds after its close frame, and the kernel then keeps delivering the old
backlog to a client that is too far behind to catch up — it would read stale data for minutes
more instead of reconnecting. So the close holds uvicorn's own timer back
(``extend_close_timeout``), decides itself, and gives up with a reset (``DirectSink.reset``),
which also drops what the kernel still holds.

Progress is the number of bytes still waiting (``DirectSink.unsent``) getting smaller; it is
looked at every ``POLL`` seconds, only while a close is under way.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from starlette.websockets import WebSocket

from marketcast.delivery.direct import DirectSink
from marketcast.delivery.lag import format_size

log = logging.getLogger("marketcast.ws")

#: Seconds between two looks at a closing connection's progress (at most).
POLL: Final = 0.25


class _Progress:
    """Whether a closing connection still takes bytes often enough, and soon enough."""

    def __init__(self, unsent: int, now: float, *, stall: float, patience: float) -> None:
        #: The fewest bytes seen waiting, and when: taking any byte is progress.
        self._best = unsent
        self._since = now
        self._start = now
        #: Seconds without a byte taken after which the client counts as not reading.
        self._stall = stall
        self._patience = patience

    def stuck(self, unsent: int, now: float) -> str | None:
        """Why to give up now, or None to keep waiting."""
        if unsent < self._best:
            self._best, self._since = unsent, now
        if now - self._since >= self._stall:
            return f"nothing taken for {self._stall:.1f}s"
        if now - self._start >= self._patience:
            return f"{format_size(unsent)} still ahead of it after {self._patience:.1f}s"
        return None


async def close_patiently(
    ws: WebSocket,
    sink: DirectSink,
    code: int,
    reason: str,
    *,
    close_timeout: float,
    patience: float,
    uid: str,
) -> None:
    """Send the close frame and wait until the client has taken it, while it reads."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    progress = _Progress(sink.unsent(), start, stall=close_timeout, patience=patience)
    poll = min(POLL, close_timeout)
    sink.extend_close_timeout(patience + close_timeout)
    # Waits inside uvicorn while the transport is over its high-water mark.
    sending = loop.create_task(ws.close(code, reason))
    try:
        while True:
            done, _ = await asyncio.wait((sending,), timeout=poll)
            if done:
                sending.result()
                break
            why = progress.stuck(sink.unsent(), loop.time())
            if why is not None:
                _abort(sink, uid, code, why)
                return
    finally:
        if not sending.done():
            sending.cancel()
    # The close frame is in the transport: wait until the client has taken it (its answer
    # makes uvicorn close the connection, which ends this too).
    while sink.alive():
        unsent = sink.unsent()
        if not unsent:
            return
        why = progress.stuck(unsent, loop.time())
        if why is not None:
            _abort(sink, uid, code, why)
            return
        await asyncio.sleep(poll)


def _abort(sink: DirectSink, uid: str, code: int, why: str) -> None:
    sink.reset()
    log.warning("connection %s: close frame (%d) not taken (%s), aborting TCP", uid, code, why)
