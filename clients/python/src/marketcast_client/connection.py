"""The client's connection: the task that owns the WebSocket, and request correlation.

One background task owns the WebSocket: it reads every frame, answers requests by their
envelope ``id``, routes updates to subscriptions by ``topic``, and when the connection ends
reconnects (``backoff.ReconnectPolicy`` decides when) and subscribes everything again.

Frames are handled in the reader, synchronously, in arrival order: a reply's bars are queued
before any update that followed the reply on the wire, which is what makes the server's
"snapshot and stream join without gap or duplicate" promise hold on this side too.

``Connection`` knows nothing of subscriptions: what it does with them (renew them on a new
connection, route updates to them, end them) are hooks that ``core.ClientCore`` fills in.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

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
    server_error,
)
from .models import ErrorMessage, NoticeMessage, NoticePayload, ServerMessage

__all__ = ["Connection", "ConnectionState"]

log = logging.getLogger("marketcast_client")

#: ``idle``: not connected yet; ``reconnecting``: the connection was lost and is being re-made;
#: ``closed``: ``close()`` was called, or the client gave up (see ``ClientCore.failure``).
#: ``unauthorized``: a reconnect was refused (401/403); waiting for ``set_token``.
ConnectionState = Literal["idle", "connecting", "open", "reconnecting", "unauthorized", "closed"]

_SERVER_MESSAGE: Final[TypeAdapter[ServerMessage]] = TypeAdapter(ServerMessage)
#: The subprotocol the server speaks; offered (with the token) only when a token is given.
_API_SUBPROTOCOL: Final = Subprotocol("marketcast.v1")
#: A snapshot of 1000 bars is about 100 kB; leave room without accepting anything at all.
_MAX_FRAME_BYTES: Final = 16 * 1024 * 1024


@dataclass(slots=True)
class _Pending:
    """A request waiting for its reply, by envelope ``id`` in ``Connection._pending``."""

    future: asyncio.Future[BaseModel]
    on_reply: Callable[[BaseModel], None] | None


class Connection:
    """The connection task and request correlation under ``core.ClientCore``.

    Not used on its own: ``ClientCore`` gives it the public constructor (with the defaults),
    the public methods, and the subscriptions its hooks stand for.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None,
        reconnect: bool,
        backoff: Backoff | None,
        stable_after: float,
        request_timeout: float,
        open_timeout: float,
        random: Callable[[], float],
        compression: bool = True,
    ) -> None:
        self.url = url
        #: Offer permessage-deflate (the server compresses each frame once for every client
        #: that takes it: fewer bytes for the same frames); False: plain frames.
        self._compression: Literal["deflate"] | None = "deflate" if compression else None
        self.state: ConnectionState = "idle"
        #: The last ``notice`` of the current connection (a planned close is coming).
        self.notice: NoticePayload | None = None
        #: Why the client stopped by itself, when it did (``FatalClose``); also the
        #: ``HandshakeRefused`` of a reconnect while it waits for a new token.
        self.failure: BaseException | None = None
        #: Connections opened so far (the first one included).
        self.connections = 0
        #: Offered as a subprotocol on every connection; ``set_token`` replaces it.
        self._token = token
        self._reconnect = reconnect
        #: Whether and when to reconnect after each close (the close-code table, backoff).
        self._policy = ReconnectPolicy(backoff or Backoff(), random, stable_after=stable_after)
        self._request_timeout = request_timeout
        self._open_timeout = open_timeout
        #: The open connection, where requests go; None between connections.
        self._ws: ClientConnection | None = None
        #: The number of the current connection (``_attach`` counts them): what was sent on an
        #: older one is stale, and a subscription sent there is sent again.
        self._generation = 0
        #: The number of the connection the last ``notice`` came on: whether a close was
        #: announced, which the reconnect policy asks.
        self._noticed_on = 0
        #: Set on every change of ``state``: wakes ``_wait_open``.
        self._state_changed = asyncio.Event()
        #: The requests waiting for a reply, by envelope ``id``: how a reply finds its request.
        self._pending: dict[int, _Pending] = {}
        #: A fresh envelope ``id`` for every request on any connection.
        self._ids = itertools.count(1)
        #: The connection task (``_run``), once ``connect()`` opened the first connection.
        self._runner: asyncio.Task[None] | None = None
        #: Set by ``close()`` and ``_finish``: no reconnect, no new request.
        self._closing = False
        #: Set by ``set_token``: a reconnect refused for its token waits for a new one
        #: rather than retrying the same refused token, as the TypeScript client does.
        self._token_changed = asyncio.Event()

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
        """The current connection, waiting for one to open; raises once the client stopped."""
        while True:
            if self._closing or self.state == "closed":
                raise self.failure or ClientClosed("the client is closed")
            if self._runner is None:
                raise RuntimeError("connect() first, or use `async with MarketcastClient(...)`")
            if self._ws is not None:
                return self._ws
            self._state_changed.clear()
            await self._state_changed.wait()

    # -- what the subscriptions add (``core.ClientCore``) ------------------------------------
    # Without subscriptions there is nothing to renew, lose, route or end: each hook does nothing.

    async def _resubscribe_all(self, ws: ClientConnection, generation: int) -> None:
        """Renew every subscription on ``ws``, connection ``generation``; runs beside the
        reader (which reads the replies) from the moment the connection is served."""

    def _lose_subscriptions(self) -> None:
        """The connection ended: every subscription waits for the next one."""

    def _route_update(self, message: ServerMessage) -> None:
        """A frame that answers no request and is not a notice: an update, or nothing known."""

    def _end_subscriptions(self, error: BaseException | None) -> None:
        """The client stops for good: end every subscription, with ``error`` if there is one."""

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
                compression=self._compression,
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
            self._lose_subscriptions()
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
        self._route_update(message)

    def _set_state(self, state: ConnectionState) -> None:
        self.state = state
        self._state_changed.set()

    def _finish(self, error: BaseException | None) -> None:
        """Stop for good: end every subscription (with ``error``) and fail what waits."""
        if error is not None and self.failure is None:
            self.failure = error
            log.error("marketcast client stopped: %s", error)
        self._closing = True
        self._end_subscriptions(error)
        ended = error if error is not None else ClientClosed("the client is closed")
        for pending in list(self._pending.values()):
            if not pending.future.done():
                pending.future.set_exception(ended)
        self._set_state("closed")
