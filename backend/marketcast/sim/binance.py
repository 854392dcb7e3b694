"""A fake Binance on loopback: combined kline/aggTrade/book-ticker/mini-ticker/diff-depth
streams, REST klines, aggTrades and depth (the order books are ``binance_depth``'s).

It speaks the documented wire formats (``marketcast.sim.binance_control`` for the control
protocol) from a deterministic ``Market``, and it *records* what clients do, so tests can
assert the rules a real Binance enforces: control messages and pongs per connection with their
times (``max_messages_per_second``), connections opened, REST requests and the weight used.
Like Binance it disconnects a connection that sends more than 5 messages in a second.

Fault injection, each a method: ``drop`` (abort every connection), ``stall`` (send nothing,
not even pings), ``server_shutdown`` (the ``serverShutdown`` event, then a close),
``send_malformed`` (one frame that is not JSON), ``omit_optional`` (kline payloads without
the ``B`` field, aggTrade payloads without ``M``), ``fail_rest`` (the next REST answers 429
with ``Retry-After``, 418 or 500), ``refuse_connections`` (WebSocket handshakes answered 503
for a while; REST still answers), ``kill``/``restart`` (the process dies: connections
aborted, port closed; then back), ``rest_delay`` (every klines and aggTrades answer held
back), ``depth_faults`` (diff-depth events dropped, repeated or swapped, snapshots older than
the stream; ``true_book`` tells the true book at an update id). Each applies to the trade
stream as to the others: trades that happen while a connection is down or stalled are never
sent on it, and only ``GET /api/v3/aggTrades`` can tell them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from marketcast.book.sim_book import Faults, StrLevels
from marketcast.sim import binance_control as control
from marketcast.sim.binance_depth import DEPTH_KINDS, HISTORY, DepthBooks, DepthSession
from marketcast.sim.binance_rest import KlinesApi, agg_trade_event
from marketcast.sim.http import is_upgrade, json_response, split
from marketcast.sim.market import TICK_MS, Agg, Market, after, floor_to

log = logging.getLogger("marketcast.sim.binance")


def _num(value: float) -> str:
    return f"{value:.8f}"


def kline_payload(
    symbol: str,
    interval: str,
    start: int,
    agg: Agg,
    closed: bool,
    *,
    event_time: int,
    omit_optional: bool = False,
) -> dict[str, Any]:
    """A kline event as Binance writes it (``B`` left out under ``omit_optional``)."""
    spec = control.INTERVALS[interval]
    k: dict[str, Any] = {
        "t": start,
        "T": after(spec, start) - 1,
        "s": symbol,
        "i": interval,
        "f": agg.first_tick,
        "L": agg.last_tick,
        "o": _num(agg.open),
        "c": _num(agg.close),
        "h": _num(agg.high),
        "l": _num(agg.low),
        "v": _num(agg.volume),
        "n": agg.count,
        "x": closed,
        "q": _num(agg.quote_volume),
        "V": _num(agg.taker_volume),
        "Q": _num(agg.taker_quote),
    }
    if not omit_optional:
        k["B"] = "0"
    return {"e": "kline", "E": event_time, "s": symbol, "k": k}


@dataclass
class ConnectionRecord:
    """One client connection as the fake saw it."""

    number: int
    path: str
    opened_at: float
    closed_at: float | None = None
    #: (monotonic time, what): every control message text, and "<pong>" for each pong.
    messages: list[tuple[float, str]] = field(default_factory=list)
    pongs: int = 0
    close_reason: str = ""

    def max_messages_per_second(self) -> int:
        """The most messages (control + pongs) in any 1-second window."""
        times = sorted(t for t, _ in self.messages)
        window: deque[float] = deque()
        best = 0
        for t in times:
            window.append(t)
            while window[0] <= t - 1.0:
                window.popleft()
            best = max(best, len(window))
        return best


@dataclass
class _Live:
    ws: ServerConnection
    record: ConnectionRecord
    session: control.Session
    #: Stream -> open time of the bar last pushed (klines only).
    pushed: dict[str, int] = field(default_factory=dict)
    #: Stream -> id of the newest trade that happened by the last push (aggTrade only).
    traded: dict[str, int] = field(default_factory=dict)
    #: Stream -> index of the next depth event to send (``DepthBooks.frames``).
    depth: dict[str, int] = field(default_factory=dict)


class FakeBinance:
    """The fake server; ``await start()`` binds it, ``port`` tells where."""

    def __init__(
        self,
        market: Market,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        push_interval: float = 0.25,
        ping_interval: float = 20.0,
        pong_timeout: float = 60.0,
        max_streams: int = 1024,
        max_messages_per_second: int | None = 5,
        weight_limit: int = 6000,
        shutdown_grace: float = 0.5,
        rest_delay: float = 0.0,
        depth_history: int = HISTORY,
    ) -> None:
        self.market = market
        #: The order books of the depth streams and ``GET /api/v3/depth`` (``depth_history``:
        #: true states kept per symbol for ``true_book``).
        self.depth = DepthBooks(market, history=depth_history)
        #: Seconds every klines or aggTrades answer is held back (computed on arrival): a slow
        #: upstream.
        self.rest_delay = rest_delay
        self.host, self.port = host, port
        self.push_interval = push_interval
        self.ping_interval, self.pong_timeout = ping_interval, pong_timeout
        self.max_streams = max_streams
        #: Binance's rule; None records but never disconnects.
        self.message_limit = max_messages_per_second
        self.shutdown_grace = shutdown_grace
        self.connections: list[ConnectionRecord] = []
        self.omit_optional = False
        #: The REST side (klines, weight, REST faults and records).
        self.rest = KlinesApi(market, weight_limit, self.depth)
        self._stalled_until = 0.0
        self._refuse_until = 0.0
        #: Monotonic times of WebSocket handshakes refused by ``refuse_connections``.
        self.refused: list[float] = []
        self._live: dict[int, _Live] = {}
        self._server: Server | None = None
        self._numbers = itertools.count(1)
        #: Fire-and-forget sends and closes, kept so they are not garbage-collected mid-way.
        self._tasks: set[asyncio.Future[Any]] = set()

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._process_request,
            ping_interval=None,
            max_size=1 << 20,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close politely (1001) and stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def kill(self) -> None:
        """Die: stop listening and abort every connection (no close frame)."""
        if self._server is not None:
            self._server.close(close_connections=False)
            self.drop()
            await self._server.wait_closed()
            self._server = None

    async def restart(self) -> None:
        await self.kill()
        await self.start()

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def max_concurrent_connections(self) -> int:
        """The most connections that were open at the same moment."""
        edges = sorted(
            [(r.opened_at, 1) for r in self.connections]
            + [(r.closed_at, -1) for r in self.connections if r.closed_at is not None]
        )
        best = current = 0
        for _, step in edges:  # at equal times a close (-1) sorts before an open
            current += step
            best = max(best, current)
        return best

    def open_connections(self) -> list[ConnectionRecord]:
        return [live.record for live in self._live.values() if live.record.closed_at is None]

    def subscriptions(self) -> set[str]:
        return {s for live in self._live.values() for s in live.session.streams}

    def subscribers(self, stream: str) -> int:
        """How many open connections carry ``stream`` now (a cluster opens one per book)."""
        return sum(stream in live.session.streams for live in self._live.values())

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- faults ---------------------------------------------------------------------------------

    def drop(self) -> None:
        for live in list(self._live.values()):
            live.record.close_reason = "dropped"
            # Closed now, as the client sees it, not when the handler gets round to it.
            live.record.closed_at = time.monotonic()
            live.ws.transport.abort()

    def refuse_connections(self, seconds: float) -> None:
        """Answer WebSocket handshakes with 503 for ``seconds`` (an upstream shedding load)."""
        self._refuse_until = time.monotonic() + seconds

    def stall(self, seconds: float) -> None:
        self._stalled_until = time.monotonic() + seconds

    def server_shutdown(self) -> None:
        event = {"e": "serverShutdown", "E": self.market.clock.now_ms()}
        for live in list(self._live.values()):
            frame = {"stream": "!serverShutdown", "data": event} if live.session.combined else event
            self._spawn(self._shutdown(live, orjson.dumps(frame).decode()))

    def send_malformed(self) -> None:
        for live in list(self._live.values()):
            self._spawn(self._send(live, '{"stream":"btcusdt@kline_1m","data":{'))

    def fail_rest(self, status: int, times: int = 1, retry_after: int = 1) -> None:
        """The next ``times`` REST requests answer ``status`` (429/418 with Retry-After)."""
        self.rest.fail(status, times, retry_after)

    def depth_faults(
        self,
        *,
        drop: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        lagging_snapshot: float = 0.0,
        max_lag: int = 5,
    ) -> None:
        """From the next diff-depth event on, per event: drop it, send it twice, or hold it back
        and send it after the next one; per ``GET /api/v3/depth``: answer with the book 1 to
        ``max_lag`` events older than the stream. All zero: no faults. What was injected is in
        ``depth.records(symbol)``."""
        self.depth.set_faults(Faults(drop, duplicate, reorder, lagging_snapshot, max_lag))

    def true_book(self, symbol: str, update_id: int) -> tuple[StrLevels, StrLevels] | None:
        """The true book of ``symbol`` right after ``update_id`` (bids, asks, best first, as
        decimal strings), if that id ended a recent event (or None)."""
        return self.depth.true_book(symbol, update_id)

    @property
    def rest_requests(self) -> list[tuple[float, str, dict[str, str], int]]:
        return self.rest.requests

    @property
    def fault_every(self) -> dict[int, int]:
        return self.rest.fault_every

    @fault_every.setter
    def fault_every(self, value: dict[int, int]) -> None:
        self.rest.fault_every = value

    # -- WebSocket ------------------------------------------------------------------------------

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        if is_upgrade(request) and time.monotonic() < self._refuse_until:
            self.refused.append(time.monotonic())
            return json_response(503, {"code": -1003, "msg": "Service unavailable, retry later"})
        response = self.rest.answer(connection, request)
        path = request.path.lower()
        if self.rest_delay > 0 and ("klines" in path or "aggtrades" in path):
            await asyncio.sleep(self.rest_delay)
        return response

    async def _handle(self, ws: ServerConnection) -> None:
        path, params = split(ws.request) if ws.request else ("", {})
        raw_streams = params.get("streams", "") if path == "/stream" else path.removeprefix("/ws")
        wanted = [s for s in raw_streams.strip("/").split("/") if s]
        session = DepthSession(
            self.max_streams, lambda s: s in self.market.tapes, combined=path == "/stream"
        )
        if path not in ("/stream", "/ws") and not path.startswith("/ws/"):
            await ws.close(1008, "unknown path")
            return
        if len(wanted) > self.max_streams or not all(session.valid_stream(s) for s in wanted):
            await ws.close(1008, "invalid stream in URL")
            return
        session.streams.update(dict.fromkeys(wanted))
        record = ConnectionRecord(next(self._numbers), path, time.monotonic())
        self.connections.append(record)
        live = _Live(ws, record, session)
        self._live[record.number] = live
        tasks = [
            asyncio.create_task(self._push_loop(live)),
            asyncio.create_task(self._ping_loop(live)),
        ]
        try:
            async for text in ws:
                await self._on_message(live, text)
        except ConnectionClosed:
            pass
        finally:
            for task in tasks:
                task.cancel()
            if record.closed_at is None:
                record.closed_at = time.monotonic()
            self._live.pop(record.number, None)

    async def _on_message(self, live: _Live, text: str | bytes) -> None:
        now = time.monotonic()
        live.record.messages.append((now, text if isinstance(text, str) else text.decode()))
        if self._over_limit(live):
            return
        reply = control.handle(live.session, text)
        await live.ws.send(orjson.dumps(reply).decode())

    def _over_limit(self, live: _Live) -> bool:
        if self.message_limit is None:
            return False
        if live.record.max_messages_per_second() <= self.message_limit:
            return False
        live.record.close_reason = "too many messages"
        self._spawn(live.ws.close(1008, "Too many requests"))
        return True

    async def _ping_loop(self, live: _Live) -> None:
        for n in itertools.count():
            await asyncio.sleep(self.ping_interval)
            if time.monotonic() < self._stalled_until:
                continue
            try:
                waiter = await live.ws.ping(str(n))
                async with asyncio.timeout(self.pong_timeout):
                    await waiter
            except TimeoutError:
                live.record.close_reason = "no pong"
                await live.ws.close(1008, "pong timeout")
                return
            except ConnectionClosed:
                return
            live.record.pongs += 1
            live.record.messages.append((time.monotonic(), "<pong>"))
            self._over_limit(live)

    async def _push_loop(self, live: _Live) -> None:
        while True:
            frames = self._frames(live)
            # A stalled server sends nothing, and what happened meanwhile is never sent.
            if time.monotonic() >= self._stalled_until:
                for frame in frames:
                    if not await self._send(live, frame):
                        return
            await asyncio.sleep(self.push_interval)

    def _frames(self, live: _Live) -> list[str]:
        now = self.market.clock.now_ms()
        frames: list[str] = []
        for cursors in (live.traded, live.depth):
            for gone in cursors.keys() - live.session.streams.keys():
                del cursors[gone]  # unsubscribed: a later subscription starts afresh
        for stream in list(live.session.streams):
            symbol_lower, _, kind = stream.partition("@")
            symbol = symbol_lower.upper()
            if kind in DEPTH_KINDS:
                frames += self.depth.frames(live.depth, stream, live.session.combined, now)
                continue
            payloads: list[dict[str, Any]] = []
            if kind.startswith("kline_"):
                payloads = self._kline_events(live, stream, symbol, kind[6:], now)
            elif kind == "aggTrade":
                payloads = self._agg_trade_events(live, stream, symbol, now)
            elif kind == "bookTicker":
                payloads = [self._book_ticker(symbol, now)]
            elif kind == "miniTicker":
                payloads = [self._mini_ticker(symbol, now)]
            for data in payloads:
                frame = {"stream": stream, "data": data} if live.session.combined else data
                frames.append(orjson.dumps(frame).decode())
        return frames

    def _kline_events(
        self, live: _Live, stream: str, symbol: str, interval: str, now: int
    ) -> list[dict[str, Any]]:
        spec = control.INTERVALS[interval]
        current = floor_to(spec, now)
        start = live.pushed.get(stream, current)
        events = []
        while start <= current:  # every bar that closed since the last push, then the open one
            bar = self.market.bar(symbol, spec, start, now)
            if bar is not None:
                events.append(
                    kline_payload(
                        symbol,
                        interval,
                        start,
                        *bar,
                        event_time=now,
                        omit_optional=self.omit_optional,
                    )
                )
            start = after(spec, start)
        live.pushed[stream] = current
        return events

    def _agg_trade_events(
        self, live: _Live, stream: str, symbol: str, now: int
    ) -> list[dict[str, Any]]:
        """Every trade since the last push, oldest first. A stream's first push sends none:
        like Binance, a subscription sees the trades made after it, not before."""
        tape = self.market.tapes[symbol]
        newest = now // TICK_MS
        sent = live.traded.get(stream)
        live.traded[stream] = newest
        if sent is None:
            return []
        return [
            agg_trade_event(
                symbol, i, tape.tick(i), event_time=now, omit_optional=self.omit_optional
            )
            for i in range(max(sent + 1, tape.first_trade), newest + 1)
        ]

    def _book_ticker(self, symbol: str, now: int) -> dict[str, Any]:
        tape = self.market.tapes[symbol]
        last = tape.aggregate(now - 60_000, now + 1)
        price = last.close if last else tape.instrument.base_price
        half = max(price * 5e-6, 10.0**-tape.instrument.decimals)
        return {
            "u": now,
            "s": symbol,
            "b": _num(price - half),
            "B": "1.00000000",
            "a": _num(price + half),
            "A": "1.00000000",
        }

    def _mini_ticker(self, symbol: str, now: int) -> dict[str, Any]:
        day = self.market.tapes[symbol].aggregate(now - 86_400_000, now + 1)
        assert day is not None, "the tape starts days before the clock"
        return {
            "e": "24hrMiniTicker",
            "E": now,
            "s": symbol,
            "c": _num(day.close),
            "o": _num(day.open),
            "h": _num(day.high),
            "l": _num(day.low),
            "v": _num(day.volume),
            "q": _num(day.quote_volume),
        }

    async def _send(self, live: _Live, text: str) -> bool:
        try:
            await live.ws.send(text)
        except ConnectionClosed:
            return False
        return True

    async def _shutdown(self, live: _Live, frame: str) -> None:
        await self._send(live, frame)
        await asyncio.sleep(self.shutdown_grace)
        live.record.close_reason = "server shutdown"
        with contextlib.suppress(ConnectionClosed):
            await live.ws.close(1001, "server shutdown")
