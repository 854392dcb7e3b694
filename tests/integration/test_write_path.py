"""The write path the fan-out takes is named once at startup and counted per path in /metrics.

Why both: the direct path (``delivery.direct``) relies on uvicorn internals, and its fallback is
correct but slower, so an uvicorn upgrade that moved them would otherwise go unnoticed. The
startup line is the forecast, the ``path`` counters what the frames actually took.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.harness import Server, client, run_server
from tests.integration.test_metrics import Samples, scrape, value

pytestmark = pytest.mark.integration

BY_PATH = "marketcast_ws_messages_sent_by_path_total"
STARTUP = re.compile(r"WebSocket write path: ([^\n]*), uvicorn \d+\.\d+")


async def frames_by_path(server: Server, updates: int, **options: object) -> Samples:
    """Scrape /metrics after one client got a subscribe reply and ``updates`` updates."""
    async with client(server, max_queue=None, **options) as c:
        reply = await c.subscribe_bars("BTCUSDT", "1")
        assert reply["payload"]["status"] == "ok", reply
        for _ in range(updates):
            assert (await c.recv())["type"] == "bars.update"
        # Counted when written, so every frame the client read is in the counters already.
        return await scrape(server)


async def test_direct_path_is_named_at_startup_and_counted(tmp_path: Path) -> None:
    with run_server(tmp_path, sim_speed=60, sim_tick_interval=0.05) as server:
        lines = STARTUP.findall(server.log())
        samples = await frames_by_path(server, 20, compression="deflate")
    assert lines == [
        "direct to uvicorn's transport (SharedDeflateProtocol), "
        "permessage-deflate offered (each frame compressed once for every client)"
    ], lines
    transport = value(samples, BY_PATH, path="direct") + value(samples, BY_PATH, path="batched")
    assert transport >= 21, samples  # the reply and 20 updates
    assert value(samples, BY_PATH, path="asgi") == 0
    # The paths split the same frames the total counts.
    total = sum(value(samples, BY_PATH, path=p) for p in ("direct", "batched", "asgi"))
    assert total == value(samples, "marketcast_ws_messages_sent_total")


async def test_deflate_turned_off_is_named_at_startup_and_frames_still_go_direct(
    tmp_path: Path,
) -> None:
    """Whether or not compression is offered and taken, the fan-out writes to the transport:
    a client that negotiated deflate gets frames compressed once for every such client."""
    with run_server(
        tmp_path, sim_speed=60, sim_tick_interval=0.05, ws_per_message_deflate=False
    ) as server:
        lines = STARTUP.findall(server.log())
        samples = await frames_by_path(server, 20, compression="deflate")
    assert lines == ["direct to uvicorn's transport (SharedDeflateProtocol)"], lines
    transport = value(samples, BY_PATH, path="direct") + value(samples, BY_PATH, path="batched")
    assert transport >= 21, samples
    assert value(samples, BY_PATH, path="asgi") == 0
