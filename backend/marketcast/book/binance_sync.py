"""Binance's spot diff-depth stream joined to a REST snapshot — pure, no I/O, no asyncio.

Why a state machine that answers in values: one lost depth event corrupts a book for good
unless the gap is noticed, so the rule that notices it must be checkable alone, against
faults injected on purpose (``sim_book.FaultyDepthStream``). A thin feed adapter owns the
socket and the REST calls: it feeds ``on_event`` each ``<symbol>@depth@100ms`` event and
``on_snapshot`` each ``GET /api/v3/depth`` answer, and acts on what comes back: ``Applied``
(publish the diff), ``Reset`` (publish the whole book: a (re)join), ``NeedSnapshot`` (fetch
one), ``Buffered`` or ``Dropped`` (nothing to do).

Relied on, from Binance's spot documentation (WebSocket Streams, "Diff. Depth Stream" and
"How to manage a local order book correctly"; REST, "Order book"):

- an event is ``{"e":"depthUpdate","E":ms,"s":SYMBOL,"U":first,"u":final,"b":[[p,q]..],
  "a":[[p,q]..]}``; ``U``/``u`` are the first and final update ids it covers;
- a snapshot is ``{"lastUpdateId":N,"bids":[[p,q]..],"asks":[[p,q]..]}`` (``limit`` up to
  5000, weight 50 for 501-1000 levels);
- buffer the stream's events and note the ``U`` of the first; fetch a snapshot; if its
  ``lastUpdateId`` is too old for the first buffered event, fetch again; drop every buffered
  event with ``u <= lastUpdateId``; the first one kept must have ``U <= lastUpdateId + 1 <= u``;
  after it, each event's ``U`` is the previous ``u + 1``, otherwise events were missed and the
  book is rebuilt from a new snapshot;
- quantities are absolute, 0 removes the level, and removing a level the book does not hold
  is normal.

"Too old" is ``lastUpdateId + 1 < U`` of the first buffered event: no buffered event can then
straddle ``lastUpdateId + 1``. (The documentation's wording, ``lastUpdateId < U``, also
refetches when ``lastUpdateId == U - 1``, a snapshot the first event continues exactly.)

Decisions of this module on top of the documentation:

- The book's ``seq`` is the ``u`` of the last event applied, or the snapshot's
  ``lastUpdateId``; every ``Applied`` carries ``prev_seq`` (the seq before it) and ``seq``.
- Buffered events are kept in id order and repeats dropped: ids, not arrival, order them, so
  two events swapped in transit still join. Once joined, the rule is strict: an event whose
  ``U`` is not ``seq + 1`` (or, first after a snapshot, does not straddle it) resyncs.
- An event that reveals a gap is kept for the next join (it is a valid event; the missing
  ones are before it), and events arriving while a snapshot is awaited are buffered too.
- A reconnect (``on_reconnect``) discards the book and the buffer: the old connection's
  events end before the drop and cannot be continued by the new one's.
- An event ``U..u`` that overlaps the book (``U <= seq < u`` after the first) cannot come
  from a sound stream; it is treated like a gap.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from marketcast.book.levels import BookFormatError, Level, OrderBook, Row, parse_levels

#: Events kept while the book is not joined. Why a bound: a snapshot that never comes (REST
#: down, rate-limited, banned) must not let a symbol's buffer grow for as long as the outage
#: lasts (100s of symbols x 10 events/s). 1,000 events are 100 s of ``@depth@100ms``: a
#: snapshot fetched after that is newer than the oldest of them anyway, so past the bound the
#: oldest are dropped. That can make an answer still in flight too old to join, and suggests
#: the request was lost, so the first overflow since the last request asks for a new one.
MAX_BUFFER: Final = 1_000
#: ``GET /api/v3/depth`` ``limit`` to ask for (weight 50); levels beyond it are learnt only
#: when they change.
SNAPSHOT_LIMIT: Final = 1_000


def depth_stream(symbol: str) -> str:
    """The diff-depth stream name for ``symbol`` (Binance wants it lower-case)."""
    return f"{symbol.lower()}@depth@100ms"


# -- parsed frames --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DepthUpdate:
    """One ``depthUpdate`` event: ``first_id``/``final_id`` are Binance's ``U``/``u``."""

    symbol: str
    event_time: int
    first_id: int
    final_id: int
    bids: list[Level]
    asks: list[Level]


