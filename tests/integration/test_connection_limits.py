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
from websockets.frames import Frame, Opcode

from tests.integration.harness import Client, Server, client, run_server
from tests.integration.test_metrics import scrape, value

CLOSED = "marketcast_ws_connections_closed_total"
BURST = 10
RATE = 5
MAX_REFUSED = 5
PING_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(
        tmp_path_factory.mktemp("limited"),
        sim_speed=60,
        sim_tick_interval=0.05,
        rate_limit_per_second=RATE,
        rate_limit_burst=BURST,
        rate_limit_max_refused=MAX_REFUSED,
        max_connections=3,
        ws_ping_interval=0.3,
        # Generous: a loaded machine must not drop a client that does answer.
        ws_ping_timeout=PING_TIMEOUT,
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


def count_pings(c: Client) -> Callable[[], int]:
    """How many pings ``c``'s library received (and answered, as it does for each)."""
    protocol = c.connection.protocol
    receive = protocol.recv_frame
    pings = 0

    def recv_frame(frame: Frame) -> None:
        nonlocal pings
        pings += frame.opcode is Opcode.PING
        receive(frame)

    protocol.recv_frame = recv_frame  # type: ignore[method-assign]
    return lambda: pings


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


def refilled(seconds: float) -> int:
    """The most tokens the bucket can have got back in ``seconds`` (rate 5 per second).

    Why the test measures instead of assuming a fast machine: the server reads a burst one
    frame at a time, and on a loaded machine tokens come back meanwhile. Measured around
    the whole exchange, ``seconds`` covers the server's own span, so the bound only loosens
    as the machine slows, and holds tight (at most one extra pong) when it is fast.
    """
    return int(seconds * RATE) + 1


async def test_excess_frames_get_rate_limited_errors(limited: Server) -> None:
    async with client(limited) as c:
        started = time.monotonic()
        for i in range(BURST + 3):
            await c.send({"type": "ping", "payload": {}, "id": i})
        replies = [await c.recv() for _ in range(BURST + 3)]
        took = time.monotonic() - started
        # Every frame answered, in order: the burst allowance first, then a pong or a refusal.
        assert [r.get("id") for r in replies[:BURST]] == list(range(BURST))
        assert [r["type"] for r in replies[:BURST]] == ["pong"] * BURST
        refused = [r for r in replies[BURST:] if r["type"] == "error"]
        for r in refused:
            assert r["payload"]["code"] == "rate_limited"
            assert "5 frames per second" in r["payload"]["message"]
        extra_pongs = 3 - len(refused)
        assert [r["type"] for r in replies[BURST:]].count("pong") == extra_pongs
        assert extra_pongs <= refilled(took), (extra_pongs, took)
        # Once refilled (waiting is the mechanism here, not a speed bound) it is usable again.
        await asyncio.sleep(1 / RATE)
        assert (await c.request("ping"))["type"] == "pong"


async def test_sustained_flood_is_closed_with_1008(limited: Server) -> None:
    async with client(limited) as c:
        started = time.monotonic()
        for i in range(60):
            await c.send({"type": "ping", "payload": {}, "id": i})
        codes: list[str] = []
        code = await read_until_closed(
            c, lambda frame: codes.append(frame["payload"].get("code", frame["type"]))
        )
        took = time.monotonic() - started
        assert code == 1008
        # The burst, plus what refilled while the server read (see ``refilled``); then
        # MAX_REFUSED refusals (one forgiven per second) before the close.
        assert BURST <= codes.count("pong") <= BURST + refilled(took), (codes, took)
        assert MAX_REFUSED <= codes.count("rate_limited") <= MAX_REFUSED + int(took) + 1
        assert len(codes) < 60, "closed before the flood was worked through"
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
        # Ping every 0.3 s, PING_TIMEOUT to answer. Nothing else would close it (no lifetime,
        # no rate limit reached): the drop, and the 1011 it is counted under, are the pings'.
        before = value(await scrape(limited), CLOSED, code="1011")
        await wait_connections(limited, 0, within=60)
        assert value(await scrape(limited), CLOSED, code="1011") == before + 1
    finally:
        raw.close()


async def test_listening_client_that_answers_pings_stays(limited: Server) -> None:
    """The other side of the ping check: a quiet client whose library answers pings."""
    async with client(limited) as c:
        await c.subscribe_bars("AAPL", "1")
        # Counted in the server's pings, not in seconds: several, each of which the client's
        # library answers; one unanswered within the timeout would close the connection.
        pings = count_pings(c)
        while pings() < 5:
            assert (await c.recv(within=30))["type"] == "bars.update"
        assert c.connection.close_code is None
        assert (await c.request("ping"))["type"] == "pong"


async def test_lifetime_notice_then_going_away(tmp_path_factory: pytest.TempPathFactory) -> None:
    with run_server(
        tmp_path_factory.mktemp("lifetime"),
        sim_speed=60,
        sim_tick_interval=0.05,
        max_connection_lifetime=1.5,
        close_notice_seconds=0.5,
    ) as server:
        # Taken before the handshake, so the server's own clock for the connection starts
        # later: the lower bounds below hold on any machine. No upper bound: how late a
        # timer fires on a loaded machine is not this test's business; a lifetime that is
        # never enforced fails on the bound around the whole read.
        opened = time.monotonic()
        async with client(server) as c:
            await c.subscribe_bars("BTCUSDT", "1")
            frames: list[tuple[float, dict[str, Any]]] = []
            async with asyncio.timeout(60):
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
        # Lifetime 1.5 s minus up to 10% jitter (1.35 s), the notice 0.5 s before the close;
        # 50 ms of slack for timers that fire early by their clock's resolution.
        assert at >= 0.8, at
        assert lived >= 1.3, lived
        assert lived > at
        assert any(f["type"] == "bars.update" for t, f in frames if t > at), (
            "updates keep flowing after the notice"
        )
        assert code == 1001
