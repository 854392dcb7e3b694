"""A request that needs the shared store while Redis is down gets a typed answer: REST 503
``{"detail": {"code": "unavailable", ...}}`` with ``Retry-After``, WebSocket ``unavailable``;
never a plain-text 500 or an ``internal_error`` with a traceback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.integration.harness import client, run_server
from tests.redis.redis_server import running_redis


async def test_requests_during_a_store_outage_get_typed_errors(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    with (
        running_redis(tmp_path / "redis") as redis,
        run_server(
            tmp_path,
            store_url=redis.url,
            redis_timeout=0.5,
            sim_speed=60,
            rest_rate_limit_per_second=0,
        ) as server,
    ):
        async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
            url = "/api/v1/market-data/history?symbol=ETHUSDT&resolution=5&limit=10"
            assert (await http.get(url)).status_code == 200
            await asyncio.to_thread(redis.stop)
            answer = await http.get(url)
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"] == "1"
            assert answer.json()["detail"]["code"] == "unavailable"
            async with client(server) as ws:
                reply = await ws.subscribe_bars("ETHUSDT", "5", snapshot=5)
            assert reply["type"] == "error", reply
            assert reply["payload"]["code"] == "unavailable"
        log = server.log()
        assert "Traceback" not in log
        assert "request 'bars.subscribe' failed" not in log
