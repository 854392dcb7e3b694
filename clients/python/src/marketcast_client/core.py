"""The connection machinery under the generated ``subscribe_<family>`` methods.

One background task owns the WebSocket: it reads every frame, answers requests by their
envelope ``id``, routes updates to subscriptions by ``topic``, and when the connection ends
reconnects (``backoff.ReconnectPolicy`` decides when) and subscribes everything again.

Why recovery lives in the subscription and not in the caller: after a reconnect a bars
subscription asks for ``since`` = its last closed bar's time + 1 ms, so the server's reply holds
exactly the bars that closed meanwhile (docs/websocket.md, "Recovery"); they are passed on in
order, then the live stream continues. As a second guard against a server that replays more
than asked (a restarted one, a ``stale`` repeat), every bar goes through one rule: a bar at or
before the newest closed bar passed on, or older than the newest bar passed on, is dropped. So
the caller sees each closed bar once, in order, with no gap that the server could fill.

Frames are handled in the reader, synchronously, in arrival order: a reply's bars are queued
before any update that followed the reply on the wire, which is what makes the server's
"snapshot and stream join without gap or duplicate" promise hold on this side too.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Final, Generic, Literal, Self, TypeAlias, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from .backoff import Backoff, ReconnectPolicy
from .errors import (
    ClientClosed,
    ConnectFailed,
    ConnectionLost,
    FatalClose,
    HandshakeRefused,
    InvalidRequest,
    MarketcastError,
    ServerError,
    server_error,
)
from .models import (
    ERROR_CODE_RETRY,
    ErrorMessage,
    NoticeMessage,
    NoticePayload,
    PingMessage,
    PingPayload,
    PongMessage,
    PongPayload,
    ServerMessage,
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

ReplyT = TypeVar("ReplyT", bound=BaseModel)
UpdateT = TypeVar("UpdateT", bound=BaseModel)

#: ``idle``: not connected yet; ``reconnecting``: the connection was lost and is being re-made;
#: ``closed``: ``close()`` was called, or the client gave up (see ``ClientCore.failure``).
#: ``unauthorized``: a reconnect was refused (401/403); waiting for ``set_token``.
ConnectionState = Literal["idle", "connecting", "open", "reconnecting", "unauthorized", "closed"]

_SERVER_MESSAGE: Final[TypeAdapter[ServerMessage]] = TypeAdapter(ServerMessage)
#: The subprotocol the server speaks; offered (with the token) only when a token is given.
_API_SUBPROTOCOL: Final = Subprotocol("marketcast.v1")
#: A snapshot of 1000 bars is about 100 kB; leave room without accepting anything at all.
_MAX_FRAME_BYTES: Final = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Family(Generic[ReplyT, UpdateT]):
    """Which models carry one channel family's messages (generated into ``channels.py``)."""

    name: str
    #: The envelope of ``<family>.subscribe``.
    subscribe: type[BaseModel]
    #: The payload of ``<family>.subscribe.response``.
    reply: type[ReplyT]
    #: The envelope and payload of ``<family>.unsubscribe``, when the family has one.
    unsubscribe: type[BaseModel] | None
    unsubscribe_payload: type[BaseModel] | None
    #: The ``type`` of its updates, and their payload.
    update_type: str
    update: type[UpdateT]
    #: The reply field holding bars when the family resumes with ``since`` (``bars``).
    replay_field: str | None


@dataclass(frozen=True, slots=True)
class Recovery:
    """One resubscription with ``since`` after a reconnect, as the server answered it."""

    since: int
    #: The server's ``recovered``: False means bars before the first one returned are missing
    #: (reload them over REST); None when the server did not say.
    recovered: bool | None
    #: How many of the reply's bars were new, and passed on.
    delivered: int


#: ``subscribing`` until the server confirms (again after every reconnect), ``subscribed``,
#: and ``unsubscribed`` for good (unsubscribed, refused, or the client stopped).
SubscriptionState = Literal["subscribing", "subscribed", "unsubscribed"]


@dataclass(frozen=True, slots=True)
class Subscribed:
    """The server confirmed the subscription: the first time, and after every reconnect."""

    #: False when bars are missing: the server could not fill the gap back to ``since``
    #: (reload that history over REST); True otherwise, also when nothing needed recovering.
    recovered: bool
    #: The bars this reply brought (the snapshot, or the bars missed while disconnected).
    bars: list[Any]
    #: True for a renewal after a reconnect.
    resubscribed: bool


