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
whenever anything it relies on is missing, or an extension other than permessage-deflate
without server context takeover was negotiated, and the connection falls back to ASGI
``send``.

Why permessage-deflate keeps the direct path: the server negotiates it with
``server_no_context_takeover`` (``serving``), so each message it sends is compressed on its
own and the frames uvicorn writes (replies, compressed by ``websockets``) and the frames
written here (``wire.Frame.deflated``, compressed once for every subscriber) can interleave:
no compression state links one message to the next. A message may also go out uncompressed
(RFC 7692), which is how a short frame is sent.
``tests/integration/test_direct_writes.py`` pins which path is taken.

Why the path is named at startup (``startup_write_path``) and counted per path in ``/metrics``
(``delivery.stats``): a fallback is correct but several times slower, and nothing else would show
that an uvicorn upgrade moved what this module relies on. The startup line is a forecast read
from uvicorn's protocol class before any client connects; the counters say what each frame
actually took, and a connection that falls back says why at debug level.

Why the sink also tells what waits (``unsent``): a client that reads slowly keeps the outbox
empty while megabytes wait in the transport's buffer and the kernel's send queue
(``delivery.lag``). The transport reports its own buffer; the kernel's queue is read with the
``SIOCOUTQ`` ioctl (Linux: bytes not yet acknowledged by the peer). Elsewhere, or when the
socket cannot be reached, that part counts as 0 and only what waits in the process is seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import sys
from collections.abc import Callable
from typing import Any, Final

from starlette.websockets import WebSocket
from websockets.extensions.permessage_deflate import PerMessageDeflate

from marketcast.delivery.transport import RAW_SEND_KEY
from marketcast.wire import Frame

if sys.platform == "linux":
    import fcntl
    import termios

log = logging.getLogger("marketcast.delivery.direct")

#: The attributes of uvicorn's protocol object that ``open_direct`` reads.
_PROTOCOL_ATTRIBUTES: Final = ("transport", "writable", "conn", "close_sent", "disconnected")

#: The ioctl's answer: a C int.
_INT: Final = struct.Struct("i")
#: ``SO_LINGER`` on, 0 seconds: closing the socket sends a reset and drops its send queue.
_LINGER_RESET: Final = struct.pack("ii", 1, 0)


class DirectSink:
    """The transport and flow-control state of one uvicorn WebSocket connection."""

    __slots__ = ("_protocol", "_transport", "_writable", "encode", "write")

    def __init__(
        self, protocol: Any, transport: asyncio.WriteTransport, deflate_bits: int = 0
    ) -> None:
        #: uvicorn's protocol: ``close_sent``/``disconnected`` say when frames must stop.
        self._protocol = protocol
        self._transport = transport
        #: Cleared by uvicorn between the transport's ``pause_writing`` and
        #: ``resume_writing``: the buffer is over its high-water mark.
        self._writable: asyncio.Event = protocol.writable
        #: Bound once: called for every frame written.
        self.write = transport.write
        #: A frame's bytes for this connection: plain, or compressed with the window it
        #: negotiated (``deflate_bits``, 0: none), shared with every connection alike.
        self.encode: Callable[[Frame], bytes] = (
            _deflated_with(deflate_bits) if deflate_bits else Frame.wire
        )

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

    def alive(self) -> bool:
        """Whether the TCP connection is still there (it may be closing)."""
        return not self._protocol.disconnected

    def unsent(self) -> int:
        """Bytes written that the peer has not taken: the transport's buffer plus the
        kernel's send queue (0 for the latter where it cannot be read)."""
        transport = self._transport
        return transport.get_write_buffer_size() + kernel_unsent(transport.get_extra_info("socket"))

    def reset(self) -> None:
        """Abort the TCP connection with a reset, dropping what the kernel still holds for it.

        Why not ``transport.abort()`` alone: it drops the transport's buffer and closes the
        socket, but the kernel then goes on delivering its own send queue — megabytes for a
        slow consumer — and a FIN, to a client the server has given up on, which reads stale
        data for minutes instead of reconnecting. With ``SO_LINGER`` 0 the close sends a
        reset: the client reads what its own kernel already received, then sees the reset.
        """
        transport = self._transport
        with contextlib.suppress(OSError, AttributeError, ValueError, TypeError):
            transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET
            )
        transport.abort()

    def extend_close_timeout(self, seconds: float) -> None:
        """Keep uvicorn from closing the TCP connection for ``seconds`` after its close frame.

        Why: uvicorn closes the socket gracefully ``close_timeout`` (10 s) after sending a
        close frame the peer did not answer, and the kernel then goes on delivering whatever
        was still queued — to a slow consumer, long after the server gave up on it. A close
        that waits for a slow reader (``Connection._close``) must decide itself, and abort
        when it gives up. Nothing happens if the protocol has no such attribute.
        """
        current = getattr(self._protocol, "close_timeout", None)
        if isinstance(current, int | float) and current < seconds:
            self._protocol.close_timeout = seconds


def _deflated_with(window_bits: int) -> Callable[[Frame], bytes]:
    """``Frame.deflated`` with the window bound: a closure, not a ``partial`` with a keyword,
    which measured twice the call cost on this per-delivery path."""
    deflated = Frame.deflated

    def encode(frame: Frame) -> bytes:
        return deflated(frame, window_bits)

    return encode


