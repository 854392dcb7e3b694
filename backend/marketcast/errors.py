"""Error codes, close codes and the exceptions that carry them.

The tree::

    MarketcastError                 anything marketcast raises on purpose
    ├── ProtocolError               a client frame was refused; becomes one ``error`` reply,
    │   │                           the connection stays open
    │   ├── (code) invalid_json, invalid_message, unsupported_frame, unknown_type,
    │   │          validation_error, invalid_symbol, unknown_symbol,
    │   │          unsupported_resolution, too_many_subscriptions
    ├── SlowConsumer                a client's outbox overflowed; closed with 4008
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
    TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
    INTERNAL_ERROR = "internal_error"


class CloseCode(IntEnum):
    """WebSocket close codes the server uses."""

    NORMAL = 1000
    GOING_AWAY = 1001
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    #: The client did not read fast enough and its bounded outbox overflowed.
    SLOW_CONSUMER = 4008


class MarketcastError(Exception):
    """Base of every error marketcast raises on purpose."""


class ProtocolError(MarketcastError):
    """A client frame that is refused with one typed ``error`` reply."""

    def __init__(self, code: ErrorCode, message: str, request_type: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_type = request_type


class SlowConsumer(MarketcastError):
    """Raised inside an outbox that is over its limit; the connection closes with 4008."""


class ConfigurationError(MarketcastError):
    """A setting has a value the server cannot work with."""


class FeedError(MarketcastError):
    """An upstream feed failed in a way its own retry logic reports upward."""
