"""``FastWSAdapter``: fastws's routing and models, with fan-out and errors that scale.

Kept from fastws: operation routers (``OperationRouter``), the route table that drives
validation and the AsyncAPI document. Replaced: the receive loop (bad frames get a typed
``error`` reply and the connection stays open, request ids are echoed), ``broadcast`` (a topic
index and bounded per-client outboxes instead of awaiting every socket), and the AsyncAPI
document (``ws.spec``, with stable names and ``type`` constants).

Added: the handshake gate (origin allow-list and token auth, ``ws.security``, refused with an
HTTP status and never a 101), the connection cap and the shutdown refusal (accept, then close
1013), per-connection rate limiting (``ws.limits``), and planned closes — maximum lifetime and
shutdown drain — that announce themselves with a ``notice`` and flush before closing (1001).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastws import FastWS, Operation
from pydantic import BaseModel, ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from marketcast.delivery.connection import Connection
from marketcast.delivery.hub import Hub
from marketcast.delivery.outbox import Outbox
from marketcast.delivery.stats import FanoutStats
from marketcast.errors import CloseCode, ErrorCode, ProtocolError, ServiceUnavailable
from marketcast.lifecycle import Lifecycle
from marketcast.protocol import MAX_ID, MAX_ID_LENGTH, integral
from marketcast.subscriptions import Subscriptions
from marketcast.types import Topic
from marketcast.wire import Frame, envelope
from marketcast.ws.limits import ConnectionLimits, Verdict
from marketcast.ws.security import HandshakeGate, Refusal
from marketcast.ws.validation import ECHO_LIMIT, clip, describe_validation_error

log = logging.getLogger("marketcast.ws")

_ENVELOPE_KEYS = frozenset({"type", "payload", "id"})
#: orjson refuses deeper documents; such a frame gets ``validation_error`` (``_parse``).
MAX_JSON_DEPTH = 1024


class FastWSAdapter(FastWS):
    """The WebSocket endpoint: one instance per app, built by ``create_app``."""

    def __init__(
        self,
        *,
        hub: Hub,
        subscriptions: Subscriptions,
        outbox_factory: Callable[[], Outbox],
        max_message_bytes: int,
        spec_builder: Callable[[FastWSAdapter], dict[str, Any]],
        gate: HandshakeGate,
        lifecycle: Lifecycle,
        limits: ConnectionLimits,
        clock: Callable[[], float] = time.monotonic,
        stats: FanoutStats | None = None,
        resets: Callable[[Topic], Frame | None] | None = None,
        **fastws_options: Any,
    ) -> None:
        super().__init__(asyncapi_url=None, asyncapi_docs_url=None, **fastws_options)
        self.hub = hub
        self.subscriptions = subscriptions
        self._outbox_factory = outbox_factory
        self._max_message_bytes = max_message_bytes
        self._spec_builder = spec_builder
        self._gate = gate
        self._lifecycle = lifecycle
        self.limits = limits
        #: Injected so rate limiting can be driven by a fake clock.
        self._clock = clock
        #: Counters of closed connections and the latency histogram, read by ``/metrics``.
        self.stats = stats if stats is not None else FanoutStats()
        #: What a connection queues for a topic it cannot keep up with, instead of closing
        #: (``Connection._refused``; the order books' ``reset_frame``).
        self._resets = resets
        #: Lifetime jitter; seeded per adapter, not shared with anything else.
        self._rng = random.Random()
        #: Live connections by id; read by health and shutdown, never scanned to publish.
        #: (fastws's own ``connections`` map stays empty: its Client type is too narrow.)
        self.open_connections: dict[str, Connection] = {}
        #: Connections admitted, counted before the handshake's first await so that
        #: concurrent handshakes cannot overshoot ``max_connections``.
        self._admitted = 0

    # -- routes -------------------------------------------------------------------------------

    def operations(self) -> list[Operation]:
        return list(self.router.routes)

    def asyncapi(self) -> dict[str, Any]:
        if self.asyncapi_schema is None:
            self.asyncapi_schema = self._spec_builder(self)
        schema: dict[str, Any] = self.asyncapi_schema
        return schema

    # -- connection lifecycle -----------------------------------------------------------------

    async def endpoint(self, ws: WebSocket) -> None:
        """The ASGI WebSocket handler mounted at ``/api/v1/ws``."""
        await self.serve_socket(ws)

    async def serve_socket(
        self,
        ws: WebSocket,
        on_open: Callable[[Connection], Awaitable[None]] | None = None,
        accepts: frozenset[str] | None = None,
    ) -> None:
        """Admit, accept and serve one WebSocket under every limit of this adapter.

        ``on_open`` runs once the connection is registered, before its first frame is read:
        raw streams subscribe there (``ws.raw_streams``), and may close the connection.
        ``accepts`` narrows the client operations this connection answers (None: all), so
        that a raw stream answers only what its AsyncAPI channel documents.
        """
        verdict = await self._gate.admit({"origin": _origins(ws)}, ws.scope.get("subprotocols", []))
        if isinstance(verdict, Refusal):
            log.info("handshake refused for %s: %s: %s", _peer(ws), verdict.code, verdict.message)
            await _deny(ws)
            return
        busy = self._busy_reason()
        if busy is not None:
            # Accepted and closed rather than refused: a browser sees a close code, never an
            # HTTP status, and 1013 tells it to come back later.
            await ws.accept(subprotocol=verdict.subprotocol)
            await ws.close(CloseCode.TRY_AGAIN_LATER, busy)
            self.stats.turned_away(CloseCode.TRY_AGAIN_LATER)
            log.info("connection from %s turned away: %s", _peer(ws), busy)
            return
        self._admitted += 1
        try:
            await ws.accept(subprotocol=verdict.subprotocol)
            conn = Connection(
                ws,
                self._outbox_factory(),
                close_timeout=self.limits.close_timeout,
                close_patience=self.limits.drain_timeout,
                principal=verdict.principal,
                stats=self.stats,
                write_delay=self.limits.write_delay,
                resets=self._resets,
            )
            await self._serve(conn, on_open, accepts)
        finally:
            self._admitted -= 1

    def _busy_reason(self) -> str | None:
        if not self._lifecycle.accepting:
            return "server shutting down"
        cap = self.limits.max_connections
        if cap and self._admitted >= cap:
            return f"server at its connection limit ({cap})"
        return None

    async def _serve(
        self,
        conn: Connection,
        on_open: Callable[[Connection], Awaitable[None]] | None = None,
        accepts: frozenset[str] | None = None,
    ) -> None:
        self.open_connections[conn.uid] = conn
        # No writer task here: ``Connection`` starts one only while it has frames queued.
        log.info(
            "connection opened %s from %s as %s", conn.uid, _peer(conn.ws), conn.principal.subject
        )
        # The planned close under way for this connection, if any; cancelled on disconnect.
        # (An empty tuple unless one can happen: most connections never need the list.)
        closer: list[asyncio.Task[None]] | tuple[()] = ()
        expiry: asyncio.TimerHandle | None = None
        if self._lifecycle.draining:
            # The drain began while this handshake was in flight and did not see it.
            closer = [
                asyncio.create_task(
                    self._planned_close(conn, "shutdown", "server shutting down", 0.0)
                )
            ]
        elif self.limits.max_lifetime > 0:
            closer = []
            expiry = self._schedule_expiry(conn, closer)
        try:
            if on_open is not None:
                await on_open(conn)
            await self._receive_loop(conn, accepts)
        finally:
            if expiry is not None:
                expiry.cancel()
            for task in closer:
                task.cancel()
            self.subscriptions.drop_all(conn)
            self.open_connections.pop(conn.uid, None)
            await conn.stop_writer()
            self.stats.connection_closed(conn)
            # The server's own close code, else the one its WebSocket layer sent (1011 on a
            # keepalive timeout, 1009, 1007), else the client (or the network) ended it.
            code = conn.close_code if conn.close_code is not None else conn.layer_close_code()
            log.info(
                "connection closed %s (%s)",
                conn.uid,
                "closed by the peer" if code is None else f"code {code}",
            )

    async def _receive_loop(self, conn: Connection, accepts: frozenset[str] | None) -> None:
        ws = conn.ws
        limiter = self.limits.rate_limiter(self._clock)
        while conn.close_code is None:
            try:
                message = await ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            # Not kept while this loop waits for the next frame, which for an idle connection
            # is its whole life (uvicorn's message dict and the frame's text: ~0.3 KB).
            del message
            verdict = limiter.check()
            if verdict is Verdict.REFUSE:
                conn.reply(_error(ErrorCode.RATE_LIMITED, self._rate_message()))
                continue
            if verdict is Verdict.CLOSE:
                log.warning("closing %s: rate limit exceeded %d times", conn.uid, limiter.refused)
                await conn.close(CloseCode.POLICY_VIOLATION, "rate limit exceeded")
                return
            if text is None:
                conn.reply(
                    _error(
                        ErrorCode.UNSUPPORTED_FRAME,
                        "expected a JSON text frame, got a binary frame",
                    )
                )
                continue
            if len(text) > self._max_message_bytes and len(text.encode()) > self._max_message_bytes:
                await conn.close(CloseCode.MESSAGE_TOO_BIG, "message too big")
                return
            conn.work = 0
            await self.handle_text(conn, text, accepts)
            del text
            if conn.work:
                limiter.charge(conn.work)
            # Frames already queued for this connection would otherwise be handled back to
            # back in one turn of the event loop (receiving from a non-empty queue does not
            # suspend): give every other connection, the feeds and /readyz their turn first.
            await asyncio.sleep(0)

    def _rate_message(self) -> str:
        limits = self.limits
        return (
            f"rate limit exceeded: at most {limits.rate_per_second:g} frames per second "
            f"(bursts of {limits.rate_burst}); this frame was not processed"
        )

    # -- planned closes -------------------------------------------------------------------------

    def _schedule_expiry(
        self, conn: Connection, closer: list[asyncio.Task[None]]
    ) -> asyncio.TimerHandle:
        """Close ``conn`` at the end of its lifetime, with a notice before.

        A timer rather than a task sleeping for the whole lifetime: a parked task (its
        coroutine frame and sleep future) per connection costs memory on every idle
        connection; the task that sends the notice and closes is created when it is due,
        and appended to ``closer`` so a disconnect can cancel it.
        """
        lifetime = self.limits.lifetime(self._rng)
        lead = min(self.limits.close_notice_seconds, lifetime)

        def expire() -> None:
            closer.append(
                asyncio.create_task(
                    self._planned_close(conn, "max_lifetime", "connection lifetime reached", lead),
                    name=f"lifetime-{conn.uid}",
                )
            )

        return asyncio.get_running_loop().call_later(lifetime - lead, expire)

    async def drain(self) -> None:
        """Shutdown: notice to every client, the notice period, flush, close with 1001.

        Registered with the app's ``Lifecycle``; new connections are refused from the moment
        the lifecycle started draining (``_busy_reason``).
        """
        lead = self.limits.close_notice_seconds
        conns = list(self.open_connections.values())
        log.info("draining %d connection(s): closing in %.1fs", len(conns), lead)
        await asyncio.gather(
            *(self._planned_close(c, "shutdown", "server shutting down", lead) for c in conns),
            return_exceptions=True,
        )

    async def _planned_close(self, conn: Connection, code: str, reason: str, lead: float) -> None:
        """Notice, ``lead`` seconds of updates, flush, 1001 — once per connection: a shutdown
        that meets a lifetime close already under way waits for that one instead."""
        if conn.planned_close is not None:
            await asyncio.shield(conn.planned_close)
            return
        done = conn.planned_close = asyncio.get_running_loop().create_future()
        try:
            await self._notice_then_close(conn, code, reason, lead)
        finally:
            done.set_result(None)

    async def _notice_then_close(
        self, conn: Connection, code: str, reason: str, lead: float
    ) -> None:
        notice = {
            "code": code,
            "message": f"{reason}: reconnect (with `since` to resume bars)",
            "close_code": int(CloseCode.GOING_AWAY),
            "close_in_ms": round(lead * 1000),
        }
        conn.deliver(Frame(envelope("notice", notice)))
        if lead > 0:
            await asyncio.sleep(lead)
        flushed = await conn.close_after_flush(
            CloseCode.GOING_AWAY, reason, self.limits.drain_timeout
        )
        if not flushed:
            log.warning("connection %s closed before its queue was flushed", conn.uid)

    # -- one client frame ---------------------------------------------------------------------

    async def handle_text(
        self, conn: Connection, text: str, accepts: frozenset[str] | None = None
    ) -> None:
        """Parse, validate and dispatch one frame; exactly one reply or error comes back."""
        request_id: str | int | None = None
        request_type: str | None = None
        try:
            data = _parse(text)
            request_id = _request_id(data)
            request_type = _request_type(data)
            route = self._route(request_type, accepts)
            payload = _validate(route, data, request_type)
            result = route.handler(**_arguments(route, payload, conn, self))
            if inspect.isawaitable(result):
                result = await result
            reply_type = route.reply_operation
            assert reply_type is not None, f"route {request_type} has no reply"
            payload_out = result.model_dump(mode="json", exclude_none=True) if result else {}
            reply = envelope(reply_type, payload_out, request_id)
        except ProtocolError as exc:
            error = _error(exc.code, exc.message, exc.request_type or request_type, request_id)
        except ServiceUnavailable as exc:
            log.debug("request %s failed: %r", clip(str(request_type)), exc.__cause__ or exc)
            error = _error(ErrorCode.UNAVAILABLE, str(exc), request_type, request_id)
        except Exception:
            log.exception("request %s failed", clip(repr(request_type)))
            error = _error(ErrorCode.INTERNAL_ERROR, "internal error", request_type, request_id)
        except BaseException:
            conn.settle(ok=False)  # cancelled (the connection is closing): undo, reply nothing
            raise
        else:
            conn.reply(reply)
            conn.settle(ok=True)  # after the reply: held updates follow their snapshot
            return
        # Whatever the request set up before failing is undone first (a snapshot's hold
        # and its subscription), so an error reply never leaves the client subscribed.
        conn.settle(ok=False)
        conn.reply(error)

    def _route(self, request_type: str, accepts: frozenset[str] | None = None) -> Operation:
        routes = [
            route
            for route in self.router.routes
            if route.method == "SEND" and (accepts is None or route.operation in accepts)
        ]
        for route in routes:
            if route.operation == request_type:
                return route
        known = sorted(route.operation for route in routes)
        raise ProtocolError(
            ErrorCode.UNKNOWN_TYPE,
            # The type is echoed once, in ``request_type``: not again in the message.
            f"unknown message type (see request_type): expected one of {', '.join(known)}",
        )


def _parse(text: str) -> dict[str, Any]:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):
            # Valid JSON, but nested deeper than the parser goes: no request has a payload
            # like that, so it is refused as an invalid payload (its ``id`` cannot be read).
            raise ProtocolError(
                ErrorCode.VALIDATION_ERROR,
                f"frame is nested more than {MAX_JSON_DEPTH} arrays/objects deep: expected an "
                'object like {"type": "<route>.subscribe", "payload": {...}}',
            ) from None
        raise ProtocolError(
            ErrorCode.INVALID_JSON, f"frame is not valid JSON: {clip(str(exc), 2 * ECHO_LIMIT)}"
        ) from None
    if not isinstance(data, dict):
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE,
            f"expected a JSON object with 'type' and 'payload', got {type(data).__name__}",
        )
    return data


def _request_id(data: dict[str, Any]) -> str | int | None:
    """The envelope's ``id`` as the AsyncAPI document bounds it (``ws.spec._id_schema``).

    ``null`` is refused like any other non-id: the document offers no "null" id, only
    leaving ``id`` out. ``3.0`` is the integer 3 (``protocol.integral``) and echoed as ``3``.
    """
    if "id" not in data:
        return None
    request_id = integral(data["id"])
    if isinstance(request_id, str):
        if len(request_id) > MAX_ID_LENGTH:
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE, f"'id' must be at most {MAX_ID_LENGTH} characters"
            )
        return request_id
    if isinstance(request_id, int) and not isinstance(request_id, bool):
        if not -MAX_ID <= request_id <= MAX_ID:
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE,
                f"an integer 'id' must be within ±{MAX_ID} (2**53 - 1, exact in JavaScript)",
            )
        return request_id
    raise ProtocolError(
        ErrorCode.INVALID_MESSAGE,
        f"'id' must be a string or an integer, got {_json_type(request_id)}",
    )


def _json_type(value: Any) -> str:
    """A decoded JSON value's type as a client knows it (``null``, not ``NoneType``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _request_type(data: dict[str, Any]) -> str:
    request_type = data.get("type")
    if not isinstance(request_type, str):
        got = "nothing" if request_type is None else type(request_type).__name__
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE,
            f"expected a string 'type' such as '<route>.subscribe', got {got}",
        )
    extra = set(data) - _ENVELOPE_KEYS
    if extra:
        names = [clip(name) for name in sorted(extra)[:3]]
        more = f" and {len(extra) - 3} more" if len(extra) > 3 else ""
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE,
            f"unexpected envelope field(s) {', '.join(names)}{more}: "
            "expected only 'type', 'payload' and 'id'",
            request_type,
        )
    return request_type


