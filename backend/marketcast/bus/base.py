"""The ``Bus`` seam: one worker publishes, every worker's hub receives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from marketcast.wire import Frame

#: Called for every frame the bus delivers to this worker; must not block.
FrameHandler = Callable[[Frame], None]


class Bus(Protocol):
    async def start(self, deliver: FrameHandler) -> None:
        """Begin delivering frames published by any worker to ``deliver``."""
        ...

    async def publish(self, frame: Frame) -> None: ...

    async def close(self) -> None: ...
