"""Logging for ``marketcast serve``: one line per record, text or JSON, secrets redacted.

Why one place: uvicorn installs its own handlers and formats when its ``Config`` is built, so
left alone a server writes two formats, and a redaction filter attached to some handlers but
not others leaks through the rest. ``configure_logging`` owns the one root handler; uvicorn's
loggers lose their handlers and propagate to it, so every line — ours, uvicorn's access and
error logs — has one format (``MARKETCAST_LOG_FORMAT``) and passes one redactor.

Why redaction happens in the formatter and not in a filter on ``record.msg``: the secret may
sit in an argument or in the traceback of an exception (an HTTP client error quoting the URL
with its ``apikey=``); only the finished line has all of them. What is redacted:

- every configured secret value (each ``SecretStr`` setting, e.g. ``MARKETCAST_AUTH_TOKENS``,
  ``MARKETCAST_TWELVEDATA_API_KEY``, and passwords inside ``*_url`` settings), also in its
  URL-encoded spelling; values shorter than four characters are not searched for, since they
  would blank out ordinary words (use real secrets);
- token-like query parameters (``apikey=``, ``api_key=``, ``token=``, ``access_token=``,
  ``key=``, ``secret=``, ``password=``, ``signature=``), also a first one with no ``?`` (as
  uvicorn's trace log shows ``query_string: b'token=…'``), ``Authorization`` values,
  passwords in ``scheme://user:password@host`` URLs, and ``token.<TOKEN>`` subprotocols
  (``marketcast.redaction.redact_patterns``).

Why redaction is a scanner and messages are capped: every line is formatted on the event
loop, uvicorn's access line included, and its request target is whatever a client sent. The
scanner (``marketcast.redaction``) examines each character a bounded number of times, and a
message longer than ``redaction.MAX_MESSAGE_CHARS`` (2,048) is cut to that length before it
is redacted (each ``%s`` argument to half of it first, so an access line keeps its status
code); a line costs a bounded amount of work, however long the URL.

Why uvicorn's per-connection WebSocket lines are dropped below DEBUG: the adapter logs one
line when a connection opens and one when it closes, each with the connection id; uvicorn's
``[accepted]``, ``connection open`` and ``connection closed`` would triple that without an id.
"""

from __future__ import annotations

import copy
import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, Final, TextIO
from urllib.parse import urlsplit

from pydantic import SecretStr

from marketcast.redaction import Redactor as Redactor
from marketcast.redaction import cap_record_message
from marketcast.settings import Settings

#: The handler ``configure_logging`` installs is found again (and replaced) by this name.
HANDLER_NAME: Final = "marketcast"
#: uvicorn's TRACE level (below DEBUG): protocol-level details.
TRACE: Final = 5
LEVELS: Final = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE,
}
#: uvicorn.error's per-connection WebSocket messages (their unformatted ``msg``).
_CONNECTION_CHATTER: Final = frozenset(
    {"connection open", "connection closed", '%s - "WebSocket %s" [accepted]'}
)
_UVICORN_LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_FIELDS: Final = frozenset(
    {*logging.LogRecord("", 0, "", 0, "", None, None).__dict__, "message", "asctime"}
    | {"color_message", "taskName"}
)


def secret_values(settings: Settings) -> list[str]:
    """Every secret ``settings`` holds: ``SecretStr`` values and passwords in URLs."""
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, SecretStr):
                found.append(item.get_secret_value())
            elif isinstance(item, str) and "://" in item and "@" in item:
                try:
                    password = urlsplit(item).password
                except ValueError:
                    password = None
                if password:
                    found.append(password)
    return found


class TextFormatter(logging.Formatter):
    """``2026-11-21 06:28:03,123 INFO marketcast.ws connection opened ...``, capped and
    redacted."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))

    def formatMessage(self, record: logging.LogRecord) -> str:
        # ``format`` has just set ``record.message``; a copy carries it capped, since the
        # record itself is shared with any other handler.
        message = cap_record_message(record, record.message, self._redact)
        if message == record.message:
            return super().formatMessage(record)
        shown = copy.copy(record)
        shown.message = message
        return super().formatMessage(shown)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, ``exception`` when there is one, and every ``extra=`` field."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": cap_record_message(record, record.getMessage(), self._redact),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and key not in entry:
                entry[key] = value
        # Redacting the serialized line covers every field at once; a mask never needs
        # escaping, so the line stays valid JSON.
        return self._redact(json.dumps(entry, ensure_ascii=False, default=str))


class QuietConnectionChatter(logging.Filter):
    """Drops uvicorn's per-connection WebSocket lines unless the server logs at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.name == "uvicorn.error"
            and record.levelno == logging.INFO
            and record.msg in _CONNECTION_CHATTER
        )


#: What uvicorn logs, with a traceback, when a client's text frame is not valid UTF-8.
_INVALID_UTF8: Final = "Invalid UTF-8 sequence received from client."


class ClientFaultsWithoutTracebacks(logging.Filter):
    """Turns uvicorn's ERROR-with-traceback for a client's invalid UTF-8 into one INFO line.

    Why: RFC 6455 makes a text frame that is not UTF-8 a protocol error, and uvicorn answers
    it correctly — close 1007 — but logs it as a server failure with a six-line traceback.
    It is the client's fault, one per connection at most, and a client could otherwise fill
    the log with tracebacks; the close code is documented (docs/websocket.md, "Closes").
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.error" and record.msg == _INVALID_UTF8:
            record.msg = "client sent a text frame that is not valid UTF-8: closed with 1007"
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.levelno = logging.INFO
            record.levelname = logging.getLevelName(logging.INFO)
        return True


class QuietRefusedRequests(logging.Filter):
    """At most one access line per ``interval`` for requests answered 429.

    Why: a client that ignores 429 sends requests as fast as it can, and a line for each
    refusal made the log the costliest part of refusing it (a megabyte in ten seconds in the
    abuse benchmark). The first refusal after a quiet interval is logged as usual; later ones
    are counted, and the next line logged says how many were left out.
    """

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self._interval = interval
        self._clock = clock
        #: When a 429 line was last let through; None before the first.
        self._last: float | None = None
        self._left_out = 0

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not (record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) >= 5):
            return True
        if args[4] != 429:
            return True
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            self._left_out += 1
            return False
        if self._left_out:
            record.msg = f"{record.msg} (and %d more answered 429 since the previous such line)"
            record.args = (*args, self._left_out)
        self._last, self._left_out = now, 0
        return True


def configure_logging(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """Install the one handler on the root logger and take over uvicorn's loggers.

    Idempotent: call it again after ``uvicorn.Config`` was built (it installs handlers of
    its own) and the same handler is installed once more, with uvicorn's removed again.
    """
    level = LEVELS[settings.log_level]
    redactor = Redactor(secret_values(settings))
    formatter: logging.Formatter = (
        JsonFormatter(redactor) if settings.log_format == "json" else TextFormatter(redactor)
    )
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(formatter)
    if level > logging.DEBUG:
        handler.addFilter(QuietConnectionChatter())
    handler.addFilter(ClientFaultsWithoutTracebacks())
    handler.addFilter(QuietRefusedRequests())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _UVICORN_LOGGERS:
        # No handler, no level of their own: uvicorn's records reach ours at our level.
        logger = logging.getLogger(name)
        for own in list(logger.handlers):
            logger.removeHandler(own)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
        logger.disabled = False
    return handler
