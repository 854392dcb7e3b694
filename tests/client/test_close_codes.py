"""The client against a scripted WebSocket server on 127.0.0.1: what each close code makes it
do, and the ``since`` it resumes bars with. The real server cannot be made to send 4404 on
the multiplexed endpoint or to replay a bar the client already has; this one can."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

import pytest
from marketcast_client import Backoff, FatalClose, HandshakeRefused, MarketcastClient
from marketcast_client.models import BarsUpdatePayload
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

TOPIC = 'bars:{"resolution":"1","symbol":"BTCUSDT"}'
MINUTE = 60_000
T0 = 1_763_683_200_000

Script = Callable[[ServerConnection, int], Awaitable[None]]


def bar(n: int, *, closed: bool) -> dict[str, Any]:
    ohlcv = {"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 3.0}
    return {"time": T0 + n * MINUTE, **ohlcv, "closed": closed}


def update(n: int, *, closed: bool) -> str:
    payload = {**bar(n, closed=closed), "topic": TOPIC, "symbol": "BTCUSDT", "resolution": "1"}
    return json.dumps({"type": "bars.update", "payload": payload})


def reply(request: dict[str, Any], bars: list[dict[str, Any]], **extra: Any) -> str:
    payload: dict[str, Any] = {"status": "ok", "symbol": "BTCUSDT", "message": "subscribed"}
    payload.update(topic=TOPIC, bars=bars, **extra)
    return json.dumps({"type": "bars.subscribe.response", "id": request["id"], "payload": payload})


class Scripted:
    """A server whose connection number ``n`` (from 0) runs ``script(ws, n)``."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[dict[str, Any]] = []

    async def handler(self, ws: ServerConnection) -> None:
        number = self.connections
        self.connections += 1
        await self.script(ws, number)

    async def request(self, ws: ServerConnection) -> dict[str, Any]:
        async with asyncio.timeout(10):
            message: dict[str, Any] = json.loads(await ws.recv())
        self.requests.append(message)
        return message


@asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[tuple[Scripted, str]]:
    server = Scripted(script)
    async with serve(server.handler, "127.0.0.1", 0) as running:
        port = next(iter(running.sockets)).getsockname()[1]
        yield server, f"ws://127.0.0.1:{port}/api/v1/ws"


def client(url: str) -> MarketcastClient:
    # Draws of 0: every backoff delay is zero, so the tests wait for events, not for time.
    return MarketcastClient(url, backoff=Backoff(base=0.05, cap=0.05), random=lambda: 0.0)


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("code", [4404, 1009, 1007])
async def test_a_close_that_retrying_cannot_fix_ends_the_client(code: int) -> None:
    async def script(ws: ServerConnection, number: int) -> None:
        request = await server.request(ws)
        await ws.send(reply(request, []))
        await ws.send(update(0, closed=False))
        await ws.close(code, "no")

    async with scripted(script) as (server, url), client(url) as marketcast:
        bars = await marketcast.subscribe_bars("BTCUSDT", resolution="1")
        received = [item async for item in _until_error(bars)]
        assert isinstance(received[-1], FatalClose)
        assert received[-1].code == code
        assert [u.time for u in received[:-1] if isinstance(u, BarsUpdatePayload)] == [T0]
        await until(lambda: marketcast.state == "closed")
        assert isinstance(marketcast.failure, FatalClose)
        await asyncio.sleep(0.2)  # room for a reconnect that must not come
        assert server.connections == 1


async def _until_error(bars: Any) -> AsyncIterator[object]:
    try:
        async for item in bars:
            yield item
    except FatalClose as error:
        yield error


