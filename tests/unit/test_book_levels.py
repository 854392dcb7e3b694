"""``marketcast.book.levels``: parsing a level, the sorted book, top-N reads and top-N diffs.

Why a reference model: the book keeps its prices sorted incrementally (bisect), which is the
kind of code that is right for the cases one thinks of; hypothesis drives it with arbitrary
updates and compares every read with a dict sorted afresh each time.
"""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketcast.book.levels import (
    BookFormatError,
    OrderBook,
    Row,
    changes,
    decimal_rows,
    parse_level,
    parse_levels,
)

# -- parse_level ---------------------------------------------------------------------------


def test_parse_level_reads_binance_decimal_strings() -> None:
    assert parse_level(["60000.01000000", "0.50000000"]) == (60000.01, 0.5)
    assert parse_level(("0.00000100", "12345.00000000")) == (1e-06, 12345.0)
    # a removal
    assert parse_level(["4.00000200", "0.00000000"]) == (4.000002, 0.0)
    # JSON numbers are tolerated
    assert parse_level([101, 2.5]) == (101.0, 2.5)


def test_parsed_levels_are_written_back_as_the_upstream_decimal() -> None:
    level = parse_level(["60000.01000000", "0.50000000"])
    assert orjson.dumps([list(level)]) == b"[[60000.01,0.5]]"
    level = parse_level(["0.07010000", "1234.56780000"])
    assert orjson.dumps(list(level)) == b"[0.0701,1234.5678]"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (["nan", "1"], "price to be a positive finite decimal, got 'nan'"),
        (["inf", "1"], "price to be a positive finite decimal, got 'inf'"),
        (["-1.5", "1"], "price to be a positive finite decimal, got '-1.5'"),
        (["0.00000000", "1"], "price to be a positive finite decimal, got '0.00000000'"),
        (["1", "-0.5"], "quantity to be a finite decimal >= 0, got '-0.5'"),
        (["1", "NaN"], "quantity to be a finite decimal >= 0, got 'NaN'"),
        (["1", "Infinity"], "quantity to be a finite decimal >= 0, got 'Infinity'"),
        (["1.0.0", "1"], "price to be a decimal string, got '1.0.0'"),
        (["1", None], "quantity to be a decimal string, got None"),
        ([True, "1"], "price to be a decimal string, got True"),
        (["1"], "expected a level [price, quantity] of two decimal strings, got ['1']"),
        (["1", "2", "3"], "two decimal strings, got ['1', '2', '3']"),
        ("1,2", "two decimal strings, got '1,2'"),
        ({"p": "1"}, "two decimal strings, got {'p': '1'}"),
    ],
)
def test_parse_level_refuses_with_what_was_expected_and_what_came(
    raw: object, expected: str
) -> None:
    with pytest.raises(BookFormatError) as caught:
        parse_level(raw)
    assert expected in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_parse_levels_names_the_field_and_index() -> None:
    assert parse_levels([["1.5", "2"], ["1.4", "0"]], "b") == [(1.5, 2.0), (1.4, 0.0)]
    assert parse_levels([], "a") == []
    with pytest.raises(BookFormatError, match=r"^b\[1\]: expected a level's quantity"):
        parse_levels([["1.5", "2"], ["1.4", "-1"]], "b")
    with pytest.raises(
        BookFormatError, match=r"expected 'asks' to be an array of levels, got None"
    ):
        parse_levels(None, "asks")


@st.composite
def decimal_texts(draw: st.DrawFn) -> str:
    """Decimal strings as Binance writes them (8 places), up to 15 significant digits."""
    digits = draw(st.integers(1, 15))
    places = draw(st.integers(0, min(digits, 8)))
    units = draw(st.integers(1, 10**digits - 1))
    value = Decimal(units).scaleb(-places)
    return f"{value:.8f}"


@given(price=decimal_texts(), quantity=decimal_texts())
def test_up_to_15_significant_digits_round_trip_exactly(price: str, quantity: str) -> None:
    """The decision the book rests on: a float parsed from the upstream's decimal string is
    written back by orjson as that decimal, exactly."""
    parsed = parse_level([price, quantity])
    written = orjson.dumps(list(parsed)).decode()  # e.g. "[60000.01,0.5]"
    assert [Decimal(text) for text in written[1:-1].split(",")] == [
        Decimal(price),
        Decimal(quantity),
    ]
    assert decimal_rows([parsed]) == [(Decimal(price), Decimal(quantity))]


# -- OrderBook ----------------------------------------------------------------------------


def book_of(
    bids: list[tuple[float, float]], asks: list[tuple[float, float]], seq: int = 0
) -> OrderBook:
    return OrderBook(bids, asks, seq)


def test_apply_sets_absolute_quantities_and_zero_removes() -> None:
    book = book_of([(100.0, 1.0), (99.5, 2.0)], [(100.5, 3.0), (101.0, 4.0)], seq=7)
    book.apply([(100.0, 1.5), (99.75, 0.25), (99.5, 0.0)], [(100.5, 0.0), (100.25, 9.0)])
    assert book.snapshot() == (
        [[100.0, 1.5], [99.75, 0.25]],
        [[100.25, 9.0], [101.0, 4.0]],
    )
    assert book.best() == (100.0, 100.25)
    assert book.sizes() == (2, 2)
    assert book.seq == 7  # the caller's to set


def test_removing_an_absent_level_is_normal_and_ignored() -> None:
    book = book_of([(100.0, 1.0)], [(101.0, 1.0)])
    book.apply([(98.0, 0.0), (100.0, 0.0), (100.0, 0.0)], [(105.0, 0.0)])
    assert book.snapshot() == ([], [[101.0, 1.0]])
    assert book.best() == (None, 101.0)


