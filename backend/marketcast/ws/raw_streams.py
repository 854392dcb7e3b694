"""Raw streams: topics pushed with no subscribe message, one path per topic.

``/api/v1/ws/stream/bars/{symbol}/{resolution}``, ``/api/v1/ws/stream/quotes/{symbol}`` and
``/api/v1/ws/stream/trades/{symbol}`` serve quick consumers — a shell one-liner, a dashboard
widget, a script — that want one stream and no request protocol, like an exchange's raw
streams. ``/api/v1/ws/stream?streams=bars/BTCUSDT/1,quotes/EUR%2FUSD`` combines several of
those paths on one connection. The frames are exactly the ``*.update`` messages of the main
endpoint, and each carries its topic.

Why they are ordinary connections of the adapter: a raw stream gets the same handshake gate
(origins, tokens), connection cap, bounded outbox and slow-consumer close, drain notice,
metrics and logs as any other, because it *is* one — ``FastWSAdapter.serve_socket`` with an
``on_open`` that subscribes through ``Subscriptions.subscribe``, exactly as a
``bars.subscribe`` request would. So a combined stream's paths count against the subscription
limit (``too_many_subscriptions``) like subscribe requests.

Why a raw stream answers ``ping`` and nothing else: its channel in the AsyncAPI document is a
fixed set of topics, so further subscriptions would push frames its consumers were never told
about; ``ping`` is the one request a push-only consumer needs (browsers cannot see protocol
pings). Any other request gets the ``error`` ``unknown_type`` a type missing from the main
endpoint gets, and the connection stays open, as after any refused frame.

Why a symbol with a slash works: the server decodes the path (and the query) before routing,
so ``EUR%2FUSD`` arrives as ``EUR/USD``; the symbol is everything between the route and the
family's params (the last segments), so the encoded and the plain spelling both work. Clients
should encode it: it is one path segment. A combined stream separates its paths with commas,
since paths hold slashes; a symbol never holds a comma.

Why accept-then-close for a stream that cannot be served rather than refusing the handshake:
a browser sees neither the status nor the body of a refused handshake. Accepted, the client
gets one ``error`` message with the same code and text a refused ``bars.subscribe`` gets
(``invalid_symbol``, ``unknown_symbol``, ``unsupported_resolution``, ``unsupported_channel``,
``too_many_subscriptions``, ``forbidden``; for a combined stream prefixed with the path it is
about, and ``invalid_stream`` for a path that is no raw stream), then the close code 4404
(``CloseCode.STREAM_NOT_SERVED``). Nothing is delivered before every path is subscribed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Final
from urllib.parse import parse_qs

from starlette.websockets import WebSocket

from marketcast.channels.base import Family, Registry
from marketcast.delivery.connection import Connection
from marketcast.delivery.transport import WebSocketHandler, WebSocketRoutes
from marketcast.errors import CloseCode, ErrorCode, ProtocolError
from marketcast.protocol import SYMBOL_PATTERN
from marketcast.subscriptions import Subscriptions
from marketcast.wire import envelope
from marketcast.ws.adapter import FastWSAdapter

log = logging.getLogger("marketcast.ws")

#: Below the main endpoint's path; the AsyncAPI channel names are relative to it.
STREAM_SEGMENT: Final = "stream"
#: The query parameter of a combined stream, and what separates its paths.
STREAMS_PARAMETER: Final = "streams"
PATH_SEPARATOR: Final = ","
#: The client operations a raw stream answers (``FastWSAdapter.serve_socket``'s ``accepts``).
RAW_STREAM_REQUESTS: Final = frozenset({"ping"})
_SYMBOL = re.compile(SYMBOL_PATTERN)

Opener = Callable[[Connection], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class StreamPath:
    """One raw stream's path, read: ``bars/BTCUSDT/1`` is bars, BTCUSDT, resolution 1."""

    text: str
    family: Family
    symbol: str
    #: The family's params as the path spells them (``Family.parse_params`` checks them).
    values: Mapping[str, str]


def channel_name(family: Family) -> str:
    """A family's raw stream below the main endpoint: ``stream/<route>/{symbol}/{param}...``."""
    return "/".join([STREAM_SEGMENT, stream_pattern(family)])


def stream_pattern(family: Family) -> str:
    """``<route>/{symbol}/{param}...``: the form of the family's stream paths."""
    names = ("symbol", *family.param_names)
    return "/".join([family.route, *(f"{{{n}}}" for n in names)])


def parse_stream_path(channels: Registry, text: str) -> StreamPath | None:
    """``<route>/<symbol>/<param>...`` read with the family's params as the last segments, in
    its declaration's order, and the symbol everything between; None if it is no stream."""
    name, slash, rest = text.partition("/")
    family = channels.find(name)
    if family is None or not slash:
        return None
    values: list[str] = []
    for _ in family.param_names:
        rest, slash, value = rest.rpartition("/")
        if not slash or not value:
            return None
        values.insert(0, value)
    if not rest:
        return None
    return StreamPath(text, family, rest, dict(zip(family.param_names, values, strict=True)))


