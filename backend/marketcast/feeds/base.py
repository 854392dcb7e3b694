"""The ``Feed`` seam: where candles and quotes enter marketcast."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from marketcast.book.binance_sync import Applied, Reset
from marketcast.errors import ServiceUnavailable
from marketcast.market import BarKey, Candle, Quote, StreamKey, SymbolInfo
from marketcast.types import Millis, Symbol


class FeedSink(Protocol):
    """Where a feed delivers normalised data. The stream manager implements it.

    A feed awaits each call, so a slow sink slows the feed rather than growing a queue.
    """

    async def on_candle(self, key: BarKey, candle: Candle) -> None: ...

    async def on_backfill(self, key: BarKey, candles: Sequence[Candle]) -> None:
        """Closed bars of a past stretch nobody watched (ascending), to store but not publish.

        Why not ``on_candle``: live updates are for what happens now. A re-watched key's
        missed buckets can be a day of bars, and sent live they would bury its subscribers;
        they belong in the history that snapshots and ``since`` replies read. Feeds that fill
        their gaps from upstream in order (Binance, Twelve Data) need not call it."""
        ...

    async def on_quote(self, symbol: Symbol, quote: Quote) -> None: ...

    async def on_book(self, symbol: Symbol, change: Applied | Reset) -> None:
        """A change of ``symbol``'s order book, joined to its upstream by update ids
        (``book.binance_sync``): a diff applied, or the whole book after a (re)join."""
        ...

    async def on_event(self, key: StreamKey, event: object) -> None:
        """One upstream event of a key of a family without history rules of its own (a
        trade): the key's channel declaration turns it into its update. Events of one key
        arrive in upstream order; the sink drops repeats the family can recognise."""
        ...


class Feed(Protocol):
    """One upstream provider (or the simulator)."""

    #: Short name shown in ``/api/v1/market-data/symbols`` as the symbol's ``source``.
    name: str

    def symbols(self) -> Sequence[SymbolInfo]:
        """The symbols this feed serves, with their resolutions."""
        ...

    async def start(self, sink: FeedSink) -> None:
        """Begin delivering data for watched keys to ``sink``."""
        ...

    async def close(self) -> None:
        """Stop every task and connection; idempotent."""
        ...

    async def watch(self, key: StreamKey) -> None:
        """Start delivering ``key``; called once per key by the stream manager."""
        ...

    async def unwatch(self, key: StreamKey) -> None:
        """Stop delivering ``key``."""
        ...

    async def fetch_history(self, key: BarKey, end: Millis | None, limit: int) -> list[Candle]:
        """The most recent ``limit`` candles opening before ``end`` (None: up to now,
        including the still-open bar), ascending by time."""
        ...


def log_sink_failure(log: logging.Logger, what: str, exc: BaseException) -> None:
    """A feed's sink refused an update (``what``): say so, and go on with the other keys.

    A store outage (``ServiceUnavailable``) is an expected, documented state that the health
    probe already reports: one line per update lost, no traceback. Anything else is a bug
    and gets its traceback."""
    if isinstance(exc, ServiceUnavailable):
        log.warning("sink failed to take %s: %s", what, exc)
    else:
        log.error("sink failed to take %s", what, exc_info=exc)
