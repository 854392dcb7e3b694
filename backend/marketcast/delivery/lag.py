"""How far behind a client is — pure arithmetic over marks; no I/O, the time is passed in.

Why the outbox alone does not tell: a frame leaves the outbox as soon as the transport takes
it, and the kernel's send buffer on a default socket grows to megabytes. A client that reads
one frame a second on a few dozen busy topics keeps its outbox empty for as long as the kernel
can absorb its backlog — minutes — while it falls further and further behind. What waits for
it is the outbox *plus* the transport's buffer *plus* the kernel's send queue, and the
question that matters is how old the oldest of those bytes is.

Why marks: the server knows how many bytes it handed to the transport (``written``, counted
on every write path) and, when it looks, how many of them still wait (transport buffer plus
kernel send queue, ``Backlog.unsent``); the difference is what the client has taken. To turn
"byte N not taken yet" into seconds, the sweep (``delivery.sweep``) records a mark
``(bytes written so far, now)`` each time it finds more bytes written. Byte N was written no
later than the time of the first mark whose total reaches past N, so ``now`` minus that time
is a lower bound of how long it has waited: the client is *at least* that far behind (never
more than one sweep interval less than the truth). Marks of bytes already taken are dropped;
marks are therefore only kept while something is unconfirmed, and at most ``MAX_MARKS``
(thinned by dropping every other one, which keeps the bound a lower bound, only coarser).
Frames still in the outbox carry their own age (``Frame.created``).

Why a tracker need not measure at every sweep: measuring costs a system call per connection.
While everything not yet confirmed as taken would be under half of both bounds even if none of
it had been taken, nothing can be over either bound, so ``LagTracker.due`` says to skip it.
A connection that keeps up is thus measured once every ``max_lag / 2`` seconds, not every
second; one that falls behind is measured at every sweep.

Why the byte bound needs two measurements in a row: a snapshot burst to a healthy client on a
slow link can be over the bound for a moment; what is still over it a sweep later is not
being drained in time.
"""

from __future__ import annotations

from collections.abc import Sized
from dataclasses import dataclass
from typing import Final, Literal, Protocol

#: Marks kept per connection at most (see the module docstring).
MAX_MARKS: Final = 64
#: Seconds between measurements of a connection that keeps up, when the lag bound is off.
IDLE_RECHECK: Final = 5.0

#: Which bound a slow consumer crossed: its outbox overflowed (``queue``, ``delivery.connection``),
#: its oldest waiting byte is too old (``lag``), or too much waits in total (``waiting``).
Limit = Literal["queue", "lag", "waiting"]
LIMITS: Final[tuple[Limit, ...]] = ("queue", "lag", "waiting")


@dataclass(frozen=True, slots=True)
class SlowConsumerLimits:
    """The bounds beyond which a client is closed as a slow consumer (4008)."""

    #: Seconds behind (age of the oldest byte it has not taken) before it is closed; 0: off.
    max_lag: float
    #: Bytes waiting in total (outbox, transport buffer, kernel send queue) before it is closed.
    max_bytes: int

    @property
    def recheck(self) -> float:
        """Seconds after which unconfirmed bytes are measured even when far from any bound."""
        return self.max_lag / 2 if self.max_lag > 0 else IDLE_RECHECK


@dataclass(frozen=True, slots=True)
class Backlog:
    """What waits for one client right now."""

    #: Bytes in its outbox (not handed to the transport yet).
    queued_bytes: int
    #: When the oldest frame in its outbox was built (``Frame.created``); None: empty.
    oldest_queued: float | None
    #: Bytes handed to the transport that the client has not taken (transport buffer plus
    #: kernel send queue); None when the socket cannot be seen (then only the outbox counts).
    unsent: int | None


@dataclass(frozen=True, slots=True)
class Verdict:
    """A slow consumer: which bound it crossed, and the close reason to send and log."""

    limit: Limit
    reason: str


