"""The topic index: topic -> the subscribers that receive its updates.

Why copy-on-write tuples: publishing happens for every update and must not allocate or be
disturbed by a subscriber leaving mid-iteration; subscribing happens rarely. So each topic
maps to an immutable tuple that ``add``/``remove`` replace, and ``publish`` just iterates it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from marketcast.types import Topic
from marketcast.wire import Frame


class Subscriber(Protocol):
    def deliver(self, frame: Frame) -> None:
        """Accept ``frame`` without blocking (queue it, or mark itself for closing)."""
        ...


class Hub:
    """Routes each published frame to the subscribers of its topic, in this worker."""

    def __init__(self, on_new_topic: Callable[[], None] | None = None) -> None:
        self._index: dict[Topic, tuple[Subscriber, ...]] = {}
        self.published = 0
        #: Called when a topic gets its first subscriber — its history is about to be loaded,
        #: which ``gcpolicy.GcFreezer`` waits for to freeze the new long-lived objects.
        self._on_new_topic = on_new_topic

    def add(self, topic: Topic, subscriber: Subscriber) -> bool:
        """Subscribe; False if it already was (idempotent)."""
        current = self._index.get(topic, ())
        if subscriber in current:
            return False
        self._index[topic] = (*current, subscriber)
        if not current and self._on_new_topic is not None:
            self._on_new_topic()
        return True

    def remove(self, topic: Topic, subscriber: Subscriber) -> bool:
        """Unsubscribe; False if it was not subscribed."""
        current = self._index.get(topic, ())
        if subscriber not in current:
            return False
        remaining = tuple(s for s in current if s is not subscriber)
        if remaining:
            self._index[topic] = remaining
        else:
            del self._index[topic]
        return True

    def publish(self, frame: Frame) -> None:
        """Hand ``frame`` to every subscriber of its topic; never awaits."""
        if frame.topic is None:
            return
        self.published += 1
        for subscriber in self._index.get(frame.topic, ()):
            subscriber.deliver(frame)

    def subscriber_count(self, topic: Topic) -> int:
        return len(self._index.get(topic, ()))

    def topics(self) -> list[Topic]:
        return list(self._index)
