"""Baseline: a bare ``websockets`` server fanning out with the library's ``broadcast()``.

``broadcast`` writes the frame synchronously into every open connection's buffer and never
waits; it has no backpressure (a stalled client's buffer grows until the ping timeout closes
it), which makes it fast and a useful upper reference for "pure Python fan-out".

Compression is the library's default, stated: ``compression="deflate"`` accepts a client's
permessage-deflate offer (12-bit windows, memLevel 5) and ``broadcast`` then compresses the
frame again for every connection that negotiated it — the per-connection deflate the deflate
scenarios compare marketcast with. Clients that offer nothing get plain frames.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

from ..books import LevelsFrames
from ..common import WS_PATH, BookFrames, symbol, topic_of, update_frame
from . import FRAMES, versions
from .replies import subscribe_reply
from .uvicorn_host import BACKLOG, MAX_MESSAGE_BYTES


class WebsocketsTarget:
    name = "websockets"

    def __init__(self, topics: int, frame: str = "bar") -> None:
        if frame not in FRAMES:
            raise ValueError(f"unknown frame kind {frame!r}")
        self.source = versions("websockets")
        self.symbols = [symbol(i) for i in range(topics)]
        self.books = BookFrames(topics) if frame == "book" else None
        #: ``book_levels``: the order books, their levels frames and subscribe replies.
        self.levels = LevelsFrames(topics) if frame == "levels" else None
        self.topics = self.levels.topics if self.levels else [topic_of(s) for s in self.symbols]
        self.subscribers: dict[str, set[ServerConnection]] = {t: set() for t in self.topics}
        self._stop = asyncio.Event()

    def encode(self, index: int, bar_time: int, stamp_us: int) -> bytes:
        """The update's JSON text: a bar, in the deflate scenarios a book frame, in
        ``book_levels`` the symbol's book updated and its best levels (``books``)."""
        if self.levels is not None:
            return self.levels.frame(index, bar_time, stamp_us)
        if self.books is not None:
            return self.books.frame(index, bar_time, stamp_us)
        return update_frame(self.topics[index], self.symbols[index], bar_time, stamp_us)

    def subscribed(self, topic: str, ws: ServerConnection) -> None:
        self.subscribers[topic].add(ws)

    def unsubscribed(self, topic: str, ws: ServerConnection) -> None:
        self.subscribers[topic].discard(ws)

    async def handler(self, ws: ServerConnection) -> None:
        if ws.request is None or ws.request.path != WS_PATH:
            await ws.close(1008, "unknown path")
            return
        mine: list[str] = []
        try:
            async for message in ws:
                if self.levels is not None:
                    text, topic = self.levels.subscribe_reply(message, self.subscribers)
                else:
                    text, topic = subscribe_reply(message, self.subscribers)
                if topic is not None:
                    self.subscribed(topic, ws)
                    mine.append(topic)
                await ws.send(text)
        except ConnectionClosed:
            pass
        finally:
            for topic in mine:
                self.unsubscribed(topic, ws)

    async def serve(self, sock: socket.socket, on_ready: Callable[[], None]) -> None:
        async with serve(
            self.handler,
            sock=sock,
            ping_interval=20.0,
            ping_timeout=20.0,
            max_size=MAX_MESSAGE_BYTES,
            backlog=BACKLOG,
            compression="deflate",
        ):
            on_ready()
            await self._stop.wait()

    def stop(self) -> None:
        self._stop.set()

    async def publish(self, index: int, bar_time: int, stamp_us: int) -> None:
        frame = self.encode(index, bar_time, stamp_us)
        broadcast(self.subscribers[self.topics[index]], frame, text=True)
