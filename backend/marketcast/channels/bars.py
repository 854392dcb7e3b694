"""The ``bars`` family: candles per symbol and resolution, with snapshots and ``since``.

Its history is the candle store (``History.SERIES``): the stream manager keeps it, recovery
fills its holes from the feed, and the generated router answers ``snapshot`` and ``since``
from it. A slow client loses intermediate states of the open bar (latest wins) but never a
closed bar: the frames say so with ``order`` (the bar's open time) and ``final`` (closed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Final

import orjson
from pydantic import Field, field_validator

from marketcast.channels.base import Docs, Family, History, Models
from marketcast.channels.numbers import NUMBERS_ON_THE_WIRE
from marketcast.errors import ErrorCode, ProtocolError
from marketcast.market import BarKey, Candle, StreamKey, SymbolInfo
from marketcast.protocol import (
    MAX_SNAPSHOT,
    MAX_TIME_MS,
    Bar,
    ClientModel,
    Integral,
    Reply,
    ResolutionField,
    SymbolField,
)
from marketcast.timeframes import RESOLUTION_ALIASES, RESOLUTIONS, nominal_ms, normalize_resolution
from marketcast.types import Resolution, Topic
from marketcast.wire import Frame, candle_dict, envelope

ROUTE: Final = "bars"


class BarsParams(ClientModel):
    """Topic parameters of the ``bars`` route."""

    resolution: ResolutionField

    @field_validator("resolution", mode="before")
    @classmethod
    def _canonical_resolution(cls, value: Any) -> Any:
        return RESOLUTION_ALIASES.get(value, value) if isinstance(value, str) else value


class BarsSubscribePayload(ClientModel):
    """Subscribe to a symbol's candles at one resolution, optionally with history first."""

    symbol: SymbolField
    params: BarsParams
    snapshot: Annotated[int, Field(ge=0, le=MAX_SNAPSHOT), Integral] = Field(
        default=0,
        description="Return the last N bars in the response, then stream from there.",
    )
    since: Annotated[int, Field(ge=0, le=MAX_TIME_MS), Integral] | None = Field(
        default=None,
        description="Return every bar whose open time is >= since (ms UTC) in the response; "
        "at most the open time of the bar after the newest one.",
    )


class BarsUnsubscribePayload(ClientModel):
    """Stop receiving a symbol's candles at one resolution."""

    symbol: SymbolField
    params: BarsParams


class BarsSubscribeResponsePayload(Reply):
    """Reply to ``bars.subscribe``; ``bars`` holds the snapshot or the bars since ``since``."""

    bars: list[Bar] | None = None
    recovered: bool | None = Field(
        default=None,
        description="Only with `since`: true when `bars` holds every bar since `since` (from "
        "the store, filled from the upstream where the store has a hole); false when history "
        "does not reach back that far and bars are missing before the first one returned.",
    )


class BarsUnsubscribeResponsePayload(Reply):
    """Reply to ``bars.unsubscribe``."""


class BarsUpdatePayload(Bar):
    """A live candle: the open bar changed, or a bar closed (``closed`` = final).

    It is a ``Bar`` (the same fields as snapshots and history, so clients handle both with one
    type) plus what routes it: its topic, symbol and resolution.
    """

    topic: str
    symbol: str
    resolution: Resolution
    stale: bool = Field(
        default=False,
        description="Present (true) only on a repeat of the newest bar, sent once when the "
        "upstream has been silent for several intervals; it carries no new data (a closed bar "
        "it repeats is not a second close). The next update without it means data flows again.",
    )


def bar_update(topic: Topic, key: BarKey, candle: Candle, *, stale: bool = False) -> Frame:
    """A ``bars.update`` frame; ``stale`` repeats a bar to say the upstream went silent."""
    text = bar_head(topic, key) + bar_fields(candle, stale=stale)
    if stale:
        # A notice that repeats a bar, not a bar: no snapshot de-duplication, closed-bar
        # guard or conflation by bar time may treat it as one (it would be dropped).
        return Frame(text, topic)
    return Frame(text, topic, candle.time, candle.closed)


def bar_head(topic: Topic, key: BarKey) -> str:
    """A ``bars.update`` frame's text up to its bar: ``{"type":…,"payload":{"topic":…,
    "symbol":…,"resolution":…,`` (the envelope without its two closing braces).

    Why a frame is built in two parts: the head is the same for every update of a key, and
    encoding it (two dicts, the topic's quotes escaped) was a third of what a frame cost, so
    the ingest path keeps each key's head (``ingest_records``) and encodes only the bar."""
    text = envelope(_UPDATE, {"topic": topic, "symbol": key.symbol, "resolution": key.resolution})
    return text[:-2] + ","


def bar_fields(candle: Candle, *, stale: bool = False) -> str:
    """The rest of the text after ``bar_head``: the bar's fields and the closing braces."""
    fields = candle_dict(candle)
    if stale:
        fields["stale"] = True
    return orjson.dumps(fields).decode()[1:] + "}"