def combined_paths(channels: Registry, query_string: bytes) -> list[StreamPath]:
    """The paths of ``?streams=a,b,c``, in order; a ProtocolError naming what is wrong."""
    forms = ", ".join(stream_pattern(family) for family in channels)
    expected = f"expected ?{STREAMS_PARAMETER}=<path>,<path>,... with paths such as {forms}"
    given = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
    found = given.get(STREAMS_PARAMETER, [])
    if len(found) != 1 or not found[0]:
        problem = "no streams" if not found or not found[0] else f"{len(found)} streams parameters"
        raise ProtocolError(ErrorCode.INVALID_STREAM, f"{problem}: {expected}")
    paths: list[StreamPath] = []
    for number, text in enumerate(found[0].split(PATH_SEPARATOR), start=1):
        path = parse_stream_path(channels, text)
        if path is None:
            raise ProtocolError(
                ErrorCode.INVALID_STREAM,
                f"stream {number} {text[:80]!r} is no raw stream: {expected}",
            )
        paths.append(path)
    return paths


def stream_opener(
    subscriptions: Subscriptions,
    close_timeout: float,
    wanted: Callable[[], Sequence[StreamPath]],
    *,
    combined: bool,
) -> Opener:
    """What a raw stream does once its connection is open: subscribe every path ``wanted``
    gives, in order, or explain the first that cannot be served and close.

    A ``combined`` stream checks every path before it subscribes any, so that a refusal comes
    before any update, and names the path a refusal is about."""

    async def open_stream(conn: Connection) -> None:
        try:
            paths = wanted()
            if combined:
                await _check_all(subscriptions, conn, paths)
            for number, path in enumerate(paths, start=1):
                with _naming(number, path, combined):
                    route = path.family.route
                    await subscriptions.subscribe(conn, route, path.symbol, _params(path))
                    # No reply to wait for: a family whose subscribe holds its updates back
                    # until the reply (a state, ``orderbook``) streams from here on.
                    conn.settle(ok=True)
        except ProtocolError as exc:
            conn.settle(ok=False)
            conn.reply(envelope("error", {"code": exc.code.value, "message": exc.message}))
            log.info("raw stream of %s refused: %s", conn.uid, exc.message)
            await conn.close_after_flush(CloseCode.STREAM_NOT_SERVED, exc.code.value, close_timeout)

    return open_stream


async def _check_all(
    subscriptions: Subscriptions, conn: Connection, paths: Sequence[StreamPath]
) -> None:
    """Refuse the batch as its subscribes would be refused, before any is made."""
    topics: set[str] = set()
    for number, path in enumerate(paths, start=1):
        with _naming(number, path, True):
            route = path.family.route
            topics.add(await subscriptions.check(conn, route, path.symbol, _params(path)))
            if len(topics - set(conn.subscriptions)) > subscriptions.free_slots(conn):
                raise subscriptions.too_many_error()


@contextmanager
def _naming(number: int, path: StreamPath, named: bool) -> Iterator[None]:
    """A refusal about ``path`` says which path it is about (when ``named``)."""
    try:
        yield
    except ProtocolError as exc:
        if not named:
            raise
        raise ProtocolError(
            exc.code, f"stream {number} {path.text[:80]!r}: {exc.message}"
        ) from None


def _params(path: StreamPath) -> dict[str, Any]:
    """The path's params, canonical; a ProtocolError for an invalid symbol or param."""
    if not _SYMBOL.match(path.symbol):
        raise ProtocolError(
            ErrorCode.INVALID_SYMBOL,
            f"invalid symbol {path.symbol[:40]!r}: expected upper-case letters and digits, "
            "optionally BASE/QUOTE (percent-encoded in the path: EUR%2FUSD)",
        )
    return path.family.parse_params(path.values)


def raw_stream_routes(
    adapter: FastWSAdapter, subscriptions: Subscriptions, *, ws_path: str, channels: Registry
) -> WebSocketRoutes:
    """The raw streams below ``ws_path``, as routes of the WebSocket entry (``delivery.transport``).

    ``{base}/stream/<path>`` serves one path, ``{base}/stream?streams=<path>,...`` several.
    Any other path is not a raw stream (None).
    """
    combined = f"{ws_path.rstrip('/')}/{STREAM_SEGMENT}"
    prefix = combined + "/"
    close_timeout = adapter.limits.close_timeout

    async def serve_combined(ws: WebSocket) -> None:
        query: bytes = ws.scope.get("query_string", b"")
        opener = stream_opener(
            subscriptions, close_timeout, partial(combined_paths, channels, query), combined=True
        )
        await adapter.serve_socket(ws, on_open=opener, accepts=RAW_STREAM_REQUESTS)

    def route(path: str) -> WebSocketHandler | None:
        if path == combined:
            return serve_combined
        if not path.startswith(prefix):
            return None
        found = parse_stream_path(channels, path[len(prefix) :])
        if found is None:
            return None
        opener = stream_opener(subscriptions, close_timeout, lambda: [found], combined=False)
        return partial(adapter.serve_socket, on_open=opener, accepts=RAW_STREAM_REQUESTS)

    return route
