"""Plain HTTP answers from a ``websockets`` server, so one fake serves REST and WebSocket.

Why not a second web framework: the fakes need a WebSocket server that can send protocol
pings, see pongs and abort connections (ASGI exposes none of that), and their REST side is a
few GET routes. ``websockets`` lets ``process_request`` answer a non-upgrade request with any
HTTP response, which is all those routes need. Each HTTP response closes its connection.
"""

from __future__ import annotations

import http
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from websockets.datastructures import Headers
from websockets.http11 import Request, Response


def is_upgrade(request: Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def split(request: Request) -> tuple[str, dict[str, str]]:
    """The path and the query parameters (the last value wins for a repeated name)."""
    parts = urlsplit(request.path)
    return parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    payload = orjson.dumps(body)
    all_headers = Headers(
        {
            "Content-Type": "application/json",
            "Content-Length": str(len(payload)),
            # The server closes after answering; saying so keeps clients from reusing it.
            "Connection": "close",
        }
    )
    for name, value in (headers or {}).items():
        all_headers[name] = value
    return Response(status, http.HTTPStatus(status).phrase, all_headers, payload)
