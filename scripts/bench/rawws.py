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

permessage-deflate (RFC 7692), when asked for (``DeflateOffer``): the handshake offers it with
``server_no_context_takeover`` and ``client_no_context_takeover`` (and a window size if
given), ``parse_deflate_answer`` checks what the server agreed, and a frame with RSV1 set is
inflated before ``on_text`` sees it: raw inflate of the payload plus ``00 00 ff ff``, with a
fresh decompressor per message when the server agreed to ``server_no_context_takeover``, one
kept for the connection otherwise. Frames without RSV1 pass through as before (a server may
send any message uncompressed). The client never compresses what it sends (RFC 7692 lets
it). A connection that offers nothing runs exactly the old path plus one bit test per frame.

Every text frame's size on the wire — WebSocket header plus payload as received, compressed
or not; TCP/IP headers excluded — is left in ``frame_bytes`` for ``on_text`` to count.

``quickack``: after each read, ``TCP_QUICKACK`` (Linux) makes the kernel acknowledge at once
instead of delaying the ACK up to 40 ms. Measured on this machine's loopback: frames of
500-700 bytes at ~50 a second per connection (the deflate scenario's compressed frames, or
plain frames of that size) stall in bursts of 30-40 ms for every server, ``raw`` included,
while 1.3 KB frames never do; with quick ACKs the stalls are gone. The deflate scenarios
(both of them) ask for it, so their p99 compares servers, not the loopback's ACK timing.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_TEXT, _OP_CLOSE, _OP_PING, _OP_PONG = 0x1, 0x8, 0x9, 0xA
#: Largest frame accepted from the server; far above any frame the benchmark sends.
_MAX_FRAME = 1 << 20
#: Largest HTTP response head accepted during the handshake.
_MAX_HEAD = 16_384
#: What RFC 7692 7.2.2 has the receiver append to a message before inflating it.
_DEFLATE_TAIL = b"\x00\x00\xff\xff"
_DEFLATE = "permessage-deflate"


@dataclass(frozen=True)
class DeflateOffer:
    """What the client offers: permessage-deflate without context takeover either way, and
    the largest server window it wants (None: the server's choice, up to 15 bits)."""

    server_max_window_bits: int | None = None

    def header(self) -> str:
        """The ``Sec-WebSocket-Extensions`` value of the request."""
        value = f"{_DEFLATE}; server_no_context_takeover; client_no_context_takeover"
        if self.server_max_window_bits is not None:
            value += f"; server_max_window_bits={self.server_max_window_bits}"
        return value


@dataclass(frozen=True)
class Deflate:
    """What the server agreed to (its ``Sec-WebSocket-Extensions`` answer)."""

    server_no_context_takeover: bool
    client_no_context_takeover: bool
    #: The window the server compresses with (15 when it names none).
    server_max_window_bits: int = 15

    def decompressor(self) -> zlib._Decompress:
        return zlib.decompressobj(wbits=-self.server_max_window_bits)


