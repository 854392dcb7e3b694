"""Build the AsyncAPI 2.6.0 document of the WebSocket API from a declarative message table.

fastws's own document has one channel, envelopes whose ``type`` is ``anyOf[const, string]``
(generators then see a plain string, no discriminated union) and component names that change
when another router reuses an operation name. TypeScript types and consumer models are
generated from this document, so its names and shapes are a public contract: here they derive
only from the wire ``type`` and the payload class name. The same table always gives the same
bytes: it is sorted before use, and nothing depends on hash order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal, TypeAlias

from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from marketcast.errors import CloseCode, ErrorCode
from marketcast.protocol import MAX_ID, MAX_ID_LENGTH

ASYNCAPI_VERSION: Final = "2.6.0"
CONTENT_TYPE: Final = "application/json"
#: The one message type the protocol fixes outside any route (DESIGN §3): it answers any
#: request, so it echoes the request's ``id`` although it is no declared reply.
ERROR_TYPE: Final = "error"
#: The unions code generators turn into ``type``-discriminated unions.
CLIENT_UNION: Final = "ClientMessage"
SERVER_UNION: Final = "ServerMessage"

_SCHEMA_REF: Final = "#/components/schemas/{model}"
_MESSAGE_REF: Final = "#/components/messages/{name}"
#: AsyncAPI 2.x: ``publish`` is what clients send, ``subscribe`` what they receive.
_OPERATIONS: Final = (("publish", "client", "send"), ("subscribe", "server", "receive"))
_TYPE_PATTERN: Final = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
# Keywords whose value is a map of schemas, a list of schemas, or one schema: the only places
# a nested schema (and so a pydantic property ``title``) can hide.
_SCHEMA_MAPS: Final = frozenset({"properties", "patternProperties", "$defs", "definitions"})
_SCHEMA_LISTS: Final = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_SCHEMA_ONE: Final = frozenset(
    {"items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames"}
)

Direction: TypeAlias = Literal["client", "server"]
Schema: TypeAlias = dict[str, Any]
#: Spelled once here: inside ``MessageSpec`` the field ``type`` shadows the builtin.
PayloadModel: TypeAlias = type[BaseModel]

#: Every close code the server (or its WebSocket layer) sends, what it means, and what a client
#: does next (docs/websocket.md, "Closes"): ``never`` retry, reconnect ``immediate``-ly (a
#: planned close), ``growing`` back-off (reset only once a later connection is stable), or plain
#: ``backoff``. Published as ``x-close-codes``; both clients generate their policy from it.
# fmt: off
CLOSE_CODE_POLICY: Final[Mapping[CloseCode, tuple[str, str]]] = MappingProxyType({
    CloseCode.NORMAL: ("normal closure", "backoff"),
    CloseCode.GOING_AWAY: ("going away: the server drains or the connection reached its "
                           "lifetime", "immediate"),
    CloseCode.INVALID_PAYLOAD: ("a text frame that is not valid UTF-8", "never"),
    CloseCode.POLICY_VIOLATION: ("the client kept sending over its rate limit", "growing"),
    CloseCode.MESSAGE_TOO_BIG: ("a client frame larger than the server's limit", "never"),
    CloseCode.INTERNAL_ERROR: ("a protocol ping was not answered in time", "backoff"),
    CloseCode.SERVICE_RESTART: ("the server stopped without draining", "backoff"),
    CloseCode.TRY_AGAIN_LATER: ("the worker is at its connection cap, or shutting down",
                                "growing"),
    CloseCode.SLOW_CONSUMER: ("slow consumer: the client did not read fast enough", "growing"),
    CloseCode.STREAM_NOT_SERVED: ("a raw stream that cannot be served to this client",
                                  "never"),
})
#: Error codes after which a client may send the same request again after a delay (``later``:
#: the frame was not processed, or a service did not answer), or not (``never``: fix it).
#: Published as ``x-error-codes``.
ERROR_CODE_RETRY: Final[Mapping[ErrorCode, str]] = MappingProxyType({
    **{code: "never" for code in ErrorCode},
    ErrorCode.RATE_LIMITED: "later",
    ErrorCode.UNAVAILABLE: "later",
    ErrorCode.INTERNAL_ERROR: "later",
})
# fmt: on


def _close_codes() -> dict[str, dict[str, str]]:
    """``x-close-codes``: close code (as a string, JSON keys are) -> meaning and retry policy."""
    missing = set(CloseCode) - set(CLOSE_CODE_POLICY)
    if missing:
        raise ValueError(f"close codes without a policy: {sorted(missing)}")
    return {
        str(int(code)): {"meaning": meaning, "retry": retry}
        for code, (meaning, retry) in sorted(CLOSE_CODE_POLICY.items())
    }


def _error_codes() -> dict[str, dict[str, str]]:
    """``x-error-codes``: error code -> retry policy, in ``ErrorCode`` order."""
    return {str(code): {"retry": ERROR_CODE_RETRY[code]} for code in ErrorCode}


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """One message type on the wire, as the AsyncAPI document describes it.

    ``direction`` says who sends it; ``reply_to`` names the request type a response answers
    (which also means it echoes that request's ``id``); ``example`` is a whole envelope and is
    validated against ``payload`` so a stale example fails the build instead of misleading. It
    may be ``None`` only so that a missing one is refused by name when the document is built.
    """

    type: str
    direction: Direction
    payload: PayloadModel
    channel: str
    summary: str
    description: str = ""
    reply_to: str | None = None
    example: dict[str, Any] | None = None


def message_name(message_type: str) -> str:
    """``bars.subscribe.response`` -> ``BarsSubscribeResponseMessage``.

    Names derive from the wire type alone, so they never change when messages are added.
    """
    words = re.split(r"[._]", message_type)
    return "".join(word[:1].upper() + word[1:] for word in words if word) + "Message"


def build_asyncapi(
    messages: Sequence[MessageSpec],
    *,
    title: str,
    version: str,
    description: str,
    server_url: str,
    server_variables: Mapping[str, Mapping[str, Any]] | None = None,
    ws_path: str,
    channel_descriptions: Mapping[str, str],
    extra_channels: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Return the AsyncAPI 2.6.0 document for ``messages``; raise ValueError on a bad table.

    ``server_variables`` describe the ``{name}`` parts of ``server_url``, if it has any.
    ``extra_channels`` are added as given: channels that are connections of their own at a
    path below the endpoint (raw streams, ``ws.raw_streams``), whose messages must be among
    ``messages``.
    """
    if not description.strip():
        raise ValueError("info.description must not be empty")
    specs = sorted(messages, key=lambda spec: message_name(spec.type))
    _check_table(specs)
    payload_refs, schemas = _payload_schemas(specs)
    examples, topics = _examples(specs)
    envelopes = {message_name(s.type): _envelope(s, payload_refs[s.payload]) for s in specs}
    clashes = sorted(set(envelopes) & set(schemas) | {CLIENT_UNION, SERVER_UNION} & set(schemas))
    if clashes:
        raise ValueError(f"payload model names clash with envelope names: {clashes}")
    schemas.update(envelopes)
    schemas[CLIENT_UNION] = _union(specs, "client")
    schemas[SERVER_UNION] = _union(specs, "server")
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": description.rstrip() + "\n\n" + _overview(specs),
        },
        "servers": {
            "local": {
                "url": server_url.rstrip("/") + "/" + ws_path.lstrip("/"),
                "protocol": "ws",
                "description": f"The WebSocket endpoint `{ws_path}`; every channel below is "
                "multiplexed over this one connection, told apart by the envelope `type`"
                + (
                    ", except the `stream/...` channels: each of those is a connection of its "
                    "own at this URL + `/` + the channel name (raw streams)."
                    if extra_channels
                    else "."
                ),
                **(
                    {"variables": json.loads(json.dumps(server_variables))}
                    if server_variables
                    else {}
                ),
            }
        },
        "defaultContentType": CONTENT_TYPE,
        "channels": _with_extra_channels(
            _channels(specs, topics, channel_descriptions), extra_channels or {}, specs, schemas
        ),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "messages": {message_name(s.type): _message(s, specs, examples) for s in specs},
        },
        "x-close-codes": _close_codes(),
        "x-error-codes": _error_codes(),
    }


