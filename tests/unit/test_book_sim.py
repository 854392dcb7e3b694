"""``marketcast.book.sim_book``: a plausible, deterministic book and its faulty diff stream.

Why these checks: the fault-injection property (``test_book_binance_sync``) is only as good as
the truth it compares with, so the simulated stream must itself be exact: replaying its
events on its first snapshot gives every later snapshot, its ids chain like Binance's, and
its strings are decimals on the tick and lot grid. The rest keeps the book plausible (a
spread of a few ticks, level counts within bounds, levels that come and go) and the faults
what their names say.
"""

from __future__ import annotations

import math
import random
import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketcast.book.levels import OrderBook, decimal_rows, parse_levels
from marketcast.book.sim_book import (
    DepthUpdatePayload,
    Faults,
    FaultyDepthStream,
    SimBook,
    increment,
)

DECIMAL = re.compile(r"^\d+\.\d{8}$")


def btc(seed: int = 7, **kwargs: object) -> SimBook:
    return SimBook("BTCUSDT", 60_000.0, tick="0.01", lot="0.00001", seed=seed, **kwargs)  # type: ignore[arg-type]


def walk(
    book: SimBook, steps: int, *, seed: int = 0, vol: float = 3e-5
) -> list[DepthUpdatePayload]:
    """``steps`` events of ``book`` while its mid follows a random walk from 60,000."""
    rng = random.Random(seed)
    mid = 60_000.0
    events = []
    for step in range(steps):
        mid *= math.exp(rng.gauss(0, vol))
        events.append(book.step(mid, 1_700_000_000_000 + 100 * step))
    return events


def test_same_seed_same_book_other_seed_other_book() -> None:
    assert walk(btc(3), 50) == walk(btc(3), 50)
    assert btc(3).snapshot() == btc(3).snapshot()
    assert btc(3).snapshot() != btc(4).snapshot()


def test_snapshot_is_binance_shaped_decimal_strings_best_first() -> None:
    book = btc()
    last, bids, asks = book.snapshot()
    assert last == 1_000_000
    assert book.snapshot_body() == {"lastUpdateId": last, "bids": bids, "asks": asks}
    for side in (bids, asks):
        for price, qty in side:
            assert DECIMAL.match(price), price
            assert DECIMAL.match(qty), qty
            assert Decimal(price) % Decimal("0.01") == 0
            assert Decimal(qty) % Decimal("0.00001") == 0
            assert Decimal(qty) > 0
    bid_prices = [Decimal(p) for p, _ in bids]
    ask_prices = [Decimal(p) for p, _ in asks]
    assert bid_prices == sorted(bid_prices, reverse=True)
    assert ask_prices == sorted(ask_prices)
    assert Decimal("59999.90") < bid_prices[0] < ask_prices[0] < Decimal("60000.10")
    assert 50 <= len(bids) <= 200
    assert 50 <= len(asks) <= 200
    assert book.snapshot(limit=5) == (last, bids[:5], asks[:5])


def test_events_chain_their_ids_and_replay_to_every_snapshot() -> None:
    book = btc()
    _, bids, asks = book.snapshot()
    replay = OrderBook(parse_levels(bids, "bids"), parse_levels(asks, "asks"), book.last_update_id)
    previous = book.last_update_id
    rng = random.Random(0)
    mid = 60_000.0
    for step in range(400):
        mid *= math.exp(rng.gauss(0, 3e-5))
        event = book.step(mid, step)
        assert event["E"] == step
        assert event["e"] == "depthUpdate"
        assert event["s"] == "BTCUSDT"
        assert event["U"] == previous + 1
        assert event["u"] >= event["U"] + len(event["b"]) + len(event["a"]) - 1
        assert event["b"] or event["a"]  # never an empty event
        previous = event["u"]
        replay.apply(parse_levels(event["b"], "b"), parse_levels(event["a"], "a"))
        replay.seq = event["u"]
        if step % 50 == 49:
            last, bids, asks = book.snapshot()
            assert replay.seq == last
            assert replay.decimals() == (decimal_rows(bids), decimal_rows(asks))


def test_the_book_stays_plausible_while_the_mid_walks() -> None:
    book = btc(levels=(50, 200))
    seen: set[int] = set()
    vanished = phantom = 0
    rng = random.Random(1)
    mid = 60_000.0
    for step in range(1_000):
        mid *= math.exp(rng.gauss(0, 3e-5))
        held = set(book.bids)
        event = book.step(mid, step)
        best_bid, best_ask = max(book.bids), min(book.asks)
        assert 1 <= best_ask - best_bid <= 5  # ticks
        assert abs((best_bid + best_ask) / 2 * 0.01 - mid) < 0.03
        assert 50 <= len(book.bids) <= 200
        assert 50 <= len(book.asks) <= 200
        seen |= book.bids.keys()
        for price, qty in event["b"]:
            ticks = round(Decimal(price) * 100)
            if Decimal(qty) == 0:
                vanished += ticks in held
                phantom += ticks not in held
    assert len(seen) > 5 * 200  # levels come...
    assert vanished > 1_000  # ...and go
    assert phantom > 20  # and some removals name a level the book never held (as on Binance)


