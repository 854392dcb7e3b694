"""``subscriptions.list`` against a scripted client: a real server on 127.0.0.1 (simulator
feed) and a real WebSocket client that subscribes and unsubscribes at random over every family,
with repeats, refusals and unsubscribes of what it never held, and asks for the list after each
step. The list must be exactly the client's own model of what it holds, in subscription order,
and every frame valid against the published document (the harness client checks each one).
"""

from __future__ import annotations

import json
import random
from typing import Any, Final

import pytest
from websockets.asyncio.client import connect

from marketcast.channels.registry import default_registry
from tests.integration.harness import Client, in_process_server

pytestmark = pytest.mark.integration

#: Every family with a few keys each: (route, symbol, params).
KEYS: Final = [
    ("bars", "BTCUSDT", {"resolution": "1"}),
    ("bars", "BTCUSDT", {"resolution": "60"}),
    ("bars", "EUR/USD", {"resolution": "D"}),
    ("quotes", "BTCUSDT", {}),
    ("quotes", "AAPL", {}),
    ("trades", "ETHUSDT", {}),
    ("trades", "BTCUSDT", {}),
    ("orderbook", "BTCUSDT", {"mode": "levels", "depth": 10}),
    ("orderbook", "ETHUSDT", {"mode": "diff"}),
]
STEPS: Final = 60


def topic(route: str, symbol: str, params: dict[str, Any]) -> str:
    key = json.dumps({"symbol": symbol, **params}, sort_keys=True, separators=(",", ":"))
    return f"{route}:{key}"


async def listed(client: Client) -> list[dict[str, Any]]:
    reply = await client.request("subscriptions.list")
    assert reply["type"] == "subscriptions.list.response", reply
    entries: list[dict[str, Any]] = reply["payload"]["subscriptions"]
    return entries


async def test_the_list_follows_a_scripted_clients_history() -> None:
    assert {route for route, _, _ in KEYS} == set(default_registry().routes)
    rng = random.Random(20261203)
    # The client's own model: topic -> entry, in the order the server should list them.
    held: dict[str, dict[str, Any]] = {}
    async with in_process_server() as server, connect(server.ws, open_timeout=30) as ws:
        client = Client(ws)
        assert await listed(client) == []
        refusals = repeats = misses = 0
        for _ in range(STEPS):
            route, symbol, params = rng.choice(KEYS)
            name = topic(route, symbol, params)
            action = rng.choice(["subscribe", "subscribe", "unsubscribe", "refused"])
            if action == "refused":
                reply = await client.request(
                    f"{route}.subscribe", {"symbol": "NOPE1", "params": params}
                )
                assert reply["type"] == "error", reply
                assert reply["payload"]["code"] == "unknown_symbol"
                refusals += 1
            else:
                reply = await client.request(
                    f"{route}.{action}", {"symbol": symbol, "params": params}
                )
                assert reply["payload"]["topic"] == name, reply
                if action == "subscribe":
                    repeats += name in held
                    held.setdefault(
                        name,
                        {"route": route, "topic": name, "symbol": symbol, "params": params},
                    )
                else:
                    misses += name not in held
                    held.pop(name, None)
            assert await listed(client) == list(held.values())
        # The script went through every case it is meant to check.
        assert refusals > 0
        assert repeats > 0
        assert misses > 0


async def test_a_list_request_with_fields_is_refused_and_the_id_is_echoed() -> None:
    async with in_process_server() as server, connect(server.ws, open_timeout=30) as ws:
        client = Client(ws)
        reply = await client.request("subscriptions.list", {"route": "bars"})
        assert reply["type"] == "error"
        assert reply["payload"]["code"] == "validation_error"
        assert reply["id"] == client.next_id
