"""The ``Ownership`` seam: which worker runs a key upstream.

The stream manager counts local demand for a key (its subscribers) and tells the ownership
when a key becomes wanted or unwanted here; the ownership decides when this worker starts and
stops the key upstream, through the ``Upstream`` calls the stream manager provides.

``LocalOwnership`` — the default — owns every key it is asked for, at once: a single worker
behaves exactly as it would without the seam. ``leases.RedisOwnership`` owns a key only while
it holds the key's lease in Redis, so one worker in the cluster ingests each key.
"""

from __future__ import annotations

from typing import Protocol

from marketcast.market import StreamKey, SymbolInfo
from marketcast.types import Symbol, Topic


class Upstream(Protocol):
    """What an ownership drives: implemented by ``StreamManager``."""

    def symbol_info(self, symbol: Symbol) -> SymbolInfo | None: ...

    def topic(self, key: StreamKey) -> Topic: ...

    async def start_upstream(self, key: StreamKey) -> None:
        """Watch ``key`` at its feed: from now on this worker ingests it."""
        ...

    async def stop_upstream(self, key: StreamKey) -> None:
        """Stop watching ``key``."""
        ...

    def serves(self, key: StreamKey) -> bool:
        """Whether a feed serves ``key`` (its symbol, its family, its params)."""
        ...

    def key_id(self, key: StreamKey) -> str:
        """The key's name in Redis (``channels.Registry.key_id``)."""
        ...

    def parse_key_id(self, text: str) -> StreamKey | None:
        """The key a name stands for; None if this version does not know it."""
        ...

    async def catch_up(self, key: StreamKey) -> bool:
        """Before ``start_upstream``: store what the feed has since the newest stored element,
        if the key's family keeps a history the feed can fill; whether it did (then the
        workers resync the key's clients from the store)."""
        ...


class Ownership(Protocol):
    @property
    def ingests_all(self) -> bool:
        """True when ``ingests`` is true of every key whatever happens (no other worker to
        defer to): the candle path then does not ask it for each candle."""
        ...

    def bind(self, upstream: Upstream) -> None:
        """Called once by the stream manager with itself."""
        ...

    async def start(self) -> None:
        """Begin background work (after the feeds started)."""
        ...

    async def want(self, key: StreamKey) -> None:
        """This worker has subscribers for ``key`` (called once per start of the key)."""
        ...

    async def unwant(self, key: StreamKey) -> None:
        """This worker no longer has subscribers for ``key``."""
        ...

    def owned(self) -> list[StreamKey]:
        """The keys this worker runs upstream now."""
        ...

    def ingests(self, key: StreamKey) -> bool:
        """Whether feed data of ``key`` may be stored and published now: asked for every
        candle (unless ``ingests_all``) and quote, so it must answer from memory, without
        awaiting."""
        ...

    async def close(self) -> None: ...


class LocalOwnership:
    """Every wanted key is ours: a single worker, or workers that do not coordinate."""

    @property
    def ingests_all(self) -> bool:
        """Unless a subclass answers ``ingests`` itself: derived, so that such a subclass
        cannot forget to say so and have candles skip its answer."""
        return type(self).ingests is LocalOwnership.ingests

    def __init__(self) -> None:
        self._upstream: Upstream | None = None
        self._owned: dict[StreamKey, None] = {}

    def bind(self, upstream: Upstream) -> None:
        self._upstream = upstream

    async def start(self) -> None:
        pass

    async def want(self, key: StreamKey) -> None:
        await self._bound().start_upstream(key)
        self._owned[key] = None

    async def unwant(self, key: StreamKey) -> None:
        self._owned.pop(key, None)
        await self._bound().stop_upstream(key)

    def owned(self) -> list[StreamKey]:
        return list(self._owned)

    def ingests(self, key: StreamKey) -> bool:
        """Always: with no other worker, whatever a feed delivers is this worker's to ingest
        (and tests drive ``on_candle`` without starting keys)."""
        return True

    async def close(self) -> None:
        """The feeds are closed right after; nothing to release."""
        self._owned.clear()

    def _bound(self) -> Upstream:
        if self._upstream is None:
            raise RuntimeError("LocalOwnership used before StreamManager bound it")
        return self._upstream
