"""A diff-mode client that stops reading is not closed and loses no diff: while it is stalled
its queued diffs give way to the whole book (a ``reset`` update), and once it reads again its
book, kept by the documented rules, goes on without a gap.

A real ``marketcast serve`` (simulator books, one change per tick) and a real client whose
socket takes a few KiB before the kernel pushes back; the server's outbox holds few frames,
so the stall overflows it within seconds. What the server did is read from ``/metrics``.

Why the other two slow-consumer bounds are set out of the way: a client that stays behind by
more than ``slow_consumer_lag`` seconds, or by more than ``outbox_max_bytes`` in total with the
kernel's socket buffers (which grow to megabytes on loopback), is closed with 4008 whatever
its topics (docs/orderbook.md) — bytes already in the kernel cannot be taken back for a
reset. This test is about the queue's bound, where a reset can stand for what is queued.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from pathlib import Path

import httpx
import pytest

from marketcast.book.levels import OrderBook
from tests.integration.harness import Server, client, run_server

pytestmark = pytest.mark.integration

SYMBOL = "BTCUSDT"
CLOSED_FOR_QUEUE = 'marketcast_ws_slow_consumers_total{limit="queue"}'


async def metric(server: Server, name: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{server.http}/metrics")).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found is not None, f"{name} not in /metrics"
    return float(found.group(1))


async def test_a_stalled_diff_client_gets_a_reset_instead_of_a_close(tmp_path: Path) -> None:
    with run_server(
        tmp_path,
        sim_symbols=SYMBOL,
        sim_speed=60,
        sim_tick_interval=0.002,
        outbox_max_messages=16,
        outbox_max_bytes=256 * 1024 * 1024,
        slow_consumer_lag=0,
    ) as server:
        raw = socket.socket()
        # A tiny receive window: the kernel cannot absorb the stream for the stalled client.
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", server.port))
        raw.setblocking(False)
        # max_queue=1: the client library stops reading the socket after one unread frame.
        async with client(server, sock=raw, max_queue=1) as slow:
            reply = await slow.request(
                "orderbook.subscribe", {"symbol": SYMBOL, "params": {"mode": "diff"}}
            )
            assert reply["type"] == "orderbook.subscribe.response", reply
            book = reply["payload"]["book"]
            held = OrderBook(book["bids"], book["asks"], book["seq"])
            # Stalled (nothing read) until the server has answered an overflow with a reset.
            deadline = time.monotonic() + 90
            while await metric(server, "marketcast_ws_slow_consumer_resets_total") < 1:
                assert time.monotonic() < deadline, "no reset within 90 s of stalling"
                assert await metric(server, CLOSED_FOR_QUEUE) == 0, "closed, not reset"
                await asyncio.sleep(0.2)
            # Reading again: every diff continues the book held; a reset replaces it.
            resets = diffs_after_reset = 0
            while diffs_after_reset < 50:
                update = (
                    await slow.recv_until(lambda f: f["type"] == "orderbook.update", within=30)
                )["payload"]
                if update.get("reset"):
                    resets += 1
                    held = OrderBook(update["bids"], update["asks"], update["seq"])
                    continue
                assert update["prev_seq"] == held.seq, "a diff that does not continue the book"
                held.apply(update["bids"], update["asks"])
                held.seq = update["seq"]
                diffs_after_reset += resets > 0
            assert resets >= 1, "the server counted a reset the client never got"
        assert await metric(server, CLOSED_FOR_QUEUE) == 0
        assert "slow consumer" not in server.log()
