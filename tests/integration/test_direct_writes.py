"""Which write path the fan-out takes under uvicorn (``delivery.direct``), pinned on a real server.

The direct path relies on uvicorn internals (its ``websockets-sansio`` protocol object behind
the ASGI ``send``), so this test is the alarm for an uvicorn upgrade that moves them: with
permessage-deflate off, frames must be written straight to the transport and still arrive
intact and in order at a real client; with deflate negotiated too (without server context
takeover, so one compressed frame serves every client; ``tests/integration/test_deflate.py``
checks the bytes on the wire).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect

from marketcast.app import create_app
from marketcast.delivery.stats import FanoutStats
from marketcast.serving import build_server
from marketcast.settings import Settings
from tests.integration.harness import free_port

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def serving(**settings: Any) -> AsyncIterator[tuple[str, FanoutStats]]:
    """marketcast under uvicorn in this event loop, so the test can read its counters."""
    config = Settings(
        host="127.0.0.1",
        port=free_port(),
        sim_tick_interval=0.02,
        metrics_enabled=False,
        **settings,
    )
    app = create_app(config)
    server = build_server(app, config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(6000):  # polled for the event; bounded only to name a hang
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started, "server did not start"
        yield f"ws://127.0.0.1:{config.port}/api/v1/ws", app.state.adapter.stats
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


async def receive_updates(url: str, count: int, **options: Any) -> list[dict[str, Any]]:
    """Subscribe (with a snapshot) and collect ``count`` frames after the reply, checked."""
    async with connect(url, open_timeout=10, close_timeout=2, **options) as ws:
        request = {
            "type": "bars.subscribe",
            "id": 1,
            "payload": {"symbol": "BTCUSDT", "params": {"resolution": "1"}, "snapshot": 5},
        }
        await ws.send(orjson.dumps(request).decode())
        reply = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        assert reply["type"] == "bars.subscribe.response", reply
        assert reply["payload"]["status"] == "ok"
        frames = []
        for n in range(count):
            if n % 10 == 0:  # replies share the path with updates and must keep their place
                await ws.send(orjson.dumps({"type": "ping", "id": 100 + n, "payload": {}}).decode())
            frames.append(orjson.loads(await asyncio.wait_for(ws.recv(), 10)))
        return frames


def check_in_order(frames: list[dict[str, Any]]) -> None:
    times = [f["payload"]["time"] for f in frames if f["type"] == "bars.update"]
    assert times, "updates arrive"
    assert times == sorted(times), "updates of one topic arrive in bar order"
    assert {f["type"] for f in frames} <= {"bars.update", "pong"}, frames
    pongs = [f["id"] for f in frames if f["type"] == "pong"]
    assert pongs, "replies arrive"
    assert pongs == sorted(pongs), "replies arrive in request order"


async def test_frames_go_straight_to_the_transport_without_deflate() -> None:
    async with serving() as (url, stats):
        frames = await receive_updates(url, 60, compression=None)
        check_in_order(frames)
        assert stats.direct_frames > 0, "the direct transport path was not taken"
        assert stats.asgi_frames == 0, "no frame should fall back to ASGI send"


async def test_with_deflate_turned_off_the_offer_is_declined() -> None:
    # MARKETCAST_WS_PER_MESSAGE_DEFLATE=false: the offer is declined, frames go out plain.
    async with serving(ws_per_message_deflate=False) as (url, stats):
        async with connect(url, open_timeout=10) as ws:
            assert ws.protocol.extensions == []
        frames = await receive_updates(url, 20)
        check_in_order(frames)
        assert stats.direct_frames > 0


async def test_deflate_negotiated_keeps_the_direct_path() -> None:
    """With deflate negotiated (no server context takeover), updates are still written
    straight to the transport, compressed once per frame (``wire.Frame.deflated``), and
    replies compressed by uvicorn's ``websockets`` interleave with them intact and in order."""
    async with serving(ws_per_message_deflate=True) as (url, stats):
        async with connect(url, open_timeout=10) as ws:
            (deflate,) = ws.protocol.extensions
            assert deflate.name == "permessage-deflate"
            assert deflate.remote_no_context_takeover, "the server keeps no context"
        frames = await receive_updates(url, 40, compression="deflate")
        check_in_order(frames)
        assert stats.direct_frames > 0
        assert stats.asgi_frames == 0


async def test_write_delay_batches_every_frame_and_keeps_order() -> None:
    """``MARKETCAST_WS_WRITE_DELAY``: no frame goes out on its own; updates and replies still
    arrive intact and in order, written in batches."""
    async with serving(ws_write_delay=0.05) as (url, stats):
        frames = await receive_updates(url, 60, compression=None)
        check_in_order(frames)
        assert stats.direct_frames == 0, "with a write delay nothing is written directly"
        assert stats.asgi_frames == 0
        assert stats.batched_frames >= 60
