"""Hostile-but-cheap requests get their documented, bounded answers from a real server:
deep nesting, oversized echoes, costly frames charged by their cost, the REST rate limit."""

from __future__ import annotations

import base64
import os
import socket
import struct
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.integration.harness import Client, Server, client, run_server

#: The refill is negligible during a test, so token counts are exact.
SLOW_REFILL = 0.001
BURST = 30


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(
        tmp_path_factory.mktemp("abuse"),
        sim_speed=60,
        sim_tick_interval=0.05,
        rate_limit_per_second=SLOW_REFILL,
        rate_limit_burst=BURST,
        rate_limit_max_refused=1000,
        rest_rate_limit_per_second=SLOW_REFILL,
        rest_rate_limit_burst=25,
    ) as running:
        yield running


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [1_000, 10_000])
async def test_deep_nesting_gets_validation_error_and_no_error_log(
    server: Server, depth: int
) -> None:
    async with client(server) as ws:
        frame = '{"type":"bars.subscribe","id":7,"payload":{"symbol":"BTCUSDT","params":' + (
            '{"resolution":"1"},"snapshot":' + deep(depth) + "}}"
        )
        await ws.send(frame)
        error = await ws.recv()
        assert error["type"] == "error"
        assert error["payload"]["code"] == "validation_error"
        assert len(orjson.dumps(error)) < 600
        # The connection stays open and usable.
        pong = await ws.request("ping")
        assert pong["type"] == "pong"
    log = server.log()
    assert "Traceback" not in log
    assert " ERROR " not in log


async def test_a_deep_symbol_is_an_invalid_symbol_not_an_internal_error(server: Server) -> None:
    async with client(server) as ws:
        await ws.send('{"type":"quotes.subscribe","id":"d","payload":{"symbol":' + deep(900) + "}}")
        error = await ws.recv()
        assert (error["id"], error["payload"]["code"]) == ("d", "invalid_symbol")


async def test_error_replies_stay_small_whatever_the_request_size(server: Server) -> None:
    huge_type = "t" * 60_000
    async with client(server) as ws:
        await ws.send(orjson.dumps({"type": huge_type, "payload": {}, "id": 1}).decode())
        unknown = await ws.recv()
        await ws.send(
            orjson.dumps(
                {"type": "bars.subscribe", "id": 2, "payload": {"symbol": "x" * 60_000}}
            ).decode()
        )
        invalid = await ws.recv()
        await ws.send(
            orjson.dumps(
                {"type": "ping", "id": 3, **{f"field{i}" * 100: i for i in range(50)}}
            ).decode()
        )
        extra = await ws.recv()
    assert unknown["payload"]["code"] == "unknown_type"
    assert unknown["payload"]["request_type"] == "t" * 64 + "…"
    assert huge_type[:100] not in unknown["payload"]["message"]
    assert invalid["payload"]["code"] == "invalid_symbol"
    assert extra["payload"]["code"] == "invalid_message"
    for reply in (unknown, invalid, extra):
        assert len(orjson.dumps(reply)) < 1_000, reply


async def pings_until_refused(ws: Client) -> int:
    allowed = 0
    while True:
        # A refused frame is answered without its id (it is not parsed): read the next
        # pong or error rather than waiting for a reply carrying the id.
        await ws.send({"type": "ping", "payload": {}, "id": allowed})
        frame = await ws.recv_until(lambda f: f["type"] in ("pong", "error"))
        if frame["type"] == "error":
            assert frame["payload"]["code"] == "rate_limited"
            return allowed
        allowed += 1


async def test_a_costly_frame_drains_tokens_in_proportion_to_its_bars(server: Server) -> None:
    """Same burst, two connections: after a plain subscribe, BURST - 1 pings pass; after a
    1,000-bar snapshot only BURST - 1 - 1000 / 50."""
    async with client(server) as plain:
        reply = await plain.subscribe_bars("ETHUSDT", "1")
        assert reply["type"] == "bars.subscribe.response"
        assert await pings_until_refused(plain) == BURST - 1
    async with client(server) as costly:
        reply = await costly.subscribe_bars("ETHUSDT", "1", snapshot=1000)
        assert len(reply["payload"]["bars"]) == 1000
        assert await pings_until_refused(costly) == BURST - 1 - 1000 // 50


@pytest.mark.parametrize("since", [2**64 - 1, 2**53 - 1])
async def test_a_since_in_the_future_is_refused(server: Server, since: int) -> None:
    async with client(server) as ws:
        reply = await ws.subscribe_bars("BTCUSDT", "5", since=since)
    assert reply["type"] == "error"
    assert reply["payload"]["code"] == "validation_error"
    assert "since" in reply["payload"]["message"]


async def test_rest_is_rate_limited_per_client_with_retry_after(server: Server) -> None:
    async with client(server) as ws:  # loads the key's history outside the REST bucket
        assert (await ws.subscribe_bars("AAPL", "1"))["type"] == "bars.subscribe.response"
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
        url = "/api/v1/market-data/history?symbol=AAPL&resolution=1&limit=1000"
        first = await http.get(url)
        assert first.status_code == 200
        assert len(first.json()["bars"]) == 1000  # 1 + 1000 / 50 = 21 of 25 tokens
        statuses = [(await http.get("/api/v1/market-data/symbols")).status_code for _ in range(6)]
        assert statuses == [200] * 4 + [429] * 2
        refused = await http.get("/api/v1/market-data/symbols")
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["detail"]["code"] == "rate_limited"
        # Probes and metrics are not limited.
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/readyz")).status_code == 200
        assert (await http.get("/metrics")).status_code == 200


def test_invalid_utf8_closes_with_1007_and_logs_one_line(server: Server) -> None:
    """RFC 6455: a text frame that is not UTF-8 fails the connection with 1007 (documented in
    the close table); the server logs one INFO line, not a traceback."""
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            (
                "GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            response += sock.recv(4096)
        assert response.startswith(b"HTTP/1.1 101")
        payload, mask = b"\xc3\x28", os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
        received = response.split(b"\r\n\r\n", 1)[1]
        while True:  # no subscription: the only frame is the close frame
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    assert received[:1] == b"\x88", received[:20]  # a close frame
    assert struct.unpack("!H", received[2:4])[0] == 1007
    log = server.log()
    assert "not valid UTF-8: closed with 1007" in log
    assert "Traceback" not in log
