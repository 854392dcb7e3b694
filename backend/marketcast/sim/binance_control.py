"""The fake Binance's control protocol: one client JSON message -> one reply — pure.

Mirrors what Binance documents for a market-data connection: ``SUBSCRIBE``, ``UNSUBSCRIBE``,
``LIST_SUBSCRIPTIONS``, ``SET_PROPERTY``/``GET_PROPERTY`` of ``combined``, and the error frames
``{"error": {"code", "msg"}, "id"}`` with codes 0 (unknown property), 1 (invalid value type),
2 (invalid request) and 3 (invalid JSON, ``id`` null). Kept apart from the server so the rules
can be read and tested on their own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

#: Binance intervals the fake serves, in ms, or "W"/"M" for calendar buckets.
INTERVALS: Final[dict[str, int | str]] = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "1w": "W",
    "1M": "M",
}
_STREAM: Final = re.compile(r"^([a-z0-9]+)@(kline_([0-9]+[mhdwM])|bookTicker|miniTicker|aggTrade)$")
_ID: Final = re.compile(r"^[A-Za-z0-9]{1,36}$")
INT64_MAX: Final = 2**63 - 1


@dataclass
class Session:
    """What one connection is subscribed to, and how it frames events."""

    max_streams: int
    #: Upper-case symbols that exist; streams of other symbols are invalid.
    is_symbol: Callable[[str], bool]
    combined: bool = True
    streams: dict[str, None] = field(default_factory=dict)

    def valid_stream(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        match = _STREAM.match(name)
        if match is None or not self.is_symbol(match.group(1).upper()):
            return False
        interval = match.group(3)
        return interval is None or interval in INTERVALS


def error(code: int, msg: str, request_id: object) -> dict[str, Any]:
    return {"error": {"code": code, "msg": msg}, "id": request_id}


def _valid_id(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -INT64_MAX - 1 <= value <= INT64_MAX
    return isinstance(value, str) and _ID.match(value) is not None


def handle(session: Session, text: str | bytes) -> dict[str, Any]:
    """Apply one control message to ``session``; the reply frame."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return error(3, f"Invalid JSON: {exc}", None)
    if not isinstance(message, dict):
        return error(2, "Invalid request: expected a JSON object", None)
    request_id = message.get("id")
    if not _valid_id(request_id):
        return error(2, "Invalid request: request ID must be an unsigned integer", None)
    method = message.get("method")
    if method is None:
        return error(2, "Invalid request: missing field `method`", request_id)
    params = message.get("params", [])
    if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
        if not isinstance(params, list) or not all(session.valid_stream(p) for p in params):
            return error(2, "Invalid request: invalid stream", request_id)
        if method == "SUBSCRIBE":
            new = [p for p in params if p not in session.streams]
            if len(session.streams) + len(new) > session.max_streams:
                return error(2, "Invalid request: too many streams for one connection", request_id)
            for name in new:
                session.streams[name] = None
        else:
            for name in params:
                session.streams.pop(name, None)
        return {"result": None, "id": request_id}
    if method == "LIST_SUBSCRIPTIONS":
        return {"result": list(session.streams), "id": request_id}
    if method in ("SET_PROPERTY", "GET_PROPERTY"):
        if not isinstance(params, list) or not params or not isinstance(params[0], str):
            return error(2, "Invalid request: property name must be a string", request_id)
        if params[0] != "combined":
            return error(0, "Unknown property", request_id)
        if method == "GET_PROPERTY":
            return {"result": session.combined, "id": request_id}
        if len(params) != 2 or not isinstance(params[1], bool):
            return error(1, "Invalid value type: expected Boolean", request_id)
        session.combined = params[1]
        return {"result": None, "id": request_id}
    return error(2, f"Invalid request: unknown variant `{method}`", request_id)
