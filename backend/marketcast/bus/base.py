"""The ``Bus`` seam: one worker publishes, every worker's hub receives."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from marketcast.market import BarKey, Candle
from marketcast.store.base import CandleStore
from marketcast.wire import Frame

#: Called for every frame the bus delivers to this worker; must not block.
FrameHandler = Callable[[Frame], None]


class Bus(Protocol):
    async def start(self, deliver: FrameHandler) -> None:
        """Begin delivering frames published by any worker to ``deliver``."""
        ...

    async def publish(self, frame: Frame) -> None: ...

    async def publish_stored(
        self, store: CandleStore, key: BarKey, candle: Candle, frame: Frame
    ) -> None:
        """Write ``candle`` to ``store``, then publish ``frame`` (its update).

        Why the bus does the write: the order "stored, then published" is what snapshot
        continuity relies on, and a bus on the store's Redis can keep it in one round trip
        instead of two per candle."""
        ...

    async def publish_stored_many(
        self, store: CandleStore, items: Sequence[tuple[BarKey, Candle, Frame]]
    ) -> None:
        """``publish_stored`` for each ``(key, candle, frame)``, in order: several keys moved
        by one upstream update. A bus on the store's Redis writes and publishes them in one
        round trip rather than one per candle. A failed store write raises; the candles
        before it may have been stored and published."""
        ...

    async def close(self) -> None: ...
