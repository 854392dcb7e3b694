"""Running the app under uvicorn, with a drain before uvicorn's own shutdown.

Why a ``uvicorn.Server`` subclass: on SIGTERM uvicorn immediately closes every WebSocket with
1012 and drops whatever was queued for it; clients then see an abrupt restart instead of a
``notice`` and a going-away close (1001). ``GracefulServer`` intercepts the first SIGTERM or
SIGINT, runs the app's ``Lifecycle.drain()`` (readiness off, new connections refused, notice,
flush, 1001) and only then lets uvicorn proceed with its normal shutdown, which by then has
nothing left to cut. A second signal during the drain cuts it short (``Lifecycle.cut_drain``:
neither the signal's drain nor the lifespan shutdown waits out the notice period) and uvicorn
stops at once, closing what is left with 1012.

The uvicorn settings marketcast relies on are set here from ``Settings`` rather than left to
uvicorn's defaults: the frame size limit (1009), protocol pings (dead peers), the
``websockets-sansio`` implementation that the transport-abort fallback was checked against,
and the h11 protocol with request deadlines and the TCP connection cap
(``marketcast.http_guard``), whose refusals are logged once per interval
(``marketcast.refusals``), failed ``accept()`` calls included. The WebSocket write path the
fan-out will take (``delivery.direct``) is logged here too, once, before the first client.

Why permessage-deflate is offered by marketcast's own protocol class: uvicorn's offer lets
the server keep its compression context from one message to the next, so every frame would
be compressed again for every connection. ``SharedDeflateProtocol`` offers it with
``server_no_context_takeover`` (and asks clients for ``client_no_context_takeover``, so no
connection keeps a decompressor between messages either): a frame is compressed once and
the same bytes go to every client with the same window (``wire.Frame.deflated``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.config import WS_PROTOCOLS
from uvicorn.importer import ImportFromStringError, import_from_string
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

from marketcast.delivery.direct import startup_write_path
from marketcast.delivery.lean import LeanSansIOProtocol
from marketcast.http_guard import HttpGuard, guarded_h11_protocol
from marketcast.lifecycle import Lifecycle
from marketcast.refusals import install_accept_failure_log
from marketcast.settings import Settings
from marketcast.ws.security import install_log_redaction

log = logging.getLogger("marketcast.serving")


class GracefulServer(uvicorn.Server):
    """``uvicorn.Server`` whose first exit signal drains the app before shutting down.

    Signals are never handed to ``uvicorn.Server.handle_exit``: it records each one and
    re-raises it once the server has stopped, so that a clean stop after SIGTERM ended as a
    kill by SIGTERM (exit status 143) and one after Ctrl-C in a ``KeyboardInterrupt``
    traceback. ``marketcast serve`` exits 0 after a clean stop, whatever asked for it.
    """

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, guard: HttpGuard) -> None:
        super().__init__(config)
        self._lifecycle = lifecycle
        self._guard = guard
        #: The loop ``serve`` runs on; signal handlers run outside it and hand over to it.
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Held so the drain task is not garbage-collected while it runs.
        self._drain_task: asyncio.Task[None] | None = None
        self._drain_requested = False

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        loop = self._loop = asyncio.get_running_loop()
        previous = install_accept_failure_log(loop, self._guard.refusals)
        try:
            await super().serve(sockets)
        finally:
            loop.set_exception_handler(previous)
            self._guard.refusals.close()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        loop = self._loop
        if loop is None or not self.started or self.should_exit:
            # Not serving yet, or already stopping: uvicorn's rules (a second Ctrl-C while
            # stopping skips waiting for connections and the lifespan shutdown).
            self._stop(sig)
        elif not self._drain_requested:
            self._drain_requested = True
            # A ``signal.signal`` handler runs between two bytecodes of the main thread,
            # maybe inside the loop's select(): hand over to the loop, never touch it here.
            loop.call_soon_threadsafe(self._start_drain, sig)
        else:
            # A second signal during the drain: skip the notice period, stop at once.
            loop.call_soon_threadsafe(self._lifecycle.cut_drain)
            self._stop(sig)

    def _stop(self, sig: int) -> None:
        """What ``uvicorn.Server.handle_exit`` does, without recording ``sig`` to re-raise."""
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True

    def _start_drain(self, sig: int) -> None:
        log.info("signal %d: draining before shutdown", sig)
        self._drain_task = asyncio.get_running_loop().create_task(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        try:
            await self._lifecycle.drain()
        except Exception:
            log.exception("drain failed; shutting down anyway")
        finally:
            self.should_exit = True


def build_server(app: FastAPI, settings: Settings) -> GracefulServer:
    """The uvicorn server for ``app`` (built by ``create_app``) with marketcast's settings."""
    guard = HttpGuard.from_settings(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # uvicorn's h11 protocol plus request deadlines, the TCP connection cap and the
        # HTTP/1.1 check for WebSocket upgrades (``marketcast.http_guard``).
        http=guarded_h11_protocol(guard),
        ws=SharedDeflateProtocol,
        # Frames larger than this are refused by the protocol layer with close code 1009,
        # before they are read into memory.
        ws_max_size=settings.max_message_bytes,
        # Protocol pings detect dead peers that an idle stream would never notice; a peer
        # that does not answer within the timeout is dropped (close 1011, TCP closed).
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout,
        # Offered by SharedDeflateProtocol without server context takeover, so that each
        # frame is compressed once for every client (clients that do not offer it get plain
        # frames); uvicorn's own offer would compress every frame again per connection.
        ws_per_message_deflate=settings.ws_per_message_deflate,
        loop=settings.event_loop,
        lifespan="on",
    )
    # uvicorn.Config configured its loggers' handlers just now; filter them from here on.
    # (``marketcast serve`` then routes everything through ``marketcast.logs``, which redacts
    # in its formatter; this covers a server built without it, e.g. embedded in tests.)
    install_log_redaction(("", "uvicorn", "uvicorn.error", "uvicorn.access"))
    lifecycle: Lifecycle = app.state.lifecycle
    log.info("%s (MARKETCAST_MAX_TCP_CONNECTIONS)", guard.describe_cap())
    direct, line = startup_write_path(
        _ws_protocol_class(config), per_message_deflate=settings.ws_per_message_deflate
    )
    log.log(
        logging.INFO if direct else logging.WARNING, "%s, uvicorn %s", line, uvicorn.__version__
    )
    return GracefulServer(config, lifecycle, guard)


#: What every connection that asks for compression negotiates: no context kept between
#: messages in either direction; the window sizes are the client's choice (15 by default).
#: One tuple for every connection (the handshake only reads it; ``delivery.lean`` drops it
#: after the handshake).
SHARED_DEFLATE = (
    ServerPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True
    ),
)


class SharedDeflateProtocol(LeanSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol with marketcast's lean per-connection objects
    (``delivery.lean``), offering permessage-deflate (when ``ws_per_message_deflate``) on the
    terms that let one compressed frame serve every client: ``SHARED_DEFLATE`` instead of
    uvicorn's factory."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.config.ws_per_message_deflate:
            # Read by the handshake (``ServerProtocol.accept``), which has not happened yet.
            self.conn.available_extensions = SHARED_DEFLATE


def _ws_protocol_class(config: uvicorn.Config) -> object:
    """The WebSocket protocol class of ``config``, resolved now because uvicorn loads it only
    once it serves, after the startup lines; None when uvicorn could not load one either."""
    ws = config.ws
    if not isinstance(ws, str):
        return ws
    target = WS_PROTOCOLS.get(ws, ws)
    try:
        return None if target is None else import_from_string(target)
    except ImportFromStringError:
        return None
