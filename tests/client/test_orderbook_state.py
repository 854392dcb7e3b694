"""``marketcast_client.orderbook.BookState``, pure: a reply's book and diff-mode updates fed by
hand, and what each one does (applied, stale, gap, reset, waiting) to the book held."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from marketcast_client.models import BookSnapshot, OrderbookUpdatePayload
from marketcast_client.orderbook import BookState, Level, exact

TOPIC = 'orderbook:{"mode":"diff","symbol":"BTCUSDT"}'


def snapshot(seq: int, bids: list[list[float]], asks: list[list[float]]) -> BookSnapshot:
    return BookSnapshot.model_validate(
        {"seq": seq, "time": 1_000 + seq, "bids": bids, "asks": asks}
    )


def diff(
    seq: int,
    prev_seq: int | None,
    bids: list[list[float]] | None = None,
    asks: list[list[float]] | None = None,
    **extra: Any,
) -> OrderbookUpdatePayload:
    payload = {"topic": TOPIC, "symbol": "BTCUSDT", "mode": "diff", "seq": seq}
    payload.update(prev_seq=prev_seq, time=1_000 + seq, bids=bids or [], asks=asks or [], **extra)
    return OrderbookUpdatePayload.model_validate(payload)


def levels(side: list[Level]) -> list[tuple[float, float]]:
    return [(level.price, level.qty) for level in side]


def held() -> BookState:
    book = BookState()
    book.load(
        snapshot(
            10,
            bids=[[100.5, 1.0], [100.0, 2.0], [99.5, 3.0]],
            asks=[[101.0, 0.5], [101.5, 1.5], [102.0, 2.5]],
        )
    )
    return book


def test_a_reply_book_is_held_best_first() -> None:
    book = held()
    assert (book.seq, book.time) == (10, 1_010)
    assert levels(book.bids()) == [(100.5, 1.0), (100.0, 2.0), (99.5, 3.0)]
    assert levels(book.asks()) == [(101.0, 0.5), (101.5, 1.5), (102.0, 2.5)]
    assert levels(book.bids(2)) == [(100.5, 1.0), (100.0, 2.0)]
    assert levels(book.asks(1)) == [(101.0, 0.5)]
    assert book.bids(0) == []
    assert levels(book.asks(99)) == levels(book.asks())
    assert levels(book.bids(99)) == levels(book.bids())
    assert levels(book.bids(3)) == levels(book.bids())
    assert book.best() == (Level(100.5, 1.0), Level(101.0, 0.5))
    assert book.depth() == (3, 3)


def test_a_reply_book_given_unsorted_is_held_sorted() -> None:
    book = BookState()
    book.load(snapshot(1, bids=[[1.0, 1.0], [3.0, 1.0], [2.0, 1.0]], asks=[[5.0, 1.0], [4.0, 1.0]]))
    assert [level.price for level in book.bids()] == [3.0, 2.0, 1.0]
    assert [level.price for level in book.asks()] == [4.0, 5.0]


def test_a_diff_continuing_the_book_is_applied() -> None:
    book = held()
    # Changed (100.5), removed (100.0), added (100.25, a new best-but-one); on the asks a new
    # best (100.75), a removal (102.0), and a removal of a price not held (no error).
    outcome = book.apply(
        diff(
            12,
            10,
            bids=[[100.5, 4.0], [100.0, 0.0], [100.25, 0.7]],
            asks=[[100.75, 0.1], [102.0, 0], [103.0, 0.0]],
        )
    )
    assert outcome == "applied"
    assert (book.seq, book.time) == (12, 1_012)
    assert levels(book.bids()) == [(100.5, 4.0), (100.25, 0.7), (99.5, 3.0)]
    assert levels(book.asks()) == [(100.75, 0.1), (101.0, 0.5), (101.5, 1.5)]
    assert book.apply(diff(13, 12, bids=[[100.5, 0.0]])) == "applied"
    assert book.best()[0] == Level(100.25, 0.7)


@pytest.mark.parametrize("seq", [8, 10])
def test_a_diff_at_or_before_the_seq_held_is_skipped(seq: int) -> None:
    book = held()
    before = (book.bids(), book.asks())
    assert book.apply(diff(seq, seq - 1, bids=[[100.5, 0.0]])) == "stale"
    assert book.seq == 10
    assert (book.bids(), book.asks()) == before
    # The diff that does continue the book still applies afterwards.
    assert book.apply(diff(11, 10, asks=[[101.0, 0.0]])) == "applied"


@pytest.mark.parametrize("prev_seq", [9, 11, None])
def test_a_diff_that_does_not_continue_the_book_is_a_gap(prev_seq: int | None) -> None:
    book = held()
    before = (book.bids(), book.asks())
    assert book.apply(diff(15, prev_seq, bids=[[100.5, 0.0]])) == "gap"
    assert book.seq == 10, "a gap changes nothing: only a fresh book mends it"
    assert (book.bids(), book.asks()) == before


def test_a_reset_replaces_the_whole_book_whatever_the_seq() -> None:
    book = held()
    reset = diff(3, None, bids=[[50.0, 1.0], [51.0, 2.0]], asks=[[52.0, 3.0]], reset=True)
    assert book.apply(reset) == "reset"
    assert (book.seq, book.time) == (3, 1_003)
    assert levels(book.bids()) == [(51.0, 2.0), (50.0, 1.0)]
    assert levels(book.asks()) == [(52.0, 3.0)]
    assert book.apply(diff(4, 3, asks=[[52.0, 0.0]])) == "applied"
    assert book.asks() == []
    assert book.best() == (Level(51.0, 2.0), None)


def test_without_a_book_diffs_wait_for_the_reset() -> None:
    book = held()
    book.load(None)  # a reply whose book is null: the upstream book is not joined yet
    assert book.seq is None
    assert book.bids() == []
    assert book.asks() == []
    assert book.best() == (None, None)
    assert book.apply(diff(5, 4, bids=[[1.0, 1.0]])) == "waiting"
    assert book.apply(diff(5, None, bids=[[1.0, 1.0]], asks=[[2.0, 1.0]], reset=True)) == "reset"
    assert book.apply(diff(6, 5, bids=[[1.5, 1.0]])) == "applied"
    assert levels(book.bids()) == [(1.5, 1.0), (1.0, 1.0)]


def test_a_levels_update_is_refused() -> None:
    levels_update = OrderbookUpdatePayload.model_validate(
        {"topic": "t", "symbol": "BTCUSDT", "mode": "levels", "depth": 5, "seq": 11}
        | {"bids": [], "asks": []}
    )
    with pytest.raises(ValueError, match="levels update"):
        held().apply(levels_update)


def test_levels_give_the_exact_decimals_back() -> None:
    book = BookState()
    book.load(snapshot(1, bids=[[0.1, 0.3], [0.2, 1e-8]], asks=[[91289.01, 12345.6789]]))
    (low, high), (ask,) = sorted(book.bids()), book.asks()
    assert low.price_decimal == Decimal("0.1")
    assert high.price_decimal == Decimal("0.2")
    # Sums of the exact values stay exact, where float sums would not.
    assert low.price_decimal + high.price_decimal == Decimal("0.3")
    assert low.price + high.price != 0.3
    assert high.qty_decimal == Decimal("1E-8")
    assert (ask.price_decimal, ask.qty_decimal) == (Decimal("91289.01"), Decimal("12345.6789"))
    assert exact(2.5) == Decimal("2.5")