def test_top_is_best_first_and_bounded() -> None:
    book = book_of(
        [(float(p), 1.0) for p in range(90, 100)], [(float(p), 2.0) for p in range(100, 105)]
    )
    assert book.top(3) == (
        [[99.0, 1.0], [98.0, 1.0], [97.0, 1.0]],
        [[100.0, 2.0], [101.0, 2.0], [102.0, 2.0]],
    )
    bids, asks = book.top(7)
    assert [p for p, _ in bids] == [99.0, 98.0, 97.0, 96.0, 95.0, 94.0, 93.0]
    assert [p for p, _ in asks] == [100.0, 101.0, 102.0, 103.0, 104.0]  # all there are
    assert book.top(0) == ([], [])
    assert book.top(-1) == ([], [])
    assert book.top(1000) == book.snapshot()


def test_replace_leaves_out_zero_levels_and_sets_seq() -> None:
    book = book_of([(1.0, 1.0)], [(2.0, 1.0)], seq=3)
    book.replace([(1.5, 0.0), (1.25, 4.0)], [(2.5, 5.0), (2.25, 0.0)], 42)
    assert book.seq == 42
    assert book.snapshot() == ([[1.25, 4.0]], [[2.5, 5.0]])


def test_equality_is_seq_and_levels() -> None:
    a = book_of([(1.0, 1.0)], [(2.0, 1.0)], seq=3)
    b = book_of([(1.0, 1.0)], [(2.0, 1.0)], seq=3)
    assert a == b
    assert a != book_of([(1.0, 1.0)], [(2.0, 1.0)], seq=4)
    assert a != book_of([(1.0, 1.5)], [(2.0, 1.0)], seq=3)
    assert a != "a book"
    assert repr(a) == "OrderBook(seq=3, 1 bids to 1.0, 1 asks from 2.0)"


def test_decimals_compare_with_upstream_strings_whatever_the_padding() -> None:
    levels = [["60000.01000000", "0.50000000"], ["59999.99000000", "1.00000000"]]
    book = OrderBook(parse_levels(levels, "bids"), [], 1)
    bids, asks = book.decimals()
    assert (
        bids
        == decimal_rows(levels)
        == [
            (Decimal("60000.01"), Decimal("0.5")),
            (Decimal("59999.99"), Decimal("1")),
        ]
    )
    assert asks == []


# A small price grid makes updates hit existing levels often.
prices = st.integers(1, 60).map(lambda n: n / 4)
quantities = st.one_of(st.just(0.0), st.integers(1, 5).map(float))
updates = st.lists(st.tuples(prices, quantities), max_size=12)


def reference_top(levels: dict[float, float], n: int, *, bids: bool) -> list[Row]:
    return [[p, levels[p]] for p in sorted(levels, reverse=bids)[:n]]


@settings(max_examples=200)
@given(steps=st.lists(st.tuples(updates, updates), max_size=30), n=st.integers(0, 70))
def test_book_matches_a_sorted_dict_after_any_updates(
    steps: list[tuple[list[tuple[float, float]], list[tuple[float, float]]]], n: int
) -> None:
    book = OrderBook()
    model: tuple[dict[float, float], dict[float, float]] = ({}, {})
    for bid_updates, ask_updates in steps:
        book.apply(bid_updates, ask_updates)
        for side, side_updates in zip(model, (bid_updates, ask_updates), strict=True):
            for price, qty in side_updates:
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)
        assert book.top(n) == (
            reference_top(model[0], n, bids=True),
            reference_top(model[1], n, bids=False),
        )
    assert book.snapshot() == (
        reference_top(model[0], 100, bids=True),
        reference_top(model[1], 100, bids=False),
    )
    assert book.sizes() == (len(model[0]), len(model[1]))


# -- changes ------------------------------------------------------------------------------


def test_changes_turn_one_top_into_another() -> None:
    before = ([[100.0, 1.0], [99.0, 2.0], [98.0, 3.0]], [[101.0, 1.0], [102.0, 2.0]])
    after = ([[100.5, 4.0], [100.0, 1.0], [99.0, 2.5]], [[101.0, 1.0], [103.0, 7.0]])
    assert changes(before, after) == (
        [[100.5, 4.0], [99.0, 2.5], [98.0, 0.0]],
        [[102.0, 0.0], [103.0, 7.0]],
    )
    assert changes(after, after) == ([], [])
    assert changes(([], []), after) == after


sides = st.dictionaries(prices, st.integers(1, 5).map(float), max_size=15)


@settings(max_examples=200)
@given(before_bids=sides, before_asks=sides, after_bids=sides, after_asks=sides)
def test_changes_applied_to_before_give_after(
    before_bids: dict[float, float],
    before_asks: dict[float, float],
    after_bids: dict[float, float],
    after_asks: dict[float, float],
) -> None:
    before = OrderBook(before_bids.items(), before_asks.items()).snapshot()
    after = OrderBook(after_bids.items(), after_asks.items()).snapshot()
    bid_changes, ask_changes = changes(before, after)
    book = OrderBook(before_bids.items(), before_asks.items())
    book.apply(bid_changes, ask_changes)
    assert book.snapshot() == after
    # best first, each price once, and nothing that did not change
    assert [p for p, _ in bid_changes] == sorted({p for p, _ in bid_changes}, reverse=True)
    assert [p for p, _ in ask_changes] == sorted({p for p, _ in ask_changes})
    for price, qty in bid_changes:
        assert before_bids.get(price, 0.0) != qty
