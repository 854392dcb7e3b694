"""The client's models generated from docs/asyncapi.json accept the contract and nothing else.

The integration harness validates every frame it receives with these models
(``tests.consumer.validate_server_frame``); these tests show that this check has teeth: the
documented examples pass, and frames that break the contract in typical ways are rejected.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, get_args

import pytest

from tests.consumer import (
    ContractViolation,
    models,
    validate_client_frame,
    validate_server_frame,
)

ROOT = Path(__file__).resolve().parents[2]
SPEC: dict[str, Any] = json.loads((ROOT / "docs" / "asyncapi.json").read_text())

BAR_UPDATE: dict[str, Any] = {
    "type": "bars.update",
    "payload": {
        "topic": 'bars:{"resolution":"1","symbol":"BTCUSDT"}',
        "symbol": "BTCUSDT",
        "resolution": "1",
        "time": 1_767_225_600_000,
        "open": 87_950.5,
        "high": 88_010.0,
        "low": 87_940.1,
        "close": 87_999.9,
        "volume": 12.345,
        "closed": False,
    },
}


def _examples(direction: str) -> list[tuple[str, dict[str, Any]]]:
    union = "ServerMessage" if direction == "server" else "ClientMessage"
    names = [ref["$ref"].rsplit("/", 1)[1] for ref in SPEC["components"]["schemas"][union]["oneOf"]]
    messages = SPEC["components"]["messages"]
    return [(name, example["payload"]) for name in names for example in messages[name]["examples"]]


@pytest.mark.parametrize(("name", "frame"), _examples("server"))
def test_documented_server_examples_validate(name: str, frame: dict[str, Any]) -> None:
    message = validate_server_frame(json.dumps(frame))
    assert type(message).__name__ == name


@pytest.mark.parametrize(("name", "frame"), _examples("client"))
def test_documented_client_examples_validate(name: str, frame: dict[str, Any]) -> None:
    message = validate_client_frame(json.dumps(frame))
    assert type(message).__name__ == name


def test_every_documented_server_message_is_in_the_union() -> None:
    documented = {
        ref["$ref"].rsplit("/", 1)[1]
        for ref in SPEC["components"]["schemas"]["ServerMessage"]["oneOf"]
    }
    generated = {member.__name__ for member in get_args(get_args(models.ServerMessage)[0])}
    assert generated == documented


def _broken(change: str) -> dict[str, Any]:
    frame = copy.deepcopy(BAR_UPDATE)
    payload = frame["payload"]
    if change == "missing-field":
        del payload["close"]
    elif change == "string-for-number":
        payload["time"] = str(payload["time"])
    elif change == "extra-payload-field":
        payload["vwap"] = 1.0
    elif change == "extra-envelope-field":
        frame["seq"] = 1
    elif change == "id-on-update":
        frame["id"] = 1
    elif change == "unknown-type":
        frame["type"] = "bars.delta"
    elif change == "unknown-resolution":
        payload["resolution"] = "7"
    elif change == "client-type-from-server":
        frame["type"] = "bars.subscribe"
    return frame


@pytest.mark.parametrize(
    "change",
    [
        "missing-field",
        "string-for-number",
        "extra-payload-field",
        "extra-envelope-field",
        "id-on-update",
        "unknown-type",
        "unknown-resolution",
        "client-type-from-server",
    ],
)
def test_a_frame_breaking_the_contract_is_rejected(change: str) -> None:
    validate_server_frame(json.dumps(BAR_UPDATE))  # the unbroken frame is fine
    with pytest.raises(ContractViolation, match=r"server frame breaks docs/asyncapi\.json"):
        validate_server_frame(json.dumps(_broken(change)))


def test_an_error_code_outside_the_contract_is_rejected() -> None:
    frame = {"type": "error", "payload": {"code": "validation_error", "message": "x"}, "id": 7}
    validate_server_frame(json.dumps(frame))
    frame["payload"]["code"] = "teapot"  # type: ignore[index]
    with pytest.raises(ContractViolation):
        validate_server_frame(json.dumps(frame))


def test_not_json_is_rejected() -> None:
    with pytest.raises(ContractViolation):
        validate_server_frame("{not json")