def _validate(route: Operation, data: dict[str, Any], request_type: str) -> BaseModel | None:
    if "payload" not in data:
        # Required in every envelope the document describes, ``ping``'s ``{}`` included: one
        # shape for all messages, and no generated type with an optional payload.
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE,
            "missing 'payload': expected an object ({} when the message has no fields)",
            request_type,
        )
    payload = data["payload"]
    parameter = route.parameters.get("payload")
    if parameter is None:
        return None
    model: type[BaseModel] = parameter.annotation
    if not isinstance(payload, dict):
        raise ProtocolError(
            ErrorCode.VALIDATION_ERROR,
            f"expected 'payload' to be an object, got {type(payload).__name__}",
            request_type,
        )
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        code, message = describe_validation_error(exc)
        raise ProtocolError(code, message, request_type) from None


def _arguments(
    route: Operation, payload: BaseModel | None, conn: Connection, app: FastWSAdapter
) -> dict[str, Any]:
    available = {"payload": payload, "client": conn, "app": app}
    return {name: available[name] for name in route.parameters}


def _error(
    code: ErrorCode,
    message: str,
    request_type: str | None = None,
    request_id: str | int | None = None,
) -> str:
    payload: dict[str, Any] = {"code": code.value, "message": message}
    if request_type is not None:
        # Echoed once, and cut: the client chose it, and the reply must stay small.
        payload["request_type"] = clip(request_type)
    return envelope("error", payload, request_id)


async def _deny(ws: WebSocket) -> None:
    """Refuse a handshake: closing before accepting makes the server answer 403, never 101.

    (A ``websocket.http.response`` denial could carry 401 and a body, but uvicorn then logs
    an error for every refused handshake, and browsers show neither status nor body.)
    """
    await ws.close()


def _origins(ws: WebSocket) -> list[str]:
    """The ``Origin`` header's values, as ``ws.headers.getlist("origin")`` reads them, without
    the ``Headers`` object Starlette would then keep on ``ws`` for the connection's life."""
    headers: list[tuple[bytes, bytes]] = ws.scope["headers"]
    return [value.decode("latin-1") for name, value in headers if name == b"origin"]


def _peer(ws: WebSocket) -> str:
    client = ws.client
    return f"{client.host}:{client.port}" if client else "unknown"
