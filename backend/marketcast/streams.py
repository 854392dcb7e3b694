"""The stream manager: which upstream keys run, and the ingest path feed -> store -> bus.

Why reference counting with a grace period: the first subscriber of a key starts it upstream
and the last one leaving stops it, but a client that unsubscribes and re-subscribes (a chart
switching back and forth) should not make the upstream churn, so stopping waits
``grace_period`` seconds and is cancelled by a new subscriber.

Why the store is written before the bus: snapshot de-duplication (``delivery.connection``) relies on
"stored, then published" for every candle. The bus does both (``Bus.publish_stored``), so that
on Redis they are one round trip.

Why every feed event asks the ownership first (``Ownership.ingests``, skipped for candles when
it ingests every key): in a cluster a lease can lapse between two events of a key, and a
feed's ``unwatch`` is asynchronous, so its last events may still arrive; only the key's current
owner may store and publish them. The check is per key and takes no lock: keys never wait for
each other here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Sequence
from contextlib import suppress
from typing import Any

from marketcast.book.binance_sync import Applied, Reset
from marketcast.book.served import Cancellable, ServedBooks
from marketcast.bus.base import Bus
from marketcast.channels.bars import bar_fields, bar_update
from marketcast.channels.base import History, Registry
from marketcast.channels.orderbook import UPDATE_TYPE as BOOK_UPDATE
from marketcast.channels.orderbook import BookKey, book_source
from marketcast.channels.registry import default_registry
from marketcast.cluster.book_relay import BookRelay
from marketcast.cluster.ownership import LocalOwnership, Ownership
from marketcast.delivery.hub import Hub
from marketcast.errors import ConfigurationError, FeedError, ProtocolError
from marketcast.feeds.base import Feed
from marketcast.ingest_records import IngestRecords
from marketcast.market import BarKey, Candle, Quote, QuoteKey, RecentRecord, StreamKey, SymbolInfo
from marketcast.recovery import FetchTally, recover_bars
from marketcast.staleness import StalenessMonitor, StalenessTracker
from marketcast.store.base import CandleStore
from marketcast.store.recent import MemoryRecentStore, RecentStore
from marketcast.types import Millis, Symbol, Topic
from marketcast.wire import Frame

log = logging.getLogger("marketcast.streams")


def _call_later(delay: float, callback: Callable[[], None]) -> Cancellable:
    return asyncio.get_running_loop().call_later(delay, callback)


class StreamManager:
    """Runs upstream keys on demand and turns feed data into stored, published updates."""

    def __init__(
        self,
        feeds: Sequence[Feed],
        store: CandleStore,
        bus: Bus,
        *,
        grace_period: float,
        history_size: int,
        ownership: Ownership | None = None,
        staleness: StalenessTracker | None = None,
        max_concurrent_history: int = 8,
        channels: Registry | None = None,
        recent: RecentStore | None = None,
        hub: Hub | None = None,
    ) -> None:
        #: The channel families: each key's topic, update frame and history rule.
        self.channels = channels or default_registry()
        self._store = store
        #: The newest events of ``History.RECENT`` families (trades), for their snapshots.
        self._recent: RecentStore = recent or MemoryRecentStore()
        #: History reads (snapshots, recoveries, REST history) running at once; the others
        #: wait here without blocking the loop. Bounds what a burst of costly requests from
        #: many clients makes the store and the upstreams do together.
        self._history_slots = asyncio.Semaphore(max_concurrent_history)
        #: Which watched keys went silent upstream (``staleness``); flags them to clients. A
        #: tracker passed in is this manager's alone: it watches each key with the key's
        #: ingest record as its cell (``_track_staleness``), which candles write.
        tracker = staleness or StalenessTracker(intervals=3, max_seconds=300)
        # Each family says how often its keys update (a bar's period); the tracker scales it.
        tracker.interval_of = lambda key: self.channels.of_key(key).stale_after(key)
        self._staleness = StalenessMonitor(tracker, self._publish_stale)
        #: Decides when this worker runs a wanted key upstream. The default owns every key at
        #: once (one worker: unchanged behaviour); in a cluster only a key's lease holder
        #: watches it and the others receive it through the bus (``cluster.leases``).
        self._ownership: Ownership = ownership or LocalOwnership()
        self._ownership.bind(self)
        self._bus = bus
        self._grace_period = grace_period
        self._history_size = history_size
        self._feeds = list(feeds)
        self._catalog: dict[Symbol, tuple[Feed, SymbolInfo]] = {}
        for feed in feeds:
            for info in feed.symbols():
                if info.symbol in self._catalog:
                    raise ConfigurationError(
                        f"symbol {info.symbol!r} is served by two feeds: "
                        f"{self._catalog[info.symbol][0].name!r} and {feed.name!r}"
                    )
                self._catalog[info.symbol] = (feed, info)
        self._refs: dict[StreamKey, int] = {}
        #: A key's start task; awaiting it lets concurrent first subscribers share one start.
        self._running: dict[StreamKey, asyncio.Task[None]] = {}
        self._stopping: dict[StreamKey, asyncio.TimerHandle] = {}
        self._bootstrapped: set[BarKey] = set()
        self._bootstrap_locks: dict[BarKey, asyncio.Lock] = {}
        #: Each key's topic, closed-bar floor, staleness cell and frame head, found with one
        #: lookup per candle (``ingest_records``).
        self._records = IngestRecords(self.channels.of_key)
        self._background: set[asyncio.Task[None]] = set()
        self.repeats_dropped = 0
        #: The order books this worker serves: their views, frames and subscribe snapshots;
        #: frames go to this worker's hub only, built here from the changes the relay brings.
        self.books = ServedBooks(
            bus.publish_local, _call_later, time.monotonic, update_type=BOOK_UPDATE
        )
        #: Each book from its one owner in the cluster to every worker serving it: the relay
        #: messages arrive through ``hub`` (``cluster.book_relay``).
        self._relay = BookRelay(
            self.books,
            hub or Hub(),
            bus.publish,
            self._ownership,
            clock=time.monotonic,
            on_change=self._book_moved,
        )
        #: The book keys (views) served here, per symbol: a change of the symbol's book is
        #: data for each of them (staleness).
        self._book_keys: dict[Symbol, set[BookKey]] = {}
        #: When each key's watch at its feed returned (``watched_at``).
        self._watched_at: dict[StreamKey, float] = {}

    # -- catalog ------------------------------------------------------------------------------

    def symbol_info(self, symbol: Symbol) -> SymbolInfo | None:
        entry = self._catalog.get(symbol)
        return entry[1] if entry else None

    def symbols(self) -> list[SymbolInfo]:
        return [info for _, info in self._catalog.values()]

    def topic(self, key: StreamKey) -> Topic:
        return self._records.of(key).topic

    def active_keys(self) -> list[StreamKey]:
        return [key for key, task in self._running.items() if task.done()]

    def active_keys_of(self, topics: Collection[Topic]) -> list[StreamKey]:
        """The active keys of ``topics``, found by topic rather than by walking every key:
        a key's takeover in a cluster resyncs its one topic on every worker, and a walk per
        takeover made taking thousands of keys quadratic (minutes for 22,000)."""
        keys = []
        for topic in topics:
            key = self._records.key_of_topic.get(topic)
            task = None if key is None else self._running.get(key)
            if key is not None and task is not None and task.done():
                keys.append(key)
        return keys

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        for feed in self._feeds:
            await feed.start(self)
        await self._ownership.start()
        self._staleness.start()

    async def close(self) -> None:
        for handle in self._stopping.values():
            handle.cancel()
        self._stopping.clear()
        for task in [*self._running.values(), *self._background]:
            task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await task
        self._running.clear()
        await self._staleness.close()
        await self._relay.close()
        # Before the feeds close: a cluster worker stops its keys and releases their leases.
        await self._ownership.close()
        for feed in self._feeds:
            await feed.close()

    # -- demand -------------------------------------------------------------------------------

    async def acquire(self, key: StreamKey) -> None:
        """One more consumer of ``key``; starts it upstream if it is the first."""
        self._refs[key] = self._refs.get(key, 0) + 1
        pending_stop = self._stopping.pop(key, None)
        if pending_stop is not None:
            pending_stop.cancel()
        task = self._running.get(key)
        if task is None:
            task = asyncio.create_task(self._start_key(key), name=f"start-{key}")
            self._running[key] = task
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            # The caller is cancelled, not the start (shielded, it goes on for the others):
            # its reference goes back as an unsubscribe's would.
            self.release(key)
            raise
        except Exception:
            self._refs[key] -= 1
            if self._running.get(key) is task:
                del self._running[key]
            raise

    def release(self, key: StreamKey) -> None:
        """One consumer fewer; the last one stops the key after the grace period."""
        refs = self._refs.get(key, 0) - 1
        if refs > 0:
            self._refs[key] = refs
            return
        self._refs.pop(key, None)
        if key in self._running and key not in self._stopping:
            loop = asyncio.get_running_loop()
            self._stopping[key] = loop.call_later(self._grace_period, self._stop_soon, key)

    def _stop_soon(self, key: StreamKey) -> None:
        self._stopping.pop(key, None)
        if self._refs.get(key, 0) > 0:
            return
        task = asyncio.create_task(self._stop_key(key), name=f"stop-{key}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _start_key(self, key: StreamKey) -> None:
        self._feed_for(key.symbol)  # KeyError for a symbol no feed serves, before any I/O
        if self.channels.of_key(key).history is History.SERIES:
            assert isinstance(key, BarKey)
            await self.ensure_history(key)
        if isinstance(key, BookKey):
            await self._start_book(key)
        else:
            await self._ownership.want(key)  # watches the key upstream if this worker owns it
        log.info("stream started: %s", self.topic(key))

    async def _stop_key(self, key: StreamKey) -> None:
        task = self._running.pop(key, None)
        if task is None:
            return
        if isinstance(key, BookKey):
            await self._stop_book(key)
        else:
            await self._ownership.unwant(key)
        log.info("stream stopped: %s", self.topic(key))

    def _feed_for(self, symbol: Symbol) -> Feed:
        return self._catalog[symbol][0]

    async def _start_book(self, key: BookKey) -> None:
        """A view of a symbol's book, served here from the book the relay keeps whoever
        runs it upstream: all views of a symbol share one ``book_source`` lease and watch."""
        self.books.watch(key.symbol, self.topic(key), key.mode, key.depth)
        self._book_keys.setdefault(key.symbol, set()).add(key)
        self._track_staleness(key)
        try:
            await self._relay.serve(key.symbol)
        except Exception:
            await self._stop_book(key)
            raise

    async def _stop_book(self, key: BookKey) -> None:
        self.books.unwatch(key.symbol, self.topic(key))
        self._staleness.tracker.forget(key)
        views = self._book_keys.get(key.symbol)
        if views is not None:
            views.discard(key)
        if not views:
            self._book_keys.pop(key.symbol, None)
            await self._relay.unserve(key.symbol)

    # -- cluster.ownership.Upstream: what the ownership drives ------------------------------

    async def start_upstream(self, key: StreamKey) -> None:
        if isinstance(key, BookKey):  # a ``book_source``: staleness is per view (above)
            self._relay.own(key.symbol)
            await self._feed_for(key.symbol).watch(key)
            return
        await self._feed_for(key.symbol).watch(key)
        self._watched_at[key] = time.perf_counter()
        self._track_staleness(key)

    def _track_staleness(self, key: StreamKey) -> None:
        """Staleness watches ``key`` from now, in its record (which candles write)."""
        self._staleness.tracker.watching(key, self._staleness.clock(), self._records.of(key))

    def watched_at(self, key: StreamKey) -> float | None:
        """When this worker's feed finished watching ``key`` (``perf_counter``, the clock of
        ``Frame.created``); None while it does not. What a feed published while it was
        starting the key (Binance's recent trades, fetched before its stream) is history, not
        news to a subscriber who asked for none (``Subscriptions.subscribe``)."""
        return self._watched_at.get(key)

    async def stop_upstream(self, key: StreamKey) -> None:
        if isinstance(key, BookKey):
            self._relay.disown(key.symbol)
            await self._feed_for(key.symbol).unwatch(key)
            return
        self._watched_at.pop(key, None)
        self._staleness.tracker.forget(key)
        await self._feed_for(key.symbol).unwatch(key)

    def serves(self, key: StreamKey) -> bool:
        info = self.symbol_info(key.symbol)
        if info is None:
            return False
        try:
            self.channels.resolve(
                self.channels.of_key(key).route, info, self.channels.of_key(key).params_of(key)
            )
        except ProtocolError:
            return False
        return True

    def key_id(self, key: StreamKey) -> str:
        return self.channels.key_id(key)

    def parse_key_id(self, text: str) -> StreamKey | None:
        return self.channels.parse_key_id(text)

    async def catch_up(self, key: StreamKey) -> bool:
        """Before this worker (re)takes ``key`` in a cluster: store what its feed has since
        the newest stored bar — everything, when the store lost the key (a Redis restart).
        Only candle series are caught up; other families start from the live stream.

        The store is written directly rather than through ``on_candle``: this worker's
        closed-bar filter only knows what *it* published, while the gap belongs to another
        owner or to an outage. Each worker then resyncs its clients from the store through its
        own closed-bar guard (``bus.guard``), so nobody gets a gap or a repeat."""
        if not isinstance(key, BarKey):
            return False
        candles = await self._feed_for(key.symbol).fetch_history(key, None, self._history_size)
        await self._store.upsert_many(key, await self._beyond_store(key, candles))
        self._bootstrapped.add(key)
        return True

    async def _beyond_store(self, key: BarKey, candles: Sequence[Candle]) -> list[Candle]:
        """The ``candles`` the store lacks at its newest end: those newer than its newest bar,
        or replacing that bar while it is open. Older ones are left alone because the store
        may hold real bars there (another owner's, in a cluster) that the feed's filler bars
        must not overwrite."""
        stored = await self._store.last(key, 1)
        if not stored:
            return list(candles)
        newest = stored[-1]
        return [
            c
            for c in candles
            if c.time > newest.time or (c.time == newest.time and not newest.closed)
        ]

    # -- history ------------------------------------------------------------------------------

    async def ensure_history(self, key: BarKey, *, tally: FetchTally | None = None) -> None:
        """Load the key's recent history from its feed once, if the store has none
        (``tally``: counts that fetch, for a caller charging by cost)."""
        if key in self._bootstrapped:
            return
        lock = self._bootstrap_locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key in self._bootstrapped:
                return
            if await self._store.count(key) == 0:
                feed = self._feed_for(key.symbol)
                try:
                    candles = await feed.fetch_history(key, None, self._history_size)
                except FeedError as exc:  # the live stream still starts; retried next time
                    log.warning("history of %s unavailable: %s", self.topic(key), exc)
                    return
                if tally is not None:
                    tally.add(candles)
                await self._store.upsert_many(key, candles)
            self._bootstrapped.add(key)

    def forget_history(self) -> None:
        """The store may have lost every key (Redis restarted): bootstrap again on next use."""
        self._bootstrapped.clear()

    async def snapshot(self, key: BarKey, count: int, since: Millis | None) -> list[Candle]:
        """The last ``count`` bars, or every stored bar opening at or after ``since``; from the
        store only, so it never fetches from the feed (its cost is the bars returned)."""
        if since is None and count <= 0:
            return []
        async with self._history_slots:
            if since is not None:
                return await self._store.range(key, since, None, self._history_size)
            return await self._store.last(key, count)

    async def newest(self, key: BarKey) -> Candle | None:
        """The newest stored bar of ``key`` (open or closed), if any."""
        bars = await self._store.last(key, 1)
        return bars[-1] if bars else None

    async def recover(
        self, key: BarKey, since: Millis, limit: int, *, tally: FetchTally | None = None
    ) -> tuple[list[Candle], bool]:
        """Every bar opening at or after ``since`` (the newest ``limit`` at most), and whether
        that is all of them: the store's, with its holes filled from the feed
        (``marketcast.recovery``); ``tally`` counts what the feed was asked for."""
        feed = self._feed_for(key.symbol)
        async with self._history_slots:
            return await recover_bars(self._store, feed, key, since, limit, tally=tally)

    async def history(
        self,
        key: BarKey,
        start: Millis | None,
        end: Millis | None,
        limit: int,
        *,
        tally: FetchTally | None = None,
    ) -> list[Candle]:
        """The newest ``limit`` bars with ``start <= time < end``: the store's, completed
        from the feed when the store lacks the older part; ``tally`` counts those fetches."""
        async with self._history_slots:
            return await self._history(key, start, end, limit, tally)

    async def _history(
        self,
        key: BarKey,
        start: Millis | None,
        end: Millis | None,
        limit: int,
        tally: FetchTally | None,
    ) -> list[Candle]:
        await self.ensure_history(key, tally=tally)
        bars = await self._store.range(key, start, end, limit)
        if len(bars) < limit and (start is None or not bars or bars[0].time > start):
            # The store may lack the older part of the range: ask the upstream for the bars
            # before the oldest stored one, and keep them (as far as the store has room).
            before = bars[0].time if bars else end
            try:
                older = await self._feed_for(key.symbol).fetch_history(
                    key, before, limit - len(bars)
                )
            except FeedError as exc:
                log.warning("older history of %s unavailable: %s", self.topic(key), exc)
                return bars
            if tally is not None:
                tally.add(older)
            older = [
                c
                for c in older
                if (start is None or c.time >= start) and (before is None or c.time < before)
            ]
            await self._store.upsert_many(key, older)
            bars = older + bars
        return bars

    # -- FeedSink -----------------------------------------------------------------------------

    async def on_candle(self, key: BarKey, candle: Candle) -> None:
        await self.on_candles(((key, candle),))

    async def on_candles(self, candles: Sequence[tuple[BarKey, Candle]]) -> None:
        """Candles of one or more keys (a kline and the resolutions aggregated from it), in
        order; stored and published together, so on Redis they cost one round trip instead
        of one each.

        Each candle is dropped when it is not this worker's to ingest (``Ownership.ingests``)
        or repeats a closed bar already published; the others mark their key as fresh
        (staleness) and get their ``bars.update`` frame. This runs for every key of every
        upstream update: one lookup per key finds all it needs (``ingest_records``)."""
        ingests = None if self._ownership.ingests_all else self._ownership.ingests
        records, record_of = self._records.by_key, self._records.of
        tracker = self._staleness.tracker
        now = self._staleness.clock()
        batch: list[tuple[BarKey, Candle, Frame]] = []
        for key, candle in candles:
            if ingests is not None and not ingests(key):
                continue
            record = records.get(key) or record_of(key)
            bar_time, closed = candle.time, candle.closed
            last_closed = record.last_final
            if last_closed is not None and bar_time <= last_closed:
                self.repeats_dropped += 1
                continue
            if closed:
                record.last_final = bar_time
            record.at = now  # staleness: the record is the key's ``LastData``
            text = record.head + bar_fields(candle)  # bars: no registry on this path
            batch.append((key, candle, Frame(text, record.topic, bar_time, closed)))
        if batch:
            if tracker.any_stale:  # a stale key among them is fresh again: the slow path
                tracker.touch_many([key for key, _, _ in batch], now)
            await self._bus.publish_stored_many(self._store, batch)

    async def on_backfill(self, key: BarKey, candles: Sequence[Candle]) -> None:
        """Bars the feed produced for a time nobody watched (a re-watched simulator key's
        missed buckets): stored for snapshots and recovery, never published. Publishing a
        day's backlog at once made every subscriber of the key a slow consumer.

        The closed-bar filter moves past them first, so neither a repeat from the feed nor a
        live delivery racing this write can publish them later; the store takes only what is
        newer than its newest bar (``_beyond_store``)."""
        if not self._ownership.ingests(key):
            return
        closed = [c.time for c in candles if c.closed]
        if closed:
            record, newest = self._records.of(key), max(closed)
            last = record.last_final
            record.last_final = newest if last is None else max(newest, last)
        await self._store.upsert_many(key, await self._beyond_store(key, candles))

    async def on_quote(self, symbol: Symbol, quote: Quote) -> None:
        await self.on_event(QuoteKey(symbol), quote)

    async def on_event(self, key: StreamKey, event: object) -> None:
        """An event of any family without a candle series: its family builds the update; a
        final one (a trade) at or before the newest published is a repeat and is dropped; a
        ``RECENT`` family's event is kept for snapshots before it is published."""
        if not self._ownership.ingests(key):
            return
        family, ingest_state = self.channels.of_key(key), self._records.of(key)
        frame = family.update(ingest_state.topic, key, event)
        order = frame.order
        if frame.final and order is not None:
            last = ingest_state.last_final
            if last is not None and order <= last:
                self.repeats_dropped += 1
                return
            ingest_state.last_final = order
        self._staleness.tracker.touch(key, self._staleness.clock())
        if family.history is History.RECENT and order is not None:
            record = RecentRecord(order, family.record(event))
            await self._recent.append(self.channels.key_id(key), record, family.snapshot_max)
        await self._bus.publish(frame)

    async def on_book(self, symbol: Symbol, change: Applied | Reset) -> None:
        """A change of ``symbol``'s book from its feed (``book.binance_sync`` outcomes), here
        where the book's lease is held: relayed to every worker serving the symbol, this one
        included (``cluster.book_relay``)."""
        if self._ownership.ingests(book_source(symbol)):
            await self._relay.publish(symbol, change)

    @property
    def book_relay(self) -> BookRelay:
        """The order-book relay (its counters are in ``/metrics``)."""
        return self._relay

    def _book_moved(self, symbol: Symbol) -> None:
        """A change of ``symbol``'s book was applied here: fresh data for each view of it."""
        now = self._staleness.clock()
        for key in self._book_keys.get(symbol, ()):
            self._staleness.tracker.touch(key, now)

    def state(self, key: StreamKey) -> dict[str, Any] | None:
        """A ``STATE`` key's state now (the book of a book key), None while it has none."""
        if isinstance(key, BookKey):
            return self.books.snapshot(key.symbol, self.topic(key))
        return None

    async def recent(self, key: StreamKey, count: int) -> list[RecentRecord]:
        """The newest ``count`` kept events of a ``RECENT`` family's key, oldest first."""
        if count <= 0:
            return []
        async with self._history_slots:
            return await self._recent.last(self.channels.key_id(key), count)

    # -- staleness ------------------------------------------------------------------------------

    def stale_topics(self) -> list[Topic]:
        """Topics of watched keys with no upstream data for too long (``staleness``)."""
        return sorted(self.topic(key) for key in self._staleness.tracker.stale_keys())

    def is_stale(self, symbol: Symbol) -> bool:
        return any(k.symbol == symbol for k in self._staleness.tracker.stale_keys())

    async def _publish_stale(self, key: StreamKey) -> None:
        """Tell a bar key's subscribers once: its newest bar again, flagged ``stale``."""
        if isinstance(key, BarKey):
            newest = await self._store.last(key, 1)
            if newest:
                await self._bus.publish(bar_update(self.topic(key), key, newest[-1], stale=True))
