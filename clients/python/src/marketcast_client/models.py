"""The wire messages of marketcast, as pydantic v2 models.

Envelopes carry a ``Literal`` ``type`` (the discriminator of ``ClientMessage`` and
``ServerMessage``). Models of what the client sends refuse unknown fields, as the
server does; models of what the server sends ignore them, so that a server adding
an optional field does not break deployed clients. Conformance checks that must
refuse them validate with ``context={"forbid_extra": True}``.

Generated from docs/asyncapi.json by scripts/generate_python_client.py: do not edit.
Regenerate with `python scripts/generate_python_client.py` after the contract changes.
"""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal, NamedTuple, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator


class ClientModel(BaseModel):
    """Base of what the client sends: the server refuses unknown fields, so do we."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ServerModel(BaseModel):
    """Base of what the server sends: unknown fields are ignored unless the
    validation context asks for ``forbid_extra`` (see the module docstring)."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_fields(cls, data: Any, info: ValidationInfo) -> Any:
        context = info.context
        if isinstance(context, dict) and context.get("forbid_extra") and isinstance(data, dict):
            known = {field.alias or name for name, field in cls.model_fields.items()}
            unknown = sorted(str(key) for key in data if key not in known)
            if unknown:
                raise ValueError(f"unknown fields: {', '.join(unknown)}")
        return data


class Bar(ServerModel):
    """One candle in a snapshot or history: ``time`` is the bucket's open time, ms UTC."""

    time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    closed: bool


class BarsParams(ServerModel):
    """Topic parameters of the ``bars`` route."""

    #: TradingView resolution; `1D`, `1W`, `1M` are accepted as aliases of `D`, `W`, `M`
    #: (TradingView sends both spellings) and written back canonical, in the reply's `topic` and in
    #: updates.
    resolution: Literal[
        "1", "3", "5", "15", "30", "60", "120", "240", "D", "W", "M", "1D", "1W", "1M"
    ]


class BarsListedSubscription(ServerModel):
    """One ``bars`` subscription of this connection."""

    route: Literal["bars"] = "bars"
    topic: str
    symbol: str
    params: BarsParams


class BarsSubscribePayload(ClientModel):
    """Subscribe to a symbol's candles at one resolution, optionally with history first."""

    #: Upper-case symbol, e.g. `BTCUSDT`, `EUR/USD`, `AAPL`.
    symbol: Annotated[
        str, Field(pattern=r"^[A-Z0-9][A-Z0-9.\-]{0,19}(/[A-Z0-9][A-Z0-9.\-]{0,19})?$")
    ]
    params: BarsParams
    #: Return the last N bars in the response, then stream from there.
    snapshot: Annotated[int, Field(ge=0, le=1000)] = 0
    #: Return every bar whose open time is >= since (ms UTC) in the response; at most the open time
    #: of the bar after the newest one.
    since: Annotated[int | None, Field(ge=0, le=9007199254740991)] = None


class BarsSubscribeMessage(ClientModel):
    """Receive a symbol's candles at one resolution, after a snapshot."""

    type: Literal["bars.subscribe"] = "bars.subscribe"
    payload: BarsSubscribePayload
    #: Optional request id; the reply and any `error` for this request echo it.
    id: (
        Annotated[str, Field(max_length=64)]
        | Annotated[int, Field(ge=-9007199254740991, le=9007199254740991)]
        | None
    ) = None


class BarsSubscribeResponsePayload(ServerModel):
    """Reply to ``bars.subscribe``; ``bars`` holds the snapshot or the bars since ``since``."""

    status: Literal["ok", "error"]
    symbol: str
    message: str
    topic: str
    bars: list[Bar] | None = None
    #: Only with `since`: true when `bars` holds every bar since `since` (from the store, filled
    #: from the upstream where the store has a hole); false when history does not reach back that
    #: far and bars are missing before the first one returned.
    recovered: bool | None = None