@pytest.mark.parametrize(
    ("symbol", "mid", "tick", "lot"),
    [
        ("EUR/USD", 1.08, "0.00001", "1"),
        ("DOGEUSDT", 0.12345, "0.00001", "1"),
        ("PEPEUSDT", 0.00001234, "0.00000001", "1"),
        ("TINY", 0.05, "0.01", "0.1"),  # five ticks: the bids stop above zero
        ("NANO", 1e-6, "0.000000001", "1"),  # a tick finer than Binance's 8 places
    ],
)
def test_other_instruments_stay_on_their_grid(symbol: str, mid: float, tick: str, lot: str) -> None:
    book = SimBook(symbol, mid, tick=tick, lot=lot, seed=1)
    rng = random.Random(2)
    for step in range(200):
        mid *= math.exp(rng.gauss(0, 3e-5))
        book.step(mid, step)
    _, bids, asks = book.snapshot()
    assert bids
    assert asks
    for price, qty in bids + asks:
        assert Decimal(price) > 0
        assert Decimal(price) % Decimal(tick) == 0
        assert Decimal(qty) % Decimal(lot) == 0
        # the float the served book holds is this decimal, exactly
        assert Decimal(str(float(price))) == Decimal(price)
        assert Decimal(str(float(qty))) == Decimal(qty)
    assert Decimal(bids[0][0]) < Decimal(asks[0][0])


def test_increment_of_decimals() -> None:
    assert [increment(n) for n in (0, 1, 2, 5, 8)] == [
        "1",
        "0.1",
        "0.01",
        "0.00001",
        "0.00000001",
    ]
    assert increment(-1) == "1"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tick": "0"}, "expected the tick size as a positive decimal string, got '0'"),
        ({"tick": "abc"}, "expected the tick size as a positive decimal string, got 'abc'"),
        ({"lot": "-1"}, "expected the lot size as a positive decimal string, got '-1'"),
        (
            {"levels": (10, 5)},
            r"expected levels \(low, high\) with 1 <= low <= high, got \(10, 5\)",
        ),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, object], message: str) -> None:
    params: dict[str, object] = {"tick": "0.01", "lot": "0.001"} | kwargs
    with pytest.raises(ValueError, match=message):
        SimBook("X", 100.0, **params)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected a positive finite mid price, got nan"):
        btc().step(float("nan"), 0)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), low=st.integers(1, 60), extra=st.integers(0, 100))
def test_any_seed_keeps_a_sound_book(seed: int, low: int, extra: int) -> None:
    book = btc(seed, levels=(low, low + extra))
    previous = book.last_update_id
    for event in walk(book, 60, seed=seed, vol=1e-4):
        assert event["U"] == previous + 1
        previous = event["u"]
        assert max(book.bids) < min(book.asks)
        assert low <= len(book.bids) <= low + extra
        assert all(lots > 0 for lots in book.bids.values())


# -- FaultyDepthStream ----------------------------------------------------------------------


def deliver(stream: FaultyDepthStream, steps: int) -> list[DepthUpdatePayload]:
    out: list[DepthUpdatePayload] = []
    mid = 60_000.0
    for step in range(steps):
        mid += 0.05 * (-1) ** (step // 7)
        out += stream.step(mid, step)
    return out


def test_no_faults_deliver_the_true_stream() -> None:
    stream = FaultyDepthStream(btc(), keep_true_events=True)
    assert deliver(stream, 100) == stream.true_events
    assert stream.dropped == stream.duplicated == stream.reordered == stream.lagged == 0
    assert stream.snapshot() == stream.book.snapshot_body()


def test_each_fault_does_what_it_says() -> None:
    dropped = FaultyDepthStream(btc(), Faults(drop=1.0), keep_true_events=True)
    assert deliver(dropped, 20) == []
    assert dropped.dropped == 20

    doubled = FaultyDepthStream(btc(), Faults(duplicate=1.0), keep_true_events=True)
    out = deliver(doubled, 10)
    assert doubled.true_events is not None
    assert out == [e for e in doubled.true_events for _ in (1, 2)]

    swapped = FaultyDepthStream(btc(), Faults(reorder=1.0), keep_true_events=True)
    out = deliver(swapped, 10)
    assert swapped.true_events is not None
    assert [e["U"] for e in out] == [
        swapped.true_events[i]["U"] for i in (1, 0, 3, 2, 5, 4, 7, 6, 9, 8)
    ]
    assert swapped.reordered == 5

    held = FaultyDepthStream(btc(), Faults(reorder=1.0), keep_true_events=True)
    assert deliver(held, 1) == []  # held back, waiting for the next event
    assert FaultyDepthStream(btc()).true_events is None  # kept only when asked


def test_all_faults_on() -> None:
    assert Faults.all() == Faults(0.05, 0.05, 0.05, 0.5, 5)
    assert Faults.all(0.1, lagging_snapshot=1.0) == Faults(0.1, 0.1, 0.1, 1.0)
    stream = FaultyDepthStream(btc(), Faults.all(0.2), keep_true_events=True)
    out = deliver(stream, 300)
    assert stream.dropped > 20
    assert stream.duplicated > 20
    assert stream.reordered > 20
    assert stream.true_events is not None
    assert len(out) == 300 - stream.dropped + stream.duplicated


def test_a_lagging_snapshot_is_an_older_true_state() -> None:
    stream = FaultyDepthStream(btc(), Faults(lagging_snapshot=1.0, max_lag=4))
    assert stream.snapshot()["lastUpdateId"] == stream.book.last_update_id  # no past yet
    deliver(stream, 30)
    current = stream.book.last_update_id
    lags = set()
    for _ in range(40):
        body = stream.snapshot()
        last = body["lastUpdateId"]
        assert last < current
        assert stream.true_at(last) == (body["bids"], body["asks"])
        lags.add(last)
    assert len(lags) == 4  # 1 to 4 events behind
    assert stream.lagged == 40
    assert stream.true_at(current) == stream.book.texts(stream.book.bids, stream.book.asks)
    assert stream.true_at(current + 1) is None


def test_history_is_bounded() -> None:
    stream = FaultyDepthStream(btc(), history=8)
    first = stream.book.last_update_id
    deliver(stream, 20)
    assert stream.true_at(first) is None
    assert stream.true_at(stream.book.last_update_id) is not None
