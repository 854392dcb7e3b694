"""A fake Twelve Data REST API on loopback: ``GET /time_series`` and ``GET /quote``.

It answers like the real one: newest bar first unless ``order=asc``, no ``volume`` for forex,
errors as ``{"code", "message", "status": "error"}`` bodies, a per-minute credit limit that
answers 429 once spent (``credits_per_minute``; a quote costs one credit like a series), and
the API key either as the ``apikey`` parameter or as an ``Authorization: apikey KEY`` header.
Every answer carries a ``Date`` from the fake's own (accelerated) clock, as a real server's
carries its clock: clients may close bars by it, and must not by theirs. Every request is
recorded (without its key) with its time, so a test can assert that a client stayed within its
budget.

Fault injection: ``fail_next(code, times, http_status=...)`` makes the next requests answer an
error body (429 out of credits, 400, 500...), under HTTP 200 or the code itself;
``omit_volume`` drops the optional ``volume`` of stocks and crypto.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Final

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from marketcast.sim.http import is_upgrade, json_response, split
from marketcast.sim.market import TICK_MS, Agg, Instrument, Market, before, floor_to

INTERVALS: Final[dict[str, int | str]] = {
    "1min": 60_000,
    "5min": 300_000,
    "15min": 900_000,
    "30min": 1_800_000,
    "45min": 2_700_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "8h": 28_800_000,
    "1day": 86_400_000,
    "1week": "W",
    "1month": "M",
}
_DAILY: Final = {"1day", "1week", "1month"}


@dataclass(frozen=True, slots=True)
class RequestRecord:
    at: float
    params: dict[str, str]
    #: The ``code`` answered: 200, or the error body's code.
    code: int
    path: str = "/time_series"


def _meta(instrument: Instrument, interval: str) -> dict[str, Any]:
    symbol = instrument.symbol
    if "/" in symbol:
        base, quote = symbol.split("/")
        meta: dict[str, Any] = {
            "symbol": symbol,
            "interval": interval,
            "currency_base": base,
            "currency_quote": quote,
        }
        # Forex carries no volume and names no exchange; crypto pairs do both.
        if instrument.has_volume:
            meta.update(exchange="Binance", type="Digital Currency")
        else:
            meta["type"] = "Physical Currency"
        return meta
    return {
        "symbol": symbol,
        "interval": interval,
        "currency": "USD",
        "exchange_timezone": "UTC",
        "exchange": "NASDAQ",
        "mic_code": "XNGS",
        "type": "Common Stock",
    }


def _identity(instrument: Instrument) -> dict[str, Any]:
    """How ``/quote`` names an instrument: forex by its two currencies, others by exchange."""
    symbol = instrument.symbol
    if "/" not in symbol:
        return {"name": symbol, "exchange": "NASDAQ", "mic_code": "XNGS", "currency": "USD"}
    base, quote = symbol.split("/")
    return {
        "name": f"{base} / {quote}",
        # Forex has no volume; crypto pairs trade on an exchange.
        "exchange": "Binance" if instrument.has_volume else "Forex",
        "currency_base": base,
        "currency_quote": quote,
    }


def _parse_date(text: str) -> int | None:
    for layout in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            return int(datetime.strptime(text, layout).replace(tzinfo=UTC).timestamp() * 1000)
        except ValueError:
            continue
    return None


def _error(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "status": "error"}


class FakeTwelveData:
    """The fake server; ``await start()`` binds it, ``port`` tells where."""

    def __init__(
        self,
        market: Market,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        credits_per_minute: int | None = None,
        credit_window: float = 60.0,
    ) -> None:
        self.market = market
        self.host, self.port = host, port
        #: When set, requests must carry it.
        self.api_key = api_key
        self.credits_per_minute = credits_per_minute
        #: Seconds over which ``credits_per_minute`` is counted (shorter in tests).
        self.credit_window = credit_window
        self.requests: list[RequestRecord] = []
        self.omit_volume = False
        #: Error code -> N: every Nth request answers that error body (CLI fault flags).
        self.fault_every: dict[int, int] = {}
        self._faults: deque[tuple[int, int]] = deque()
        self._server: Server | None = None

    async def start(self) -> None:
        self._server = await serve(
            self._refuse_ws, self.host, self.port, process_request=self._http, ping_interval=None
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def fail_next(self, code: int, times: int = 1, *, http_status: int = 200) -> None:
        """The next ``times`` requests get an error body with ``code`` under ``http_status``."""
        for _ in range(times):
            self._faults.append((code, http_status))

    def max_requests_in(self, window: float) -> int:
        """The most requests recorded in any ``window`` seconds."""
        times = [r.at for r in self.requests]
        best, first = 0, 0
        for last, t in enumerate(times):
            while times[first] <= t - window:
                first += 1
            best = max(best, last - first + 1)
        return best

    async def _refuse_ws(self, ws: ServerConnection) -> None:
        await ws.close(1008, "this fake serves REST only")

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        if is_upgrade(request):
            return None
        path, params = split(request)
        header = request.headers.get("Authorization", "")
        key = params.pop("apikey", None) or header.removeprefix("apikey ").strip() or None
        status, body = self._answer(path, params, key)
        code = body.get("code", 200) if isinstance(body, dict) else 200
        self.requests.append(RequestRecord(time.monotonic(), params, code, path))
        now = datetime.fromtimestamp(self.market.clock.now_ms() // 1000, tz=UTC)
        return json_response(status, body, {"Date": format_datetime(now, usegmt=True)})

    def _answer(self, path: str, params: dict[str, str], key: str | None) -> tuple[int, Any]:
        number = len(self.requests) + 1
        for every_code, every in self.fault_every.items():
            if every > 0 and number % every == 0:
                self._faults.appendleft((every_code, every_code if every_code >= 400 else 200))
        if self._faults:
            code, http_status = self._faults.popleft()
            return http_status, _error(code, f"injected fault {code}")
        if self.api_key is not None and key != self.api_key:
            return 401, _error(401, "**apikey** parameter is incorrect or not specified.")
        if self.credits_per_minute is not None:
            now = time.monotonic()
            used = sum(1 for r in self.requests if r.at > now - self.credit_window)
            if used >= self.credits_per_minute:
                return 429, _error(
                    429,
                    f"You have run out of API credits for the current "
                    f"minute. {used} API credits were used, with the "
                    f"current limit being {self.credits_per_minute}.",
                )
        if path == "/quote":
            return self._quote(params)
        if path != "/time_series":
            return 404, _error(404, f"endpoint {path} not found")
        return self._time_series(params)

    def _refusal(self, symbol: str, interval: str) -> tuple[int, Any] | None:
        """Twelve Data's answer to a missing or unknown symbol or interval, or None if both
        are served (the checks ``/quote`` and ``/time_series`` share, in the same order)."""
        if not symbol:
            return 400, _error(400, "**symbol** parameter is missing or invalid.")
        if symbol not in self.market.tapes:
            return 404, _error(404, f"**symbol** {symbol} not found.")
        if interval not in INTERVALS:
            return 400, _error(
                400,
                f"**interval** {interval!r} is not supported. Supported: " + ", ".join(INTERVALS),
            )
        return None

    def _quote(self, params: dict[str, str]) -> tuple[int, Any]:
        """The documented ``/quote`` object: the running bar of ``interval`` (``1day`` by
        default) as strings, ``previous_close`` and the change from it, ``timestamp`` (the
        bar's open) and ``last_quote_at`` (the last trade), both unix seconds."""
        symbol, interval = params.get("symbol", ""), params.get("interval", "1day")
        refused = self._refusal(symbol, interval)
        if refused is not None:
            return refused
        tape = self.market.tapes[symbol]
        spec, now = INTERVALS[interval], self.market.clock.now_ms()
        start = floor_to(spec, now)
        bar = tape.aggregate(start, now + 1)
        if bar is None:
            return 400, _error(400, "No data is available for this symbol yet.")
        # Before the tape's first bar, the change is counted from this bar's open.
        previous = tape.aggregate(before(spec, start), start)
        previous_close = bar.open if previous is None else previous.close
        instrument, digits = tape.instrument, tape.instrument.decimals
        change = bar.close - previous_close
        body: dict[str, Any] = {
            "symbol": symbol,
            **_identity(instrument),
            "datetime": self._row(instrument, interval, start, bar)["datetime"],
            "timestamp": start // 1000,
            "last_quote_at": bar.last_tick * TICK_MS // 1000,
            "open": f"{bar.open:.{digits}f}",
            "high": f"{bar.high:.{digits}f}",
            "low": f"{bar.low:.{digits}f}",
            "close": f"{bar.close:.{digits}f}",
        }
        if instrument.has_volume and not self.omit_volume:
            body["volume"] = self._row(instrument, interval, start, bar)["volume"]
        body.update(
            previous_close=f"{previous_close:.{digits}f}",
            change=f"{change:.{digits}f}",
            percent_change=f"{change / previous_close * 100:.5f}",
            is_market_open=True,
        )
        return 200, body

    def _time_series(self, params: dict[str, str]) -> tuple[int, Any]:
        symbol, interval = params.get("symbol", ""), params.get("interval", "")
        refused = self._refusal(symbol, interval)
        if refused is not None:
            return refused
        tape = self.market.tapes[symbol]
        if params.get("timezone", "UTC") not in ("UTC", "Exchange"):
            return 400, _error(400, "**timezone** must be UTC or Exchange on this fake.")
        try:
            size = int(params.get("outputsize", "30"))
        except ValueError:
            size = 0
        if not 1 <= size <= 5000:
            return 400, _error(400, "**outputsize** must be between 1 and 5000.")
        spec, now = INTERVALS[interval], self.market.clock.now_ms()
        start = _parse_date(params["start_date"]) if "start_date" in params else None
        end = _parse_date(params["end_date"]) if "end_date" in params else None
        if ("start_date" in params and start is None) or ("end_date" in params and end is None):
            return 400, _error(
                400, "**start_date**/**end_date** must look like 2006-01-02 or 2006-01-02T15:04:05."
            )
        stop = min(now, end) if end is not None else now
        first = start if start is not None else self._back(spec, stop, size)
        bars = self.market.bars(symbol, spec, first, stop + 1, now)[-size:]
        if not bars:
            return 400, _error(
                400,
                "No data is available on the specified dates. "
                "Try setting different start/end dates.",
            )
        values = [self._row(tape.instrument, interval, t, agg) for t, agg, _ in bars]
        if params.get("order", "desc").lower() != "asc":
            values.reverse()
        return 200, {"meta": _meta(tape.instrument, interval), "values": values, "status": "ok"}

    @staticmethod
    def _back(spec: int | str, stop: int, count: int) -> int:
        start = floor_to(spec, stop)
        for _ in range(count - 1):
            start = before(spec, start)
        return start

    def _row(self, instrument: Instrument, interval: str, t: int, agg: Agg) -> dict[str, str]:
        moment = datetime.fromtimestamp(t / 1000, tz=UTC)
        digits = instrument.decimals
        row = {
            "datetime": moment.strftime("%Y-%m-%d" if interval in _DAILY else "%Y-%m-%d %H:%M:%S"),
            "open": f"{agg.open:.{digits}f}",
            "high": f"{agg.high:.{digits}f}",
            "low": f"{agg.low:.{digits}f}",
            "close": f"{agg.close:.{digits}f}",
        }
        if instrument.has_volume and not self.omit_volume:
            row["volume"] = (
                f"{agg.volume:.0f}" if instrument.size_decimals == 0 else f"{agg.volume:.8f}"
            )
        return row
