"""Generated from docs/asyncapi.json by scripts/generate_consumer_models.py: do not edit.

Regenerate with `make generate-consumer-models` after the contract changes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, conint, constr


class Bar(BaseModel):
    """
    One candle in a snapshot or history: ``time`` is the bucket's open time, ms UTC.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    closed: bool


class BarsParams(BaseModel):
    """
    Topic parameters of the ``bars`` route.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    resolution: Literal[
        "1", "3", "5", "15", "30", "60", "120", "240", "D", "W", "M", "1D", "1W", "1M"
    ] = Field(
        ...,
        description="TradingView resolution; `1D`, `1W`, `1M` are accepted as aliases of `D`, `W`, `M` (TradingView sends both spellings) and written back canonical, in the reply's `topic` and in updates.",
    )


class BarsSubscribePayload(BaseModel):
    """
    Subscribe to a symbol's candles at one resolution, optionally with history first.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    symbol: constr(pattern=r"^[A-Z0-9][A-Z0-9.\-]{0,19}(/[A-Z0-9][A-Z0-9.\-]{0,19})?$") = Field(
        ...,
        description="Upper-case symbol, e.g. `BTCUSDT`, `EUR/USD`, `AAPL`.",
        examples=["BTCUSDT"],
    )
    params: BarsParams
    snapshot: conint(ge=0, le=1000) | None = Field(
        0, description="Return the last N bars in the response, then stream from there."
    )
    since: conint(ge=0, le=9007199254740991) | None = Field(
        None,
        description="Return every bar whose open time is >= since (ms UTC) in the response; at most the open time of the bar after the newest one.",
    )


class BarsSubscribeResponsePayload(BaseModel):
    """
    Reply to ``bars.subscribe``; ``bars`` holds the snapshot or the bars since ``since``.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    status: Literal["ok", "error"]
    symbol: str
    message: str
    topic: str
    bars: list[Bar] | None = None
    recovered: bool | None = Field(
        None,
        description="Only with `since`: true when `bars` holds every bar since `since` (from the store, filled from the upstream where the store has a hole); false when history does not reach back that far and bars are missing before the first one returned.",
    )


class BarsUnsubscribePayload(BaseModel):
    """
    Stop receiving a symbol's candles at one resolution.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    symbol: constr(pattern=r"^[A-Z0-9][A-Z0-9.\-]{0,19}(/[A-Z0-9][A-Z0-9.\-]{0,19})?$") = Field(
        ...,
        description="Upper-case symbol, e.g. `BTCUSDT`, `EUR/USD`, `AAPL`.",
        examples=["BTCUSDT"],
    )
    params: BarsParams


class BarsUnsubscribeResponsePayload(BaseModel):
    """
    Reply to ``bars.unsubscribe``.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    status: Literal["ok", "error"]
    symbol: str
    message: str
    topic: str


class BarsUpdatePayload(BaseModel):
    """
    A live candle: the open bar changed, or a bar closed (``closed`` = final).

    It is a ``Bar`` (the same fields as snapshots and history, so clients handle both with one
    type) plus what routes it: its topic, symbol and resolution.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    closed: bool
    topic: str
    symbol: str
    resolution: Literal["1", "3", "5", "15", "30", "60", "120", "240", "D", "W", "M"]
    stale: bool | None = Field(
        False,
        description="Present (true) only on a repeat of the newest bar, sent once when the upstream has been silent for several intervals; it carries no new data (a closed bar it repeats is not a second close). The next update without it means data flows again.",
    )


class ErrorCode(
    RootModel[
        Literal[
            "invalid_json",
            "invalid_message",
            "unsupported_frame",
            "unknown_type",
            "validation_error",
            "invalid_symbol",
            "unknown_symbol",
            "unsupported_resolution",
            "too_many_subscriptions",
            "rate_limited",
            "forbidden",
            "unavailable",
            "internal_error",
        ]
    ]
):
    root: Literal[
        "invalid_json",
        "invalid_message",
        "unsupported_frame",
        "unknown_type",
        "validation_error",
        "invalid_symbol",
        "unknown_symbol",
        "unsupported_resolution",
        "too_many_subscriptions",
        "rate_limited",
        "forbidden",
        "unavailable",
        "internal_error",
    ] = Field(
        ...,
        description="The ``code`` of an ``error`` message. Clients switch on these, so they are stable.",
        title="ErrorCode",
    )


