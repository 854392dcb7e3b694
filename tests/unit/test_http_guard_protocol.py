"""``GuardedH11Protocol`` against an in-memory transport: the cases a real server of ours
cannot show, because none of its endpoints reads a request body — a body that stops coming
while the app waits for it gets 408, and the app sees a disconnect rather than hanging."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from marketcast.http_guard import HttpGuard, guarded_h11_protocol


class MemoryTransport(asyncio.Transport):
    """Collects what the protocol writes; ``closed`` is set when it closes the connection."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = asyncio.Event()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closed.set()

    def is_closing(self) -> bool:
        return self.closed.is_set()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def protocol_for(app: Any, guard: HttpGuard, state: ServerState | None = None) -> Any:
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
    config.load()
    protocol_class = guarded_h11_protocol(guard)
    return protocol_class(config=config, server_state=state or ServerState(), app_state={})


async def test_body_that_stops_coming_gets_408_and_the_app_a_disconnect() -> None:
    received: list[dict[str, Any]] = []
    app_done = asyncio.Event()

    async def reads_the_body(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            received.append(message)
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break
        app_done.set()

    guard = HttpGuard(header_timeout=60, body_timeout=0.05, max_connections=None)
    protocol = protocol_for(reads_the_body, guard)
    transport = MemoryTransport()
    protocol.connection_made(transport)
    protocol.data_received(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
    await asyncio.wait_for(transport.closed.wait(), 10)
    await asyncio.wait_for(app_done.wait(), 10)
    protocol.connection_lost(None)
    assert bytes(transport.written).startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert received[-1] == {"type": "http.disconnect"}
    assert guard.refusals.totals == {"cut at MARKETCAST_HTTP_BODY_TIMEOUT=0.05s (408)": 1}


async def test_connection_over_the_cap_gets_503_before_anything_is_read() -> None:
    async def never_called(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("a refused connection reached the app")

    guard = HttpGuard(header_timeout=60, body_timeout=60, max_connections=2)
    state = ServerState()
    state.connections.update({object(), object()})  # type: ignore[arg-type]
    protocol = protocol_for(never_called, guard, state)
    transport = MemoryTransport()
    protocol.connection_made(transport)
    assert transport.closed.is_set()
    assert bytes(transport.written).startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"Retry-After: 5\r\n" in transport.written
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # ignored
    protocol.connection_lost(None)
    assert len(state.connections) == 2, "a refused connection is never counted"
    assert guard.refusals.totals == {"over MARKETCAST_MAX_TCP_CONNECTIONS=2 (503)": 1}
