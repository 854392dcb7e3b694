"""One upstream WebSocket connection of ``BinanceFeed`` and the streams it carries.

A ``Link`` connects with its first streams in the URL, sends the rest and every later change
as batched ``SUBSCRIBE``/``UNSUBSCRIBE`` within its share of the control-message limit
(``ControlPlanner`` + ``SlidingWindow``), hands data frames to the feed, and reconnects:
at once when the end was planned (age limit, ``serverShutdown``), after full-jitter backoff
otherwise, escalating only while connections fail before delivering data
(``Backoff.after_connection``), and never beyond the feed's connection-attempt window. Gaps
across reconnects are the feed's business (``SeriesSync`` for bars, ``TradeSync`` for trades).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from marketcast.feeds.binance_protocol import (
    AggTradeEvent,
    BookTickerEvent,
    ControlFailure,
    ControlReply,
    KlineEvent,
    MiniTickerEvent,
    ServerShutdown,
    UpstreamFormatError,
    combined_url,
    parse_frame,
)
from marketcast.feeds.binance_rules import ControlPlanner
from marketcast.feeds.pacing import Backoff, SlidingWindow

log = logging.getLogger("marketcast.feeds.binance")

#: Streams put in a new connection's URL; the rest follow as SUBSCRIBE batches (URLs of a
#: thousand streams would be ~25 kB, more than servers accept in a request line).
URL_STREAMS: Final = 100
#: Seconds a link waits after a change before sending, so a burst of watches is one message.
COALESCE_SECONDS: Final = 0.02


class LinkFeed(Protocol):
    """What a ``Link`` uses of the feed that owns it (``BinanceFeed``).

    Why a protocol and not the class: the feed creates its links, so naming the class here
    would make the two modules import each other.
    """

    ws_url: str
    timeout: float
    control_limit: int
    control_window: float
    reconnect: tuple[float, float]
    rng: random.Random
    #: Connection attempts of every link of the feed (Binance counts them per IP).
    attempts: SlidingWindow
    max_connection_age: float
    stall_timeout: float
    monotonic: Callable[[], float]
    sleep: Callable[[float], Awaitable[None]]
    connections_opened: int
    malformed_frames: int

    async def on_event(
        self, event: KlineEvent | AggTradeEvent | BookTickerEvent | MiniTickerEvent
    ) -> None: ...


class Link:
    """One upstream WebSocket connection and the streams it carries."""

    def __init__(self, feed: LinkFeed, number: int) -> None:
        self.feed = feed
        self.number = number
        self.planner = ControlPlanner()
        self.limiter = SlidingWindow(feed.control_limit, feed.control_window)
        self.backoff = Backoff(*feed.reconnect, rng=feed.rng)
        #: Set when the wanted streams change, so the writer sends the difference.
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        #: For ``status()``: a connection is open; monotonic time of the last data frame.
        self.connected = False
        self.last_frame: float | None = None
        #: The current connection has delivered data: the upstream was working.
        self.delivered = False

    def size(self) -> int:
        return len(self.planner.wanted)

    def want(self, stream: str) -> None:
        self.planner.want(stream)
        self.wake.set()
        if self.task is None:
            self.task = asyncio.create_task(self._run(), name=f"binance-link-{self.number}")

    def drop(self, stream: str) -> None:
        self.planner.drop(stream)
        self.wake.set()

    async def stop(self) -> None:
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])

    async def _run(self) -> None:
        feed = self.feed
        while self.planner.wanted:
            wait = feed.attempts.wait_time(feed.monotonic())
            if wait > 0:
                log.warning(
                    "binance link %d: at Binance's limit of connection attempts; waiting %.1f s",
                    self.number,
                    wait,
                )
                await feed.sleep(wait)
                continue
            feed.attempts.record(feed.monotonic())
            self.delivered = False
            initial = self.planner.wanted[:URL_STREAMS]
            try:
                async with connect(
                    combined_url(feed.ws_url, initial),
                    open_timeout=feed.timeout,
                    close_timeout=1.0,
                    ping_interval=None,
                    max_size=1 << 22,
                ) as ws:
                    feed.connections_opened += 1
                    self.connected = True
                    self.planner.connected(initial)
                    try:
                        reason, planned = await self._session(ws)
                    finally:
                        self.connected = False
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI, ConnectionClosed) as exc:
                reason = f"cannot connect to MARKETCAST_BINANCE_WS_URL={feed.ws_url}: {exc}"
                planned = False
            if planned:
                log.info("binance link %d: %s; reconnecting now", self.number, reason)
                continue
            delay = self.backoff.after_connection(delivered=self.delivered)
            log.warning("binance link %d: %s; reconnecting in %.2f s", self.number, reason, delay)
            await feed.sleep(delay)

    async def _session(self, ws: ClientConnection) -> tuple[str, bool]:
        """Serve one connection; returns why it ended and whether that was planned."""
        self.wake.set()  # streams beyond the URL's, and changes made while disconnected
        reader = asyncio.create_task(self._read(ws))
        writer = asyncio.create_task(self._write(ws))
        try:
            done, _ = await asyncio.wait(
                {reader, writer},
                timeout=self.feed.max_connection_age,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for task in (reader, writer):
                task.cancel()
            await asyncio.wait({reader, writer})
        if not done:
            return "connection age limit reached", True
        finished = done.pop()
        if finished.cancelled():
            return "cancelled", False
        if finished.exception() is not None:
            return f"connection error: {finished.exception()!r}", False
        return finished.result()

    async def _read(self, ws: ClientConnection) -> tuple[str, bool]:
        feed = self.feed
        while True:
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for may swallow a cancellation
                # that races with a frame arriving, and this loop would never stop.
                async with asyncio.timeout(feed.stall_timeout):
                    text = await ws.recv()
            except TimeoutError:
                return f"no frame for {feed.stall_timeout:g} s (stalled)", False
            except ConnectionClosed as exc:
                return f"connection closed ({exc})", False
            try:
                event = parse_frame(text)
            except UpstreamFormatError as exc:
                feed.malformed_frames += 1
                log.warning("binance link %d: ignoring a malformed frame: %s", self.number, exc)
                continue
            if isinstance(event, ServerShutdown):
                return "serverShutdown announced", True
            if isinstance(event, ControlReply):
                self.planner.on_reply(event.id)
            elif isinstance(event, ControlFailure):
                entry = self.planner.on_failure(event.id)
                log.error(
                    "binance refused %s: code %d: %s",
                    entry or f"request {event.id!r}",
                    event.code,
                    event.message,
                )
            elif isinstance(event, KlineEvent | AggTradeEvent | BookTickerEvent | MiniTickerEvent):
                self.delivered = True  # the upstream works: a drop now is not an outage
                self.last_frame = feed.monotonic()
                await feed.on_event(event)

    async def _write(self, ws: ClientConnection) -> tuple[str, bool]:
        feed = self.feed
        while True:
            await self.wake.wait()
            await feed.sleep(COALESCE_SECONDS)
            self.wake.clear()
            while True:
                wait = self.limiter.wait_time(feed.monotonic())
                if wait > 0:
                    await feed.sleep(wait)
                    continue
                message = self.planner.next_message()
                if message is None:
                    break
                self.limiter.record(feed.monotonic())
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(orjson.dumps(message).decode())
