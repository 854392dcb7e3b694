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

    def publish_local(self, frame: Frame) -> None:
        """Deliver ``frame`` to this worker's hub only, now: an update every worker builds
        for itself (an order book's frames, from the changes relayed to all of them:
        ``cluster.book_relay``)."""
        ...

    async def publish_stored_many(
        self, store: CandleStore, items: Sequence[tuple[BarKey, Candle, Frame]]
    ) -> None:
        """Write each ``(key, candle)`` to ``store``, then publish its ``frame``, in order:
        the keys one upstream update moved, or one.

        Why the bus does the write: the order "stored, then published" is what snapshot
        continuity relies on, and a bus on the store's Redis keeps it in one round trip for
        many candles instead of two per candle. A failed store write raises; candles before
        it may have been stored and published."""
        ...

    async def close(self) -> None: ...