async def test_after_a_planned_close_bars_resume_with_since_and_no_repeat() -> None:
    async def script(ws: ServerConnection, number: int) -> None:
        request = await server.request(ws)
        if number == 0:
            snapshot = [bar(0, closed=True), bar(1, closed=True), bar(2, closed=False)]
            await ws.send(reply(request, snapshot))
            await ws.send(update(2, closed=True))
            await ws.send(update(3, closed=False))
            notice = {"code": "shutdown", "message": "bye", "close_code": 1001, "close_in_ms": 0}
            await ws.send(json.dumps({"type": "notice", "payload": notice}))
            await ws.close(1001, "going away")
            return
        # More than asked for (bar 2 again): the client must drop what it already yielded.
        replay = [bar(2, closed=True), bar(3, closed=True), bar(4, closed=False)]
        await ws.send(reply(request, replay, recovered=True))
        await ws.send(update(4, closed=True))
        await ws.wait_closed()

    async with scripted(script) as (server, url), client(url) as marketcast:
        bars = await marketcast.subscribe_bars("BTCUSDT", resolution="1", snapshot=3)
        assert [b.time for b in bars.reply.bars or []] == [T0, T0 + MINUTE, T0 + 2 * MINUTE]
        seen: list[tuple[int, bool]] = []
        async with asyncio.timeout(10):
            async for item in bars:
                seen.append(((item.time - T0) // MINUTE, item.closed))
                if item.time == T0 + 4 * MINUTE and item.closed:
                    break
        assert seen == [(2, True), (3, False), (3, True), (4, False), (4, True)]
        assert server.connections == 2
        first, again = server.requests
        assert first["payload"]["snapshot"] == 3
        assert "since" not in first["payload"]
        # Resumed after the last closed bar (2), asking for no snapshot.
        assert again["type"] == "bars.subscribe"
        assert again["payload"]["since"] == T0 + 2 * MINUTE + 1
        assert again["payload"]["snapshot"] == 0
        assert [(r.since, r.recovered, r.delivered) for r in bars.recoveries] == [
            (T0 + 2 * MINUTE + 1, True, 2)
        ]


async def test_replies_are_matched_by_id_whatever_their_order() -> None:
    async def script(ws: ServerConnection, number: int) -> None:
        first = await server.request(ws)
        second = await server.request(ws)
        # Answered in reverse order, with an update in between.
        await ws.send(json.dumps({"type": "pong", "id": second["id"], "payload": {"time": 2}}))
        await ws.send(update(0, closed=False))
        await ws.send(json.dumps({"type": "pong", "id": first["id"], "payload": {"time": 1}}))
        await ws.wait_closed()

    async with scripted(script) as (server, url), client(url) as marketcast:
        one, two = await asyncio.gather(marketcast.ping(), marketcast.ping())
        assert (one.time, two.time) == (1, 2)


async def test_a_refused_resume_subscribes_afresh_and_still_repeats_nothing() -> None:
    async def script(ws: ServerConnection, number: int) -> None:
        request = await server.request(ws)
        if number == 0:
            await ws.send(reply(request, [bar(0, closed=True), bar(1, closed=False)]))
            await ws.close(1012, "service restart")
            return
        # A server whose history is behind: the since is refused, the plain request is not.
        error = {"code": "validation_error", "message": "since is too late"}
        await ws.send(json.dumps({"type": "error", "id": request["id"], "payload": error}))
        request = await server.request(ws)
        await ws.send(reply(request, []))
        await ws.send(update(0, closed=True))  # already yielded (in the snapshot): dropped
        await ws.send(update(1, closed=True))
        await ws.wait_closed()

    async with scripted(script) as (server, url), client(url) as marketcast:
        bars = await marketcast.subscribe_bars("BTCUSDT", resolution="1", snapshot=2)
        async with asyncio.timeout(10):
            item = await anext(bars)
        assert (item.time, item.closed) == (T0 + MINUTE, True)
        assert [r["payload"].get("since") for r in server.requests] == [None, T0 + 1, None]
        assert bars.active


async def test_a_refused_reconnect_waits_for_a_new_token_then_resumes() -> None:
    """A 403 on a reconnect (the token expired) is not retried with the same token: the
    client waits in ``unauthorized`` for ``set_token``, then resumes its subscriptions."""
    accepted = {"token.old"}
    refused: list[str] = []

    def check_token(connection: ServerConnection, request: Request) -> Response | None:
        offered = {p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")}
        if offered & accepted:
            return None
        refused.append(", ".join(sorted(offered)))
        return connection.respond(HTTPStatus.FORBIDDEN, "token refused\n")

    async def script(ws: ServerConnection, number: int) -> None:
        request = await server.request(ws)
        await ws.send(reply(request, []))
        await ws.send(update(number, closed=True))
        if number == 0:
            accepted.clear()
            accepted.add("token.new")  # the old token expires with this connection
            await ws.close(1012, "restart")
        else:
            await ws.wait_closed()

    server = Scripted(script)
    async with serve(
        server.handler,
        "127.0.0.1",
        0,
        process_request=check_token,
        subprotocols=[Subprotocol("marketcast.v1")],
    ) as running:
        port = next(iter(running.sockets)).getsockname()[1]
        url = f"ws://127.0.0.1:{port}/api/v1/ws"
        marketcast = MarketcastClient(
            url, token="old", backoff=Backoff(base=0.05, cap=0.05), random=lambda: 0.0
        )
        async with marketcast:
            bars = await marketcast.subscribe_bars("BTCUSDT", resolution="1")
            first = await anext(bars)
            assert first.time == T0
            await until(lambda: marketcast.state == "unauthorized")
            assert isinstance(marketcast.failure, HandshakeRefused)
            tries = len(refused)
            await asyncio.sleep(0.3)  # backoff draws are 0: a retry would come at once
            assert len(refused) == tries == 1, refused
            marketcast.set_token("new")
            second = await anext(bars)
            assert second.time == T0 + MINUTE
            assert marketcast.state == "open"
            assert marketcast.failure is None
    assert server.connections == 2
    resumed = server.requests[-1]["payload"]
    assert resumed["since"] == T0 + 1  # the closed bar it had, and nothing twice
