"""The per-client outbox: bounded, FIFO, conflating open-bar updates, never losing closed bars."""

from __future__ import annotations

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
