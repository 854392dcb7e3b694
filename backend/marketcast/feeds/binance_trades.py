"""``BinanceFeed``'s aggregate trades (``TradeKey``): every trade once, in id order, across drops.

Why a module of its own: bars and trades recover from a drop differently. A bar has a time
slot and REST tells its final value; a trade has an *id* (Binance's aggregate trade id ``a``,
consecutive per symbol) and REST pages by it (``GET /api/v3/aggTrades?fromId=``). So the
rule here is by id, and it needs no clock at all:

- ``TradeSync`` (pure) decides, per key, what to deliver: the first trade after ``watch``
  starts the key (it has no predecessor to compare with, so nothing is fetched for it); a
  live trade with id ``last + 1`` goes through; one with a greater id reveals a gap (a drop,
  a reconnect, a stalled upstream, a lost frame), so it and every live trade after it are
  *held* until the gap is filled; an id ``<= last`` is a repeat and is dropped. Ids therefore
  only ever increase, and each is delivered at most once.
- ``TradeFills`` (I/O) runs one fill task per key with a gap: it fetches pages from
  ``last + 1`` on (REST pacing and weight are ``BinanceRest``'s, so the fill obeys the same
  ``RestGate`` as the kline fills), delivers them in order, then the held live trades.

The work is bounded, so a fill can never hold a key's live trades for long: at most
``MAX_TRADE_GAP_PAGES`` pages of 1000 trades (a longer gap is filled from its newest part
only, like the klines' ``MAX_GAP_PAGES``: the consumer gets the recent past, not an hour-old
backlog), and at most ``MAX_FILL_ATTEMPTS`` failed or short answers (REST unreachable, paused
by 429/418 beyond the feed's ``timeout``, or not yet holding the trades the stream already
sent: its data source is a database that may lag the stream). A gap that cannot be filled is
logged with the ids it leaves out, and the key continues from the held live trades: a hole,
said out loud, rather than a key frozen behind an upstream that cannot answer.

Deliveries of one key go through that key's lock, so a fill and the live stream never
interleave, while keys do not wait for each other (the same rule as the kline path).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from marketcast.channels.trades import Trade, TradeKey
from marketcast.feeds.binance_protocol import MAX_AGG_TRADES_PER_REQUEST
from marketcast.feeds.pacing import Backoff
from marketcast.types import Symbol

log = logging.getLogger("marketcast.feeds.binance")

#: Pages of ``GET /api/v3/aggTrades`` one gap may take (10 x 1000 trades, weight 40 of the
#: 6000 a minute); a longer gap is filled from its newest part only.
MAX_TRADE_GAP_PAGES: Final = 10
#: Failed or short answers one gap may take before it is given up.
MAX_FILL_ATTEMPTS: Final = 3

#: Delivers one trade of a key to the sink.
Emit = Callable[[TradeKey, Trade], Awaitable[None]]
#: One REST page: ``(symbol, from_id, limit)`` -> trades with id >= from_id, ascending.
Fetch = Callable[[Symbol, int, int], Awaitable[list[Trade]]]


class TradeSync:
    """One trade key's delivery order — pure: what to deliver, what to hold, what to fetch."""

    def __init__(self, max_gap: int = MAX_TRADE_GAP_PAGES * MAX_AGG_TRADES_PER_REQUEST) -> None:
        #: Most ids one fill fetches; older missing ones are left out.
        self.max_gap = max_gap
        #: Id of the last trade delivered; None until the first one after ``watch``.
        self.last: int | None = None
        #: Live trades held while a gap before them is filled, ascending ids.
        self.held: list[Trade] = []
        #: For logs and tests: repeats dropped, ids never delivered (holes).
        self.repeats = 0
        self.skipped = 0

    @property
    def filling(self) -> bool:
        return bool(self.held)

    def on_live(self, trade: Trade) -> list[Trade]:
        """A trade from the stream; the trades to deliver now (none while a gap is open)."""
        newest = self.held[-1].id if self.held else self.last
        if newest is not None and trade.id <= newest:
            self.repeats += 1
            return []
        if self.held or (self.last is not None and trade.id > self.last + 1):
            self.held.append(trade)
            return []
        self.last = trade.id
        return [trade]

    def wanted(self) -> tuple[int, int] | None:
        """The ids a fill should fetch, ``(first, last)`` inclusive, or None without a gap.
        ``first`` is ``last + 1`` unless the gap is longer than ``max_gap``."""
        if not self.held or self.last is None:
            return None
        until = self.held[0].id - 1
        return max(self.last + 1, until - self.max_gap + 1), until

    def on_page(self, rows: Sequence[Trade]) -> list[Trade]:
        """A REST page (ascending ids) fetched from ``wanted()[0]``: the trades to deliver now.
        Once the page reaches the first held trade, the held trades follow and the gap is
        closed; a page short of it leaves the gap open for the next page."""
        if not self.held:
            return []
        first_held = self.held[0].id
        out = [
            self._advance(row)
            for row in rows
            if row.id < first_held and (self.last is None or row.id > self.last)
        ]
        if rows and rows[-1].id >= first_held - 1:
            out += self._release()
        return out

    def give_up(self) -> list[Trade]:
        """The gap cannot be filled: deliver the held trades, leaving a hole before them."""
        return self._release()

    def _release(self) -> list[Trade]:
        held, self.held = self.held, []
        return [self._advance(trade) for trade in held]

    def _advance(self, trade: Trade) -> Trade:
        if self.last is not None and trade.id > self.last + 1:
            self.skipped += trade.id - self.last - 1
        self.last = trade.id
        return trade


