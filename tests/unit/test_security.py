"""Origin allow-list, token auth by subprotocol, topic authorization and log redaction."""

from __future__ import annotations

import io
import logging

import pytest
from pydantic import SecretStr
from uvicorn.logging import AccessFormatter

from marketcast.errors import ConfigurationError
from marketcast.ws.security import (
    ANONYMOUS,
    SUBPROTOCOL,
    Admission,
    HandshakeGate,
    OriginPolicy,
    Principal,
    RedactSecrets,
    Refusal,
    build_gate,
    parse_origin,
    redact,
    token_set_verifier,
    topic_guard,
)

ALLOWED = "https://app.example.com"
TOKEN = "s3cr3t-T0ken_value"


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("https://app.example.com", ("https", "app.example.com", 443)),
        ("HTTPS://App.Example.COM", ("https", "app.example.com", 443)),
        ("https://app.example.com:443", ("https", "app.example.com", 443)),
        ("http://localhost:5173", ("http", "localhost", 5173)),
        ("https://app.example.com/", ("https", "app.example.com", 443)),
        ("null", None),
        ("", None),
        ("file://", None),
        ("ftp://app.example.com", None),
        ("https://user@app.example.com", None),
        ("https://app.example.com/path", None),
        ("https://app.example.com?x=1", None),
        ("https://app.example.com:99999", None),
        ("https://[::1", None),
    ],
)
def test_parse_origin(value: str, parsed: tuple[str, str, int] | None) -> None:
    assert parse_origin(value) == parsed


@pytest.mark.parametrize(
    "origin",
    [
        "https://app.example.com.evil.net",
        "https://evil.net/https://app.example.com",
        "https://evilapp.example.com",
        "https://app.example.co",
        "http://app.example.com",
        "https://app.example.com:8443",
        "wss://app.example.com",
        "null",
        "https://app.example.com@evil.net",
        "https://app.example.com%2eevil.net",
    ],
)
def test_look_alike_origins_are_refused(origin: str) -> None:
    assert not OriginPolicy([ALLOWED]).allows([origin])


def test_exact_origin_allowed_and_empty_list_allows_any() -> None:
    policy = OriginPolicy([ALLOWED, "http://localhost:5173"])
    assert policy.allows([ALLOWED])
    assert policy.allows(["https://APP.example.com:443"])
    assert policy.allows(["http://localhost:5173"])
    assert not policy.allows([ALLOWED, ALLOWED]), "two Origin headers are refused"
    assert policy.allows([]), "no Origin: not a browser, left to token auth"
    assert OriginPolicy([]).allows(["https://anything.example"])


def test_bad_allowed_origin_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="MARKETCAST_ALLOWED_ORIGINS"):
        OriginPolicy(["app.example.com"])


def test_token_verifier_constant_set_and_bad_characters() -> None:
    verify = token_set_verifier([SecretStr("first"), SecretStr(TOKEN)])
    assert verify(TOKEN) == Principal("token#2")
    assert verify("first") == Principal("token#1")
    assert verify("firs") is None
    assert verify("") is None
    with pytest.raises(ConfigurationError) as refused:
        token_set_verifier([SecretStr("has space")])
    assert "has space" not in str(refused.value)


async def test_gate_without_auth_echoes_the_api_subprotocol() -> None:
    gate = build_gate([], [])
    assert await gate.admit({}, []) == Admission(ANONYMOUS, None)
    assert await gate.admit({}, ["other", SUBPROTOCOL]) == Admission(ANONYMOUS, SUBPROTOCOL)