class LagTracker:
    """Marks and confirmed progress of one connection that has written something."""

    __slots__ = ("_marks", "_over", "taken", "written")

    def __init__(self) -> None:
        #: Bytes written since this tracker began (the connection's count, folded in).
        self.written = 0
        #: Of those, bytes the client is known to have taken (as of the last measurement).
        self.taken = 0
        #: ``(written, time)``, ascending in both: by ``time``, ``written`` bytes were out.
        self._marks: list[tuple[int, float]] = []
        #: The last measurement found more than ``max_bytes`` waiting.
        self._over = False

    @property
    def settled(self) -> bool:
        """Everything written is known to be taken: nothing to watch until it writes again."""
        return self.taken >= self.written

    def wrote(self, nbytes: int, now: float) -> None:
        """Fold in ``nbytes`` written since the previous sweep, seen at ``now``."""
        if nbytes <= 0:
            return
        self.written += nbytes
        marks = self._marks
        marks.append((self.written, now))
        if len(marks) > MAX_MARKS:
            del marks[1:-1:2]

    def due(self, now: float, limits: SlowConsumerLimits, *, queued: bool) -> bool:
        """Whether this connection must be measured now (see the module docstring)."""
        if queued:
            return True
        unconfirmed = self.written - self.taken
        if unconfirmed <= 0:
            return False
        if unconfirmed * 2 > limits.max_bytes:
            return True
        return bool(self._marks) and now - self._marks[0][1] >= limits.recheck

    def lag(self, now: float, oldest_queued: float | None = None) -> float:
        """Seconds the oldest byte not taken has waited, at least (0: nothing waits)."""
        lag = now - self._marks[0][1] if self._marks else 0.0
        if oldest_queued is not None:
            lag = max(lag, now - oldest_queued)
        return max(lag, 0.0)

    def measure(self, backlog: Backlog, now: float, limits: SlowConsumerLimits) -> Verdict | None:
        """Take a measurement; a ``Verdict`` when the client is beyond a bound."""
        if backlog.unsent is None:
            # The socket cannot be seen: whatever the transport took counts as taken, and
            # only the outbox can show a slow consumer.
            self.taken = self.written
        else:
            # The server's own frames (pings, the close) share the socket, so this may count
            # a few bytes too many as unsent: never more taken than is certain.
            self.taken = min(self.written, max(self.taken, self.written - backlog.unsent))
        marks = self._marks
        confirmed = 0
        while confirmed < len(marks) and marks[confirmed][0] <= self.taken:
            confirmed += 1
        del marks[:confirmed]
        lag = self.lag(now, backlog.oldest_queued)
        if limits.max_lag > 0 and lag > limits.max_lag:
            return Verdict("lag", f"slow consumer: {lag:.1f} s behind")
        waiting = backlog.queued_bytes + (backlog.unsent or 0)
        over = waiting > limits.max_bytes
        was_over, self._over = self._over, over
        if over and was_over:
            return Verdict("waiting", f"slow consumer: {format_size(waiting)} waiting")
        return None


def format_size(nbytes: int) -> str:
    """``1.6 MB``, ``420 KB``, ``900 B``: sizes in close reasons and logs (decimal units)."""
    if nbytes >= 1_000_000:
        return f"{nbytes / 1_000_000:.1f} MB"
    if nbytes >= 1_000:
        return f"{nbytes / 1_000:.0f} KB"
    return f"{nbytes} B"


class Swept(Protocol):
    """What the sweep reads from a connection (``delivery.connection.Connection``)."""

    uid: str

    @property
    def stopped(self) -> bool:
        """Closing or closed: nothing more will be written."""
        ...

    @property
    def outbox(self) -> Sized: ...

    def take_written(self) -> int:
        """Bytes handed to the transport since the previous call."""
        ...

    def backlog(self) -> Backlog: ...

    def terminate(self, code: int, reason: str) -> None: ...
