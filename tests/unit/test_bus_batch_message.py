"""The bus's batch message (``B``): many frames in one Redis message, decoded exactly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketcast.bus.redis_messages import decode, decode_batch, encode, encode_batch
from marketcast.wire import Frame

topics = st.one_of(
    st.none(), st.from_regex(r'bars:\{"resolution":"[0-9DWM]{1,3}"\}', fullmatch=True)
)
# Frame texts are compact JSON from orjson: any character but a raw newline (JSON escapes
# it) or a lone surrogate (not valid UTF-8: orjson never writes one).
texts = st.text(
    alphabet=st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=60
)
frames = st.builds(
    Frame,
    texts,
    topics,
    st.one_of(st.none(), st.integers(min_value=0, max_value=2**53)),
    st.booleans(),
)


@given(st.lists(frames, max_size=12))
def test_a_batch_decodes_to_the_frames_it_carried(batch: list[Frame]) -> None:
    sender, decoded = decode_batch(encode_batch(b"worker-1", batch))
    assert sender == b"worker-1"
    assert decoded == batch
    assert [(f.topic, f.order, f.final) for f in decoded] == [
        (f.topic, f.order, f.final) for f in batch
    ]


def test_lengths_count_bytes_not_characters() -> None:
    batch = [Frame('{"s":"€uro ünïcode 🚀"}', "t", 1, True), Frame("{}", "t", 2)]
    assert decode_batch(encode_batch(b"w", batch))[1] == batch


@pytest.mark.parametrize(
    "data",
    [
        b"F\nw\nt\n1\n0\n{}",  # a one-frame message
        b"B",  # no sender
        b"B\nw\nt\n1\n0",  # a header cut short
        b"B\nw\nt\n1\n0\n99\n{}",  # a length past the end
        b"B\nw\nt\n1\n0\nten\n{}",  # a length that is no number
        b"B\nw\nt\nx\n0\n2\n{}",  # an order that is no number
    ],
)
def test_a_malformed_batch_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):  # each names what it found wrong
        decode_batch(data)


def test_one_frame_messages_keep_their_format() -> None:
    """Workers of an earlier version send ``F`` messages during a rolling upgrade."""
    frame = Frame("{}", "t", 7, True)
    assert decode(encode(b"F", b"w", frame)) == (b"F", b"w", frame)
