"""A bounded, conflating per-client queue — pure data structure, no I/O.

Why a queue per client at all: the publisher must never await a client's socket, or one
stalled reader delays everybody. Each update is appended here (O(1)) and the client's writer
task drains it (``delivery.connection`` starts one only while something is queued).

Why a plain list, created on demand, and no event: an idle connection's outbox is empty, and
there are thousands of them; an empty ``deque`` costs ~600 bytes and an ``asyncio.Event``
another ~700 (its waiter deque), an empty list 56 and an empty dict 64. The queue is only ever
appended to and taken whole, so a list does everything a deque did here; it and the conflation
index exist only while something is queued (``take`` drops them), and the owner starts its
writer when it queues a frame instead of having one sleep on the outbox.

Why conflation: a client that falls a little behind does not need every intermediate state of
a bar that is still open — only its latest. A newer update of the same open bar (same topic,
same bar open time) replaces the queued one in place. Closed bars are final and are never
replaced or dropped; replies and errors (no topic) are never conflated either.

Why a hard limit: when even conflation cannot keep the queue under ``max_messages`` /
``max_bytes``, ``put`` returns False and the owner closes the client as a slow consumer
(close code 4008). Memory per client is therefore bounded by the limits (plus one batch in
flight in the writer). Sizes are counted in characters of the JSON text, which equals bytes
for the ASCII frames marketcast writes.

Why ``reset``: some topics' updates are final and ordered yet need not all be sent, because
one frame can stand for all of them: an order book's diffs are replaced by the whole book at
the newest ``seq`` (a reset). When such a topic overflows the queue, its queued updates give
way to that one frame instead of the client being closed. The updates it covers can still be
on their way here (a snapshot hold releasing older diffs in the same call), so the reset's
order stays a floor for the topic until the queue is next taken whole.
"""

from __future__ import annotations

from marketcast.types import Topic
from marketcast.wire import Frame


class _Slot:
    """A queue cell; conflation swaps the frame inside it without moving it."""

    __slots__ = ("frame",)

    def __init__(self, frame: Frame) -> None:
        self.frame = frame


class Outbox:
    """Bounded FIFO of frames with latest-wins conflation for open-bar updates."""

    # Why slots: one outbox per connection; without a __dict__ an idle one is ~140 B smaller.
    __slots__ = (
        "_bytes",
        "_floors",
        "_queue",
        "_replaceable",
        "conflate",
        "conflated",
        "max_bytes",
        "max_messages",
    )

    def __init__(self, max_messages: int, max_bytes: int, *, conflate: bool = True) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.conflate = conflate
        #: The queued frames, oldest first; None while empty.
        self._queue: list[_Slot] | None = None
        #: The queued, still-replaceable update per topic (the newest open bar or quote); None
        #: until one is queued.
        self._replaceable: dict[Topic, _Slot] | None = None
        self._bytes = 0
        self.conflated = 0
        #: Per topic reset in this queue (``reset``), the reset's order: a later update at or
        #: before it is in the reset already. None until a reset; ``take`` drops it.
        self._floors: dict[Topic, int] | None = None

    def __len__(self) -> int:
        queue = self._queue
        return 0 if queue is None else len(queue)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def put(self, frame: Frame) -> bool:
        """Queue ``frame``; False when the client is over its limits (a slow consumer)."""
        topic = frame.topic
        floors = self._floors
        if floors is not None and topic in floors:
            order = frame.order
            if order is not None and order <= floors[topic]:
                return True  # the topic's queued reset holds it
        replaceable = self._replaceable
        if self.conflate and topic is not None and replaceable:
            slot = replaceable.get(topic)
            if slot is not None and slot.frame.order == frame.order:
                self._bytes += len(frame.text) - len(slot.frame.text)
                slot.frame = frame
                self.conflated += 1
                if frame.final:
                    del replaceable[topic]
                return True
        queue = self._queue
        if queue and (
            len(queue) >= self.max_messages or self._bytes + len(frame.text) > self.max_bytes
        ):
            # An empty queue takes any frame: a large snapshot reply alone is not a sign of a
            # slow consumer, and refusing it would make that reply impossible to receive.
            return False
        slot = _Slot(frame)
        if queue is None:
            self._queue = [slot]
        else:
            queue.append(slot)
        self._bytes += len(frame.text)
        if topic is not None:
            if frame.conflatable:
                if replaceable is None:
                    self._replaceable = {topic: slot}
                else:
                    replaceable[topic] = slot
            elif replaceable:
                # A closed bar must not be overtaken by a later replacement of an older slot.
                replaceable.pop(topic, None)
        return True

    def oldest(self) -> Frame | None:
        """The frame at the head of the queue (its ``created`` dates the client's lag)."""
        return self._queue[0].frame if self._queue else None

    def take(self) -> list[Frame]:
        """Everything queued, oldest first; the queue is empty afterwards."""
        queue = self._queue
        if queue is None:
            return []
        frames = [slot.frame for slot in queue]
        self._queue = None
        self._replaceable = None
        self._floors = None
        self._bytes = 0
        return frames

    def reset(self, frame: Frame) -> bool:
        """Replace every queued update of ``frame``'s topic by ``frame``, which holds them all
        (see the module docstring), at the end of the queue; False if even then the queue is
        over its limits. ``frame`` must have a topic and an order."""
        topic, order = frame.topic, frame.order
        if topic is None or order is None:
            raise ValueError(f"a reset needs a topic and an order, got {frame!r}")
        queue = self._queue
        if queue:
            kept = [slot for slot in queue if slot.frame.topic != topic]
            self._bytes -= sum(len(slot.frame.text) for slot in queue if slot.frame.topic == topic)
            self._queue = kept or None
        if self._replaceable:
            self._replaceable.pop(topic, None)
        if not self.put(frame):
            return False
        if self._floors is None:
            self._floors = {topic: order}
        else:
            self._floors[topic] = order
        return True
