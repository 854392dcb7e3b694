"""Per-connection and per-worker limits on a real server: rate limit (``rate_limited``, then
1008), connection cap (1013), maximum lifetime (``notice``, then 1001), and protocol pings that
drop a peer which stopped answering. (Frame size → 1009: ``test_ws_api``.)"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.integration.harness import Client, Server, client, run_server

BURST = 10


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(
        tmp_path_factory.mktemp("limited"),
        sim_speed=60,
        sim_tick_interval=0.05,
        rate_limit_per_second=5,
        rate_limit_burst=BURST,
        rate_limit_max_refused=5,
        max_connections=3,
        ws_ping_interval=0.3,
        ws_ping_timeout=0.5,
    ) as running:
        yield running


async def connections(server: Server) -> int:
    async with httpx.AsyncClient() as http:
        count: int = (await http.get(f"{server.http}/readyz")).json()["connections"]
        return count


async def wait_connections(server: Server, expected: int, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while (count := await connections(server)) != expected:
        assert time.monotonic() < deadline, f"{count} connections, expected {expected}"
        await asyncio.sleep(0.05)


async def read_until_closed(
    c: Client, on_frame: Callable[[dict[str, Any]], None] = lambda _: None
) -> int | None:
    """Read (handing each frame to ``on_frame``) until the server closes; its close code."""
    for _ in range(10_000):
        try:
            frame = await c.recv(within=5)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        on_frame(frame)
    raise AssertionError("the server never closed the connection")


async def test_excess_frames_get_rate_limited_errors(limited: Server) -> None:
    async with client(limited) as c:
        for i in range(BURST + 3):
            await c.send({"type": "ping", "payload": {}, "id": i})
        replies = [await c.recv() for _ in range(BURST + 3)]
        assert [r["type"] for r in replies[:BURST]] == ["pong"] * BURST
        assert [r.get("id") for r in replies[:BURST]] == list(range(BURST))
        for refused in replies[BURST:]:
            assert refused["type"] == "error"
            assert refused["payload"]["code"] == "rate_limited"
            assert "5 frames per second" in refused["payload"]["message"]
        await asyncio.sleep(0.5)  # 2.5 tokens back: the connection is usable again
        assert (await c.request("ping"))["type"] == "pong"


async def test_sustained_flood_is_closed_with_1008(limited: Server) -> None:
    async with client(limited) as c:
        for i in range(60):
            await c.send({"type": "ping", "payload": {}, "id": i})
        codes: list[str] = []
        code = await read_until_closed(
            c, lambda frame: codes.append(frame["payload"].get("code", frame["type"]))
        )
        assert code == 1008
        assert codes.count("pong") == BURST
        assert 5 <= codes.count("rate_limited") <= 6
    assert "rate limit exceeded" in limited.log()


async def test_connection_cap_closes_with_1013(limited: Server) -> None:
    await wait_connections(limited, 0)
    async with client(limited) as a, client(limited) as b, client(limited) as c:
        await wait_connections(limited, 3)
        async with client(limited) as extra:
            assert await read_until_closed(extra) == 1013
        for held in (a, b, c):
            assert (await held.request("ping"))["type"] == "pong"
    await wait_connections(limited, 0)
    async with client(limited) as again:
        assert (await again.request("ping"))["type"] == "pong"


async def test_peer_that_stops_answering_pings_is_dropped(limited: Server) -> None:
    """A raw TCP client completes the handshake, then never reads nor answers a ping."""
    await wait_connections(limited, 0)
    raw = socket.create_connection(("127.0.0.1", limited.port), timeout=5)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        raw.sendall(
            (
                "GET /api/v1/ws HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{limited.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        assert raw.recv(12) == b"HTTP/1.1 101"
        await wait_connections(limited, 1)
        started = time.monotonic()
        # Ping every 0.3 s, 0.5 s to answer: dropped within about a second.
        await wait_connections(limited, 0, within=5)
        assert time.monotonic() - started < 3
    finally:
        raw.close()


async def test_listening_client_that_answers_pings_stays(limited: Server) -> None:
    """The other side of the ping check: a quiet client whose library answers pings."""
    async with client(limited) as c:
        await c.subscribe_bars("AAPL", "1")
        deadline = time.monotonic() + 2  # several ping intervals
        while time.monotonic() < deadline:
            assert (await c.recv())["type"] == "bars.update"
        assert c.connection.close_code is None


async def test_lifetime_notice_then_going_away(tmp_path_factory: pytest.TempPathFactory) -> None:
    with run_server(
        tmp_path_factory.mktemp("lifetime"),
        sim_speed=60,
        sim_tick_interval=0.05,
        max_connection_lifetime=1.5,
        close_notice_seconds=0.5,
    ) as server:
        async with client(server) as c:
            opened = time.monotonic()
            await c.subscribe_bars("BTCUSDT", "1")
            frames: list[tuple[float, dict[str, Any]]] = []
            code = await read_until_closed(
                c, lambda frame: frames.append((time.monotonic() - opened, frame))
            )
            lived = time.monotonic() - opened
        notices = [(at, f) for at, f in frames if f["type"] == "notice"]
        assert len(notices) == 1
        at, notice = notices[0]
        assert notice["payload"] == {
            "code": "max_lifetime",
            "message": "connection lifetime reached: reconnect (with `since` to resume bars)",
            "close_code": 1001,
            "close_in_ms": 500,
        }
        # Lifetime 1.5 s minus up to 10% jitter; the notice 0.5 s before the close.
        assert 0.8 <= at <= 1.3, at
        assert 1.3 <= lived <= 2.5, lived
        assert any(f["type"] == "bars.update" for t, f in frames if t > at), (
            "updates keep flowing after the notice"
        )
        assert code == 1001
