"""The in-process bus: a direct call, for a single worker."""

from __future__ import annotations

from collections.abc import Sequence

from marketcast.bus.base import FrameHandler
from marketcast.market import BarKey, Candle
from marketcast.store.base import CandleStore
from marketcast.store.memory import MemoryCandleStore
from marketcast.wire import Frame


class MemoryBus:
    """Delivers each published frame to this process's hub, synchronously.

    Synchronous delivery keeps the single-worker path free of extra queues and task
    switches: publishing an update costs one call per subscriber outbox.
    """

    def __init__(self) -> None:
        self._deliver: FrameHandler | None = None

    async def start(self, deliver: FrameHandler) -> None:
        self._deliver = deliver

    async def publish(self, frame: Frame) -> None:
        self.publish_local(frame)

    def publish_local(self, frame: Frame) -> None:
        if self._deliver is not None:
            self._deliver(frame)

    async def publish_stored_many(
        self, store: CandleStore, items: Sequence[tuple[BarKey, Candle, Frame]]
    ) -> None:
        if type(self) is MemoryBus and type(store) is MemoryCandleStore:
            # The same steps without a coroutine per candle: each candle stored, then
            # delivered, in order (neither method is overridden on these exact types).
            put, deliver = store.put, self._deliver
            for key, candle, frame in items:
                put(key, candle)
                if deliver is not None:
                    deliver(frame)
            return
        for key, candle, frame in items:
            await store.upsert(key, candle)
            await self.publish(frame)

    async def close(self) -> None:
        self._deliver = None