class ErrorPayload(BaseModel):
    """
    Why a client frame was refused; the connection stays open.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    code: ErrorCode
    message: str
    request_type: str | None = Field(
        None, description="The `type` of the refused request, when it could be read."
    )


class NoticePayload(BaseModel):
    """
    The server will close this connection soon; reconnect (with ``since``) to resume.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    code: Literal["shutdown", "max_lifetime"] = Field(
        ...,
        description="`shutdown`: the server is draining; `max_lifetime`: this connection reached its maximum lifetime.",
    )
    message: str
    close_code: int = Field(..., description="The WebSocket close code that will follow (1001).")
    close_in_ms: conint(ge=0) = Field(
        ...,
        description="Milliseconds until the close; queued updates are still delivered.",
    )


class PingPayload(BaseModel):
    """
    An application-level ping; browsers cannot see protocol pings, so clients use this.
    """

    model_config = ConfigDict(
        extra="forbid",
    )


class PongPayload(BaseModel):
    """
    Reply to ``ping``: the server's clock, ms UTC.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    time: int


class QuotesParams(BaseModel):
    """
    Topic parameters of the ``quotes`` route (none today; the object is kept for symmetry).
    """

    model_config = ConfigDict(
        extra="forbid",
    )


class QuotesSubscribePayload(BaseModel):
    """
    Subscribe to a symbol's quotes.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    symbol: constr(pattern=r"^[A-Z0-9][A-Z0-9.\-]{0,19}(/[A-Z0-9][A-Z0-9.\-]{0,19})?$") = Field(
        ...,
        description="Upper-case symbol, e.g. `BTCUSDT`, `EUR/USD`, `AAPL`.",
        examples=["BTCUSDT"],
    )
    params: QuotesParams | None = None


class QuotesSubscribeResponsePayload(BaseModel):
    """
    Reply to ``quotes.subscribe``.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    status: Literal["ok", "error"]
    symbol: str
    message: str
    topic: str


class QuotesUnsubscribePayload(BaseModel):
    """
    Stop receiving a symbol's quotes.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    symbol: constr(pattern=r"^[A-Z0-9][A-Z0-9.\-]{0,19}(/[A-Z0-9][A-Z0-9.\-]{0,19})?$") = Field(
        ...,
        description="Upper-case symbol, e.g. `BTCUSDT`, `EUR/USD`, `AAPL`.",
        examples=["BTCUSDT"],
    )
    params: QuotesParams | None = None


class QuotesUnsubscribeResponsePayload(BaseModel):
    """
    Reply to ``quotes.unsubscribe``.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    status: Literal["ok", "error"]
    symbol: str
    message: str
    topic: str


class QuotesUpdatePayload(BaseModel):
    """
    A live quote.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    topic: str
    symbol: str
    time: int
    bid: float
    ask: float
    last: float
    volume: float | None = None
    change: float | None = None
    change_percent: float | None = None


class StreamBarsSymbolResolutionSymbol(
    RootModel[constr(pattern=r"^[A-Z0-9][A-Z0-9.\-]{0,19}(/[A-Z0-9][A-Z0-9.\-]{0,19})?$")]
):
    root: constr(pattern=r"^[A-Z0-9][A-Z0-9.\-]{0,19}(/[A-Z0-9][A-Z0-9.\-]{0,19})?$") = Field(
        ..., examples=["BTCUSDT", "EUR/USD"]
    )


class StreamBarsSymbolResolutionResolution(
    RootModel[
        Literal["1", "3", "5", "15", "30", "60", "120", "240", "D", "W", "M", "1D", "1W", "1M"]
    ]
):
    root: Literal["1", "3", "5", "15", "30", "60", "120", "240", "D", "W", "M", "1D", "1W", "1M"]


class StreamQuotesSymbolSymbol(
    RootModel[constr(pattern=r"^[A-Z0-9][A-Z0-9.\-]{0,19}(/[A-Z0-9][A-Z0-9.\-]{0,19})?$")]
):
    root: constr(pattern=r"^[A-Z0-9][A-Z0-9.\-]{0,19}(/[A-Z0-9][A-Z0-9.\-]{0,19})?$") = Field(
        ..., examples=["BTCUSDT", "EUR/USD"]
    )


