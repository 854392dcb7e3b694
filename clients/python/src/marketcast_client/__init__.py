"""Typed asyncio client for the marketcast market-data WebSocket API.

The message models (``marketcast_client.models``) and the ``subscribe_<family>`` methods
(``marketcast_client.channels``) are generated from the server's AsyncAPI document; the rest
(connection, correlation, reconnects, recovery) is written by hand.
"""

from .backoff import Backoff
from .client import MarketcastClient
from .connection import ConnectionState
from .errors import (
    ClientClosed,
    ConnectFailed,
    ConnectionLost,
    FatalClose,
    HandshakeRefused,
    InternalServerError,
    InvalidRequest,
    MarketcastError,
    RetryLater,
    ServerError,
    SubscriptionRefused,
)
from .orderbook import BookChange, BookGapError, Level, OrderBook
from .subscription import (
    Recovery,
    Subscribed,
    Subscription,
    SubscriptionErrorEvent,
    Unsubscribed,
)

__all__ = [
    "Backoff",
    "BookChange",
    "BookGapError",
    "ClientClosed",
    "ConnectFailed",
    "ConnectionLost",
    "ConnectionState",
    "FatalClose",
    "HandshakeRefused",
    "InternalServerError",
    "InvalidRequest",
    "Level",
    "MarketcastClient",
    "MarketcastError",
    "OrderBook",
    "Recovery",
    "RetryLater",
    "ServerError",
    "Subscribed",
    "Subscription",
    "SubscriptionErrorEvent",
    "SubscriptionRefused",
    "Unsubscribed",
]
