"""``BinanceFeed``: crypto bars, quotes and trades from Binance's combined WebSocket streams.

Shape of the I/O (the rules themselves are pure, in ``binance_protocol`` and ``gapfill``):

- Streams are packed onto as few connections as possible: a ``Link`` carries up to
  ``max_streams`` (Binance allows 1024) and a second one opens only past that. A new link
  connects with its first streams in the URL; later changes go as batched ``SUBSCRIBE`` /
  ``UNSUBSCRIBE`` messages, at most ``control_limit`` per ``control_window`` seconds. Binance
  allows 5 messages a second *including pongs*, and the ``websockets`` library answers the
  server's pings by itself. Binance counts at *its* end, where network and scheduling delays
  can bunch messages sent a second apart into one second, so the budget is 3 per 2 s: any
  1-s window at the receiver then holds at most 3 of ours (for delays under a second) plus
  at most 2 pongs. One message carries any number of streams, so this costs no throughput.
- A link that drops, stalls (no frame for ``stall_timeout``), reaches ``max_connection_age``
  (Binance cuts at 24 h) or gets ``serverShutdown`` reconnects: at once for the planned cases,
  after full-jitter backoff otherwise. The backoff escalates (``reconnect_min`` doubling up to
  ``reconnect_max``) only while attempts fail or connections die before delivering data; after
  a connection that delivered data the delay starts from ``reconnect_min`` again, since an
  upstream that drops working connections is up and every second away is a second of missed
  updates. Every attempt of every link takes a slot of one ``SlidingWindow`` of Binance's
  300 connection attempts per 5 minutes per IP, so no policy can exceed it. The client sends
  no pings of its own (they would count toward the limit); the server's pings and the data
  itself show the connection is alive.
- Nothing is lost across a reconnect: each bar key's ``SeriesSync`` notices the gap from the
  first live kline after it and fetches the missing closed bars over REST before anything
  newer is delivered. Whether a REST row is final is judged on Binance's clock (the event
  times ``E`` of its frames, or ``serverTime``), never this machine's. Deliveries of one key
  go through that key's lock, so the sink sees each key's candles in order while keys do not
  wait for each other (one key's slow sink call or gap-fill holds only that key).
- Trades (``TradeKey``) are the ``<symbol>@aggTrade`` stream, on the same links and through
  the same control-message budget as every other stream. Their gaps are found by id, not by
  time, and filled from ``GET /api/v3/aggTrades?fromId=`` before the next live trade
  (``binance_trades``): each trade id reaches the sink once, in increasing order, or a
  bounded fill gives up and logs the ids it leaves out. A watch starts from the newest
  trades (``GET /api/v3/aggTrades`` without an id, before the stream is subscribed), so a
  first subscriber's snapshot is the symbol's recent tape and the stream joins it by id.
- Order books (``BookKey``) are ``<symbol>@depth@100ms`` joined to ``GET /api/v3/depth`` by
  update ids (``binance_depth.BinanceDepthLink``, one per symbol with a watched book key, on
  a connection of its own: its snapshots and resyncs come and go with the book); every
  change, a diff or a (re)join, goes to the sink as ``on_book``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence

from marketcast.book.binance_sync import Applied, Reset
from marketcast.channels.orderbook import BookKey
from marketcast.channels.trades import KEPT, Trade, TradeKey
from marketcast.errors import ConfigurationError, FeedError
from marketcast.feeds.base import FeedSink, log_sink_failure
from marketcast.feeds.binance_depth import BinanceDepthLink
from marketcast.feeds.binance_link import Link
from marketcast.feeds.binance_protocol import (
    CONNECTION_ATTEMPT_WINDOW,
    MAX_CONNECTION_ATTEMPTS,
    MAX_STREAMS_PER_CONNECTION,
    AggTradeEvent,
    BookTickerEvent,
    KlineEvent,
    MiniTickerEvent,
    streams_for,
)
from marketcast.feeds.binance_rest import BinanceRest
from marketcast.feeds.binance_rules import QuoteAssembler
from marketcast.feeds.binance_trades import TradeFills
from marketcast.feeds.gapfill import SeriesSync
from marketcast.feeds.pacing import Backoff, SlidingWindow, UpstreamError
from marketcast.feeds.status import FeedStatus
from marketcast.market import BarKey, Candle, Quote, QuoteKey, StreamKey, SymbolInfo
from marketcast.timeframes import RESOLUTIONS
from marketcast.types import Millis, Symbol

log = logging.getLogger("marketcast.feeds.binance")


class BinanceFeed:
    """A ``Feed`` for symbols listed on Binance spot (``BTCUSDT``...)."""

    name: str = "binance"

    def __init__(
        self,
        symbols: Sequence[Symbol],
        *,
        ws_url: str,
        rest_url: str,
        max_streams: int = MAX_STREAMS_PER_CONNECTION,
        control_limit: int = 3,
        control_window: float = 2.0,
        connect_limit: int = MAX_CONNECTION_ATTEMPTS,
        connect_window: float = CONNECTION_ATTEMPT_WINDOW,
        reconnect_min: float = 1.0,
        reconnect_max: float = 30.0,
        max_connection_age: float = 23.5 * 3600,
        stall_timeout: float = 60.0,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if not 1 <= max_streams <= MAX_STREAMS_PER_CONNECTION:
            raise ConfigurationError(
                f"binance max streams per connection must be 1..1024, got {max_streams}"
            )
        self._symbols = list(dict.fromkeys(symbols))
        self.ws_url, self.rest_url = ws_url.rstrip("/"), rest_url
        self.max_streams = max_streams
        self.control_limit, self.control_window = control_limit, control_window
        self.reconnect = (reconnect_min, reconnect_max)
        #: Connection attempts of every link (Binance counts them per IP).
        self.attempts = SlidingWindow(connect_limit, connect_window)
        self.max_connection_age, self.stall_timeout = max_connection_age, stall_timeout
        self.timeout = timeout
        #: Injected time: wall clock (s), monotonic clock (s), sleep; tests drive them.
        self.clock, self.monotonic, self.sleep = clock, monotonic, sleep
        self.rng = rng or random.Random()
        self._sink: FeedSink | None = None
        self._rest: BinanceRest | None = None
        self._links: list[Link] = []
        self._link_of: dict[str, Link] = {}
        self._watched: set[StreamKey] = set()
        #: Per bar key for the feed's lifetime: a key watched again resumes (and gap-fills)
        #: from where it stopped.
        self._syncs: dict[BarKey, SeriesSync] = {}
        self._sync_tasks: dict[BarKey, asyncio.Task[None]] = {}
        self._quotes: dict[Symbol, QuoteAssembler] = {}
        #: Per symbol with a watched book key: the link keeping its book joined to the diff
        #: stream (a connection of its own: a book's stream and snapshots come and go with it).
        self._depth: dict[Symbol, BinanceDepthLink] = {}
        #: Trade keys: their order, held live trades and gap fills.
        self.trades = TradeFills(
            emit=self._emit_trade,
            fetch=self._fetch_trades,
            sleep=self._sleep,
            retry=self.reconnect,
            rng=self.rng,
        )
        #: One delivery at a time per key: a gap-fill and the live stream never interleave.
        self._locks: dict[BarKey, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: Our clock minus the newest event's time, in seconds (``status()``).
        self._lag: float | None = None
        #: Counters for logs and tests.
        self.connections_opened = 0
        self.malformed_frames = 0
        self.gap_fills = 0

    def symbols(self) -> Sequence[SymbolInfo]:
        kinds = frozenset({BarKey, QuoteKey, TradeKey, BookKey})
        return [SymbolInfo(s, "crypto", self.name, RESOLUTIONS, kinds) for s in self._symbols]

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, sink: FeedSink) -> None:
        self._sink = sink
        self._rest = BinanceRest(
            self.rest_url,
            timeout=self.timeout,
            clock=self.clock,
            monotonic=self.monotonic,
            sleep=self.sleep,
        )
        self._spawn(self._probe(), "binance-probe")

    async def close(self) -> None:
        await self.trades.close()
        depth, self._depth = list(self._depth.values()), {}
        for link in depth:
            await link.close()
        tasks = [*self._tasks, *self._sync_tasks.values()]
        tasks += [link.task for link in self._links if link.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._links.clear()
        self._link_of.clear()
        self._sync_tasks.clear()
        if self._rest is not None:
            await self._rest.close()
            self._rest = None

    async def watch(self, key: StreamKey) -> None:
        if key.symbol not in self._symbols:
            raise ValueError(f"binance feed does not serve {key.symbol!r}: {self._symbols}")
        self._watched.add(key)
        if isinstance(key, BookKey):
            await self._watch_book(key.symbol)
            return
        if isinstance(key, TradeKey):
            self.trades.watch(key)
            await self._seed_trades(key)
        for stream in streams_for(key):
            link = next((ln for ln in self._links if ln.size() < self.max_streams), None)
            if link is None:
                link = Link(self, len(self._links) + 1)
                self._links.append(link)
            self._link_of[stream] = link
            link.want(stream)

    async def unwatch(self, key: StreamKey) -> None:
        self._watched.discard(key)
        if isinstance(key, BookKey):
            if not any(isinstance(k, BookKey) and k.symbol == key.symbol for k in self._watched):
                book_link = self._depth.pop(key.symbol, None)
                if book_link is not None:
                    await book_link.close()
            return
        task = self._sync_tasks.pop(key, None) if isinstance(key, BarKey) else None
        if task is not None:
            task.cancel()
        if isinstance(key, TradeKey):
            self.trades.unwatch(key)
        for stream in streams_for(key):
            link = self._link_of.pop(stream, None)
            if link is None:
                continue
            link.drop(stream)
            if link.size() == 0:  # nothing left to carry: close it rather than keep it idle
                self._links.remove(link)
                await link.stop()

    async def _watch_book(self, symbol: Symbol) -> None:
        if symbol in self._depth:
            return
        book_link = BinanceDepthLink(
            [symbol],
            ws_url=self.ws_url,
            rest_url=self.rest_url,
            on_book=self._on_book,
            reconnect_min=self.reconnect[0],
            reconnect_max=self.reconnect[1],
            timeout=self.timeout,
            rng=self.rng,
        )
        self._depth[symbol] = book_link
        await book_link.start()

    async def _on_book(self, symbol: Symbol, change: Applied | Reset) -> None:
        sink = self._sink
        if sink is not None and symbol in self._depth:
            await sink.on_book(symbol, change)

    async def fetch_history(self, key: BarKey, end: Millis | None, limit: int) -> list[Candle]:
        candles = await self._client().before(key, end, limit, max_wait=self.timeout)
        if end is None and key not in self._watched:
            # A key not yet on the stream starts from what its caller stores. A watched key's
            # state belongs to its stream and gap-fills: seeding it with rows newer than what
            # was delivered would count a closed bar as delivered that nobody got.
            self._sync(key).seed(candles)
        return candles

    def links(self) -> int:
        """Open (or opening) upstream connections."""
        return len(self._links)

    def status(self) -> FeedStatus:
        """For ``/metrics`` (``feeds.status``): connections and the age of the last frame."""
        open_links = [link for link in self._links if link.connected]
        frames = [link.last_frame for link in self._links if link.last_frame is not None]
        age = self.monotonic() - max(frames) if frames else None
        state = "idle" if not self._links else "connected" if open_links else "reconnecting"
        return FeedStatus(
            connected=bool(open_links) or not self._links,
            connections=len(open_links),
            last_message_age=age,
            lag=self._lag,
            state=state,
        )

    # -- events from links ----------------------------------------------------------------------

    async def on_event(
        self, event: KlineEvent | AggTradeEvent | BookTickerEvent | MiniTickerEvent
    ) -> None:
        if isinstance(event, AggTradeEvent):
            if event.key in self._watched:
                self._observe(event.event_time)
                await self.trades.on_live(event.key, event.trade)
            return
        if isinstance(event, KlineEvent):
            key = event.key
            if key not in self._watched:
                return
            self._observe(event.event_time)
            sync = self._sync(key)
            async with self._lock(key):
                for candle in sync.on_live(event.candle):
                    await self._emit(key, candle)
            if sync.syncing and key not in self._sync_tasks:
                self._sync_tasks[key] = asyncio.create_task(self._fill(key), name=f"fill-{key}")
            return
        if isinstance(event, MiniTickerEvent):
            self._observe(event.event_time)
        if QuoteKey(event.symbol) not in self._watched:
            return
        assembler = self._quotes.setdefault(event.symbol, QuoteAssembler())
        quote = assembler.on_event(event, round(self.clock() * 1000))
        if quote is not None:
            await self._emit_quote(event.symbol, quote)

    async def _fill(self, key: BarKey) -> None:
        """Fetch the bars of a gap and deliver them, then the live candles held meanwhile;
        fetch again (after a backoff delay) while the upstream has not confirmed them all."""
        sync = self._syncs[key]
        backoff = Backoff(*self.reconnect, rng=self.rng)
        try:
            while sync.syncing and key in self._watched:
                start = sync.sync_from()
                try:
                    rows = (
                        await self._client().since(key, start, sync.sync_until())
                        if (start is not None)
                        else []
                    )
                except Exception as exc:  # never let a gap-fill die: the key would stay held
                    permanent = isinstance(exc, UpstreamError) and exc.permanent
                    delay = backoff.next_delay() + (300.0 if permanent else 0.0)
                    log.warning(
                        "binance gap-fill of %s failed: %s; retrying in %.1f s", key, exc, delay
                    )
                    await self.sleep(delay)
                    continue
                abandoned = sync.abandoned
                async with self._lock(key):
                    for candle in sync.finish_sync(rows):
                        await self._emit(key, candle)
                self.gap_fills += 1
                if sync.abandoned > abandoned:
                    log.warning(
                        "binance gap-fill of %s: REST has newer bars but none for the open one; "
                        "it stays open (Binance gave no final version of it)",
                        key,
                    )
                if not sync.syncing:
                    log.info("binance gap-fill of %s: %d rows from %s", key, len(rows), start)
                    break
                delay = backoff.next_delay()
                log.info(
                    "binance gap-fill of %s: %d rows from %s, not yet up to the live stream or "
                    "not final on the upstream's clock; fetching again in %.1f s",
                    key,
                    len(rows),
                    start,
                    delay,
                )
                await self.sleep(delay)
        finally:
            if self._sync_tasks.get(key) is asyncio.current_task():
                del self._sync_tasks[key]

    async def _emit(self, key: BarKey, candle: Candle) -> None:
        assert self._sink is not None, "BinanceFeed.start was not called"
        try:
            await self._sink.on_candle(key, candle)
        except Exception as exc:
            log_sink_failure(log, f"a candle of {key}", exc)

    async def _emit_trade(self, key: TradeKey, trade: Trade) -> None:
        assert self._sink is not None, "BinanceFeed.start was not called"
        try:
            await self._sink.on_event(key, trade)
        except Exception as exc:
            log_sink_failure(log, f"a trade of {key}", exc)

    async def _seed_trades(self, key: TradeKey) -> None:
        """Before the stream: the newest ``KEPT`` trades from REST (one request, weight 4), so
        that a first subscriber's snapshot is the symbol's recent tape rather than empty. On
        failure the stream starts alone; the snapshot then fills as trades arrive."""
        try:
            recent = await self._client().agg_trades(key.symbol, limit=KEPT, max_wait=self.timeout)
        except (FeedError, TimeoutError) as exc:
            log.warning("binance trades of %s: no recent trades to start from: %s", key, exc)
            return
        await self.trades.seed(key, recent)

    async def _fetch_trades(self, symbol: Symbol, from_id: int, limit: int) -> list[Trade]:
        """A page of a trade gap. Waits for the REST gate at most ``timeout``: a fill holds
        the key's live trades, so a long pause (429/418) counts as a failed attempt."""
        return await self._client().agg_trades(
            symbol, from_id=from_id, limit=limit, max_wait=self.timeout
        )

    async def _sleep(self, seconds: float) -> None:
        """``sleep`` looked up at call time, so a test may replace it after construction."""
        await self.sleep(seconds)

    async def _emit_quote(self, symbol: Symbol, quote: Quote) -> None:
        assert self._sink is not None, "BinanceFeed.start was not called"
        try:
            await self._sink.on_quote(symbol, quote)
        except Exception as exc:
            log_sink_failure(log, f"a quote of {symbol}", exc)

    # -- helpers ------------------------------------------------------------------------------

    def _sync(self, key: BarKey) -> SeriesSync:
        sync = self._syncs.get(key)
        if sync is None:
            sync = self._syncs[key] = SeriesSync(key.resolution)
        return sync

    def _lock(self, key: BarKey) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def _observe(self, event_time: Millis) -> None:
        """An event time from the stream: Binance's clock, for judging REST rows final (and,
        against ours, how late the event arrived, for ``status()``)."""
        self._lag = max(0.0, self.clock() - event_time / 1000)
        if self._rest is not None:
            self._rest.upstream.observe(event_time, self.monotonic())

    def _client(self) -> BinanceRest:
        if self._rest is None:
            raise UpstreamError("the binance feed is not started")
        return self._rest

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _probe(self) -> None:
        """Say at start-up, in one line, if the REST URL is wrong; the feed keeps retrying."""
        try:
            await self._client().ping()
        except UpstreamError as exc:
            log.warning("binance: %s (the feed keeps retrying)", exc)
