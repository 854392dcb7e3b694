"""Writing pre-encoded frames straight to a client's TCP transport, when uvicorn allows it.

Why: the ASGI path costs, per frame and per client, a task wake-up, three layers of ``send``
wrappers and a Python-level WebSocket framer that encodes the same text again for every
client. A server frame is unmasked, so its bytes are the same for every subscriber
(``wire.Frame.wire``); written with ``transport.write`` they cost one call each, and the
publisher can do it synchronously from ``Connection.deliver`` when nothing is queued.

Why it is safe under uvicorn's ``websockets-sansio`` implementation (checked with 0.54): the
``send`` callable uvicorn passes to the outermost ASGI app (kept by ``WebSocketEntry``) is a
bound method of its protocol object, whose ``.transport`` is the asyncio transport, whose
``writable`` event is cleared while the transport's buffer is over its high-water mark, and
whose ``conn`` (the ``websockets`` sans-I/O protocol) lists the negotiated ``extensions``. A
text frame written to the transport interleaves with frames uvicorn writes itself, as long
as nobody writes one while an ASGI ``send`` of the same connection is under way — which
``Connection`` guarantees by writing directly only when its outbox is empty and its writer
idle. This is an implementation detail, not an ASGI guarantee: ``open_direct`` returns None
whenever anything it relies on is missing, or permessage-deflate was negotiated (frames
must then be compressed per connection), and the connection falls back to ASGI ``send``.
``tests/integration/test_direct_writes.py`` pins which path is taken.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.websockets import WebSocket

from marketcast.ws.transport import RAW_SEND_KEY


class DirectSink:
    """The transport and flow-control state of one uvicorn WebSocket connection."""

    __slots__ = ("_protocol", "_transport", "_writable", "write")

    def __init__(self, protocol: Any, transport: asyncio.WriteTransport) -> None:
        #: uvicorn's protocol: ``close_sent``/``disconnected`` say when frames must stop.
        self._protocol = protocol
        self._transport = transport
        #: Cleared by uvicorn between the transport's ``pause_writing`` and
        #: ``resume_writing``: the buffer is over its high-water mark.
        self._writable: asyncio.Event = protocol.writable
        #: Bound once: called for every frame written.
        self.write = transport.write

    def offer(self, data: bytes) -> bool:
        """Write ``data`` now if the transport takes it without queueing (under its
        high-water mark) and the connection is ``open``; False, nothing written, otherwise.

        Why the checks are inlined rather than calling ``open()``: this runs for every frame
        to every client that keeps up (measured: ~8 % of ``deliver``'s Python time).
        """
        protocol = self._protocol
        if (
            not self._writable.is_set()
            or protocol.close_sent
            or protocol.disconnected
            or self._transport.is_closing()
        ):
            return False
        self.write(data)
        return True

    def open(self) -> bool:
        """Whether data frames may still go out (no close frame sent, transport alive)."""
        protocol = self._protocol
        return not (protocol.close_sent or protocol.disconnected or self._transport.is_closing())

    def ready(self) -> bool:
        """Whether a write now would be taken without queueing (``offer``'s test)."""
        return self._writable.is_set() and self.open()

    async def wait_writable(self) -> None:
        """Return once the transport's buffer is back under its low-water mark."""
        await self._writable.wait()


def open_direct(ws: WebSocket) -> DirectSink | None:
    """The direct path for an accepted ``ws``, or None when it must use ASGI ``send``."""
    send: Any = ws.scope.get(RAW_SEND_KEY)
    protocol = getattr(send, "__self__", None)
    transport: Any = getattr(protocol, "transport", None)
    writable = getattr(protocol, "writable", None)
    conn = getattr(protocol, "conn", None)
    extensions = getattr(conn, "extensions", None)
    if (
        not isinstance(writable, asyncio.Event)
        or not callable(getattr(transport, "write", None))
        or not callable(getattr(transport, "is_closing", None))
        or not isinstance(getattr(protocol, "close_sent", None), bool)
        or not isinstance(getattr(protocol, "disconnected", None), bool)
        or not isinstance(extensions, list)
        or extensions  # permessage-deflate (or any extension) transforms every frame
    ):
        return None
    _release_handshake(protocol)
    return DirectSink(protocol, transport)


def _release_handshake(protocol: Any) -> None:
    """Drop the handshake request and response uvicorn keeps for the connection's lifetime.

    Why: uvicorn reads them only until the handshake completes (to build the scope and
    answer it), yet holds both, headers and all, for as long as the connection lives —
    ~3 KB per idle connection. The scope keeps its own copy of the request headers.
    """
    if getattr(protocol, "handshake_complete", False) is True:
        for name in ("request", "response"):
            if name in vars(protocol):
                setattr(protocol, name, None)
