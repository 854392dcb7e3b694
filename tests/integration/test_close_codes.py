"""Closes the application does not send itself still count under their own code in /metrics:
the WebSocket layer's keepalive timeout (1011) and connections turned away at the cap (1013)
— not as ``peer`` (issue 19, item 7)."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from collections.abc import Callable, Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from tests.integration.harness import Server, client, run_server
from tests.integration.test_metrics import Samples, scrape, value

CLOSED = "marketcast_ws_connections_closed_total"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(
        tmp_path_factory.mktemp("server"),
        ws_ping_interval=0.5,
        ws_ping_timeout=0.5,
        max_connections=1,
    ) as running:
        yield running


def handshake(port: int) -> socket.socket:
    """A WebSocket that completes its handshake and then never reads again (so never answers
    a ping) — a peer gone silent, as far as the server can tell."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            "GET /api/v1/ws HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        assert chunk, "closed during the handshake"
        response += chunk
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


async def wait_for(
    server: Server, done: Callable[[Samples], bool], within: float = 30.0
) -> Samples:
    """Scrape until ``done(samples)`` holds, for at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        samples = await scrape(server)
        if done(samples):
            return samples
        assert time.monotonic() < deadline, "the metrics never showed it"
        await asyncio.sleep(0.1)


async def test_a_keepalive_timeout_counts_as_1011_not_peer(server: Server) -> None:
    before = await scrape(server)
    silent = handshake(server.port)
    try:
        after = await wait_for(
            server,
            lambda s: value(s, CLOSED, code="1011") > value(before, CLOSED, code="1011"),
        )
    finally:
        silent.close()
    assert value(after, CLOSED, code="1011") == value(before, CLOSED, code="1011") + 1
    assert value(after, CLOSED, code="peer") == value(before, CLOSED, code="peer")


async def test_a_connection_turned_away_at_the_cap_counts_as_1013(server: Server) -> None:
    await wait_for(server, lambda s: value(s, "marketcast_ws_connections") == 0)
    before = await scrape(server)
    async with client(server) as first:
        await first.request("ping")
        async with client(server) as second:
            with pytest.raises(ConnectionClosed) as refused:
                await second.recv()
        assert refused.value.rcvd is not None
        assert refused.value.rcvd.code == 1013
        after = await scrape(server)
    assert value(after, CLOSED, code="1013") == value(before, CLOSED, code="1013") + 1
