"""Fan-out counters kept as plain integers, for ``/metrics`` to read at scrape time.

Why not prometheus-client objects on the hot path: a ``Counter.inc()`` takes a lock and a
label lookup; done for every frame to every client it would cost more than queueing the frame.
Instead each connection counts in plain ``int`` attributes (``frames_sent``, its outbox's
``conflated``), the metrics collector (``marketcast.metrics``) sums them when scraped, and a
connection's totals are folded in here when it closes, so the counters never lose what closed
connections did.

Why the latency histogram is sampled: reading the clock for every frame to every client is
measurable at fan-out rates; one frame in ``sample_every`` per connection is timed instead,
from the moment its ``Frame`` was built (``wire.Frame.created``) to the moment the writer
handed it to the socket. Every connection samples the same way, so slow clients are
represented as often as fast ones.

No I/O and no locks: everything here is touched from the event loop only.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from marketcast.delivery.lag import Limit, Swept

#: Upper bounds (seconds) of the latency buckets: 100 µs (an idle server) to 5 s (a client
#: about to be closed as a slow consumer).
LATENCY_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
#: ``close_code`` of a connection the server did not close: the client (or the network) did.
PEER_CLOSED: Final = "peer"
#: The close code of a slow consumer (``errors.CloseCode.SLOW_CONSUMER``).
_SLOW_CONSUMER: Final = 4008


class LatencyHistogram:
    """Cumulative-bucket histogram over fixed bounds, as Prometheus exposes one."""

    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError(f"histogram bounds must be distinct and ascending, got {bounds}")
        self.bounds = tuple(bounds)
        #: Per bucket (the last one is +Inf), not cumulative: ``observe`` stays one increment.
        self.counts = [0] * (len(self.bounds) + 1)
        self.count = 0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.count += 1
        self.total += seconds

    def buckets(self) -> list[tuple[str, int]]:
        """``(le, cumulative count)`` pairs, ending with ``+Inf``."""
        running, result = 0, []
        for bound, count in zip((*map(repr, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            result.append((bound, running))
        return result


class OutboxCounters(Protocol):
    conflated: int

    def __len__(self) -> int: ...


class CountedConnection(Protocol):
    """What ``FanoutStats`` reads from a connection (``delivery.connection.Connection``)."""

    frames_sent: int
    close_code: int | None

    @property
    def outbox(self) -> OutboxCounters: ...

    def layer_close_code(self) -> int | None:
        """The close code the WebSocket layer sent on its own (``delivery.direct``), if any."""
        ...


class FanoutStats:
    """Per-app totals of connections that closed, plus the shared latency histogram."""

    def __init__(self, sample_every: int = 16) -> None:
        if sample_every < 1:
            raise ValueError(f"sample_every must be >= 1, got {sample_every}")
        #: Each connection times one frame in this many.
        self.sample_every = sample_every
        self.latency = LatencyHistogram()
        #: Connections closed, by close code (``PEER_CLOSED`` when the client closed).
        self.closed: dict[str, int] = {}
        #: Frames written by connections that have closed.
        self.sent = 0
        #: Open-bar updates replaced in queues of connections that have closed.
        self.conflated = 0
        #: Frames still queued when a connection closed, by reason: ``slow_consumer`` (closed
        #: because its queue overflowed) or ``disconnected`` (any other close).
        self.unsent: dict[str, int] = {}
        #: Frames by write path, all connections (``delivery.connection``): written straight to the
        #: transport from ``deliver``; written by a writer task in one joined transport write;
        #: sent through ASGI ``send_text`` (no transport reachable, or permessage-deflate).
        #: Counted here, not per connection, so a test or a debugger sees which path runs.
        self.direct_frames = 0
        self.batched_frames = 0
        self.asgi_frames = 0
        #: Slow consumers closed (4008), by the bound they crossed (``delivery.lag.Limit``): the
        #: outbox overflowed, too far behind, too much waiting in total.
        self.slow_consumers: dict[str, int] = {}
        #: Overflows a reset answered instead of a close (``Connection._refused``): a slow
        #: client's queued order-book diffs replaced by the whole book.
        self.resets = 0
        #: Connections that wrote since the last slow-consumer sweep (``delivery.sweep``): each adds
        #: itself with its first write of a sweep period, and the sweep takes the set whole.
        #: Kept here because this is the one per-app object every connection is handed; None
        #: while no sweep runs, so nothing accumulates.
        self.wrote: set[Swept] | None = None

    def connection_closed(self, conn: CountedConnection) -> None:
        """Fold a closed connection's counters in; call once, after its writer stopped.

        A connection the server did not close itself may still have been closed by the
        WebSocket layer (1011 when a keepalive ping went unanswered, 1009/1007 for a frame the
        parser refused, 1012 on a shutdown without drain): it counts under that code, and only
        what the client or the network closed counts as ``peer``.
        """
        sent_code = conn.close_code
        if sent_code is None:
            sent_code = conn.layer_close_code()
        code = PEER_CLOSED if sent_code is None else str(sent_code)
        self.closed[code] = self.closed.get(code, 0) + 1
        self.sent += conn.frames_sent
        self.conflated += conn.outbox.conflated
        self.dropped(conn.close_code, len(conn.outbox))

    def dropped(self, close_code: int | None, frames: int) -> None:
        """Count ``frames`` that were still queued when a connection closed with ``close_code``."""
        if frames:
            reason = "slow_consumer" if close_code == _SLOW_CONSUMER else "disconnected"
            self.unsent[reason] = self.unsent.get(reason, 0) + frames

    def turned_away(self, code: int) -> None:
        """A connection accepted and closed at once (1013: at the connection cap, draining)."""
        key = str(code)
        self.closed[key] = self.closed.get(key, 0) + 1

    def slow_consumer(self, limit: Limit) -> None:
        """A slow consumer is being closed because it crossed ``limit``."""
        self.slow_consumers[limit] = self.slow_consumers.get(limit, 0) + 1
