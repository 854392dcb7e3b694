"""The ``quotes`` family: the newest quote (bid, ask, last) per symbol.

No history: a subscriber gets quotes from now on. A quote replaces the previous one, so a slow
client gets the latest quote only (the frames carry no ``order``, so any newer one replaces an
older one in its queue).
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

from pydantic import Field

from marketcast.channels.base import Docs, Family, Models
from marketcast.channels.numbers import NUMBERS_ON_THE_WIRE
from marketcast.market import Quote, QuoteKey, StreamKey
from marketcast.protocol import ClientModel, Reply, ServerModel, SymbolField
from marketcast.types import Topic
from marketcast.wire import Frame, envelope

ROUTE: Final = "quotes"


class QuotesParams(ClientModel):
    """Topic parameters of the ``quotes`` route (none today; the object is kept for symmetry)."""


class QuotesSubscribePayload(ClientModel):
    """Subscribe to a symbol's quotes."""

    symbol: SymbolField
    params: QuotesParams = Field(default_factory=QuotesParams)


class QuotesUnsubscribePayload(ClientModel):
    """Stop receiving a symbol's quotes."""

    symbol: SymbolField
    params: QuotesParams = Field(default_factory=QuotesParams)


class QuotesSubscribeResponsePayload(Reply):
    """Reply to ``quotes.subscribe``."""


class QuotesUnsubscribeResponsePayload(Reply):
    """Reply to ``quotes.unsubscribe``."""


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


_UPDATE: Final = f"{ROUTE}.update"
_TOPIC = 'quotes:{"symbol":"BTCUSDT"}'
_PARAMS = {"symbol": "BTCUSDT", "params": {}}
_OK = {"status": "ok", "symbol": "BTCUSDT"}


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
    return Frame(envelope(_UPDATE, payload), topic)


class QuotesFamily(Family):
    route: ClassVar[str] = ROUTE
    key_type: ClassVar[type[StreamKey]] = QuoteKey
    models: ClassVar[Models] = Models(
        params=QuotesParams,
        subscribe=QuotesSubscribePayload,
        subscribe_response=QuotesSubscribeResponsePayload,
        unsubscribe=QuotesUnsubscribePayload,
        unsubscribe_response=QuotesUnsubscribeResponsePayload,
        update=QuotesUpdatePayload,
    )
    models_module: ClassVar[str | None] = __name__
    router_module: ClassVar[str | None] = "marketcast.ws.generated.quotes"
    docs: ClassVar[Docs] = Docs(
        description="live quotes (bid, ask, last) per symbol.",
        channel="Quotes (bid, ask, last) per symbol. " + NUMBERS_ON_THE_WIRE,
        subscribe_summary="Receive a symbol's quotes.",
        subscribe_description="Subscribe to the topic of a symbol's quotes.",
        update_noun="quotes",
        update_summary="A new quote.",
        update_description="Sent on every quote change of the symbol.",
        slow_client="A client that falls behind gets the newest quote only: a newer quote "
        "replaces an older one still in its queue.",
        raw_summary="quotes.update for this symbol.",
        examples={
            "quotes.subscribe": {"type": "quotes.subscribe", "id": "q1", "payload": _PARAMS},
            "quotes.subscribe.response": {
                "type": "quotes.subscribe.response",
                "id": "q1",
                "payload": {**_OK, "message": "subscribed", "topic": _TOPIC},
            },
            "quotes.unsubscribe": {"type": "quotes.unsubscribe", "id": "q2", "payload": _PARAMS},
            "quotes.unsubscribe.response": {
                "type": "quotes.unsubscribe.response",
                "id": "q2",
                "payload": {**_OK, "message": "unsubscribed", "topic": _TOPIC},
            },
            "quotes.update": {
                "type": "quotes.update",
                "payload": {
                    "topic": _TOPIC,
                    "symbol": "BTCUSDT",
                    "time": 1763683212345,
                    "bid": 91288.5,
                    "ask": 91289.0,
                    "last": 91288.75,
                    "volume": 1532.77,
                    "change": 412.25,
                    "change_percent": 0.45,
                },
            },
        },
    )

    def update(self, topic: Topic, key: StreamKey, event: object) -> Frame:
        assert isinstance(event, Quote)
        return quote_update(topic, key.symbol, event)