class BarsSubscribeResponseMessage(ServerModel):
    """Reply to bars.subscribe."""

    type: Literal["bars.subscribe.response"] = "bars.subscribe.response"
    payload: BarsSubscribeResponsePayload
    #: The `id` of the `bars.subscribe` request this answers, if it had one.
    id: (
        Annotated[str, Field(max_length=64)]
        | Annotated[int, Field(ge=-9007199254740991, le=9007199254740991)]
        | None
    ) = None


class BarsUnsubscribePayload(ClientModel):
    """Stop receiving a symbol's candles at one resolution."""

    #: Upper-case symbol, e.g. `BTCUSDT`, `EUR/USD`, `AAPL`.
    symbol: Annotated[
        str, Field(pattern=r"^[A-Z0-9][A-Z0-9.\-]{0,19}(/[A-Z0-9][A-Z0-9.\-]{0,19})?$")
    ]
    params: BarsParams


class BarsUnsubscribeMessage(ClientModel):
    """Stop receiving candles for a symbol (idempotent)."""

    type: Literal["bars.unsubscribe"] = "bars.unsubscribe"
    payload: BarsUnsubscribePayload
    #: Optional request id; the reply and any `error` for this request echo it.
    id: (
        Annotated[str, Field(max_length=64)]
        | Annotated[int, Field(ge=-9007199254740991, le=9007199254740991)]
        | None
    ) = None


class BarsUnsubscribeResponsePayload(ServerModel):
    """Reply to ``bars.unsubscribe``."""

    status: Literal["ok", "error"]
    symbol: str
    message: str
    topic: str


class BarsUnsubscribeResponseMessage(ServerModel):
    """Reply to bars.unsubscribe."""

    type: Literal["bars.unsubscribe.response"] = "bars.unsubscribe.response"
    payload: BarsUnsubscribeResponsePayload
    #: The `id` of the `bars.unsubscribe` request this answers, if it had one.
    id: (
        Annotated[str, Field(max_length=64)]
        | Annotated[int, Field(ge=-9007199254740991, le=9007199254740991)]
        | None
    ) = None


class BarsUpdatePayload(ServerModel):
    """
    A live candle: the open bar changed, or a bar closed (``closed`` = final).

    It is a ``Bar`` (the same fields as snapshots and history, so clients handle both with one
    type) plus what routes it: its topic, symbol and resolution.
    """

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
    #: Present (true) only on a repeat of the newest bar, sent once when the upstream has been
    #: silent for several intervals; it carries no new data (a closed bar it repeats is not a second
    #: close). The next update without it means data flows again.
    stale: bool = False


class BarsUpdateMessage(ServerModel):
    """A candle changed or closed."""

    type: Literal["bars.update"] = "bars.update"
    payload: BarsUpdatePayload


class BookSnapshot(ServerModel):
    """
    The book at ``seq``: every level (``diff``) or the best ``depth`` (``levels``), each
    side best first.
    """

    #: The upstream update id of the last change in this book.
    seq: int
    #: Upstream time of that change, ms UTC (absent: unknown).
    time: int | None = None
    #: `[price, quantity]`, highest price first.
    bids: list[Annotated[list[Any], Field(min_length=2, max_length=2)]]
    #: `[price, quantity]`, lowest price first.
    asks: list[Annotated[list[Any], Field(min_length=2, max_length=2)]]


class OrderbookParams(ServerModel):
    """Topic parameters of the ``orderbook`` route."""

    #: `levels`: the best `depth` levels, at most every 100 ms, latest wins. `diff`: a full snapshot
    #: in the reply, then every change with `prev_seq` and `seq`.
    mode: Literal["levels", "diff"] = "levels"
    #: Levels per side in `levels` mode (default 20); not allowed in `diff` mode, which serves the
    #: whole book.
    depth: Literal[5, 10, 20, 50] | None = None


class OrderbookSubscribePayload(ClientModel):
    """Subscribe to a symbol's order book in one mode; the reply carries the book."""

    #: Upper-case symbol, e.g. `BTCUSDT`, `EUR/USD`, `AAPL`.
    symbol: Annotated[
        str, Field(pattern=r"^[A-Z0-9][A-Z0-9.\-]{0,19}(/[A-Z0-9][A-Z0-9.\-]{0,19})?$")
    ]
    params: OrderbookParams | None = None


