"""Snapshot holds: a topic's updates held back while a subscribe call reads its snapshot.

Why they exist: a ``subscribe`` with ``snapshot``/``since`` registers the client on the topic
*before* reading the history, so no update can slip between the two; updates that arrive
meanwhile wait here, and once the reply is queued they are released minus the ones the
snapshot already contains. The rule relies on every update of a family with history being
stored before it is published (``StreamManager``).

Why a released hold can stay a while (``passing``): stored before published also means the
snapshot may hold an element whose update has not reached this worker yet — its owner's
store call answered, its bus message still on the way (another worker's, or this worker's
own publish right after its store call). Until an update newer than the snapshot's newest
final element arrives, the hold stays in place and drops what the snapshot already gave;
the first newer update passes and removes it.
"""

from __future__ import annotations

from collections.abc import Callable

from marketcast.types import Topic
from marketcast.wire import Frame


class SnapshotHold:
    """Updates of one topic held back while its snapshot is read: the token of the subscribe
    call that made it (``Connection.hold``).

    Why a token: the held updates may go out only after the reply that carries the snapshot,
    and only if that reply is a success. The adapter settles every hold the request made once
    its reply is queued (``Connection.settle``): a success releases them, minus what the
    snapshot already holds; a failure anywhere after the hold was made (the snapshot read, the
    reply's encoding) abandons them, and ``on_abandon`` undoes the subscription, so an error
    reply never leaves the client subscribed.
    """

    __slots__ = (
        "_deliver",
        "_holds",
        "frames",
        "last_final",
        "last_order",
        "on_abandon",
        "passing",
        "topic",
    )

    def __init__(
        self,
        holds: dict[Topic, SnapshotHold],
        deliver: Callable[[Frame], None],
        topic: Topic,
        on_abandon: Callable[[], None],
    ) -> None:
        #: The connection's holds by topic (this one is there while it holds) and its
        #: ``deliver``: what a release hands the kept updates to.
        self._holds = holds
        self._deliver = deliver
        self.topic = topic
        self.frames: list[Frame] = []
        #: The snapshot's newest element (a bar's open time, a trade's id) and whether it is
        #: final; None until ``arm`` (or when the snapshot was empty): nothing is a duplicate.
        self.last_order: int | None = None
        self.last_final = False
        self.on_abandon = on_abandon
        #: Released, but still dropping the updates the snapshot holds (module docstring).
        self.passing = False

    def arm(self, last_order: int | None, last_final: bool) -> None:
        """The snapshot is read; its newest element is (``last_order``, ``last_final``)."""
        self.last_order = last_order
        self.last_final = last_final

    def keeps(self, frame: Frame) -> bool:
        """Whether a held update is newer than the snapshot (the store is written before the
        bus, so anything at or before the snapshot's newest final element is in it)."""
        if frame.order is None or self.last_order is None:
            return True
        if frame.order < self.last_order:
            return False
        return not (frame.order == self.last_order and self.last_final)

    def release(self) -> None:
        """Deliver what the snapshot lacks, then the topic's updates directly; or, while
        nothing newer than the snapshot's final newest element came, pass them on
        (``pass_on``) until one does."""
        if self._holds.get(self.topic) is not self:
            return
        frames, self.frames = self.frames, []
        kept = [frame for frame in frames if self.keeps(frame)]
        if kept or not self.last_final or self.last_order is None:
            del self._holds[self.topic]
        else:
            self.passing = True
        for frame in kept:
            self._deliver(frame)

    def pass_on(self, frame: Frame) -> None:
        """A released hold's update: dropped if the snapshot holds it, else delivered, and
        the hold is gone (every later update is newer still)."""
        if not self.keeps(frame):
            return
        if self._holds.get(self.topic) is self:
            del self._holds[self.topic]
        self._deliver(frame)

    def forget_before(self, created: float) -> None:
        """Drop the held updates built before ``created`` (``Frame.created``'s clock): what a
        feed published while starting the key, older than the subscription's news."""
        self.frames = [frame for frame in self.frames if frame.created >= created]

    def cancel(self) -> None:
        """Drop the held updates (the subscription is going away); idempotent."""
        if self._holds.get(self.topic) is self:
            del self._holds[self.topic]
        self.frames = []

    def abandon(self) -> None:
        """The request failed: drop the held updates and undo the subscription."""
        if self._holds.get(self.topic) is self:
            self.cancel()
            self.on_abandon()
