"""Baseline: the bare ``websockets`` server, each frame encoded once and written raw.

The practical floor for a pure-Python fan-out on this machine: the frame header and payload
are built once per update and the same bytes go to every subscriber's transport with one
``transport.write`` each — no per-connection framing, no backpressure, no safety. What a
delivery costs here is mostly the kernel's ``send()``, which every server pays; the gap
between this row and another server is that server's own per-delivery work.
"""

from __future__ import annotations

import struct

from ..common import update_frame
from . import versions
from .websockets_bare import WebsocketsTarget


def unmasked_text_frame(payload: bytes) -> bytes:
    """One final, unmasked text frame (RFC 6455 section 5.2) carrying ``payload``."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


class WebsocketsRawTarget(WebsocketsTarget):
    name = "raw"

    def __init__(self, topics: int) -> None:
        super().__init__(topics)
        self.source = versions("websockets") + " (raw transport writes)"

    async def publish(self, index: int, bar_time: int, stamp_us: int) -> None:
        topic = self.topics[index]
        text = update_frame(topic, self.symbols[index], bar_time, stamp_us)
        data = unmasked_text_frame(text)
        for ws in self.subscribers[topic]:
            transport = ws.transport
            if not transport.is_closing():
                transport.write(data)
