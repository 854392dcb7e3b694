"""The receiving side's closed-bar guard, and the bus message format."""

from __future__ import annotations

import pytest

from marketcast.bus.guard import ClosedBarGuard
from marketcast.bus.redis_messages import decode, encode
from marketcast.wire import Frame

T = 'bars:{"resolution":"1","symbol":"BTCUSDT"}'


def bar(time: int, closed: bool = False) -> Frame:
    return Frame(f"t{time}{'c' if closed else ''}", T, time, closed)


def test_each_closed_bar_passes_once_and_stale_updates_are_dropped() -> None:
    guard = ClosedBarGuard()
    stream = [bar(0), bar(0), bar(0, True), bar(0, True), bar(0), bar(1), bar(1, True), bar(0)]
    passed = [f.text for f in stream if guard.admit(f)]
    assert passed == ["t0", "t0", "t0c", "t1", "t1c"]
    assert guard.dropped == 3
    assert guard.floor(T) == 2


def test_the_floor_follows_open_bars_so_their_close_still_passes() -> None:
    guard = ClosedBarGuard()
    assert guard.floor(T) is None
    assert guard.admit(bar(5))
    assert guard.floor(T) == 5
    assert not guard.admit(bar(4, True))  # older than a bar already shown open
    assert guard.admit(bar(5, True))
    assert guard.floor(T) == 6


def test_frames_without_topic_or_time_always_pass() -> None:
    guard = ClosedBarGuard()
    assert guard.admit(Frame("reply"))
    assert guard.admit(Frame("quote", "quotes:x"))
    assert guard.admit(Frame("quote", "quotes:x"))
    assert guard.floor("quotes:x") is None


def test_topics_are_independent() -> None:
    guard = ClosedBarGuard()
    assert guard.admit(bar(9, True))
    other = Frame("x", "bars:other", 1, True)
    assert guard.admit(other)


@pytest.mark.parametrize(
    "frame",
    [
        bar(1_714_989_600_000, True),
        bar(7),
        Frame('{"p":"é\\n"}', "quotes:x"),
        Frame("", T),
    ],
)
def test_messages_round_trip(frame: Frame) -> None:
    assert decode(encode(b"F", b"worker-1", frame)) == (b"F", b"worker-1", frame)


def test_malformed_messages_are_refused() -> None:
    with pytest.raises(ValueError, match="not enough values to unpack"):
        decode(b"F\nw\ntopic")
    with pytest.raises(ValueError, match="invalid literal for int"):
        decode(b"F\nw\ntopic\nnot-a-number\n1\ntext")


def test_a_batch_is_judged_frame_by_frame_in_order() -> None:
    """``admit_many`` lets through what ``admit`` would, one frame after the other: a frame
    is judged against the floor the frames before it in the batch raised."""
    guard = ClosedBarGuard()
    batch = [
        Frame("a", "t1", 10, False),
        Frame("b", "t1", 10, True),  # closes bar 10: floor 11
        Frame("c", "t1", 10, False),  # a stale version of the closed bar
        Frame("d", "t2", 5, False),
        Frame("e", None, None, False),  # no topic: always passes
        Frame("f", "t1", 11, False),
        Frame("g", "t2", 4, True),  # below t2's floor of 5
    ]
    assert [frame.text for frame in guard.admit_many(batch)] == ["a", "b", "d", "e", "f"]
    assert guard.dropped == 2
    assert (guard.floor("t1"), guard.floor("t2")) == (11, 5)
    one_by_one = ClosedBarGuard()
    assert [f.text for f in batch if one_by_one.admit(f)] == ["a", "b", "d", "e", "f"]
