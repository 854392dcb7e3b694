"""The Python client's per-subscription state and events, and its policy tables, which are
the TypeScript client's (frontend-types): both are generated from the contract's
``x-close-codes`` / ``x-error-codes``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from marketcast_client import MarketcastClient, RetryLater
from marketcast_client.backoff import GOING_AWAY, NO_RETRY, PENALTY, Backoff
from marketcast_client.core import Subscribed, SubscriptionErrorEvent, Unsubscribed
from marketcast_client.errors import ERROR_FAMILIES
from marketcast_client.models import CLOSE_CODES, ERROR_CODE_RETRY
from websockets.asyncio.server import ServerConnection

from tests.client.test_close_codes import MINUTE, T0, TOPIC, bar, reply, scripted, until, update
from tests.integration.harness import ROOT


def test_the_policy_tables_are_the_contracts() -> None:
    document = json.loads((ROOT / "docs" / "asyncapi.json").read_text(encoding="utf-8"))
    published = document["x-close-codes"]
    assert {
        str(code): {"meaning": i.meaning, "retry": i.retry} for code, i in CLOSE_CODES.items()
    } == published
    assert {code: {"retry": retry} for code, retry in ERROR_CODE_RETRY.items()} == document[
        "x-error-codes"
    ]
    # The reconnect policy (backoff.py) says what the table says.
    by_retry = lambda kind: {code for code, info in CLOSE_CODES.items() if info.retry == kind}  # noqa: E731
    assert set(NO_RETRY) == by_retry("never") == {1007, 1009, 4404}
    assert set(PENALTY) == by_retry("growing") == {1008, 1013, 4008}
    assert by_retry("immediate") == {GOING_AWAY}
    # What the table retries later includes every RetryLater family member.
    later = {code for code, retry in ERROR_CODE_RETRY.items() if retry == "later"}
    assert {code for code, family in ERROR_FAMILIES.items() if family is RetryLater} <= later


def _client(url: str, **options: Any) -> MarketcastClient:
    return MarketcastClient(
        url, backoff=Backoff(base=0.05, cap=0.05), random=lambda: 0.0, **options
    )


async def test_states_and_events_across_a_reconnect_with_a_gap() -> None:
    listening = asyncio.Event()

    async def script(ws: ServerConnection, number: int) -> None:
        request = await server.request(ws)
        if number == 0:
            await ws.send(reply(request, [bar(0, closed=True), bar(1, closed=False)]))
            await ws.send(update(1, closed=True))
            await listening.wait()
            await ws.close(1012, "service restart")
            return
        # The server's history does not reach back to `since`: bars 2..4 are missing.
        await ws.send(reply(request, [bar(5, closed=True), bar(6, closed=False)], recovered=False))
        unsubscribe = await server.request(ws)
        answer = {"status": "ok", "symbol": "BTCUSDT", "message": "unsubscribed", "topic": TOPIC}
        await ws.send(
            json.dumps(
                {"type": "bars.unsubscribe.response", "id": unsubscribe["id"], "payload": answer}
            )
        )
        await ws.wait_closed()

    events: list[object] = []
    async with scripted(script) as (server, url), _client(url) as marketcast:
        bars = await marketcast.subscribe_bars("BTCUSDT", resolution="1", snapshot=2)
        assert bars.state == "subscribed"
        bars.on("subscribed", events.append)
        bars.on("unsubscribed", events.append)
        listening.set()
        await until(lambda: len(events) >= 1)
        (event,) = events
        assert isinstance(event, Subscribed)
        assert (event.recovered, event.resubscribed) == (False, True)
        assert [b.time for b in event.bars] == [T0 + 5 * MINUTE, T0 + 6 * MINUTE]
        assert bars.state == "subscribed"
        await bars.unsubscribe()
        assert bars.state == "unsubscribed"
        assert events[-1] == Unsubscribed("client", None)


async def test_a_subscribe_timeout_is_an_event_and_the_next_connection_recovers() -> None:
    listening = asyncio.Event()

    async def script(ws: ServerConnection, number: int) -> None:
        request = await server.request(ws)
        if number == 0:
            await ws.send(reply(request, []))
            await listening.wait()
            await ws.close(1012, "service restart")
        elif number == 1:
            await ws.wait_closed()  # the renewal is never answered
        else:
            await ws.send(reply(request, [], recovered=True))
            for n in range(20):
                await ws.send(update(n, closed=True))
            await ws.wait_closed()

    errors: list[SubscriptionErrorEvent] = []
    states: list[str] = []
    async with scripted(script) as (server, url), _client(url, request_timeout=0.5) as marketcast:
        bars = await marketcast.subscribe_bars("BTCUSDT", resolution="1")
        bars.on("error", errors.append)
        bars.on("subscribed", lambda event: states.append(bars.state))
        listening.set()
        received: list[int] = []
        async with asyncio.timeout(20):
            async for item in bars:
                received.append((item.time - T0) // MINUTE)
                if len(received) == 20:
                    break
        assert received == list(range(20))
        assert [(e.code, e.will_retry) for e in errors] == [("timeout", True)]
        assert server.connections == 3
        assert states == ["subscribed"]
        assert bars.state == "subscribed"


async def test_a_refused_renewal_ends_with_error_then_unsubscribed() -> None:
    listening = asyncio.Event()

    async def script(ws: ServerConnection, number: int) -> None:
        request = await server.request(ws)
        if number == 0:
            await ws.send(reply(request, []))
            await listening.wait()
            await ws.close(1012, "service restart")
            return
        error = {"code": "forbidden", "message": "not for you", "request_type": "bars.subscribe"}
        await ws.send(json.dumps({"type": "error", "id": request["id"], "payload": error}))
        await ws.wait_closed()

    events: list[object] = []
    async with scripted(script) as (server, url), _client(url) as marketcast:
        bars = await marketcast.subscribe_bars("BTCUSDT", resolution="1")
        bars.on("error", events.append)
        bars.on("unsubscribed", events.append)
        listening.set()
        await until(lambda: bars.state == "unsubscribed")
        error, ended = events
        assert isinstance(error, SubscriptionErrorEvent)
        assert (error.code, error.will_retry) == ("forbidden", False)
        assert isinstance(ended, Unsubscribed)
        assert ended.reason == "refused"
