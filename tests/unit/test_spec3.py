"""``ws.spec3``: the AsyncAPI 3.0 document says what the 2.6 one says, in 3.0's terms.

The 2.6 input is the committed contract (``docs/asyncapi.json``), so every family, route and
raw stream it has is checked without naming one; a few checks name a route to pin a value.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from marketcast.ws.spec3 import ASYNCAPI3_VERSION, MULTIPLEXED_ADDRESS, STREAM_SEGMENT, asyncapi3

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = ROOT / "docs" / "asyncapi.json"
PUBLISHED3 = ROOT / "docs" / "asyncapi-3.json"
OFFICIAL_SCHEMA3 = (
    ROOT / "frontend-types/node_modules/@asyncapi/specs/schemas/3.0.0-without-$id.json"
)


@pytest.fixture(scope="module")
def doc2() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(PUBLISHED.read_text())
    return document


@pytest.fixture(scope="module")
def doc3(doc2: dict[str, Any]) -> dict[str, Any]:
    return asyncapi3(doc2)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        key = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict), ref
        assert key in node, f"{ref} does not resolve ({key!r} missing)"
        node = node[key]
    return node


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        own = [value["$ref"]] if isinstance(value.get("$ref"), str) else []
        return own + [ref for sub in value.values() for ref in _refs(sub)]
    if isinstance(value, list):
        return [ref for sub in value for ref in _refs(sub)]
    return []


def _wire_type(document: dict[str, Any], message: dict[str, Any]) -> str:
    """The envelope ``type`` a (maybe referenced) message carries, read from its schema."""
    if "$ref" in message:
        message = _resolve(document, message["$ref"])
    schema = _resolve(document, message["payload"]["$ref"])
    wire_type: str = schema["properties"]["type"]["const"]
    return wire_type


def _directions(document: dict[str, Any]) -> dict[str, str]:
    """Wire type -> ``client`` or ``server``, from the ClientMessage / ServerMessage unions."""
    schemas = document["components"]["schemas"]
    found = {}
    for union, side in (("ClientMessage", "client"), ("ServerMessage", "server")):
        for member in schemas[union]["oneOf"]:
            found[schemas[member["$ref"].rsplit("/", 1)[1]]["properties"]["type"]["const"]] = side
    return found


def test_the_committed_3_0_document_is_the_conversion_of_the_committed_2_6_one(
    doc3: dict[str, Any],
) -> None:
    assert json.loads(PUBLISHED3.read_text()) == doc3, (
        "docs/asyncapi-3.json is stale: python scripts/generate_asyncapi.py"
    )


def test_it_is_valid_for_the_official_3_0_0_schema(doc3: dict[str, Any]) -> None:
    assert OFFICIAL_SCHEMA3.exists(), "official AsyncAPI schema missing: run `make setup`"
    validator = jsonschema.Draft7Validator(json.loads(OFFICIAL_SCHEMA3.read_text()))
    validator.validate(doc3)
    # The schema really checks 3.0 shapes: a 2.x ``messageId`` left in a message fails it.
    broken = copy.deepcopy(doc3)
    next(iter(broken["components"]["messages"].values()))["messageId"] = "x"
    assert not validator.is_valid(broken)


def test_what_carries_over_unchanged(doc2: dict[str, Any], doc3: dict[str, Any]) -> None:
    assert doc3["asyncapi"] == ASYNCAPI3_VERSION == "3.0.0"
    assert doc3["info"] == doc2["info"]
    # The generated types come from these: they must be byte-for-byte the same.
    assert doc3["components"]["schemas"] == doc2["components"]["schemas"]
    assert list(doc3["components"]["schemas"]) == list(doc2["components"]["schemas"])
    for key in ("defaultContentType", "x-close-codes", "x-error-codes"):
        assert doc3[key] == doc2[key], key


def test_every_message_is_a_component_and_in_some_channel(
    doc2: dict[str, Any], doc3: dict[str, Any]
) -> None:
    messages2 = doc2["components"]["messages"]
    messages3 = doc3["components"]["messages"]
    assert list(messages3) == list(messages2)
    listed = {
        ref.rsplit("/", 1)[1]
        for channel in doc3["channels"].values()
        for ref in _refs(channel["messages"])
    }
    assert set(messages3) <= listed, sorted(set(messages3) - listed)
    for name, message in messages3.items():
        assert "messageId" not in message, name
        assert {k: v for k, v in messages2[name].items() if k != "messageId"} == message
    # Requests, replies and errors keep their correlation id; pushed updates have none.
    assert messages3["BarsSubscribeMessage"]["correlationId"]["location"] == "$message.payload#/id"
    assert "correlationId" not in messages3["BarsUpdateMessage"]
    assert messages3["PongMessage"]["x-reply-to"] == "ping"


def test_one_channel_per_2_6_channel_at_its_address(
    doc2: dict[str, Any], doc3: dict[str, Any]
) -> None:
    addresses = sorted(channel["address"] for channel in doc3["channels"].values())
    expected = sorted(
        "/" + name if name.split("/")[0] == STREAM_SEGMENT else MULTIPLEXED_ADDRESS
        for name in doc2["channels"]
    )
    assert addresses == expected
    assert doc3["channels"]["bars"]["address"] == "/"
    assert doc3["channels"]["system"]["address"] == "/"
    assert doc3["channels"]["streamBars"]["address"] == "/stream/bars/{symbol}/{resolution}"
    for channel_id, channel in doc3["channels"].items():
        assert re.fullmatch(r"[a-z][A-Za-z0-9]*", channel_id), channel_id
        assert channel["messages"], channel_id


def test_every_request_is_a_receive_operation_replied_to_by_its_response(
    doc2: dict[str, Any], doc3: dict[str, Any]
) -> None:
    answers = {
        m["title"]: m["x-reply-to"]
        for m in doc2["components"]["messages"].values()
        if "x-reply-to" in m
    }
    directions = _directions(doc2)
    by_message = {
        ref: (op_id, op)
        for op_id, op in doc3["operations"].items()
        for ref in _refs(op["messages"])
    }
    in_reply = {
        r["$ref"]
        for op in doc3["operations"].values()
        for r in op.get("reply", {}).get("messages", [])
    }
    requests = 0
    for channel_id, channel in doc3["channels"].items():
        for key, message in channel["messages"].items():
            ref = f"#/channels/{channel_id}/messages/{key}"
            wire_type = _wire_type(doc3, message)
            if wire_type in answers:  # a response: listed only in its request's reply
                assert ref in in_reply, f"{ref} is no operation's reply"
                assert ref not in by_message, ref
                continue
            assert ref in by_message, f"{ref} is in no operation"
            op_id, op = by_message[ref]
            if directions[wire_type] == "client":
                requests += 1
                assert (op["action"], op_id[: len("receive")]) == ("receive", "receive")
                reply = op["reply"]
                # The reply comes on the request's channel: 3.0 wants it named.
                assert reply["channel"] == {"$ref": f"#/channels/{channel_id}"}
                replies = {_wire_type(doc3, _resolve(doc3, r["$ref"])) for r in reply["messages"]}
                assert replies == {t for t, request in answers.items() if request == wire_type}
                assert replies, wire_type
            else:
                assert op["action"] == "send", op_id
                assert op_id == "send" + channel_id[0].upper() + channel_id[1:]
    assert requests >= 8  # subscribe and unsubscribe per family, ping, per raw stream a ping
    bars = doc3["operations"]["receiveBarsSubscribe"]
    assert bars["messages"] == [{"$ref": "#/channels/bars/messages/BarsSubscribeMessage"}]
    assert bars["reply"]["messages"] == [
        {"$ref": "#/channels/bars/messages/BarsSubscribeResponseMessage"}
    ]
    ping = doc3["operations"]["receiveStreamBarsPing"]["reply"]["messages"]
    assert ping == [{"$ref": "#/channels/streamBars/messages/streamBars.PongMessage"}]
    assert [_wire_type(doc3, _resolve(doc3, r["$ref"])) for r in ping] == ["pong"]
    assert {
        _wire_type(doc3, _resolve(doc3, r["$ref"]))
        for r in doc3["operations"]["sendSystem"]["messages"]
    } == {"error", "notice"}


def test_every_reference_resolves_and_operations_name_their_channel_s_messages(
    doc3: dict[str, Any],
) -> None:
    refs = _refs(doc3)
    assert len(refs) > 100
    for ref in refs:
        _resolve(doc3, ref)
    for op_id, op in doc3["operations"].items():
        channel = op["channel"]["$ref"]
        assert re.fullmatch(r"#/channels/\w+", channel), op_id
        assert op["messages"], op_id
        for message in op["messages"]:
            assert message["$ref"].startswith(f"{channel}/messages/"), (op_id, message)
        reply = op.get("reply", {"channel": op["channel"], "messages": []})
        for message in reply["messages"]:
            assert message["$ref"].startswith(f"{reply['channel']['$ref']}/messages/"), op_id


def test_raw_streams_keep_their_parameters(doc2: dict[str, Any], doc3: dict[str, Any]) -> None:
    by_address = {channel["address"]: channel for channel in doc3["channels"].values()}
    checked = 0
    for name, channel2 in doc2["channels"].items():
        if "parameters" not in channel2:
            continue
        channel3 = by_address["/" + name]
        assert set(re.findall(r"{(\w+)}", channel3["address"])) == set(channel3["parameters"])
        for param, given in channel2["parameters"].items():
            checked += 1
            restated = channel3["parameters"][param]
            assert restated["description"].startswith(given["description"])
            schema = given["schema"]
            if "enum" in schema:
                assert restated["enum"] == [str(v) for v in schema["enum"]]
            if "pattern" in schema:
                assert f"`{schema['pattern']}`" in restated["description"]
            assert restated.get("examples") == schema.get("examples")
            assert "schema" not in restated
    assert checked >= 4
    resolution = doc3["channels"]["streamBars"]["parameters"]["resolution"]
    assert "1" in resolution["enum"]
    assert "D" in resolution["enum"]


def test_the_conversion_is_deterministic_and_leaves_its_input_alone(
    doc2: dict[str, Any],
) -> None:
    before = json.dumps(doc2)
    first = json.dumps(asyncapi3(copy.deepcopy(doc2)), indent=2)
    assert json.dumps(asyncapi3(doc2), indent=2) == first
    assert json.dumps(doc2) == before
    converted = asyncapi3(doc2)
    converted["info"]["title"] = "changed"
    assert doc2["info"]["title"] != "changed"


def _server(doc2: dict[str, Any], **server: Any) -> dict[str, Any]:
    document = copy.deepcopy(doc2)
    document["servers"] = {"local": {"protocol": "ws", **server}}
    converted: dict[str, Any] = asyncapi3(document)["servers"]["local"]
    return converted


def test_a_server_url_becomes_host_pathname_and_protocol(doc2: dict[str, Any]) -> None:
    plain = _server(doc2, url="127.0.0.1:8000/api/v1/ws")
    assert plain == {"host": "127.0.0.1:8000", "pathname": "/api/v1/ws", "protocol": "ws"}
    variables = {"host": {"description": "where", "examples": ["127.0.0.1:8000"]}}
    variable = _server(doc2, url="{host}/api/v1/ws", variables=variables)
    assert variable == {
        "host": "{host}",
        "pathname": "/api/v1/ws",
        "protocol": "ws",
        "variables": variables,
    }
    # A scheme is the more specific statement (TLS at a proxy): it wins over ``protocol``.
    secure = _server(doc2, url="wss://example.org/x/api/v1/ws/")
    assert secure == {"host": "example.org", "pathname": "/x/api/v1/ws", "protocol": "wss"}
    assert _server(doc2, url="example.org:9000") == {"host": "example.org:9000", "protocol": "ws"}
    published = asyncapi3(doc2)["servers"]["local"]
    assert (published["host"], published["pathname"]) == ("{host}", "/api/v1/ws")
    assert published["variables"] == doc2["servers"]["local"]["variables"]


def test_a_combined_stream_channel_with_a_query_binding_converts(doc2: dict[str, Any]) -> None:
    """A connection of its own described by a WebSockets binding, with messages both inline
    and referenced: the shape a combined raw stream takes."""
    document = copy.deepcopy(doc2)
    bindings = {
        "ws": {
            "query": {
                "type": "object",
                "properties": {"streams": {"type": "string", "description": "a,b,c"}},
                "required": ["streams"],
            },
            "bindingVersion": "0.1.0",
        }
    }
    update = {"$ref": "#/components/messages/BarsUpdateMessage"}
    ping = {"title": "ping", "payload": {"$ref": "#/components/schemas/PingMessage"}}
    pong = {"title": "pong", "payload": {"$ref": "#/components/schemas/PongMessage"}}
    document["channels"]["stream"] = {
        "description": "Several topics on one connection.",
        "bindings": bindings,
        "publish": {"operationId": "x", "message": {"oneOf": [ping]}},
        "subscribe": {"operationId": "y", "message": {"oneOf": [update, pong]}},
    }
    converted = asyncapi3(document)
    channel = converted["channels"]["stream"]
    assert channel["address"] == "/stream"
    assert channel["bindings"] == bindings
    # Inline messages are keyed by channel and envelope: no clash with the component names.
    assert list(channel["messages"]) == [
        "stream.PingMessage",
        "BarsUpdateMessage",
        "stream.PongMessage",
    ]
    assert channel["messages"]["stream.PingMessage"] == ping
    assert converted["operations"]["receiveStreamPing"]["reply"]["messages"] == [
        {"$ref": "#/channels/stream/messages/stream.PongMessage"}
    ]
    assert converted["operations"]["sendStream"]["messages"] == [
        {"$ref": "#/channels/stream/messages/BarsUpdateMessage"}
    ]


@pytest.mark.parametrize(
    ("where", "change", "error"),
    [
        ("asyncapi", "3.0.0", "expected an AsyncAPI 2.x document"),
        ("tags", [{"name": "x"}], "no AsyncAPI 3 form for \\['tags'\\]"),
        ("channels.bars.servers", ["local"], "channel 'bars': no AsyncAPI 3 form"),
        ("servers.local.security", [{"k": []}], "server 'local': no AsyncAPI 3 form"),
        (
            "channels.bars.subscribe.message.oneOf",
            [{"$ref": "#/components/messages/Nope"}],
            "no component message",
        ),
    ],
)
def test_what_it_cannot_restate_is_refused_not_dropped(
    doc2: dict[str, Any], where: str, change: Any, error: str
) -> None:
    document = copy.deepcopy(doc2)
    *path, last = where.split(".")
    node = document
    for key in path:
        node = node[key]
    node[last] = change
    with pytest.raises(ValueError, match=error):
        asyncapi3(document)


def test_channel_ids_that_would_clash_are_refused(doc2: dict[str, Any]) -> None:
    document = copy.deepcopy(doc2)
    document["channels"]["stream/bars/{other}"] = document["channels"][
        "stream/bars/{symbol}/{resolution}"
    ]
    with pytest.raises(ValueError, match="id 'streamBars'"):
        asyncapi3(document)


def test_the_stream_segment_is_the_raw_streams_one() -> None:
    """Kept in step by hand (``ws.spec3`` may not import the raw streams): checked here."""
    from marketcast.ws.raw_streams import STREAM_SEGMENT as RAW

    assert STREAM_SEGMENT == RAW
