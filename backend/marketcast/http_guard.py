"""HTTP connections that cannot hold a worker: request deadlines, a TCP connection cap, and
WebSocket over HTTP/1.1 only.

Why a subclass of uvicorn's ``H11Protocol``: uvicorn (0.55, h11) times out nothing before a
request is complete. Its keep-alive timer runs only between requests and is cancelled by the
first byte of the next one, and a fresh connection has no timer at all, so a client sending
one header line now and then holds its socket (and a file descriptor) for ever; thousands of
them exhaust the worker. ``MARKETCAST_MAX_CONNECTIONS`` caps WebSocket connections only, once
they are accepted by the app. Both gaps are at the protocol layer, below the ASGI app, so
they are closed there:

- **Deadlines** follow h11's view of the client: while it is ``IDLE`` (no complete request
  head yet) the connection has ``MARKETCAST_HTTP_HEADER_TIMEOUT`` seconds from the moment it
  opened or its previous response ended; while it is in ``SEND_BODY``,
  ``MARKETCAST_HTTP_BODY_TIMEOUT`` seconds from the end of the headers. Once the request is
  complete the app's own time is not limited here, and an upgrade to WebSocket cancels the
  deadline (the WebSocket protocol has its pings). A late request gets 408 if nothing of it
  was answered yet; a connection that sent nothing is closed silently, as uvicorn's
  keep-alive timeout does.
- **The cap** counts uvicorn's own set of open connections (HTTP and upgraded WebSocket
  alike) when a new one is made: beyond ``MARKETCAST_MAX_TCP_CONNECTIONS`` it gets a fixed
  503 and is closed before anything is read, so a flood costs no parsing and no app work.
- **HTTP/1.0 upgrades** are refused with 400: RFC 6455 requires HTTP/1.1, and uvicorn would
  otherwise pass them on, rewriting the request line to HTTP/1.1 on the way.

Turned-away connections are logged by a ``RefusalLog`` (one line per interval at most).
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from marketcast.refusals import RefusalLog
from marketcast.settings import Settings

log = logging.getLogger("marketcast.http")

#: File descriptors left to everything that is not a client connection when the cap is
#: derived from the limit: the listener, the event loop's own, log files, Redis and upstream
#: connections, HTTP client pools, static files being served, /proc reads for metrics.
FD_RESERVE = 128
#: Seconds a client turned away at the cap is told to wait (``Retry-After``).
RETRY_AFTER_SECONDS = 5

Phase = Literal["headers", "body"]


def _fixed_response(status: str, body: str, *headers: str) -> bytes:
    """A complete ``Connection: close`` response, written in one piece without h11."""
    payload = body.encode()
    head = [
        f"HTTP/1.1 {status}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(payload)}",
        "Connection: close",
        *headers,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


AT_CAPACITY = _fixed_response(
    "503 Service Unavailable",
    "server at its connection limit: try again later\n",
    f"Retry-After: {RETRY_AFTER_SECONDS}",
)
WEBSOCKET_NEEDS_HTTP11 = _fixed_response(
    "400 Bad Request", "a WebSocket handshake needs HTTP/1.1 or later (RFC 6455)\n"
)


def request_timeout_response(seconds: float) -> bytes:
    return _fixed_response("408 Request Timeout", f"request not complete within {seconds:g}s\n")


def file_descriptor_soft_limit() -> int | None:
    """This process's soft ``RLIMIT_NOFILE``; None when it is unlimited."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY or soft < 0 else soft


