"""uvicorn's per-connection objects, slimmed (``delivery.lean``), on a real server.

The WebSocket entry swaps uvicorn's receive queue and ``writable`` event for lean ones, and
drops its deflate factories, before marketcast reads anything; ``LeanSansIOProtocol`` builds
them that way from the start. Both rely on uvicorn internals, so this pins, on a real uvicorn
and a real client, that a connection gets them and still subscribes, receives updates and
replies in order, and closes; that a path the entry does not serve is still refused; and that
the slotted protocol class serves the same. (The slow-consumer tests drive ``writable``
through its pause and resume.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from marketcast.app import create_app
from marketcast.delivery.lean import LeanEvent, LeanQueue, LeanSansIOProtocol
from marketcast.delivery.transport import RAW_SEND_KEY
from marketcast.serving import build_server
from marketcast.settings import Settings
from tests.integration.harness import free_port

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def serving(protocol_class: Any = None) -> AsyncIterator[tuple[str, FastAPI]]:
    """marketcast under uvicorn in this event loop (with ``protocol_class`` as uvicorn's
    WebSocket protocol if given), so the test can look at its connections."""
    config = Settings(
        host="127.0.0.1", port=free_port(), sim_tick_interval=0.02, metrics_enabled=False
    )
    app = create_app(config)
    server = build_server(app, config)
    if protocol_class is not None:
        server.config.ws = protocol_class
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(6000):  # polled for the event; bounded only to name a hang
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started, "server did not start"
        yield f"ws://127.0.0.1:{config.port}", app
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


def uvicorn_protocols(app: FastAPI) -> list[Any]:
    """uvicorn's protocol object of every open marketcast connection."""
    return [
        conn.ws.scope[RAW_SEND_KEY].__self__ for conn in app.state.adapter.open_connections.values()
    ]


async def subscribe_and_follow(url: str, app: FastAPI) -> list[Any]:
    """Subscribe, check the reply, then interleave pings with updates: every reply in order,
    updates flowing. Returns uvicorn's protocol objects seen while connected."""
    async with connect(f"{url}/api/v1/ws", open_timeout=10, close_timeout=2) as ws:
        request = {
            "type": "bars.subscribe",
            "id": 1,
            "payload": {"symbol": "BTCUSDT", "params": {"resolution": "1"}},
        }
        await ws.send(orjson.dumps(request).decode())
        reply = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        assert reply["type"] == "bars.subscribe.response", reply
        protocols = uvicorn_protocols(app)
        updates = 0
        for n in range(3):
            await ws.send(orjson.dumps({"type": "ping", "id": 100 + n, "payload": {}}).decode())
            while True:
                frame = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame["type"] == "bars.update":
                    updates += 1
                    continue
                assert frame["type"] == "pong", frame
                assert frame["id"] == 100 + n, frame
                break
        while updates == 0:
            frame = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            updates += frame["type"] == "bars.update"
    return protocols


@pytest.mark.parametrize("protocol_class", [None, LeanSansIOProtocol], ids=["serve", "slotted"])
async def test_connections_get_the_lean_objects_and_work_as_before(protocol_class: Any) -> None:
    async with serving(protocol_class) as (url, app):
        protocols = await subscribe_and_follow(url, app)
        assert len(protocols) == 1
        protocol = protocols[0]
        assert isinstance(protocol.queue, LeanQueue)
        assert isinstance(protocol.writable, LeanEvent)
        assert not protocol.conn.available_extensions  # used by the handshake, then dropped
        if protocol_class is not None:
            assert type(protocol) is protocol_class
            assert len(vars(protocol)) <= 30  # shared-keys instance dict
        # The client closed: the server saw the disconnect through the lean queue.
        for _ in range(500):
            if not app.state.adapter.open_connections:
                break
            await asyncio.sleep(0.01)
        assert not app.state.adapter.open_connections


@pytest.mark.parametrize("protocol_class", [None, LeanSansIOProtocol], ids=["serve", "slotted"])
async def test_a_path_the_entry_does_not_serve_is_still_refused(protocol_class: Any) -> None:
    async with serving(protocol_class) as (url, _):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{url}/api/v1/nowhere", open_timeout=10):
                pass
        assert refused.value.response.status_code == 403
