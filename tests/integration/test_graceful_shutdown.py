"""SIGTERM on ``marketcast serve``: readiness flips first, new connections are turned away,
open ones get a ``notice``, keep receiving, get what was queued, then a 1001 close; a client
that reads nothing cannot hold the shutdown past its deadlines. A clean stop exits 0 after
SIGTERM and Ctrl-C alike, and a second signal skips the rest of the notice period."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.integration.harness import Client, Server, client, run_server
from tests.integration.test_metrics import scrape, value

#: Long enough that the late requests below, sent a quarter into it, are all handled before
#: the close on a loaded machine too (seen: 1.0 s with requests at its half left one out).
NOTICE_SECONDS = 2.0
DRAIN_TIMEOUT = 1.0
CLOSE_TIMEOUT = 0.5


async def until_closed(c: Client, frames: list[tuple[float, dict[str, Any]]]) -> int | None:
    """Read, stamping each frame with the monotonic clock, until the server closes."""
    for _ in range(100_000):
        try:
            frame = await c.recv(within=10)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        frames.append((time.monotonic(), frame))
    raise AssertionError("never closed")


async def until_subscribed(server: Server, subscriptions: int, queued_bytes: int) -> None:
    """Until the server counts ``subscriptions`` bar subscriptions and ``queued_bytes`` queued
    (bounded only to name a hang)."""
    deadline = time.monotonic() + 60
    while True:
        samples = await scrape(server)
        if (
            value(samples, "marketcast_ws_subscriptions", route="bars") >= subscriptions
            and value(samples, "marketcast_ws_outbox_bytes") >= queued_bytes
        ):
            return
        assert time.monotonic() < deadline, "the clients never all subscribed"
        await asyncio.sleep(0.05)


async def readiness(server: Server) -> int:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"{server.http}/readyz", timeout=2)).status_code


async def watcher(server: Server) -> tuple[int | None, list[tuple[float, dict[str, Any]]]]:
    """A client on a live topic, reading everything until the server closes it."""
    frames: list[tuple[float, dict[str, Any]]] = []
    async with client(server) as c:
        await c.subscribe_bars("BTCUSDT", "1")
        return await until_closed(c, frames), frames


async def late_requester(server: Server, sent: asyncio.Event) -> tuple[int | None, list[Any]]:
    """After the notice, asks for five 1000-bar snapshots (~0.5 MB) shortly before the close:
    every reply must arrive before the close frame."""
    frames: list[tuple[float, dict[str, Any]]] = []
    async with client(server) as c:
        await c.subscribe_bars("ETHUSDT", "1")
        while not any(f["type"] == "notice" for _, f in frames):
            frames.append((time.monotonic(), await c.recv()))
        await asyncio.sleep(NOTICE_SECONDS / 4)  # the scenario: asked during the notice
        for i, resolution in enumerate(["1", "5", "15", "30", "60"]):
            payload = {"symbol": "ETHUSDT", "params": {"resolution": resolution}, "snapshot": 1000}
            await c.send({"type": "bars.subscribe", "payload": payload, "id": f"late-{i}"})
        sent.set()
        code = await until_closed(c, frames)
        return code, [f for _, f in frames]


async def test_sigterm_drains_then_closes_with_1001(tmp_path: Path) -> None:
    with run_server(
        tmp_path,
        sim_speed=60,
        sim_tick_interval=0.05,
        close_notice_seconds=NOTICE_SECONDS,
        drain_timeout=DRAIN_TIMEOUT,
        # Snapshots are only this test's way to fill the client's queue; what they cost
        # against the rate limit is tested in test_abuse_answers.py.
        rate_limit_per_second=0,
        close_timeout=CLOSE_TIMEOUT,
        # Large enough that the reader below is not closed as a slow consumer first.
        outbox_max_bytes=64_000_000,
        outbox_max_messages=100_000,
    ) as server:
        stalled_sock = socket.socket()
        stalled_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled_sock.connect(("127.0.0.1", server.port))
        stalled_sock.setblocking(False)
        # No permessage-deflate: compressed, the replies below would fit the kernel buffers.
        async with connect(
            server.ws,
            sock=stalled_sock,
            max_queue=1,
            open_timeout=10,
            close_timeout=0.5,
            compression=None,
        ) as stalled:
            # ~6.6 MB of replies that it never reads: more than the kernel buffers take.
            for _ in range(60):
                payload = {"symbol": "BTCUSDT", "params": {"resolution": "1"}, "snapshot": 1000}
                frame = {"type": "bars.subscribe", "payload": payload}
                await stalled.send(orjson.dumps(frame).decode())
            sent = asyncio.Event()
            watchers = [asyncio.create_task(watcher(server)) for _ in range(3)]
            late = asyncio.create_task(late_requester(server, sent))
            # Everyone subscribed (the stalled client, three watchers and the late requester),
            # and the stalled client's unread replies fill its queue beyond the kernel's.
            await until_subscribed(server, 5, queued_bytes=1_000_000)
            assert await readiness(server) == 200

            signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            # Bounded only to name a hang: how soon it flips is the machine's business.
            deadline = signalled + 30
            while await readiness(server) != 503:
                assert time.monotonic() < deadline, "readiness never flipped"
                await asyncio.sleep(0.02)
            async with client(server) as newcomer:
                refused = await until_closed(newcomer, [])
            assert refused == 1013, "a new connection during the drain is turned away"

            results = await asyncio.gather(*watchers)
            late_code, late_frames = await late
            closed_at = time.monotonic()
            # A liveness bound: without its deadlines the stalled client would hold it forever.
            exit_code = await asyncio.to_thread(server.process.wait, 60)

    for code, frames in results:
        assert code == 1001
        types = [f["type"] for _, f in frames]
        assert types.count("notice") == 1
        notice_at, notice = next((t, f) for t, f in frames if f["type"] == "notice")
        assert notice["payload"]["code"] == "shutdown"
        assert notice["payload"]["close_code"] == 1001
        assert notice["payload"]["close_in_ms"] == round(NOTICE_SECONDS * 1000)
        assert notice_at > signalled
        after = [f for t, f in frames if t > notice_at]
        assert any(f["type"] == "bars.update" for f in after), "updates flow during the notice"

    assert sent.is_set()
    assert late_code == 1001
    replies = [f for f in late_frames if str(f.get("id", "")).startswith("late-")]
    assert [r["id"] for r in replies] == [f"late-{i}" for i in range(5)], (
        "every reply queued before the close was delivered before it"
    )
    assert all(len(r["payload"]["bars"]) == 1000 for r in replies)

    # The notice period is waited out (a lower bound holds at any speed); what ends the
    # stalled client's hold on the shutdown is its deadlines, as the log shows, not time:
    # the speed of a shutdown under load is not asserted.
    assert closed_at - signalled >= NOTICE_SECONDS * 0.9
    assert exit_code == 0, "a clean stop after SIGTERM exits 0 (not 143)"
    log = server.log()
    assert "draining" in log
    assert "queue not flushed" in log, "the stalled client hit the flush deadline"
    assert "aborting TCP" in log, "and its close frame could not be written either"
    assert "1012" not in log


#: Far longer than any bound below: a stop within the bound proves the notice was skipped.
LONG_NOTICE_SECONDS = 60.0
EXIT_BOUND = 30.0


async def test_sigint_stops_cleanly_with_status_0(tmp_path: Path) -> None:
    with run_server(tmp_path, close_notice_seconds=0.2) as server:
        async with client(server) as c:
            await c.subscribe_bars("BTCUSDT", "1")
            server.process.send_signal(signal.SIGINT)
            code = await until_closed(c, [])
        exit_code = await asyncio.to_thread(server.process.wait, EXIT_BOUND)
    assert code == 1001
    assert exit_code == 0
    log = server.log()
    assert "Traceback" not in log
    assert "KeyboardInterrupt" not in log


async def test_second_sigterm_skips_the_notice_period(tmp_path: Path) -> None:
    with run_server(
        tmp_path, sim_speed=60, sim_tick_interval=0.05, close_notice_seconds=LONG_NOTICE_SECONDS
    ) as server:
        async with client(server) as c:
            await c.subscribe_bars("BTCUSDT", "1")
            server.process.send_signal(signal.SIGTERM)
            notice = await c.recv_until(lambda f: f["type"] == "notice")
            assert notice["payload"]["close_in_ms"] == round(LONG_NOTICE_SECONDS * 1000)
            # The drain is now waiting out its notice period; a second signal cuts it.
            server.process.send_signal(signal.SIGTERM)
            code = await until_closed(c, [])
        exit_code = await asyncio.to_thread(server.process.wait, EXIT_BOUND)
    assert code == 1012, "uvicorn's own close: the drain's 1001 never came"
    assert exit_code == 0
    log = server.log()
    assert "drain cut short" in log
    assert "Traceback" not in log
