"""No I/O: reconnect delays per close code, error families, model strictness."""

from __future__ import annotations

import json
from typing import get_args

import pytest
from marketcast_client import Backoff, InvalidRequest, RetryLater, ServerError, SubscriptionRefused
from marketcast_client.backoff import ReconnectPolicy
from marketcast_client.errors import ERROR_FAMILIES, server_error
from marketcast_client.models import (
    BarsParams,
    BarsSubscribeMessage,
    BarsSubscribePayload,
    ClientMessage,
    ErrorCode,
    ServerMessage,
)
from pydantic import TypeAdapter, ValidationError

from tests.integration.harness import ROOT

HIGH = 0.999  # a draw near the top: the delay is just under its ceiling


def policy(draw: float = HIGH) -> ReconnectPolicy:
    return ReconnectPolicy(Backoff(base=0.5, cap=8.0), lambda: draw, stable_after=30.0)


def test_backoff_ceiling_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=8.0)
    assert [backoff.ceiling(n) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff.ceiling(10_000) == 8.0
    assert backoff.delay(3, 0.0) == 0.0
    assert backoff.delay(3, 0.5) == 2.0
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        backoff.delay(0, 1.0)
    with pytest.raises(ValueError, match="cap"):
        Backoff(base=2.0, cap=1.0)


@pytest.mark.parametrize("code", [4404, 1009, 1007])
def test_closes_that_retrying_cannot_fix_stop_the_client(code: int) -> None:
    assert policy().after_close(code, uptime=100.0, noticed=False) is None
    assert policy().after_close(code, uptime=0.0, noticed=True) is None


def test_a_planned_close_reconnects_at_once() -> None:
    reconnect = policy()
    assert reconnect.after_close(1001, uptime=1.0, noticed=True) == 0.0
    assert reconnect.after_close(1001, uptime=1.0, noticed=False) == 0.0
    # A notice announces the close, whatever drops the socket in the end.
    assert reconnect.after_close(1006, uptime=1.0, noticed=True) == 0.0
    # When that immediate attempt fails, the usual backoff starts from the bottom.
    assert reconnect.after_failed_attempt() == pytest.approx(0.5 * HIGH)


@pytest.mark.parametrize("code", [1008, 1013, 4008])
def test_penalty_closes_grow_the_backoff_until_a_connection_lasts(code: int) -> None:
    reconnect = policy()
    delays = [reconnect.after_close(code, uptime=2.0, noticed=False) for _ in range(5)]
    assert delays == pytest.approx([c * HIGH for c in (0.5, 1.0, 2.0, 4.0, 8.0)])
    # A connection that stayed up for stable_after seconds forgives the penalty.
    assert reconnect.after_close(code, uptime=31.0, noticed=False) == pytest.approx(0.5 * HIGH)


def test_ordinary_drops_start_small_after_each_good_connection() -> None:
    reconnect = policy()
    for code in (1006, 1011, 1012, 1000):
        assert reconnect.after_close(code, uptime=0.1, noticed=False) == pytest.approx(0.5 * HIGH)
        # Attempts that fail while the server is down grow the delay.
        assert reconnect.after_failed_attempt() == pytest.approx(1.0 * HIGH)
        assert reconnect.after_failed_attempt() == pytest.approx(2.0 * HIGH)


def test_every_error_code_of_the_contract_has_a_family() -> None:
    codes = set(get_args(ErrorCode))
    assert codes == set(ERROR_FAMILIES), "map the new codes in marketcast_client/errors.py"
    error = server_error("unknown_symbol", "no DOGE", request_type="bars.subscribe", request_id=3)
    assert isinstance(error, SubscriptionRefused)
    assert (error.code, error.message, error.request_type, error.request_id) == (
        "unknown_symbol",
        "no DOGE",
        "bars.subscribe",
        3,
    )
    assert isinstance(server_error("rate_limited", "slow down"), RetryLater)
    assert isinstance(server_error("validation_error", "bad"), InvalidRequest)
    # A code this version does not know still arrives, as the base class.
    assert type(server_error("brand_new_code", "?")) is ServerError


def test_client_messages_serialise_as_the_wire_wants() -> None:
    message = BarsSubscribeMessage(
        id=7,
        payload=BarsSubscribePayload(symbol="EUR/USD", params=BarsParams(resolution="D")),
    )
    assert message.model_dump(exclude_none=True) == {
        "type": "bars.subscribe",
        "id": 7,
        "payload": {"symbol": "EUR/USD", "params": {"resolution": "D"}, "snapshot": 0},
    }
    with pytest.raises(ValidationError, match="pattern"):
        BarsSubscribePayload(symbol="btcusdt", params=BarsParams(resolution="1"))
    with pytest.raises(ValidationError, match="less than or equal"):
        BarsSubscribePayload(symbol="BTCUSDT", params=BarsParams(resolution="1"), snapshot=1001)


def test_server_messages_ignore_new_fields_unless_asked_to_refuse_them() -> None:
    adapter: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)
    frame = b'{"type": "pong", "id": 1, "payload": {"time": 5, "new_field": 1}}'
    assert adapter.validate_json(frame).payload.model_dump() == {"time": 5}
    with pytest.raises(ValidationError, match="unknown fields: new_field"):
        adapter.validate_json(frame, context={"forbid_extra": True})
    with pytest.raises(ValidationError):
        adapter.validate_json(b'{"type": "bars.subscribe", "payload": {}}')


def test_every_example_of_the_document_validates_strictly() -> None:
    """The models read the contract's own examples with no coercion and no unknown field,
    as ``tests/consumer`` reads every server frame (so the tests could switch to them)."""
    document = json.loads((ROOT / "docs" / "asyncapi.json").read_text(encoding="utf-8"))
    server: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)
    client: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
    schemas = document["components"]["schemas"]
    client_types = {
        schemas[member["$ref"].rsplit("/", 1)[-1]]["properties"]["type"]["const"]
        for member in schemas["ClientMessage"]["oneOf"]
    }
    checked = 0
    for message in document["components"]["messages"].values():
        adapter = client if message["title"] in client_types else server
        for example in message.get("examples", []):
            raw = json.dumps(example["payload"])
            parsed = adapter.validate_json(raw, strict=True, context={"forbid_extra": True})
            assert parsed.type == message["title"]
            checked += 1
    assert checked >= len(document["components"]["messages"])