@dataclass(frozen=True, slots=True)
class DepthSnapshot:
    """A ``GET /api/v3/depth`` answer: the book as of update id ``last_update_id``."""

    last_update_id: int
    bids: list[Level]
    asks: list[Level]


def parse_depth_update(data: object) -> DepthUpdate:
    """A ``depthUpdate`` payload (raw, or the ``data`` of a combined-stream frame)."""
    if not isinstance(data, Mapping):
        raise BookFormatError(f"expected a depthUpdate object, got {data!r:.120}")
    kind = data.get("e")
    if kind != "depthUpdate":
        raise BookFormatError(f"expected field 'e' to be 'depthUpdate', got {kind!r}")
    first, final = _int(data, "U"), _int(data, "u")
    if first > final:
        raise BookFormatError(
            f"expected first update id U <= final update id u, got U={first}, u={final}"
        )
    return DepthUpdate(
        _str(data, "s"),
        _int(data, "E"),
        first,
        final,
        parse_levels(data.get("b"), "b"),
        parse_levels(data.get("a"), "a"),
    )


def parse_depth_snapshot(body: object) -> DepthSnapshot:
    """The body of ``GET /api/v3/depth``."""
    if not isinstance(body, Mapping):
        raise BookFormatError(
            f"expected a depth snapshot object with lastUpdateId, got {body!r:.120}"
        )
    return DepthSnapshot(
        _int(body, "lastUpdateId"),
        parse_levels(body.get("bids"), "bids"),
        parse_levels(body.get("asks"), "asks"),
    )


# -- outcomes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Applied:
    """An event applied to the joined book: publish it as a diff ``prev_seq`` -> ``seq``."""

    prev_seq: int
    seq: int
    bids: list[Level]
    asks: list[Level]
    #: The event's ``E`` (ms, the upstream's clock).
    time: int


@dataclass(frozen=True, slots=True)
class Reset:
    """The book is joined (again) at ``seq``: every level, best first. Diff-mode clients get it
    as a fresh snapshot flagged as a reset; buffered events after the snapshot are in it."""

    seq: int
    bids: list[Row]
    asks: list[Row]


