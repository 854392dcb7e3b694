"""A client that never reads must not cost anybody a bar, and must not grow server memory.

How fast the others are served meanwhile is the benchmark's claim (``make bench
BENCH_ARGS=--abuse``, docs/performance.md), not this test's: a latency bound here would measure
the machine as much as the server.
"""

from __future__ import annotations

import asyncio
import socket
import time
from itertools import pairwise
from pathlib import Path

import httpx
import orjson
from websockets.asyncio.client import connect

from marketcast.timeframes import RESOLUTIONS, next_bucket
from tests.integration.harness import Client, Server, client, run_server

SYMBOLS = ["BTCUSDT", "ETHUSDT", "EUR/USD", "AAPL"]
TOPIC = 'bars:{"resolution":"1","symbol":"BTCUSDT"}'


async def open_connections(server: Server) -> int:
    async with httpx.AsyncClient() as http:
        count: int = (await http.get(f"{server.http}/readyz")).json()["connections"]
        return count


#: Closed bars each healthy client must see: half a second of them at 3600x.
MIN_CLOSED = 30


async def collect_closed(c: Client, server: Server, *, until_connections: int) -> list[int]:
    """Closed bar times, until the server holds ``until_connections`` connections (the stalled
    one was dropped) and ``MIN_CLOSED`` closed bars arrived.

    Why counted, not timed: how fast bars reach the client is the benchmark's claim
    (``make bench BENCH_ARGS=--abuse``); here every bar must arrive, at whatever speed. The
    deadline only names a hang.
    """
    closed: list[int] = []
    deadline = time.monotonic() + 120
    dropped = False
    while not dropped or len(closed) < MIN_CLOSED:
        assert time.monotonic() < deadline, f"{len(closed)} closed bars, dropped: {dropped}"
        frame = await c.recv(within=30)
        if frame["type"] == "bars.update" and frame["payload"]["closed"]:
            closed.append(frame["payload"]["time"])
            if not dropped and len(closed) % 10 == 0:
                dropped = await open_connections(server) <= until_connections
    return closed


async def test_stalled_client_delays_nobody_and_is_dropped(tmp_path: Path) -> None:
    # 3600x: sixty 1-minute bars close per real second; a trade every 10 ms.
    with run_server(
        tmp_path,
        sim_speed=3600,
        sim_tick_interval=0.01,
        # Snapshots are only this test's way to fill the client's queue; what they cost
        # against the rate limit is tested in test_abuse_answers.py.
        rate_limit_per_second=0,
        outbox_max_messages=200,
        outbox_max_bytes=262_144,
        stream_grace_period=5,
    ) as server:
        raw = socket.socket()
        # A tiny receive window so the kernel cannot absorb the flood for the stalled client.
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", server.port))
        raw.setblocking(False)
        # max_queue=1: the client library stops reading the socket after one unread frame.
        async with connect(server.ws, sock=raw, max_queue=1, open_timeout=10) as stalled:
            # Every subscribe asks for a 1000-bar snapshot (~110 KB per reply); re-subscribing
            # answers with a fresh snapshot, so a few dozen requests queue more than the
            # kernel's socket buffers (up to 4 MiB here) and the outbox can hold.
            for _ in range(3):
                for symbol in SYMBOLS:
                    for resolution in RESOLUTIONS:
                        payload = {
                            "symbol": symbol,
                            "params": {"resolution": resolution},
                            "snapshot": 1000,
                        }
                        await stalled.send(
                            orjson.dumps({"type": "bars.subscribe", "payload": payload}).decode()
                        )
            async with client(server) as healthy, client(server) as witness:
                await healthy.subscribe_bars("BTCUSDT", "1")
                await witness.subscribe_bars("BTCUSDT", "1")
                rss_start = server.rss_kib()
                closed_times, witness_closed = await asyncio.gather(
                    collect_closed(healthy, server, until_connections=2),
                    collect_closed(witness, server, until_connections=2),
                )
                connections = await open_connections(server)
                rss_end = server.rss_kib()

        for times in (closed_times, witness_closed):
            assert len(times) >= MIN_CLOSED, f"only {len(times)} closed bars"
            assert all(next_bucket(a, "1") == b for a, b in pairwise(times)), (
                "a healthy client missed a closed bar"
            )
        # Both healthy clients saw the same closed bars wherever their windows overlap (each
        # stops on its own count, so how much they overlap depends on the machine's speed).
        overlap = set(closed_times) & set(witness_closed)
        assert [t for t in closed_times if t in overlap] == [
            t for t in witness_closed if t in overlap
        ]
        # The stalled client was dropped (slow consumer) while the healthy ones stayed.
        assert connections == 2, f"{connections} connections: the stalled one is still open"
        assert "slow consumer" in server.log()
        assert rss_end - rss_start < 30_000, f"server grew by {rss_end - rss_start} KiB"