class OrderbookSubscribeMessage(ClientModel):
    """Receive a symbol's order book, after the book as it is now."""

    type: Literal["orderbook.subscribe"] = "orderbook.subscribe"
    payload: OrderbookSubscribePayload
    #: Optional request id; the reply and any `error` for this request echo it.
    id: (
        Annotated[str, Field(max_length=64)]
        | Annotated[int, Field(ge=-9007199254740991, le=9007199254740991)]
        | None
    ) = None


class OrderbookUnsubscribePayload(ClientModel):
    """Stop receiving a symbol's order book in one mode."""

    #: Upper-case symbol, e.g. `BTCUSDT`, `EUR/USD`, `AAPL`.
    symbol: Annotated[
        str, Field(pattern=r"^[A-Z0-9][A-Z0-9.\-]{0,19}(/[A-Z0-9][A-Z0-9.\-]{0,19})?$")
    ]
    params: OrderbookParams | None = None


class OrderbookUnsubscribeMessage(ClientModel):
    """Stop receiving order book updates for a symbol (idempotent)."""

    type: Literal["orderbook.unsubscribe"] = "orderbook.unsubscribe"
    payload: OrderbookUnsubscribePayload
    #: Optional request id; the reply and any `error` for this request echo it.
    id: (
        Annotated[str, Field(max_length=64)]
        | Annotated[int, Field(ge=-9007199254740991, le=9007199254740991)]
        | None
    ) = None


class PingPayload(ClientModel):
    """An application-level ping; browsers cannot see protocol pings, so clients use this."""


class PingMessage(ClientModel):
    """Application-level ping; answered by pong."""

    type: Literal["ping"] = "ping"
    payload: PingPayload
    #: Optional request id; the reply and any `error` for this request echo it.
    id: (
        Annotated[str, Field(max_length=64)]
        | Annotated[int, Field(ge=-9007199254740991, le=9007199254740991)]
        | None
    ) = None


class QuotesParams(ServerModel):
    """Topic parameters of the ``quotes`` route (none today; the object is kept for symmetry)."""


class QuotesSubscribePayload(ClientModel):
    """Subscribe to a symbol's quotes."""

    #: Upper-case symbol, e.g. `BTCUSDT`, `EUR/USD`, `AAPL`.
    symbol: Annotated[
        str, Field(pattern=r"^[A-Z0-9][A-Z0-9.\-]{0,19}(/[A-Z0-9][A-Z0-9.\-]{0,19})?$")
    ]
    params: QuotesParams | None = None


class QuotesSubscribeMessage(ClientModel):
    """Receive a symbol's quotes."""

    type: Literal["quotes.subscribe"] = "quotes.subscribe"
    payload: QuotesSubscribePayload
    #: Optional request id; the reply and any `error` for this request echo it.
    id: (
        Annotated[str, Field(max_length=64)]
        | Annotated[int, Field(ge=-9007199254740991, le=9007199254740991)]
        | None
    ) = None


class QuotesUnsubscribePayload(ClientModel):
    """Stop receiving a symbol's quotes."""

    #: Upper-case symbol, e.g. `BTCUSDT`, `EUR/USD`, `AAPL`.
    symbol: Annotated[
        str, Field(pattern=r"^[A-Z0-9][A-Z0-9.\-]{0,19}(/[A-Z0-9][A-Z0-9.\-]{0,19})?$")
    ]
    params: QuotesParams | None = None


class QuotesUnsubscribeMessage(ClientModel):
    """Stop receiving quotes for a symbol (idempotent)."""

    type: Literal["quotes.unsubscribe"] = "quotes.unsubscribe"
    payload: QuotesUnsubscribePayload
    #: Optional request id; the reply and any `error` for this request echo it.
    id: (
        Annotated[str, Field(max_length=64)]
        | Annotated[int, Field(ge=-9007199254740991, le=9007199254740991)]
        | None
    ) = None


class SubscriptionsListPayload(ClientModel):
    """List this connection's subscriptions (no fields)."""


