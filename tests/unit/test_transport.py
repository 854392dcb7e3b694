"""``WebSocketEntry`` keeps the server's own ``send`` in WebSocket scopes, and
``abort_transport`` uses it when (and only when) it leads to an abortable transport."""

from __future__ import annotations

from typing import Any, ClassVar

from starlette.websockets import WebSocket

from marketcast.delivery.transport import (
    RAW_SEND_KEY,
    EntryFirstApp,
    WebSocketEntry,
    abort_transport,
)


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
    await WebSocketEntry(inner)({"type": "websocket", "headers": []}, receive, protocol.send)
    assert seen[0][RAW_SEND_KEY] == protocol.send
    assert protocol.transport.aborted

    async def http_app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)

    await WebSocketEntry(http_app)({"type": "http"}, receive, protocol.send)
    assert RAW_SEND_KEY not in seen[1]


async def test_without_a_reachable_transport_nothing_is_aborted() -> None:
    async def plain_send(message: Any) -> None:
        pass

    ws = WebSocket(
        {"type": "websocket", "headers": [], RAW_SEND_KEY: plain_send}, receive, plain_send
    )
    assert not abort_transport(ws)
    assert not abort_transport(WebSocket({"type": "websocket", "headers": []}, receive, plain_send))


async def test_a_direct_route_gets_the_socket_and_the_app_does_not() -> None:
    """Direct routes bypass the wrapped app (its routing and middleware) by path, with the
    ``root_path`` prefix removed as the router would; other paths and HTTP reach the app."""
    handled: list[tuple[str, Any]] = []
    reached_app: list[str] = []

    async def handler(ws: WebSocket) -> None:
        handled.append((ws.url.path, ws.scope[RAW_SEND_KEY]))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached_app.append(f"{scope['type']} {scope['path']}")

    entry = WebSocketEntry(app, routes={"/api/v1/ws": handler}.get)
    protocol = Protocol()

    def scope(type_: str, path: str, root: str = "") -> dict[str, Any]:
        return {"type": type_, "path": path, "root_path": root, "headers": []}

    await entry(scope("websocket", "/api/v1/ws"), receive, protocol.send)
    await entry(scope("websocket", "/prefix/api/v1/ws", "/prefix"), receive, protocol.send)
    await entry(scope("websocket", "/api/v1/ws/stream/bars/BTCUSDT/1"), receive, protocol.send)
    await entry(scope("http", "/api/v1/ws"), receive, protocol.send)
    assert handled == [("/api/v1/ws", protocol.send), ("/prefix/api/v1/ws", protocol.send)]
    assert reached_app == ["websocket /api/v1/ws/stream/bars/BTCUSDT/1", "http /api/v1/ws"]


class Recorder:
    """A user middleware that notes every scope passing through it."""

    seen: ClassVar[list[str]] = []

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        Recorder.seen.append(f"{scope['type']} {scope.get('path')}")
        await self.app(scope, receive, send)


def entry_first_app(*, outer: bool = False) -> tuple[EntryFirstApp, list[Any]]:
    handled: list[Any] = []

    async def handler(ws: WebSocket) -> None:
        handled.append(ws.scope)

    app = EntryFirstApp()
    app.add_middleware(WebSocketEntry, routes={"/api/v1/ws": handler}.get)
    if outer:
        app.add_middleware(Recorder)
    return app, handled


async def test_entry_first_app_serves_an_entry_path_without_its_middleware_stack() -> None:
    """The handler gets what the stack would have given it (the path under ``root_path``,
    ``app``, the raw ``send``), and the stack is never even built for it."""
    app, handled = entry_first_app()
    protocol = Protocol()
    scope = {
        "type": "websocket",
        "path": "/prefix/api/v1/ws",
        "root_path": "/prefix",
        "headers": [],
    }
    await app(scope, receive, protocol.send)
    assert len(handled) == 1
    assert handled[0]["path"] == "/prefix/api/v1/ws"
    assert handled[0]["app"] is app
    assert handled[0][RAW_SEND_KEY] == protocol.send
    assert app.middleware_stack is None


async def test_entry_first_app_leaves_other_paths_to_the_stack() -> None:
    app, handled = entry_first_app()
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    await app(
        {"type": "websocket", "path": "/prefix/nowhere", "root_path": "/prefix", "headers": []},
        receive,
        send,
    )
    assert handled == []
    assert app.middleware_stack is not None
    assert sent == [{"type": "websocket.close", "code": 1000, "reason": ""}]  # the router


async def test_entry_first_app_keeps_middleware_added_outside_the_entry() -> None:
    """A middleware the app added after the entry wraps it: the shortcut would skip it, so
    the connection takes the full stack (and still reaches the entry's handler)."""
    Recorder.seen.clear()
    app, handled = entry_first_app(outer=True)
    await app(
        {"type": "websocket", "path": "/prefix/api/v1/ws", "root_path": "/prefix", "headers": []},
        receive,
        Protocol().send,
    )
    assert Recorder.seen == ["websocket /prefix/api/v1/ws"]
    assert len(handled) == 1
