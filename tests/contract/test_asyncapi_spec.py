"""The AsyncAPI document is valid 2.6.0 and keeps the shapes code generators rely on.

The TypeScript types and consumer models are generated from this document, so stable names,
a single ``const`` per envelope ``type`` and complete client/server unions are a contract, and
the document is checked against the official AsyncAPI JSON Schema (from ``@asyncapi/specs``,
installed by ``make setup``) rather than against our own idea of the format.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from marketcast import protocol as p
from marketcast.channels import bars as b
from marketcast.channels import quotes as q
from marketcast.ws.spec import MessageSpec, build_asyncapi, message_name

ROOT = Path(__file__).resolve().parents[2]
OFFICIAL_SCHEMA = (
    ROOT / "frontend-types/node_modules/@asyncapi/specs/schemas/2.6.0-without-$id.json"
)
BARS_TOPIC = 'bars:{"resolution":"1","symbol":"BTCUSDT"}'
QUOTES_TOPIC = 'quotes:{"symbol":"BTCUSDT"}'
BAR = {
    "time": 1_767_225_600_000,
    "open": 87_950.5,
    "high": 88_010.0,
    "low": 87_940.1,
    "close": 87_999.9,
    "volume": 12.345,
    "closed": True,
}


def _reply(topic: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"status": "ok", "symbol": "BTCUSDT", "message": message, "topic": topic, **extra}


def message_table() -> list[MessageSpec]:
    """Every message of DESIGN §3, built from the real protocol models."""
    bars = {"symbol": "BTCUSDT", "params": {"resolution": "1"}}
    quotes = {"symbol": "BTCUSDT", "params": {}}
    m = MessageSpec
    return [
        m("bars.subscribe", "client", b.BarsSubscribePayload, "bars", "Subscribe to candles",
          example={"type": "bars.subscribe", "id": 1, "payload": {**bars, "snapshot": 2}}),
        m("bars.subscribe.response", "server", b.BarsSubscribeResponsePayload, "bars",
          "Subscription confirmed, with the snapshot", reply_to="bars.subscribe",
          example={"type": "bars.subscribe.response", "id": 1, "payload": _reply(
              BARS_TOPIC, "subscribed", bars=[BAR, {**BAR, "time": BAR["time"] + 60_000,
                                                   "closed": False}])}),
        m("bars.unsubscribe", "client", b.BarsUnsubscribePayload, "bars",
          "Stop receiving candles", example={"type": "bars.unsubscribe", "id": 2,
                                             "payload": bars}),
        m("bars.unsubscribe.response", "server", b.BarsUnsubscribeResponsePayload, "bars",
          "Unsubscription confirmed", reply_to="bars.unsubscribe",
          example={"type": "bars.unsubscribe.response", "id": 2,
                   "payload": _reply(BARS_TOPIC, "unsubscribed")}),
        m("bars.update", "server", b.BarsUpdatePayload, "bars", "A live candle",
          example={"type": "bars.update", "payload": {
              "topic": BARS_TOPIC, "symbol": "BTCUSDT", "resolution": "1", **BAR}}),
        m("quotes.subscribe", "client", q.QuotesSubscribePayload, "quotes",
          "Subscribe to quotes", example={"type": "quotes.subscribe", "payload": quotes}),
        m("quotes.subscribe.response", "server", q.QuotesSubscribeResponsePayload, "quotes",
          "Subscription confirmed", reply_to="quotes.subscribe",
          example={"type": "quotes.subscribe.response",
                   "payload": _reply(QUOTES_TOPIC, "subscribed")}),
        m("quotes.unsubscribe", "client", q.QuotesUnsubscribePayload, "quotes",
          "Stop receiving quotes", example={"type": "quotes.unsubscribe", "payload": quotes}),
        m("quotes.unsubscribe.response", "server", q.QuotesUnsubscribeResponsePayload,
          "quotes", "Unsubscription confirmed", reply_to="quotes.unsubscribe",
          example={"type": "quotes.unsubscribe.response",
                   "payload": _reply(QUOTES_TOPIC, "unsubscribed")}),
        m("quotes.update", "server", q.QuotesUpdatePayload, "quotes", "A live quote",
          example={"type": "quotes.update", "payload": {
              "topic": QUOTES_TOPIC, "symbol": "BTCUSDT", "time": 1_767_225_601_250,
              "bid": 87_999.9, "ask": 88_000.0, "last": 88_000.0}}),
        m("ping", "client", p.PingPayload, "system", "Application-level ping",
          example={"type": "ping", "id": "k1", "payload": {}}),
        m("pong", "server", p.PongPayload, "system", "Reply to ping", reply_to="ping",
          example={"type": "pong", "id": "k1", "payload": {"time": 1_767_225_601_300}}),
        m("error", "server", p.ErrorPayload, "system", "A client frame was refused",
          example={"type": "error", "id": 3, "payload": {
              "code": "unsupported_resolution", "message": "resolution '2' is not supported",
              "request_type": "bars.subscribe"}}),
    ]  # fmt: skip


def build(table: list[MessageSpec] | None = None) -> dict[str, Any]:
    return build_asyncapi(
        message_table() if table is None else table,
        title="marketcast",
        version="0.1.0",
        description="Real-time candles and quotes.",
        server_url="ws://localhost:8000",
        ws_path="/api/v1/ws",
        channel_descriptions={"bars": "Candles.", "quotes": "Quotes.", "system": "Liveness."},
    )


def document_json() -> str:
    """The serialisation ``make generate-asyncapi`` commits; also run in a subprocess below."""
    return json.dumps(build(), indent=2, sort_keys=False, ensure_ascii=False)


@pytest.fixture(scope="module")
def official_schema() -> dict[str, Any]:
    if not OFFICIAL_SCHEMA.is_file():
        pytest.fail(f"{OFFICIAL_SCHEMA} is missing: run `make setup` (installs frontend-types)")
    schema: dict[str, Any] = json.loads(OFFICIAL_SCHEMA.read_text(encoding="utf-8"))
    return schema


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return build()


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_valid_against_official_asyncapi_schema(
    doc: dict[str, Any], official_schema: dict[str, Any]
) -> None:
    validator = jsonschema.Draft7Validator(official_schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


def test_a_message_without_an_example_is_refused() -> None:
    table = message_table()
    bare = table[0]
    unexampled = MessageSpec(bare.type, bare.direction, bare.payload, bare.channel, bare.summary)
    with pytest.raises(ValueError, match="no example"):
        build([unexampled, *table[1:]])


def test_message_names_are_stable(doc: dict[str, Any]) -> None:
    expected = {
        "BarsSubscribeMessage", "BarsSubscribeResponseMessage", "BarsUnsubscribeMessage",
        "BarsUnsubscribeResponseMessage", "BarsUpdateMessage", "QuotesSubscribeMessage",
        "QuotesSubscribeResponseMessage", "QuotesUnsubscribeMessage",
        "QuotesUnsubscribeResponseMessage", "QuotesUpdateMessage", "PingMessage",
        "PongMessage", "ErrorMessage",
    }  # fmt: skip
    messages = doc["components"]["messages"]
    assert set(messages) == expected
    assert message_name("bars.subscribe.response") == "BarsSubscribeResponseMessage"
    for name, message in messages.items():
        assert message["name"] == name
        assert message["payload"] == {"$ref": f"#/components/schemas/{name}"}
        assert message["contentType"] == "application/json"
        assert message["messageId"] == name
        assert message["summary"]
        assert message["description"]
        assert message["examples"]
    schemas = doc["components"]["schemas"]
    for model in ("BarsUpdatePayload", "ErrorPayload", "Bar", "BarsParams", "ErrorCode"):
        assert model in schemas


def test_envelope_type_is_a_single_const(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    for spec in message_table():
        envelope = schemas[message_name(spec.type)]
        assert envelope["properties"]["type"] == {"type": "string", "const": spec.type}
        assert envelope["properties"]["payload"] == {
            "$ref": f"#/components/schemas/{spec.payload.__name__}"
        }
        assert envelope["required"] == ["type", "payload"]
        assert envelope["additionalProperties"] is False
        has_id = spec.direction == "client" or spec.reply_to is not None or spec.type == "error"
        assert ("id" in envelope["properties"]) is has_id


def test_examples_validate_against_their_envelopes(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    registry_doc = {"components": {"schemas": schemas}}
    for name, message in doc["components"]["messages"].items():
        schema = {**schemas[name], "components": registry_doc["components"]}
        for example in message["examples"]:
            jsonschema.Draft7Validator(schema).validate(example["payload"])


def test_all_refs_resolve(doc: dict[str, Any]) -> None:
    refs = _refs(doc)
    assert refs
    for ref in refs:
        assert _resolve(doc, ref) is not None
    assert "$defs" not in json.dumps(doc)


def test_unions_list_every_message_of_their_direction(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    for union, direction in (("ClientMessage", "client"), ("ServerMessage", "server")):
        wanted = {
            f"#/components/schemas/{message_name(s.type)}"
            for s in message_table()
            if s.direction == direction
        }
        assert {ref["$ref"] for ref in schemas[union]["oneOf"]} == wanted
        assert schemas[union]["discriminator"] == "type"


def test_channels_per_route_with_topic_format(doc: dict[str, Any]) -> None:
    channels = doc["channels"]
    assert list(channels) == ["bars", "quotes", "system"]
    assert BARS_TOPIC in channels["bars"]["description"]
    assert QUOTES_TOPIC in channels["quotes"]["description"]
    publish = channels["system"]["publish"]["message"]["oneOf"]
    assert publish == [{"$ref": "#/components/messages/PingMessage"}]
    subscribe = {r["$ref"] for r in channels["system"]["subscribe"]["message"]["oneOf"]}
    assert subscribe == {"#/components/messages/PongMessage", "#/components/messages/ErrorMessage"}
    ids = [op["operationId"] for ch in channels.values() for op in ch.values() if "message" in op]
    assert len(ids) == len(set(ids)) == 6
    assert doc["servers"]["local"] == {
        "url": "ws://localhost:8000/api/v1/ws",
        "protocol": "ws",
        "description": doc["servers"]["local"]["description"],
    }
    assert doc["info"]["description"].strip()


def test_no_property_titles_left(doc: dict[str, Any]) -> None:
    for schema in doc["components"]["schemas"].values():
        for prop in schema.get("properties", {}).values():
            assert "title" not in prop


def test_document_is_deterministic() -> None:
    first = document_json()
    shuffled = message_table()
    random.Random(7).shuffle(shuffled)
    assert json.dumps(build(shuffled), indent=2, ensure_ascii=False) == first
    for seed in ("1", "2"):
        code = "import sys; sys.path.insert(0, sys.argv[1]); import test_asyncapi_spec as t; "
        code += "sys.stdout.write(t.document_json())"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code, str(Path(__file__).parent)],
            capture_output=True, text=True, encoding="utf-8", env=env, check=True,
        )  # fmt: skip
        assert out.stdout == first


def test_bad_tables_are_refused() -> None:
    table = message_table()
    with pytest.raises(ValueError, match="unique"):
        build([*table, table[0]])
    dangling = MessageSpec("bars.x", "server", p.PongPayload, "bars", "x", reply_to="nope")
    with pytest.raises(ValueError, match="replies to"):
        build([*table, dangling])
    stale = MessageSpec(
        "ping",
        "client",
        p.PingPayload,
        "system",
        "x",
        example={"type": "ping", "payload": {"a": 1}},
    )
    with pytest.raises(ValueError, match="invalid"):
        build([s for s in table if s.type != "ping"] + [stale])
