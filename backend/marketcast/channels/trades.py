"""The ``trades`` family: every (aggregate) trade of a symbol, in upstream id order.

History is the newest ``KEPT`` trades per symbol (``History.RECENT``), in memory or in Redis:
``snapshot`` returns up to that many, continuous with the stream by trade id. A client that
keeps up gets every trade (no conflation: the frames are ``final``); one that falls behind is
subject to the outbox limits and, past them, closed as a slow consumer, like closed bars.
Ids are strictly increasing per symbol, so the stream manager drops repeats by id and the
feeds fill upstream gaps by id (Binance REST ``aggTrades?fromId=``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import Field

from marketcast.channels.base import Docs, Family, History, Models
from marketcast.channels.numbers import NUMBERS_ON_THE_WIRE
from marketcast.market import RecentRecord, StreamKey
from marketcast.protocol import ClientModel, Integral, Reply, ServerModel, SymbolField
from marketcast.types import Millis, Topic
from marketcast.wire import Frame, envelope

ROUTE: Final = "trades"
#: Trades kept per symbol for snapshots, and the largest ``snapshot`` a client may ask for.
KEPT: Final = 500

#: Which side took liquidity: ``buy`` when the buyer crossed the spread (Binance ``m`` false).
Side = Literal["buy", "sell"]


@dataclass(frozen=True, slots=True)
class Trade:
    """One (aggregate) trade. ``id`` is the upstream's, strictly increasing per symbol: it is
    how gaps are filled and repeats dropped."""

    id: int
    time: Millis
    price: float
    quantity: float
    side: Side


@dataclass(frozen=True, slots=True)
class TradeKey(StreamKey):
    """Identifies one trade stream: a symbol."""


# ---- messages ----------------------------------------------------------------------------


class TradesParams(ClientModel):
    """Topic parameters of the ``trades`` route (none: a symbol's trades are one stream)."""


class TradesSubscribePayload(ClientModel):
    """Subscribe to a symbol's trades, optionally with the newest ones first."""

    symbol: SymbolField
    params: TradesParams = Field(default_factory=TradesParams)
    snapshot: Annotated[int, Field(ge=0, le=KEPT), Integral] = Field(
        default=0,
        description=f"Return the newest N trades (at most {KEPT}) in the response, oldest "
        "first, then stream from the next one.",
    )


class TradesUnsubscribePayload(ClientModel):
    """Stop receiving a symbol's trades."""

    symbol: SymbolField
    params: TradesParams = Field(default_factory=TradesParams)


class TradeRecord(ServerModel):
    """One trade: ``id`` is the upstream's (strictly increasing per symbol), ``time`` ms UTC,
    ``side`` the aggressor's (``buy``: the buyer took the offer)."""

    id: int
    time: int
    price: float
    quantity: float
    side: Side


class TradesSubscribeResponsePayload(Reply):
    """Reply to ``trades.subscribe``; ``trades`` holds the snapshot, oldest first."""

    trades: list[TradeRecord] | None = None


class TradesUnsubscribeResponsePayload(Reply):
    """Reply to ``trades.unsubscribe``."""


class TradesUpdatePayload(TradeRecord):
    """A live trade: a ``TradeRecord`` plus what routes it."""

    topic: str
    symbol: str


# ---- the declaration ---------------------------------------------------------------------

_UPDATE: Final = f"{ROUTE}.update"
_TOPIC = 'trades:{"symbol":"BTCUSDT"}'
_PARAMS = {"symbol": "BTCUSDT", "params": {}}
_OK = {"status": "ok", "symbol": "BTCUSDT"}
_TRADE = {"id": 3021447718, "time": 1763683212345, "price": 91288.75, "quantity": 0.0132}


def trade_dict(trade: Trade) -> dict[str, Any]:
    """A trade as a ``TradeRecord``."""
    return {
        "id": trade.id,
        "time": trade.time,
        "price": trade.price,
        "quantity": trade.quantity,
        "side": trade.side,
    }


class TradesFamily(Family):
    route: ClassVar[str] = ROUTE
    key_type: ClassVar[type[StreamKey]] = TradeKey
    models: ClassVar[Models] = Models(
        params=TradesParams,
        subscribe=TradesSubscribePayload,
        subscribe_response=TradesSubscribeResponsePayload,
        unsubscribe=TradesUnsubscribePayload,
        unsubscribe_response=TradesUnsubscribeResponsePayload,
        update=TradesUpdatePayload,
        item=TradeRecord,
    )
    history: ClassVar[History] = History.RECENT
    snapshot_field: ClassVar[str | None] = "trades"
    snapshot_max: ClassVar[int] = KEPT
    models_module: ClassVar[str | None] = __name__
    router_module: ClassVar[str | None] = "marketcast.ws.generated.trades"
    docs: ClassVar[Docs] = Docs(
        description="every trade of a symbol, in upstream order, with a snapshot.",
        channel="Trades per symbol (Binance aggregate trades; the simulator's trades), "
        "each exactly once and in id order, also across upstream drops; a snapshot of the "
        f"newest {KEPT} with `snapshot`. Symbols whose source has no trades (Twelve Data "
        "forex) refuse the subscription with `unsupported_channel`. " + NUMBERS_ON_THE_WIRE,
        subscribe_summary="Receive a symbol's trades, after a snapshot of the newest ones.",
        subscribe_description="Subscribe to the topic of a symbol's trades; with "
        "``snapshot`` the reply carries the newest trades, continuous with the stream by id.",
        update_noun="trades",
        update_summary="A trade.",
        update_description="Sent once per trade, in strictly increasing ``id`` order.",
        slow_client="Trades are never conflated. A client that falls behind keeps every trade "
        "while its queue has room; past the outbox limits it is closed as a slow consumer "
        "(4008) and resumes with a snapshot.",
        raw_summary="trades.update for this symbol, every trade in id order.",
        examples={
            "trades.subscribe": {
                "type": "trades.subscribe",
                "id": "t1",
                "payload": {**_PARAMS, "snapshot": 2},
            },
            "trades.subscribe.response": {
                "type": "trades.subscribe.response",
                "id": "t1",
                "payload": {
                    **_OK,
                    "message": "subscribed",
                    "topic": _TOPIC,
                    "trades": [
                        {**_TRADE, "id": 3021447716, "side": "sell"},
                        {**_TRADE, "id": 3021447717, "side": "buy"},
                    ],
                },
            },
            "trades.unsubscribe": {"type": "trades.unsubscribe", "id": "t2", "payload": _PARAMS},
            "trades.unsubscribe.response": {
                "type": "trades.unsubscribe.response",
                "id": "t2",
                "payload": {**_OK, "message": "unsubscribed", "topic": _TOPIC},
            },
            "trades.update": {
                "type": "trades.update",
                "payload": {"topic": _TOPIC, "symbol": "BTCUSDT", **_TRADE, "side": "buy"},
            },
        },
    )

    def update(self, topic: Topic, key: StreamKey, event: object) -> Frame:
        assert isinstance(event, Trade)
        payload = {"topic": topic, "symbol": key.symbol, **trade_dict(event)}
        return Frame(envelope(_UPDATE, payload), topic, event.id, True)

    def record(self, event: object) -> dict[str, Any]:
        assert isinstance(event, Trade)
        return trade_dict(event)

    def joined(self, kept: Sequence[RecentRecord]) -> Sequence[RecentRecord]:
        """Trade ids are consecutive upstream (Binance's aggregate ids; the simulator's own),
        so a jump means trades nobody delivered here (a pause in watching, a takeover with
        more than the feed could refill): a snapshot is the newest run without a jump."""
        start = len(kept) - 1
        while start > 0 and kept[start - 1].order == kept[start].order - 1:
            start -= 1
        return kept[max(start, 0) :]

    def event_of(self, record: Mapping[str, Any]) -> object:
        return Trade(
            record["id"], record["time"], record["price"], record["quantity"], record["side"]
        )