@dataclass(frozen=True, slots=True)
class NeedSnapshot:
    """The book is not joined: fetch a snapshot now and pass it to ``on_snapshot`` (a fetch
    already in flight may answer too old; its answer says so with another ``NeedSnapshot``)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Buffered:
    """An event kept for the next join; a snapshot has already been asked for."""

    size: int


@dataclass(frozen=True, slots=True)
class Dropped:
    """An event (or a snapshot) with nothing to add: stale, a repeat, or not needed."""

    reason: str


EventOutcome = Applied | NeedSnapshot | Buffered | Dropped
SnapshotOutcome = Reset | NeedSnapshot | Dropped


class BinanceBookSync:
    """One symbol's book, joined to the diff stream by Binance's procedure."""

    def __init__(self, symbol: str, *, max_buffer: int = MAX_BUFFER) -> None:
        if max_buffer < 1:
            raise ValueError(f"max_buffer must be at least 1, got {max_buffer}")
        self.symbol = symbol
        self.max_buffer = max_buffer
        #: The book; valid only while ``joined``.
        self.book = OrderBook()
        self._joined = False
        #: The next event is the first after a snapshot: it must straddle ``seq + 1``.
        self._straddle = False
        #: Events awaiting a join, ascending ``final_id``, and their ``final_id``s (bisect).
        self._buffer: list[DepthUpdate] = []
        self._finals: list[int] = []
        #: A ``NeedSnapshot`` was returned and no snapshot has come since.
        self._asked = False
        #: A buffer overflow has asked for a snapshot since the last one came (one such request
        #: per answer: every event past the bound overflows again).
        self._overflow_asked = False
        #: For logs and tests.
        self.resyncs = 0
        self.dropped = 0
        self.overflows = 0

    @property
    def joined(self) -> bool:
        return self._joined

    @property
    def seq(self) -> int | None:
        """The joined book's update id; None while not joined."""
        return self.book.seq if self._joined else None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    # -- inputs -----------------------------------------------------------------------------

    def on_event(self, event: DepthUpdate) -> EventOutcome:
        """One diff-depth event, in the order it arrived."""
        if event.symbol != self.symbol:
            raise BookFormatError(
                f"expected a depthUpdate of {self.symbol}, got one of {event.symbol!r}"
            )
        if self._joined:
            outcome = self._apply(event)
            if outcome is not None:
                return outcome
            reason = self._gap_reason(event)
            self._unjoin()
            self._keep(event)
            return self._ask(reason)
        kept = self._keep(event)
        if kept is None:
            self.dropped += 1
            return Dropped(f"repeat of buffered event U={event.first_id} u={event.final_id}")
        if kept and not self._overflow_asked:
            self._overflow_asked = True
            return self._ask(
                f"buffer full ({self.max_buffer} events): the oldest dropped, so a snapshot "
                "asked for before may be too old, or lost"
            )
        if not self._asked:
            return self._ask(f"no book yet: first buffered event U={self._buffer[0].first_id}")
        return Buffered(len(self._buffer))

    def on_snapshot(self, snapshot: DepthSnapshot) -> SnapshotOutcome:
        """A REST snapshot, fetched after a ``NeedSnapshot``."""
        self._asked = self._overflow_asked = False
        last = snapshot.last_update_id
        if self._joined:
            return Dropped(f"already joined at seq {self.book.seq}; snapshot {last} not needed")
        buffer = self._buffer
        if buffer and last + 1 < buffer[0].first_id:
            return self._ask(
                f"snapshot too old: lastUpdateId={last}, first buffered event U="
                f"{buffer[0].first_id}"
            )
        stale = bisect_right(self._finals, last)  # events with u <= lastUpdateId
        pending = buffer[stale:]
        self._buffer, self._finals = [], []
        self.book.replace(snapshot.bids, snapshot.asks, last)
        self._joined, self._straddle = True, True
        for index, event in enumerate(pending):
            if self._apply(event) is None:
                reason = "buffered events do not continue the snapshot: " + self._gap_reason(event)
                self._joined = self._straddle = False  # never published: not a resync
                self._buffer = pending[index:]
                self._finals = [e.final_id for e in self._buffer]
                return self._ask(reason)
        bids, asks = self.book.snapshot()
        return Reset(self.book.seq, bids, asks)

    def on_reconnect(self) -> None:
        """The stream's connection was lost: the book and the buffer are of no further use.
        The next event asks for a snapshot."""
        self._unjoin()
        self._buffer, self._finals = [], []
        self._asked = self._overflow_asked = False

    # -- rules ------------------------------------------------------------------------------

    def _apply(self, event: DepthUpdate) -> Applied | Dropped | None:
        """Binance's update procedure on the joined book; None: a gap (resync)."""
        seq = self.book.seq
        if event.final_id <= seq:
            self.dropped += 1
            return Dropped(f"stale: u={event.final_id} <= book seq {seq}")
        if event.first_id != seq + 1 and not (self._straddle and event.first_id <= seq + 1):
            return None
        self.book.apply(event.bids, event.asks)
        self.book.seq = event.final_id
        self._straddle = False
        return Applied(seq, event.final_id, event.bids, event.asks, event.event_time)

    def _gap_reason(self, event: DepthUpdate) -> str:
        seq = self.book.seq
        if event.first_id > seq + 1:
            return (
                f"gap: expected U={seq + 1}, got U={event.first_id} u={event.final_id} "
                f"({event.first_id - seq - 1} updates missed)"
            )
        return f"overlap: expected U={seq + 1}, got U={event.first_id} u={event.final_id}"

    def _unjoin(self) -> None:
        if self._joined:
            self.resyncs += 1
        self._joined = self._straddle = False

    def _ask(self, reason: str) -> NeedSnapshot:
        self._asked = True
        return NeedSnapshot(reason)

    def _keep(self, event: DepthUpdate) -> bool | None:
        """Buffer ``event`` in id order. None: a repeat of a buffered one, not kept; True: kept,
        and the buffer overflowed (its oldest event dropped); False: kept."""
        index = bisect_left(self._finals, event.final_id)
        if index < len(self._finals) and self._finals[index] == event.final_id:
            return None
        self._buffer.insert(index, event)
        self._finals.insert(index, event.final_id)
        if len(self._buffer) <= self.max_buffer:
            return False
        del self._buffer[0], self._finals[0]
        self.overflows += 1
        return True


def _int(obj: Mapping[str, Any], field: str) -> int:
    value = obj.get(field)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BookFormatError(f"expected field {field!r} to be an integer, got {value!r}")
    return value


def _str(obj: Mapping[str, Any], field: str) -> str:
    value = obj.get(field)
    if not isinstance(value, str):
        raise BookFormatError(f"expected field {field!r} to be a string, got {value!r}")
    return value