class SubscriptionsListMessage(ClientModel):
    """List this connection's subscriptions: topic, route, symbol and params of each."""

    type: Literal["subscriptions.list"] = "subscriptions.list"
    payload: SubscriptionsListPayload
    #: Optional request id; the reply and any `error` for this request echo it.
    id: (
        Annotated[str, Field(max_length=64)]
        | Annotated[int, Field(ge=-9007199254740991, le=9007199254740991)]
        | None
    ) = None


class TradesParams(ServerModel):
    """Topic parameters of the ``trades`` route (none: a symbol's trades are one stream)."""


class TradesSubscribePayload(ClientModel):
    """Subscribe to a symbol's trades, optionally with the newest ones first."""

    #: Upper-case symbol, e.g. `BTCUSDT`, `EUR/USD`, `AAPL`.
    symbol: Annotated[
        str, Field(pattern=r"^[A-Z0-9][A-Z0-9.\-]{0,19}(/[A-Z0-9][A-Z0-9.\-]{0,19})?$")
    ]
    params: TradesParams | None = None
    #: Return the newest N trades (at most 500) in the response, oldest first, then stream from the
    #: next one.
    snapshot: Annotated[int, Field(ge=0, le=500)] = 0


class TradesSubscribeMessage(ClientModel):
    """Receive a symbol's trades, after a snapshot of the newest ones."""

    type: Literal["trades.subscribe"] = "trades.subscribe"
    payload: TradesSubscribePayload
    #: Optional request id; the reply and any `error` for this request echo it.
    id: (
        Annotated[str, Field(max_length=64)]
        | Annotated[int, Field(ge=-9007199254740991, le=9007199254740991)]
        | None
    ) = None


class TradesUnsubscribePayload(ClientModel):
    """Stop receiving a symbol's trades."""

    #: Upper-case symbol, e.g. `BTCUSDT`, `EUR/USD`, `AAPL`.
    symbol: Annotated[
        str, Field(pattern=r"^[A-Z0-9][A-Z0-9.\-]{0,19}(/[A-Z0-9][A-Z0-9.\-]{0,19})?$")
    ]
    params: TradesParams | None = None


class TradesUnsubscribeMessage(ClientModel):
    """Stop receiving trades for a symbol (idempotent)."""

    type: Literal["trades.unsubscribe"] = "trades.unsubscribe"
    payload: TradesUnsubscribePayload
    #: Optional request id; the reply and any `error` for this request echo it.
    id: (
        Annotated[str, Field(max_length=64)]
        | Annotated[int, Field(ge=-9007199254740991, le=9007199254740991)]
        | None
    ) = None


#: Any message the client sends; `type` tells them apart.
ClientMessage: TypeAlias = Annotated[
    BarsSubscribeMessage
    | BarsUnsubscribeMessage
    | OrderbookSubscribeMessage
    | OrderbookUnsubscribeMessage
    | PingMessage
    | QuotesSubscribeMessage
    | QuotesUnsubscribeMessage
    | SubscriptionsListMessage
    | TradesSubscribeMessage
    | TradesUnsubscribeMessage,
    Field(discriminator="type"),
]


#: The ``code`` of an ``error`` message. Clients switch on these, so they are stable.
ErrorCode: TypeAlias = Literal[
    "invalid_json",
    "invalid_message",
    "unsupported_frame",
    "unknown_type",
    "validation_error",
    "invalid_symbol",
    "unknown_symbol",
    "unsupported_resolution",
    "unsupported_channel",
    "too_many_subscriptions",
    "invalid_stream",
    "rate_limited",
    "forbidden",
    "unavailable",
    "internal_error",
]


class ErrorPayload(ServerModel):
    """Why a client frame was refused; the connection stays open."""

    code: ErrorCode
    message: str
    #: The `type` of the refused request, when it could be read.
    request_type: str | None = None


class ErrorMessage(ServerModel):
    """A client frame was refused; the connection stays open."""

    type: Literal["error"] = "error"
    payload: ErrorPayload
    #: The `id` of the refused request, when it could be read.
    id: (
        Annotated[str, Field(max_length=64)]
        | Annotated[int, Field(ge=-9007199254740991, le=9007199254740991)]
        | None
    ) = None