@dataclass(frozen=True, slots=True)
class SubscriptionErrorEvent:
    """A subscribe failed: ``code`` is the server's error code, or ``timeout``."""

    code: str
    message: str
    #: True when the client tries again by itself; False when the subscription ended.
    will_retry: bool
    error: BaseException


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    """The subscription ended for good."""

    #: ``client``: ``unsubscribe()``; ``refused``: the server refused it; ``closed``: the
    #: client was closed or stopped (``error`` says why when it stopped by itself).
    reason: Literal["client", "refused", "closed"]
    error: BaseException | None


SubscriptionEvent: TypeAlias = Subscribed | SubscriptionErrorEvent | Unsubscribed
_EVENT_NAMES: Final[Mapping[str, type[SubscriptionEvent]]] = {
    "subscribed": Subscribed,
    "error": SubscriptionErrorEvent,
    "unsubscribed": Unsubscribed,
}


class _End:
    """Queued after the last update of a subscription that ended without an error."""


_END: Final = _End()


class Subscription(Generic[ReplyT, UpdateT]):
    """One subscribed topic: iterate it (``async for``) for its typed updates.

    It survives reconnects: the client subscribes it again on every new connection. Iteration
    ends when it is unsubscribed or the client is closed, and raises the error that ended it
    otherwise (``FatalClose``, ``HandshakeRefused``, a ``ServerError`` when a resubscription
    was refused).
    """

    def __init__(
        self, client: ClientCore, family: Family[ReplyT, UpdateT], request: BaseModel, key: str
    ) -> None:
        self.family = family
        #: The subscribe payload as the caller asked for it.
        self.request = request
        #: The server's topic, once it replied (updates carry it).
        self.topic: str | None = None
        #: Every resubscription after a reconnect, oldest first.
        self.recoveries: list[Recovery] = []
        self._client = client
        self._key = key
        self._reply: ReplyT | None = None
        self._queue: asyncio.Queue[UpdateT | _End | BaseException] = asyncio.Queue()
        self._established: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._active = True
        #: The number of the connection this was last subscribed on.
        self._sent_on: int | None = None
        self._resumed_since: int | None = None
        #: Set when the server refused the last resume: the next request goes without ``since``.
        self._skip_resume = False
        self._last_time: int | None = None
        self._last_closed: int | None = None
        self._state: SubscriptionState = "subscribing"
        self._confirmed_once = False
        self._callbacks: dict[str, list[Callable[[Any], None]]] = {
            name: [] for name in _EVENT_NAMES
        }

    @property
    def state(self) -> SubscriptionState:
        """``subscribing``, ``subscribed`` or ``unsubscribed`` (see ``SubscriptionState``)."""
        return self._state

    def on(self, event: str, callback: Callable[[Any], None]) -> Callable[[], None]:
        """Call ``callback`` on every ``subscribed`` (``Subscribed``), ``error``
        (``SubscriptionErrorEvent``) or ``unsubscribed`` (``Unsubscribed``) event, in the
        client's reader, in order with the updates; returns a function that stops the calls.
        ``subscribed`` of the first reply has already happened when ``subscribe_<family>``
        returns: read ``reply`` for it."""
        if event not in self._callbacks:
            raise ValueError(f"no such event {event!r}: one of {', '.join(_EVENT_NAMES)}")
        callbacks = self._callbacks[event]
        callbacks.append(callback)
        return lambda: callbacks.remove(callback) if callback in callbacks else None

    def _emit(self, event: SubscriptionEvent) -> None:
        name = next(name for name, kind in _EVENT_NAMES.items() if isinstance(event, kind))
        for callback in list(self._callbacks[name]):
            try:
                callback(event)
            except Exception:
                log.exception("%s: a %s callback failed", self._key, name)

    def _lost(self) -> None:
        if self._active:
            self._state = "subscribing"

    @property
    def reply(self) -> ReplyT:
        """The latest ``subscribe.response`` payload; the first one holds the snapshot."""
        if self._reply is None:
            raise RuntimeError("the server has not replied to this subscription yet")
        return self._reply

    @property
    def active(self) -> bool:
        return self._active

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> UpdateT:
        item = await self._queue.get()
        if isinstance(item, _End):
            self._queue.put_nowait(item)
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._queue.put_nowait(item)
            raise item
        return item

    async def unsubscribe(self) -> None:
        """Stop the stream; iteration ends after the updates already received."""
        await self._client._unsubscribe(self)

    # -- used by the client, in the reader task ------------------------------------------

    def _next_request(self) -> BaseModel:
        """What to send on a new connection: the caller's request the first time, then (for a
        family that resumes) the same topic with ``since`` after what was passed on."""
        self._resumed_since = None
        if not self._established.done() or self.family.replay_field is None:
            return self.request
        changes: dict[str, Any] = {}
        if "snapshot" in type(self.request).model_fields:
            changes["snapshot"] = 0
        # After the last closed bar: the open bar seen last comes again, closed by now.
        since = self._last_closed + 1 if self._last_closed is not None else self._last_time
        if self._skip_resume:
            self._skip_resume = False
            changes["since"] = None
        elif since is not None:
            changes["since"] = self._resumed_since = since
        return self.request.model_copy(update=changes)

    def _apply_reply(self, message: BaseModel) -> None:
        payload = getattr(message, "payload", None)
        if not isinstance(payload, self.family.reply):
            raise MarketcastError(f"unexpected reply to {self.family.name}.subscribe: {message}")
        status = getattr(payload, "status", "ok")
        if status != "ok":
            raise ServerError(str(status), str(getattr(payload, "message", "")))
        if not self._active:
            return
        topic = getattr(payload, "topic", None)
        if isinstance(topic, str):
            holder = self._client._by_topic.get(topic)
            if holder is not None and holder is not self and holder.active:
                # The same topic by another spelling (``1D`` and ``D``): the server keeps one
                # stream, so must we.
                raise ValueError(f"already subscribed to {topic}: iterate that subscription")
            self._client._route(self, topic)
        self._reply = payload
        replay = self.family.replay_field
        items = list(getattr(payload, replay, None) or []) if replay is not None else []
        recovered = getattr(payload, "recovered", None)
        if not self._established.done():
            # The caller's own snapshot: it stays in ``reply``; only remember how far it went.
            for item in items:
                self._accept(item)
            self._established.set_result(None)
            self._confirm(recovered is not False, items)
            return
        delivered: list[Any] = []
        for item in items:
            if self._accept(item):
                self._queue.put_nowait(self._as_update(item, payload))
                delivered.append(item)
        self._confirm(recovered is not False, delivered)
        if self._resumed_since is not None:
            self.recoveries.append(
                Recovery(
                    self._resumed_since,
                    recovered if isinstance(recovered, bool) else None,
                    len(delivered),
                )
            )
            if recovered is False:
                log.warning(
                    "%s: the server could not recover every bar since %d; reload history over"
                    " REST for the missing ones",
                    self.topic,
                    self._resumed_since,
                )

    def _confirm(self, recovered: bool, bars: list[Any]) -> None:
        self._state = "subscribed"
        resubscribed = self._confirmed_once
        self._confirmed_once = True
        self._emit(Subscribed(recovered, list(bars), resubscribed))

    def _deliver(self, update: UpdateT) -> None:
        if self._active and (self.family.replay_field is None or self._accept(update)):
            self._queue.put_nowait(update)

    def _accept(self, item: object) -> bool:
        """The continuity rule (module docstring): False for a bar already passed on."""
        time = getattr(item, "time", None)
        closed = getattr(item, "closed", None)
        if not isinstance(time, int) or not isinstance(closed, bool):
            return True
        if self._last_closed is not None and time <= self._last_closed:
            return False
        if self._last_time is not None and time < self._last_time:
            return False
        self._last_time = time
        if closed:
            self._last_closed = time
        return True

    def _as_update(self, item: BaseModel, reply: BaseModel) -> UpdateT:
        """A replayed bar as the update the stream would have carried: the bar's fields plus
        what routes it (topic, symbol from the reply; resolution from the request's params)."""
        data = item.model_dump()
        params = getattr(self.request, "params", None)
        for name in self.family.update.model_fields:
            if name in data:
                continue
            for source in (reply, params):
                if source is not None and name in type(source).model_fields:
                    data[name] = getattr(source, name)
                    break
        return self.family.update.model_validate(data)

    def _end(
        self,
        error: BaseException | None,
        reason: Literal["client", "refused", "closed"] = "closed",
    ) -> None:
        if not self._active:
            return
        self._active = False
        self._state = "unsubscribed"
        self._emit(Unsubscribed(reason, error))
        if not self._established.done():
            self._established.set_exception(error if error is not None else ClientClosed())
            # Whoever awaits it sees the error; nobody else must be told it went unseen.
            self._established.exception()
        self._queue.put_nowait(error if error is not None else _END)


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[BaseModel]
    on_reply: Callable[[BaseModel], None] | None


