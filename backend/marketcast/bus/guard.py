"""``ClosedBarGuard``: the receiving side's "each closed bar once, bars in order" rule.

``StreamManager.on_candle`` drops repeated closed bars per key on the publishing worker. A
worker that *receives* a topic can still see a bar twice: a resync from the store after a
bus reconnect overlaps what arrived before the drop, and after a takeover the new owner's
catch-up overlaps the old owner's last updates. So every frame a worker hands its hub passes
through one guard, which keeps a per-topic *floor*: the oldest bar open time that may still
be delivered. A closed bar at ``t`` raises it to ``t + 1`` (that bar is final and was
delivered); an open bar at ``t`` raises it to ``t`` (older bars are history now, but ``t``
itself will still close). Anything below the floor is dropped.

The floor is also where a resync starts reading the store: every bar at or after it is one
this worker's subscribers may not have.
"""

from __future__ import annotations

from collections.abc import Sequence

from marketcast.types import Millis, Topic
from marketcast.wire import Frame


class ClosedBarGuard:
    """Per-topic floor of deliverable bar times; frames without a bar time always pass."""

    def __init__(self) -> None:
        self._floors: dict[Topic, Millis] = {}
        #: Frames refused (repeats and stale updates), for tests and debugging.
        self.dropped = 0

    def admit(self, frame: Frame) -> bool:
        """Whether ``frame`` may be delivered; raises the topic's floor if so."""
        return bool(self.admit_many((frame,)))

    def admit_many(self, frames: Sequence[Frame]) -> list[Frame]:
        """The frames of ``frames`` that ``admit`` lets through, in order, each raising its
        topic's floor before the next is judged. One loop, not a call per frame: a busy
        worker's own batches pass here, eleven frames per upstream kline."""
        floors, admitted = self._floors, []
        for frame in frames:
            topic, time = frame.topic, frame.order
            if topic is not None and time is not None:
                floor = floors.get(topic)
                if floor is not None and time < floor:
                    self.dropped += 1
                    continue
                floors[topic] = time + 1 if frame.final else time
            admitted.append(frame)
        return admitted

    def floor(self, topic: Topic) -> Millis | None:
        """The oldest bar time still deliverable on ``topic``; None before its first bar."""
        return self._floors.get(topic)
