"""``wire.Frame.deflated``: one compressed frame that every deflate client can read.

Checked with the ``websockets`` library's own frame parser and permessage-deflate decoder (a
client's view), for every window a client may ask for, and for the short frames that go out
plain.
"""

from __future__ import annotations

import orjson
import pytest
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode
from websockets.streams import StreamReader

from marketcast.wire import MIN_DEFLATE_BYTES, Frame

BOOK = orjson.dumps(
    {
        "type": "orderbook.update",
        "payload": {
            "bids": [[f"{60000 - i / 100:.2f}", f"{(i * 7 % 13 + 1) / 81:.5f}"] for i in range(20)],
            "asks": [[f"{60000 + i / 100:.2f}", f"{(i * 5 % 11 + 1) / 47:.5f}"] for i in range(20)],
        },
    }
).decode()


def parse(data: bytes, window_bits: int) -> tuple[bool, WsFrame]:
    """Whether the frame is marked compressed (RSV1), and the frame as a client's parser and
    deflate extension read it."""
    client = PerMessageDeflate(
        remote_no_context_takeover=True,
        local_no_context_takeover=True,
        remote_max_window_bits=window_bits,
        local_max_window_bits=15,
    )
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = WsFrame.parse(reader.read_exact, mask=False, extensions=[client])
    try:
        next(parser)
    except StopIteration as done:
        frame: WsFrame = done.value
    else:  # pragma: no cover - the whole frame was fed
        raise AssertionError("frame parser wanted more bytes")
    return bool(data[0] & 0x40), frame


@pytest.mark.parametrize("window_bits", range(9, 16))
def test_a_deflated_frame_decodes_to_the_text_for_every_window(window_bits: int) -> None:
    frame = Frame(BOOK)
    data = frame.deflated(window_bits)
    compressed, parsed = parse(data, window_bits)
    assert compressed
    assert parsed.opcode is Opcode.TEXT
    assert parsed.fin
    assert bytes(parsed.data).decode() == BOOK
    assert len(data) < 0.4 * len(frame.wire())


def test_the_compressed_frame_is_built_once_per_window() -> None:
    frame = Frame(BOOK)
    assert frame.deflated(15) is frame.deflated(15)
    other = frame.deflated(10)
    assert bytes(parse(other, 10)[1].data).decode() == BOOK
    assert frame.deflated(10) is other


def test_a_short_frame_goes_out_plain() -> None:
    text = '{"type":"pong","payload":{"time":1}}'
    assert len(text) < MIN_DEFLATE_BYTES
    frame = Frame(text)
    assert frame.deflated(15) == frame.wire()
    compressed, parsed = parse(frame.deflated(15), 15)
    assert not compressed
    assert bytes(parsed.data).decode() == text