async def test_gate_with_tokens() -> None:
    gate = build_gate([ALLOWED], [SecretStr(TOKEN)])
    origin = {"origin": [ALLOWED]}
    ok = await gate.admit(origin, [SUBPROTOCOL, f"token.{TOKEN}"])
    assert ok == Admission(Principal("token#1"), SUBPROTOCOL)
    for offered in (
        [],
        [SUBPROTOCOL],
        [SUBPROTOCOL, "token.wrong"],
        [f"token.{TOKEN}"],  # the API subprotocol must come too: the token is never echoed
        [SUBPROTOCOL, f"token.{TOKEN}", f"token.{TOKEN}"],
    ):
        refusal = await gate.admit(origin, offered)
        assert isinstance(refusal, Refusal), offered
        assert refusal.code == "unauthorized"
        assert TOKEN not in refusal.message
    foreign = await gate.admit(
        {"origin": ["https://evil.example"]}, [SUBPROTOCOL, f"token.{TOKEN}"]
    )
    assert isinstance(foreign, Refusal)
    assert foreign.code == "origin_not_allowed"


async def test_gate_with_async_custom_verifier() -> None:
    async def verify(token: str) -> Principal | None:
        return Principal("alice") if token == "alice-key" else None

    gate = HandshakeGate(OriginPolicy([]), verify)
    admitted = await gate.admit({}, [SUBPROTOCOL, "token.alice-key"])
    assert admitted == Admission(Principal("alice"), SUBPROTOCOL)
    assert isinstance(await gate.admit({}, [SUBPROTOCOL, "token.bob-key"]), Refusal)


async def test_topic_guard_sees_the_connection_principal() -> None:
    seen: list[tuple[Principal, str, str]] = []

    def authorize(principal: Principal, route: str, topic: str) -> bool:
        seen.append((principal, route, topic))
        return "AAPL" not in topic

    class Conn:
        principal = Principal("token#1")

    guard = topic_guard(authorize)
    assert await guard(Conn(), "bars", 'bars:{"resolution":"1","symbol":"BTCUSDT"}')
    assert not await guard(Conn(), "quotes", 'quotes:{"symbol":"AAPL"}')
    assert await guard(object(), "bars", "bars:x")
    assert [s[0].subject for s in seen] == ["token#1", "token#1", "anonymous"]


def test_redact_query_tokens_and_subprotocol_tokens() -> None:
    line = '127.0.0.1:5 - "WebSocket /api/v1/ws?token=abc123&x=1" 401'
    assert redact(line) == '127.0.0.1:5 - "WebSocket /api/v1/ws?token=[redacted]&x=1" 401'
    assert redact("/ws?a=1&access_token=zz") == "/ws?a=1&access_token=[redacted]"
    assert redact(f"offered token.{TOKEN}") == "offered token.[redacted]"
    assert redact("nothing secret here") == "nothing secret here"


def test_redaction_filter_rewrites_records() -> None:
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" %d',
        ("c", "/ws?token=abc", 403),
        None,
    )
    assert RedactSecrets().filter(record)
    assert record.getMessage() == 'c - "WebSocket /ws?token=[redacted]" 403'


def test_redact_a_first_query_parameter_without_a_question_mark() -> None:
    # uvicorn's trace log shows a scope's query string as bytes.
    assert redact("query_string: b'token=abc&x=1'") == "query_string: b'token=[redacted]&x=1'"


def test_redaction_filter_keeps_the_arguments_uvicorns_access_formatter_unpacks() -> None:
    """A server built without ``marketcast.logs`` keeps uvicorn's ``AccessFormatter``, which
    unpacks ``record.args``: the filter redacts them in place instead of dropping them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False)
    )
    handler.addFilter(RedactSecrets())
    args = ("1.2.3.4:5", "GET", "/ws?token=abc&x=1", "1.1", 200)
    handler.handle(
        logging.LogRecord(
            "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None
        )
    )
    long_path = "/healthz?" + "j" * 60_000
    handler.handle(
        logging.LogRecord(
            "uvicorn.access",
            logging.INFO,
            __file__,
            1,
            '%s - "%s %s HTTP/%s" %d',
            ("1.2.3.4:5", "GET", long_path, "1.1", 404),
            None,
        )
    )
    first, second = stream.getvalue().splitlines()
    assert first == '1.2.3.4:5 - "GET /ws?token=[redacted]&x=1 HTTP/1.1" 200 OK'
    assert second.endswith(' …[truncated 58985 chars] HTTP/1.1" 404 Not Found')
    assert len(second) < 1100
