"""A client that reads one frame a second on 30 busy topics, with default socket buffers, is
closed as a slow consumer (4008) within the lag bound, though its outbox stays empty: what
waits for it sits in the kernel (issue 19, item 6). A healthy client on the same server stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from marketcast.timeframes import RESOLUTIONS
from tests.integration.harness import Server, client, run_server
from tests.integration.test_metrics import scrape, value

SYMBOLS = ["BTCUSDT", "ETHUSDT", "EUR/USD", "AAPL"]
#: The lag bound configured for the test (seconds).
LAG = 2.0
#: Not a speed bound: without the lag check the slow reader would never be closed, and this
#: names that failure long before the test's own timeout.
NEVER = 120.0
CLOSED = re.compile(
    r"closing connection (\w+): slow consumer: (?:([\d.]+) s behind|([\d.]+) MB waiting) \(4008\)"
)

#: The server gave up waiting for the slow reader to reach its close frame.
ABORTED = re.compile(r"close frame \(4008\) not taken \(.*\), aborting TCP")


def thirty_topics() -> list[dict[str, object]]:
    """28 bar topics (7 resolutions of 4 symbols) and 2 quote topics."""
    requests: list[dict[str, object]] = [
        {"type": "bars.subscribe", "payload": {"symbol": s, "params": {"resolution": r}}}
        for s in SYMBOLS
        for r in RESOLUTIONS[:7]
    ]
    requests += [
        {"type": "quotes.subscribe", "payload": {"symbol": s, "params": {}}} for s in SYMBOLS[:2]
    ]
    assert len(requests) == 30
    return requests


async def open_connections(server: Server) -> int:
    async with httpx.AsyncClient() as http:
        count: int = (await http.get(f"{server.http}/readyz", timeout=5)).json()["connections"]
        return count


async def read_one_a_second(ws: ClientConnection, got: list[bytes | str]) -> None:
    """Read one frame a second until the connection ends."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            got.append(await ws.recv())
            await asyncio.sleep(1.0)  # the scenario: a client that reads this slowly


# Waits up to NEVER for the close, then as long for the abort: longer than the default.
@pytest.mark.timeout(300)
async def test_a_client_reading_one_frame_a_second_is_closed_as_a_slow_consumer(
    tmp_path: Path,
) -> None:
    with run_server(
        tmp_path,
        sim_speed=600,
        sim_tick_interval=0.02,  # 50 trades a second per symbol: ~1,500 frames/s to the slow one
        slow_consumer_lag=LAG,
    ) as server:
        async with client(server, max_queue=None) as healthy:
            await healthy.subscribe_bars("BTCUSDT", "1")
            # Default socket buffers, its own keepalive off, and a small library queue so
            # that not reading leaves the bytes in the kernel, as a browser tab would.
            async with connect(
                server.ws, ping_interval=None, max_queue=4, open_timeout=10, close_timeout=1
            ) as slow:
                for request in thirty_topics():
                    await slow.send(orjson.dumps(request).decode())
                subscribed = time.monotonic()
                got: list[bytes | str] = []
                reader = asyncio.create_task(read_one_a_second(slow, got))
                # The healthy client keeps receiving all along, until the slow one is gone.
                while await open_connections(server) > 1:
                    await healthy.recv(within=5)
                    assert time.monotonic() - subscribed < NEVER, "the slow reader stays"
                closed_after = time.monotonic() - subscribed
                # Far behind, it cannot read its way to the close frame in time: the server
                # aborts the connection, and the client learns it only once it has read what
                # its own kernel already holds for it (minutes at this pace).
                reader.cancel()
                deadline = time.monotonic() + NEVER
                while not ABORTED.search(server.log()):
                    assert time.monotonic() < deadline, "the slow reader was never let go"
                    await healthy.recv(within=5)
            # Still open and still served after the slow one was closed.
            for _ in range(20):
                await healthy.recv(within=5)
            assert await open_connections(server) == 1
            samples = await scrape(server)
        log = server.log()

    matches = CLOSED.findall(log)
    assert len(matches) == 1, f"exactly the slow reader was closed: {matches}\n{log[-3000:]}"
    _, behind, waiting = matches[0]
    # Closed for crossing a bound, never before. How soon after (a sweep runs once a second,
    # late on a loaded machine) is not asserted: only printed.
    print(f"\nclosed {closed_after:.1f}s after subscribing: {matches[0]}; read {len(got)} frames")
    if behind:
        assert float(behind) >= LAG, behind
    else:
        assert float(waiting) > 1.0  # MARKETCAST_OUTBOX_MAX_BYTES: 1 MiB
    closed = "marketcast_ws_connections_closed_total"
    assert value(samples, closed, code="4008") == 1
    by_limit = "marketcast_ws_slow_consumers_total"
    assert value(samples, by_limit, limit="lag") + value(samples, by_limit, limit="waiting") == 1
    assert value(samples, by_limit, limit="queue") == 0, "its outbox never overflowed"


async def read_slowly(ws: ClientConnection) -> tuple[int, int | None, str]:
    """Read every frame, slower than they come; frames read, close code and reason."""
    frames = 0
    try:
        while True:
            await ws.recv()
            frames += 1
            await asyncio.sleep(0.002)  # the scenario: steady, but slower than the updates
    except ConnectionClosed as closed:
        if closed.rcvd is None:
            return frames, None, ""
        return frames, closed.rcvd.code, closed.rcvd.reason


# Reads its backlog for up to 120 s by design: longer than the default.
@pytest.mark.timeout(300)
async def test_a_slow_client_that_keeps_reading_learns_why_it_was_closed(tmp_path: Path) -> None:
    with run_server(
        tmp_path,
        sim_speed=600,
        sim_tick_interval=0.02,
        slow_consumer_lag=1.0,
        # Generous: a loaded machine reads the backlog ahead of the close frame more slowly.
        drain_timeout=60,
    ) as server:
        sock = socket.socket()
        # A fixed receive buffer (no autotuning): the backlog stays where the server sees it,
        # and the test stays short.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.connect(("127.0.0.1", server.port))
        sock.setblocking(False)
        async with connect(
            server.ws, sock=sock, ping_interval=None, max_queue=4, open_timeout=10, close_timeout=1
        ) as slow:
            for request in thirty_topics():
                await slow.send(orjson.dumps(request).decode())
            frames, code, reason = await asyncio.wait_for(read_slowly(slow), 120)
        log = server.log()

    assert frames > 100
    # What was still queued was dropped; what the socket held was read, then the close frame
    # with its reason: the server waited while the client made progress, and did not abort.
    assert code == 4008, (code, log[-3000:])
    assert reason.startswith("slow consumer: "), reason
    assert f"{reason} (4008)" in log
    assert not ABORTED.search(log)
