"""A minimal HTTP/1.1 GET client on asyncio streams, for the abuse benchmark.

Why not an HTTP library: the attacks need requests no polite client sends (a 60 KB URL, a
keep-alive loop that ignores ``Retry-After``), the probes need a fresh connection each time
(a frozen server's accept queue is part of what is measured), and nothing here needs more
than a status line and a body length. Every call is bounded by a timeout; every connection
is to the address it is given, which the callers fix to 127.0.0.1.
"""

from __future__ import annotations

import asyncio

#: Largest response head accepted (uvicorn's are a few hundred bytes).
MAX_HEAD = 16_384
#: Largest response body read; far above anything the benchmark asks for.
MAX_BODY = 1 << 24


class HttpError(Exception):
    """A response this client cannot read (bad status line, oversized, truncated)."""


def request_bytes(host: str, port: int, target: str, *, keep_alive: bool) -> bytes:
    connection = "keep-alive" if keep_alive else "close"
    return (
        f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: {connection}\r\n\r\n"
    ).encode("latin-1")


async def read_response(reader: asyncio.StreamReader) -> tuple[int, int, bool]:
    """(status, body bytes, the server keeps the connection open) of one response."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise HttpError("response head too long") from None
    except asyncio.IncompleteReadError as exc:
        raise HttpError(f"connection closed after {len(exc.partial)} bytes of head") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise HttpError(f"bad status line {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    keep = headers.get("connection") != "close"
    if "content-length" in headers:
        length = int(headers["content-length"])
        if length > MAX_BODY:
            raise HttpError(f"body of {length} bytes")
        await reader.readexactly(length)
        return int(parts[1]), length, keep
    if headers.get("transfer-encoding") == "chunked":
        return int(parts[1]), await _chunked(reader), keep
    return int(parts[1]), await _until_eof(reader), False  # no length: ends with the connection


async def _until_eof(reader: asyncio.StreamReader) -> int:
    total = 0
    while total <= MAX_BODY:
        chunk = await reader.read(65_536)
        if not chunk:
            return total
        total += len(chunk)
    raise HttpError("body too long")


async def _chunked(reader: asyncio.StreamReader) -> int:
    total = 0
    while total <= MAX_BODY:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")  # no trailers are sent by the servers here
            return total
        await reader.readexactly(size + 2)
        total += size
    raise HttpError("chunked body too long")


async def get(host: str, port: int, target: str, limit_s: float) -> tuple[int, int]:
    """(status, body bytes) of one GET on a fresh connection, within ``limit_s`` seconds."""
    async with asyncio.timeout(limit_s):
        reader, writer = await asyncio.open_connection(host, port, limit=MAX_HEAD)
        try:
            writer.write(request_bytes(host, port, target, keep_alive=False))
            status, length, _ = await read_response(reader)
            return status, length
        finally:
            writer.transport.abort()


class KeepAliveClient:
    """One connection reused for request after request, reopened when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        #: Connections opened so far (1 + reconnects).
        self.connections = 0

    async def get(self, target: str) -> int:
        """The status of one GET (the caller bounds it in time)."""
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port, limit=MAX_HEAD)
            self.connections += 1
        reader, writer = self._streams
        try:
            writer.write(request_bytes(self.host, self.port, target, keep_alive=True))
            status, _, keep = await read_response(reader)
        except BaseException:
            self.close()
            raise
        if not keep:
            self.close()
        return status

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].transport.abort()
            self._streams = None
