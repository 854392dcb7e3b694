"""Exceptions: one class per family of server error codes, and the connection's own failures.

Why families and not a class per code: callers decide by what they can do about an error —
fix the request, pick another symbol, wait and retry — and codes added to the protocol later
fall into an existing family (or, unknown to this version, into ``ServerError`` itself), so
``except SubscriptionRefused`` keeps working. ``code`` still says exactly which one it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final


class MarketcastError(Exception):
    """Base of every exception this package raises."""


class ServerError(MarketcastError):
    """The server answered a request with an ``error`` message."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        request_type: str | None = None,
        request_id: str | int | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.request_type = request_type
        self.request_id = request_id


class InvalidRequest(ServerError):
    """The frame itself was refused (malformed, unknown type, invalid payload): a caller's or
    this client's bug, which sending it again cannot fix."""


class SubscriptionRefused(ServerError):
    """The request was well formed but this subscription is not served to this client: bad or
    unknown symbol, unsupported resolution, too many subscriptions, forbidden."""


class RetryLater(ServerError):
    """Transient: over the rate limit (the frame was not processed) or a service the server
    depends on did not answer. The same request may succeed in a second."""


class InternalServerError(ServerError):
    """A bug on the server side; the server logged it."""


#: The family of each code the protocol defines; ``tests/client`` checks that every code of
#: the generated ``ErrorCode`` is listed.
ERROR_FAMILIES: Final[Mapping[str, type[ServerError]]] = {
    "invalid_json": InvalidRequest,
    "invalid_message": InvalidRequest,
    "unsupported_frame": InvalidRequest,
    "unknown_type": InvalidRequest,
    "validation_error": InvalidRequest,
    "invalid_symbol": SubscriptionRefused,
    "unknown_symbol": SubscriptionRefused,
    "unsupported_resolution": SubscriptionRefused,
    "unsupported_channel": SubscriptionRefused,
    "too_many_subscriptions": SubscriptionRefused,
    "invalid_stream": SubscriptionRefused,
    "forbidden": SubscriptionRefused,
    "rate_limited": RetryLater,
    "unavailable": RetryLater,
    "internal_error": InternalServerError,
}


def server_error(
    code: str,
    message: str,
    *,
    request_type: str | None = None,
    request_id: str | int | None = None,
) -> ServerError:
    """The exception for an ``error`` payload; a code this version does not know is a plain
    ``ServerError``, so a newer server never makes the client fail to report it."""
    family = ERROR_FAMILIES.get(code, ServerError)
    return family(code, message, request_type=request_type, request_id=request_id)


class ConnectFailed(MarketcastError):
    """A connection could not be opened (refused, timed out, not a WebSocket endpoint)."""


class HandshakeRefused(ConnectFailed):
    """The handshake was answered 401/403: a missing or wrong token, or an origin the server
    does not allow. Retrying unchanged cannot help, so the client stops."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the server refused the WebSocket handshake with HTTP {status}")
        self.status = status


class ConnectionLost(MarketcastError):
    """The connection ended before the reply came (the client reconnects by itself)."""


class FatalClose(MarketcastError):
    """The server closed with a code that says retrying is pointless (4404 stream not served,
    1009 frame too big, 1007 invalid UTF-8): the client stops and reports it."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed by the server with {code}{f' ({reason})' if reason else ''}")
        self.code = code
        self.reason = reason


class ClientClosed(MarketcastError):
    """``close()`` was called (or the ``async with`` block ended) before this completed."""
