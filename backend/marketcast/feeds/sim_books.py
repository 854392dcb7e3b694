"""The simulator's order books: a plausible book per symbol around its price walk, sent through
the same join as Binance's diff stream.

Why through ``BinanceBookSync`` when the simulator knows its book: the served path is then the
real one — a snapshot by ``lastUpdateId``, each step a ``depthUpdate`` checked for continuity by
``U``/``u`` — so what clients of the simulator get, and what the tests see, is what a Binance
book goes through (``book.sim_book`` writes the same decimal strings Binance does).

A symbol's book exists while one of its book keys is watched; a re-watch starts a new book
(a reset for its clients), as a reconnect to Binance would.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from marketcast.book.binance_sync import (
    Applied,
    BinanceBookSync,
    NeedSnapshot,
    Reset,
    parse_depth_snapshot,
    parse_depth_update,
)
from marketcast.book.sim_book import SimBook, increment
from marketcast.types import Symbol

#: What a book hands the stream manager: a diff applied, or the whole book (again).
BookChange = Applied | Reset


@dataclass(slots=True)
class _Running:
    book: SimBook
    sync: BinanceBookSync


class SimBooks:
    """The books of the symbols whose book keys the simulator watches."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._running: dict[Symbol, _Running] = {}

    def running(self, symbol: Symbol) -> bool:
        return symbol in self._running

    def start(
        self, symbol: Symbol, price: float, decimals: int, size_decimals: int
    ) -> list[BookChange]:
        """A new book around ``price`` with the instrument's increments; its first reset."""
        seed = zlib.crc32(f"{self._seed}:{symbol}".encode())
        book = SimBook(
            symbol, price, tick=increment(decimals), lot=increment(size_decimals), seed=seed
        )
        running = self._running[symbol] = _Running(book, BinanceBookSync(symbol))
        return self._join(running)

    def stop(self, symbol: Symbol) -> None:
        self._running.pop(symbol, None)

    def step(self, symbol: Symbol, price: float, now_ms: int) -> list[BookChange]:
        """The book moved to ``price``: its diff (or, after a gap, a reset)."""
        running = self._running.get(symbol)
        if running is None:
            return []
        outcome = running.sync.on_event(parse_depth_update(running.book.step(price, now_ms)))
        if isinstance(outcome, Applied):
            return [outcome]
        if isinstance(outcome, NeedSnapshot):
            return self._join(running)
        return []

    def _join(self, running: _Running) -> list[BookChange]:
        snapshot = parse_depth_snapshot(running.book.snapshot_body())
        outcome = running.sync.on_snapshot(snapshot)
        return [outcome] if isinstance(outcome, Reset) else []
