"""The fake Binance's REST side: ``GET /api/v3/klines`` (and ``uiKlines``), ``aggTrades``,
``ping``, ``time``, and ``depth`` (answered by ``binance_depth``).

Kline rows are the 12-field arrays Binance documents, aggregate trades the objects it
documents (``a p q f l T m M``), both computed from the same ``Market`` as the streams: the
trade with id ``i`` is the tape's tick ``i``, so ``aggTrades`` answers with exactly the trades
the ``@aggTrade`` stream sent or will send (``agg_trade_event`` is that stream's payload).
Every answer carries ``X-MBX-USED-WEIGHT-1M`` (Binance's weights: 2 per klines request, 4 per
aggTrades request, 5 to 250 per depth request by its ``limit``, 1 otherwise; counted per real
minute); beyond ``weight_limit`` it answers 429 with ``Retry-After``. Errors are Binance's:
400 with -1121 (invalid symbol), -1120 (invalid interval), -1102, -1100, -1130, -1128.
``fail`` and ``fault_every`` inject 429 (``Retry-After``), 418 or 500. Requests are recorded.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from marketcast.sim import binance_control as control
from marketcast.sim.binance_depth import DepthBooks, depth_weight
from marketcast.sim.http import is_upgrade, json_response, split
from marketcast.sim.market import TICK_MS, Agg, Market, after, before, floor_to


def _num(value: float) -> str:
    return f"{value:.8f}"


def kline_row(start: int, interval: str, agg: Agg) -> list[Any]:
    """A ``GET /api/v3/klines`` row."""
    end = after(control.INTERVALS[interval], start) - 1
    return [
        start,
        _num(agg.open),
        _num(agg.high),
        _num(agg.low),
        _num(agg.close),
        _num(agg.volume),
        end,
        _num(agg.quote_volume),
        agg.count,
        _num(agg.taker_volume),
        _num(agg.taker_quote),
        "0",
    ]


def agg_trade_row(index: int, trade: Agg) -> dict[str, Any]:
    """A ``GET /api/v3/aggTrades`` row: the tape's trade ``index``. One raw trade per aggregate,
    so ``f`` = ``l`` = the id (the same ids a kline's ``f``/``L`` name). ``m`` (the buyer was
    the maker) holds when the tick had no taker-buy volume: the seller took liquidity."""
    return {
        "a": index,
        "p": _num(trade.close),
        "q": _num(trade.volume),
        "f": index,
        "l": index,
        "T": index * TICK_MS,
        "m": trade.taker_volume == 0,
        "M": True,
    }


def agg_trade_event(
    symbol: str, index: int, trade: Agg, *, event_time: int, omit_optional: bool = False
) -> dict[str, Any]:
    """The ``<symbol>@aggTrade`` payload of the same trade (``M``, documented as "Ignore", is
    left out under ``omit_optional``)."""
    event: dict[str, Any] = {"e": "aggTrade", "E": event_time, "s": symbol}
    event.update(agg_trade_row(index, trade))
    if omit_optional:
        del event["M"]
    return event


def _weight(path: str, params: dict[str, str]) -> int:
    """The request weight Binance documents: 4 for aggTrades, 2 for klines, 5..250 for depth
    (by ``limit``), 1 otherwise here."""
    lowered = path.lower()
    if lowered == "/api/v3/depth":
        return depth_weight(params.get("limit"))
    return 4 if lowered == "/api/v3/aggtrades" else 2 if "klines" in lowered else 1


class KlinesApi:
    """REST routes of the fake Binance, for its ``process_request`` hook."""

    def __init__(
        self, market: Market, weight_limit: int = 6000, depth: DepthBooks | None = None
    ) -> None:
        self.market = market
        self.weight_limit = weight_limit
        #: The order books ``GET /api/v3/depth`` answers from; None: no such route.
        self.depth = depth
        #: (monotonic time, path, parameters, HTTP status) of every request.
        self.requests: list[tuple[float, str, dict[str, str], int]] = []
        #: HTTP status -> N: every Nth request answers that status (CLI fault flags).
        self.fault_every: dict[int, int] = {}
        self._faults: deque[tuple[int, int]] = deque()
        self._weight: tuple[int, int] = (0, 0)  # (real minute, weight used in it)

    def fail(self, status: int, times: int = 1, retry_after: int = 1) -> None:
        for _ in range(times):
            self._faults.append((status, retry_after))

    def answer(self, connection: ServerConnection, request: Request) -> Response | None:
        """``process_request`` of the fake's server: REST requests, not WebSocket upgrades."""
        if is_upgrade(request):
            return None
        path, params = split(request)
        status, body, headers = self._rest(path, params)
        self.requests.append((time.monotonic(), path, params, status))
        return json_response(status, body, headers)

    def _rest(self, path: str, params: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        minute = int(time.time() // 60)
        used = (self._weight[1] if self._weight[0] == minute else 0) + _weight(path, params)
        self._weight = (minute, used)
        headers = {"X-MBX-USED-WEIGHT-1M": str(used)}
        number = len(self.requests) + 1
        for status, every in self.fault_every.items():
            if every > 0 and number % every == 0:
                self._faults.appendleft((status, 1))
        if self._faults:
            status, retry_after = self._faults.popleft()
            if status in (418, 429):
                headers["Retry-After"] = str(retry_after)
            message = {418: "IP banned", 429: "Too many requests"}.get(status, "Internal error")
            return status, {"code": -1003 if status != 500 else -1000, "msg": message}, headers
        if used > self.weight_limit:
            headers["Retry-After"] = str(60 - int(time.time()) % 60)
            return 429, {"code": -1003, "msg": "Too much request weight used."}, headers
        if path == "/api/v3/ping":
            return 200, {}, headers
        if path == "/api/v3/time":
            return 200, {"serverTime": self.market.clock.now_ms()}, headers
        if path in ("/api/v3/klines", "/api/v3/uiKlines"):
            status, body = self._klines(params)
            return status, body, headers
        if path == "/api/v3/aggTrades":
            status, body = self._agg_trades(params)
            return status, body, headers
        if path == "/api/v3/depth" and self.depth is not None:
            symbol = params.get("symbol", "")
            status, body = self._symbol_error(symbol) or self.depth.answer(
                symbol, params.get("limit"), self.market.clock.now_ms()
            )
            return status, body, headers
        return 404, {"code": -1000, "msg": f"Unknown path {path}"}, headers

    def _symbol_error(self, symbol: str) -> tuple[int, Any] | None:
        if not symbol:
            return 400, {
                "code": -1102,
                "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
            }
        if symbol not in self.market.tapes:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        return None

    def _klines(self, params: dict[str, str]) -> tuple[int, Any]:
        symbol, interval = params.get("symbol", ""), params.get("interval", "")
        refused = self._symbol_error(symbol)
        if refused is not None:
            return refused
        if interval not in control.INTERVALS:
            return 400, {"code": -1120, "msg": "Invalid interval."}
        try:
            limit = int(params.get("limit", "500"))
            start = int(params["startTime"]) if "startTime" in params else None
            end = int(params["endTime"]) if "endTime" in params else None
        except ValueError:
            return 400, {"code": -1100, "msg": "Illegal characters found in a parameter."}
        if not 1 <= limit <= 1000:
            return 400, {"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."}
        spec = control.INTERVALS[interval]
        now = self.market.clock.now_ms()
        stop = min(end, now) if end is not None else now
        if start is None:  # the newest `limit` bars opening at or before `stop`
            start = floor_to(spec, stop)
            for _ in range(limit - 1):
                start = before(spec, start)
        bars = self.market.bars(symbol, spec, start, stop + 1, now)[:limit]
        return 200, [kline_row(t, interval, agg) for t, agg, _ in bars]

    def _agg_trades(self, params: dict[str, str]) -> tuple[int, Any]:
        """``GET /api/v3/aggTrades`` as Binance documents it: ``fromId``, ``startTime`` and
        ``endTime`` inclusive; ``limit`` 1..1000, default 500; with ``fromId`` the trades from
        that id on; with ``startTime`` (and maybe ``endTime``) the oldest ``limit`` trades from
        it; with ``endTime`` alone the newest ``limit`` up to it (Binance: "trades before that
        time, up to the limit"); with none of them the newest ``limit``. ``fromId`` with a time
        is refused (-1128): the docs leave the combination undefined, so nothing should rely
        on it."""
        symbol = params.get("symbol", "")
        refused = self._symbol_error(symbol)
        if refused is not None:
            return refused
        try:
            limit = int(params.get("limit", "500"))
            from_id, start, end = (
                int(params[name]) if name in params else None
                for name in ("fromId", "startTime", "endTime")
            )
        except ValueError:
            return 400, {"code": -1100, "msg": "Illegal characters found in a parameter."}
        if not 1 <= limit <= 1000:
            return 400, {"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."}
        if from_id is not None and (start is not None or end is not None):
            return 400, {"code": -1128, "msg": "Combination of optional parameters invalid."}
        tape = self.market.tapes[symbol]
        # Trades exist from the listing up to now: ids first..newest.
        first, newest = tape.first_trade, self.market.clock.now_ms() // TICK_MS
        if from_id is not None:
            low = max(from_id, first)
            ids = range(low, min(newest, low + limit - 1) + 1)
        else:
            low = first if start is None else max(first, -(-start // TICK_MS))
            high = newest if end is None else min(newest, end // TICK_MS)
            if start is None:
                ids = range(max(low, high - limit + 1), high + 1)
            else:
                ids = range(low, min(high, low + limit - 1) + 1)
        return 200, [agg_trade_row(i, tape.tick(i)) for i in ids]
