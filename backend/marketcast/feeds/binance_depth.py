"""Binance order books kept in sync: ``<symbol>@depth@100ms`` joined to ``GET /api/v3/depth``.

Why a component of its own, beside ``BinanceFeed``'s links: a book needs a REST snapshot for
every (re)join, joined to the stream by update ids, and one missed event means a new snapshot.
``book.binance_sync.BinanceBookSync`` decides all of that as values; this is the thin I/O
around it, and hands each change to a sink as ``on_book(symbol, outcome)``:

- ``Applied`` (``prev_seq`` -> ``seq``, the levels that changed: quantity 0 removes) for each
  event applied to a joined book, or ``Reset`` (``seq``, every level) when a book is joined
  (again): after the first snapshot, a gap, a swapped event, an overflow or a reconnect.
  Outcomes of one link reach the sink one at a time (a lock), in the order the syncs decided,
  so a consumer that applies them in order holds the true book.
- One WebSocket connection, every symbol's diff stream in its combined-stream URL (so at most
  ``URL_STREAMS`` symbols a link), read without waiting for REST: a ``NeedSnapshot`` starts a
  fetch task for that symbol while its events keep being buffered by its sync.
- A fetch round is bounded: at most ``snapshot_attempts`` requests, full-jitter backoff
  between them (a snapshot too old for the buffer is one more attempt). A round that fails
  discards the symbol's buffer, and the symbol's next event starts a new round after
  ``reconnect_max`` seconds: an upstream that cannot answer costs one request per symbol
  and cool-down, never a tight loop. REST pacing (429/418, used weight) is ``BinanceRest``'s,
  so these requests share its ``RestGate`` rules.
- A drop, a stall (no frame for ``stall_timeout``) or ``serverShutdown`` ends the connection:
  every sync forgets its book and buffer (the next connection's events cannot continue the
  old one's), fetches in flight are cancelled, and the link reconnects, at once after a
  ``serverShutdown``, after ``Backoff.after_connection`` otherwise, every attempt within
  Binance's 300 attempts per 5 minutes.
- ``close`` cancels everything and is safe at any point, twice too; nothing waits without a
  bound (connect, receive, REST and the REST gate all have one).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from marketcast.book.binance_sync import (
    SNAPSHOT_LIMIT,
    Applied,
    BinanceBookSync,
    DepthSnapshot,
    DepthUpdate,
    Dropped,
    NeedSnapshot,
    Reset,
    depth_stream,
    parse_depth_snapshot,
    parse_depth_update,
)
from marketcast.book.levels import BookFormatError, OrderBook
from marketcast.feeds.base import log_sink_failure
from marketcast.feeds.binance_link import URL_STREAMS
from marketcast.feeds.binance_protocol import (
    CONNECTION_ATTEMPT_WINDOW,
    MAX_CONNECTION_ATTEMPTS,
    combined_url,
)
from marketcast.feeds.binance_rest import BinanceRest
from marketcast.feeds.pacing import Backoff, SlidingWindow, UpstreamError

log = logging.getLogger("marketcast.feeds.binance.depth")

#: What the sink is given: an event applied to a joined book, or a (re)joined book.
BookOutcome = Applied | Reset
#: The sink: awaited for each outcome, one at a time.
OnBook = Callable[[str, BookOutcome], Awaitable[None]]
#: Snapshot requests one fetch round makes at most before it gives up.
MAX_SNAPSHOT_ATTEMPTS: Final = 6
#: Binance's largest ``GET /api/v3/depth`` limit.
MAX_DEPTH_LIMIT: Final = 5000


class _Shutdown:
    """A ``serverShutdown`` frame: reconnect now, before the upstream closes."""


_SHUTDOWN: Final = _Shutdown()


class DepthRest(BinanceRest):
    """``BinanceRest`` (its pacing, gate and error messages) plus ``GET /api/v3/depth``."""

    async def depth(self, symbol: str, limit: int, *, max_wait: float) -> DepthSnapshot:
        """One snapshot of ``symbol``'s book, at most ``limit`` levels a side (weight 5 to 250
        by ``limit``: Binance's table, counted by the gate from ``X-MBX-USED-WEIGHT-1M``)."""
        params = {"symbol": symbol, "limit": str(max(1, min(limit, MAX_DEPTH_LIMIT)))}
        body = await self._get("/api/v3/depth", params, max_wait=max_wait)
        try:
            return parse_depth_snapshot(orjson.loads(body))
        except (orjson.JSONDecodeError, BookFormatError) as exc:
            raise UpstreamError(f"binance depth of {symbol} had a bad body: {exc}") from None


