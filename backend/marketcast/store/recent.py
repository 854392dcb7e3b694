"""The ``RecentStore`` seam: the newest events per stream, for families with ``History.RECENT``
(``trades``), and its in-memory implementation."""

from __future__ import annotations

from collections import deque
from typing import Protocol

from marketcast.market import RecentRecord


class RecentStore(Protocol):
    """At most ``keep`` records per stream name, strictly increasing by ``order``."""

    async def append(self, name: str, record: RecentRecord, keep: int) -> None:
        """Keep ``record`` unless its order is not newer than the newest kept (a repeat)."""
        ...

    async def last(self, name: str, count: int) -> list[RecentRecord]:
        """The newest ``count`` records, oldest first."""
        ...

    async def close(self) -> None: ...


class MemoryRecentStore:
    """``RecentStore`` in this process: a bounded deque per stream."""

    def __init__(self) -> None:
        self._streams: dict[str, deque[RecentRecord]] = {}

    async def append(self, name: str, record: RecentRecord, keep: int) -> None:
        kept = self._streams.get(name)
        if kept is None or kept.maxlen != keep:
            kept = self._streams[name] = deque(kept or (), maxlen=keep)
        if kept and kept[-1].order >= record.order:
            return
        kept.append(record)

    async def last(self, name: str, count: int) -> list[RecentRecord]:
        kept = self._streams.get(name)
        if not kept or count <= 0:
            return []
        return list(kept)[-count:]

    async def close(self) -> None:
        self._streams.clear()
