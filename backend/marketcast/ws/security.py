"""Who may open a WebSocket and subscribe to what — decided before any frame is read.

Pure decisions (no sockets): the adapter hands in the handshake's headers and offered
subprotocols and gets an ``Admission`` or a ``Refusal`` back.

Why an Origin allow-list: a browser attaches cookies and ambient credentials to a WebSocket
handshake from *any* page (cross-site WebSocket hijacking), and the only thing the server can
check is the ``Origin`` header the browser sets. Origins are compared exactly, as
``(scheme, host, port)`` with default ports made explicit: ``https://example.com.evil.net``,
``http://example.com`` and ``https://example.com:8443`` are all different from
``https://example.com``. Clients that are not browsers send no Origin and cannot be protected
by it; they are let through here and must be stopped by token auth.

Why the token travels as a subprotocol: browsers cannot set headers on a WebSocket handshake
and a query string is written to access logs (uvicorn logs the path with its query). The one
field a browser lets a page fill is ``Sec-WebSocket-Protocol``, so a client offers
``["marketcast.v1", "token.<TOKEN>"]`` and the server answers with ``marketcast.v1`` only —
the token is never echoed, never logged, and compared in constant time.
"""

from __future__ import annotations

import hmac
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from pydantic import SecretStr

from marketcast.delivery.principal import ANONYMOUS, Principal
from marketcast.errors import ConfigurationError
from marketcast.redaction import Redactor, redact_patterns, redact_record
from marketcast.types import Topic

#: The subprotocol a client offers to speak this API; echoed when offered.
SUBPROTOCOL: Final = "marketcast.v1"
#: Prefix of the subprotocol that carries a token: ``token.<TOKEN>``.
TOKEN_PREFIX: Final = "token."
#: Characters an HTTP token (RFC 9110 ``tchar``) may hold: only these survive a trip through
#: ``Sec-WebSocket-Protocol``.
_TOKEN_CHARS: Final = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}

log = logging.getLogger("marketcast.ws")


#: Checks a presented token; returns who it belongs to, or None to refuse the handshake.
TokenVerifier = Callable[[str], Principal | Awaitable[Principal | None] | None]
#: Decides whether ``principal`` may subscribe to ``topic`` of ``route``; the seam
#: ``create_app(authorize_topic=...)`` exposes. The default allows everything.
TopicAuthorizer = Callable[[Principal, str, Topic], bool | Awaitable[bool]]


def allow_all(principal: Principal, route: str, topic: Topic) -> bool:
    """The default topic authorizer."""
    return True


# ---- origins ---------------------------------------------------------------------------