def parse_depth_frame(text: str | bytes) -> DepthUpdate | _Shutdown | None:
    """One frame of a depth connection: a ``depthUpdate`` (combined or raw), a
    ``serverShutdown``, or None for anything else well-formed (control replies, other
    streams). Raises ``BookFormatError`` for a frame that is not what it claims to be."""
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BookFormatError(f"expected a JSON frame, got {text[:120]!r} ({exc})") from None
    if not isinstance(frame, dict):
        raise BookFormatError(f"expected a JSON object frame, got {text[:120]!r}")
    if "stream" in frame:
        data = frame.get("data")
        if not isinstance(data, dict):
            raise BookFormatError(f"expected {{stream, data: object}}, got {text[:120]!r}")
        if frame["stream"] == "!serverShutdown":
            return _SHUTDOWN
        frame = data
    kind = frame.get("e")
    if kind == "serverShutdown":
        return _SHUTDOWN
    if kind == "depthUpdate":
        return parse_depth_update(frame)
    if "error" in frame:
        log.error("binance depth: the upstream answered an error: %s", _excerpt(frame))
    return None


class BinanceDepthLink:
    """Books of ``symbols`` (Binance spot, ``BTCUSDT``...) synced from ``ws_url``/``rest_url``."""

    def __init__(
        self,
        symbols: Iterable[str],
        *,
        ws_url: str,
        rest_url: str,
        on_book: OnBook,
        snapshot_limit: int = SNAPSHOT_LIMIT,
        snapshot_attempts: int = MAX_SNAPSHOT_ATTEMPTS,
        reconnect_min: float = 0.5,
        reconnect_max: float = 30.0,
        stall_timeout: float = 30.0,
        timeout: float = 10.0,
        connect_limit: int = MAX_CONNECTION_ATTEMPTS,
        connect_window: float = CONNECTION_ATTEMPT_WINDOW,
        rng: random.Random | None = None,
    ) -> None:
        self.symbols = list(dict.fromkeys(s.upper() for s in symbols))
        if not 1 <= len(self.symbols) <= URL_STREAMS:
            raise ValueError(
                f"expected 1 to {URL_STREAMS} symbols for one depth link (its streams go in "
                f"the URL), got {len(self.symbols)}"
            )
        if not 1 <= snapshot_limit <= MAX_DEPTH_LIMIT:
            raise ValueError(f"expected a snapshot limit of 1..5000, got {snapshot_limit}")
        if snapshot_attempts < 1:
            raise ValueError(f"expected at least 1 snapshot attempt, got {snapshot_attempts}")
        self.ws_url, self.rest_url = ws_url.rstrip("/"), rest_url
        self.on_book = on_book
        #: Levels a side asked for: levels deeper than this are learnt only when they change.
        self.snapshot_limit = snapshot_limit
        self.snapshot_attempts = snapshot_attempts
        self.reconnect = (reconnect_min, reconnect_max)
        self.stall_timeout, self.timeout = stall_timeout, timeout
        self.rng = rng or random.Random()
        #: Connection attempts: Binance bans an IP past 300 in 5 minutes.
        self.attempts = SlidingWindow(connect_limit, connect_window)
        self.backoff = Backoff(reconnect_min, reconnect_max, rng=self.rng)
        #: One join state machine per symbol; public for status and tests (``resyncs``,
        #: ``dropped``), never to be fed from outside.
        self.syncs = {symbol: BinanceBookSync(symbol) for symbol in self.symbols}
        #: One sync decision and its sink call at a time: the reader and the fetches take
        #: turns, so the sink sees each symbol's outcomes in the order they were decided.
        self._lock = asyncio.Lock()
        self._rest: DepthRest | None = None
        self._task: asyncio.Task[None] | None = None
        #: Symbol -> its fetch round in flight (at most one each).
        self._fetches: dict[str, asyncio.Task[None]] = {}
        #: Symbol -> monotonic time before which a new round may not start (after a failed one).
        self._cooldown: dict[str, float] = {}
        #: Set by ``close``: no fetch may start after it (a task cancelled late could try).
        self._closed = False
        #: The current connection delivered an event: the upstream works (for the backoff).
        self._delivered = False
        #: For status, logs and tests.
        self.connected = False
        self.last_frame: float | None = None
        self.connections_opened = 0
        self.snapshots = 0
        self.snapshot_failures = 0
        self.rounds_given_up = 0
        self.malformed_frames = 0

    def book(self, symbol: str) -> OrderBook | None:
        """``symbol``'s synced book, None while it is not joined (read it, do not change it)."""
        sync = self.syncs[symbol.upper()]
        return sync.book if sync.joined else None

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and keep the books synced until ``close``."""
        if self._task is not None or self._closed:
            raise RuntimeError("a BinanceDepthLink starts once, and not after close()")
        self._rest = DepthRest(self.rest_url, timeout=self.timeout)
        self._task = asyncio.create_task(self._run(), name="binance-depth")

    async def close(self) -> None:
        """Stop the connection and every fetch; idempotent, safe at any point."""
        self._closed = True
        tasks = [t for t in (self._task, *self._fetches.values()) if t is not None]
        for task in tasks:
            task.cancel()
        try:
            if tasks:
                await asyncio.wait(tasks)
        finally:
            rest, self._rest = self._rest, None
            if rest is not None:
                await rest.close()

    # -- the connection ---------------------------------------------------------------------

    async def _run(self) -> None:
        url = combined_url(self.ws_url, [depth_stream(s) for s in self.symbols])
        while True:
            wait = self.attempts.wait_time(time.monotonic())
            if wait > 0:
                log.warning("binance depth: at the limit of connection attempts; %.1f s", wait)
                await asyncio.sleep(wait)
                continue
            self.attempts.record(time.monotonic())
            self._delivered = False
            try:
                async with connect(
                    url,
                    open_timeout=self.timeout,
                    close_timeout=1.0,
                    ping_interval=None,  # Binance pings; our pings would count as messages
                    max_size=1 << 22,
                ) as ws:
                    self.connections_opened += 1
                    self.connected = True
                    try:
                        reason, planned = await self._read(ws)
                    finally:
                        self.connected = False
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI, ConnectionClosed) as exc:
                reason, planned = f"cannot connect to {self.ws_url}: {exc}", False
            except Exception as exc:  # a bug must not end the link for good: log, start over
                log.exception("binance depth: the connection failed unexpectedly")
                reason, planned = f"unexpected error {exc!r}", False
            await self._forget_books()
            if planned:
                log.info("binance depth: %s; reconnecting now", reason)
                continue
            delay = self.backoff.after_connection(delivered=self._delivered)
            log.warning("binance depth: %s; reconnecting in %.2f s", reason, delay)
            await asyncio.sleep(delay)

    async def _read(self, ws: ClientConnection) -> tuple[str, bool]:
        """Serve one connection; returns why it ended and whether that was planned."""
        while True:
            try:
                # asyncio.timeout, not wait_for: see binance_link._read.
                async with asyncio.timeout(self.stall_timeout):
                    text = await ws.recv()
            except TimeoutError:
                return f"no frame for {self.stall_timeout:g} s (stalled)", False
            except ConnectionClosed as exc:
                return f"connection closed ({exc})", False
            try:
                frame = parse_depth_frame(text)
            except BookFormatError as exc:
                self.malformed_frames += 1
                log.warning("binance depth: ignoring a malformed frame: %s", exc)
                continue
            if isinstance(frame, _Shutdown):
                return "serverShutdown announced", True
            if frame is not None:
                self._delivered = True
                self.last_frame = time.monotonic()
                await self._on_event(frame)

    async def _on_event(self, event: DepthUpdate) -> None:
        sync = self.syncs.get(event.symbol)
        if sync is None:
            self.malformed_frames += 1
            log.warning("binance depth: an event of %r, not one of %s", event.symbol, self.symbols)
            return
        async with self._lock:
            outcome = sync.on_event(event)
            if isinstance(outcome, Applied):
                await self._deliver(event.symbol, outcome)
        if isinstance(outcome, NeedSnapshot):
            self._fetch(event.symbol, outcome.reason)

    async def _forget_books(self) -> None:
        """The connection ended: no book or buffered event can be continued by the next one."""
        async with self._lock:  # no sink call under way: the fetches are cancelled outside it
            fetches = list(self._fetches.values())
            for task in fetches:
                task.cancel()
            if fetches:
                await asyncio.wait(fetches)
            for sync in self.syncs.values():
                sync.on_reconnect()

    # -- snapshots --------------------------------------------------------------------------

    def _fetch(self, symbol: str, reason: str) -> None:
        """Start a fetch round for ``symbol`` unless one is under way. A round that has just
        ended may still be listed (its done-callback runs later): it does not count."""
        running = self._fetches.get(symbol)
        if self._closed or (running is not None and not running.done()):
            return
        log.info("binance depth %s: fetching a snapshot (%s)", symbol, reason)
        task = asyncio.create_task(self._fetch_round(symbol), name=f"binance-depth-{symbol}")
        self._fetches[symbol] = task
        task.add_done_callback(lambda done: self._fetch_done(symbol, done))

    def _fetch_done(self, symbol: str, task: asyncio.Task[None]) -> None:
        if self._fetches.get(symbol) is task:
            del self._fetches[symbol]
        if not task.cancelled() and task.exception() is not None:
            log.error("binance depth %s: the fetch failed", symbol, exc_info=task.exception())

    async def _fetch_round(self, symbol: str) -> None:
        wait = self._cooldown.get(symbol, 0.0) - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        sync = self.syncs[symbol]
        backoff = Backoff(*self.reconnect, rng=self.rng)
        failure = "no attempt made"
        for attempt in range(1, self.snapshot_attempts + 1):
            rest = self._rest
            if rest is None:
                return
            try:
                snapshot = await rest.depth(symbol, self.snapshot_limit, max_wait=self.timeout)
            except UpstreamError as exc:
                self.snapshot_failures += 1
                failure = str(exc)
                if exc.permanent:
                    break
            else:
                self.snapshots += 1
                async with self._lock:
                    outcome = sync.on_snapshot(snapshot)
                    if isinstance(outcome, Reset):
                        await self._deliver(symbol, outcome)
                if isinstance(outcome, Reset | Dropped):
                    return
                failure = outcome.reason
            if attempt < self.snapshot_attempts:
                delay = backoff.next_delay()
                log.info("binance depth %s: %s; asking again in %.2f s", symbol, failure, delay)
                await asyncio.sleep(delay)
        self.rounds_given_up += 1
        self._cooldown[symbol] = time.monotonic() + self.reconnect[1]
        log.error(
            "binance depth %s: no usable snapshot after %d attempts (last: %s); its book is "
            "cleared and rejoined from the next event after %.0f s",
            symbol,
            self.snapshot_attempts,
            failure,
            self.reconnect[1],
        )
        async with self._lock:
            sync.on_reconnect()  # the next event asks again, starting a new round

    async def _deliver(self, symbol: str, outcome: BookOutcome) -> None:
        try:
            await self.on_book(symbol, outcome)
        except Exception as exc:
            log_sink_failure(log, f"a book update of {symbol}", exc)


def _excerpt(value: Mapping[str, Any]) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."