class BarsSubscribeMessage(BaseModel):
    """
    Receive a symbol's candles at one resolution, after a snapshot.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    type: Literal["bars.subscribe"]
    payload: BarsSubscribePayload
    id: constr(max_length=64) | conint(ge=-9007199254740991, le=9007199254740991) | None = Field(
        None, description="Optional request id; the reply and any `error` for this request echo it."
    )


class BarsSubscribeResponseMessage(BaseModel):
    """
    Reply to bars.subscribe.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    type: Literal["bars.subscribe.response"]
    payload: BarsSubscribeResponsePayload
    id: constr(max_length=64) | conint(ge=-9007199254740991, le=9007199254740991) | None = Field(
        None, description="The `id` of the `bars.subscribe` request this answers, if it had one."
    )


class BarsUnsubscribeMessage(BaseModel):
    """
    Stop receiving candles for a symbol (idempotent).
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    type: Literal["bars.unsubscribe"]
    payload: BarsUnsubscribePayload
    id: constr(max_length=64) | conint(ge=-9007199254740991, le=9007199254740991) | None = Field(
        None, description="Optional request id; the reply and any `error` for this request echo it."
    )


class BarsUnsubscribeResponseMessage(BaseModel):
    """
    Reply to bars.unsubscribe.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    type: Literal["bars.unsubscribe.response"]
    payload: BarsUnsubscribeResponsePayload
    id: constr(max_length=64) | conint(ge=-9007199254740991, le=9007199254740991) | None = Field(
        None, description="The `id` of the `bars.unsubscribe` request this answers, if it had one."
    )


class BarsUpdateMessage(BaseModel):
    """
    A candle changed or closed.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    type: Literal["bars.update"]
    payload: BarsUpdatePayload


class ErrorMessage(BaseModel):
    """
    A client frame was refused; the connection stays open.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    type: Literal["error"]
    payload: ErrorPayload
    id: constr(max_length=64) | conint(ge=-9007199254740991, le=9007199254740991) | None = Field(
        None, description="The `id` of the refused request, when it could be read."
    )


class NoticeMessage(BaseModel):
    """
    The server will close this connection soon; reconnect to resume.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    type: Literal["notice"]
    payload: NoticePayload


class PingMessage(BaseModel):
    """
    Application-level ping; answered by pong.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    type: Literal["ping"]
    payload: PingPayload
    id: constr(max_length=64) | conint(ge=-9007199254740991, le=9007199254740991) | None = Field(
        None, description="Optional request id; the reply and any `error` for this request echo it."
    )


class PongMessage(BaseModel):
    """
    Reply to ping.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    type: Literal["pong"]
    payload: PongPayload
    id: constr(max_length=64) | conint(ge=-9007199254740991, le=9007199254740991) | None = Field(
        None, description="The `id` of the `ping` request this answers, if it had one."
    )


class QuotesSubscribeMessage(BaseModel):
    """
    Receive a symbol's quotes.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    type: Literal["quotes.subscribe"]
    payload: QuotesSubscribePayload
    id: constr(max_length=64) | conint(ge=-9007199254740991, le=9007199254740991) | None = Field(
        None, description="Optional request id; the reply and any `error` for this request echo it."
    )


class QuotesSubscribeResponseMessage(BaseModel):
    """
    Reply to quotes.subscribe.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    type: Literal["quotes.subscribe.response"]
    payload: QuotesSubscribeResponsePayload
    id: constr(max_length=64) | conint(ge=-9007199254740991, le=9007199254740991) | None = Field(
        None, description="The `id` of the `quotes.subscribe` request this answers, if it had one."
    )


class QuotesUnsubscribeMessage(BaseModel):
    """
    Stop receiving quotes for a symbol (idempotent).
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    type: Literal["quotes.unsubscribe"]
    payload: QuotesUnsubscribePayload
    id: constr(max_length=64) | conint(ge=-9007199254740991, le=9007199254740991) | None = Field(
        None, description="Optional request id; the reply and any `error` for this request echo it."
    )