def kernel_unsent(sock: Any) -> int:
    """Bytes in ``sock``'s kernel send queue not yet acknowledged by the peer; 0 if unknown."""
    if sys.platform != "linux" or sock is None:
        return 0
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
        fd = sock.fileno()
        if fd >= 0:
            # SIOCOUTQ: Linux's name for TIOCOUTQ on a socket.
            queued: int = _INT.unpack(fcntl.ioctl(fd, termios.TIOCOUTQ, bytes(_INT.size)))[0]
            return max(queued, 0)
    return 0


def layer_close_code(ws: WebSocket) -> int | None:
    """The close code uvicorn's WebSocket layer sent on its own initiative, if any.

    Why: when a keepalive ping goes unanswered (1011), a frame is refused by the parser (1009,
    1007) or the server stops without a drain (1012), the application only sees the
    connection end, like a client leaving. The ``websockets`` protocol object under uvicorn's
    ``websockets-sansio`` implementation records the close frame it sent (``close_sent``) and
    whether it merely answered the client's (``close_rcvd_then_sent``). None when the client
    closed first, nothing was sent, or the implementation is another one.
    """
    protocol = getattr(ws.scope.get(RAW_SEND_KEY), "__self__", None)
    conn = getattr(protocol, "conn", None)
    code = getattr(getattr(conn, "close_sent", None), "code", None)
    # ``close_rcvd_then_sent`` is True only when the close sent answered the client's.
    if isinstance(code, int) and getattr(conn, "close_rcvd_then_sent", None) is not True:
        return code
    return None


def open_direct(ws: WebSocket) -> DirectSink | None:
    """The direct path for an accepted ``ws``, or None when it must use ASGI ``send``."""
    send: Any = ws.scope.get(RAW_SEND_KEY)
    protocol = getattr(send, "__self__", None)
    transport: Any = getattr(protocol, "transport", None)
    writable = getattr(protocol, "writable", None)
    conn = getattr(protocol, "conn", None)
    extensions = getattr(conn, "extensions", None)
    reason = None
    if not isinstance(writable, asyncio.Event):
        reason = "no 'writable' event on the protocol"
    elif not callable(getattr(transport, "write", None)) or not callable(
        getattr(transport, "is_closing", None)
    ):
        reason = "no transport with write() and is_closing()"
    elif not isinstance(getattr(protocol, "close_sent", None), bool) or not isinstance(
        getattr(protocol, "disconnected", None), bool
    ):
        reason = "no 'close_sent' and 'disconnected' flags on the protocol"
    elif not isinstance(extensions, list):
        reason = "no negotiated extensions list on the protocol's connection"
    elif extensions and shared_deflate_bits(extensions) is None:
        reason = f"extensions {extensions!r} compress each connection's frames its own way"
    if reason is not None:
        log.debug("frames go through ASGI send: %s", reason)
        return None
    _release_handshake(protocol)
    deflate_bits = shared_deflate_bits(extensions) if extensions else None
    return DirectSink(protocol, transport, deflate_bits or 0)


def shared_deflate_bits(extensions: list[Any]) -> int | None:
    """The window of the one extension negotiated, when it is permessage-deflate without
    server context takeover (so a frame compressed once serves every such connection);
    None for anything else."""
    if len(extensions) != 1 or not isinstance(extensions[0], PerMessageDeflate):
        return None
    deflate = extensions[0]
    if not deflate.local_no_context_takeover:
        return None
    bits: int = deflate.local_max_window_bits
    return bits


def startup_write_path(protocol_class: object, *, per_message_deflate: bool) -> tuple[bool, str]:
    """Whether connections served by ``protocol_class`` (uvicorn's WebSocket protocol) can take
    the direct path, and the startup log line that says so, with the reason when they cannot.

    Why read the class's code instead of waiting for a connection: the operator should learn
    it when the server starts, not from a slow fan-out later. A class whose code never names
    an attribute ``open_direct`` reads cannot set it; the reverse is only likely, so the
    per-path counters in ``/metrics`` remain the proof.
    """
    name = getattr(protocol_class, "__qualname__", repr(protocol_class))
    assigned = _attribute_names(protocol_class)
    missing = [attribute for attribute in _PROTOCOL_ATTRIBUTES if attribute not in assigned]
    if missing:
        return False, (
            f"WebSocket write path: ASGI send for every frame (the direct path is unavailable: "
            f"uvicorn's {name} has no {', '.join(map(repr, missing))}; see ws/direct.py)"
        )
    line = f"WebSocket write path: direct to uvicorn's transport ({name})"
    if per_message_deflate:
        line += ", permessage-deflate offered (each frame compressed once for every client)"
    return True, line


def _attribute_names(protocol_class: object) -> set[str]:
    """Every name the code of ``protocol_class`` and its bases loads or stores (``co_names``),
    nested functions included: no instance is needed, so nothing of uvicorn's runs."""
    names: set[str] = set()
    codes = [
        code
        for klass in getattr(protocol_class, "__mro__", ())
        for member in vars(klass).values()
        if (code := getattr(member, "__code__", None)) is not None
    ]
    while codes:
        code = codes.pop()
        names.update(code.co_names)
        codes.extend(const for const in code.co_consts if hasattr(const, "co_names"))
    return names


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
