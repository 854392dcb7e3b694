"""REST endpoints: candle history, the symbol catalog, health and readiness.

Errors use one shape, ``{"detail": {"code", "message"}}``, with the same codes as WebSocket
errors where the cause is the same (``unknown_symbol``, ``unsupported_resolution``,
``rate_limited``), so a client can share its error handling between the two.

Why the market-data routes are rate limited per client address and the health routes are
not: one history request can make the server read, generate or fetch a thousand bars, and ten
clients looping such requests held a bystander's WebSocket ping for seconds. Each client
address gets a token bucket (``marketcast.ratelimit``, checked before routing by
``rest_limit.RestRateLimit``): a request takes one token, and one
more per 50 bars it returned or had fetched; over the limit the answer is 429 with
``Retry-After``. Probes (``/healthz``, ``/readyz``) and ``/metrics`` are the operators' and
stay free. Behind a proxy the address is the one uvicorn takes from ``X-Forwarded-For`` for
trusted proxies (``--forwarded-allow-ips``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from marketcast.errors import ErrorCode, ServiceUnavailable
from marketcast.market import BarKey
from marketcast.protocol import MAX_SNAPSHOT, SYMBOL_PATTERN, Bar
from marketcast.ratelimit import TokenBucket, cost_of_bars
from marketcast.recovery import FetchTally
from marketcast.rest_limit import BUCKET_STATE
from marketcast.streams import StreamManager
from marketcast.timeframes import RESOLUTION_ALIASES, RESOLUTIONS, normalize_resolution
from marketcast.types import Resolution
from marketcast.wire import candle_dict


class HistoryResponse(BaseModel):
    symbol: str
    resolution: Resolution
    bars: list[Bar] = Field(description="Ascending by open time.")


class SymbolEntry(BaseModel):
    symbol: str
    asset_class: str
    source: str
    resolutions: list[Resolution]
    stale: bool = Field(
        default=False,
        description="True while a running stream of this symbol has had no upstream data "
        "for several of its intervals (see /readyz for which).",
    )


class SymbolsResponse(BaseModel):
    symbols: list[SymbolEntry]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    detail: ErrorDetail


class HealthResponse(BaseModel):
    status: Literal["ok"]


class ReadyResponse(BaseModel):
    status: Literal["ready", "not ready"]
    connections: int
    active_streams: int
    stale_streams: list[str] = Field(
        default_factory=list,
        description="Topics with no upstream data for several intervals. Informational: "
        "readiness stays ready, since another worker would see the same upstream.",
    )


_RATE_LIMITED: dict[int | str, dict[str, object]] = {
    429: {
        "model": ErrorResponse,
        "description": "Over this client's request rate (`rate_limited`); retry after "
        "`Retry-After` seconds.",
    },
}
_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorResponse, "description": "A parameter is out of range."},
    404: {"model": ErrorResponse, "description": "The symbol is not served."},
    **_RATE_LIMITED,
    503: {
        "model": ErrorResponse,
        "description": "The shared store did not answer (`unavailable`); retry after "
        "`Retry-After` seconds.",
    },
}


def _fail(status: int, code: ErrorCode, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail={"code": code.value, "message": message})


def install_error_bodies(app: FastAPI) -> None:
    """Every error answer in the documented shape ``{"detail": {"code", "message"}}``.

    Without this, a failure below the routes (the shared store down) was answered with
    Starlette's plain-text ``Internal Server Error``, which a client parsing the documented
    shape cannot read. An unreachable store is a 503 with ``Retry-After`` (``unavailable``:
    it passes); anything else is a 500 (``internal_error``: a bug, logged with its traceback).
    """

    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"detail": {"code": ErrorCode.UNAVAILABLE.value, "message": str(exc)}},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    async def internal(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"detail": {"code": ErrorCode.INTERNAL_ERROR.value, "message": "internal error"}},
            status_code=500,
        )

    app.add_exception_handler(ServiceUnavailable, unavailable)
    app.add_exception_handler(Exception, internal)


def build_rest_router(
    streams: StreamManager,
    *,
    is_ready: Callable[[], bool],
    connection_count: Callable[[], int],
) -> APIRouter:
    """The REST routes, bound to this app's stream manager (no module-level state)."""
    router = APIRouter()

    @router.get(
        "/api/v1/market-data/history",
        response_model=HistoryResponse,
        responses=_ERRORS,
        tags=["market-data"],
        summary="Candles of a symbol at a resolution, ascending by open time.",
    )
    async def history(
        symbol: Annotated[str, Query(pattern=SYMBOL_PATTERN, examples=["BTCUSDT"])],
        resolution: Annotated[
            str,
            Query(
                description="TradingView resolution, e.g. 1, 60, D (aliases 1D, 1W, 1M); one "
                "the symbol does not serve is answered with 400 unsupported_resolution.",
                # Listed in the document (schemathesis found it was a bare string) but checked
                # here, so an unknown value keeps its 400 ``unsupported_resolution`` answer.
                json_schema_extra={"enum": [*RESOLUTIONS, *RESOLUTION_ALIASES]},
            ),
        ],
        from_: Annotated[
            int | None, Query(alias="from", ge=0, description="First open time, ms UTC.")
        ] = None,
        to: Annotated[
            int | None, Query(ge=0, description="Open times strictly before this, ms UTC.")
        ] = None,
        limit: Annotated[
            int, Query(ge=1, le=MAX_SNAPSHOT, description="At most this many, the newest.")
        ] = 500,
        *,
        request: Request,
    ) -> HistoryResponse:
        """The newest ``limit`` bars with ``from <= time < to``."""
        # Admitted by ``rest_limit.RestRateLimit``, which left the bucket to charge here.
        bucket: TokenBucket | None = getattr(request.state, BUCKET_STATE, None)
        info = streams.symbol_info(symbol)
        if info is None:
            raise _fail(404, ErrorCode.UNKNOWN_SYMBOL, f"unknown symbol {symbol!r}")
        canonical = normalize_resolution(resolution)
        if canonical is None or canonical not in info.resolutions:
            raise _fail(
                400,
                ErrorCode.UNSUPPORTED_RESOLUTION,
                f"unsupported resolution {resolution!r}: expected one of "
                + ", ".join(info.resolutions),
            )
        if from_ is not None and to is not None and from_ >= to:
            raise _fail(
                400, ErrorCode.VALIDATION_ERROR, f"'from' ({from_}) must be before 'to' ({to})"
            )
        tally = FetchTally()
        candles = await streams.history(BarKey(symbol, canonical), from_, to, limit, tally=tally)
        if bucket is not None:
            bucket.charge(cost_of_bars(len(candles) + tally.bars))
        return HistoryResponse(
            symbol=symbol,
            resolution=canonical,
            bars=[Bar.model_validate(candle_dict(c)) for c in candles],
        )

    @router.get(
        "/api/v1/market-data/symbols",
        response_model=SymbolsResponse,
        responses=_RATE_LIMITED,
        tags=["market-data"],
        summary="The symbols this server serves.",
    )
    async def symbols(
        asset_class: Annotated[str | None, Query(description="e.g. crypto, forex, stock")] = None,
    ) -> SymbolsResponse:
        entries = [
            SymbolEntry(
                symbol=info.symbol,
                asset_class=info.asset_class,
                source=info.source,
                resolutions=list(info.resolutions),
                stale=streams.is_stale(info.symbol),
            )
            for info in streams.symbols()
            if asset_class is None or info.asset_class == asset_class
        ]
        return SymbolsResponse(symbols=sorted(entries, key=lambda e: e.symbol))

    @router.get("/healthz", response_model=HealthResponse, tags=["health"])
    async def healthz() -> HealthResponse:
        """The process is alive."""
        return HealthResponse(status="ok")

    @router.get(
        "/readyz",
        response_model=ReadyResponse,
        responses={503: {"model": ReadyResponse, "description": "Not ready."}},
        tags=["health"],
    )
    async def readyz(response: Response) -> ReadyResponse:
        """Ready to accept connections (feeds started, not shutting down); 503 otherwise."""
        ready = is_ready()
        if not ready:
            response.status_code = 503
        return ReadyResponse(
            status="ready" if ready else "not ready",
            connections=connection_count(),
            active_streams=len(streams.active_keys()),
            stale_streams=streams.stale_topics(),
        )

    return router
