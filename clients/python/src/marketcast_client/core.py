"""The connection machinery under the generated ``subscribe_<family>`` methods.

``ClientCore`` is what the generated ``channels.GeneratedChannels`` (and so ``MarketcastClient``)
inherits: the public constructor and methods, and the subscriptions, on top of
``connection.Connection`` (the task that owns the WebSocket, reconnects and correlates requests).
The subscriptions themselves, their events and recovery, are ``subscription.Subscription``.

The names this module held before it was split are still importable from here: the generated
``channels.py`` imports ``Family`` and ``Subscription`` from it, and so may code outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, ClassVar, Self

from pydantic import BaseModel
from websockets.asyncio.client import ClientConnection

from .backoff import Backoff
from .connection import Connection, ConnectionState
from .errors import ClientClosed, ConnectionLost, InvalidRequest, MarketcastError, ServerError
from .models import (
    ERROR_CODE_RETRY,
    PingMessage,
    PingPayload,
    PongMessage,
    PongPayload,
    ServerMessage,
    SubscriptionsListMessage,
    SubscriptionsListPayload,
    SubscriptionsListResponseMessage,
    SubscriptionsListResponsePayload,
)
from .subscription import (
    Family,
    Recovery,
    ReplyT,
    Subscribed,
    Subscription,
    SubscriptionErrorEvent,
    SubscriptionState,
    Unsubscribed,
    UpdateT,
)

__all__ = [
    "ClientCore",
    "ConnectionState",
    "Family",
    "Recovery",
    "Subscribed",
    "Subscription",
    "SubscriptionErrorEvent",
    "SubscriptionState",
    "Unsubscribed",
]

log = logging.getLogger("marketcast_client")


class ClientCore(Connection):
    """Connection, correlation, routing and reconnection; see ``MarketcastClient``."""

    #: Set by the generated subclass: every channel family, by name.
    _families: ClassVar[Mapping[str, Family[Any, Any]]] = {}

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        reconnect: bool = True,
        backoff: Backoff | None = None,
        stable_after: float = 30.0,
        request_timeout: float = 10.0,
        open_timeout: float = 10.0,
        random: Callable[[], float] = random.random,
        compression: bool = True,
    ) -> None:
        super().__init__(
            url,
            token=token,
            reconnect=reconnect,
            backoff=backoff,
            stable_after=stable_after,
            request_timeout=request_timeout,
            open_timeout=open_timeout,
            random=random,
            compression=compression,
        )
        #: Every active subscription by its local key (``_identity``): what each new
        #: connection renews, and what refuses a second subscription to the same topic.
        self._subscriptions: dict[str, Subscription[Any, Any]] = {}
        #: The same subscriptions by the server's topic, once it replied: how updates find theirs.
        self._by_topic: dict[str, Subscription[Any, Any]] = {}
        #: Every family by the ``type`` of its updates: which frames are updates, of what model.
        self._updates = {family.update_type: family for family in self._families.values()}

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the first connection. Its failure is raised (``ConnectFailed``): a wrong URL
        or token should not turn into silent retries; later connections retry by themselves."""
        if self.state != "idle":
            raise RuntimeError(f"connect() was already called (state: {self.state})")
        self._set_state("connecting")
        try:
            ws = await self._open()
        except BaseException:
            self._set_state("closed")
            raise
        self._attach(ws)
        self._runner = asyncio.create_task(self._run(ws), name="marketcast-client")

    async def close(self) -> None:
        """Close the connection and stop reconnecting; every subscription's iteration ends."""
        if self._closing:
            return
        self._closing = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.wait([self._runner])
        self._finish(None)

    def set_token(self, token: str | None) -> None:
        """Use ``token`` from the next connection on (a rotated or renewed credential); a
        client waiting after a refused reconnect (state ``unauthorized``) tries again at once."""
        self._token = token
        self._token_changed.set()

    async def ping(self) -> PongPayload:
        """Send an application ``ping``; the ``pong`` carries the server's clock."""
        ws = await self._wait_open()
        reply = await self._request(ws, PingMessage, PingPayload())
        if not isinstance(reply, PongMessage):
            raise MarketcastError(f"unexpected reply to ping: {reply}")
        return reply.payload

    async def list_subscriptions(self) -> SubscriptionsListResponsePayload:
        """What the server holds for this connection now (``subscriptions.list``): each topic,
        in the order it was subscribed, with its route, symbol and params. Right after a
        reconnect it lists only what has been renewed so far."""
        ws = await self._wait_open()
        reply = await self._request(ws, SubscriptionsListMessage, SubscriptionsListPayload())
        if not isinstance(reply, SubscriptionsListResponseMessage):
            raise MarketcastError(f"unexpected reply to subscriptions.list: {reply}")
        return reply.payload

    async def wait_open(self) -> None:
        """Return when a connection is open (at once if one is)."""
        await self._wait_open()

    # -- subscriptions ---------------------------------------------------------------------

    async def _subscribe(
        self, family: Family[ReplyT, UpdateT], request: BaseModel
    ) -> Subscription[ReplyT, UpdateT]:
        if self._closing or self.state == "closed":
            raise self.failure or ClientClosed("the client is closed")
        if self._runner is None:
            raise RuntimeError("connect() first, or use `async with MarketcastClient(...)`")
        key = _identity(family, request)
        if key in self._subscriptions:
            raise ValueError(f"already subscribed to {key}: iterate that subscription")
        subscription = Subscription(self, family, request, key)
        self._subscriptions[key] = subscription
        try:
            ws = self._ws
            if ws is not None:
                with contextlib.suppress(ConnectionLost):
                    await self._send_subscribe(ws, self._generation, subscription)
            # Set by the reply, on this connection or (after a drop) the next one.
            await subscription._established
        except BaseException:
            self._forget(subscription)
            raise
        return subscription

    async def _send_subscribe(
        self, ws: ClientConnection, generation: int, subscription: Subscription[Any, Any]
    ) -> None:
        """Subscribe on connection ``generation``; a refusal ends the subscription. Raises
        only ``ConnectionLost`` (the next connection subscribes again)."""
        subscription._sent_on = generation
        while subscription.active:
            request = subscription._next_request()
            try:
                await self._request(
                    ws, subscription.family.subscribe, request, subscription._apply_reply
                )
                return
            except ServerError as error:
                if ERROR_CODE_RETRY.get(error.code) == "later":
                    # "Not now" rather than "no" (the contract's x-error-codes).
                    subscription._emit(
                        SubscriptionErrorEvent(error.code, error.message, True, error)
                    )
                    log.info("%s: %s; trying again in a second", subscription._key, error)
                    await asyncio.sleep(1.0)
                    if self._generation != generation:
                        return
                    continue
                if not isinstance(error, InvalidRequest) or subscription._resumed_since is None:
                    subscription._emit(
                        SubscriptionErrorEvent(error.code, error.message, False, error)
                    )
                    self._forget(subscription)
                    subscription._end(error, "refused")
                    return
                # A ``since`` past the server's newest bar (a server whose history is behind
                # the last one's): subscribe afresh; the continuity rule still drops repeats.
                log.warning(
                    "%s: resuming was refused (%s); subscribing afresh", subscription._key, error
                )
                subscription._skip_resume = True
            except TimeoutError as error:
                subscription._emit(
                    SubscriptionErrorEvent(
                        "timeout", f"no reply within {self._request_timeout} s", True, error
                    )
                )
                # No answer on a connection that looks open: make a new one rather than wait.
                log.warning(
                    "%s: no reply within %.1f s; reconnecting",
                    subscription._key,
                    self._request_timeout,
                )
                await ws.close(code=4000, reason="request timeout")
                raise ConnectionLost("no reply; reconnecting") from None

    async def _resubscribe_all(self, ws: ClientConnection, generation: int) -> None:
        pending = [s for s in self._subscriptions.values() if s._sent_on != generation]
        await asyncio.gather(
            *(self._send_subscribe(ws, generation, s) for s in pending), return_exceptions=True
        )

    async def _unsubscribe(self, subscription: Subscription[Any, Any]) -> None:
        if not subscription.active:
            return
        self._forget(subscription)
        subscription._end(None, "client")
        family = subscription.family
        ws = self._ws
        if (
            ws is None
            or subscription._sent_on != self._generation
            or family.unsubscribe is None
            or family.unsubscribe_payload is None
        ):
            return
        fields = set(family.unsubscribe_payload.model_fields)
        payload = family.unsubscribe_payload.model_validate(
            subscription.request.model_dump(include=fields)
        )
        with contextlib.suppress(ConnectionLost):
            await self._request(ws, family.unsubscribe, payload)

    def _route(self, subscription: Subscription[Any, Any], topic: str) -> None:
        if subscription.topic is not None and subscription.topic != topic:
            self._by_topic.pop(subscription.topic, None)
        subscription.topic = topic
        self._by_topic[topic] = subscription

    def _forget(self, subscription: Subscription[Any, Any]) -> None:
        if self._subscriptions.get(subscription._key) is subscription:
            del self._subscriptions[subscription._key]
        if (
            subscription.topic is not None
            and self._by_topic.get(subscription.topic) is subscription
        ):
            del self._by_topic[subscription.topic]

    # -- the hooks of ``Connection`` -------------------------------------------------------

    def _lose_subscriptions(self) -> None:
        for subscription in self._subscriptions.values():
            subscription._lost()

    def _route_update(self, message: ServerMessage) -> None:
        family = self._updates.get(message.type)
        if family is None:
            return
        topic = getattr(message.payload, "topic", None)
        subscription = self._by_topic.get(topic) if isinstance(topic, str) else None
        if subscription is not None and isinstance(message.payload, family.update):
            subscription._deliver(message.payload)

    def _end_subscriptions(self, error: BaseException | None) -> None:
        for subscription in list(self._subscriptions.values()):
            self._forget(subscription)
            subscription._end(error)


def _identity(family: Family[Any, Any], request: BaseModel) -> str:
    """The topic a request subscribes to, as a local key (the server's ``topic`` comes later).

    The unsubscribe payload's fields are what names a topic (symbol and params); without one,
    every field of the request but the snapshot options.
    """
    if family.unsubscribe_payload is not None:
        fields = set(family.unsubscribe_payload.model_fields)
    else:
        fields = set(type(request).model_fields) - {"snapshot", "since"}
    data = request.model_dump(include=fields, mode="json")
    return f"{family.name}:{json.dumps(data, sort_keys=True, separators=(',', ':'))}"
