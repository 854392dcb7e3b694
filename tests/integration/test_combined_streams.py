"""Combined raw streams, ``/api/v1/ws/stream?streams=<path>,<path>,...``, end to end: a real
server on 127.0.0.1 (simulator feed) and real WebSocket clients.

Every frame is checked twice against the published document (``docs/asyncapi.json``): by the
harness client, through the consumer models generated from it, and here against the messages
the document's ``stream`` channel lists. Refusals are the documented ones: one ``error`` that
names the path, then close code 4404, and nothing delivered before it.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any, Final

import jsonschema
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from marketcast.errors import CloseCode
from tests.integration.harness import ROOT, Client, Endpoint, in_process_server

pytestmark = pytest.mark.integration

CHANNEL: Final = "stream"
#: Three families, a symbol with a slash among them (percent-encoded, as documented).
PATHS: Final = ("bars/BTCUSDT/1", "quotes/EUR%2FUSD", "trades/ETHUSDT")
TOPICS: Final = {
    'bars:{"resolution":"1","symbol":"BTCUSDT"}',
    'quotes:{"symbol":"EUR/USD"}',
    'trades:{"symbol":"ETHUSDT"}',
}
SETTINGS: Final = {"sim_tick_interval": 0.05, "sim_speed": 60}


@cache
def channel_validator() -> jsonschema.Draft7Validator:
    """Any message the ``stream`` channel documents the server sending."""
    document = json.loads((ROOT / "docs" / "asyncapi.json").read_text())
    messages = document["channels"][CHANNEL]["subscribe"]["message"]["oneOf"]
    refs = [{"$ref": m["payload"]["$ref"]} for m in messages]
    return jsonschema.Draft7Validator({"oneOf": refs, "components": document["components"]})


def url(server: Endpoint, query: str) -> str:
    return f"{server.ws}/{CHANNEL}{query}"


async def refusal(server: Endpoint, query: str) -> tuple[dict[str, Any], int | None]:
    """The one ``error`` a refused combined stream gets, and its close code."""
    async with connect(url(server, query), open_timeout=30) as ws:
        client = Client(ws)
        frame = await client.recv(within=30)
        assert frame["type"] == "error", f"delivered before the refusal: {frame}"
        errors = [e.message for e in channel_validator().iter_errors(frame)]
        assert not errors, f"{frame} is not what channel {CHANNEL} documents: {errors}"
        with pytest.raises(ConnectionClosed):
            await client.recv(within=30)
        return frame["payload"], ws.close_code


async def test_three_paths_deliver_all_three_topics_each_frame_valid() -> None:
    async with in_process_server(SETTINGS) as server:
        query = "?streams=" + ",".join(PATHS)
        async with connect(url(server, query), open_timeout=30) as ws:
            client = Client(ws)
            seen: dict[str, int] = {}
            while set(seen) != TOPICS:
                frame = await client.recv(within=30)
                errors = [e.message for e in channel_validator().iter_errors(frame)]
                assert not errors, f"{frame} is not what channel {CHANNEL} documents: {errors}"
                topic = frame["payload"]["topic"]
                assert topic in TOPICS, frame
                assert frame["type"] == topic.partition(":")[0] + ".update"
                seen[topic] = seen.get(topic, 0) + 1
            # ping is answered; another request is refused and the stream goes on.
            pong = await client.request("ping")
            assert pong["type"] == "pong"
            refused = await client.request("subscriptions.list")
            assert refused["payload"]["code"] == "unknown_type"
            frame = await client.recv_until(lambda f: f["type"].endswith(".update"), within=30)
            assert frame["payload"]["topic"] in TOPICS


async def test_refusals_name_the_path_and_close_with_4404() -> None:
    async with in_process_server({**SETTINGS, "max_subscriptions": 2}) as server:
        payload, code = await refusal(server, "?streams=bars/BTCUSDT/1,candles/BTCUSDT/1")
        assert code == CloseCode.STREAM_NOT_SERVED
        assert payload["code"] == "invalid_stream"
        assert payload["message"].startswith("stream 2 'candles/BTCUSDT/1' is no raw stream")
        assert "bars/{symbol}/{resolution}" in payload["message"]

        payload, code = await refusal(server, "?streams=quotes/BTCUSDT,bars/DOGEUSDT/1")
        assert code == CloseCode.STREAM_NOT_SERVED
        assert payload["code"] == "unknown_symbol"
        assert payload["message"].startswith("stream 2 'bars/DOGEUSDT/1': unknown symbol")

        payload, code = await refusal(server, "?streams=bars/BTCUSDT/7")
        assert (code, payload["code"]) == (CloseCode.STREAM_NOT_SERVED, "unsupported_resolution")

        # The paths count against the subscription limit (2 here), as subscribe requests do.
        payload, code = await refusal(server, "?streams=" + ",".join(PATHS))
        assert code == CloseCode.STREAM_NOT_SERVED
        assert payload["code"] == "too_many_subscriptions"
        assert payload["message"].startswith("stream 3 'trades/ETHUSDT'")

        for query in ("", "?streams=", "?streams=a&streams=b", "?stream=bars/BTCUSDT/1"):
            payload, code = await refusal(server, query)
            assert (code, payload["code"]) == (CloseCode.STREAM_NOT_SERVED, "invalid_stream")
            assert "expected ?streams=<path>,<path>" in payload["message"]


async def test_a_forbidden_path_refuses_the_whole_stream_before_any_update() -> None:
    """The authorization hook is asked for every path before any is subscribed: the paths
    before the forbidden one deliver nothing either."""
    asked: list[str] = []

    def no_trades(principal: object, route: str, topic: str) -> bool:
        asked.append(topic)
        return route != "trades"

    async with in_process_server(SETTINGS, authorize_topic=no_trades) as server:
        payload, code = await refusal(server, "?streams=" + ",".join(PATHS))
        assert code == CloseCode.STREAM_NOT_SERVED
        assert payload["code"] == "forbidden"
        assert payload["message"].startswith("stream 3 'trades/ETHUSDT': not allowed")
        assert asked == [  # in the paths' order, each once
            'bars:{"resolution":"1","symbol":"BTCUSDT"}',
            'quotes:{"symbol":"EUR/USD"}',
            'trades:{"symbol":"ETHUSDT"}',
        ]
