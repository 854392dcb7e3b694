"""The topic index: delivery only to a topic's subscribers, idempotent add/remove."""

from __future__ import annotations

from marketcast.delivery.hub import Hub
from marketcast.wire import Frame


class Recorder:
    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def deliver(self, frame: Frame) -> None:
        self.frames.append(frame)


def test_publish_reaches_only_subscribers_of_the_topic() -> None:
    hub = Hub()
    a, b = Recorder(), Recorder()
    hub.add("t1", a)
    hub.add("t2", b)
    hub.publish(Frame("x", "t1"))
    assert [f.text for f in a.frames] == ["x"]
    assert b.frames == []


def test_add_and_remove_are_idempotent() -> None:
    hub = Hub()
    a = Recorder()
    assert hub.add("t", a)
    assert not hub.add("t", a)
    hub.publish(Frame("x", "t"))
    assert len(a.frames) == 1
    assert hub.remove("t", a)
    assert not hub.remove("t", a)
    hub.publish(Frame("y", "t"))
    assert len(a.frames) == 1
    assert hub.topics() == []


def test_subscriber_removed_during_publish_does_not_break_iteration() -> None:
    hub = Hub()
    received: list[str] = []

    class Leaver:
        def deliver(self, frame: Frame) -> None:
            received.append("leaver")
            hub.remove("t", self)

    leaver, other = Leaver(), Recorder()
    hub.add("t", leaver)
    hub.add("t", other)
    hub.publish(Frame("x", "t"))
    assert received == ["leaver"]
    assert len(other.frames) == 1
    assert hub.subscriber_count("t") == 1


def test_frames_without_topic_are_not_published() -> None:
    hub = Hub()
    a = Recorder()
    hub.add("t", a)
    hub.publish(Frame("reply"))
    assert a.frames == []
    assert hub.published == 0