def parse_deflate_answer(value: str | None, offer: DeflateOffer) -> Deflate | None:
    """The server's ``Sec-WebSocket-Extensions`` answer to ``offer``: None when it declined
    (no header); ValueError for anything RFC 7692 does not allow as an answer to this offer
    (another extension, a parameter twice or unknown, a window larger than offered,
    ``client_max_window_bits``, which this client never offers)."""
    if value is None or not value.strip():
        return None
    extensions = [part.strip() for part in value.split(",") if part.strip()]
    if len(extensions) != 1:
        raise ValueError(f"the server answered with several extensions: {value!r}")
    name, *raw_params = (item.strip() for item in extensions[0].split(";"))
    if name.lower() != _DEFLATE:
        raise ValueError(f"the server answered with an extension not offered: {name!r}")
    params: dict[str, str | None] = {}
    for raw in raw_params:
        key, eq, arg = raw.partition("=")
        key = key.strip().lower()
        if key in params:
            raise ValueError(f"parameter {key!r} given twice in {value!r}")
        params[key] = arg.strip().strip('"') if eq else None
    unknown = set(params) - {
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
    }
    if unknown:
        raise ValueError(f"parameter(s) {sorted(unknown)} not allowed in the answer {value!r}")
    for flag in ("server_no_context_takeover", "client_no_context_takeover"):
        if params.get(flag) is not None:
            raise ValueError(f"{flag} takes no value: {value!r}")
    bits = 15
    if "server_max_window_bits" in params:
        given = params["server_max_window_bits"]
        if given is None or not given.isdigit() or not 8 <= int(given) <= 15:
            raise ValueError(f"bad server_max_window_bits in {value!r}")
        bits = int(given)
        if offer.server_max_window_bits is not None and bits > offer.server_max_window_bits:
            raise ValueError(f"a window larger than offered in {value!r}")
    elif offer.server_max_window_bits is not None:
        bits = offer.server_max_window_bits
    return Deflate(
        server_no_context_takeover="server_no_context_takeover" in params,
        client_no_context_takeover="client_no_context_takeover" in params,
        server_max_window_bits=bits,
    )


def inflate(
    payload: bytes, decoder: zlib._Decompress | None, deflate: Deflate, limit: int = 1 << 20
) -> bytes:
    """One compressed message's text: ``decoder`` is the connection's kept decompressor, or
    None for a fresh one (``server_no_context_takeover``). ValueError if it does not inflate
    or inflates to more than ``limit`` bytes."""
    if decoder is None:
        decoder = deflate.decompressor()
    try:
        text = decoder.decompress(payload + _DEFLATE_TAIL, limit)
    except zlib.error as exc:
        raise ValueError(f"the server's compressed frame does not inflate: {exc}") from None
    if decoder.unconsumed_tail:
        raise ValueError(f"a compressed frame inflates to more than {limit} bytes")
    return text


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
        deflate: DeflateOffer | None = None,
        quickack: bool = False,
    ) -> None:
        self._request_key = base64.b64encode(os.urandom(16))
        extensions = f"Sec-WebSocket-Extensions: {deflate.header()}\r\n" if deflate else ""
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {self._request_key.decode()}\r\n{extensions}\r\n"
        ).encode()
        self._offer = deflate
        #: What the server agreed to; None: plain frames only.
        self.deflate: Deflate | None = None
        #: The kept decompressor when the server keeps its context between messages.
        self._decoder: zlib._Decompress | None = None
        #: Wire size of the text frame being handed to ``on_text`` (header + payload).
        self.frame_bytes = 0
        #: Text frames that arrived compressed (RSV1), over the connection's life.
        self.inflated = 0
        #: Acknowledge every read at once (``TCP_QUICKACK``): set in ``connection_made``.
        self._quickack: Callable[[], None] | None = None
        self._want_quickack = quickack
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
        quickack = getattr(socket, "TCP_QUICKACK", None)
        sock = transport.get_extra_info("socket")
        if self._want_quickack and quickack is not None and sock is not None:
            self._quickack = lambda: sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if self._quickack is not None:
            self._quickack()
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
        answer = headers.get("sec-websocket-extensions")
        if answer is not None and self._offer is None:
            self._fail(f"the server answered extensions nobody offered: {answer!r}")
            return b""
        if self._offer is not None:
            try:
                self.deflate = parse_deflate_answer(answer, self._offer)
            except ValueError as exc:
                self._fail(str(exc))
                return b""
            if self.deflate is not None and not self.deflate.server_no_context_takeover:
                self._decoder = self.deflate.decompressor()
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
                payload = data[pos + head : end]
                if first & 0x40:
                    deflate = self.deflate
                    if deflate is None:
                        self._fail("RSV1 set on a frame, and no permessage-deflate agreed")
                        return
                    try:
                        payload = inflate(payload, self._decoder, deflate, _MAX_FRAME)
                    except ValueError as exc:
                        self._fail(str(exc))
                        return
                    self.inflated += 1
                self.frame_bytes = end - pos
                on_text(payload, now)
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
