"""Baseline: the bare ``websockets`` server, each frame encoded once and written raw.

The practical floor for a pure-Python fan-out on this machine: the frame header and payload
are built once per update and the same bytes go to every subscriber's transport with one
``transport.write`` each — no per-connection framing, no backpressure, no safety. What a
delivery costs here is mostly the kernel's ``send()``, which every server pays; the gap
between this row and another server is that server's own per-delivery work.

With permessage-deflate it is the floor of compressing once per frame: a connection that
negotiated it without server context takeover gets the frame compressed once per update and
window size (raw deflate, sync flush, tail removed, RSV1 set; the library's level and
memLevel 5, as its per-connection compression uses), the others the plain frame. Which
connections are which is read from the library's negotiated extensions at subscribe time.
"""

from __future__ import annotations

import struct
import zlib

from websockets.asyncio.server import ServerConnection
from websockets.extensions.permessage_deflate import PerMessageDeflate

from . import versions
from .websockets_bare import WebsocketsTarget


def unmasked_text_frame(payload: bytes, *, rsv1: bool = False) -> bytes:
    """One final, unmasked text frame (RFC 6455 section 5.2) carrying ``payload``; ``rsv1``
    marks it compressed (RFC 7692)."""
    first = 0xC1 if rsv1 else 0x81
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    return header + payload


def deflated_text_frame(payload: bytes, window_bits: int) -> bytes:
    """``payload`` compressed on its own for a connection without server context takeover."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -window_bits, 5)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return unmasked_text_frame(data[:-4], rsv1=True)


def shared_window(ws: ServerConnection) -> int | None:
    """The window of a connection's permessage-deflate without server context takeover (a
    frame compressed once serves it); None: plain frames (no extension, or one that keeps
    context, which this floor does not serve compressed)."""
    extensions = ws.protocol.extensions
    if len(extensions) == 1 and isinstance(extensions[0], PerMessageDeflate):
        deflate = extensions[0]
        if deflate.local_no_context_takeover:
            bits: int = deflate.local_max_window_bits
            return bits
    return None


class WebsocketsRawTarget(WebsocketsTarget):
    name = "raw"

    def __init__(self, topics: int, frame: str = "bar") -> None:
        super().__init__(topics, frame)
        self.source = versions("websockets") + " (raw transport writes)"
        #: Per topic: window bits -> the subscribers that get frames compressed with it.
        self.compressed: dict[str, dict[int, set[ServerConnection]]] = {t: {} for t in self.topics}

    def subscribed(self, topic: str, ws: ServerConnection) -> None:
        bits = shared_window(ws)
        if bits is None:
            self.subscribers[topic].add(ws)
        else:
            self.compressed[topic].setdefault(bits, set()).add(ws)

    def unsubscribed(self, topic: str, ws: ServerConnection) -> None:
        self.subscribers[topic].discard(ws)
        for group in self.compressed[topic].values():
            group.discard(ws)

    async def publish(self, index: int, bar_time: int, stamp_us: int) -> None:
        topic = self.topics[index]
        text = self.encode(index, bar_time, stamp_us)
        data = unmasked_text_frame(text)
        for ws in self.subscribers[topic]:
            transport = ws.transport
            if not transport.is_closing():
                transport.write(data)
        for bits, group in self.compressed[topic].items():
            if group:
                data = deflated_text_frame(text, bits)
                for ws in group:
                    transport = ws.transport
                    if not transport.is_closing():
                        transport.write(data)
