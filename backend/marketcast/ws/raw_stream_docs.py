"""The raw streams (``ws.raw_streams``) as AsyncAPI 2.6 channels of the published document.

Why separate from the serving code: the document is built from the registry alone, with no
connection or subscription in sight, and the serving code should not carry pages of prose.
The channel names are relative to the main endpoint's URL, as the serving code reads paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from marketcast.channels.base import Family, Registry
from marketcast.protocol import SYMBOL_PATTERN
from marketcast.ws.raw_streams import (
    PATH_SEPARATOR,
    RAW_STREAM_REQUESTS,
    STREAM_SEGMENT,
    STREAMS_PARAMETER,
    channel_name,
    stream_pattern,
)
from marketcast.ws.spec import CONTENT_TYPE, message_name

_SUMMARIES: Final = {
    "notice": "The server will close this connection soon; reconnect to resume.",
    "error": "The stream cannot be served (sent once, before close code 4404), or a client "
    "frame was refused (the connection stays open).",
    "ping": "Application-level ping, the only request a raw stream answers.",
    "pong": "Reply to ping.",
}
#: What every raw stream, single or combined, shares.
_COMMON: Final = (
    "No subscribe message: the stream starts when the connection opens. The limits, "
    "notices and close codes of the main endpoint apply (4008 for a slow consumer, 1001 "
    "after a `notice`). Nothing needs to be sent; the one request answered is `ping` (with "
    "`pong`). Any other client frame is refused with one `error` (a request of another type: "
    "`unknown_type`) and the connection stays open."
)
_REFUSED: Final = (
    "`invalid_symbol`, `unknown_symbol`, `unsupported_resolution`, `unsupported_channel`, "
    "`forbidden`"
)


def raw_stream_channels(ws_path: str, channels: Registry) -> dict[str, Any]:
    """The raw streams as AsyncAPI 2.6 channels (names relative to the server URL): one per
    family, and ``stream`` for several on one connection."""
    symbol = {
        "description": "A served symbol (`GET /api/v1/market-data/symbols`), one path segment: "
        "percent-encode a slash, `EUR/USD` is `EUR%2FUSD`.",
        "schema": {"type": "string", "pattern": SYMBOL_PATTERN, "examples": ["BTCUSDT", "EUR/USD"]},
    }
    common = (
        f"A stream that cannot be served gets one `error` message ({_REFUSED}), then close "
        f"code 4404. {_COMMON}"
    )
    base = ws_path.rstrip("/")
    found: dict[str, Any] = {}
    for family in channels:
        name = channel_name(family)
        path = f"{base}/{STREAM_SEGMENT}/{_example_path(family)}"
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
    found[STREAM_SEGMENT] = _combined_channel(base, channels)
    return found


def _example_path(family: Family) -> str:
    """The family's stream path for its subscribe example: ``bars/BTCUSDT/1``."""
    example = family.docs.examples.get(f"{family.route}.subscribe", {}).get("payload", {})
    path = stream_pattern(family).replace("{symbol}", str(example.get("symbol", "BTCUSDT")))
    for param, value in dict(example.get("params", {})).items():
        path = path.replace(f"{{{param}}}", str(value))
    return path


def _combined_channel(base: str, channels: Registry) -> dict[str, Any]:
    """``stream?streams=<path>,...``: several raw streams on one connection."""
    forms = ", ".join(f"`{stream_pattern(family)}`" for family in channels)
    example = f"{base}/{STREAM_SEGMENT}?{STREAMS_PARAMETER}=" + PATH_SEPARATOR.join(
        _example_path(family) for family in channels
    )
    updates = [f"{family.route}.update" for family in channels]
    summaries = {**_SUMMARIES, **{f"{f.route}.update": f.docs.raw_summary for f in channels}}
    return {
        "description": f"Several raw streams on one connection, at `{base}/{STREAM_SEGMENT}"
        f"?{STREAMS_PARAMETER}=<path>{PATH_SEPARATOR}<path>...` (e.g. `{example}`). Each path "
        f"has the form of a single raw stream's, below `{base}/{STREAM_SEGMENT}/`: {forms}; "
        "percent-encode a slash in a symbol (`quotes/EUR%2FUSD`). Paths are separated by "
        "commas, since they hold slashes. Every update carries its `topic`. The paths count "
        "against the subscription limit of a connection (`too_many_subscriptions`); the same "
        "path twice is one subscription. A query that is not one `streams` parameter, or a "
        "path that is no raw stream, gets one `error` `invalid_stream` naming it; a path that "
        f"cannot be served gets one `error` ({_REFUSED}, `too_many_subscriptions`) whose "
        "message starts with the path's number and text; either way close code 4404 follows "
        f"and nothing was delivered. {_COMMON}",
        "bindings": {
            "ws": {
                "method": "GET",
                "query": {
                    "type": "object",
                    "properties": {
                        STREAMS_PARAMETER: {
                            "type": "string",
                            "description": "Raw stream paths separated by commas.",
                            "examples": [example.partition("=")[2]],
                        }
                    },
                    "required": [STREAMS_PARAMETER],
                },
                "bindingVersion": "0.1.0",
            }
        },
        "publish": {
            "operationId": "sendRawCombined",
            "summary": "ping; any other request is refused (unknown_type).",
            "message": {"oneOf": [_message(t, summaries) for t in sorted(RAW_STREAM_REQUESTS)]},
        },
        "subscribe": {
            "operationId": "receiveRawCombined",
            "summary": "The updates of every path, each with its topic.",
            "message": {
                "oneOf": [_message(t, summaries) for t in (*updates, "pong", "notice", "error")]
            },
        },
    }


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