class NoticePayload(ServerModel):
    """The server will close this connection soon; reconnect (with ``since``) to resume."""

    #: `shutdown`: the server is draining; `max_lifetime`: this connection reached its maximum
    #: lifetime.
    code: Literal["shutdown", "max_lifetime"]
    message: str
    #: The WebSocket close code that will follow (1001).
    close_code: int
    #: Milliseconds until the close; queued updates are still delivered.
    close_in_ms: Annotated[int, Field(ge=0)]


class NoticeMessage(ServerModel):
    """The server will close this connection soon; reconnect to resume."""

    type: Literal["notice"] = "notice"
    payload: NoticePayload


class OrderbookListedSubscription(ServerModel):
    """One ``orderbook`` subscription of this connection."""

    route: Literal["orderbook"] = "orderbook"
    topic: str
    symbol: str
    params: OrderbookParams


class OrderbookSubscribeResponsePayload(ServerModel):
    """
    Reply to ``orderbook.subscribe``; ``book`` is the book at the instant of subscribing
    (null only while the upstream book is not joined yet: it then comes as a ``reset``).
    """

    status: Literal["ok", "error"]
    symbol: str
    message: str
    topic: str
    book: BookSnapshot | None = None


class OrderbookSubscribeResponseMessage(ServerModel):
    """Reply to orderbook.subscribe."""

    type: Literal["orderbook.subscribe.response"] = "orderbook.subscribe.response"
    payload: OrderbookSubscribeResponsePayload
    #: The `id` of the `orderbook.subscribe` request this answers, if it had one.
    id: (
        Annotated[str, Field(max_length=64)]
        | Annotated[int, Field(ge=-9007199254740991, le=9007199254740991)]
        | None
    ) = None


class OrderbookUnsubscribeResponsePayload(ServerModel):
    """Reply to ``orderbook.unsubscribe``."""

    status: Literal["ok", "error"]
    symbol: str
    message: str
    topic: str


class OrderbookUnsubscribeResponseMessage(ServerModel):
    """Reply to orderbook.unsubscribe."""

    type: Literal["orderbook.unsubscribe.response"] = "orderbook.unsubscribe.response"
    payload: OrderbookUnsubscribeResponsePayload
    #: The `id` of the `orderbook.unsubscribe` request this answers, if it had one.
    id: (
        Annotated[str, Field(max_length=64)]
        | Annotated[int, Field(ge=-9007199254740991, le=9007199254740991)]
        | None
    ) = None


class OrderbookUpdatePayload(ServerModel):
    """A change of the book: the best levels (``levels``) or the changed ones (``diff``)."""

    topic: str
    symbol: str
    mode: Literal["levels", "diff"]
    #: The upstream update id of the last change included.
    seq: int
    #: Upstream time of that change, ms UTC (null: unknown).
    time: int | None = None
    bids: list[Annotated[list[Any], Field(min_length=2, max_length=2)]]
    asks: list[Annotated[list[Any], Field(min_length=2, max_length=2)]]
    #: `levels` only: levels per side.
    depth: int | None = None
    #: `diff` only: the `seq` this diff applies to; null on a `reset`. A client holding another
    #: `seq` missed a diff and must resubscribe.
    prev_seq: int | None = None
    #: `diff` only, true: the whole book again after an upstream resync; replace the book held with
    #: it.
    reset: bool | None = None


class OrderbookUpdateMessage(ServerModel):
    """The book changed."""

    type: Literal["orderbook.update"] = "orderbook.update"
    payload: OrderbookUpdatePayload


class PongPayload(ServerModel):
    """Reply to ``ping``: the server's clock, ms UTC."""

    time: int


class PongMessage(ServerModel):
    """Reply to ping."""

    type: Literal["pong"] = "pong"
    payload: PongPayload
    #: The `id` of the `ping` request this answers, if it had one.
    id: (
        Annotated[str, Field(max_length=64)]
        | Annotated[int, Field(ge=-9007199254740991, le=9007199254740991)]
        | None
    ) = None


