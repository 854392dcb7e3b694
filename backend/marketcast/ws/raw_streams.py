"""Raw streams: one topic per connection, pushed with no subscribe message.

``/api/v1/ws/stream/bars/{symbol}/{resolution}`` and ``/api/v1/ws/stream/quotes/{symbol}``
serve quick consumers — a shell one-liner, a dashboard widget, a script — that want one
stream and no request protocol, like an exchange's raw streams. The frames are exactly the
``bars.update`` / ``quotes.update`` messages of the main endpoint.

Why they are ordinary connections of the adapter: a raw stream gets the same handshake gate
(origins, tokens), connection cap, bounded outbox and slow-consumer close, drain notice,
metrics and logs as any other, because it *is* one — ``FastWSAdapter.serve_socket`` with an
``on_open`` that subscribes through ``Subscriptions.subscribe``, exactly as a
``bars.subscribe`` request would.

Why a raw stream answers ``ping`` and nothing else: its channel in the AsyncAPI document is
one topic, so further subscriptions would push frames its consumers were never told about;
``ping`` is the one request a push-only consumer needs (browsers cannot see protocol pings).
Any other request gets the ``error`` ``unknown_type`` a type missing from the main endpoint
gets, and the connection stays open, as after any refused frame.

Why a symbol with a slash works: the server decodes the path before routing, so
``EUR%2FUSD`` arrives as ``EUR/USD``; the symbol is everything before the last segment (the
resolution), so the encoded and the plain spelling both work. Clients
should encode it: it is one path segment.

Why accept-then-close for a stream that cannot be served rather than refusing the handshake:
a browser sees neither the status nor the body of a refused handshake. Accepted, the client
gets one ``error`` message with the same code and text a refused ``bars.subscribe`` gets
(``invalid_symbol``, ``unknown_symbol``, ``unsupported_resolution``, ``forbidden``), then the
close code 4404 (``CloseCode.STREAM_NOT_SERVED``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any, Final

from marketcast.channels.base import Family, Registry
from marketcast.delivery.connection import Connection
from marketcast.delivery.transport import WebSocketHandler, WebSocketRoutes
from marketcast.errors import CloseCode, ErrorCode, ProtocolError
from marketcast.protocol import SYMBOL_PATTERN
from marketcast.subscriptions import Subscriptions
from marketcast.wire import envelope
from marketcast.ws.adapter import FastWSAdapter
from marketcast.ws.spec import CONTENT_TYPE, message_name

log = logging.getLogger("marketcast.ws")

#: Below the main endpoint's path; the AsyncAPI channel names are relative to it.
STREAM_SEGMENT: Final = "stream"
#: The client operations a raw stream answers (``FastWSAdapter.serve_socket``'s ``accepts``).
RAW_STREAM_REQUESTS: Final = frozenset({"ping"})
_SYMBOL = re.compile(SYMBOL_PATTERN)
_SUMMARIES: Final = {
    "notice": "The server will close this connection soon; reconnect to resume.",
    "error": "The stream cannot be served (sent once, before close code 4404), or a client "
    "frame was refused (the connection stays open).",
    "ping": "Application-level ping, the only request a raw stream answers.",
    "pong": "Reply to ping.",
}

Opener = Callable[[Connection], Awaitable[None]]


def channel_name(family: Family) -> str:
    """A family's raw stream below the main endpoint: ``stream/<route>/{symbol}/{param}...``."""
    names = ("symbol", *family.param_names)
    return "/".join([STREAM_SEGMENT, family.route, *(f"{{{n}}}" for n in names)])


def stream_opener(
    subscriptions: Subscriptions,
    close_timeout: float,
    family: Family,
    symbol: str,
    values: Mapping[str, str],
) -> Opener:
    """What a raw stream does once its connection is open: subscribe, or explain and close."""

    async def open_stream(conn: Connection) -> None:
        try:
            if not _SYMBOL.match(symbol):
                raise ProtocolError(
                    ErrorCode.INVALID_SYMBOL,
                    f"invalid symbol {symbol[:40]!r}: expected upper-case letters and digits, "
                    "optionally BASE/QUOTE (percent-encoded in the path: EUR%2FUSD)",
                )
            params = family.parse_params(values)
            await subscriptions.subscribe(conn, family.route, symbol, params)
        except ProtocolError as exc:
            conn.reply(envelope("error", {"code": exc.code.value, "message": exc.message}))
            log.info("raw stream of %s refused: %s", conn.uid, exc.message)
            await conn.close_after_flush(CloseCode.STREAM_NOT_SERVED, exc.code.value, close_timeout)

    return open_stream


