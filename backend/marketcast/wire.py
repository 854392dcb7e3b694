"""Encoding server frames — serialise once, share the text with every subscriber.

Updates are encoded here with orjson from plain dicts instead of through the pydantic models:
an update is encoded once per publish and must be cheap. ``tests/unit/test_wire.py`` checks
that every frame built here validates against the pydantic models in ``protocol``, so the
two cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import orjson

from marketcast.market import BarKey, Candle, Quote
from marketcast.types import Millis, RequestId, Topic


@dataclass(frozen=True, slots=True)
class Frame:
    """One outbound text frame plus what an outbox needs to know about it without parsing it.

    The same ``Frame`` object is queued to every subscriber of ``topic``.
    """

    text: str
    #: The topic this update belongs to; None for replies and errors.
    topic: Topic | None = None
    #: The candle's open time, for snapshot de-duplication and conflation; None otherwise.
    bar_time: Millis | None = None
    #: A closed bar is final: never conflated away, never dropped.
    closed: bool = False
    #: ``perf_counter()`` when the frame was built: the start of its fan-out latency, which
    #: writers sample (``ws.stats``). Not part of equality: two frames with the same text are
    #: the same message.
    created: float = field(default_factory=perf_counter, compare=False)

    @property
    def conflatable(self) -> bool:
        """An update that a newer update of the same open bar may replace in a queue."""
        return self.topic is not None and not self.closed


def envelope(type_: str, payload: dict[str, Any], request_id: RequestId | None = None) -> str:
    """The JSON text of ``{"type", "payload", "id"?}``."""
    message: dict[str, Any] = {"type": type_, "payload": payload}
    if request_id is not None:
        message["id"] = request_id
    return orjson.dumps(message).decode()


def bar_update(topic: Topic, key: BarKey, candle: Candle, *, stale: bool = False) -> Frame:
    """A ``bars.update`` frame; ``stale`` repeats a bar to say the upstream went silent."""
    payload: dict[str, Any] = {"topic": topic, "symbol": key.symbol, "resolution": key.resolution}
    payload.update(candle_dict(candle))
    if stale:
        payload["stale"] = True
    return Frame(envelope("bars.update", payload), topic, candle.time, candle.closed)


def quote_update(topic: Topic, symbol: str, quote: Quote) -> Frame:
    """A ``quotes.update`` frame; optional fields are omitted when unknown."""
    payload: dict[str, Any] = {
        "topic": topic,
        "symbol": symbol,
        "time": quote.time,
        "bid": quote.bid,
        "ask": quote.ask,
        "last": quote.last,
    }
    for name in ("volume", "change", "change_percent"):
        value = getattr(quote, name)
        if value is not None:
            payload[name] = value
    return Frame(envelope("quotes.update", payload), topic)


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