def parse_origin(value: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of a serialized origin, or None when it is not one.

    A serialized origin is ``scheme://host[:port]`` and nothing else: no path, query,
    fragment or user info. ``null`` (sandboxed frames, ``file:`` pages) is not an origin.
    """
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.username or parts.password:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme]


class OriginPolicy:
    """The allow-list of browser origins; empty means any origin (development)."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self._allowed: frozenset[tuple[str, str, int]] = frozenset()
        parsed = set()
        for entry in allowed:
            origin = parse_origin(entry)
            if origin is None:
                raise ConfigurationError(
                    f"invalid setting MARKETCAST_ALLOWED_ORIGINS: {entry!r} is not an origin; "
                    "expected scheme://host[:port] such as https://app.example.com"
                )
            parsed.add(origin)
        #: Parsed once; each handshake only parses the header it checks.
        self._allowed = frozenset(parsed)

    @property
    def enabled(self) -> bool:
        return bool(self._allowed)

    def allows(self, origins: Sequence[str]) -> bool:
        """Whether a handshake carrying these ``Origin`` header values may proceed."""
        if not self._allowed or not origins:
            return True
        if len(origins) != 1:
            return False
        parsed = parse_origin(origins[0])
        return parsed is not None and parsed in self._allowed


# ---- tokens ----------------------------------------------------------------------------


def token_set_verifier(tokens: Sequence[SecretStr]) -> TokenVerifier:
    """A verifier accepting any of ``tokens``; the principal is ``token#<position>``."""
    secrets: list[bytes] = []
    for position, token in enumerate(tokens, start=1):
        value = token.get_secret_value()
        if not _TOKEN_CHARS.match(value):
            # The value itself is never put in the message.
            raise ConfigurationError(
                f"invalid setting MARKETCAST_AUTH_TOKENS: token #{position} holds a character "
                "that cannot travel in Sec-WebSocket-Protocol; use letters, digits and "
                "!#$%&'*+-.^_`|~ only"
            )
        secrets.append(value.encode())

    def verify(presented: str) -> Principal | None:
        candidate = presented.encode()
        match = None
        # Compare against every token (no early exit) so timing says nothing about which.
        for position, secret in enumerate(secrets, start=1):
            if hmac.compare_digest(candidate, secret) and match is None:
                match = Principal(f"token#{position}")
        return match

    return verify


# ---- the handshake decision ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Admission:
    principal: Principal
    #: The subprotocol to echo (never the token one), or None when none was offered.
    subprotocol: str | None


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused handshake; the client gets HTTP 403 either way, the server log says why."""

    #: ``origin_not_allowed`` or ``unauthorized``.
    code: str
    #: Why, for the server log; never contains the token.
    message: str


class HandshakeGate:
    """Origin check, then token check, for every WebSocket handshake."""

    def __init__(self, origins: OriginPolicy, verifier: TokenVerifier | None) -> None:
        self.origins = origins
        #: None: no authentication; every connection is ``ANONYMOUS``.
        self.verifier = verifier

    async def admit(
        self, headers: Mapping[str, Sequence[str]], subprotocols: Sequence[str]
    ) -> Admission | Refusal:
        origins = headers.get("origin", ())
        if not self.origins.allows(origins):
            shown = origins[0][:100] if len(origins) == 1 else f"{len(origins)} Origin headers"
            return Refusal("origin_not_allowed", f"origin {shown!r} is not allowed")
        echoed = SUBPROTOCOL if SUBPROTOCOL in subprotocols else None
        if self.verifier is None:
            return Admission(ANONYMOUS, echoed)
        tokens = [p[len(TOKEN_PREFIX) :] for p in subprotocols if p.startswith(TOKEN_PREFIX)]
        if len(tokens) != 1:
            found = "no token" if not tokens else f"{len(tokens)} tokens"
            return Refusal("unauthorized", f"{found} among the offered subprotocols")
        if echoed is None:
            # Echoing the token subprotocol would publish it; echoing nothing would make a
            # browser fail the connection. So the API subprotocol must come with the token.
            return Refusal("unauthorized", f"a token without the subprotocol {SUBPROTOCOL!r}")
        result = self.verifier(tokens[0])
        principal = await result if inspect.isawaitable(result) else result
        if principal is None:
            return Refusal("unauthorized", "the token is not valid")
        return Admission(principal, echoed)


async def is_authorized(
    authorizer: TopicAuthorizer, principal: Principal, route: str, topic: Topic
) -> bool:
    """Run a sync or async authorizer."""
    result = authorizer(principal, route, topic)
    allowed = await result if inspect.isawaitable(result) else result
    return bool(allowed)


def topic_guard(authorizer: TopicAuthorizer) -> Callable[[object, str, Topic], Awaitable[bool]]:
    """The subscription guard for ``Subscriptions``: ``authorizer`` applied to the principal
    the connection was admitted as (``ANONYMOUS`` for anything that carries none)."""

    async def guard(conn: object, route: str, topic: Topic) -> bool:
        principal = getattr(conn, "principal", ANONYMOUS)
        if not isinstance(principal, Principal):
            principal = ANONYMOUS
        return await is_authorized(authorizer, principal, route, topic)

    return guard


def build_gate(
    allowed_origins: Sequence[str],
    tokens: Sequence[SecretStr],
    verifier: TokenVerifier | None = None,
) -> HandshakeGate:
    """The gate for these settings; a custom ``verifier`` replaces the configured tokens."""
    if verifier is None and tokens:
        verifier = token_set_verifier(tokens)
    return HandshakeGate(OriginPolicy(allowed_origins), verifier)


# ---- logs ------------------------------------------------------------------------------


def redact(text: str) -> str:
    """``text`` with every token-shaped secret replaced by ``[redacted]``.

    A log line may carry a token in a query string (``?token=...``: refused, but uvicorn logs
    the path first) or as a subprotocol; ``marketcast.redaction`` finds both, and the other
    token-shaped secrets, in time linear in the line's length.
    """
    return redact_patterns(text)


class RedactSecrets(logging.Filter):
    """A handler filter that caps records' messages and cuts token-shaped secrets out."""

    def __init__(self) -> None:
        super().__init__()
        #: No configured secrets: this filter sees only what ``redact`` can find by shape.
        self._redactor = Redactor()

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record, self._redactor)
        return True


def install_log_redaction(logger_names: Iterable[str] = ("", "uvicorn", "uvicorn.access")) -> None:
    """Attach ``RedactSecrets`` to every handler of these loggers (idempotent).

    On handlers rather than loggers: a logger's filters do not see records that propagate
    from its children, a handler's do.
    """
    for name in logger_names:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactSecrets) for f in handler.filters):
                handler.addFilter(RedactSecrets())