def raw_stream_routes(
    adapter: FastWSAdapter, subscriptions: Subscriptions, *, ws_path: str, channels: Registry
) -> WebSocketRoutes:
    """The raw streams below ``ws_path``, as routes of the WebSocket entry (``delivery.transport``).

    ``{base}/stream/{route}/{symbol}/{param}...``: the family's params are the last segments,
    in its declaration's order, and the symbol everything between (it may hold a decoded
    slash). Any other path is not a raw stream (None).
    """
    prefix = f"{ws_path.rstrip('/')}/{STREAM_SEGMENT}/"
    close_timeout = adapter.limits.close_timeout

    def route(path: str) -> WebSocketHandler | None:
        if not path.startswith(prefix):
            return None
        name, slash, rest = path[len(prefix) :].partition("/")
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
        opener = stream_opener(
            subscriptions,
            close_timeout,
            family,
            rest,
            dict(zip(family.param_names, values, strict=True)),
        )
        return partial(adapter.serve_socket, on_open=opener, accepts=RAW_STREAM_REQUESTS)

    return route


def raw_stream_channels(ws_path: str, channels: Registry) -> dict[str, Any]:
    """The raw streams as AsyncAPI 2.6 channels (names relative to the server URL)."""
    symbol = {
        "description": "A served symbol (`GET /api/v1/market-data/symbols`), one path segment: "
        "percent-encode a slash, `EUR/USD` is `EUR%2FUSD`.",
        "schema": {"type": "string", "pattern": SYMBOL_PATTERN, "examples": ["BTCUSDT", "EUR/USD"]},
    }
    common = (
        "No subscribe message: the stream starts when the connection opens. The limits, "
        "notices and close codes of the main endpoint apply (4008 for a slow consumer, 1001 "
        "after a `notice`). A stream that cannot be served gets one `error` message "
        "(`invalid_symbol`, `unknown_symbol`, `unsupported_resolution`, "
        "`unsupported_channel`, `forbidden`), then close code 4404. Nothing needs to be "
        "sent; the one request answered is `ping` (with `pong`). Any other client frame is "
        "refused with one `error` (a request of another type: `unknown_type`) and the "
        "connection stays open."
    )
    base = ws_path.rstrip("/")
    found: dict[str, Any] = {}
    for family in channels:
        name = channel_name(family)
        example_params = family.docs.examples.get(f"{family.route}.subscribe", {})
        params = dict(example_params.get("payload", {}).get("params", {}))
        path = f"{base}/{name}".replace("{symbol}", "BTCUSDT")
        for param, value in params.items():
            path = path.replace(f"{{{param}}}", str(value))
        parameters: dict[str, Any] = {"symbol": symbol}
        for param in family.param_names:
            parameters[param] = _path_parameter(family, param)
        summaries = {**_SUMMARIES, f"{family.route}.update": family.docs.raw_summary}
        found[name] = {
            "description": f"Raw stream of one {family.route} topic, at `{base}/{name}` "
            f"(e.g. `{path}`). {common}",
            "parameters": parameters,
            "publish": {
                "operationId": f"sendRaw{family.route.capitalize()}",
                "summary": "ping; any other request is refused (unknown_type).",
                "message": {"oneOf": [_message(t, summaries) for t in sorted(RAW_STREAM_REQUESTS)]},
            },
            "subscribe": {
                "operationId": f"receiveRaw{family.route.capitalize()}",
                "summary": family.docs.raw_summary,
                "message": {
                    "oneOf": [
                        _message(t, summaries)
                        for t in (f"{family.route}.update", "pong", "notice", "error")
                    ]
                },
            },
        }
    return found


def _path_parameter(family: Family, name: str) -> dict[str, Any]:
    """A path parameter as the family's params model describes it (its JSON schema)."""
    schema = family.models.params.model_json_schema()
    field = dict(schema.get("properties", {}).get(name, {}))
    description = field.pop("description", f"The `{name}` param of the {family.route} family.")
    field.pop("title", None)
    return {"description": description, "schema": field}


def _message(message_type: str, summaries: Mapping[str, str]) -> dict[str, Any]:
    """A message of a raw channel: the same envelope as on the main endpoint.

    Inline, pointing at the envelope's schema, rather than a ``$ref`` to the component
    message: AsyncAPI 2 wants each ``messageId`` once in the document, and the component
    messages are already used by the route channels.
    """
    return {
        "title": message_type,
        "summary": summaries[message_type],
        "contentType": CONTENT_TYPE,
        "payload": {"$ref": f"#/components/schemas/{message_name(message_type)}"},
    }
