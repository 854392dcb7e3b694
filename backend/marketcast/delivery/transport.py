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

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from marketcast.delivery.lean import slim_protocol

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
            handler = self.handler_for(scope, send)
            if handler is not None:
                await handler(WebSocket(scope, receive, send))
                return
        await self.app(scope, receive, send)

    def handler_for(self, scope: Scope, send: Send) -> WebSocketHandler | None:
        """Keep the server's ``send`` in the WebSocket ``scope``; the handler of its path, if
        ``routes`` has one — with uvicorn's per-connection objects slimmed for it first
        (``delivery.lean``: before the handler receives anything)."""
        scope[RAW_SEND_KEY] = send
        handler = None if self.routes is None else self.routes(_route_path(scope))
        if handler is not None:
            slim_protocol(getattr(send, "__self__", None))
        return handler


class EntryFirstApp(FastAPI):
    """A FastAPI app whose ``WebSocketEntry`` serves its WebSocket paths from ``__call__``.

    Why: as a middleware the entry sits inside FastAPI's own outer layers (server errors,
    exception telemetry, the body limit) and below ``FastAPI.__call__`` and
    ``Starlette.__call__``; a WebSocket connection keeps every one of those coroutine frames
    for its whole life, ~1.5 KB per idle connection (``docs/performance.md``). For a WebSocket
    path the entry serves, none of them does anything: the error middleware and the body limit
    pass WebSocket scopes through, and exception telemetry records nothing unless FastAPI's
    telemetry is on. So, when the entry is the outermost user middleware (nothing the
    application added runs before it) and FastAPI's telemetry is off, ``__call__`` does what
    those layers would have done for such a path (``root_path``, ``scope["app"]``) and calls
    the handler itself. Every other case (HTTP, lifespan, a path the entry leaves to the
    router, telemetry on) takes the full stack, where the entry still runs as before.
    """

    #: The entry the direct call uses, built on first use from the declared middleware.
    _entry_first: WebSocketEntry | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            entry = self._outermost_entry()
            if entry is not None:
                if self.root_path:  # as FastAPI.__call__
                    scope["root_path"] = self.root_path
                handler = entry.handler_for(scope, send)
                if handler is not None:
                    scope["app"] = self  # as Starlette.__call__
                    await handler(WebSocket(scope, receive, send))
                    return
        await super().__call__(scope, receive, send)

    def _outermost_entry(self) -> WebSocketEntry | None:
        """A ``WebSocketEntry`` like the one in the middleware stack, when it is the outermost
        user middleware and FastAPI's telemetry does not wrap WebSocket connections."""
        telemetry = getattr(self, "_native_telemetry", None)
        if telemetry is not None and telemetry.enabled():
            return None
        if not self.user_middleware:
            return None
        outermost = self.user_middleware[0]
        declared: Any = outermost.cls
        if declared is not WebSocketEntry or outermost.args:
            return None
        routes: Any = outermost.kwargs.get("routes")
        if routes is None:
            return None
        entry = self._entry_first
        if entry is None or entry.routes is not routes:
            entry = self._entry_first = WebSocketEntry(self.router, routes=routes)
        return entry


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
