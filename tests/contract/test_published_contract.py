"""``docs/asyncapi.json`` — the committed contract — is valid and covers every route."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from marketcast.app import create_app
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
    assert app.state.adapter.asyncapi() == published, "docs/asyncapi.json is stale"


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
