"""Reaching the TCP connection under a WebSocket, to abort it when even a close cannot go out.

(The same captured ``send`` also gives the fan-out its direct write path: ``ws.direct``.)

Why: a peer that reads nothing fills its socket buffers, after which no frame — not even the
close frame — can be written; ``await websocket.close()`` then waits forever and the server
keeps the connection and its buffers alive. The only remedy is to abort the TCP connection.

ASGI gives the application no handle on the transport. Under uvicorn's ``websockets-sansio``
implementation the ``send`` callable it passes to the *outermost* ASGI application is a bound
method of its protocol object, whose ``.transport`` is the asyncio transport (so in
uvicorn 0.54). Starlette's exception middleware wraps ``send`` in a closure
before it reaches an endpoint, so the endpoint's ``websocket._send`` no longer leads there:
``RawSendCapture`` sits outside that wrapping and records the server's own ``send`` in the
scope. This is an implementation detail of uvicorn, not an ASGI guarantee; without it
``abort_transport`` does nothing and the server closes the socket when it can (its own close
timeout). ``tests/integration/test_graceful_shutdown.py`` pins that it works.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

#: The scope key under which the server's own ``send`` is kept for WebSocket connections.
RAW_SEND_KEY: Final = "marketcast.raw_send"


class RawSendCapture:
    """ASGI middleware: remember the server's ``send`` of each WebSocket scope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope[RAW_SEND_KEY] = send
        await self.app(scope, receive, send)


def abort_transport(ws: WebSocket) -> bool:
    """Abort the TCP connection under ``ws``; False when the server does not expose it."""
    send: Any = ws.scope.get(RAW_SEND_KEY)
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    abort = getattr(transport, "abort", None)
    if callable(abort):
        abort()
        return True
    return False
