"""Acceptance 4: foreign origins and missing/bad tokens are refused at the handshake with 403
(never a 101), a good token is accepted with only the API subprotocol echoed, topic
authorization is a seam of ``create_app``, and no token ever reaches the server log."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from marketcast.ws.security import Principal
from tests.integration.harness import (
    Client,
    Server,
    client,
    in_process_server,
    run_server,
)

ORIGIN = "https://app.example.com"
TOKEN = "mc_live_9f8e7d6c5b4a39281706"
OTHER_TOKEN = "mc_live_0000000000000000"
GOOD = ["marketcast.v1", f"token.{TOKEN}"]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(
        tmp_path_factory.mktemp("secured"),
        allowed_origins=f"{ORIGIN},http://localhost:5173",
        auth_tokens=f"{OTHER_TOKEN},{TOKEN}",
        # The most talkative level short of uvicorn's raw-bytes trace: if a token leaked into
        # any log line, this is where it would show.
        log_level="debug",
        sim_speed=60,
        sim_tick_interval=0.05,
    ) as running:
        yield running


async def refused_status(server: Server, path: str = "", **options: object) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(server.ws + path, open_timeout=5, **options):  # type: ignore[arg-type]
            pass
    status: int = refused.value.response.status_code
    return status


@pytest.mark.parametrize(
    "origin",
    [
        "https://app.example.com.evil.net",
        "https://evil.net",
        "https://evilapp.example.com",
        "http://app.example.com",
        "https://app.example.com:8443",
        "http://localhost:5174",
        "null",
    ],
)
async def test_foreign_origin_gets_403(secured: Server, origin: str) -> None:
    assert await refused_status(secured, origin=origin, subprotocols=GOOD) == 403


async def test_raw_handshake_from_foreign_origin_is_never_101(secured: Server) -> None:
    """The same check below any client library: the status line of the raw HTTP answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", secured.port)
    writer.write(
        (
            "GET /api/v1/ws HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{secured.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            "Origin: https://app.example.com.evil.net\r\n"
            f"Sec-WebSocket-Protocol: marketcast.v1, token.{TOKEN}\r\n\r\n"
        ).encode()
    )
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 403"), status_line


@pytest.mark.parametrize(
    "subprotocols",
    [
        None,
        ["marketcast.v1"],
        ["marketcast.v1", "token.wrong-token"],
        ["marketcast.v1", f"token.{TOKEN}x"],
        [f"token.{TOKEN}"],  # without the API subprotocol the token would have to be echoed
    ],
)
async def test_missing_or_bad_token_is_refused(
    secured: Server, subprotocols: list[str] | None
) -> None:
    options = {"origin": ORIGIN} | ({"subprotocols": subprotocols} if subprotocols else {})
    assert await refused_status(secured, **options) == 403


async def test_token_in_query_string_is_not_accepted(secured: Server) -> None:
    assert await refused_status(secured, f"?token={TOKEN}", origin=ORIGIN) == 403


async def test_good_token_is_accepted_and_only_the_api_subprotocol_echoed(
    secured: Server,
) -> None:
    for options in ({"origin": ORIGIN}, {}):  # a non-browser client sends no Origin
        async with client(secured, subprotocols=GOOD, **options) as c:
            assert c.connection.subprotocol == "marketcast.v1"
            assert c.connection.response is not None
            assert TOKEN not in str(c.connection.response.headers)
            reply = await c.subscribe_bars("BTCUSDT", "1")
            assert reply["payload"]["status"] == "ok"
            assert (await c.recv())["type"] == "bars.update"


async def test_the_token_never_reaches_the_log(secured: Server) -> None:
    # Every path a token can take: good, bad, in a query string, with a foreign origin.
    async with client(secured, subprotocols=GOOD, origin=ORIGIN) as c:
        assert (await c.request("ping"))["type"] == "pong"
    await refused_status(secured, f"?token={TOKEN}", origin=ORIGIN)
    await refused_status(secured, origin="https://evil.net", subprotocols=GOOD)
    await refused_status(secured, origin=ORIGIN, subprotocols=["marketcast.v1", "token.nope"])
    # Three refused handshakes: wait for their three access lines rather than a fixed time.
    log = await secured.wait_for_log(lambda text: text.count('" 403') >= 3)
    assert "handshake refused" in log
    assert '"WebSocket /api/v1/ws?token=[redacted]" 403' in log
    # At debug level the WebSocket layer logs every handshake header: redacted, not absent.
    assert "sec-websocket-protocol: marketcast.v1, token.[redacted]" in log.lower()
    assert "as token#2" in log, "the accepted connection is logged by principal, not token"
    assert TOKEN not in log
    assert "nope" not in log


# ---- the authorization seam: create_app(authorize_topic=...) under a real uvicorn -------


async def test_topic_authorization_hook_refuses_with_forbidden() -> None:
    decisions: list[tuple[str, str, str]] = []

    async def verify(token: str) -> Principal | None:
        return {"alice-key": Principal("alice"), "bob-key": Principal("bob")}.get(token)

    def authorize(principal: Principal, route: str, topic: str) -> bool:
        decisions.append((principal.subject, route, topic))
        return principal.subject == "alice" or route != "quotes"

    async with in_process_server(
        {"sim_speed": 60}, authorize_topic=authorize, token_verifier=verify
    ) as server:
        bob_protocols = ["marketcast.v1", "token.bob-key"]
        async with connect(server.ws, subprotocols=bob_protocols) as bob_ws:  # type: ignore[list-item]
            bob = Client(bob_ws)
            denied = await bob.request("quotes.subscribe", {"symbol": "BTCUSDT", "params": {}})
            assert denied["type"] == "error"
            assert denied["payload"]["code"] == "forbidden"
            assert denied["payload"]["request_type"] == "quotes.subscribe"
            allowed = await bob.subscribe_bars("BTCUSDT", "1")
            assert allowed["payload"]["status"] == "ok"
        async with connect(server.ws, subprotocols=["marketcast.v1", "token.alice-key"]) as ws:  # type: ignore[list-item]
            alice = Client(ws)
            reply = await alice.request("quotes.subscribe", {"symbol": "BTCUSDT", "params": {}})
            assert reply["payload"]["status"] == "ok"
        async with httpx.AsyncClient() as http:
            ready = await http.get(f"{server.http}/readyz")
            assert ready.status_code == 200
    assert ("bob", "quotes", 'quotes:{"symbol":"BTCUSDT"}') in decisions
    assert ("alice", "quotes", 'quotes:{"symbol":"BTCUSDT"}') in decisions
