"""Serving an ASGI app with uvicorn inside the benchmark's server process.

All three ASGI targets (marketcast and the two FastAPI baselines) are served with the same
uvicorn options, which are the ones ``marketcast serve`` uses: the ``websockets-sansio``
WebSocket implementation, protocol pings every 20 s and 64 KiB frames at most. Only the log
level differs from production (warning: a log line per accepted connection would be measured
in the idle scenarios, and it is the same for every target), and marketcast's WebSocket
protocol class and permessage-deflate switch are the ones ``marketcast serve`` uses
(``targets.marketcast``); the baselines keep uvicorn's (which accepts a deflate offer and
compresses per connection; they do not run the deflate scenarios). ``Server.serve`` runs on the
event loop of the benchmark's server process — asyncio's own unless ``--loop uvloop`` — for
every target alike; uvicorn's ``loop`` option only matters to ``Server.run``, which is not
used. The HTTP parser is uvicorn's default, the same for every target.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any, Literal

import uvicorn

#: Listen backlog: thousands of clients connect at once in the idle scenarios.
BACKLOG = 4096
MAX_MESSAGE_BYTES = 65_536


class UvicornHost:
    """One ``uvicorn.Server`` serving ``app`` on a socket it is handed."""

    def __init__(
        self,
        app: Any,
        *,
        lifespan: Literal["on", "off"],
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        ping_interval: float = 20.0,
        ping_timeout: float = 20.0,
        ws: Any = "websockets-sansio",
        per_message_deflate: bool = True,
    ) -> None:
        self.config = uvicorn.Config(
            app,
            ws=ws,
            ws_per_message_deflate=per_message_deflate,
            ws_max_size=max_message_bytes,
            ws_ping_interval=ping_interval,
            ws_ping_timeout=ping_timeout,
            loop="asyncio",
            lifespan=lifespan,
            log_level="warning",
            backlog=BACKLOG,
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(self.config)

    async def serve(self, sock: socket.socket, on_ready: Callable[[], None]) -> None:
        task = asyncio.create_task(self.server.serve(sockets=[sock]))
        while not self.server.started:
            if task.done():
                await task  # raises whatever stopped the start-up
                raise RuntimeError("uvicorn returned before it started serving")
            await asyncio.sleep(0.01)
        on_ready()
        await task

    def stop(self) -> None:
        self.server.should_exit = True


class UvicornServed:
    """The ``serve``/``stop`` half of a target whose app runs on a ``UvicornHost``."""

    host: UvicornHost

    async def serve(self, sock: socket.socket, on_ready: Callable[[], None]) -> None:
        await self.host.serve(sock, on_ready)

    def stop(self) -> None:
        self.host.stop()
