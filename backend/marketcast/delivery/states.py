"""A connection's lifecycle as one state and a transition table (``delivery.connection``)."""

from __future__ import annotations

from enum import Enum
from typing import Final, Literal


class ConnectionState(Enum):
    """Where a ``Connection`` is in its life, as far as writing to it goes.

    ``QUIET`` and ``WRITING`` alternate for as long as the client keeps up; the other four
    are the ways out, and ``CLOSED`` is the end of every one of them (``TRANSITIONS``).
    """

    #: Nothing queued or in flight, no writer: ``deliver`` may write a frame directly (or
    #: collect it under a write delay). Why: a direct write is safe only when there is
    #: nothing of this connection it could overtake.
    QUIET = "quiet"
    #: A writer task owns the queue: every frame goes behind what is queued, so nothing
    #: overtakes. Why a state of its own: it is what keeps ``deliver`` off the direct path
    #: until the writer has found the queue empty and the transport writable.
    WRITING = "writing"
    #: A planned close is flushing (``close_after_flush``): updates are dropped, and the
    #: writer, if any, sends what is queued and ends without waiting for the buffer. Why:
    #: the notice promised that what was queued is not lost, not what comes after it.
    SEALED = "sealed"
    #: The server decided to close this client (``terminate``; ``close_code`` holds the
    #: code): the queue is freed, updates are dropped, and the close task is about to stop
    #: the writer. Why apart from ``CLOSED``: until then a writer may still be running.
    CLOSING = "closing"
    #: The writer was stopped for good (``stop_writer``, or a write failed) while no close
    #: was under way: nothing is written any more, but updates still queue — they wait for
    #: the close, or overflow into a 4008. Why apart from ``CLOSED``: the overflow is what
    #: bounds a connection whose socket died under its writer before the reader noticed.
    STOPPED = "stopped"
    #: Stopped and closing (or sealed): nothing is written and updates are dropped. Final.
    CLOSED = "closed"


# Module-level names, so the hot path compares against a global instead of reading a class
# attribute (``self._state is QUIET`` in ``deliver``).
QUIET: Final = ConnectionState.QUIET
WRITING: Final = ConnectionState.WRITING
SEALED: Final = ConnectionState.SEALED
CLOSING: Final = ConnectionState.CLOSING
STOPPED: Final = ConnectionState.STOPPED
CLOSED: Final = ConnectionState.CLOSED

#: What moves a connection from one state to another:
#:   queue  a frame was queued while ``QUIET`` (or a write-delay batch met a full transport):
#:          a writer starts;
#:   drain  the writer found the queue empty (and, unless a close is under way, the transport
#:          writable) and ended;
#:   seal   ``close_after_flush`` began;
#:   close  ``terminate`` decided the close (once: it sets ``close_code``);
#:   stop   ``stop_writer`` ran, or the writer was cancelled or failed.
Event = Literal["queue", "drain", "seal", "close", "stop"]

#: state -> event -> next state. An event missing from a row cannot happen in that state
#: (``Connection._move`` raises); one that maps a state to itself changes nothing there (a
#: second seal, a writer ending after the close began, a stop after a stop).
TRANSITIONS: Final[dict[ConnectionState, dict[Event, ConnectionState]]] = {
    QUIET: {"queue": WRITING, "seal": SEALED, "close": CLOSING, "stop": STOPPED},
    WRITING: {"drain": QUIET, "seal": SEALED, "close": CLOSING, "stop": STOPPED},
    SEALED: {"drain": SEALED, "seal": SEALED, "close": CLOSING, "stop": CLOSED},
    CLOSING: {"drain": CLOSING, "seal": CLOSING, "stop": CLOSED},
    # "drain" here: only a writer that outlived its cancellation; nothing changes.
    STOPPED: {"drain": STOPPED, "seal": CLOSED, "close": CLOSED, "stop": STOPPED},
    CLOSED: {"drain": CLOSED, "seal": CLOSED, "close": CLOSED, "stop": CLOSED},
}
