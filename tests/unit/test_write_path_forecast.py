"""The startup forecast of the write path (``delivery.direct.startup_write_path``), read from a
protocol class's code: the attributes ``open_direct`` needs, assigned or not."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from marketcast.delivery.direct import startup_write_path


class Moved:
    """An imagined uvicorn release that renamed its flow-control event and its flags."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.conn: Any = None
        self.can_write = asyncio.Event()

    def connection_made(self, transport: Any) -> None:
        def remember() -> None:  # assigned in a nested function: still found
            self.close_sent = False

        remember()
        self.transport = transport


def test_uvicorns_sansio_protocol_allows_the_direct_path() -> None:
    direct, line = startup_write_path(WebSocketsSansIOProtocol, per_message_deflate=False)
    assert direct
    assert line == "WebSocket write path: direct to uvicorn's transport (WebSocketsSansIOProtocol)"


def test_deflate_is_named_and_keeps_the_direct_path() -> None:
    direct, line = startup_write_path(WebSocketsSansIOProtocol, per_message_deflate=True)
    assert direct
    assert line.endswith(
        ", permessage-deflate offered (each frame compressed once for every client)"
    )


def test_a_protocol_without_the_attributes_falls_back_and_says_which() -> None:
    direct, line = startup_write_path(Moved, per_message_deflate=False)
    assert not direct
    assert line.startswith("WebSocket write path: ASGI send for every frame")
    assert "uvicorn's Moved has no 'writable', 'disconnected';" in line
    direct, line = startup_write_path(None, per_message_deflate=False)
    assert not direct
    assert "'transport', 'writable', 'conn', 'close_sent', 'disconnected'" in line
