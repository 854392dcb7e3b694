"""Restate the AsyncAPI 2.6 document of ``ws.spec`` as AsyncAPI 3.0.0.

Why a conversion and not a second builder: the 2.6 document is the contract (TypeScript types
and the Python client are generated from it), so the 3.0 one must say exactly the same thing.
Deriving it from the built document, driven only by its content, means a route, a family or a
raw stream added to the table appears in both documents with no second source of truth.

What changes between the versions, and why it is done this way:

- 3.0 operations are the *application's* (the server's): what a client sends is ``receive``,
  what the server sends is ``send``. A request and its response (``x-reply-to``) become one
  ``receive`` operation with a ``reply``; the rest the server sends (updates, errors,
  notices) is one ``send`` operation per channel.
- A 3.0 channel is keyed by an id and has an ``address``. Every channel multiplexed over the
  endpoint has the address ``/``: the endpoint itself, where messages are told apart by the
  envelope ``type``. A channel that is a connection of its own (a raw stream) has its 2.6
  name as its path below the endpoint (``/stream/bars/{symbol}/{resolution}``).
- 3.0 parameters have no schema: the schema's ``enum``, ``default`` and ``examples`` move up,
  anything else (a ``pattern``) is stated in the description.
- ``components.schemas`` are copied unchanged, so the types generated from either document
  are the same; ``messageId`` is gone in 3.0 (the key names a message).

Anything of 2.6 this module does not know how to restate raises ``ValueError`` rather than
silently vanishing from the 3.0 document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

ASYNCAPI3_VERSION: Final = "3.0.0"
#: The first path segment of every channel that is a connection of its own below the
#: endpoint (``ws.raw_streams.STREAM_SEGMENT``, which this layer may not import; a test
#: keeps them equal). All other channels share the endpoint's one connection.
STREAM_SEGMENT: Final = "stream"
#: The address of a channel multiplexed over the endpoint: the server's pathname itself.
MULTIPLEXED_ADDRESS: Final = "/"

_COMPONENT_MESSAGE: Final = "#/components/messages/"
_SCHEMA: Final = "#/components/schemas/"
#: 2.x keys handled below, per object; any other key (but ``x-`` extensions) is refused.
_ROOT_KEYS: Final = frozenset(
    {"asyncapi", "info", "servers", "defaultContentType", "channels", "components"}
)
_SERVER_KEYS: Final = frozenset(
    {"url", "protocol", "protocolVersion", "description", "variables", "bindings", "tags"}
)
_CHANNEL_KEYS: Final = frozenset({"description", "parameters", "bindings", "publish", "subscribe"})
_OPERATION_KEYS: Final = frozenset({"operationId", "summary", "description", "message"})
_PARAMETER_KEYS: Final = frozenset({"description", "schema", "location"})
_COMPONENT_KEYS: Final = frozenset({"schemas", "messages"})
_WORD: Final = re.compile(r"[A-Za-z0-9]+")


def asyncapi3(document: Mapping[str, Any]) -> dict[str, Any]:
    """The 3.0.0 document saying what the 2.6 ``document`` says (see the module docstring)."""
    if not str(document.get("asyncapi", "")).startswith("2."):
        raise ValueError(f"expected an AsyncAPI 2.x document, got {document.get('asyncapi')!r}")
    _refuse_unknown("the document", document, _ROOT_KEYS)
    # A deep copy: the result shares nothing with the (cached) 2.x document.
    source: dict[str, Any] = json.loads(json.dumps(document))
    components = source.get("components", {})
    _refuse_unknown("components", components, _COMPONENT_KEYS)
    messages = {name: _message(name, m) for name, m in components.get("messages", {}).items()}
    #: A message's wire type (its ``title``) -> the request type it answers, if any.
    answers = {
        str(m.get("title")): str(m["x-reply-to"]) for m in messages.values() if "x-reply-to" in m
    }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for name, item in source.get("channels", {}).items():
        channel_id = _channel_id(name)
        if channel_id in channels:
            raise ValueError(f"channels {name!r} and another both have the id {channel_id!r}")
        channel, channel_operations = _channel(name, channel_id, item, messages, answers)
        channels[channel_id] = channel
        clash = sorted(set(channel_operations) & set(operations))
        if clash:
            raise ValueError(f"operation ids used twice: {clash}")
        operations.update(channel_operations)
    servers = {name: _server(name, s) for name, s in source.get("servers", {}).items()}
    return {
        "asyncapi": ASYNCAPI3_VERSION,
        "info": source["info"],
        **({"servers": servers} if servers else {}),
        **{key: source[key] for key in ("defaultContentType",) if key in source},
        "channels": channels,
        "operations": operations,
        "components": {"schemas": components.get("schemas", {}), "messages": messages},
        **_extensions(source),
    }


def _server(name: str, server: Mapping[str, Any]) -> dict[str, Any]:
    """2.x ``url`` (``[scheme://]host[/path]``, maybe with ``{variables}``) -> 3.0 parts.

    A scheme in the URL is the more specific statement (``wss`` behind a TLS proxy), so it
    wins over ``protocol``.
    """
    _refuse_unknown(f"server {name!r}", server, _SERVER_KEYS)
    scheme, has_scheme, rest = str(server["url"]).partition("://")
    if not has_scheme:
        scheme, rest = str(server["protocol"]), scheme
    host, slash, path = rest.partition("/")
    pathname = "/" + path.rstrip("/") if slash and path.strip("/") else ""
    converted: dict[str, Any] = {"host": host, **({"pathname": pathname} if pathname else {})}
    converted["protocol"] = scheme
    converted.update(
        {key: server[key] for key in sorted(_SERVER_KEYS - {"url", "protocol"}) if key in server}
    )
    if "description" in converted:
        converted["description"] += (
            f"\n\nIn this AsyncAPI 3 document a channel's `address` is its path below this "
            f"URL: `{MULTIPLEXED_ADDRESS}` is the endpoint itself, shared by every channel "
            "multiplexed over its one connection."
        )
    return {**converted, **_extensions(server)}


def _message(name: str, message: Mapping[str, Any]) -> dict[str, Any]:
    """A 2.x message as a 3.0 one: ``messageId`` goes (a message's key names it in 3.0)."""
    if "schemaFormat" in message:
        raise ValueError(f"message {name!r}: a schemaFormat is not restated in 3.0 form")
    return {key: value for key, value in message.items() if key != "messageId"}


def _channel_id(name: str) -> str:
    """``bars`` -> ``bars``, ``stream/bars/{symbol}/{resolution}`` -> ``streamBars``: no ``/``
    (ids appear in ``$ref`` JSON pointers) and no parameters (the address has them)."""
    words: list[str] = [
        w for segment in name.split("/") if "{" not in segment for w in _WORD.findall(segment)
    ]
    if not words:
        raise ValueError(f"channel {name!r} has no name to derive an id from")
    return words[0] + _pascal(words[1:])


def _channel(
    name: str,
    channel_id: str,
    item: Mapping[str, Any],
    components: Mapping[str, Mapping[str, Any]],
    answers: Mapping[str, str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One 2.x channel item -> the 3.0 channel and its operations, keyed by operation id."""
    _refuse_unknown(f"channel {name!r}", item, _CHANNEL_KEYS)
    own_connection = name.split("/", 1)[0] == STREAM_SEGMENT
    channel: dict[str, Any] = {
        "address": "/" + name.strip("/") if own_connection else MULTIPLEXED_ADDRESS,
        **{key: item[key] for key in ("description",) if key in item},
    }
    if "parameters" in item:
        channel["parameters"] = {
            key: _parameter(f"{name}.{key}", value) for key, value in item["parameters"].items()
        }
    if "bindings" in item:
        channel["bindings"] = item["bindings"]
    # (key in this channel's messages, the message) per direction, in the 2.x order.
    sent_by: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    keys: dict[str, Any] = {}
    for verb, direction in (("publish", "client"), ("subscribe", "server")):
        operation = item.get(verb)
        if operation is None:
            continue
        _refuse_unknown(f"{name}.{verb}", operation, _OPERATION_KEYS)
        listed = operation["message"]
        for entry in listed.get("oneOf", [listed]):
            key, resolved = _channel_message(channel_id, entry, components)
            if key in keys:
                raise ValueError(f"channel {name!r} lists message {key!r} twice")
            keys[key] = entry
            sent_by.setdefault(direction, []).append((key, resolved))
    channel["messages"] = keys
    channel.update(_extensions(item))
    return channel, _operations(channel_id, item, sent_by, answers)


def _channel_message(
    channel_id: str, entry: Mapping[str, Any], components: Mapping[str, Mapping[str, Any]]
) -> tuple[str, Mapping[str, Any]]:
    """A channel's message -> (its key in the 3.0 channel, the message it stands for).

    A component message keeps its name. A message written inline (the raw streams' own
    summaries of the same envelopes) stays inline, keyed ``<channel id>.<envelope name>``:
    the parser lists messages by key, so an inline ``BarsUpdateMessage`` beside the
    component of that name would be two messages with one id, and channel ids have no dot.
    """
    ref = entry.get("$ref")
    if isinstance(ref, str):
        name = ref.removeprefix(_COMPONENT_MESSAGE)
        if not ref.startswith(_COMPONENT_MESSAGE) or name not in components:
            raise ValueError(f"channel {channel_id!r} refers to no component message: {ref}")
        return name, components[name]
    wire_type = entry.get("title")
    if not isinstance(wire_type, str):
        raise ValueError(f"channel {channel_id!r} has an inline message without a title")
    payload = str(entry.get("payload", {}).get("$ref", ""))
    name = payload.rsplit("/", 1)[1] if payload.startswith(_SCHEMA) else ""
    return f"{channel_id}.{name or _pascal(_WORD.findall(wire_type)) + 'Message'}", entry


def _operations(
    channel_id: str,
    item: Mapping[str, Any],
    sent_by: Mapping[str, list[tuple[str, Mapping[str, Any]]]],
    answers: Mapping[str, str],
) -> dict[str, Any]:
    """A ``receive`` per client request (with its reply) and one ``send`` for the rest.

    Ids derive from the channel id and the wire type (``receiveBarsSubscribe``,
    ``receiveStreamBarsPing``, ``sendBars``), so they are stable and unique per document.
    """
    channel_ref = {"$ref": f"#/channels/{channel_id}"}
    pascal = _pascal([channel_id])
    server = sent_by.get("server", [])
    replied: set[str] = set()
    operations: dict[str, Any] = {}
    for key, message in sent_by.get("client", []):
        wire_type = str(message.get("title", key))
        replies = [k for k, m in server if answers.get(m.get("title", "")) == wire_type]
        replied.update(replies)
        words = _WORD.findall(wire_type)
        prefix = next((n for n in range(len(words)) if _pascal(words[:n]) == pascal), 0)
        words = words[prefix:]
        operation: dict[str, Any] = {
            "action": "receive",
            "channel": channel_ref,
            "summary": str(message.get("summary", f"The client sends {wire_type}.")),
            "messages": [_message_ref(channel_id, key)],
        }
        if replies:
            operation["reply"] = {
                "channel": channel_ref,
                "messages": [_message_ref(channel_id, k) for k in replies],
            }
        operations["receive" + _pascal([channel_id, *words])] = operation
    pushed = [key for key, _ in server if key not in replied]
    if pushed:
        operations["send" + pascal] = {
            "action": "send",
            "channel": channel_ref,
            "summary": str(item.get("subscribe", {}).get("summary", "What the server pushes.")),
            "messages": [_message_ref(channel_id, key) for key in pushed],
        }
    return operations


def _parameter(where: str, parameter: Mapping[str, Any]) -> dict[str, Any]:
    """A 2.x parameter (with a schema) as a 3.0 one (``enum``/``default``/``examples`` only).

    3.0 parameter values are strings; the schema's other keywords (such as ``pattern``) are
    stated in the description so that no constraint is lost.
    """
    _refuse_unknown(f"parameter {where}", parameter, _PARAMETER_KEYS)
    schema = dict(parameter.get("schema", {}))
    if schema.get("type") == "string":
        del schema["type"]
    converted: dict[str, Any] = {}
    rules: list[str] = []
    if "const" in schema:
        schema.setdefault("enum", [schema.pop("const")])
    if "enum" in schema:
        converted["enum"] = [str(value) for value in schema.pop("enum")]
    if "default" in schema:
        converted["default"] = str(schema.pop("default"))
    if "examples" in schema:
        converted["examples"] = [str(value) for value in schema.pop("examples")]
    if "pattern" in schema:
        rules.append(f"Must match `{schema.pop('pattern')}`.")
    if schema:
        rules.append(f"Schema: `{json.dumps(schema, sort_keys=True, ensure_ascii=False)}`.")
    text = "\n\n".join([str(parameter.get("description", "")).strip(), *rules]).strip()
    if text:
        converted = {"description": text, **converted}
    if "location" in parameter:
        converted["location"] = parameter["location"]
    return converted


def _message_ref(channel_id: str, key: str) -> dict[str, str]:
    """3.0 operations and replies name a message of their channel, never a component."""
    return {"$ref": f"#/channels/{channel_id}/messages/{key}"}


def _pascal(words: Iterable[str]) -> str:
    return "".join(word[:1].upper() + word[1:] for word in words)


def _extensions(value: Mapping[str, Any]) -> dict[str, Any]:
    return {key: item for key, item in value.items() if key.startswith("x-")}


def _refuse_unknown(where: str, value: Mapping[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(key for key in value if key not in known and not key.startswith("x-"))
    if unknown:
        raise ValueError(f"{where}: no AsyncAPI 3 form for {unknown}")