class QuotesListedSubscription(ServerModel):
    """One ``quotes`` subscription of this connection."""

    route: Literal["quotes"] = "quotes"
    topic: str
    symbol: str
    params: QuotesParams


class QuotesSubscribeResponsePayload(ServerModel):
    """Reply to ``quotes.subscribe``."""

    status: Literal["ok", "error"]
    symbol: str
    message: str
    topic: str


class QuotesSubscribeResponseMessage(ServerModel):
    """Reply to quotes.subscribe."""

    type: Literal["quotes.subscribe.response"] = "quotes.subscribe.response"
    payload: QuotesSubscribeResponsePayload
    #: The `id` of the `quotes.subscribe` request this answers, if it had one.
    id: (
        Annotated[str, Field(max_length=64)]
        | Annotated[int, Field(ge=-9007199254740991, le=9007199254740991)]
        | None
    ) = None


class QuotesUnsubscribeResponsePayload(ServerModel):
    """Reply to ``quotes.unsubscribe``."""

    status: Literal["ok", "error"]
    symbol: str
    message: str
    topic: str


class QuotesUnsubscribeResponseMessage(ServerModel):
    """Reply to quotes.unsubscribe."""

    type: Literal["quotes.unsubscribe.response"] = "quotes.unsubscribe.response"
    payload: QuotesUnsubscribeResponsePayload
    #: The `id` of the `quotes.unsubscribe` request this answers, if it had one.
    id: (
        Annotated[str, Field(max_length=64)]
        | Annotated[int, Field(ge=-9007199254740991, le=9007199254740991)]
        | None
    ) = None


class QuotesUpdatePayload(ServerModel):
    """A live quote."""

    topic: str
    symbol: str
    time: int
    bid: float
    ask: float
    last: float
    volume: float | None = None
    change: float | None = None
    change_percent: float | None = None


class QuotesUpdateMessage(ServerModel):
    """A new quote."""

    type: Literal["quotes.update"] = "quotes.update"
    payload: QuotesUpdatePayload


class TradesListedSubscription(ServerModel):
    """One ``trades`` subscription of this connection."""

    route: Literal["trades"] = "trades"
    topic: str
    symbol: str
    params: TradesParams


class SubscriptionsListResponsePayload(ServerModel):
    """
    Reply to ``subscriptions.list``: every topic this connection receives, in the order it
    subscribed, each with its route, symbol and params.
    """

    subscriptions: list[
        BarsListedSubscription
        | QuotesListedSubscription
        | TradesListedSubscription
        | OrderbookListedSubscription
    ]


class SubscriptionsListResponseMessage(ServerModel):
    """Reply to subscriptions.list."""

    type: Literal["subscriptions.list.response"] = "subscriptions.list.response"
    payload: SubscriptionsListResponsePayload
    #: The `id` of the `subscriptions.list` request this answers, if it had one.
    id: (
        Annotated[str, Field(max_length=64)]
        | Annotated[int, Field(ge=-9007199254740991, le=9007199254740991)]
        | None
    ) = None


class TradeRecord(ServerModel):
    """
    One trade: ``id`` is the upstream's (strictly increasing per symbol), ``time`` ms UTC,
    ``side`` the aggressor's (``buy``: the buyer took the offer).
    """

    id: int
    time: int
    price: float
    quantity: float
    side: Literal["buy", "sell"]


class TradesSubscribeResponsePayload(ServerModel):
    """Reply to ``trades.subscribe``; ``trades`` holds the snapshot, oldest first."""

    status: Literal["ok", "error"]
    symbol: str
    message: str
    topic: str
    trades: list[TradeRecord] | None = None


class TradesSubscribeResponseMessage(ServerModel):
    """Reply to trades.subscribe."""

    type: Literal["trades.subscribe.response"] = "trades.subscribe.response"
    payload: TradesSubscribeResponsePayload
    #: The `id` of the `trades.subscribe` request this answers, if it had one.
    id: (
        Annotated[str, Field(max_length=64)]
        | Annotated[int, Field(ge=-9007199254740991, le=9007199254740991)]
        | None
    ) = None


