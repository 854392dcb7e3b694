"""Topic strings: the shared vectors (computed with Node) and properties of ``topic_params``."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketcast.topics import build_topic, topic_params
from marketcast.types import JSON

VECTORS_PATH = Path(__file__).resolve().parents[1] / "vectors" / "topics.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))

# Finite floats, any ints (big ones are rounded to a double like JSON.parse does), text with
# astral characters, lone surrogates and control characters.
_scalars = (
    st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec=None, exclude_categories=()))
)
_keys = st.text(max_size=6)
_values: st.SearchStrategy[JSON] = st.recursive(
    st.none() | _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=20,
)
_null_free: st.SearchStrategy[JSON] = st.recursive(
    st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=20,
)


def _equal(decoded: Any, original: JSON) -> bool:
    """Compare a decoded topic to its source: numbers by value, containers structurally."""
    if isinstance(original, dict):
        return (
            isinstance(decoded, dict)
            and decoded.keys() == original.keys()
            and all(_equal(decoded[k], v) for k, v in original.items())
        )
    if isinstance(original, list):
        return (
            isinstance(decoded, list)
            and len(decoded) == len(original)
            and all(_equal(d, o) for d, o in zip(decoded, original, strict=True))
        )
    if isinstance(original, bool) or isinstance(decoded, bool):
        return decoded is original
    if isinstance(original, int | float):
        # A big int or a float written positionally comes back as an int: compare as doubles.
        return isinstance(decoded, int | float) and float(decoded) == float(original)
    return bool(decoded == original)


def _shuffled(value: JSON, rng: random.Random) -> JSON:
    if isinstance(value, dict):
        items = [(k, _shuffled(v, rng)) for k, v in value.items()]
        rng.shuffle(items)
        return dict(items)
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


def test_vector_file_has_enough_cases() -> None:
    assert len(VECTORS) >= 40
    for case in VECTORS:
        assert set(case) == {"input", "route", "topic"}
        assert isinstance(case["input"], dict)
        assert case["topic"].startswith(case["route"] + ":")


@pytest.mark.parametrize("case", VECTORS, ids=[str(i) for i in range(len(VECTORS))])
def test_vector(case: dict[str, Any]) -> None:
    assert build_topic(case["route"], case["input"]) == case["topic"]


def test_real_topics() -> None:
    bars = build_topic("bars", {"symbol": "BTCUSDT", "resolution": "1"})
    assert bars == 'bars:{"resolution":"1","symbol":"BTCUSDT"}'
    assert build_topic("quotes", {"symbol": "EUR/USD"}) == 'quotes:{"symbol":"EUR/USD"}'


def test_orders_keys_by_utf16_code_units() -> None:
    # U+1F600 is the pair D83D DE00 in UTF-16, which sorts before U+FF5E; by code point it
    # would come after.
    assert "\U0001f600" > "\uff5e"
    assert topic_params({"\uff5e": 1, "\U0001f600": 2}) == '{"\U0001f600":2,"\uff5e":1}'
    assert topic_params({"\U00010000": 1, "\uffff": 2}) == '{"\U00010000":1,"\uffff":2}'


def test_numbers_and_strings_follow_javascript() -> None:
    assert topic_params([1.0, -0.0, 1e21, 1e-7, 1e-6, 1.2345678901234568e20]) == (
        "[1,0,1e+21,1e-7,0.000001,123456789012345680000]"
    )
    assert (
        topic_params([math.nan, math.inf, -math.inf, 10**400, None]) == '[null,null,null,null,""]'
    )
    assert topic_params(2**53 + 1) == "9007199254740992"
    assert (
        topic_params("\ud800 \ud83d\ude00 \x01\n/\u2028")
        == '"\\ud800 \U0001f600 \\u0001\\n/\u2028"'
    )


def test_rejects_non_json_values() -> None:
    with pytest.raises(TypeError):
        topic_params({"x": object()})  # type: ignore[dict-item]


@given(_values)
def test_output_is_compact_json(value: JSON) -> None:
    text = build_topic("bars", {"symbol": "X", "v": value})
    prefix, _, params = text.partition(":")
    assert prefix == "bars"
    decoded = json.loads(params)
    assert isinstance(decoded, dict)
    assert list(decoded) == ["symbol", "v"]
    assert "\n" not in params
    # The canonical form is a fixed point: parsing it and rebuilding gives the same text.
    assert topic_params(decoded) == params


@given(_null_free)
def test_null_free_values_round_trip(value: JSON) -> None:
    assert _equal(json.loads(topic_params(value)), value)


@given(_values, st.randoms(use_true_random=False))
def test_key_insertion_order_is_irrelevant(value: JSON, rng: random.Random) -> None:
    assert topic_params(_shuffled(value, rng)) == topic_params(value)


@given(st.dictionaries(_keys, st.integers(), max_size=8))
def test_keys_come_out_in_utf16_order(value: dict[str, int]) -> None:
    decoded = json.loads(topic_params(value))
    keys = list(decoded)
    assert keys == sorted(value, key=lambda k: k.encode("utf-16-be", "surrogatepass"))
