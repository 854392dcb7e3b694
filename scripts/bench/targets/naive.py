"""Baseline: FastAPI + uvicorn with the naive fan-out loop, ``await ws.send_text`` per client.

The simplest thing a FastAPI application can do: keep a set of sockets per topic and await
each send in turn. Fast while every client reads, and one stalled client blocks the publisher
(and so every other client) once its buffers are full.
"""

from __future__ import annotations

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from ..common import WS_PATH, symbol, topic_of, update_frame
from . import versions
from .replies import subscribe_reply
from .uvicorn_host import UvicornHost, UvicornServed


class NaiveTarget(UvicornServed):
    name = "naive"

    def __init__(self, topics: int) -> None:
        self.source = versions("fastapi", "uvicorn")
        self.symbols = [symbol(i) for i in range(topics)]
        self.topics = [topic_of(s) for s in self.symbols]
        self.subscribers: dict[str, set[WebSocket]] = {t: set() for t in self.topics}
        self.send_errors = 0
        app = FastAPI()
        app.add_api_websocket_route(WS_PATH, self.endpoint)
        self.host = UvicornHost(app, lifespan="off")

    async def endpoint(self, ws: WebSocket) -> None:
        await ws.accept()
        mine: list[str] = []
        try:
            while True:
                text, topic = subscribe_reply(await ws.receive_text(), self.subscribers)
                if topic is not None:
                    self.subscribers[topic].add(ws)
                    mine.append(topic)
                await ws.send_text(text)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            for topic in mine:
                self.subscribers[topic].discard(ws)

    async def publish(self, index: int, bar_time: int, stamp_us: int) -> None:
        topic = self.topics[index]
        text = update_frame(topic, self.symbols[index], bar_time, stamp_us).decode()
        for ws in tuple(self.subscribers[topic]):
            try:
                await ws.send_text(text)
            except Exception:
                self.send_errors += 1
                self.subscribers[topic].discard(ws)
