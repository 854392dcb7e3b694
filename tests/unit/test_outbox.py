"""The per-client outbox: bounded, FIFO, conflating open-bar updates, never losing closed bars."""

from __future__ import annotations

import pytest

from marketcast.delivery.outbox import Outbox
from marketcast.wire import Frame

TOPIC = 'bars:{"resolution":"1","symbol":"BTCUSDT"}'
OTHER = 'bars:{"resolution":"1","symbol":"ETHUSDT"}'


def bar(time: int, close: float, *, closed: bool = False, topic: str = TOPIC) -> Frame:
    return Frame(f'{{"t":{time},"c":{close},"x":{str(closed).lower()}}}', topic, time, closed)


def test_fifo_order_and_take_empties() -> None:
    box = Outbox(10, 10_000)
    frames = [Frame("a"), bar(1, 1.0, closed=True), Frame("b")]
    for frame in frames:
        assert box.put(frame)
    assert box.take() == frames
    assert len(box) == 0
    assert box.nbytes == 0


def test_newer_update_of_open_bar_replaces_queued_one_in_place() -> None:
    box = Outbox(10, 10_000)
    box.put(Frame("reply"))
    box.put(bar(60, 1.0))
    box.put(bar(60, 2.0))
    box.put(bar(60, 3.0))
    taken = box.take()
    assert [f.text for f in taken] == ["reply", bar(60, 3.0).text]
    assert box.conflated == 2


def test_closed_bar_replaces_open_version_and_is_never_replaced() -> None:
    box = Outbox(10, 10_000)
    box.put(bar(60, 1.0))
    box.put(bar(60, 2.0, closed=True))
    box.put(bar(120, 3.0))
    box.put(bar(120, 4.0))
    taken = box.take()
    assert [(f.order, f.final, f.text) for f in taken] == [
        (60, True, bar(60, 2.0, closed=True).text),
        (120, False, bar(120, 4.0).text),
    ]


def test_closed_bars_are_all_kept() -> None:
    box = Outbox(100, 100_000)
    for t in range(10):
        box.put(bar(t, float(t), closed=True))
    assert [f.order for f in box.take()] == list(range(10))


def test_conflation_is_per_topic() -> None:
    box = Outbox(10, 10_000)
    box.put(bar(60, 1.0))
    box.put(bar(60, 1.5, topic=OTHER))
    box.put(bar(60, 2.0))
    taken = box.take()
    assert [(f.topic, f.text) for f in taken] == [
        (TOPIC, bar(60, 2.0).text),
        (OTHER, bar(60, 1.5, topic=OTHER).text),
    ]


def test_no_conflation_when_disabled() -> None:
    box = Outbox(10, 10_000, conflate=False)
    box.put(bar(60, 1.0))
    box.put(bar(60, 2.0))
    assert len(box.take()) == 2


def test_message_limit_refuses_put() -> None:
    box = Outbox(3, 10_000)
    assert all(box.put(bar(t, 1.0, closed=True)) for t in range(3))
    assert not box.put(bar(99, 1.0, closed=True))
    assert len(box) == 3


def test_byte_limit_refuses_put_and_accounts_replacements() -> None:
    box = Outbox(100, 60)
    assert box.put(Frame("x" * 30))
    assert not box.put(Frame("y" * 31))
    assert box.nbytes == 30
    assert box.put(bar(1, 1.0))
    size_before = box.nbytes
    assert box.put(bar(1, 2.5))  # replaced in place: size changes by the difference only
    assert box.nbytes == size_before + len(bar(1, 2.5).text) - len(bar(1, 1.0).text)


def test_conflation_still_allowed_when_full() -> None:
    box = Outbox(2, 10_000)
    box.put(Frame("reply"))
    box.put(bar(60, 1.0))
    assert box.put(bar(60, 2.0))
    assert not box.put(bar(120, 1.0))


def test_empty_outbox_accepts_a_frame_larger_than_the_byte_limit() -> None:
    box = Outbox(10, 100)
    assert box.put(Frame("x" * 500))
    assert not box.put(Frame("y"))
    box.take()
    assert box.put(Frame("y"))


def test_an_empty_outbox_holds_no_containers() -> None:
    """Thousands of idle connections each have one: the queue and the conflation index exist
    only while something is queued (``docs/performance.md``, idle memory)."""
    box = Outbox(10, 10_000)
    assert box._queue is None
    assert box._replaceable is None
    assert box.take() == []
    assert box.oldest() is None
    frame = bar(60, 1.0)
    box.put(frame)
    assert len(box) == 1
    assert box.take() == [frame]
    assert len(box) == 0
    assert box._queue is None
    assert box._replaceable is None


# ---- reset: one frame standing for a topic's queued updates --------------------------------

BOOK = "orderbook:diff"


def diff(seq: int, *, topic: str = BOOK) -> Frame:
    return Frame(f'{{"seq":{seq}}}', topic, seq, True)


def test_a_reset_replaces_its_topics_queued_updates_and_keeps_the_others_in_order() -> None:
    box = Outbox(5, 10_000)
    for frame in (diff(1), bar(60, 1.0, topic=OTHER), diff(2), Frame("reply"), diff(3)):
        assert box.put(frame)
    assert not box.put(diff(4)), "full"
    reset = Frame('{"seq":4,"reset":true,"bids":[]}', BOOK, 4, True)
    assert box.reset(reset)
    assert [f.text for f in box.take()] == [bar(60, 1.0, topic=OTHER).text, "reply", reset.text]
    assert box.nbytes == 0


def test_updates_a_reset_holds_are_dropped_until_the_queue_is_taken() -> None:
    box = Outbox(5, 10_000)
    for seq in (1, 2, 3):
        box.put(diff(seq))
    reset = Frame('{"seq":7,"reset":true}', BOOK, 7, True)
    assert box.reset(reset)
    # Older updates still on their way (a snapshot hold releasing them) are in the reset.
    assert box.put(diff(5))
    assert box.put(diff(7))
    assert box.put(diff(8))
    assert box.put(diff(6, topic=OTHER)), "another topic is not affected"
    assert [f.order for f in box.take()] == [7, 8, 6]
    # Taken whole: the floor is gone with the queue.
    assert box.put(diff(5))
    assert [f.order for f in box.take()] == [5]


def test_a_reset_is_refused_when_the_other_topics_alone_fill_the_queue() -> None:
    box = Outbox(2, 10_000)
    box.put(Frame("reply 1"))
    box.put(Frame("reply 2"))
    assert not box.reset(Frame('{"seq":9}', BOOK, 9, True))
    assert [f.text for f in box.take()] == ["reply 1", "reply 2"]


def test_a_reset_needs_a_topic_and_an_order() -> None:
    box = Outbox(2, 10_000)
    with pytest.raises(ValueError, match="a reset needs a topic and an order"):
        box.reset(Frame("reply"))