class TradeFills:
    """The trade keys of one feed: their ``TradeSync``, per-key locks and fill tasks."""

    def __init__(
        self,
        *,
        emit: Emit,
        fetch: Fetch,
        sleep: Callable[[float], Awaitable[None]],
        retry: tuple[float, float],
        rng: random.Random,
        page_size: int = MAX_AGG_TRADES_PER_REQUEST,
        max_pages: int = MAX_TRADE_GAP_PAGES,
        max_attempts: int = MAX_FILL_ATTEMPTS,
    ) -> None:
        self.emit, self.fetch, self.sleep = emit, fetch, sleep
        #: Backoff between failed or short answers: the feed's reconnect delays.
        self.retry, self.rng = retry, rng
        self.page_size, self.max_pages, self.max_attempts = page_size, max_pages, max_attempts
        self._syncs: dict[TradeKey, TradeSync] = {}
        self._locks: dict[TradeKey, asyncio.Lock] = {}
        self._tasks: dict[TradeKey, asyncio.Task[None]] = {}
        #: Fills cancelled by ``unwatch`` that may not have ended yet (``close`` awaits them).
        self._ending: set[asyncio.Task[None]] = set()
        #: Counters for logs and tests: gaps filled, gaps given up (holes left).
        self.fills = 0
        self.unfilled = 0

    def watch(self, key: TradeKey) -> None:
        """Start ``key`` afresh: its first trade will have no predecessor."""
        self._syncs[key] = TradeSync(self.max_pages * self.page_size)

    def unwatch(self, key: TradeKey) -> None:
        self._syncs.pop(key, None)
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)

    def sync(self, key: TradeKey) -> TradeSync | None:
        return self._syncs.get(key)

    async def close(self) -> None:
        tasks = [*self._tasks.values(), *self._ending]
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def seed(self, key: TradeKey, recent: Sequence[Trade]) -> None:
        """The newest trades before the stream starts (REST), delivered first: the first live
        trade then has a predecessor, and any trade between the two is filled by id."""
        sync = self._syncs.get(key)
        if sync is None:
            return
        async with self._lock(key):
            for trade in recent:
                for ready in sync.on_live(trade):
                    await self.emit(key, ready)

    async def on_live(self, key: TradeKey, trade: Trade) -> None:
        sync = self._syncs.get(key)
        if sync is None:  # not watched (any more)
            return
        async with self._lock(key):
            for ready in sync.on_live(trade):
                await self.emit(key, ready)
        if sync.filling and key not in self._tasks and self._syncs.get(key) is sync:
            self._tasks[key] = asyncio.create_task(self._fill(key, sync), name=f"fill-{key}")

    async def _fill(self, key: TradeKey, sync: TradeSync) -> None:
        """Fetch pages until the gap is closed, within ``max_pages`` pages and
        ``max_attempts`` failed or short answers; then give the gap up (and say so)."""
        backoff = Backoff(*self.retry, rng=self.rng)
        pages = failures = 0
        gap = sync.wanted()
        if gap is not None and sync.last is not None and gap[0] > sync.last + 1:
            log.warning(
                "binance trades of %s: a gap of %d trades; filling its newest %d only",
                key,
                gap[1] - sync.last,
                gap[1] - gap[0] + 1,
            )
        try:
            while (wanted := sync.wanted()) is not None:
                start = wanted[0]
                try:
                    rows = await self.fetch(key.symbol, start, self.page_size)
                except Exception as exc:  # never let a fill die: the key's trades would stay held
                    failures += 1
                    log.warning("binance trades gap-fill of %s failed: %s", key, exc)
                else:
                    pages += 1
                    async with self._lock(key):
                        for trade in sync.on_page(rows):
                            await self.emit(key, trade)
                    if not sync.filling:
                        self.fills += 1
                        assert gap is not None  # a gap was open when the loop started
                        log.info("binance trades gap-fill of %s: ids %d..%d", key, *gap)
                        return
                    if len(rows) >= self.page_size and pages < self.max_pages:
                        continue  # a full page: the rest of the gap is there, fetch it now
                    failures += 1  # a short page: REST has not got the gap's trades (yet)
                if failures >= self.max_attempts or pages >= self.max_pages:
                    await self._give_up(key, sync, pages, failures)
                    return
                await self.sleep(backoff.next_delay())
        finally:
            if self._tasks.get(key) is asyncio.current_task():
                del self._tasks[key]

    async def _give_up(self, key: TradeKey, sync: TradeSync, pages: int, failures: int) -> None:
        if not sync.held or sync.last is None:
            return
        first, resume = sync.last + 1, sync.held[0].id
        async with self._lock(key):
            for trade in sync.give_up():
                await self.emit(key, trade)
        self.unfilled += 1
        log.warning(
            "binance trades of %s: ids %d..%d could not be filled (%d pages, %d failed or short "
            "answers); continuing from the live trade %d",
            key,
            first,
            resume - 1,
            pages,
            failures,
            resume,
        )

    def _lock(self, key: TradeKey) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock
