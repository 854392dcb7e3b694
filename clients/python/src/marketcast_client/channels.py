"""Typed subscribe methods, one per channel family of the AsyncAPI document.

Each family also gets a ``Family`` descriptor (which models carry its requests,
replies and updates) that the hand-written core uses to route and recover.

Generated from docs/asyncapi.json by scripts/generate_python_client.py: do not edit.
Regenerate with `python scripts/generate_python_client.py` after the contract changes.
"""

from collections.abc import Mapping
from typing import Any, Final, Literal, TypeAlias

from .core import ClientCore, Family, Subscription
from .models import (
    BarsParams,
    BarsSubscribeMessage,
    BarsSubscribePayload,
    BarsSubscribeResponsePayload,
    BarsUnsubscribeMessage,
    BarsUnsubscribePayload,
    BarsUpdatePayload,
    OrderbookParams,
    OrderbookSubscribeMessage,
    OrderbookSubscribePayload,
    OrderbookSubscribeResponsePayload,
    OrderbookUnsubscribeMessage,
    OrderbookUnsubscribePayload,
    OrderbookUpdatePayload,
    QuotesParams,
    QuotesSubscribeMessage,
    QuotesSubscribePayload,
    QuotesSubscribeResponsePayload,
    QuotesUnsubscribeMessage,
    QuotesUnsubscribePayload,
    QuotesUpdatePayload,
    TradesParams,
    TradesSubscribeMessage,
    TradesSubscribePayload,
    TradesSubscribeResponsePayload,
    TradesUnsubscribeMessage,
    TradesUnsubscribePayload,
    TradesUpdatePayload,
)

#: Updates of a ``bars`` subscription are ``BarsUpdatePayload``.
BarsSubscription: TypeAlias = Subscription[BarsSubscribeResponsePayload, BarsUpdatePayload]
BARS: Final = Family(
    name="bars",
    subscribe=BarsSubscribeMessage,
    reply=BarsSubscribeResponsePayload,
    unsubscribe=BarsUnsubscribeMessage,
    unsubscribe_payload=BarsUnsubscribePayload,
    update_type="bars.update",
    update=BarsUpdatePayload,
    replay_field="bars",
    resume_snapshot=None,
)


#: Updates of a ``orderbook`` subscription are ``OrderbookUpdatePayload``.
OrderbookSubscription: TypeAlias = Subscription[
    OrderbookSubscribeResponsePayload, OrderbookUpdatePayload
]
ORDERBOOK: Final = Family(
    name="orderbook",
    subscribe=OrderbookSubscribeMessage,
    reply=OrderbookSubscribeResponsePayload,
    unsubscribe=OrderbookUnsubscribeMessage,
    unsubscribe_payload=OrderbookUnsubscribePayload,
    update_type="orderbook.update",
    update=OrderbookUpdatePayload,
    replay_field=None,
    resume_snapshot=None,
)


#: Updates of a ``quotes`` subscription are ``QuotesUpdatePayload``.
QuotesSubscription: TypeAlias = Subscription[QuotesSubscribeResponsePayload, QuotesUpdatePayload]
QUOTES: Final = Family(
    name="quotes",
    subscribe=QuotesSubscribeMessage,
    reply=QuotesSubscribeResponsePayload,
    unsubscribe=QuotesUnsubscribeMessage,
    unsubscribe_payload=QuotesUnsubscribePayload,
    update_type="quotes.update",
    update=QuotesUpdatePayload,
    replay_field=None,
    resume_snapshot=None,
)


#: Updates of a ``trades`` subscription are ``TradesUpdatePayload``.
TradesSubscription: TypeAlias = Subscription[TradesSubscribeResponsePayload, TradesUpdatePayload]
TRADES: Final = Family(
    name="trades",
    subscribe=TradesSubscribeMessage,
    reply=TradesSubscribeResponsePayload,
    unsubscribe=TradesUnsubscribeMessage,
    unsubscribe_payload=TradesUnsubscribePayload,
    update_type="trades.update",
    update=TradesUpdatePayload,
    replay_field="trades",
    resume_snapshot=500,
)