class QuotesUnsubscribeResponseMessage(BaseModel):
    """
    Reply to quotes.unsubscribe.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    type: Literal["quotes.unsubscribe.response"]
    payload: QuotesUnsubscribeResponsePayload
    id: constr(max_length=64) | conint(ge=-9007199254740991, le=9007199254740991) | None = Field(
        None,
        description="The `id` of the `quotes.unsubscribe` request this answers, if it had one.",
    )


class QuotesUpdateMessage(BaseModel):
    """
    A new quote.
    """

    model_config = ConfigDict(
        extra="forbid",
    )
    type: Literal["quotes.update"]
    payload: QuotesUpdatePayload


class ServerMessage(
    RootModel[
        BarsSubscribeResponseMessage
        | BarsUnsubscribeResponseMessage
        | BarsUpdateMessage
        | ErrorMessage
        | NoticeMessage
        | PongMessage
        | QuotesSubscribeResponseMessage
        | QuotesUnsubscribeResponseMessage
        | QuotesUpdateMessage
    ]
):
    root: (
        BarsSubscribeResponseMessage
        | BarsUnsubscribeResponseMessage
        | BarsUpdateMessage
        | ErrorMessage
        | NoticeMessage
        | PongMessage
        | QuotesSubscribeResponseMessage
        | QuotesUnsubscribeResponseMessage
        | QuotesUpdateMessage
    ) = Field(
        ...,
        description="Any message the server sends; `type` tells them apart.",
        discriminator="type",
        title="ServerMessage",
    )


class BarsSubscribeMessagePayload(RootModel[BarsSubscribeMessage]):
    root: BarsSubscribeMessage


class BarsSubscribeResponseMessagePayload(RootModel[BarsSubscribeResponseMessage]):
    root: BarsSubscribeResponseMessage


class BarsUnsubscribeMessagePayload(RootModel[BarsUnsubscribeMessage]):
    root: BarsUnsubscribeMessage


class BarsUnsubscribeResponseMessagePayload(RootModel[BarsUnsubscribeResponseMessage]):
    root: BarsUnsubscribeResponseMessage


class BarsUpdateMessagePayload(RootModel[BarsUpdateMessage]):
    root: BarsUpdateMessage


class ErrorMessagePayload(RootModel[ErrorMessage]):
    root: ErrorMessage


class NoticeMessagePayload(RootModel[NoticeMessage]):
    root: NoticeMessage


class PingMessagePayload(RootModel[PingMessage]):
    root: PingMessage


class PongMessagePayload(RootModel[PongMessage]):
    root: PongMessage


class QuotesSubscribeMessagePayload(RootModel[QuotesSubscribeMessage]):
    root: QuotesSubscribeMessage


class QuotesSubscribeResponseMessagePayload(RootModel[QuotesSubscribeResponseMessage]):
    root: QuotesSubscribeResponseMessage


class QuotesUnsubscribeMessagePayload(RootModel[QuotesUnsubscribeMessage]):
    root: QuotesUnsubscribeMessage


class QuotesUnsubscribeResponseMessagePayload(RootModel[QuotesUnsubscribeResponseMessage]):
    root: QuotesUnsubscribeResponseMessage


class QuotesUpdateMessagePayload(RootModel[QuotesUpdateMessage]):
    root: QuotesUpdateMessage


class StreamBarsSymbolResolutionPublishMessage1Payload(RootModel[PingMessage]):
    root: PingMessage


class StreamBarsSymbolResolutionSubscribeMessage1Payload(RootModel[BarsUpdateMessage]):
    root: BarsUpdateMessage


class StreamBarsSymbolResolutionSubscribeMessage2Payload(RootModel[PongMessage]):
    root: PongMessage


class StreamBarsSymbolResolutionSubscribeMessage3Payload(RootModel[NoticeMessage]):
    root: NoticeMessage


class StreamBarsSymbolResolutionSubscribeMessage4Payload(RootModel[ErrorMessage]):
    root: ErrorMessage


class StreamQuotesSymbolPublishMessage1Payload(RootModel[PingMessage]):
    root: PingMessage


class StreamQuotesSymbolSubscribeMessage1Payload(RootModel[QuotesUpdateMessage]):
    root: QuotesUpdateMessage


class StreamQuotesSymbolSubscribeMessage2Payload(RootModel[PongMessage]):
    root: PongMessage


class StreamQuotesSymbolSubscribeMessage3Payload(RootModel[NoticeMessage]):
    root: NoticeMessage


class StreamQuotesSymbolSubscribeMessage4Payload(RootModel[ErrorMessage]):
    root: ErrorMessage


class ClientMessage(
    RootModel[
        BarsSubscribeMessage
        | BarsUnsubscribeMessage
        | PingMessage
        | QuotesSubscribeMessage
        | QuotesUnsubscribeMessage
    ]
):
    root: (
        BarsSubscribeMessage
        | BarsUnsubscribeMessage
        | PingMessage
        | QuotesSubscribeMessage
        | QuotesUnsubscribeMessage
    ) = Field(
        ...,
        description="Any message the client sends; `type` tells them apart.",
        discriminator="type",
        title="ClientMessage",
    )