def default_max_tcp_connections(soft_limit: int | None, reserve: int = FD_RESERVE) -> int | None:
    """The automatic cap: the soft limit minus ``reserve``, but at least half the limit.

    None (no cap) when the limit itself is unlimited. Half the limit as a floor keeps a
    small limit usable (256 → 128 connections) rather than leaving nothing for clients.
    """
    if soft_limit is None:
        return None
    return max(soft_limit - reserve, soft_limit // 2, 1)


@dataclass
class HttpGuard:
    """What every connection of one server shares: the limits, and the refusal log."""

    header_timeout: float
    body_timeout: float
    #: Open TCP connections per worker beyond which new ones get 503; None = no cap.
    max_connections: int | None
    refusals: RefusalLog = field(default_factory=RefusalLog)

    @classmethod
    def from_settings(cls, settings: Settings, soft_limit: int | None = None) -> HttpGuard:
        """Limits from ``settings``; ``MARKETCAST_MAX_TCP_CONNECTIONS=0`` derives the cap
        from ``soft_limit`` (default: this process's file-descriptor limit)."""
        cap: int | None = settings.max_tcp_connections
        if cap == 0:
            limit = file_descriptor_soft_limit() if soft_limit is None else soft_limit
            cap = default_max_tcp_connections(limit)
        return cls(settings.http_header_timeout, settings.http_body_timeout, cap)

    def describe_cap(self) -> str:
        if self.max_connections is None:
            return "no TCP connection cap (unlimited file descriptors)"
        return f"TCP connection cap {self.max_connections} per worker"


def guarded_h11_protocol(guard: HttpGuard) -> type[H11Protocol]:
    """The protocol class for ``uvicorn.Config(http=...)``, bound to one server's ``guard``.

    A class per server rather than a module-level one holding the guard: uvicorn builds each
    connection's protocol from the class alone, and two servers in one process (the tests)
    must not share limits or counts.
    """

    class BoundGuardedH11Protocol(GuardedH11Protocol):
        http_guard = guard

    return BoundGuardedH11Protocol


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with request deadlines, the connection cap and the HTTP/1.1
    check for upgrades; use ``guarded_h11_protocol`` to bind it to a guard."""

    http_guard: ClassVar[HttpGuard]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for: Phase | None = None
        #: Turned away at the cap: uvicorn's connection state was never set up.
        self._refused = False
        #: Handed over to the WebSocket protocol: no deadline applies any more.
        self._upgraded = False

    # -- the cap ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        cap = self.http_guard.max_connections
        if cap is not None and len(self.connections) >= cap:
            self._refused = True
            transport.write(AT_CAPACITY)
            transport.close()
            self.http_guard.refusals.note(f"over MARKETCAST_MAX_TCP_CONNECTIONS={cap} (503)")
            return
        super().connection_made(transport)
        self._sync_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        if not self._refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._refused:  # a refused transport is closing; nothing of it is parsed
            super().data_received(data)

    # -- deadlines ------------------------------------------------------------------------------

    def handle_events(self) -> None:
        super().handle_events()
        self._sync_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._sync_deadline()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._cancel_deadline()
        if event.http_version != b"1.1":  # h11 parses HTTP/1.0 and HTTP/1.1 only
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
            version = event.http_version.decode()
            log.debug("WebSocket upgrade over HTTP/%s from %s refused (400)", version, client)
            self.transport.write(WEBSOCKET_NEEDS_HTTP11)
            self.transport.close()
            return
        self._upgraded = True
        super().handle_websocket_upgrade(event)

    def _sync_deadline(self) -> None:
        """Arm, move or cancel the deadline to match what the client owes us now."""
        phase: Phase | None = None
        if not self._upgraded and not self.transport.is_closing():
            state = self.conn.their_state
            if state is h11.IDLE:
                phase = "headers"
            elif state is h11.SEND_BODY:
                phase = "body"
        if phase == self._waiting_for:
            return
        self._cancel_deadline()
        self._waiting_for = phase
        if phase is not None:
            guard = self.http_guard
            seconds = guard.header_timeout if phase == "headers" else guard.body_timeout
            self._deadline = self.loop.call_later(seconds, self._expired, phase, seconds)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._waiting_for = None

    def _expired(self, phase: Phase, seconds: float) -> None:
        self._deadline = None
        self._waiting_for = None
        if self.transport.is_closing():
            return
        if phase == "headers" and not self.conn.trailing_data[0]:
            # Nothing of a next request arrived: an idle connection, closed quietly as
            # uvicorn's keep-alive timeout does (a 408 could cross a request being sent).
            self._unset_keepalive_if_required()
            self.transport.close()
            return
        answer = request_timeout_response(seconds)
        cycle = self.cycle if phase == "body" else None
        if cycle is not None:
            if not cycle.response_complete:
                # The app's receive() now returns http.disconnect and its send() is ignored.
                cycle.disconnected = True
                cycle.message_event.set()
            if cycle.response_started:
                answer = b""  # the app answered (early): no second status, just the close
        if answer:
            self.transport.write(answer)
        setting = "HTTP_HEADER_TIMEOUT" if phase == "headers" else "HTTP_BODY_TIMEOUT"
        self.http_guard.refusals.note(
            f"cut at MARKETCAST_{setting}={seconds:g}s" + (" (408)" if answer else "")
        )
        self._unset_keepalive_if_required()
        self.transport.close()
