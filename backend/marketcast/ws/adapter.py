"""``FastWSAdapter``: fastws's routing and models, with fan-out and errors that scale.

Kept from fastws: operation routers (``OperationRouter``), the route table that drives
validation and the AsyncAPI document. Replaced: the receive loop (bad frames get a typed
``error`` reply and the connection stays open, request ids are echoed), ``broadcast`` (a topic
index and bounded per-client outboxes instead of awaiting every socket), and the AsyncAPI
document (``ws.spec``, with stable names and ``type`` constants).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

import orjson
from fastws import FastWS, Operation
from pydantic import BaseModel, ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from marketcast.errors import CloseCode, ErrorCode, ProtocolError
from marketcast.subscriptions import Subscriptions
from marketcast.wire import envelope
from marketcast.ws.connection import Connection
from marketcast.ws.hub import Hub
from marketcast.ws.outbox import Outbox
from marketcast.ws.validation import describe_validation_error

log = logging.getLogger("marketcast.ws")

_ENVELOPE_KEYS = frozenset({"type", "payload", "id"})


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
        **fastws_options: Any,
    ) -> None:
        super().__init__(asyncapi_url=None, asyncapi_docs_url=None, **fastws_options)
        self.hub = hub
        self.subscriptions = subscriptions
        self._outbox_factory = outbox_factory
        self._max_message_bytes = max_message_bytes
        self._spec_builder = spec_builder
        #: Live connections by id; read by health and shutdown, never scanned to publish.
        #: (fastws's own ``connections`` map stays empty: its Client type is too narrow.)
        self.open_connections: dict[str, Connection] = {}

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
        await ws.accept()
        conn = Connection(ws, self._outbox_factory())
        self.open_connections[conn.uid] = conn
        conn.start_writer()
        log.info("connection opened %s from %s", conn.uid, _peer(ws))
        try:
            await self._receive_loop(conn)
        finally:
            self.subscriptions.drop_all(conn)
            self.open_connections.pop(conn.uid, None)
            await conn.stop_writer()
            log.info("connection closed %s (code %s)", conn.uid, conn.close_code)

    async def _receive_loop(self, conn: Connection) -> None:
        ws = conn.ws
        while conn.close_code is None:
            try:
                message = await ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
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
            await self.handle_text(conn, text)

    # -- one client frame ---------------------------------------------------------------------

    async def handle_text(self, conn: Connection, text: str) -> None:
        """Parse, validate and dispatch one frame; exactly one reply or error comes back."""
        request_id: str | int | None = None
        request_type: str | None = None
        try:
            data = _parse(text)
            request_id = _request_id(data)
            request_type = _request_type(data)
            route = self._route(request_type)
            payload = _validate(route, data.get("payload", {}), request_type)
            result = route.handler(**_arguments(route, payload, conn, self))
            if inspect.isawaitable(result):
                result = await result
        except ProtocolError as exc:
            conn.reply(_error(exc.code, exc.message, exc.request_type or request_type, request_id))
            return
        except Exception:
            log.exception("request %r failed", request_type)
            conn.reply(_error(ErrorCode.INTERNAL_ERROR, "internal error", request_type, request_id))
            return
        reply_type = route.reply_operation
        assert reply_type is not None, f"route {request_type} has no reply"
        payload_out = result.model_dump(mode="json", exclude_none=True) if result else {}
        conn.reply(envelope(reply_type, payload_out, request_id))

    def _route(self, request_type: str) -> Operation:
        for route in self.router.routes:
            if route.operation == request_type and route.method == "SEND":
                return route
        known = sorted(r.operation for r in self.router.routes if r.method == "SEND")
        raise ProtocolError(
            ErrorCode.UNKNOWN_TYPE,
            f"unknown message type {request_type!r}: expected one of {', '.join(known)}",
        )


def _parse(text: str) -> dict[str, Any]:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(ErrorCode.INVALID_JSON, f"frame is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE,
            f"expected a JSON object with 'type' and 'payload', got {type(data).__name__}",
        )
    return data


def _request_id(data: dict[str, Any]) -> str | int | None:
    request_id = data.get("id")
    if request_id is None:
        return None
    if isinstance(request_id, bool) or not isinstance(request_id, str | int):
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE,
            f"'id' must be a string or an integer, got {type(request_id).__name__}",
        )
    if isinstance(request_id, str) and len(request_id) > 64:
        raise ProtocolError(ErrorCode.INVALID_MESSAGE, "'id' must be at most 64 characters")
    return request_id


def _request_type(data: dict[str, Any]) -> str:
    request_type = data.get("type")
    if not isinstance(request_type, str):
        got = "nothing" if request_type is None else type(request_type).__name__
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE,
            f"expected a string 'type' such as 'bars.subscribe', got {got}",
        )
    extra = set(data) - _ENVELOPE_KEYS
    if extra:
        raise ProtocolError(
            ErrorCode.INVALID_MESSAGE,
            f"unexpected envelope field(s) {', '.join(sorted(extra))}: "
            "expected only 'type', 'payload' and 'id'",
            request_type,
        )
    return request_type


def _validate(route: Operation, payload: Any, request_type: str) -> BaseModel | None:
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
        payload["request_type"] = request_type
    return envelope("error", payload, request_id)


def _peer(ws: WebSocket) -> str:
    client = ws.client
    return f"{client.host}:{client.port}" if client else "unknown"
