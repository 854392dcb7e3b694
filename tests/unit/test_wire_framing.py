"""``Frame.wire()``: the bytes written straight to every subscriber's transport must be exactly
the frame the ``websockets`` library would write for the same text (unmasked server frame)."""

from __future__ import annotations

import pytest
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode

from marketcast.wire import Frame, text_frame


def library_frame(text: str) -> bytes:
    return WsFrame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 1000, 65535, 65536, 70_000, 1_000_000])
def test_text_frame_matches_websockets_at_every_length_encoding(length: int) -> None:
    text = ("x" * length)[:length]
    assert Frame(text).wire() == library_frame(text)


def test_non_ascii_text_is_framed_as_utf8() -> None:
    text = '{"symbol":"€/¥","x":"' + "é" * 200 + '"}'
    assert Frame(text).wire() == library_frame(text)
    assert text_frame(text.encode()) == library_frame(text)


def test_wire_bytes_are_built_once_and_shared() -> None:
    frame = Frame('{"type":"pong","payload":{}}', "bars:x", 1, False)
    first = frame.wire()
    assert frame.wire() is first
    # The cache is not part of the message: equality is by content, as before.
    assert frame == Frame('{"type":"pong","payload":{}}', "bars:x", 1, False)
