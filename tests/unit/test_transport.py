"""``RawSendCapture`` keeps the server's own ``send`` in WebSocket scopes, and
``abort_transport`` uses it when (and only when) it leads to an abortable transport."""

from __future__ import annotations

from typing import Any

from starlette.websockets import WebSocket

from marketcast.ws.transport import RAW_SEND_KEY, RawSendCapture, abort_transport


class Transport:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


class Protocol:
    """Shaped like uvicorn's WebSocket protocol: ``send`` is a bound method of it."""

    def __init__(self) -> None:
        self.transport = Transport()

    async def send(self, message: Any) -> None:
        pass


async def receive() -> Any:
    return {"type": "websocket.connect"}


async def test_websocket_scope_gets_the_raw_send_and_http_does_not() -> None:
    seen: list[dict[str, Any]] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        # What an endpoint sees after Starlette wrapped ``send`` in a closure.
        async def wrapped(message: Any) -> None:
            await send(message)

        seen.append(scope)
        ws = WebSocket(scope, receive, wrapped)
        assert abort_transport(ws)

    protocol = Protocol()
    await RawSendCapture(inner)({"type": "websocket", "headers": []}, receive, protocol.send)
    assert seen[0][RAW_SEND_KEY] == protocol.send
    assert protocol.transport.aborted

    async def http_app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)

    await RawSendCapture(http_app)({"type": "http"}, receive, protocol.send)
    assert RAW_SEND_KEY not in seen[1]


async def test_without_a_reachable_transport_nothing_is_aborted() -> None:
    async def plain_send(message: Any) -> None:
        pass

    ws = WebSocket(
        {"type": "websocket", "headers": [], RAW_SEND_KEY: plain_send}, receive, plain_send
    )
    assert not abort_transport(ws)
    assert not abort_transport(WebSocket({"type": "websocket", "headers": []}, receive, plain_send))
