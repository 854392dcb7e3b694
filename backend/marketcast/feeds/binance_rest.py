"""Binance's REST klines (bootstrap history, older pages, the rows of a gap) and aggregate
trades (the trades of a gap).

A thin I/O adapter around ``binance_protocol``: it sends ``GET /api/v3/klines`` or
``GET /api/v3/aggTrades``, feeds the answer's status and ``X-MBX-USED-WEIGHT-1M`` to a
``RestGate`` (which then holds every later request back after 429/418 or near the weight
limit), and turns failures into ``UpstreamError`` with a one-line message naming the setting
to check. It never retries by itself: callers know
whether they can wait (a background gap-fill) or not (a client's history request).

Whether the newest kline row of an answer is final is decided on the upstream's clock as known
before the request went out (``upstream``: fed by the stream's event times, refreshed with
``GET /api/v3/time`` when stale), because a row fetched before its close carries values that
still change, whatever this machine's clock says.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Final

import httpx
import orjson

from marketcast.channels.trades import Trade
from marketcast.feeds.binance_protocol import (
    INTERVALS,
    MAX_AGG_TRADES_PER_REQUEST,
    MAX_KLINES_PER_REQUEST,
    UpstreamFormatError,
    parse_agg_trades,
    parse_klines,
    parse_rest_error,
    parse_server_time,
)
from marketcast.feeds.binance_rules import RestGate, UpstreamClock
from marketcast.feeds.pacing import UpstreamError
from marketcast.market import BarKey, Candle
from marketcast.timeframes import nominal_ms
from marketcast.types import Millis, Symbol

#: Pages one gap-fill may fetch; beyond that the oldest part of a gap is not filled.
MAX_GAP_PAGES: Final = 2
#: Seconds an upstream time statement is relied on before asking ``/api/v3/time`` again (the
#: stream's event times keep it fresh while any stream runs).
TIME_MAX_AGE: Final = 2.0


class BinanceRest:
    """Klines over HTTP with Binance's pacing rules."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=timeout)
        self._clock, self._monotonic, self._sleep = clock, monotonic, sleep
        self.gate = RestGate()
        self.upstream = UpstreamClock()
        self.requests = 0

    async def close(self) -> None:
        await self._client.aclose()

    async def ping(self) -> None:
        """One ``GET /api/v3/ping``; raises ``UpstreamError`` if it fails."""
        await self._get("/api/v3/ping", {}, max_wait=0.0)

    async def server_time(self, *, max_wait: float = float("inf")) -> Millis:
        """``GET /api/v3/time``; the answer also updates ``upstream``."""
        body = await self._get("/api/v3/time", {}, max_wait=max_wait)
        try:
            server_time = parse_server_time(orjson.loads(body))
        except (orjson.JSONDecodeError, UpstreamFormatError) as exc:
            raise UpstreamError(f"binance /api/v3/time had a bad body: {exc}") from None
        self.upstream.observe(server_time, self._monotonic())
        return server_time

    async def _upstream_now(self, max_wait: float) -> Millis | None:
        """The upstream's time before a klines request; asked afresh when stale. If asking
        fails, the older statement (or None) only keeps the newest row open longer."""
        if not self.upstream.fresh(self._monotonic(), TIME_MAX_AGE):
            with contextlib.suppress(UpstreamError):
                await self.server_time(max_wait=max_wait)
        return self.upstream.now

    async def klines(
        self,
        key: BarKey,
        *,
        start: Millis | None = None,
        end: Millis | None = None,
        limit: int = MAX_KLINES_PER_REQUEST,
        max_wait: float = float("inf"),
    ) -> list[Candle]:
        """One page: bars opening in ``[start, end]`` (the newest ``limit`` when no start)."""
        params = {
            "symbol": key.symbol,
            "interval": INTERVALS[key.resolution],
            "limit": str(max(1, min(limit, MAX_KLINES_PER_REQUEST))),
        }
        if start is not None:
            params["startTime"] = str(start)
        if end is not None:
            params["endTime"] = str(end)
        server_time = await self._upstream_now(max_wait)
        body = await self._get("/api/v3/klines", params, max_wait=max_wait)
        try:
            return parse_klines(orjson.loads(body), server_time)
        except (orjson.JSONDecodeError, UpstreamFormatError) as exc:
            raise UpstreamError(f"binance klines for {key.symbol} had a bad body: {exc}") from None

    async def before(
        self, key: BarKey, end: Millis | None, limit: int, *, max_wait: float
    ) -> list[Candle]:
        """The newest ``limit`` bars opening before ``end`` (None: up to now), ascending."""
        pages: list[list[Candle]] = []
        remaining, stop = limit, (end - 1 if end is not None else None)
        while remaining > 0:
            page = await self.klines(key, end=stop, limit=remaining, max_wait=max_wait)
            if not page:
                break
            pages.append(page)
            remaining -= len(page)
            stop = page[0].time - 1
            if len(page) < MAX_KLINES_PER_REQUEST:
                break
        return [candle for page in reversed(pages) for candle in page][-limit:] if limit else []

    async def since(self, key: BarKey, start: Millis, until: Millis | None) -> list[Candle]:
        """Bars from ``start`` on, until the page that reaches ``until`` (a live bar already
        buffered) or the present. A gap longer than ``MAX_GAP_PAGES`` pages is filled from
        its newest part only: older bars are beyond what the store keeps anyway."""
        if until is not None:
            span = MAX_GAP_PAGES * MAX_KLINES_PER_REQUEST - 1
            start = max(start, until - span * nominal_ms(key.resolution))
        rows: list[Candle] = []
        for _ in range(MAX_GAP_PAGES):
            page = await self.klines(key, start=start)
            rows += page
            if len(page) < MAX_KLINES_PER_REQUEST or (until is not None and page[-1].time >= until):
                break
            start = page[-1].time + 1
        return rows

    async def agg_trades(
        self,
        symbol: Symbol,
        *,
        from_id: int | None = None,
        limit: int = MAX_AGG_TRADES_PER_REQUEST,
        max_wait: float = float("inf"),
    ) -> list[Trade]:
        """One page of ``GET /api/v3/aggTrades``: trades with id ``>= from_id``, oldest first
        (the newest ``limit`` when no ``from_id``).

        Relied on, from Binance's spot REST documentation: ``fromId`` is inclusive; ``limit``
        defaults to 500 and may be at most 1000; without ``fromId``, ``startTime`` and
        ``endTime`` the most recent trades come; the request weight is 4 (since 2025-03-10;
        it was 1, then 2), counted like every request in ``X-MBX-USED-WEIGHT-1M``, which is
        what ``gate`` paces by. ``fromId`` is never combined with ``startTime``/``endTime``
        here: the futures docs warn that this may time out, and an id cursor needs no times.
        A row's ``a`` is the trade's id (``parse_agg_trades``)."""
        params = {
            "symbol": symbol,
            "limit": str(max(1, min(limit, MAX_AGG_TRADES_PER_REQUEST))),
        }
        if from_id is not None:
            params["fromId"] = str(from_id)
        body = await self._get("/api/v3/aggTrades", params, max_wait=max_wait)
        try:
            return parse_agg_trades(orjson.loads(body))
        except (orjson.JSONDecodeError, UpstreamFormatError) as exc:
            raise UpstreamError(f"binance aggTrades for {symbol} had a bad body: {exc}") from None

    async def _get(self, path: str, params: dict[str, str], *, max_wait: float) -> bytes:
        wait = self.gate.wait_time(self._monotonic())
        if wait > max_wait:
            raise UpstreamError(
                f"binance REST is paused for {wait:.0f} s more (it answered 429/418 or the "
                "request weight is near its limit)"
            )
        if wait > 0:
            await self._sleep(wait)
        self.requests += 1
        try:
            response = await self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise UpstreamError(
                f"cannot reach MARKETCAST_BINANCE_REST_URL={self.base_url}: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        self.gate.on_response(
            self._monotonic(),
            round(self._clock() * 1000),
            response.status_code,
            {k.lower(): v for k, v in response.headers.items()},
        )
        if response.status_code == 200:
            return response.content
        code, message = parse_rest_error(response.content) or (0, response.text[:200])
        if response.status_code in (418, 429):
            raise UpstreamError(
                f"binance REST answered {response.status_code} ({message}); pausing "
                f"{self.gate.wait_time(self._monotonic()):.0f} s"
            )
        raise UpstreamError(
            f"binance REST {path} answered {response.status_code} for {params}: "
            f"code {code}: {message}",
            permanent=code in (-1121, -1120),
        )