#: Every family, by name: how the core routes ``<family>.update`` frames.
FAMILIES: Final[Mapping[str, Family[Any, Any]]] = {
    "bars": BARS,
    "orderbook": ORDERBOOK,
    "quotes": QUOTES,
    "trades": TRADES,
}


class GeneratedChannels(ClientCore):
    """The typed ``subscribe_<family>`` methods; ``MarketcastClient`` inherits them."""

    _families = FAMILIES

    async def subscribe_bars(
        self,
        symbol: str,
        *,
        resolution: Literal[
            "1", "3", "5", "15", "30", "60", "120", "240", "D", "W", "M", "1D", "1W", "1M"
        ],
        snapshot: int = 0,
        since: int | None = None,
    ) -> BarsSubscription:
        """
        Receive a symbol's candles at one resolution, after a snapshot.

        Subscribe to the topic of (symbol, resolution); with ``snapshot`` or ``since`` the reply
        carries bars, continuous with the stream.

        Answered by `bars.subscribe.response`.

        Returns once the server confirmed; iterate the subscription for ``BarsUpdatePayload``.
        Raises a ``ServerError`` subclass when the server refuses the subscription.

        After a reconnect it subscribes again with ``since`` after the last closed item passed on,
        and yields the items of the reply's ``bars`` it had not yielded yet, in order: each closed
        one once. The first reply's ``bars`` (the snapshot) stay in ``subscription.reply``.
        """
        payload = BarsSubscribePayload(
            symbol=symbol, params=BarsParams(resolution=resolution), snapshot=snapshot, since=since
        )
        return await self._subscribe(BARS, payload)

    async def subscribe_orderbook(
        self,
        symbol: str,
        *,
        mode: Literal["levels", "diff"] = "levels",
        depth: Literal[5, 10, 20, 50] | None = None,
    ) -> OrderbookSubscription:
        """
        Receive a symbol's order book, after the book as it is now.

        Subscribe to the topic of (symbol, mode, depth); the reply's ``book`` is the book at
        that instant, continuous with the updates that follow.

        Answered by `orderbook.subscribe.response`.

        Returns once the server confirmed; iterate the subscription for ``OrderbookUpdatePayload``.
        Raises a ``ServerError`` subclass when the server refuses the subscription.
        """
        payload = OrderbookSubscribePayload(
            symbol=symbol, params=OrderbookParams(mode=mode, depth=depth)
        )
        return await self._subscribe(ORDERBOOK, payload)

    async def subscribe_quotes(self, symbol: str) -> QuotesSubscription:
        """
        Receive a symbol's quotes.

        Subscribe to the topic of a symbol's quotes.

        Answered by `quotes.subscribe.response`.

        Returns once the server confirmed; iterate the subscription for ``QuotesUpdatePayload``.
        Raises a ``ServerError`` subclass when the server refuses the subscription.
        """
        payload = QuotesSubscribePayload(symbol=symbol, params=QuotesParams())
        return await self._subscribe(QUOTES, payload)

    async def subscribe_trades(self, symbol: str, *, snapshot: int = 0) -> TradesSubscription:
        """
        Receive a symbol's trades, after a snapshot of the newest ones.

        Subscribe to the topic of a symbol's trades; with ``snapshot`` the reply carries the
        newest trades, continuous with the stream by id.

        Answered by `trades.subscribe.response`.

        Returns once the server confirmed; iterate the subscription for ``TradesUpdatePayload``.
        Raises a ``ServerError`` subclass when the server refuses the subscription.

        After a reconnect it subscribes again with ``snapshot=500`` and yields the items of the
        reply's ``trades`` after the last id it yielded, in order: each once. A gap the snapshot
        cannot cover is reported as ``recovered`` False. The first reply's ``trades`` (the snapshot)
        stay in ``subscription.reply``.
        """
        payload = TradesSubscribePayload(symbol=symbol, params=TradesParams(), snapshot=snapshot)
        return await self._subscribe(TRADES, payload)
