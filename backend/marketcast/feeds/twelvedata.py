"""``TwelveDataFeed``: forex (and other) bars and quotes polled from Twelve Data's REST API.

Why polling: the REST API is what every Twelve Data plan has, and it returns whole bars. The
cost is the request budget (8 a minute on the free plan), so:

- One *target* is polled per (symbol, Twelve Data interval), however many keys and clients
  need it: ``1`` and ``3`` of one symbol share the ``1min`` series (``3`` is aggregated).
  A symbol's quotes are one more target, polled from ``/quote`` (one credit per symbol).
- Every request, polls of bars and quotes and history alike, takes a slot of one
  ``SlidingWindow`` — never more than ``budget`` requests in any ``window`` seconds, whatever
  the number of subscribers or routes. Quotes do not get a budget of their own: the plan's
  credits are one pool, and a second limiter would let the two together overspend it.
  Targets are polled earliest-due first, each at most every ``min_poll`` seconds, so with
  many targets each is polled less often (and its keys may turn stale, which is the truth).
- Every polled quote goes out, even one equal to the last: quotes have no snapshot, so a
  client subscribing to a running quote key gets its first quote from the next poll, also
  while a closed market answers the same quote each time.
- Errors never stop the loop: a 429 (out of credits) or a bad key pauses all polling with
  full-jitter backoff, an error about one symbol (400/404) backs that target off alone, and
  each failure is logged in one line. The API key travels in the ``Authorization`` header,
  never in a URL, and is masked in anything logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
import orjson

from marketcast.feeds.aggregate import aggregate
from marketcast.feeds.base import FeedSink, log_sink_failure
from marketcast.feeds.pacing import Backoff, SlidingWindow, UpstreamError
from marketcast.feeds.sim_prices import asset_class_of
from marketcast.feeds.status import FeedStatus
from marketcast.feeds.twelvedata_protocol import (
    MAX_OUTPUTSIZE,
    PolledSeries,
    TwelveDataError,
    TwelveDataFormatError,
    check_status,
    parse_quote,
    parse_time_series,
    quote_params,
    source_of,
    time_series_params,
    upstream_clock,
)
from marketcast.market import BarKey, Candle, Quote, QuoteKey, StreamKey, SymbolInfo
from marketcast.timeframes import RESOLUTIONS, bucket_start
from marketcast.types import Millis, Resolution, Symbol

_T = TypeVar("_T")

log = logging.getLogger("marketcast.feeds.twelvedata")

#: Longest pause of one target after errors about it, in seconds.
MAX_TARGET_BACKOFF = 600.0


@dataclass
class _Target:
    """One polled series (or, with ``source`` None, the symbol's quote) and its keys."""

    symbol: Symbol
    source: Resolution | None
    keys: set[StreamKey] = field(default_factory=set)
    #: Monotonic time of the next poll.
    due: float = 0.0
    failures: int = 0


class TwelveDataFeed:
    """A ``Feed`` of Twelve Data symbols (``EUR/USD``, ``AAPL``...): bars and quotes."""

    name: str = "twelvedata"

    def __init__(
        self,
        symbols: Sequence[Symbol],
        *,
        rest_url: str,
        api_key: str,
        budget: int = 8,
        window: float = 60.0,
        min_poll: float = 10.0,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._symbols = list(dict.fromkeys(symbols))
        self.rest_url = rest_url.rstrip("/")
        self._api_key = api_key
        self.budget = SlidingWindow(budget, window)
        self.min_poll, self.timeout = min_poll, timeout
        #: Wall clock (s), only to measure how late answers arrive (``status().lag``); it
        #: never decides whether a bar is closed (the upstream's clock does).
        self._clock, self._monotonic, self._sleep = clock, monotonic, sleep
        #: Pause of all polling after a 429, a bad key or an unreachable API: from one slot
        #: of the budget up to two whole windows (credits come back within one).
        self._backoff = Backoff(window / budget, 2 * window, rng=rng)
        self._paused_until = 0.0
        self._targets: dict[tuple[Symbol, Resolution | None], _Target] = {}
        #: Per key for the feed's lifetime: a key watched again continues where it stopped.
        self._series: dict[BarKey, PolledSeries] = {}
        self._wake = asyncio.Event()
        #: Requests are serialised (see ``_request``).
        self._one_at_a_time = asyncio.Lock()
        self._sink: FeedSink | None = None
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self.requests = 0
        #: For ``status()``: monotonic time of the last good answer, and how late the last
        #: answer arrived by the upstream's clock (its ``Date``), in seconds.
        self._last_ok: float | None = None
        self._lag: float | None = None

    def symbols(self) -> Sequence[SymbolInfo]:
        return [SymbolInfo(s, asset_class_of(s), self.name, RESOLUTIONS) for s in self._symbols]

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, sink: FeedSink) -> None:
        self._sink = sink
        self._client = httpx.AsyncClient(
            base_url=self.rest_url,
            timeout=self.timeout,
            headers={"Authorization": f"apikey {self._api_key}"},
        )
        self._task = asyncio.create_task(self._poll_loop(), name="twelvedata-poller")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def watch(self, key: StreamKey) -> None:
        if key.symbol not in self._symbols:
            raise ValueError(f"twelvedata feed does not serve {key.symbol!r}: {self._symbols}")
        if isinstance(key, BarKey):
            self._series.setdefault(key, PolledSeries(key.resolution))
        target_id = _target_id(key)
        target = self._targets.get(target_id)
        if target is None:
            target = self._targets[target_id] = _Target(*target_id, due=self._monotonic())
        target.keys.add(key)
        self._wake.set()

    async def unwatch(self, key: StreamKey) -> None:
        target_id = _target_id(key)
        target = self._targets.get(target_id)
        if target is not None:
            target.keys.discard(key)
            if not target.keys:
                del self._targets[target_id]

    def _polled(self, key: StreamKey) -> bool:
        target = self._targets.get(_target_id(key))
        return target is not None and key in target.keys

    async def fetch_history(self, key: BarKey, end: Millis | None, limit: int) -> list[Candle]:
        series = self._series.setdefault(key, PolledSeries(key.resolution))
        parts = series.parts_per_bar()
        params = time_series_params(
            key.symbol,
            series.source,
            outputsize=min((limit + 1) * parts, MAX_OUTPUTSIZE),
            end=end - 1000 if end is not None else None,
        )
        rows = [
            row
            for row in await self._request(params, series.source, self.timeout)
            if end is None or row.time < end
        ]
        if end is None and not self._polled(key):
            # A key nobody polls yet starts from what its caller stores. A polled key's
            # state belongs to its polls: seeding it with rows newer than the last poll would
            # count a closed bar as delivered that no subscriber ever got.
            series.seed(rows)
        if parts == 1 or not rows:
            return rows[-limit:] if limit else []
        bars = aggregate(rows, key.resolution, source=series.source)
        if bars and rows[0].time > bucket_start(rows[0].time, key.resolution):
            bars = bars[1:]  # its first parts are older than the rows: incomplete
        return bars[-limit:] if limit else []

    # -- polling --------------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        while True:
            now = self._monotonic()
            target = min(self._targets.values(), key=lambda t: t.due, default=None)
            if target is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            delay = max(target.due - now, self._paused_until - now, self.budget.wait_time(now))
            if delay > 0:
                self._wake.clear()
                # A new watch may have an earlier due time: wake up for it.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                continue
            if target.source is None:
                await self._poll_quote(target)
            else:
                await self._poll(target, target.source)

    async def _poll(self, target: _Target, source: Resolution) -> None:
        series = {key: self._series[key] for key in target.keys if isinstance(key, BarKey)}
        cursors = [s.cursor() for s in series.values()]
        known = [c for c in cursors if c is not None]
        if known:
            # From the bar before the first one owed: once every bar is closed, the first
            # owed one may not exist yet, and a range without rows is an error (400 "No
            # data is available"), not an empty answer. The repeated bar is dropped.
            start = bucket_start(min(known) - 1, source)
            params = time_series_params(
                target.symbol, source, outputsize=MAX_OUTPUTSIZE, start=start
            )
        else:
            size = max(s.parts_per_bar() for s in series.values()) + 1
            params = time_series_params(target.symbol, source, outputsize=size)
        rows = await self._poll_once(target, self._request(params, source, 0.0))
        if rows is None:
            return
        for key, one in series.items():
            if key in target.keys:
                for candle in one.apply(rows):
                    await self._emit(key, candle)

    async def _poll_quote(self, target: _Target) -> None:
        quote = await self._poll_once(target, self._quote_request(target.symbol))
        if quote is not None and QuoteKey(target.symbol) in target.keys:
            await self._emit_quote(target.symbol, quote)

    def _succeeded(self, target: _Target) -> None:
        target.failures = 0
        self._last_ok = self._monotonic()
        self._backoff.reset()

    def _on_error(self, target: _Target, exc: TwelveDataError) -> None:
        if exc.code in (400, 404, 414):
            target.failures += 1
            pause = min(self.min_poll * 2.0**target.failures, MAX_TARGET_BACKOFF)
            target.due = self._monotonic() + pause
            log.warning(
                "twelvedata refused %s %s: %s; trying it again in %.0f s",
                target.symbol,
                target.source or "quote",
                self._redact(exc.message),
                pause,
            )
        elif exc.code in (401, 403):
            self._pause(f"{exc} (check MARKETCAST_TWELVEDATA_API_KEY)")
        else:
            self._pause(str(exc))

    def status(self) -> FeedStatus:
        """For ``/metrics`` (``feeds.status``): polling, paused after errors, or idle; the
        age of the last good answer, and how late the last answer arrived (our clock minus
        the ``Date`` it carries: network time plus clock skew, at whole seconds)."""
        now = self._monotonic()
        paused = self._paused_until > now
        age = now - self._last_ok if self._last_ok is not None else None
        state = "paused" if paused else "polling" if self._targets else "idle"
        return FeedStatus(connected=not paused, last_message_age=age, lag=self._lag, state=state)

    def _pause(self, reason: str) -> None:
        delay = max(self._backoff.next_delay(), self.budget.window / self.budget.limit)
        self._paused_until = self._monotonic() + delay
        log.warning("twelvedata: %s; pausing all polls for %.1f s", self._redact(reason), delay)

    async def _poll_once(self, target: _Target, request: Awaitable[_T]) -> _T | None:
        """One poll of ``target`` (bars or quote): schedules its next one, then counts the
        answer for the target's backoff, or pauses every poll on an account-wide error."""
        target.due = self._monotonic() + self.min_poll
        try:
            answer = await request
        except TwelveDataError as exc:
            self._on_error(target, exc)
            return None
        except UpstreamError as exc:
            self._pause(str(exc))
            return None
        self._succeeded(target)
        return answer

    async def _quote_request(self, symbol: Symbol) -> Quote:
        """One budgeted ``quote`` request -> the quote."""
        body, _ = await self._call("/quote", quote_params(symbol), 0.0)
        try:
            return parse_quote(body)
        except TwelveDataFormatError as exc:
            raise TwelveDataError(0, f"bad quote body: {exc}") from None

    async def _request(
        self, params: dict[str, str], resolution: Resolution, max_wait: float
    ) -> list[Candle]:
        """One budgeted ``time_series`` request -> its candles; the newest is closed only if
        the answer's own ``Date`` says its close has passed."""
        body, upstream_now = await self._call("/time_series", params, max_wait)
        try:
            return parse_time_series(body, resolution, upstream_now=upstream_now)
        except TwelveDataFormatError as exc:
            raise TwelveDataError(0, f"bad time_series body: {exc}") from None

    async def _call(
        self, path: str, params: dict[str, str], max_wait: float
    ) -> tuple[object, int | None]:
        """One budgeted request -> (its body, the upstream's clock when it answered); waits
        at most ``max_wait`` for a slot of the budget. An error body raises
        ``TwelveDataError``.

        Requests go one at a time and a slot is counted when the answer is back: the API
        saw the request somewhere between sending and answering, so spacing sends from
        *answers* keeps its count within the budget even when a connection is slow."""
        deadline = self._monotonic() + max_wait
        async with self._one_at_a_time:
            wait = self.budget.wait_time(self._monotonic())
            if wait > 0 and self._monotonic() + wait > deadline:
                raise UpstreamError(
                    f"twelvedata request budget spent; a slot frees in {wait:.0f} s"
                )
            if wait > 0:
                await self._sleep(wait)
            if self._client is None:
                raise UpstreamError("the twelvedata feed is not started")
            self.requests += 1
            try:
                response = await self._client.get(path, params=params)
            except httpx.HTTPError as exc:
                raise UpstreamError(
                    f"cannot reach MARKETCAST_TWELVEDATA_REST_URL={self.rest_url}: "
                    f"{type(exc).__name__}: {self._redact(str(exc))}"
                ) from None
            finally:
                self.budget.record(self._monotonic())
        upstream_now = upstream_clock(response.headers.get("date"))
        if upstream_now is not None:
            self._lag = max(0.0, self._clock() - upstream_now / 1000)
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise TwelveDataError(response.status_code, response.text[:200]) from None
        check_status(body)
        if response.status_code != 200:
            raise TwelveDataError(response.status_code, f"HTTP {response.status_code}")
        return body, upstream_now

    async def _emit(self, key: BarKey, candle: Candle) -> None:
        assert self._sink is not None, "TwelveDataFeed.start was not called"
        try:
            await self._sink.on_candle(key, candle)
        except Exception as exc:
            log_sink_failure(log, f"a candle of {key}", exc)

    async def _emit_quote(self, symbol: Symbol, quote: Quote) -> None:
        assert self._sink is not None, "TwelveDataFeed.start was not called"
        try:
            await self._sink.on_quote(symbol, quote)
        except Exception as exc:
            log_sink_failure(log, f"a quote of {symbol}", exc)

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text


def _target_id(key: StreamKey) -> tuple[Symbol, Resolution | None]:
    """Which target serves ``key``: its symbol's source series, or its symbol's quote."""
    if isinstance(key, BarKey):
        return key.symbol, source_of(key.resolution)
    return key.symbol, None
