"""A throwaway channel family, ``ticks``, declared outside the package, and a fake source.

``tests/integration/test_channel_declaration.py`` renders it with the project's generators into
a temporary tree and serves it: nothing in ``backend/``, ``scripts/`` or ``frontend-types/``
names it. That is the claim of ``marketcast.channels``: a family is one declaration.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from pydantic import Field

from marketcast.channels.base import Docs, Family, Models, Registry
from marketcast.channels.registry import default_registry
from marketcast.feeds.base import FeedSink
from marketcast.market import BarKey, Candle, StreamKey, SymbolInfo
from marketcast.protocol import ClientModel, Reply, ServerModel, SymbolField
from marketcast.types import Millis, Topic
from marketcast.wire import Frame, envelope

ROUTE: Final = "ticks"
#: Where the test renders this family's router (a package on ``sys.path`` in a temp tree).
ROUTER_PACKAGE: Final = "marketcast_fixture_routers"
SYMBOL: Final = "TICK1"


@dataclass(frozen=True, slots=True)
class TickKey(StreamKey):
    """One tick stream: a symbol."""


@dataclass(frozen=True, slots=True)
class Tick:
    seq: int
    value: float


class TicksParams(ClientModel):
    """Topic parameters of the ``ticks`` route (none)."""


class TicksSubscribePayload(ClientModel):
    """Subscribe to a symbol's ticks."""

    symbol: SymbolField
    params: TicksParams = Field(default_factory=TicksParams)


class TicksUnsubscribePayload(ClientModel):
    """Stop receiving a symbol's ticks."""

    symbol: SymbolField
    params: TicksParams = Field(default_factory=TicksParams)


class TicksSubscribeResponsePayload(Reply):
    """Reply to ``ticks.subscribe``."""


class TicksUnsubscribeResponsePayload(Reply):
    """Reply to ``ticks.unsubscribe``."""


class TicksUpdatePayload(ServerModel):
    """One tick."""

    topic: str
    symbol: str
    seq: int
    value: float


_TOPIC = 'ticks:{"symbol":"TICK1"}'
_PARAMS = {"symbol": SYMBOL, "params": {}}
_OK = {"status": "ok", "symbol": SYMBOL}


class TicksFamily(Family):
    route: ClassVar[str] = ROUTE
    key_type: ClassVar[type[StreamKey]] = TickKey
    models: ClassVar[Models] = Models(
        params=TicksParams,
        subscribe=TicksSubscribePayload,
        subscribe_response=TicksSubscribeResponsePayload,
        unsubscribe=TicksUnsubscribePayload,
        unsubscribe_response=TicksUnsubscribeResponsePayload,
        update=TicksUpdatePayload,
    )
    models_module: ClassVar[str | None] = __name__
    router_module: ClassVar[str | None] = f"{ROUTER_PACKAGE}.{ROUTE}"
    docs: ClassVar[Docs] = Docs(
        description="a test's ticks.",
        channel="Ticks of a fake source.",
        subscribe_summary="Receive a symbol's ticks.",
        subscribe_description="Subscribe to the topic of a symbol's ticks.",
        update_noun="ticks",
        update_summary="A tick.",
        update_description="Sent once per tick.",
        slow_client="A newer tick replaces an older one in a slow client's queue.",
        raw_summary="ticks.update for this symbol.",
        examples={
            "ticks.subscribe": {"type": "ticks.subscribe", "id": 1, "payload": _PARAMS},
            "ticks.subscribe.response": {
                "type": "ticks.subscribe.response",
                "id": 1,
                "payload": {**_OK, "message": "subscribed", "topic": _TOPIC},
            },
            "ticks.unsubscribe": {"type": "ticks.unsubscribe", "id": 2, "payload": _PARAMS},
            "ticks.unsubscribe.response": {
                "type": "ticks.unsubscribe.response",
                "id": 2,
                "payload": {**_OK, "message": "unsubscribed", "topic": _TOPIC},
            },
            "ticks.update": {
                "type": "ticks.update",
                "payload": {"topic": _TOPIC, "symbol": SYMBOL, "seq": 1, "value": 1.5},
            },
        },
    )

    def update(self, topic: Topic, key: StreamKey, event: object) -> Frame:
        assert isinstance(event, Tick)
        payload: dict[str, Any] = {
            "topic": topic,
            "symbol": key.symbol,
            "seq": event.seq,
            "value": event.value,
        }
        return Frame(envelope(f"{ROUTE}.update", payload), topic)


def registry() -> Registry:
    """Every shipped family plus ``ticks`` (the generators' ``--channels`` reference)."""
    return Registry((*default_registry(), TicksFamily()))


class TickFeed:
    """A fake source of one symbol's ticks: one tick per ``interval`` while watched."""

    name = "ticks-fake"

    def __init__(self, interval: float = 0.02) -> None:
        self._interval = interval
        self._sink: FeedSink | None = None
        self._tasks: dict[StreamKey, asyncio.Task[None]] = {}

    def symbols(self) -> Sequence[SymbolInfo]:
        return [SymbolInfo(SYMBOL, "test", self.name, (), frozenset({TickKey}))]

    async def start(self, sink: FeedSink) -> None:
        self._sink = sink

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()

    async def watch(self, key: StreamKey) -> None:
        self._tasks[key] = asyncio.create_task(self._run(key))

    async def unwatch(self, key: StreamKey) -> None:
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()

    async def fetch_history(self, key: BarKey, end: Millis | None, limit: int) -> list[Candle]:
        return []

    async def _run(self, key: StreamKey) -> None:
        assert self._sink is not None
        seq = 0
        while True:
            seq += 1
            await self._sink.on_event(key, Tick(seq, seq / 2))
            await asyncio.sleep(self._interval)