class ClientCore:
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
    ) -> None:
        self.url = url
        self.state: ConnectionState = "idle"
        #: The last ``notice`` of the current connection (a planned close is coming).
        self.notice: NoticePayload | None = None
        #: Why the client stopped by itself, when it did (``FatalClose``); also the
        #: ``HandshakeRefused`` of a reconnect while it waits for a new token.
        self.failure: BaseException | None = None
        #: Connections opened so far (the first one included).
        self.connections = 0
        self._token = token
        self._reconnect = reconnect
        self._policy = ReconnectPolicy(backoff or Backoff(), random, stable_after=stable_after)
        self._request_timeout = request_timeout
        self._open_timeout = open_timeout
        self._ws: ClientConnection | None = None
        self._generation = 0
        self._noticed_on = 0
        self._state_changed = asyncio.Event()
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(1)
        self._subscriptions: dict[str, Subscription[Any, Any]] = {}
        self._by_topic: dict[str, Subscription[Any, Any]] = {}
        self._updates = {family.update_type: family for family in self._families.values()}
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        #: Set by ``set_token``: a reconnect refused for its token waits for a new one
        #: rather than retrying the same refused token, as the TypeScript client does.
        self._token_changed = asyncio.Event()

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

    # -- requests --------------------------------------------------------------------------

    async def _request(
        self,
        ws: ClientConnection,
        envelope: type[BaseModel],
        payload: BaseModel,
        on_reply: Callable[[BaseModel], None] | None = None,
    ) -> BaseModel:
        """Send ``payload`` in ``envelope`` with a fresh ``id``; the message answering it.

        ``on_reply`` runs in the reader, before any later frame is handled. An ``error``
        answer is raised as its ``ServerError``; a lost connection as ``ConnectionLost``.
        """
        request_id = next(self._ids)
        message = envelope(id=request_id, payload=payload)
        future: asyncio.Future[BaseModel] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = _Pending(future, on_reply)
        try:
            try:
                await ws.send(message.model_dump_json(by_alias=True, exclude_none=True))
            except ConnectionClosed as closed:
                raise ConnectionLost(f"connection closed: {closed}") from None
            async with asyncio.timeout(self._request_timeout):
                return await future
        finally:
            self._pending.pop(request_id, None)

    async def _wait_open(self) -> ClientConnection:
        while True:
            if self._closing or self.state == "closed":
                raise self.failure or ClientClosed("the client is closed")
            if self._runner is None:
                raise RuntimeError("connect() first, or use `async with MarketcastClient(...)`")
            if self._ws is not None:
                return self._ws
            self._state_changed.clear()
            await self._state_changed.wait()

    # -- the connection task ---------------------------------------------------------------

    async def _open(self) -> ClientConnection:
        subprotocols = None
        if self._token is not None:
            subprotocols = [_API_SUBPROTOCOL, Subprotocol(f"token.{self._token}")]
        try:
            ws = await connect(
                self.url,
                subprotocols=subprotocols,
                open_timeout=self._open_timeout,
                close_timeout=5,
                max_size=_MAX_FRAME_BYTES,
            )
        except InvalidStatus as refused:
            status = refused.response.status_code
            if status in (401, 403):
                raise HandshakeRefused(status) from refused
            raise ConnectFailed(f"{self.url}: {refused}") from refused
        except (OSError, TimeoutError, InvalidHandshake) as failed:
            raise ConnectFailed(f"{self.url}: {failed or type(failed).__name__}") from failed
        self.connections += 1
        return ws

    async def _run(self, ws: ClientConnection) -> None:
        try:
            while True:
                code, reason, uptime, noticed = await self._serve(ws)
                if self._closing:
                    return
                if not self._reconnect:
                    self._finish(ConnectionLost(f"closed with {code} {reason}".strip()))
                    return
                delay = self._policy.after_close(code, uptime=uptime, noticed=noticed)
                if delay is None:
                    self._finish(FatalClose(code, reason))
                    return
                log.info("connection closed (%d %s); reconnecting in %.2f s", code, reason, delay)
                reopened = await self._reopen(delay)
                if reopened is None:
                    return
                ws = reopened
                self._attach(ws)
        except Exception as bug:
            log.exception("the connection task failed")
            self._finish(bug)

    async def _reopen(self, delay: float) -> ClientConnection | None:
        self._set_state("reconnecting")
        while True:
            await asyncio.sleep(delay)
            if self._closing:
                return None
            try:
                return await self._open()
            except HandshakeRefused as refused:
                # The same token would be refused again: wait for a new one, keeping every
                # subscription (they resume, with ``since``, once a connection opens).
                self.failure = refused
                log.warning("%s; waiting for a new token (set_token)", refused)
                self._token_changed.clear()
                self._set_state("unauthorized")
                await self._token_changed.wait()
                if self._closing:
                    return None
                self.failure = None
                self._set_state("reconnecting")
                delay = 0.0
            except ConnectFailed as failed:
                delay = self._policy.after_failed_attempt()
                log.info("%s; retrying in %.2f s", failed, delay)

    async def _serve(self, ws: ClientConnection) -> tuple[int, str, float, bool]:
        """Read ``ws`` until it closes; its close code and reason, uptime (0 when the
        subscriptions were not all renewed on it) and whether a ``notice`` announced the close."""
        loop = asyncio.get_running_loop()
        opened_at = loop.time()
        generation = self._generation
        resubscribe = asyncio.create_task(self._resubscribe_all(ws, generation))
        code, reason = 1006, ""
        try:
            while True:
                try:
                    raw = await ws.recv()
                except ConnectionClosed as closed:
                    if closed.rcvd is not None:
                        code, reason = closed.rcvd.code, closed.rcvd.reason
                    break
                self._dispatch(raw)
        finally:
            self._ws = None
            # Stable needs the renewals confirmed as well as the uptime (the policy's rule).
            renewed = resubscribe.done() and not resubscribe.cancelled()
            resubscribe.cancel()
            for subscription in self._subscriptions.values():
                subscription._lost()
            lost = ConnectionLost("the connection closed before the reply")
            for pending in list(self._pending.values()):
                if not pending.future.done():
                    pending.future.set_exception(lost)
            if ws.close_code is None and self._closing:
                # Cancelled by close() while the close handshake had not finished.
                ws.transport.abort()
            if not self._closing:
                self._set_state("reconnecting")
        await asyncio.wait([resubscribe])
        uptime = loop.time() - opened_at if renewed else 0.0
        return code, reason, uptime, self._noticed_on == generation

    def _attach(self, ws: ClientConnection) -> None:
        """Make ``ws`` the current connection (a new number: what was sent before is stale)."""
        self._generation += 1
        self._ws = ws
        self.notice = None
        self._set_state("open")

    def _dispatch(self, raw: str | bytes) -> None:
        try:
            message = _SERVER_MESSAGE.validate_json(raw)
        except ValidationError as invalid:
            log.warning("ignoring a frame this client cannot read: %.200r (%s)", raw, invalid)
            return
        request_id = getattr(message, "id", None)
        pending = self._pending.pop(request_id, None) if request_id is not None else None
        if isinstance(message, ErrorMessage):
            error = server_error(
                message.payload.code,
                message.payload.message,
                request_type=message.payload.request_type,
                request_id=message.id,
            )
            if pending is not None and not pending.future.done():
                pending.future.set_exception(error)
            else:
                log.warning("server error: %s", error)
            return
        if pending is not None:
            if pending.future.done():
                return
            try:
                if pending.on_reply is not None:
                    pending.on_reply(message)
            except Exception as failed:
                pending.future.set_exception(failed)
            else:
                pending.future.set_result(message)
            return
        if isinstance(message, NoticeMessage):
            self.notice = message.payload
            self._noticed_on = self._generation
            log.info("notice from the server: %s", message.payload.message)
            return
        family = self._updates.get(message.type)
        if family is None:
            return
        topic = getattr(message.payload, "topic", None)
        subscription = self._by_topic.get(topic) if isinstance(topic, str) else None
        if subscription is not None and isinstance(message.payload, family.update):
            subscription._deliver(message.payload)

    def _set_state(self, state: ConnectionState) -> None:
        self.state = state
        self._state_changed.set()

    def _finish(self, error: BaseException | None) -> None:
        """Stop for good: end every subscription (with ``error``) and fail what waits."""
        if error is not None and self.failure is None:
            self.failure = error
            log.error("marketcast client stopped: %s", error)
        self._closing = True
        for subscription in list(self._subscriptions.values()):
            self._forget(subscription)
            subscription._end(error)
        ended = error if error is not None else ClientClosed("the client is closed")
        for pending in list(self._pending.values()):
            if not pending.future.done():
                pending.future.set_exception(ended)
        self._set_state("closed")


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
