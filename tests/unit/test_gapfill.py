"""SeriesSync (live stream + REST gap-fill) and PolledSeries (Twelve Data polls, 1 -> 3).

The property tests replay a true series through a lossy live stream (outages of any length)
or through polls at arbitrary moments, and check what a sink would see: every closed bar
exactly once, in order, with the true values — and for ``3`` the same bars a direct
aggregation of the true 1-minute series gives."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from marketcast.feeds.aggregate import aggregate
from marketcast.feeds.gapfill import SeriesSync
from marketcast.feeds.twelvedata_protocol import PolledSeries
from marketcast.market import Candle
from marketcast.timeframes import MINUTE_MS

T0 = 1_715_000_400_000  # a multiple of 3 minutes


def bar(i: int, close: float, *, closed: bool = True, volume: float = 1.0) -> Candle:
    return Candle(
        T0 + i * MINUTE_MS, 10.0, max(10.0, close), min(10.0, close), close, volume, closed
    )


def test_live_stream_without_gaps_passes_through() -> None:
    sync = SeriesSync("1")
    out = sync.on_live(bar(0, 11, closed=False)) + sync.on_live(bar(0, 12))
    out += sync.on_live(bar(1, 13, closed=False))
    assert out == [bar(0, 11, closed=False), bar(0, 12), bar(1, 13, closed=False)]
    assert not sync.syncing


def test_missed_close_is_detected_and_filled_before_newer_live_bars() -> None:
    sync = SeriesSync("1")
    sync.on_live(bar(0, 11, closed=False))
    assert sync.on_live(bar(3, 20, closed=False)) == []  # bar 0's close was missed
    assert sync.syncing
    assert sync.sync_from() == T0
    assert sync.on_live(bar(3, 21, closed=False)) == []  # held while syncing
    rest = [bar(0, 12), bar(1, 13), bar(2, 14), bar(3, 20, closed=False)]
    # The held versions of bar 3 were conflated: only the newest goes out after the rows.
    assert sync.finish_sync(rest) == [*rest, bar(3, 21, closed=False)]
    assert not sync.syncing
    assert sync.on_live(bar(2, 99)) == []  # a repeat of a delivered closed bar


def test_rest_lagging_keeps_syncing_until_the_upstream_has_the_bars() -> None:
    sync = SeriesSync("1")
    sync.on_live(bar(0, 11, closed=False))
    sync.on_live(bar(2, 20, closed=False))
    assert sync.finish_sync([bar(0, 12)]) == [bar(0, 12)]  # bar 1 still missing
    for _ in range(10):  # however long the REST API lags, nothing is made up
        assert sync.syncing
        assert sync.sync_from() == T0 + MINUTE_MS
        assert sync.finish_sync([]) == []
    assert sync.finish_sync([bar(1, 13), bar(2, 19, closed=False)]) == [
        bar(1, 13),
        bar(2, 19, closed=False),
        bar(2, 20, closed=False),
    ]
    assert not sync.syncing
    assert (sync.gave_up, sync.abandoned) == (0, 0)


def test_a_bar_is_never_closed_with_the_last_values_seen() -> None:
    """The issue's wrong closed bars: an open bar whose close was missed waits for the
    upstream's final version, however many fetches show it unconfirmed (still open)."""
    sync = SeriesSync("1")
    assert sync.on_live(bar(0, 11, closed=False)) == [bar(0, 11, closed=False)]
    sync.on_live(bar(1, 20, closed=False))  # bar 0's close was missed
    for _ in range(10):
        out = sync.finish_sync([bar(0, 11, closed=False)])  # REST: not final on its clock
        assert not [c for c in out if c.closed]
        assert sync.syncing
    final = bar(0, 15)  # its true high is above anything seen live
    assert sync.finish_sync([final, bar(1, 20, closed=False)]) == [
        final,
        bar(1, 20, closed=False),
        bar(1, 20, closed=False),
    ]


def test_giving_up_after_max_attempts_accepts_the_gap_without_closing_anything() -> None:
    sync = SeriesSync("1", max_attempts=2)
    sync.on_live(bar(0, 11, closed=False))
    sync.on_live(bar(2, 20, closed=False))
    assert sync.finish_sync([]) == []
    assert sync.syncing
    assert sync.finish_sync([]) == [bar(2, 20, closed=False)]
    assert (sync.gave_up, sync.abandoned) == (1, 1)
    assert not sync.syncing


def test_open_bar_missing_from_rest_is_abandoned_not_closed() -> None:
    """The upstream lists a newer bar but none for the open one: it has no final version."""
    sync = SeriesSync("1")
    sync.on_live(bar(0, 11, closed=False))
    sync.on_live(bar(1, 20, closed=False))
    assert sync.finish_sync([bar(1, 20, closed=False)]) == [
        bar(1, 20, closed=False),
        bar(1, 20, closed=False),
    ]
    assert sync.abandoned == 1


def test_seed_sets_the_state_without_emitting() -> None:
    sync = SeriesSync("1")
    sync.seed([bar(0, 1), bar(1, 2), bar(2, 3, closed=False)])
    assert sync.sync_from() == T0 + 2 * MINUTE_MS
    assert sync.on_live(bar(4, 5, closed=False)) == []  # bar 2 (and 3) were missed
    assert sync.syncing


def versions(i: int, final: float, revisions: int) -> list[Candle]:
    """What a live stream sends for bar ``i``: open revisions, then the closed bar."""
    return [bar(i, final - r - 1, closed=False, volume=r) for r in range(revisions)] + [
        bar(i, final, volume=revisions)
    ]


