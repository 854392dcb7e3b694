"""Issue 14, "Numbers on the wire": every computed volume is the exact decimal sum.

``aggregate.decimal_sum`` is the one place where a value bound for the wire is computed from
decimal ones (bar volumes from trade sizes, coarse volumes from finer ones, the simulator's
day volume, bid and ask). Its rule: round the float sum to the most decimals its terms have.
These properties check it against ``decimal.Decimal`` arithmetic, for terms with at most
``d`` decimals and magnitudes within the documented bound (``|a| + |b|`` below 2**51 units of
the last decimal): the result's shortest repr *is* the exact sum, so it has at most ``d``
decimals and rounding it to ``d`` decimals changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketcast.feeds.aggregate import (
    CandleAggregator,
    CandleBuilder,
    aggregate,
    decimal_sum,
    decimals_of,
)
from marketcast.market import Candle
from marketcast.timeframes import bucket_start, next_bucket
from marketcast.types import Millis, Resolution

#: 2024-05-06 00:00 UTC, a Monday: the open of a bucket of every resolution but M.
T0: Millis = 1_714_953_600_000
MINUTE: Millis = 60_000
#: Most decimals drawn: Binance writes 8.
MAX_PLACES = 8


def exact(value: float) -> Decimal:
    """The decimal value a float stands for on the wire: its shortest repr."""
    return Decimal(repr(value))


def places(value: float) -> int:
    """Decimals of the value (not of its text: ``12.0`` has none), read with ``Decimal``."""
    return max(0, -int(exact(value).normalize().as_tuple().exponent))


def rounded(value: Decimal, decimals: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-decimals))


@st.composite
def decimal_terms(
    draw: st.DrawFn, *, count: int, max_places: int = MAX_PLACES, signed: bool = False
) -> tuple[list[Decimal], int]:
    """``count`` decimals with at most ``d`` places each (``d`` drawn, each term its own
    number of places up to it), whose magnitudes add up to less than 2**51 units of the
    ``d``-th decimal; and ``d``."""
    d = draw(st.integers(0, max_places))
    bound = 2**51 // count - 1
    drawn = draw(
        st.lists(
            st.tuples(st.integers(0, d), st.integers(-bound if signed else 0, bound)),
            min_size=count,
            max_size=count,
        )
    )
    return [Decimal(units // 10 ** (d - own)).scaleb(-own) for own, units in drawn], d


# -- the helper ---------------------------------------------------------------------------------


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_decimals_of_is_the_decimals_of_the_shortest_repr(value: float) -> None:
    assert decimals_of(value) == places(value)


def test_decimals_of_examples() -> None:
    assert [decimals_of(v) for v in (5.43488, 1e-05, 1.5e-07, 12.0, 0.0, -0.25, 1e16)] == [
        5,
        5,
        8,
        0,
        0,
        2,
        0,
    ]
    assert decimals_of(float("inf")) == decimals_of(float("nan")) == 0


@settings(max_examples=500)
@given(decimal_terms(count=2, signed=True))
def test_a_sum_or_difference_is_the_exact_decimal(case: tuple[list[Decimal], int]) -> None:
    (a, b), d = case
    total = decimal_sum(float(a), float(b))
    assert exact(total) == a + b
    assert exact(decimal_sum(float(a), -float(b))) == a - b
    assert places(total) <= d
    assert rounded(exact(total), d) == exact(total)


def test_the_noise_of_the_issue_is_gone() -> None:
    assert 0.1 + 0.2 != 0.3
    assert decimal_sum(0.1, 0.2) == 0.3
    assert repr(decimal_sum(5.43487, 0.00001)) == "5.43488"
    assert decimal_sum(60685.22, -60000.1) == 685.12  # a float difference: 685.1200000000026


def test_the_bound_itself_is_still_exact() -> None:
    """``|a| + |b|`` one unit short of 2**51 units of the 8th decimal."""
    a, b = Decimal(2**50).scaleb(-8), Decimal(2**50 - 1).scaleb(-8)
    assert exact(decimal_sum(float(a), float(b))) == a + b


@given(decimal_terms(count=40))
def test_a_running_sum_never_drifts(case: tuple[list[Decimal], int]) -> None:
    """Each partial sum is rounded, so the error of one step never reaches the next."""
    terms, d = case
    running = 0.0
    for index, term in enumerate(terms):
        running = decimal_sum(running, float(term))
        assert exact(running) == sum(terms[: index + 1], Decimal(0))
    assert places(running) <= d


# -- where it is used ---------------------------------------------------------------------------


@given(
    decimal_terms(count=60),
    st.lists(st.integers(0, 3 * MINUTE), min_size=60, max_size=60).map(sorted),
)
def test_built_bar_volumes_are_exact_sums_of_the_trade_sizes(
    case: tuple[list[Decimal], int], offsets: list[int]
) -> None:
    sizes, d = case
    builder = CandleBuilder("1")
    latest: dict[Millis, Candle] = {}
    for offset, size in zip(offsets, sizes, strict=True):
        for candle in builder.add_trade(T0 + offset, 100.25, float(size)):
            latest[candle.time] = candle
    for bar in latest.values():
        inside = [
            s for o, s in zip(offsets, sizes, strict=True) if bucket_start(T0 + o, "1") == bar.time
        ]
        assert exact(bar.volume) == sum(inside, Decimal(0)), bar
        assert places(bar.volume) <= d


#: (source, target, finer bars drawn): a few coarse buckets of each shape, months included.
SHAPES: list[tuple[Resolution, Resolution, int]] = [("1", "3", 10), ("1", "15", 40), ("D", "M", 40)]


@st.composite
def finer_stream(
    draw: st.DrawFn, source: Resolution, count: int
) -> tuple[list[Candle], list[Candle], int]:
    """Finer bars from ``T0`` on, some missing, each preceded by open revisions with other
    volumes; sometimes an older bar is revised after a newer one arrived (the aggregator's
    slow path). Returns the final bars, the stream delivering them, and ``d``."""
    volumes, d = draw(decimal_terms(count=3 * count))
    finals: list[Candle] = []
    stream: list[Candle] = []
    time = T0
    for index in range(count):
        revision, final = volumes[3 * index], volumes[3 * index + 1]
        if draw(st.booleans()):
            stream.append(Candle(time, 10.5, 11.0, 10.0, 10.75, float(revision)))
        bar = Candle(time, 10.5, 11.0, 10.0, 10.75, float(final), closed=index < count - 1)
        finals.append(bar)
        stream.append(bar)
        if finals[:-1] and draw(st.integers(0, 9)) == 0:  # a late revision of an older bar
            older = finals[-2]
            stream.insert(len(stream) - 1, Candle(older.time, 10.5, 11.0, 10.0, 10.75, 1.0))
            stream.insert(len(stream) - 1, older)
        time = next_bucket(time, source)
        if draw(st.integers(0, 4)) == 0:
            time = next_bucket(time, source)  # a hole
    return finals, stream, d


def _expected_volumes(finals: Sequence[Candle], target: Resolution) -> dict[Millis, Decimal]:
    """Per coarse bucket, the ``Decimal`` sum of its finer bars' final volumes."""
    expected: dict[Millis, Decimal] = {}
    for bar in finals:
        start = bucket_start(bar.time, target)
        expected[start] = expected.get(start, Decimal(0)) + exact(bar.volume)
    return expected


@pytest.mark.parametrize(("source", "target", "count"), SHAPES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_aggregated_volumes_are_exact_sums_of_the_finer_volumes(
    source: Resolution, target: Resolution, count: int, data: st.DataObject
) -> None:
    """Live (``CandleAggregator``, every update on the way) and batch (``aggregate``)."""
    finals, stream, d = data.draw(finer_stream(source, count))
    expected = _expected_volumes(finals, target)
    aggregator = CandleAggregator(target, source=source)
    latest: dict[Millis, Candle] = {}
    for candle in stream:
        for bar in aggregator.add_candle(candle):
            assert places(bar.volume) <= d, bar
            latest[bar.time] = bar
    for bars in (list(latest.values()), aggregate(stream, target, source=source)):
        assert {bar.time: exact(bar.volume) for bar in bars} == expected
        assert all(rounded(exact(bar.volume), d) == exact(bar.volume) for bar in bars)
