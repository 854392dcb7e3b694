"""The ``subscriptions.list`` request: which topics does this connection receive?

Binance's stream API answers ``LIST_SUBSCRIPTIONS`` on the same connection; clients that
restore state after a bug, or a test that checks its own bookkeeping, ask the server rather
than trust their own copy. The reply lists ``Connection.subscriptions`` as it is when the
request is handled: a subscribe answered before it is listed, an unsubscribe answered before it
is not.

No ``from __future__ import annotations`` here: the handler's parameter and return types are
models built at run time from the registry, and fastws reads them from the signature.
"""

from typing import Any

from fastws import OperationRouter

from marketcast.channels.base import Registry
from marketcast.channels.listing import (
    LIST_CHANNEL,
    SubscriptionsListPayload,
    list_reply,
    listing_models,
)
from marketcast.delivery.connection import Connection
from marketcast.ws.adapter import FastWSAdapter


def build_listing_router(channels: Registry) -> OperationRouter:
    """A fresh router for ``subscriptions.list``, its reply typed by ``channels``."""
    models = listing_models(channels)
    router = OperationRouter(prefix=f"{LIST_CHANNEL}.", tags=[LIST_CHANNEL])
    response: Any = models.response

    @router.send(
        "list",
        reply="list.response",
        summary="List this connection's subscriptions: topic, route, symbol and params of each.",
    )
    async def list_subscriptions(
        payload: SubscriptionsListPayload, client: Connection, app: FastWSAdapter
    ) -> response:
        """Every topic this connection receives, in the order it subscribed; an empty list
        when it has none. Raw streams hold their topic the same way."""
        return list_reply(models, channels, client.subscriptions.items())

    return router
