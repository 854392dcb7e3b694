"""Error messages quote client values safely: bounded, without recursion, for any depth."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from marketcast.channels.bars import BarsSubscribePayload
from marketcast.errors import ErrorCode
from marketcast.ws.validation import (
    ECHO_LIMIT,
    MAX_PROBLEMS,
    clip,
    describe_validation_error,
    preview,
)


def nested(depth: int, leaf: Any = None) -> Any:
    value: Any = [] if leaf is None else leaf
    for _ in range(depth):
        value = [value]
    return value


def describe(payload: Any) -> tuple[ErrorCode, str]:
    with pytest.raises(ValidationError) as caught:
        BarsSubscribePayload.model_validate(payload)
    return describe_validation_error(caught.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([1, 2, 3], "[1, 2, 3]"),
        ({"a": [True, None]}, "{'a': [True, None]}"),
        ("abc", "'abc'"),
        (1.5, "1.5"),
        ([], "[]"),
        ({}, "{}"),
    ],
)
def test_preview_matches_repr_for_small_values(value: Any, expected: str) -> None:
    assert preview(value) == expected == repr(value)


@pytest.mark.parametrize("depth", [10, 1_000, 100_000])
def test_preview_of_any_depth_is_bounded_and_does_not_recurse(depth: int) -> None:
    text = preview(nested(depth))
    assert len(text) <= ECHO_LIMIT + 1
    if depth > ECHO_LIMIT:
        assert text == "[" * ECHO_LIMIT + "…"


def test_preview_of_long_values_is_cut() -> None:
    assert preview("x" * 100_000) == repr("x" * (ECHO_LIMIT + 1))[:ECHO_LIMIT] + "…"
    assert len(preview(list(range(100_000)))) == ECHO_LIMIT + 1
    assert len(preview({str(i): i for i in range(100_000)})) == ECHO_LIMIT + 1


def test_clip() -> None:
    assert clip("abc") == "abc"
    assert clip("y" * 1000) == "y" * ECHO_LIMIT + "…"


@pytest.mark.parametrize("depth", [100, 990, 5_000])
def test_a_deeply_nested_symbol_is_described_without_recursion(depth: int) -> None:
    code, message = describe({"symbol": nested(depth), "params": {"resolution": "1"}})
    assert code is ErrorCode.INVALID_SYMBOL
    assert len(message) < 300


def test_deep_nesting_elsewhere_is_a_validation_error() -> None:
    payload = {"symbol": "BTCUSDT", "params": {"resolution": "1"}, "snapshot": nested(5_000)}
    code, message = describe(payload)
    assert code is ErrorCode.VALIDATION_ERROR
    assert message.startswith("invalid payload: snapshot: ")
    assert len(message) < 300


def test_many_problems_are_counted_not_listed() -> None:
    payload = {f"extra{i}": "z" * 10_000 for i in range(50)}
    code, message = describe(payload)
    assert code is ErrorCode.VALIDATION_ERROR
    assert message.count(";") == MAX_PROBLEMS
    assert message.endswith(f"and {50 + 2 - MAX_PROBLEMS} more problem(s)")  # + symbol, params
    assert len(message) < 1_000
