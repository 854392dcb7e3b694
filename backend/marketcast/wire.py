"""Encoding server frames — serialise once, share the text with every subscriber.

Updates are encoded here with orjson from plain dicts instead of through the pydantic models:
an update is encoded once per publish and must be cheap. ``tests/unit/test_wire.py`` checks
that every frame built here validates against the pydantic models in ``protocol``, so the
two cannot drift.

Why frames carry their WebSocket bytes: a server's frames are unmasked (RFC 6455 5.1), so the
complete frame — header and UTF-8 payload — is the same for every client. ``Frame.wire()``
builds it once, on first use, and every subscriber's socket gets the same ``bytes``
(``delivery.direct``); ``tests/unit/test_wire_framing.py`` checks it against the ``websockets``
library's own framing.

Why compressed frames can be shared too: a connection that negotiated permessage-deflate with
``server_no_context_takeover`` (RFC 7692 7.1.1.1; the server asks for it, ``serving``) decodes
each message on its own, with no window carried over from the previous one. The compressed
message then depends only on the text and the window size, so ``Frame.deflated`` compresses
once per frame and every such subscriber gets the same bytes: compression at the price of
one compression per update, not one per delivery.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import orjson

from marketcast.market import Candle
from marketcast.types import RequestId, Topic


@dataclass(slots=True, eq=True)
class Frame:
    """One outbound text frame plus what an outbox needs to know about it without parsing it.

    The same ``Frame`` object is queued to every subscriber of ``topic``: treat it as
    immutable. Why it is not a frozen dataclass: one is built for every key of every upstream
    update, and a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``, which made building one cost more than encoding its JSON.
    """

    text: str
    #: The topic this update belongs to; None for replies and errors.
    topic: Topic | None = None
    #: The update's place in its topic, declared by its channel family: a candle's open time,
    #: a trade's id. Snapshot de-duplication drops what a snapshot already holds by it, and
    #: conflation replaces only an update of the same place (the same open bar); None for
    #: updates with no order (quotes: any newer one replaces them).
    order: int | None = None
    #: Never conflated away, never dropped while the outbox has room: a closed bar, a trade.
    final: bool = False
    #: ``perf_counter()`` when the frame was built: the start of its fan-out latency, which
    #: writers sample (``delivery.stats``). Not part of equality: two frames with the same text are
    #: the same message.
    created: float = field(default_factory=perf_counter, compare=False)
    #: The complete WebSocket frame, built by the first ``wire()`` call and shared by every
    #: subscriber; frames only ever sent through ASGI never pay for it.
    _wire: bytes | None = field(default=None, init=False, compare=False, repr=False)
    #: ``(window bits, frame)``: the compressed frame of the last window size asked for (every
    #: client of one server normally gets the same one).
    _deflated: tuple[int, bytes] | None = field(default=None, init=False, compare=False, repr=False)

    def wire(self) -> bytes:
        """This frame as one unmasked, unfragmented WebSocket text frame."""
        data = self._wire
        if data is None:
            data = text_frame(self.text.encode())
            self._wire = data  # a cache, invisible to equality and to the text
        return data

    def deflated(self, window_bits: int) -> bytes:
        """This frame as one permessage-deflate text frame compressed with a window of
        ``window_bits``, for connections that negotiated ``server_no_context_takeover``."""
        cached = self._deflated
        if cached is not None and cached[0] == window_bits:
            return cached[1]
        data = deflated_text_frame(self.text.encode(), window_bits)
        self._deflated = (window_bits, data)
        return data

    @property
    def conflatable(self) -> bool:
        """An update that a newer update of the same place may replace in a queue."""
        return self.topic is not None and not self.final


_LEN16 = struct.Struct("!BBH")
_LEN64 = struct.Struct("!BBQ")


def text_frame(payload: bytes) -> bytes:
    """A final, unmasked text frame (opcode 1) carrying ``payload`` (UTF-8), RFC 6455 5.2."""
    return _frame(0x81, payload)


def _frame(first: int, payload: bytes) -> bytes:
    """An unmasked frame: ``first`` is the FIN/RSV/opcode byte."""
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 65536:
        return _LEN16.pack(first, 126, size) + payload
    return _LEN64.pack(first, 127, size) + payload


#: Payloads shorter than this go out uncompressed even on a deflate connection (RFC 7692
#: lets each message choose): deflate's own overhead leaves nothing to gain below it.
MIN_DEFLATE_BYTES = 64
#: What ends every sync-flushed deflate block; RFC 7692 7.2.1 has the sender remove it.
_SYNC_TAIL = b"\x00\x00\xff\xff"


def deflated_text_frame(payload: bytes, window_bits: int) -> bytes:
    """A final, unmasked text frame whose payload is ``payload`` compressed on its own
    (RFC 7692: raw deflate, sync flush, tail removed, RSV1 set); a short payload is sent as
    a plain text frame instead."""
    if len(payload) < MIN_DEFLATE_BYTES:
        return text_frame(payload)
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -window_bits)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return _frame(0xC1, data[: -len(_SYNC_TAIL)])


def envelope(type_: str, payload: dict[str, Any], request_id: RequestId | None = None) -> str:
    """The JSON text of ``{"type", "payload", "id"?}``."""
    message: dict[str, Any] = {"type": type_, "payload": payload}
    if request_id is not None:
        message["id"] = request_id
    return orjson.dumps(message).decode()


def candle_dict(candle: Candle) -> dict[str, Any]:
    """A candle as the ``Bar`` object of snapshots and REST history."""
    return {
        "time": candle.time,
        "open": candle.open,
        "high": candle.high,
        "low": candle.low,
        "close": candle.close,
        "volume": candle.volume,
        "closed": candle.closed,
    }
