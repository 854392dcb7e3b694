"""The wire protocol: envelopes and payload models — pure, no I/O.

These pydantic models are the single source of truth for the WebSocket contract: the
generated routers validate client payloads with them, ``ws/spec.py`` turns them into the
AsyncAPI document, and the TypeScript and consumer models are generated from that document.

Client payloads are validated strictly (unknown fields refused, no type coercion) so that a
typo in a client surfaces as an error instead of a silently ignored field.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from marketcast.errors import ErrorCode
from marketcast.timeframes import RESOLUTION_ALIASES, RESOLUTIONS
from marketcast.types import Resolution

#: Upper-case letters and digits, optionally ``BASE/QUOTE``; ``.`` and ``-`` allowed inside
#: (``BRK.B``). Lower case is refused rather than normalised so that topics stay canonical.
SYMBOL_PATTERN: Final = r"^[A-Z0-9][A-Z0-9.\-]{0,19}(/[A-Z0-9][A-Z0-9.\-]{0,19})?$"
MAX_SNAPSHOT: Final = 1000
#: JavaScript's largest exact integer: a number a client sends must survive a browser.
MAX_SAFE_INTEGER: Final = 2**53 - 1
#: The largest time (ms UTC) a client may send.
MAX_TIME_MS: Final = MAX_SAFE_INTEGER
#: Longest string ``id`` accepted: it is echoed in the reply, so it bounds the reply's size.
MAX_ID_LENGTH: Final = 64
#: Integer ``id``s are within ±``MAX_ID``: beyond it a JavaScript client cannot tell two apart,
#: and beyond 64 bits the JSON parser would round it (so the echo would differ).
MAX_ID: Final = MAX_SAFE_INTEGER


def integral(value: Any) -> Any:
    """``2.0`` as the integer 2; any other value unchanged.

    JSON has one number type: JSON Schema's ``integer`` (so the published document) and
    JavaScript (``JSON.stringify(2.0)`` is ``"2"``) both count ``2.0`` as an integer, so the
    server does too. Strict mode still refuses ``2.5``, ``"2"`` and ``true``.
    """
    return int(value) if isinstance(value, float) and value.is_integer() else value


#: After the bounds in an ``Annotated``: pydantic then still writes ``minimum``/``maximum``
#: into the JSON schema (placed before them, they come out as ``ge``/``le`` inside ``anyOf``).
Integral: Final = BeforeValidator(integral)

SymbolField = Annotated[
    str,
    Field(
        pattern=SYMBOL_PATTERN,
        description="Upper-case symbol, e.g. `BTCUSDT`, `EUR/USD`, `AAPL`.",
        examples=["BTCUSDT"],
    ),
]
ResolutionField = Annotated[
    Resolution,
    Field(
        description="TradingView resolution; `1D`, `1W`, `1M` are accepted as aliases of "
        "`D`, `W`, `M` (TradingView sends both spellings) and written back canonical, in the "
        "reply's `topic` and in updates.",
        # The aliases are part of the accepted set, as for REST and the raw-stream paths.
        json_schema_extra={"enum": [*RESOLUTIONS, *RESOLUTION_ALIASES]},
    ),
]


class ClientModel(BaseModel):
    """Base of every client-to-server payload: unknown fields and coercion are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ServerModel(BaseModel):
    """Base of every server-to-client payload."""

    model_config = ConfigDict(extra="forbid")


# ---- client -> server -------------------------------------------------------------------


class PingPayload(ClientModel):
    """An application-level ping; browsers cannot see protocol pings, so clients use this."""


# ---- server -> client -------------------------------------------------------------------


class Bar(ServerModel):
    """One candle in a snapshot or history: ``time`` is the bucket's open time, ms UTC."""

    time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    closed: bool


Status = Literal["ok", "error"]


class Reply(ServerModel):
    """What every subscribe and unsubscribe reply says: how it went, for which symbol and
    topic. A family's replies extend it (``bars`` with the snapshot, …)."""

    status: Status
    symbol: str
    message: str
    topic: str


class PongPayload(ServerModel):
    """Reply to ``ping``: the server's clock, ms UTC."""

    time: int


class ErrorPayload(ServerModel):
    """Why a client frame was refused; the connection stays open."""

    code: ErrorCode
    message: str
    request_type: str | None = Field(
        default=None, description="The `type` of the refused request, when it could be read."
    )


class NoticePayload(ServerModel):
    """The server will close this connection soon; reconnect (with ``since``) to resume."""

    code: Literal["shutdown", "max_lifetime"] = Field(
        description="`shutdown`: the server is draining; `max_lifetime`: this connection "
        "reached its maximum lifetime."
    )
    message: str
    close_code: int = Field(description="The WebSocket close code that will follow (1001).")
    close_in_ms: int = Field(
        ge=0, description="Milliseconds until the close; queued updates are still delivered."
    )
