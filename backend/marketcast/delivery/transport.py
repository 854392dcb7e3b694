"""The WebSocket entry: uvicorn's own ``send`` kept for each connection, and the main
WebSocket path served without the app's routing layers.

The kept ``send`` reaches the TCP connection under a WebSocket, to abort it when even a close
cannot go out (``abort_transport``), and gives the fan-out its direct write path
(``delivery.direct``).

Why: a peer that reads nothing fills its socket buffers, after which no frame — not even the
close frame — can be written; ``await websocket.close()`` then waits forever and the server
keeps the connection and its buffers alive. The only remedy is to abort the TCP connection.

ASGI gives the application no handle on the transport. Under uvicorn's ``websockets-sansio``
implementation the ``send`` callable it passes to the *outermost* ASGI application is a bound
method of its protocol object, whose ``.transport`` is the asyncio transport (so in
uvicorn 0.54). Starlette's exception middleware wraps ``send`` in a closure
before it reaches an endpoint, so the endpoint's ``websocket._send`` no longer leads there:
``WebSocketEntry`` sits outside that wrapping and records the server's own ``send`` in the
scope. This is an implementation detail of uvicorn, not an ASGI guarantee; without it
``abort_transport`` does nothing and the server closes the socket when it can (its own close
timeout). ``tests/integration/test_graceful_shutdown.py`` pins that it works.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

#: The scope key under which the server's own ``send`` is kept for WebSocket connections.
RAW_SEND_KEY: Final = "marketcast.raw_send"


#: Serves one accepted-or-refused WebSocket connection.
WebSocketHandler = Callable[[WebSocket], Awaitable[None]]
#: The handler of a WebSocket path (``root_path`` removed), or None to leave it to the app.
WebSocketRoutes = Callable[[str], WebSocketHandler | None]


class WebSocketEntry:
    """ASGI middleware: remember the server's ``send`` of each WebSocket scope, and serve the
    WebSocket paths ``routes`` knows without going through the rest of the app.

    Why the routes: a WebSocket handler lives as long as its connection, and so does every
    frame of the call chain above it. Through Starlette's exception middleware, the router,
    the route's session wrapper and FastAPI's dependency layer (with its exit stacks) that
    chain holds ~7 KB per idle connection — a quarter of the memory of one. marketcast's
    WebSocket handlers need none of it: they get a ``WebSocket`` built on the scope, exactly
    what Starlette would have given them. Errors they do not handle reach the server (uvicorn
    logs them and closes the connection), as they would through the router. Paths ``routes``
    does not know go to the app as before (its router refuses unknown ones).
    """

    def __init__(self, app: ASGIApp, routes: WebSocketRoutes | None = None) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[RAW_SEND_KEY] = send
            handler = None if self.routes is None else self.routes(_route_path(scope))
            if handler is not None:
                await handler(WebSocket(scope, receive, send))
                return
        await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path the app's router would match: ``path`` without the ``root_path`` prefix."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def abort_transport(ws: WebSocket) -> bool:
    """Abort the TCP connection under ``ws``; False when the server does not expose it."""
    send: Any = ws.scope.get(RAW_SEND_KEY)
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    abort = getattr(transport, "abort", None)
    if callable(abort):
        abort()
        return True
    return False