@settings(max_examples=80, deadline=None)
@given(
    finals=st.lists(st.integers(1, 50).map(float), min_size=2, max_size=40),
    revisions=st.integers(0, 3),
    lost=st.lists(st.booleans(), min_size=160, max_size=160),
)
def test_a_lossy_stream_plus_gap_fill_delivers_every_closed_bar_once(
    finals: list[float], revisions: int, lost: list[bool]
) -> None:
    truth = [bar(i, c, volume=revisions) for i, c in enumerate(finals)]
    stream = [v for i, c in enumerate(finals) for v in versions(i, c, revisions)]
    # The first bar after the series: a later frame is what reveals a gap at the end.
    stream.append(bar(len(finals), 1.0, closed=False))
    sync, delivered = SeriesSync("1"), []
    for n, event in enumerate(stream):
        if 0 < n < len(stream) - 1 and lost[n % len(lost)]:
            continue  # an outage: the event never arrives
        delivered += sync.on_live(event)
        if sync.syncing:  # REST answers with the truth as of this event
            now = event.time
            rows = [c for c in truth if c.time < now] + [event]
            start = sync.sync_from()
            delivered += sync.finish_sync([c for c in rows if start is None or c.time >= start])
    closed = [c for c in delivered if c.closed]
    first = (closed[0].time - T0) // MINUTE_MS if closed else 0
    assert closed == truth[first : first + len(closed)]
    assert closed[-1] == truth[-1] if closed else True
    times = [c.time for c in delivered]
    assert times == sorted(times)
    assert sync.gave_up == 0


@settings(max_examples=80, deadline=None)
@given(
    finals=st.lists(st.integers(1, 50).map(float), min_size=2, max_size=30),
    lost=st.lists(st.booleans(), min_size=90, max_size=90),
    lags=st.lists(st.integers(0, 3), min_size=20, max_size=20),
)
def test_a_lagging_rest_api_never_makes_a_closed_bar_up(
    finals: list[float], lost: list[bool], lags: list[int]
) -> None:
    """REST answers that lag behind the stream by a few bars, whose newest row is open
    (not yet final on the upstream's clock): what goes out closed is the truth, once."""
    truth = [bar(i, c, volume=2) for i, c in enumerate(finals)]
    stream = [v for i, c in enumerate(finals) for v in versions(i, c, 2)]
    stream.append(bar(len(finals), 1.0, closed=False))
    sync, delivered, fetches = SeriesSync("1"), [], 0
    for n, event in enumerate(stream):
        if 0 < n < len(stream) - 1 and lost[n % len(lost)]:
            continue
        delivered += sync.on_live(event)
        known = (event.time - T0) // MINUTE_MS  # bars before this one exist upstream
        while sync.syncing:
            lag = lags[fetches % len(lags)] if fetches < 3 * len(lags) else 0
            fetches += 1
            start = sync.sync_from()
            visible = [c for c in truth[: max(0, known - lag)] if start is None or c.time >= start]
            if visible and lag:  # the newest row of a lagging answer is not yet final
                visible[-1] = replace(visible[-1], high=visible[-1].high - 1, closed=False)
            delivered += sync.finish_sync(visible)
    closed = [c for c in delivered if c.closed]
    first = (closed[0].time - T0) // MINUTE_MS if closed else 0
    assert closed == truth[first : first + len(closed)]
    assert [c.time for c in delivered] == sorted(c.time for c in delivered)


def test_polled_series_closes_the_previous_bar_when_a_new_one_appears() -> None:
    series = PolledSeries("1")
    assert series.apply([bar(0, 1), bar(1, 2, closed=False)]) == [
        bar(0, 1),
        bar(1, 2, closed=False),
    ]
    assert series.cursor() == T0 + MINUTE_MS
    assert series.apply([bar(1, 3), bar(2, 4, closed=False)]) == [
        bar(1, 3),
        bar(2, 4, closed=False),
    ]


@settings(max_examples=80, deadline=None)
@given(
    finals=st.lists(st.integers(1, 50).map(float), min_size=4, max_size=45),
    polls=st.lists(st.integers(0, 4), min_size=1, max_size=45),
)
def test_polled_three_minute_bars_equal_direct_aggregation(
    finals: list[float], polls: list[int]
) -> None:
    """Acceptance 5 for Twelve Data's 3: polls at arbitrary moments of a 1-minute series
    (with the newest bar still open, as the API returns it) give the same closed 3-minute
    bars as aggregating the final 1-minute bars directly."""
    truth = [bar(i, c, volume=i % 4) for i, c in enumerate(finals)]
    series, delivered = PolledSeries("3"), []
    now = 1  # bars 0..now-1 are final, bar `now` is open with a partial value
    for step in [*polls, len(truth)]:
        now = min(now + step, len(truth))
        start = series.cursor()
        rows = [c for c in truth[:now] if start is None or c.time >= start]
        if now < len(truth):
            rows.append(replace(truth[now], close=truth[now].close + 0.5, closed=False))
        if not rows:
            continue
        rows = [*rows[:-1], replace(rows[-1], closed=False)]
        delivered += series.apply(rows)
    closed = {c.time: c for c in delivered if c.closed}
    # The API shows its newest bar as open: the last true bar is never known to be final.
    expected = [c for c in aggregate(truth[:-1], "3", source="1") if c.closed]
    first = min(closed) if closed else None
    assert [closed[t] for t in sorted(closed)] == [
        c for c in expected if first is not None and c.time >= first
    ]
    assert [c.time for c in delivered] == sorted(c.time for c in delivered)
