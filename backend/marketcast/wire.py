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
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import orjson

from marketcast.market import Candle
from marketcast.types import RequestId, Topic


@dataclass(frozen=True, slots=True)
class Frame:
    """One outbound text frame plus what an outbox needs to know about it without parsing it.

    The same ``Frame`` object is queued to every subscriber of ``topic``.
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

    def wire(self) -> bytes:
        """This frame as one unmasked, unfragmented WebSocket text frame."""
        data = self._wire
        if data is None:
            data = text_frame(self.text.encode())
            # Frozen for users; this cache is invisible to equality and to the text.
            object.__setattr__(self, "_wire", data)
        return data

    @property
    def conflatable(self) -> bool:
        """An update that a newer update of the same place may replace in a queue."""
        return self.topic is not None and not self.final


_LEN16 = struct.Struct("!BBH")
_LEN64 = struct.Struct("!BBQ")


def text_frame(payload: bytes) -> bytes:
    """A final, unmasked text frame (opcode 1) carrying ``payload`` (UTF-8), RFC 6455 5.2."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 65536:
        return _LEN16.pack(0x81, 126, size) + payload
    return _LEN64.pack(0x81, 127, size) + payload


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
