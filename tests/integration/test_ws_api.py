"""The WebSocket API end to end: a real uvicorn server and real WebSocket clients."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosed

from marketcast.timeframes import next_bucket
from tests.integration.harness import Server, client

BTC_1 = 'bars:{"resolution":"1","symbol":"BTCUSDT"}'
ETH_1 = 'bars:{"resolution":"1","symbol":"ETHUSDT"}'


def is_update(topic: str):  # type: ignore[no-untyped-def]
    return lambda f: f["type"] == "bars.update" and f["payload"]["topic"] == topic


async def test_subscribe_returns_topic_then_updates(server: Server) -> None:
    async with client(server) as c:
        reply = await c.subscribe_bars("BTCUSDT", "1")
        assert reply["type"] == "bars.subscribe.response"
        assert reply["payload"]["status"] == "ok"
        assert reply["payload"]["topic"] == BTC_1
        update = await c.recv()
        assert update["type"] == "bars.update"
        payload = update["payload"]
        assert payload["topic"] == BTC_1
        assert (payload["symbol"], payload["resolution"]) == ("BTCUSDT", "1")
        assert payload["low"] <= min(payload["open"], payload["close"])
        assert payload["high"] >= max(payload["open"], payload["close"])


async def test_resolution_alias_is_canonical_in_topic(server: Server) -> None:
    async with client(server) as c:
        reply = await c.subscribe_bars("BTCUSDT", "1D")
        assert reply["payload"]["topic"] == 'bars:{"resolution":"D","symbol":"BTCUSDT"}'


async def test_quotes_subscribe_and_update(server: Server) -> None:
    async with client(server) as c:
        reply = await c.request("quotes.subscribe", {"symbol": "EUR/USD", "params": {}})
        assert reply["payload"]["topic"] == 'quotes:{"symbol":"EUR/USD"}'
        update = await c.recv()
        assert update["type"] == "quotes.update"
        assert update["payload"]["symbol"] == "EUR/USD"
        assert update["payload"]["bid"] < update["payload"]["ask"]


async def test_ping_pong_echoes_id(server: Server) -> None:
    async with client(server) as c:
        await c.send({"type": "ping", "payload": {}, "id": "abc"})
        pong = await c.recv()
        assert pong["type"] == "pong"
        assert pong["id"] == "abc"
        assert pong["payload"]["time"] > 1_600_000_000_000


async def test_topic_isolation_between_clients(server: Server) -> None:
    async with client(server) as a, client(server) as b:
        await a.subscribe_bars("BTCUSDT", "1")
        await b.subscribe_bars("ETHUSDT", "1")
        seen_a = [await a.recv() for _ in range(5)]
        seen_b = [await b.recv() for _ in range(5)]
        assert {f["payload"]["topic"] for f in seen_a} == {BTC_1}
        assert {f["payload"]["topic"] for f in seen_b} == {ETH_1}


async def test_unsubscribe_stops_delivery(server: Server) -> None:
    async with client(server) as c:
        await c.subscribe_bars("BTCUSDT", "1")
        await c.subscribe_bars("ETHUSDT", "1")
        await c.recv_until(is_update(BTC_1))
        reply = await c.request(
            "bars.unsubscribe", {"symbol": "BTCUSDT", "params": {"resolution": "1"}}
        )
        assert reply["payload"]["message"] == "unsubscribed"
        # Everything after the reply is for the other topic only.
        later = [await c.recv() for _ in range(10)]
        assert {f["payload"]["topic"] for f in later} == {ETH_1}
        again = await c.request(
            "bars.unsubscribe", {"symbol": "BTCUSDT", "params": {"resolution": "1"}}
        )
        assert again["payload"] == {**reply["payload"], "message": "not subscribed"}


async def test_subscribe_is_idempotent(server: Server) -> None:
    async with client(server) as c:
        first = await c.subscribe_bars("ETHUSDT", "5")
        second = await c.subscribe_bars("ETHUSDT", "5")
        assert first["payload"]["message"] == "subscribed"
        assert second["payload"]["message"] == "already subscribed"
        # One subscription, so each update arrives once: no two consecutive identical frames.
        frames = [await c.recv() for _ in range(6)]
        texts = [repr(f) for f in frames]
        assert all(texts[i] != texts[i + 1] for i in range(len(texts) - 1))


async def test_snapshot_then_stream_has_no_gap_and_no_duplicate(server: Server) -> None:
    """60x speed: a 1-minute bar closes every real second; watch several close."""
    async with client(server) as c:
        reply = await c.subscribe_bars("ETHUSDT", "1", snapshot=20)
        bars = reply["payload"]["bars"]
        assert len(bars) == 20
        times = [b["time"] for b in bars]
        assert times == sorted(times)
        assert all(b["closed"] for b in bars[:-1])
        closed = {b["time"]: b for b in bars if b["closed"]}
        closed_order = [b["time"] for b in bars if b["closed"]]
        last_open = bars[-1]
        while len(closed_order) < 23:
            frame = await c.recv_until(is_update(ETH_1), within=15)
            payload = frame["payload"]
            assert payload["time"] >= last_open["time"], "an update older than the snapshot"
            if payload["closed"]:
                assert payload["time"] not in closed, "a closed bar delivered twice"
                closed[payload["time"]] = payload
                closed_order.append(payload["time"])
        assert all(
            next_bucket(closed_order[i], "1") == closed_order[i + 1]
            for i in range(len(closed_order) - 1)
        ), "a gap in the closed bars"


async def test_since_returns_bars_from_that_time(server: Server) -> None:
    async with client(server) as c:
        first = await c.subscribe_bars("BTCUSDT", "5", snapshot=10)
        since = first["payload"]["bars"][3]["time"]
        await c.request("bars.unsubscribe", {"symbol": "BTCUSDT", "params": {"resolution": "5"}})
        again = await c.subscribe_bars("BTCUSDT", "5", since=since)
        times = [b["time"] for b in again["payload"]["bars"]]
        assert times[0] == since
        assert times == sorted(set(times))


async def test_disconnect_cleans_subscriptions(server: Server) -> None:
    async with client(server) as c:
        await c.subscribe_bars("BTCUSDT", "15")
        await c.request("quotes.subscribe", {"symbol": "BTCUSDT", "params": {}})
    # The server side notices the close; a new client can still use the same topics.
    async with client(server) as c:
        reply = await c.subscribe_bars("BTCUSDT", "15")
        assert reply["payload"]["message"] == "subscribed"


BAD_FRAMES = [
    pytest.param("{not json", "invalid_json", None, id="invalid-json"),
    pytest.param("[1, 2]", "invalid_message", None, id="not-an-object"),
    pytest.param('{"payload": {}}', "invalid_message", None, id="missing-type"),
    pytest.param(
        '{"type": "bars.subscribe", "payload": {}, "id": true}',
        "invalid_message",
        None,
        id="bad-id",
    ),
    pytest.param(
        '{"type": "ping", "id": null, "payload": {}}', "invalid_message", None, id="null-id"
    ),
    pytest.param(
        '{"type": "ping", "id": 9007199254740992, "payload": {}}',
        "invalid_message",
        None,
        id="id-beyond-2**53-1",
    ),
    pytest.param('{"type": "ping", "id": 13}', "invalid_message", 13, id="missing-payload"),
    pytest.param(
        '{"type": "bars.subscribe", "payload": {}, "x": 1, "id": 4}',
        "invalid_message",
        4,
        id="extra-field",
    ),
    pytest.param(
        '{"type": "bars.explode", "payload": {}, "id": 5}', "unknown_type", 5, id="unknown-type"
    ),
    pytest.param(
        '{"type": "bars.update", "payload": {}, "id": 6}', "unknown_type", 6, id="server-only-type"
    ),
    pytest.param(
        '{"type": "bars.subscribe", "id": 7, "payload": {"symbol": "BTCUSDT", "params": {"resolution": "1"}, "snapshot": 5000}}',
        "validation_error",
        7,
        id="snapshot-too-large",
    ),
    pytest.param(
        '{"type": "bars.subscribe", "id": 8, "payload": {"symbol": "BTCUSDT"}}',
        "validation_error",
        8,
        id="missing-params",
    ),
    pytest.param(
        '{"type": "bars.subscribe", "id": 9, "payload": "BTCUSDT"}',
        "validation_error",
        9,
        id="payload-not-object",
    ),
    pytest.param(
        '{"type": "bars.subscribe", "id": "s", "payload": {"symbol": "btcusdt", "params": {"resolution": "1"}}}',
        "invalid_symbol",
        "s",
        id="invalid-symbol",
    ),
    pytest.param(
        '{"type": "bars.subscribe", "id": 10, "payload": {"symbol": "DOGEUSDT", "params": {"resolution": "1"}}}',
        "unknown_symbol",
        10,
        id="unknown-symbol",
    ),
    pytest.param(
        '{"type": "bars.subscribe", "id": 11, "payload": {"symbol": "BTCUSDT", "params": {"resolution": "7"}}}',
        "unsupported_resolution",
        11,
        id="unsupported-resolution",
    ),
    pytest.param(
        '{"type": "quotes.subscribe", "id": 12, "payload": {"symbol": "BTCUSDT", "params": {"depth": 5}}}',
        "validation_error",
        12,
        id="unknown-param",
    ),
]


@pytest.mark.parametrize(("frame", "code", "request_id"), BAD_FRAMES)
async def test_bad_input_gets_typed_error_and_connection_stays_open(
    server: Server, frame: str, code: str, request_id: object
) -> None:
    async with client(server) as c:
        await c.send(frame)
        error = await c.recv()
        assert error["type"] == "error"
        assert error["payload"]["code"] == code
        assert error["payload"]["message"]
        assert error.get("id") == request_id
        pong = await c.request("ping")
        assert pong["type"] == "pong"


async def test_binary_frame_gets_error(server: Server) -> None:
    async with client(server) as c:
        await c.send(b"\x00\x01")
        error = await c.recv()
        assert error["payload"]["code"] == "unsupported_frame"
        assert (await c.request("ping"))["type"] == "pong"


async def test_oversize_frame_closes_with_1009(server: Server) -> None:
    async with client(server, max_size=None) as c:
        await c.send('{"type": "ping", "payload": {"pad": "' + "x" * 70_000 + '"}}')
        with pytest.raises(ConnectionClosed) as closed:
            await c.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009


async def test_many_clients_same_topic_all_receive(server: Server) -> None:
    async def one() -> list[dict[str, object]]:
        async with client(server) as c:
            await c.subscribe_bars("AAPL", "1")
            return [await c.recv() for _ in range(5)]

    results = await asyncio.gather(*(one() for _ in range(10)))
    assert all(len(r) == 5 for r in results)
