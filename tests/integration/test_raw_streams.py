"""Raw streams on a real server: a plain WebSocket client that sends nothing receives the
updates of the topic its URL names (issue 7, acceptance 4); a stream that cannot be served is
explained with one ``error`` message and closed with 4404."""

from __future__ import annotations

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.consumer import validate_server_frame
from tests.integration.harness import Server


def stream_url(server: Server, path: str) -> str:
    return f"{server.ws}/stream/{path}"


async def test_bars_stream_pushes_updates_without_a_request(server: Server) -> None:
    async with connect(stream_url(server, "bars/BTCUSDT/1"), open_timeout=10) as ws:
        frames = []
        for _ in range(5):
            raw = await ws.recv(decode=True)
            validate_server_frame(raw)  # the published contract's models
            frames.append(orjson.loads(raw))
    for frame in frames:
        assert frame["type"] == "bars.update"
        payload = frame["payload"]
        assert (payload["symbol"], payload["resolution"]) == ("BTCUSDT", "1")
        assert payload["topic"] == 'bars:{"resolution":"1","symbol":"BTCUSDT"}'


@pytest.mark.parametrize("symbol", ["EUR%2FUSD", "EUR/USD"])
async def test_quotes_stream_of_a_symbol_with_a_slash(server: Server, symbol: str) -> None:
    async with connect(stream_url(server, f"quotes/{symbol}"), open_timeout=10) as ws:
        frame = orjson.loads(await ws.recv(decode=True))
    assert frame["type"] == "quotes.update"
    assert frame["payload"]["symbol"] == "EUR/USD"
    assert frame["payload"]["bid"] < frame["payload"]["ask"]


async def test_resolution_alias_and_ping_on_a_raw_stream(server: Server) -> None:
    async with connect(stream_url(server, "bars/ETHUSDT/1D"), open_timeout=10) as ws:
        await ws.send('{"type": "ping", "payload": {}, "id": "p"}')
        seen = [orjson.loads(await ws.recv(decode=True)) for _ in range(3)]
    assert {f["type"] for f in seen} <= {"bars.update", "pong"}
    assert any(f["type"] == "pong" and f["id"] == "p" for f in seen)
    updates = [f for f in seen if f["type"] == "bars.update"]
    assert all(f["payload"]["resolution"] == "D" for f in updates)


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("bars/NOPE/1", "unknown_symbol"),
        ("bars/BTCUSDT/7", "unsupported_resolution"),
        ("bars/btcusdt/1", "invalid_symbol"),
        ("quotes/NOPE", "unknown_symbol"),
    ],
)
async def test_a_stream_not_served_is_explained_then_closed(
    server: Server, path: str, code: str
) -> None:
    async with connect(stream_url(server, path), open_timeout=10) as ws:
        raw = await ws.recv(decode=True)
        validate_server_frame(raw)
        error = orjson.loads(raw)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert error["type"] == "error"
    assert error["payload"]["code"] == code
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4404
    assert closed.value.rcvd.reason == code


@pytest.mark.parametrize("path", ["stream/bars/BTCUSDT", "stream/ticks/BTCUSDT", "nope"])
async def test_a_path_that_names_no_stream_is_refused_at_the_handshake(
    server: Server, path: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{server.ws}/{path}", open_timeout=10):
            pass
    assert refused.value.response.status_code == 403
