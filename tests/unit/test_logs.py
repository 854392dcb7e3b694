"""``marketcast.logs``: redaction, the two formats, and taking over uvicorn's loggers."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from marketcast.logs import (
    HANDLER_NAME,
    JsonFormatter,
    Redactor,
    TextFormatter,
    configure_logging,
    secret_values,
)
from marketcast.redaction import MAX_MESSAGE_CHARS
from marketcast.settings import Settings


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put it back afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    uvicorn = {n: logging.getLogger(n) for n in ("uvicorn", "uvicorn.error", "uvicorn.access")}
    saved_uvicorn = {
        n: (list(lg.handlers), lg.propagate, lg.level, lg.disabled) for n, lg in uvicorn.items()
    }
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name, (handlers, propagate, level, disabled) in saved_uvicorn.items():
        uvicorn[name].handlers[:] = handlers
        uvicorn[name].propagate = propagate
        uvicorn[name].setLevel(level)
        uvicorn[name].disabled = disabled


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET /x?apikey=abc123&symbol=EUR", "GET /x?apikey=[redacted]&symbol=EUR"),
        ("GET /x?symbol=A&api_key=abc HTTP/1.1", "GET /x?symbol=A&api_key=[redacted] HTTP/1.1"),
        ("?access_token=zzz", "?access_token=[redacted]"),
        ("redis://user:hunter22@db:6379/0", "redis://user:[redacted]@db:6379/0"),
        ("Authorization: Bearer abc.def", "Authorization: Bearer [redacted]"),
        ("offered token.s3cr3t-value", "offered token.[redacted]"),
        ("nothing secret here: symbol=BTCUSDT", "nothing secret here: symbol=BTCUSDT"),
        # A first parameter with no "?", as uvicorn logs a scope's query string at trace level.
        ("query_string: b'token=abc'", "query_string: b'token=[redacted]'"),
        ("token=abc&x=1", "token=[redacted]&x=1"),
    ],
)
def test_token_like_values_are_redacted(text: str, expected: str) -> None:
    assert Redactor()(text) == expected


def test_configured_secrets_are_redacted_wherever_they_appear() -> None:
    redact = Redactor(["s3cret/value", "abc"])  # "abc" is too short to search for
    assert redact("failed for s3cret/value and s3cret%2Fvalue") == (
        "failed for [redacted] and [redacted]"
    )
    assert redact("abc stays") == "abc stays"


def test_a_long_access_line_is_capped_keeping_its_status_and_no_secret() -> None:
    """uvicorn logs the request target whole: 60 KB of it are not written, nor scanned."""
    secret = "s3cret-value-0123"
    path = "/healthz?token=abc&q=" + "j" * (MAX_MESSAGE_CHARS // 2 - 30) + secret + "j" * 60_000
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4:5", "GET", path, "1.1", 200),
        None,
    )
    for formatter in (TextFormatter(Redactor([secret])), JsonFormatter(Redactor([secret]))):
        line = formatter.format(record)
        assert len(line) < MAX_MESSAGE_CHARS + 200
        assert "/healthz?token=[redacted]&q=jjj" in line
        # The secret straddled the cut: its start is masked, nothing of it is shown.
        cut = len(path) - MAX_MESSAGE_CHARS // 2
        assert f"jjj[redacted] …[truncated {cut} chars] HTTP/1.1" in line
        assert re.search(r'HTTP/1\.1\\?" 200', line)
        assert secret[:4] not in line
    assert record.getMessage().endswith(" 200")  # the record itself is left as it was


def test_a_long_message_is_capped() -> None:
    record = logging.LogRecord(
        "marketcast.test", logging.INFO, __file__, 1, "x" * 5000 + " token=abc", None, None
    )
    line = TextFormatter(Redactor()).format(record)
    assert line.endswith("x" * 100 + f" …[truncated {5010 - MAX_MESSAGE_CHARS} chars]")


def test_secret_values_come_from_secret_settings_and_url_passwords() -> None:
    settings = Settings(
        auth_tokens=[SecretStr("tok-one"), SecretStr("tok-two")],
        twelvedata_api_key=SecretStr("td-key-123"),
        store_url="redis://:pa55word@127.0.0.1:6379/0",
    )
    assert set(secret_values(settings)) == {"tok-one", "tok-two", "td-key-123", "pa55word"}


def test_json_lines_carry_extras_exceptions_and_no_secret() -> None:
    formatter = JsonFormatter(Redactor(["hunter2-secret"]))
    try:
        raise RuntimeError("upstream said hunter2-secret")
    except RuntimeError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "marketcast.feeds", logging.ERROR, __file__, 1, "%s failed", ("poll",), exc_info
    )
    record.__dict__["conn"] = "abc123"
    line = formatter.format(record)
    entry = json.loads(line)
    assert entry["level"] == "error"
    assert entry["logger"] == "marketcast.feeds"
    assert entry["message"] == "poll failed"
    assert entry["conn"] == "abc123"
    assert "RuntimeError: upstream said [redacted]" in entry["exception"]
    assert entry["time"].endswith("Z")
    assert "hunter2-secret" not in line


def test_text_format_is_one_readable_line() -> None:
    record = logging.LogRecord(
        "marketcast.ws", logging.INFO, __file__, 1, "opened %s", ("x",), None
    )
    assert TextFormatter(Redactor()).format(record).endswith(" INFO marketcast.ws opened x")


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_owns_one_handler_and_takes_over_uvicorn() -> None:
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.addHandler(logging.StreamHandler(io.StringIO()))
    uvicorn_access.propagate = False
    uvicorn_access.setLevel(logging.WARNING)  # as another uvicorn.Config may have left it
    stream = io.StringIO()
    settings = Settings(log_format="json", log_level="info")
    configure_logging(settings, stream)
    configure_logging(settings, stream)  # idempotent: still one handler
    ours = [h for h in logging.getLogger().handlers if h.get_name() == HANDLER_NAME]
    assert len(ours) == 1
    assert uvicorn_access.handlers == []
    assert uvicorn_access.propagate is True

    logging.getLogger("uvicorn.access").info('%s - "GET /?token=abc HTTP/1.1" %d', "1.2.3.4", 200)
    logging.getLogger("uvicorn.error").info("connection open")  # per-connection chatter
    logging.getLogger("marketcast.test").debug("below the level")
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["message"] for line in lines] == [
        '1.2.3.4 - "GET /?token=[redacted] HTTP/1.1" 200'
    ]


def test_429_access_lines_are_logged_once_per_interval_with_a_count() -> None:
    from marketcast.logs import QuietRefusedRequests

    now = [100.0]
    quiet = QuietRefusedRequests(interval=10.0, clock=lambda: now[0])

    def access(status: int) -> logging.LogRecord:
        return logging.LogRecord(
            "uvicorn.access",
            logging.INFO,
            __file__,
            1,
            '%s - "%s %s HTTP/%s" %d',
            ("127.0.0.1:5", "GET", "/api/v1/market-data/symbols", "1.1", status),
            None,
        )

    assert quiet.filter(access(429))
    assert [quiet.filter(access(429)) for _ in range(5)] == [False] * 5
    assert quiet.filter(access(200)), "other statuses are never held back"
    now[0] += 10.0
    line = access(429)
    assert quiet.filter(line)
    assert line.getMessage().endswith("429 (and 5 more answered 429 since the previous such line)")
    assert not quiet.filter(access(429))