# ---- table checks -----------------------------------------------------------------------


def _check_table(specs: Sequence[MessageSpec]) -> None:
    """Refuse tables that would give a document with dangling or ambiguous references."""
    by_type = {spec.type: spec for spec in specs}
    if len(by_type) != len(specs):
        raise ValueError("message types must be unique")
    names = {message_name(spec.type) for spec in specs}
    if len(names) != len(specs):
        raise ValueError("two message types map to the same component name")
    for spec in specs:
        if not _TYPE_PATTERN.match(spec.type):
            raise ValueError(f"message type {spec.type!r} is not dotted lower-case words")
        if not spec.summary.strip():
            raise ValueError(f"message {spec.type!r} needs a summary")
        if spec.reply_to is None:
            continue
        request = by_type.get(spec.reply_to)
        if request is None or request.direction != "client" or spec.direction != "server":
            raise ValueError(f"{spec.type!r} replies to {spec.reply_to!r}, no client message")


# ---- schemas ----------------------------------------------------------------------------


def _payload_schemas(
    specs: Sequence[MessageSpec],
) -> tuple[dict[PayloadModel, str], dict[str, Schema]]:
    """Payload models' schemas, nested ``$defs`` hoisted, named by their class names.

    All models go through one ``models_json_schema`` call so a model used by two payloads is
    emitted once, under one name.
    """
    models = sorted({spec.payload for spec in specs}, key=lambda m: (m.__name__, m.__module__))
    refs, top = models_json_schema([(m, "validation") for m in models], ref_template=_SCHEMA_REF)
    defs: dict[str, Schema] = top.get("$defs", {})
    schemas = {name: _clean(schema, keep_title=True) for name, schema in sorted(defs.items())}
    return {model: refs[(model, "validation")]["$ref"] for model in models}, schemas