_UPDATE: Final = f"{ROUTE}.update"
_TOPIC = 'bars:{"resolution":"1","symbol":"BTCUSDT"}'
_BAR = {
    "time": 1763683200000,
    "open": 91250.5,
    "high": 91302.0,
    "low": 91210.25,
    "close": 91288.75,
    "volume": 12.4821,
    "closed": True,
}
_PARAMS = {"symbol": "BTCUSDT", "params": {"resolution": "1"}}
_OK = {"status": "ok", "symbol": "BTCUSDT"}


class BarsFamily(Family):
    route: ClassVar[str] = ROUTE
    key_type: ClassVar[type[StreamKey]] = BarKey
    models: ClassVar[Models] = Models(
        params=BarsParams,
        subscribe=BarsSubscribePayload,
        subscribe_response=BarsSubscribeResponsePayload,
        unsubscribe=BarsUnsubscribePayload,
        unsubscribe_response=BarsUnsubscribeResponsePayload,
        update=BarsUpdatePayload,
        item=Bar,
    )
    history: ClassVar[History] = History.SERIES
    snapshot_field: ClassVar[str | None] = "bars"
    snapshot_max: ClassVar[int] = MAX_SNAPSHOT
    models_module: ClassVar[str | None] = __name__
    router_module: ClassVar[str | None] = "marketcast.ws.generated.bars"
    docs: ClassVar[Docs] = Docs(
        description="live candles per symbol and resolution, with snapshots.",
        channel="Candles per symbol and resolution; snapshots and recovery with `since`. "
        + NUMBERS_ON_THE_WIRE,
        subscribe_summary="Receive a symbol's candles at one resolution, after a snapshot.",
        subscribe_description="Subscribe to the topic of (symbol, resolution); with "
        "``snapshot`` or ``since`` the reply carries bars, continuous with the stream.",
        update_noun="candles",
        update_summary="A candle changed or closed.",
        update_description="Sent for every change of the open bar and once more, with "
        "``closed`` true, when the bar is final.",
        slow_client="A client that falls behind gets the open bar's latest state only (newer "
        "states replace older ones in its queue); closed bars are never replaced or dropped.",
        raw_summary="bars.update for this symbol and resolution, open and closed bars.",
        examples={
            "bars.subscribe": {
                "type": "bars.subscribe",
                "id": 1,
                "payload": {**_PARAMS, "snapshot": 2},
            },
            "bars.subscribe.response": {
                "type": "bars.subscribe.response",
                "id": 1,
                "payload": {
                    **_OK,
                    "message": "subscribed",
                    "topic": _TOPIC,
                    "bars": [{**_BAR, "time": 1763683140000}, {**_BAR, "closed": False}],
                },
            },
            "bars.unsubscribe": {"type": "bars.unsubscribe", "id": 2, "payload": _PARAMS},
            "bars.unsubscribe.response": {
                "type": "bars.unsubscribe.response",
                "id": 2,
                "payload": {**_OK, "message": "unsubscribed", "topic": _TOPIC},
            },
            "bars.update": {
                "type": "bars.update",
                "payload": {"topic": _TOPIC, "symbol": "BTCUSDT", "resolution": "1", **_BAR},
            },
        },
    )

    def make_key(self, symbol: str, params: Mapping[str, Any]) -> StreamKey:
        return BarKey(symbol, params["resolution"])

    def check_served(self, info: SymbolInfo, key: StreamKey) -> None:
        assert isinstance(key, BarKey)
        if key.resolution not in info.resolutions:
            raise ProtocolError(
                ErrorCode.UNSUPPORTED_RESOLUTION,
                f"resolution {key.resolution!r} is not served for {info.symbol}: expected one "
                "of " + ", ".join(info.resolutions),
            )

    def params_of(self, key: StreamKey) -> dict[str, Any]:
        assert isinstance(key, BarKey)
        return {"resolution": key.resolution}

    def parse_params(self, values: Mapping[str, str]) -> dict[str, Any]:
        text = values["resolution"]
        canonical: Resolution | None = normalize_resolution(text)
        if canonical is None:
            raise ProtocolError(
                ErrorCode.UNSUPPORTED_RESOLUTION,
                f"unsupported resolution {text[:20]!r}: expected one of " + ", ".join(RESOLUTIONS),
            )
        return {"resolution": canonical}

    def update(self, topic: Topic, key: StreamKey, event: object) -> Frame:
        assert isinstance(key, BarKey)
        assert isinstance(event, Candle)
        return bar_update(topic, key, event)

    def update_head(self, topic: Topic, key: StreamKey) -> str:
        assert isinstance(key, BarKey)
        return bar_head(topic, key)

    def record(self, event: object) -> dict[str, Any]:
        assert isinstance(event, Candle)
        return candle_dict(event)

    def stale_after(self, key: StreamKey) -> float | None:
        assert isinstance(key, BarKey)
        return nominal_ms(key.resolution) / 1000