class TradesUnsubscribeResponsePayload(ServerModel):
    """Reply to ``trades.unsubscribe``."""

    status: Literal["ok", "error"]
    symbol: str
    message: str
    topic: str


class TradesUnsubscribeResponseMessage(ServerModel):
    """Reply to trades.unsubscribe."""

    type: Literal["trades.unsubscribe.response"] = "trades.unsubscribe.response"
    payload: TradesUnsubscribeResponsePayload
    #: The `id` of the `trades.unsubscribe` request this answers, if it had one.
    id: (
        Annotated[str, Field(max_length=64)]
        | Annotated[int, Field(ge=-9007199254740991, le=9007199254740991)]
        | None
    ) = None


class TradesUpdatePayload(ServerModel):
    """A live trade: a ``TradeRecord`` plus what routes it."""

    id: int
    time: int
    price: float
    quantity: float
    side: Literal["buy", "sell"]
    topic: str
    symbol: str


class TradesUpdateMessage(ServerModel):
    """A trade."""

    type: Literal["trades.update"] = "trades.update"
    payload: TradesUpdatePayload


#: Any message the server sends; `type` tells them apart.
ServerMessage: TypeAlias = Annotated[
    BarsSubscribeResponseMessage
    | BarsUnsubscribeResponseMessage
    | BarsUpdateMessage
    | ErrorMessage
    | NoticeMessage
    | OrderbookSubscribeResponseMessage
    | OrderbookUnsubscribeResponseMessage
    | OrderbookUpdateMessage
    | PongMessage
    | QuotesSubscribeResponseMessage
    | QuotesUnsubscribeResponseMessage
    | QuotesUpdateMessage
    | SubscriptionsListResponseMessage
    | TradesSubscribeResponseMessage
    | TradesUnsubscribeResponseMessage
    | TradesUpdateMessage,
    Field(discriminator="type"),
]


CloseRetry: TypeAlias = Literal["never", "immediate", "growing", "backoff"]
ErrorRetry: TypeAlias = Literal["never", "later"]


class CloseCodeInfo(NamedTuple):
    """What a close code means, and what a client does next: ``never`` retry, reconnect
    ``immediate``-ly, ``growing`` back-off (reset only once a later connection is
    stable), or plain ``backoff`` (``x-close-codes``)."""

    meaning: str
    retry: CloseRetry


#: Every close code the server sends (``x-close-codes``).
CLOSE_CODES: Final[Mapping[int, CloseCodeInfo]] = MappingProxyType(
    {
        1000: CloseCodeInfo("normal closure", "backoff"),
        1001: CloseCodeInfo(
            "going away: the server drains or the connection reached its lifetime", "immediate"
        ),
        1007: CloseCodeInfo("a text frame that is not valid UTF-8", "never"),
        1008: CloseCodeInfo("the client kept sending over its rate limit", "growing"),
        1009: CloseCodeInfo("a client frame larger than the server's limit", "never"),
        1011: CloseCodeInfo("a protocol ping was not answered in time", "backoff"),
        1012: CloseCodeInfo("the server stopped without draining", "backoff"),
        1013: CloseCodeInfo("the worker is at its connection cap, or shutting down", "growing"),
        4008: CloseCodeInfo("slow consumer: the client did not read fast enough", "growing"),
        4404: CloseCodeInfo("a raw stream that cannot be served to this client", "never"),
    }
)

#: Whether a refused request may be sent again after a delay (``later``) or not
#: (``never``), by error code (``x-error-codes``).
ERROR_CODE_RETRY: Final[Mapping[str, ErrorRetry]] = MappingProxyType(
    {
        "invalid_json": "never",
        "invalid_message": "never",
        "unsupported_frame": "never",
        "unknown_type": "never",
        "validation_error": "never",
        "invalid_symbol": "never",
        "unknown_symbol": "never",
        "unsupported_resolution": "never",
        "unsupported_channel": "never",
        "too_many_subscriptions": "never",
        "invalid_stream": "never",
        "rate_limited": "later",
        "forbidden": "never",
        "unavailable": "later",
        "internal_error": "later",
    }
)
