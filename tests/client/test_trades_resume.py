"""A trades subscription across reconnects, against a scripted server on 127.0.0.1: it resumes
with the largest snapshot and yields each trade once, in id order; a snapshot that does not
reach back to the last trade yielded is reported as ``recovered`` False."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from marketcast_client.subscription import Subscribed
from websockets.asyncio.server import ServerConnection

from tests.client.test_close_codes import client, scripted

TOPIC = 'trades:{"symbol":"BTCUSDT"}'


def trade(n: int) -> dict[str, Any]:
    return {"id": n, "time": 1_763_683_200_000 + n, "price": 1.0, "quantity": 0.5, "side": "buy"}


def update(n: int) -> str:
    return json.dumps(
        {"type": "trades.update", "payload": {**trade(n), "topic": TOPIC, "symbol": "BTCUSDT"}}
    )


def reply(request: dict[str, Any], trades: list[dict[str, Any]]) -> str:
    payload = {"status": "ok", "symbol": "BTCUSDT", "message": "subscribed", "topic": TOPIC}
    payload["trades"] = trades  # type: ignore[assignment]
    return json.dumps(
        {"type": "trades.subscribe.response", "id": request["id"], "payload": payload}
    )


async def drop(ws: ServerConnection) -> None:
    await ws.close(1012, "restart")


async def test_trades_resume_with_a_snapshot_and_repeat_nothing() -> None:
    async def script(ws: ServerConnection, number: int) -> None:
        request = await server.request(ws)
        if number == 0:
            await ws.send(reply(request, [trade(1), trade(2)]))
            for n in (3, 4, 5):
                await ws.send(update(n))
            await drop(ws)
            return
        if number == 1:
            # Overlaps what was yielded (4, 5), then 6 and 7 were missed; live goes on at 8.
            await ws.send(reply(request, [trade(n) for n in range(4, 8)]))
            await ws.send(update(8))
            await drop(ws)
            return
        # Starts after a hole (9 and 10 missing): reported, and still nothing repeated.
        await ws.send(reply(request, [trade(11), trade(12)]))
        await ws.send(update(13))
        await ws.wait_closed()

    async with scripted(script) as (server, url), client(url) as marketcast:
        trades = await marketcast.subscribe_trades("BTCUSDT", snapshot=2)
        assert [t.id for t in trades.reply.trades or []] == [1, 2]
        events: list[Subscribed] = []
        trades.on("subscribed", events.append)
        seen: list[int] = []
        async with asyncio.timeout(10):
            async for item in trades:
                seen.append(item.id)
                if item.id == 13:
                    break
        assert seen == [3, 4, 5, 6, 7, 8, 11, 12, 13]
        first, *resumes = server.requests
        assert first["payload"]["snapshot"] == 2
        assert [r["payload"]["snapshot"] for r in resumes] == [500, 500]
        assert [(e.recovered, [t.id for t in e.bars]) for e in events] == [
            (True, [6, 7]),
            (False, [11, 12]),
        ]
        assert [(r.since, r.recovered, r.delivered) for r in trades.recoveries] == [
            (5, True, 2),
            (8, False, 2),
        ]