def _clean(schema: Schema, *, keep_title: bool = False) -> Schema:
    """Drop pydantic's per-property ``title``s and give ``discriminator`` the 2.x form.

    Property titles make json-schema-to-typescript emit one type alias per property; model
    titles are kept because they name the generated interfaces. AsyncAPI 2.x's Schema Object
    wants ``discriminator`` as a plain property name, not OpenAPI 3's object.
    """
    cleaned: Schema = {}
    for key, value in schema.items():
        if key == "title" and not keep_title:
            continue
        if key == "discriminator" and isinstance(value, dict):
            value = value["propertyName"]
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            value = {name: _clean(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            value = [_clean(sub) if isinstance(sub, dict) else sub for sub in value]
        elif key in _SCHEMA_ONE and isinstance(value, dict):
            value = _clean(value)
        cleaned[key] = value
    return cleaned


def _carries_request_id(spec: MessageSpec) -> bool:
    """Requests, their replies and errors carry ``id``; pushed updates never do."""
    return spec.direction == "client" or spec.reply_to is not None or spec.type == ERROR_TYPE


def _id_schema(spec: MessageSpec) -> Schema:
    """The optional ``id``, described from the side that sets it."""
    if spec.direction == "client":
        text = "Optional request id; the reply and any `error` for this request echo it."
    elif spec.reply_to is not None:
        text = f"The `id` of the `{spec.reply_to}` request this answers, if it had one."
    else:
        text = "The `id` of the refused request, when it could be read."
    # The bounds the server enforces (``ws.adapter._request_id``): a document without them
    # would promise ids the server refuses.
    return {
        "description": text,
        "anyOf": [
            {"type": "string", "maxLength": MAX_ID_LENGTH},
            {"type": "integer", "minimum": -MAX_ID, "maximum": MAX_ID},
        ],
    }


def _envelope(spec: MessageSpec, payload_ref: str) -> Schema:
    """The whole frame: ``type`` is one ``const`` so generators can discriminate on it."""
    properties: Schema = {
        "type": {"type": "string", "const": spec.type},
        "payload": {"$ref": payload_ref},
    }
    if _carries_request_id(spec):
        properties["id"] = _id_schema(spec)
    return {
        "type": "object",
        "title": message_name(spec.type),
        "description": spec.summary,
        "properties": properties,
        "required": ["type", "payload"],
        "additionalProperties": False,
    }


def _union(specs: Sequence[MessageSpec], direction: Direction) -> Schema:
    """Every envelope one side may send, discriminated by ``type`` (2.x: a property name)."""
    names = [message_name(s.type) for s in specs if s.direction == direction]
    return {
        "title": CLIENT_UNION if direction == "client" else SERVER_UNION,
        "description": f"Any message the {direction} sends; `type` tells them apart.",
        "oneOf": [{"$ref": _SCHEMA_REF.format(model=name)} for name in names],
        "discriminator": "type",
    }


# ---- examples ---------------------------------------------------------------------------


def _examples(specs: Sequence[MessageSpec]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Every message's envelope example, and each route's example topic.

    Examples are written by hand (``ws/examples.py``), never derived from the schemas: a
    derived frame shows what the types allow, not what the server sends, and a channel's topic
    format is read from its subscribe example so the whole document tells one story.
    """
    examples: dict[str, dict[str, Any]] = {}
    topics: dict[str, str] = {}
    for spec in specs:
        if spec.example is None:
            raise ValueError(f"{spec.type!r} has no example (add one to ws/examples.py)")
        example: dict[str, Any] = json.loads(json.dumps(spec.example))
        _validate_example(spec, example)
        examples[spec.type] = example
        if spec.type == f"{spec.channel}.subscribe" and "symbol" in example["payload"]:
            key = {"symbol": example["payload"]["symbol"], **example["payload"].get("params", {})}
            compact = json.dumps(key, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            topics[spec.channel] = f"{spec.channel}:{compact}"
    return examples, topics


def _validate_example(spec: MessageSpec, example: Mapping[str, Any]) -> None:
    """Refuse an example the server itself would not send or accept: docs must not mislead."""
    extra = set(example) - {"type", "payload", "id"}
    if example.get("type") != spec.type or "payload" not in example or extra:
        raise ValueError(f"example of {spec.type!r} is not a {spec.type!r} envelope")
    if "id" in example and not _carries_request_id(spec):
        raise ValueError(f"example of {spec.type!r} has an id the message never carries")
    try:
        spec.payload.model_validate_json(json.dumps(example["payload"]))
    except ValidationError as exc:
        raise ValueError(f"example of {spec.type!r} is invalid (pass one): {exc}") from exc


# ---- messages, channels, overview -------------------------------------------------------


def _message(
    spec: MessageSpec, specs: Sequence[MessageSpec], examples: Mapping[str, dict[str, Any]]
) -> dict[str, Any]:
    """The message object: names, texts, the envelope as payload, one example."""
    name = message_name(spec.type)
    text = spec.description or spec.summary
    replies = [s.type for s in specs if s.reply_to == spec.type]
    if replies:
        text += "\n\nAnswered by " + ", ".join(f"`{r}`" for r in replies) + "."
    if spec.reply_to is not None:
        text += f"\n\nReply to `{spec.reply_to}`; echoes its `id` when it had one."
    correlation = {"description": "The envelope `id`, echoed by replies and errors."}
    correlation["location"] = "$message.payload#/id"
    return {
        "name": name,
        "messageId": name,
        "title": spec.type,
        "summary": _plain(spec.summary),
        "description": text,
        "contentType": CONTENT_TYPE,
        **({"correlationId": correlation} if _carries_request_id(spec) else {}),
        "payload": {"$ref": _SCHEMA_REF.format(model=name)},
        "examples": [{"name": f"{name[: -len('Message')]}Example", "payload": examples[spec.type]}],
        **({"x-reply-to": spec.reply_to} if spec.reply_to is not None else {}),
    }


def _plain(text: str) -> str:
    """A summary as plain text: AsyncAPI renders summaries verbatim (only descriptions are
    CommonMark), so code marks would show as literal backticks in the docs page."""
    return text.replace("`", "")


def _channels(
    specs: Sequence[MessageSpec], topics: Mapping[str, str], descriptions: Mapping[str, str]
) -> dict[str, Any]:
    """One channel per route plus ``system``, each with publish and subscribe operations."""
    channels: dict[str, Any] = {}
    for channel in sorted({spec.channel for spec in specs}):
        mine = [spec for spec in specs if spec.channel == channel]
        item: dict[str, Any] = {
            "description": _channel_description(channel, topics.get(channel), descriptions)
        }
        pascal = message_name(channel)[: -len("Message")]
        for operation, direction, verb in _OPERATIONS:
            names = [message_name(s.type) for s in mine if s.direction == direction]
            if names:
                item[operation] = {
                    "operationId": f"{verb}{pascal}",
                    "summary": f"What the {direction} sends on the {channel} channel.",
                    "message": {"oneOf": [{"$ref": _MESSAGE_REF.format(name=n)} for n in names]},
                }
        channels[channel] = item
    return channels


def _with_extra_channels(
    channels: dict[str, Any],
    extra: Mapping[str, Mapping[str, Any]],
    specs: Sequence[MessageSpec],
    schemas: Mapping[str, Schema],
) -> dict[str, Any]:
    """``channels`` plus ``extra``, refusing a name clash or a reference to nothing."""
    known = {_MESSAGE_REF.format(name=message_name(s.type)) for s in specs}
    known |= {_SCHEMA_REF.format(model=name) for name in schemas}
    for name, item in sorted(extra.items()):
        if name in channels:
            raise ValueError(f"extra channel {name!r} clashes with a route channel")
        dangling = sorted(set(_refs(item)) - known)
        if dangling:
            raise ValueError(f"extra channel {name!r} refers to unknown components: {dangling}")
        channels[name] = json.loads(json.dumps(item))
    return channels


def _refs(value: Any) -> list[str]:
    """Every ``$ref`` string inside ``value``."""
    if isinstance(value, Mapping):
        found = [value["$ref"]] if isinstance(value.get("$ref"), str) else []
        return found + [ref for sub in value.values() for ref in _refs(sub)]
    if isinstance(value, list):
        return [ref for sub in value for ref in _refs(sub)]
    return []


def _channel_description(channel: str, topic: str | None, descriptions: Mapping[str, str]) -> str:
    """The caller's text, plus the topic format as this channel's subscribe example shows it."""
    text = descriptions.get(channel) or f"Messages of the `{channel}` route."
    if topic is None:
        return text
    return (
        f"{text}\n\nTopic format: `{topic}` — the route, `:`, then "
        '`{"symbol": ..., **params}` as compact JSON with keys sorted (see '
        "`marketcast.topics`). Replies and updates carry their `topic`."
    )


def _overview(specs: Sequence[MessageSpec]) -> str:
    """A message table for the docs page, generated so it never drifts from the document."""
    lines = [
        'Every frame is a JSON text frame `{"type": "<route>.<op>", "payload": {...}, "id": ...}`;'
        " `id` is optional and echoed in the reply and in any `error` for that request.",
        "",
        "| type | sent by | reply to | summary |",
        "|---|---|---|---|",
    ]
    for spec in specs:
        reply = f"`{spec.reply_to}`" if spec.reply_to else ""
        summary = spec.summary.replace("|", "\\|")
        lines.append(f"| `{spec.type}` | {spec.direction} | {reply} | {summary} |")
    return "\n".join(lines)
