"""Baseline: stock FastWS 0.1.7 on FastAPI + uvicorn, publishing with ``FastWS.broadcast``.

Written as fastws documents it: a ``send`` operation with a ``reply`` for subscribing (the
handler calls ``client.subscribe(topic)``), the endpoint ``Depends(service.manage)`` then
``service.serve(client)``, and ``await service.broadcast(topic, message)`` for each update,
where ``message`` is a pydantic model serialised once by ``broadcast``. ``broadcast`` scans
every connection and awaits all sends in one task group.

No ``from __future__ import annotations`` here: FastAPI and fastws read the handlers'
annotations at run time, and string annotations could not name the closure's ``service``.
"""

from typing import Annotated, Literal

from fastapi import Depends, FastAPI
from fastws import Client, FastWS
from pydantic import BaseModel

from ..common import PRICES, RESOLUTION, WS_PATH, symbol, topic_of
from . import versions
from .uvicorn_host import UvicornHost, UvicornServed


class SubscribeParams(BaseModel):
    resolution: str


class SubscribePayload(BaseModel):
    symbol: str
    params: SubscribeParams


class SubscribeResponse(BaseModel):
    status: str
    symbol: str
    message: str
    topic: str


class Bar(BaseModel):
    topic: str
    symbol: str
    resolution: str
    time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    closed: bool


class BarUpdate(BaseModel):
    type: Literal["bars.update"] = "bars.update"
    payload: Bar


async def subscribe(payload: SubscribePayload, client: Client) -> SubscribeResponse:
    """Subscribe the client to the bars topic of a symbol."""
    topic = topic_of(payload.symbol)
    client.subscribe(topic)
    return SubscribeResponse(status="ok", symbol=payload.symbol, message="subscribed", topic=topic)


class FastWSTarget(UvicornServed):
    name = "fastws"

    def __init__(self, topics: int) -> None:
        self.source = versions("fastws", "fastapi", "uvicorn")
        self.symbols = [symbol(i) for i in range(topics)]
        self.topics = [topic_of(s) for s in self.symbols]
        self.send_errors = 0
        service = FastWS(title="bench", asyncapi_url=None, asyncapi_docs_url=None)
        service.send("bars.subscribe", reply="bars.subscribe.response")(subscribe)
        self.service = service

        async def endpoint(client: Annotated[Client, Depends(service.manage)]) -> None:
            await service.serve(client)

        app = FastAPI()
        app.add_api_websocket_route(WS_PATH, endpoint)
        self.host = UvicornHost(app, lifespan="off")

    async def publish(self, index: int, bar_time: int, stamp_us: int) -> None:
        open_, high, low, close = PRICES
        bar = Bar(
            topic=self.topics[index],
            symbol=self.symbols[index],
            resolution=RESOLUTION,
            time=bar_time,
            open=open_,
            high=high,
            low=low,
            close=close,
            volume=float(stamp_us),
            closed=True,
        )
        try:
            await self.service.broadcast(self.topics[index], BarUpdate(payload=bar))
        except Exception:  # one failed send cancels the whole broadcast (an ExceptionGroup)
            self.send_errors += 1
