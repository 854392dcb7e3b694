"""``MarketcastClient``: the core plus the generated ``subscribe_<family>`` methods."""

from __future__ import annotations

from .channels import GeneratedChannels

__all__ = ["MarketcastClient"]


class MarketcastClient(GeneratedChannels):
    """An asyncio client of one marketcast WebSocket endpoint (``ws://HOST:PORT/api/v1/ws``).

    Use it as an async context manager; subscriptions are async iterators of typed updates::

        async with MarketcastClient("ws://127.0.0.1:8000/api/v1/ws") as client:
            bars = await client.subscribe_bars("BTCUSDT", resolution="1", snapshot=100)
            history = bars.reply.bars or []
            async for bar in bars:
                ...

    It reconnects by itself, following the close-code table generated from the contract
    (``models.CLOSE_CODES``, the TypeScript client's too): full-jitter backoff; at once after a
    planned 1001 close; with a growing delay after 1008, 1013 and 4008, forgotten only after a
    stable connection (subscriptions renewed and ``stable_after`` seconds up); never after
    4404, 1009 or 1007. It subscribes everything again, bars with ``since``, so each closed
    bar is yielded once and none is missing. Each subscription has a ``state``
    (``subscribing``, ``subscribed``, ``unsubscribed``) and ``on("subscribed" | "error" |
    "unsubscribed", callback)`` events: ``Subscribed(recovered, bars, resubscribed)`` on every
    renewal (``recovered=False``: bars are missing, reload history), ``SubscriptionErrorEvent
    (code, message, will_retry, error)``, ``Unsubscribed(reason, error)``. Options:
    ``token`` (servers with ``MARKETCAST_AUTH_TOKENS``), ``reconnect``,
    ``backoff``, ``stable_after`` (seconds up before a penalty is forgotten),
    ``request_timeout``, ``open_timeout``, ``random`` (the jitter source, for tests),
    ``compression`` (default True: offer permessage-deflate, which the server compresses
    once per frame for every client; False: plain frames).
    """
