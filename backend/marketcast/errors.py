"""Error codes, close codes and the exceptions that carry them.

The tree::

    MarketcastError                 anything marketcast raises on purpose
    ├── ProtocolError               a client frame was refused; becomes one ``error`` reply,
    │   │                           the connection stays open
    │   ├── (code) invalid_json, invalid_message, unsupported_frame, unknown_type,
    │   │          validation_error, invalid_symbol, unknown_symbol,
    │   │          unsupported_resolution, unsupported_channel, too_many_subscriptions,
    │   │          invalid_stream, rate_limited, forbidden
    ├── ServiceUnavailable          the shared store (Redis) did not answer; REST 503 and
    │                               WebSocket ``unavailable``, both with a retry hint (also an
    │                               ``OSError``, so code that handles connection errors sees it)
    ├── ConfigurationError          a setting is wrong; the server refuses to start with one line
    └── FeedError                   an upstream failed; the feed retries, clients see staleness

Close codes are WebSocket close codes sent by the server; they are part of the public
contract (docs/websocket.md lists them) and never change meaning.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    """The ``code`` of an ``error`` message. Clients switch on these, so they are stable."""

    INVALID_JSON = "invalid_json"
    INVALID_MESSAGE = "invalid_message"
    UNSUPPORTED_FRAME = "unsupported_frame"
    UNKNOWN_TYPE = "unknown_type"
    VALIDATION_ERROR = "validation_error"
    INVALID_SYMBOL = "invalid_symbol"
    UNKNOWN_SYMBOL = "unknown_symbol"
    UNSUPPORTED_RESOLUTION = "unsupported_resolution"
    #: The symbol's source does not offer this channel family (trades of a forex pair).
    UNSUPPORTED_CHANNEL = "unsupported_channel"
    TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
    #: A combined raw stream's ``streams`` query names a path that is no raw stream.
    INVALID_STREAM = "invalid_stream"
    #: The connection sent faster than its token bucket allows; the frame was not processed.
    RATE_LIMITED = "rate_limited"
    #: The topic authorization hook refused this subscription for this client.
    FORBIDDEN = "forbidden"
    #: A service the server depends on (the shared store) did not answer; retry shortly.
    UNAVAILABLE = "unavailable"
    INTERNAL_ERROR = "internal_error"


class CloseCode(IntEnum):
    """WebSocket close codes the server uses."""

    NORMAL = 1000
    GOING_AWAY = 1001
    #: A text frame that is not valid UTF-8 (RFC 6455); sent by the WebSocket layer.
    INVALID_PAYLOAD = 1007
    #: Sustained abuse: the client kept sending over its rate limit.
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    #: Sent by uvicorn itself when it stops without a drain; marketcast never sends it.
    SERVICE_RESTART = 1012
    #: The server is at its connection cap or shutting down: reconnect later or elsewhere.
    TRY_AGAIN_LATER = 1013
    #: The client did not read fast enough: its outbox overflowed, or it fell too far behind.
    SLOW_CONSUMER = 4008
    #: A raw stream (``/api/v1/ws/stream/...``) that cannot be served to this client; the
    #: ``error`` message sent just before says why.
    STREAM_NOT_SERVED = 4404


class MarketcastError(Exception):
    """Base of every error marketcast raises on purpose."""


class ProtocolError(MarketcastError):
    """A client frame that is refused with one typed ``error`` reply."""

    def __init__(self, code: ErrorCode, message: str, request_type: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_type = request_type


class ServiceUnavailable(MarketcastError, ConnectionError):
    """The shared store did not answer. A ``ConnectionError`` too, so code that already
    handles connection failures (health reporting, lease loops) treats it as one."""


class ConfigurationError(MarketcastError):
    """A setting has a value the server cannot work with."""


class FeedError(MarketcastError):
    """An upstream feed failed in a way its own retry logic reports upward."""


def close_code_meanings() -> list[tuple[CloseCode, str]]:
    """Every close code a client can see, with what it means and what to do; the AsyncAPI
    description and docs/websocket.md are written from this list."""
    return [
        (
            CloseCode.GOING_AWAY,
            "planned close (shutdown or maximum lifetime), announced by a `notice`; "
            "reconnect, with `since` to resume bars",
        ),
        (
            CloseCode.INVALID_PAYLOAD,
            "a text frame was not valid UTF-8 (RFC 6455 makes this fatal to the connection; "
            "sent by the server's WebSocket layer, logged as one line)",
        ),
        (
            CloseCode.POLICY_VIOLATION,
            "sustained abuse: the client kept sending over its rate limit after "
            "`rate_limited` errors",
        ),
        (CloseCode.MESSAGE_TOO_BIG, "a client frame was larger than the maximum frame size"),
        (
            CloseCode.INTERNAL_ERROR,
            "a protocol ping was not answered in time (sent by the server's WebSocket layer; "
            "a dead peer never sees it)",
        ),
        (
            CloseCode.SERVICE_RESTART,
            "the server stopped without draining (e.g. a second SIGTERM); reconnect",
        ),
        (
            CloseCode.TRY_AGAIN_LATER,
            "the server is at its connection cap or shutting down; reconnect after a "
            "back-off, or elsewhere",
        ),
        (
            CloseCode.SLOW_CONSUMER,
            "slow consumer: the client read too slowly — its bounded queue overflowed, it "
            "fell more than the lag bound behind (`MARKETCAST_SLOW_CONSUMER_LAG`, socket "
            "buffers included), or more than the queue's byte limit waited for it in total; "
            "the close reason says which. Reconnect with `since` to recover missed bars. "
            "Frames still queued are dropped and the close frame follows what the socket "
            "already holds: the server waits while the client keeps reading, up to the drain "
            "timeout, and aborts the TCP connection when it stops reading for the close "
            "timeout or does not reach the close frame in time",
        ),
        (
            CloseCode.STREAM_NOT_SERVED,
            "a raw stream cannot be served: invalid or unknown symbol, unsupported "
            "resolution or channel, not allowed for this client, or (combined streams) a path "
            "that is no raw stream or more paths than the subscription limit; the `error` "
            "message just before says which; do not retry the same URL",
        ),
    ]
