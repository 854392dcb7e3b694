"""A minimal WebSocket client protocol (RFC 6455) for load generation, on raw asyncio.

Why not the ``websockets`` client: the clients share one core and must receive every frame
the server under test can send; a full client library spends more CPU per frame than the
servers' own fast paths, so the clients, not the server, would set the figure. This protocol
does only what a listening client needs — the opening handshake, masked text frames out,
unmasked frames in, pong for ping, close — and hands each text payload to a callback as bytes
without decoding it.

The benchmark's own server frames are small and never fragmented; a fragmented or oversized
frame is treated as a protocol error here (the connection is dropped and counted), not
silently reassembled.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import Callable
from typing import cast

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_TEXT, _OP_CLOSE, _OP_PING, _OP_PONG = 0x1, 0x8, 0x9, 0xA
#: Largest frame accepted from the server; far above any frame the benchmark sends.
_MAX_FRAME = 1 << 20
#: Largest HTTP response head accepted during the handshake.
_MAX_HEAD = 16_384


def mask_frame(opcode: int, payload: bytes) -> bytes:
    """A client frame: FIN set, masked with a fresh random key as RFC 6455 requires."""
    length = len(payload)
    if length < 126:
        head = bytes((0x80 | opcode, 0x80 | length))
    elif length < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
    key = os.urandom(4)
    repeated = (key * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        length, "big"
    )
    return head + key + masked


class WsClientProtocol(asyncio.Protocol):
    """One client connection; text payloads go to ``on_text(payload, arrival_us)``.

    ``arrival_us`` is taken once per ``data_received`` call: every frame in one chunk arrived
    at the same instant, and one clock read per chunk keeps the client cheap.
    """

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        on_text: Callable[[bytes, int], None],
        clock_us: Callable[[], int],
    ) -> None:
        self._request_key = base64.b64encode(os.urandom(16))
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {self._request_key.decode()}\r\n\r\n"
        ).encode()
        self._on_text = on_text
        self._clock_us = clock_us
        self._pending = b""
        self._upgraded = False
        self.transport: asyncio.Transport | None = None
        #: Resolved once the server accepted the upgrade (or failed with the reason).
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        #: The close code the server sent, if it closed the connection.
        self.close_code: int | None = None
        self.error: str | None = None

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if self._pending:
            data = self._pending + data
            self._pending = b""
        if not self._upgraded:
            data = self._handshake(data)
            if not data:
                return
        self._frames(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(
                ConnectionError(f"connection lost during the handshake: {exc!r}")
            )
        if not self.closed.done():
            self.closed.set_result(None)

    # -- sending ------------------------------------------------------------------------------

    def send_text(self, text: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(mask_frame(_OP_TEXT, text))

    def close(self, code: int = 1000) -> None:
        """Send a close frame and drop the TCP connection (the benchmark is over)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(mask_frame(_OP_CLOSE, code.to_bytes(2, "big")))
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- parsing ------------------------------------------------------------------------------

    def _handshake(self, data: bytes) -> bytes:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            if len(data) > _MAX_HEAD:
                self._fail("handshake response head too long")
            else:
                self._pending = data
            return b""
        head, rest = data[:end].decode("latin-1"), data[end + 4 :]
        status_line, *header_lines = head.split("\r\n")
        if " 101 " not in f"{status_line} ":
            self._fail(f"upgrade refused: {status_line!r}")
            return b""
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        expected = base64.b64encode(hashlib.sha1(self._request_key + _GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != expected:
            self._fail("bad Sec-WebSocket-Accept in the upgrade response")
            return b""
        self._upgraded = True
        self.opened.set_result(None)
        return rest

    def _frames(self, data: bytes) -> None:
        now = self._clock_us()
        size, pos = len(data), 0
        on_text = self._on_text
        while size - pos >= 2:
            first, second = data[pos], data[pos + 1]
            length, head = second & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(data[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(data[pos + 2 : pos + 10], "big"), 10
            if second & 0x80 or not first & 0x80 or length > _MAX_FRAME:
                self._fail("masked, fragmented or oversized frame from the server")
                return
            end = pos + head + length
            if end > size:
                break
            opcode = first & 0x0F
            if opcode == _OP_TEXT:
                on_text(data[pos + head : end], now)
            elif opcode == _OP_PING:
                assert self.transport is not None
                self.transport.write(mask_frame(_OP_PONG, data[pos + head : end]))
            elif opcode == _OP_CLOSE:
                payload = data[pos + head : end]
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self.close()
                return
            elif opcode != _OP_PONG:
                self._fail(f"unexpected opcode {opcode:#x}")
                return
            pos = end
        if pos < size:
            self._pending = data[pos:]

    def _fail(self, reason: str) -> None:
        self.error = reason
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(reason))
        self.abort()
