"""``docs/asyncapi.json`` — the committed contract — is valid and covers every route."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from marketcast.app import build_spec, create_app
from marketcast.channels.registry import default_registry
from marketcast.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = ROOT / "docs" / "asyncapi.json"
OFFICIAL_SCHEMA = (
    ROOT / "frontend-types/node_modules/@asyncapi/specs/schemas/2.6.0-without-$id.json"
)


@pytest.fixture(scope="module")
def published() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(PUBLISHED.read_text())
    return document


def test_published_document_is_valid_asyncapi(published: dict[str, Any]) -> None:
    assert OFFICIAL_SCHEMA.exists(), "official AsyncAPI schema missing: run `make setup`"
    schema = json.loads(OFFICIAL_SCHEMA.read_text())
    jsonschema.Draft7Validator(schema).validate(published)


def test_published_document_matches_the_code(published: dict[str, Any]) -> None:
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    contract = build_spec(app.state.adapter, default_registry())
    assert contract == published, "docs/asyncapi.json is stale"


def _contract_and_served(**settings: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    app = create_app(Settings(_env_file=None, **settings))  # type: ignore[call-arg]
    served: dict[str, Any] = app.state.adapter.asyncapi()
    return build_spec(app.state.adapter, default_registry()), served


def test_the_contract_holds_no_setting_and_the_served_document_states_them(
    published: dict[str, Any],
) -> None:
    """Operational settings stay out of the committed contract (and so out of the generated
    types): a deployment on another port, with other limits, publishes the same contract;
    its own server fills in its URL and its numbers when it serves the document."""
    contract, served = _contract_and_served(
        port=9123, max_subscriptions=7, rate_limit_per_second=0, max_connections=31
    )
    assert contract == published
    text = json.dumps(published)
    assert "9123" not in text
    assert "8000/" not in text
    assert "`MARKETCAST_MAX_SUBSCRIPTIONS`" in published["info"]["description"]
    assert published["servers"]["local"]["url"] == "{host}/api/v1/ws"
    assert set(published["servers"]["local"]["variables"]) == {"host"}

    assert served["servers"]["local"]["url"] == "127.0.0.1:9123/api/v1/ws"
    assert "variables" not in served["servers"]["local"]
    limits = served["info"]["description"]
    assert "- subscriptions: 7;" in limits
    assert "- rate: not limited;" in limits
    assert "- connections per worker: 31;" in limits
    assert "MARKETCAST_MAX_SUBSCRIPTIONS" not in limits
    # Nothing but the server and the limits differ: the routes, schemas and codes are one.
    for part in ("channels", "components", "x-close-codes", "x-error-codes"):
        assert served[part] == published[part], part


def test_every_route_and_error_is_documented(published: dict[str, Any]) -> None:
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    schemas = published["components"]["schemas"]
    documented = {
        schemas[name]["properties"]["type"]["const"] for name in published["components"]["messages"]
    }
    routed: set[str] = set()
    for op in app.state.adapter.operations():
        routed.add(op.operation)
        if op.method == "SEND":
            routed.add(op.reply_operation)
    # Sent outside any route: errors for refused frames, notices before planned closes.
    assert routed | {"error", "notice"} == documented
    for name, message in published["components"]["messages"].items():
        assert message["payload"] == {"$ref": f"#/components/schemas/{name}"}
        assert set(schemas[name]["properties"]["type"]) == {"type", "const"}


def test_servers_and_description_filled(published: dict[str, Any]) -> None:
    assert published["info"]["description"]
    (server,) = published["servers"].values()
    assert server["protocol"] == "ws"
    assert server["url"].endswith("/api/v1/ws")


def test_summaries_are_plain_text() -> None:
    """AsyncAPI renders ``summary`` verbatim (only descriptions are CommonMark): a code mark
    in one shows as a literal backtick on the docs page."""
    document = json.loads((ROOT / "docs/asyncapi.json").read_text())
    found: list[tuple[str, str]] = []

    def walk(node: object, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "summary" and isinstance(value, str) and "`" in value:
                    found.append((path, value))
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{path}/{index}")

    walk(document, "")
    assert found == []
