"""HTTP below the app, on a real server: request heads and bodies that never finish are cut
(408) instead of holding a socket, the per-worker TCP connection cap answers 503 to HTTP and
WebSocket alike and logs once, and a WebSocket upgrade over HTTP/1.0 is refused (issue 19)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.integration.harness import Server, run_server

#: Small deadlines so that the tests wait little; every wait below is bounded by BOUND.
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
BOUND = 30.0
WS_HANDSHAKE = (
    "GET /api/v1/ws HTTP/{version}\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n"
)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(
        tmp_path_factory.mktemp("guarded"),
        http_header_timeout=HEADER_TIMEOUT,
        http_body_timeout=BODY_TIMEOUT,
    ) as running:
        yield running


@contextlib.asynccontextmanager
async def raw(server: Server) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (bounded)."""
    async with asyncio.timeout(BOUND):
        return await reader.read()


async def status(server: Server, path: str = "/healthz") -> int:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"{server.http}{path}", timeout=10)).status_code


async def test_unfinished_request_head_gets_408_and_is_closed(guarded: Server) -> None:
    async with raw(guarded) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        answer = await until_closed(reader)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    assert b"Connection: close\r\n" in answer
    assert await status(guarded) == 200, "other connections are served as usual"


async def test_trickled_header_lines_do_not_extend_the_deadline(guarded: Server) -> None:
    """One header line every 0.2 s: the deadline counts from the connection's opening, not
    from the last line, so the server closes it (uvicorn alone never did)."""
    answer = b""
    async with raw(guarded) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        async with asyncio.timeout(BOUND):
            for line in itertools.count():
                try:
                    chunk = await asyncio.wait_for(reader.read(4096), 0.2)
                except TimeoutError:
                    writer.write(f"X-Trickle-{line}: 1\r\n".encode())
                    continue
                except ConnectionResetError:
                    break  # closed while a line was on its way: also closed
                if not chunk:
                    break
                answer += chunk
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer


async def test_keep_alive_deadline_counts_from_the_previous_response(guarded: Server) -> None:
    async with raw(guarded) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND)
        assert head.startswith(b"HTTP/1.1 200 "), head
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await asyncio.wait_for(reader.readexactly(length), BOUND)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # the next one, never finished
        answer = await until_closed(reader)
    assert answer.startswith(b"HTTP/1.1 408 "), answer


async def test_connection_that_sends_nothing_is_closed_quietly(guarded: Server) -> None:
    async with raw(guarded) as (reader, _):
        assert await until_closed(reader) == b""


async def test_trickled_body_is_cut_at_the_body_timeout(guarded: Server) -> None:
    """A byte of a 1000-byte body every 0.2 s would take 200 s; each byte also cancels
    uvicorn's keep-alive timer, so only the body deadline ends it."""
    answer = b""
    async with raw(guarded) as (reader, writer):
        writer.write(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        async with asyncio.timeout(BOUND):
            while True:
                try:
                    chunk = await asyncio.wait_for(reader.read(4096), 0.2)
                except TimeoutError:
                    writer.write(b"x")
                    continue
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                answer += chunk
    # The app answered before the body was complete (405: /healthz takes GET only); the
    # connection was then cut when the body did not arrive in time.
    assert answer.startswith(b"HTTP/1.1 405 "), answer
    assert b"HTTP/1.1 408" not in answer, "no second answer after the app's own"


async def test_websocket_over_http_1_0_is_refused(guarded: Server) -> None:
    async with raw(guarded) as (reader, writer):
        writer.write(WS_HANDSHAKE.format(version="1.0").encode())
        answer = await until_closed(reader)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
    assert answer.endswith(b"a WebSocket handshake needs HTTP/1.1 or later (RFC 6455)\n")
    # The same handshake over HTTP/1.1 is accepted.
    async with raw(guarded) as (reader, writer):
        writer.write(WS_HANDSHAKE.format(version="1.1").encode())
        status_line = await asyncio.wait_for(reader.readline(), BOUND)
    assert status_line.startswith(b"HTTP/1.1 101 "), status_line


# -- the TCP connection cap ---------------------------------------------------------------------

CAP = 3


async def open_holder(server: Server) -> ClientConnection:
    """A WebSocket connection counted against the cap; retried while the server still
    counts connections of the readiness checks that it has not seen close yet."""
    async with asyncio.timeout(BOUND):
        while True:
            try:
                return await connect(server.ws, open_timeout=10, close_timeout=2)
            except InvalidStatus as exc:
                if exc.response.status_code != 503:
                    raise
                await asyncio.sleep(0.05)


async def served(server: Server) -> bool:
    """Whether a plain request is answered 200 now. A client that sends its request at once
    may meet the cap as a reset rather than a readable 503: the server closes without
    reading, to spend nothing on it."""
    try:
        return await status(server) == 200
    except httpx.TransportError:
        return False


async def eventually(check: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    """Wait until ``check()`` holds, polling, for at most BOUND seconds."""
    deadline = asyncio.get_running_loop().time() + BOUND
    while True:
        result = check()
        if await result if inspect.isawaitable(result) else result:
            return
        assert asyncio.get_running_loop().time() < deadline, f"no {what} within {BOUND}s"
        await asyncio.sleep(0.05)


def refusal_lines(server: Server) -> list[str]:
    return [line for line in server.log().splitlines() if "connections away" in line]


async def test_tcp_connection_cap_answers_503_and_logs_once(tmp_path: Path) -> None:
    with run_server(tmp_path, max_tcp_connections=CAP, http_header_timeout=120) as server:
        holders = [await open_holder(server) for _ in range(CAP)]
        try:
            async with raw(server) as (reader, _):
                answer = await until_closed(reader)
            assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer
            assert b"Retry-After: 5\r\n" in answer
            assert b"Connection: close\r\n" in answer
            # A WebSocket handshake meets the same cap: never a 101.
            with pytest.raises((InvalidStatus, OSError)) as refused:
                await connect(server.ws, open_timeout=10)
            if isinstance(refused.value, InvalidStatus):
                assert refused.value.response.status_code == 503
            assert not await served(server)
            await eventually(lambda: bool(refusal_lines(server)), "a refusal line in the log")
            lines = refusal_lines(server)
            first = [line for line in lines if "turning connections away" in line]
            assert len(first) == 1, lines
            assert f"over MARKETCAST_MAX_TCP_CONNECTIONS={CAP} (503)" in first[0]
            assert "WARNING" in first[0]
            # Any other line is the summary of the following interval, never one per refusal.
            assert all("in the last 10s" in line for line in lines if line not in first), lines
        finally:
            await holders.pop().close()
        # A place freed is taken again: a cap, not a permanent refusal.
        await eventually(lambda: served(server), "a request served again")
        for holder in holders:
            await holder.close()
