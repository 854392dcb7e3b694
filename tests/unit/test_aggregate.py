"""CandleBuilder and CandleAggregator: gap filling, closing, and incremental == batch == direct."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import groupby, pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketcast.feeds.aggregate import CandleAggregator, CandleBuilder, aggregate, can_aggregate
from marketcast.market import Candle
from marketcast.timeframes import (
    DAY_MS,
    MINUTE_MS,
    RESOLUTIONS,
    bucket_start,
    next_bucket,
    previous_bucket,
)
from marketcast.types import Millis, Resolution


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> Millis:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp() * 1000)


T0 = ms(2024, 5, 6, 10, 0)  # a Monday


# -- CandleBuilder --------------------------------------------------------------------------


def test_builder_first_trade_opens_a_bar() -> None:
    builder = CandleBuilder("1")
    assert builder.current is None
    assert builder.add_trade(T0 + 10_000, 100.0, 2.0) == [Candle(T0, 100, 100, 100, 100, 2.0)]


def test_builder_updates_the_open_bar_within_its_bucket() -> None:
    builder = CandleBuilder("1")
    builder.add_trade(T0 + 1_000, 100.0, 1.0)
    builder.add_trade(T0 + 2_000, 104.0, 1.0)
    out = builder.add_trade(T0 + 59_999, 99.0, 0.5)
    assert out == [Candle(T0, 100, 104, 99, 99, 2.5, closed=False)]


def test_builder_emits_closed_bar_then_new_open_bar_at_bucket_change() -> None:
    builder = CandleBuilder("1")
    builder.add_trade(T0, 100.0, 1.0)
    out = builder.add_trade(T0 + MINUTE_MS, 101.0, 3.0)
    assert out == [
        Candle(T0, 100, 100, 100, 100, 1.0, closed=True),
        Candle(T0 + MINUTE_MS, 101, 101, 101, 101, 3.0, closed=False),
    ]


def test_builder_fills_skipped_buckets_with_flat_closed_bars() -> None:
    builder = CandleBuilder("1")
    builder.add_trade(T0 + 5_000, 100.0, 1.0)
    builder.add_trade(T0 + 6_000, 102.0, 1.0)
    out = builder.add_trade(T0 + 3 * MINUTE_MS + 1, 105.0, 1.0)
    assert out == [
        Candle(T0, 100, 102, 100, 102, 2.0, closed=True),
        Candle(T0 + MINUTE_MS, 102, 102, 102, 102, 0.0, closed=True),
        Candle(T0 + 2 * MINUTE_MS, 102, 102, 102, 102, 0.0, closed=True),
        Candle(T0 + 3 * MINUTE_MS, 105, 105, 105, 105, 1.0),
    ]


def test_builder_ignores_trades_older_than_the_current_bucket() -> None:
    builder = CandleBuilder("5")
    builder.add_trade(T0 + 5 * MINUTE_MS, 100.0, 1.0)
    assert builder.add_trade(T0 + 4 * MINUTE_MS, 50.0, 9.0) == []
    assert builder.current == Candle(T0 + 5 * MINUTE_MS, 100, 100, 100, 100, 1.0)


@pytest.mark.parametrize(
    ("price", "size", "message"),
    [(float("nan"), 1.0, "price"), (0.0, 1.0, "price"), (1.0, -1.0, "size")],
)
def test_builder_rejects_bad_trades(price: float, size: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CandleBuilder("1").add_trade(T0, price, size)


def test_builder_month_boundary_fills_an_empty_month() -> None:
    builder = CandleBuilder("M")
    builder.add_trade(ms(2024, 1, 31, 23, 59, 59), 10.0, 1.0)
    out = builder.add_trade(ms(2024, 3, 1), 12.0, 1.0)
    assert out == [
        Candle(ms(2024, 1, 1), 10, 10, 10, 10, 1.0, closed=True),
        Candle(ms(2024, 2, 1), 10, 10, 10, 10, 0.0, closed=True),
        Candle(ms(2024, 3, 1), 12, 12, 12, 12, 1.0),
    ]


def test_builder_week_opens_on_monday_utc() -> None:
    builder = CandleBuilder("W")
    sunday_night = ms(2024, 5, 12, 23, 59, 59)
    builder.add_trade(sunday_night, 10.0, 1.0)
    out = builder.add_trade(ms(2024, 5, 13), 11.0, 1.0)
    assert [c.time for c in out] == [ms(2024, 5, 6), ms(2024, 5, 13)]
    assert [c.closed for c in out] == [True, False]


def test_close_until_closes_on_time_and_leaves_no_open_bar() -> None:
    builder = CandleBuilder("1")
    builder.add_trade(T0, 100.0, 1.0)
    assert builder.next_close_at == T0 + MINUTE_MS
    assert builder.close_until(T0 + MINUTE_MS - 1) == []
    out = builder.close_until(T0 + 2 * MINUTE_MS + 30_000)
    assert out == [
        Candle(T0, 100, 100, 100, 100, 1.0, closed=True),
        Candle(T0 + MINUTE_MS, 100, 100, 100, 100, 0.0, closed=True),
    ]
    assert builder.current is None
    assert builder.next_close_at == T0 + 3 * MINUTE_MS
    # Nothing is emitted twice, and the elapsed bucket without trades closes flat on time.
    assert builder.close_until(T0 + 2 * MINUTE_MS + 59_999) == []
    assert builder.close_until(T0 + 3 * MINUTE_MS) == [
        Candle(T0 + 2 * MINUTE_MS, 100, 100, 100, 100, 0.0, closed=True)
    ]
    # A trade in an already closed bucket is late; one in the next bucket opens it.
    assert builder.add_trade(T0 + 2 * MINUTE_MS + 59_999, 1.0, 1.0) == []
    assert builder.add_trade(T0 + 4 * MINUTE_MS, 99.0, 1.0) == [
        Candle(T0 + 3 * MINUTE_MS, 100, 100, 100, 100, 0.0, closed=True),
        Candle(T0 + 4 * MINUTE_MS, 99, 99, 99, 99, 1.0),
    ]


def test_close_until_on_an_empty_builder_emits_nothing() -> None:
    builder = CandleBuilder("1")
    assert builder.close_until(T0) == []
    assert builder.next_close_at is None


def test_seed_with_open_bar_continues_it() -> None:
    builder = CandleBuilder("15")
    builder.seed(Candle(T0, 100, 110, 90, 105, 7.0))
    assert builder.add_trade(T0 + 60_000, 111.0, 1.0) == [Candle(T0, 100, 111, 90, 111, 8.0)]


def test_seed_with_closed_bar_resumes_after_it() -> None:
    builder = CandleBuilder("1")
    builder.seed(Candle(T0, 100, 110, 90, 105, 7.0, closed=True))
    assert builder.current is None
    assert builder.add_trade(T0 + 30_000, 1.0, 1.0) == []
    assert builder.add_trade(T0 + 2 * MINUTE_MS, 106.0, 1.0) == [
        Candle(T0 + MINUTE_MS, 105, 105, 105, 105, 0.0, closed=True),
        Candle(T0 + 2 * MINUTE_MS, 106, 106, 106, 106, 1.0),
    ]


def test_seed_rejects_a_misaligned_candle() -> None:
    with pytest.raises(ValueError, match="not the open of a '5' bucket"):
        CandleBuilder("5").seed(Candle(T0 + 1, 1, 1, 1, 1, 0))


trades = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=6 * 60 * 60_000),  # offset within six hours
        st.integers(min_value=1, max_value=10_000).map(float),  # prices
        st.integers(min_value=0, max_value=100).map(float),  # integral sizes: exact sums
    ),
    min_size=1,
    max_size=200,
).map(sorted)


def _final(emitted: Sequence[Candle]) -> list[Candle]:
    """The last version of every bar, ascending, as a store replacing by open time keeps."""
    latest: dict[Millis, Candle] = {}
    for candle in emitted:
        latest[candle.time] = candle
    return list(latest.values())


@given(trades)
def test_builder_series_is_contiguous_and_matches_direct_computation(
    trade_list: list[tuple[int, float, float]],
) -> None:
    builder = CandleBuilder("5")
    emitted = [c for ts, p, s in trade_list for c in builder.add_trade(T0 + ts, p, s)]
    bars = _final(emitted)
    times = [c.time for c in bars]
    assert times == sorted(set(times))
    assert all(next_bucket(a, "5") == b for a, b in pairwise(times))
    assert [c.closed for c in bars] == [True] * (len(bars) - 1) + [False]
    for bar in bars:
        inside = [(p, s) for ts, p, s in trade_list if bucket_start(T0 + ts, "5") == bar.time]
        if inside:
            prices = [p for p, _ in inside]
            assert (bar.open, bar.high, bar.low, bar.close) == (
                prices[0],
                max(prices),
                min(prices),
                prices[-1],
            )
            assert bar.volume == sum(s for _, s in inside)
        else:
            assert bar.volume == 0
            assert bar.open == bar.high == bar.low == bar.close
    # Every closed bar is emitted closed exactly once, and nothing follows it for its time.
    closed_times = [c.time for c in emitted if c.closed]
    assert closed_times == sorted(set(closed_times))


busy_minutes = st.lists(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=MINUTE_MS - 1),
            st.integers(min_value=1, max_value=10_000).map(float),
            st.integers(min_value=0, max_value=100).map(float),
        ),
        min_size=1,
        max_size=3,
    ).map(sorted),
    min_size=1,
    max_size=40,
).map(lambda minutes: [(i * MINUTE_MS + t, p, s) for i, m in enumerate(minutes) for t, p, s in m])


@given(busy_minutes)
def test_aggregating_built_minutes_equals_building_directly(
    trade_list: list[tuple[int, float, float]],
) -> None:
    """Holds when every minute traded: a flat minute opening a coarse bucket carries the
    previous close, which a coarse builder never sees, so the two differ by design there."""
    minute, five = CandleBuilder("1"), CandleBuilder("5")
    minute_bars: list[Candle] = []
    five_bars: list[Candle] = []
    for ts, p, s in trade_list:
        minute_bars += minute.add_trade(T0 + ts, p, s)
        five_bars += five.add_trade(T0 + ts, p, s)
    assert aggregate(minute_bars, "5", source="1") == _final(five_bars)


# -- CandleAggregator -----------------------------------------------------------------------


def test_can_aggregate() -> None:
    assert can_aggregate("1", "3")
    assert can_aggregate("15", "60")
    assert can_aggregate("D", "W")
    assert can_aggregate("240", "W")
    assert can_aggregate("D", "M")
    assert can_aggregate("M", "M")
    assert not can_aggregate("W", "M")
    assert not can_aggregate("3", "5")
    assert not can_aggregate("5", "1")
    assert not can_aggregate("M", "W")
    with pytest.raises(ValueError, match="cannot aggregate 'W' candles into 'M'"):
        CandleAggregator("M", source="W")


def test_open_updates_replace_their_previous_version() -> None:
    agg = CandleAggregator("3", source="1")
    agg.add_candle(Candle(T0, 10, 50, 10, 40, 5.0))
    out = agg.add_candle(Candle(T0, 10, 20, 5, 15, 6.0))  # the same minute, revised
    assert out == [Candle(T0, 10, 20, 5, 15, 6.0)]
    out = agg.add_candle(Candle(T0 + MINUTE_MS, 15, 16, 14, 16, 1.0))
    assert out == [Candle(T0, 10, 20, 5, 16, 7.0)]
    out = agg.add_candle(Candle(T0, 10, 21, 5, 15, 6.5, closed=True))  # late revision of part 1
    assert out == [Candle(T0, 10, 21, 5, 16, 7.5)]


def test_coarse_bar_closes_when_its_last_finer_bar_closes() -> None:
    agg = CandleAggregator("3", source="1")
    agg.add_candle(Candle(T0, 1, 1, 1, 1, 1.0, closed=True))
    agg.add_candle(Candle(T0 + MINUTE_MS, 1, 1, 1, 1, 1.0, closed=True))
    assert agg.add_candle(Candle(T0 + 2 * MINUTE_MS, 1, 2, 1, 2, 1.0))[0].closed is False
    out = agg.add_candle(Candle(T0 + 2 * MINUTE_MS, 1, 2, 1, 2, 1.0, closed=True))
    assert out == [Candle(T0, 1, 2, 1, 2, 3.0, closed=True)]
    # Its bucket is final: a late finer bar for it is ignored.
    assert agg.add_candle(Candle(T0 + MINUTE_MS, 9, 9, 9, 9, 9.0, closed=True)) == []


def test_coarse_bar_closes_when_a_later_bucket_starts() -> None:
    agg = CandleAggregator("M", source="D")
    agg.add_candle(Candle(ms(2024, 2, 27), 1, 3, 1, 2, 1.0, closed=True))
    out = agg.add_candle(Candle(ms(2024, 3, 1), 2, 2, 2, 2, 1.0))
    assert out == [
        Candle(ms(2024, 2, 1), 1, 3, 1, 2, 1.0, closed=True),
        Candle(ms(2024, 3, 1), 2, 2, 2, 2, 1.0),
    ]


def test_aggregator_rejects_a_misaligned_source_candle() -> None:
    with pytest.raises(ValueError, match="not the open of a 'D' bucket"):
        CandleAggregator("W", source="D").add_candle(Candle(T0 + 1, 1, 1, 1, 1, 0))


def _direct(base: Sequence[Candle], source: Resolution, target: Resolution) -> list[Candle]:
    """The definition, with no incremental state: group by coarse bucket."""
    result: list[Candle] = []
    groups = [list(g) for _, g in groupby(base, key=lambda c: bucket_start(c.time, target))]
    for index, group in enumerate(groups):
        start = bucket_start(group[0].time, target)
        last_part = previous_bucket(next_bucket(start, target), source)
        complete = group[-1].time == last_part and group[-1].closed
        result.append(
            Candle(
                start,
                group[0].open,
                max(c.high for c in group),
                min(c.low for c in group),
                group[-1].close,
                sum(c.volume for c in group),
                closed=index < len(groups) - 1 or complete,
            )
        )
    return result


_price = st.integers(min_value=1, max_value=1000).map(float)
_ohlcv = st.tuples(_price, _price, _price, _price, _price)
#: One finer bar: whether a hole precedes it, its open revisions, its final values.
_bar_spec = st.tuples(st.integers(0, 9), st.lists(_ohlcv, max_size=2), _ohlcv)


def _candle(time: Millis, values: tuple[float, ...], closed: bool) -> Candle:
    o, c, a, b, volume = values
    return Candle(time, o, max(o, c, a, b), min(o, c, a, b), c, volume, closed)


@st.composite
def finer_series(
    draw: st.DrawFn, source: Resolution, target: Resolution, max_size: int
) -> tuple[list[Candle], list[Candle]]:
    """A base series (with holes, the last bar maybe open) and the stream that delivers it:
    every bar preceded by arbitrary open revisions, as an upstream sends them. It starts a
    few finer bars before a coarse boundary so that both ways of closing are exercised."""
    coarse = bucket_start(draw(st.integers(0, 40 * 365)) * DAY_MS, target)
    specs = draw(st.lists(_bar_spec, min_size=1, max_size=max_size))
    time = next_bucket(coarse, target)
    for _ in range(draw(st.integers(1, len(specs)))):
        time = previous_bucket(time, source)
    last_closed = draw(st.booleans())
    base: list[Candle] = []
    stream: list[Candle] = []
    for index, (hole, revisions, final_values) in enumerate(specs):
        if hole == 0:
            time = next_bucket(time, source)
        stream += [_candle(time, values, closed=False) for values in revisions]
        final = _candle(time, final_values, closed=index < len(specs) - 1 or last_closed)
        base.append(final)
        stream.append(final)
        time = next_bucket(time, source)
    return base, stream


CASES: list[tuple[Resolution, Resolution, int]] = [
    ("1", "3", 60),
    ("1", "5", 60),
    ("1", "15", 100),
    ("1", "60", 150),
    ("1", "D", 120),
    ("D", "W", 60),
    ("D", "M", 120),
]


@pytest.mark.parametrize(("source", "target", "max_size"), CASES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_incremental_equals_batch_equals_direct(
    source: Resolution, target: Resolution, max_size: int, data: st.DataObject
) -> None:
    base, stream = data.draw(finer_series(source, target, max_size))
    agg = CandleAggregator(target, source=source)
    emitted = [bar for candle in stream for bar in agg.add_candle(candle)]
    expected = _direct(base, source, target)
    assert _final(emitted) == expected
    assert aggregate(stream, target, source=source) == expected
    assert aggregate(base, target, source=source) == expected
    # Closed exactly once, and never revised after closing.
    seen_closed: set[Millis] = set()
    for bar in emitted:
        assert bar.time not in seen_closed
        if bar.closed:
            seen_closed.add(bar.time)
    assert [c.time for c in emitted] == sorted(c.time for c in emitted)


def test_every_resolution_can_aggregate_into_itself() -> None:
    for resolution in RESOLUTIONS:
        assert can_aggregate(resolution, resolution)


@pytest.mark.parametrize("resolution", ["1", "60", "D", "W", "M"])
def test_close_until_with_keep_builds_only_the_newest_flat_bars(resolution: Resolution) -> None:
    """A key idle for a long time: the work is bounded by ``keep``, not by the idle span."""
    builder = CandleBuilder(resolution)
    start = bucket_start(1_700_000_000_000, resolution)
    builder.add_trade(start, 100.0, 1.0)
    later = start
    for _ in range(40):
        later = next_bucket(later, resolution)
    emitted = builder.close_until(later, keep=5)
    assert (emitted[0].time, emitted[0].closed) == (start, True)  # the open bar, closed
    flats = emitted[1:]
    assert len(flats) == 5
    assert flats[-1].time < later
    assert next_bucket(flats[-1].time, resolution) == later
    unbounded = CandleBuilder(resolution)
    unbounded.add_trade(start, 100.0, 1.0)
    assert unbounded.close_until(later)[-5:] == flats
