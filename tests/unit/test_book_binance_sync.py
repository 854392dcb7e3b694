"""``marketcast.book.binance_sync``: Binance's diff-depth join, rule by rule, then under faults.

Why both: each rule of the documented procedure (stale events dropped, the first event kept
straddling ``lastUpdateId + 1``, ``U == previous u + 1`` after it, a snapshot too old fetched
again, the bounded buffer) gets a small test with the ids written out; the central property
then drives the state machine with ``sim_book``'s events through ``FaultyDepthStream`` (every
fault on, many seeds, thousands of steps) and checks, at every step where it says it is
joined, that its book is the true book at its ``seq``, decimal for decimal, and that no
``Applied`` ever skips a ``seq`` a client holds.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from decimal import Decimal

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketcast.book.binance_sync import (
    MAX_BUFFER,
    Applied,
    BinanceBookSync,
    Buffered,
    DepthSnapshot,
    DepthUpdate,
    Dropped,
    NeedSnapshot,
    Reset,
    depth_stream,
    parse_depth_snapshot,
    parse_depth_update,
)
from marketcast.book.levels import BookFormatError, Level, OrderBook, changes, decimal_rows
from marketcast.book.sim_book import Faults, FaultyDepthStream, SimBook

SYMBOL = "BNBBTC"

#: The documentation's example event, as a combined stream's ``data``.
DOC_EVENT = (
    b'{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,'
    b'"b":[["0.0024","10"]],"a":[["0.0026","100"]]}'
)
DOC_SNAPSHOT = (
    b'{"lastUpdateId":1027024,"bids":[["4.00000000","431.00000000"]],'
    b'"asks":[["4.00000200","12.00000000"]]}'
)


def ev(
    first: int,
    final: int,
    bids: list[Level] | None = None,
    asks: list[Level] | None = None,
    time: int = 0,
) -> DepthUpdate:
    """An event ``U..u``; by default it sets bid ``u`` to 1 (so each event leaves a trace)."""
    return DepthUpdate(
        SYMBOL, time or final * 10, first, final, [(float(final), 1.0)] if bids is None else bids,
        asks or [],
    )  # fmt: skip


def snap(
    last: int, bids: list[Level] | None = None, asks: list[Level] | None = None
) -> DepthSnapshot:
    return DepthSnapshot(
        last, bids if bids is not None else [(1.0, 5.0)], asks or [(10_000.0, 5.0)]
    )


def buffered(sync: BinanceBookSync, *events: DepthUpdate) -> None:
    """Feed events to a sync that is not joined; the first asks for a snapshot."""
    for event in events:
        assert isinstance(sync.on_event(event), NeedSnapshot | Buffered)


# -- parsing ------------------------------------------------------------------------------


def test_parse_the_documented_event_and_snapshot() -> None:
    assert parse_depth_update(orjson.loads(DOC_EVENT)) == DepthUpdate(
        "BNBBTC", 1672515782136, 157, 160, [(0.0024, 10.0)], [(0.0026, 100.0)]
    )
    assert parse_depth_snapshot(orjson.loads(DOC_SNAPSHOT)) == DepthSnapshot(
        1027024, [(4.0, 431.0)], [(4.000002, 12.0)]
    )
    assert depth_stream("BNBBTC") == "bnbbtc@depth@100ms"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"e": "depth"}, "expected field 'e' to be 'depthUpdate', got 'depth'"),
        ({"U": 161}, "expected first update id U <= final update id u, got U=161, u=160"),
        ({"u": "160"}, "expected field 'u' to be an integer, got '160'"),
        ({"U": True}, "expected field 'U' to be an integer, got True"),
        ({"E": None}, "expected field 'E' to be an integer, got None"),
        ({"s": 5}, "expected field 's' to be a string, got 5"),
        ({"b": [["0.0024"]]}, "b[0]: expected a level [price, quantity] of two decimal strings"),
        ({"a": [["0.0026", "-1"]]}, "a[0]: expected a level's quantity to be a finite decimal"),
        ({"a": None}, "expected 'a' to be an array of levels, got None"),
    ],
)
def test_parse_event_refusals_say_what_was_expected_and_what_came(
    change: dict[str, object], expected: str
) -> None:
    data = orjson.loads(DOC_EVENT) | change
    with pytest.raises(BookFormatError) as caught:
        parse_depth_update(data)
    assert expected in str(caught.value)


def test_parse_snapshot_refusals() -> None:
    with pytest.raises(BookFormatError, match="expected a depth snapshot object"):
        parse_depth_snapshot([1, 2])
    with pytest.raises(BookFormatError, match="'lastUpdateId' to be an integer, got None"):
        parse_depth_snapshot({"bids": [], "asks": []})
    with pytest.raises(BookFormatError, match=r"bids\[0\]: expected a level's price"):
        parse_depth_snapshot({"lastUpdateId": 1, "bids": [["nan", "1"]], "asks": []})
    with pytest.raises(BookFormatError, match="expected a depthUpdate object, got 'x'"):
        parse_depth_update("x")


# -- the join, rule by rule ---------------------------------------------------------------


def test_first_event_asks_for_a_snapshot_then_events_are_buffered() -> None:
    sync = BinanceBookSync(SYMBOL)
    assert not sync.joined
    assert sync.seq is None
    assert sync.on_event(ev(100, 102)) == NeedSnapshot("no book yet: first buffered event U=100")
    assert sync.on_event(ev(103, 105)) == Buffered(2)
    assert sync.on_event(ev(106, 108)) == Buffered(3)
    assert sync.buffered == 3


def test_join_drops_events_up_to_the_snapshot_and_applies_the_rest() -> None:
    sync = BinanceBookSync(SYMBOL)
    buffered(sync, ev(100, 102), ev(103, 105), ev(106, 108))
    out = sync.on_snapshot(snap(104, bids=[(1.0, 5.0), (102.0, 9.0)]))
    # [100..102] is dropped (u <= 104); [103..105] straddles 105; [106..108] continues it.
    assert out == Reset(
        108, [[108.0, 1.0], [105.0, 1.0], [102.0, 9.0], [1.0, 5.0]], [[10_000.0, 5.0]]
    )
    assert sync.joined
    assert sync.seq == 108
    assert sync.buffered == 0
    # the event dropped at the join left no trace: bid 102 is the snapshot's 9, not 1


def test_stale_and_repeated_events_are_dropped_once_joined() -> None:
    sync = BinanceBookSync(SYMBOL)
    buffered(sync, ev(100, 102))
    assert isinstance(sync.on_snapshot(snap(102)), Reset)
    assert sync.seq == 102
    assert sync.on_event(ev(100, 102)) == Dropped("stale: u=102 <= book seq 102")
    assert sync.on_event(ev(90, 95)) == Dropped("stale: u=95 <= book seq 102")
    out = sync.on_event(ev(103, 104, asks=[(50.0, 2.0)], time=77))
    assert out == Applied(102, 104, [(104.0, 1.0)], [(50.0, 2.0)], 77)
    assert sync.on_event(ev(103, 104)) == Dropped("stale: u=104 <= book seq 104")
    assert sync.dropped == 3
    assert sync.seq == 104


def test_first_event_after_the_snapshot_must_straddle_it() -> None:
    # snapshot newer than everything buffered: joined at once, the next event must straddle
    sync = BinanceBookSync(SYMBOL)
    buffered(sync, ev(100, 102))
    assert sync.on_snapshot(snap(200)) == Reset(200, [[1.0, 5.0]], [[10_000.0, 5.0]])
    assert sync.on_event(ev(150, 199)) == Dropped("stale: u=199 <= book seq 200")
    out = sync.on_event(ev(195, 210))  # U <= 201 <= u
    assert isinstance(out, Applied)
    assert (out.prev_seq, out.seq) == (200, 210)

    # one that starts after lastUpdateId + 1 does not straddle: updates were missed
    sync = BinanceBookSync(SYMBOL)
    buffered(sync, ev(100, 102))
    assert isinstance(sync.on_snapshot(snap(200)), Reset)
    assert sync.on_event(ev(202, 205)) == NeedSnapshot(
        "gap: expected U=201, got U=202 u=205 (1 updates missed)"
    )
    assert not sync.joined
    assert sync.resyncs == 1


def test_after_the_first_event_each_U_must_be_the_previous_u_plus_1() -> None:
    sync = BinanceBookSync(SYMBOL)
    buffered(sync, ev(100, 102))
    assert isinstance(sync.on_snapshot(snap(101)), Reset)  # [100..102] straddles 102
    assert sync.seq == 102
    assert isinstance(sync.on_event(ev(103, 110)), Applied)
    # after the first event, straddling is not enough: U must be exactly 111
    assert sync.on_event(ev(105, 115)) == NeedSnapshot("overlap: expected U=111, got U=105 u=115")
    assert sync.resyncs == 1

    sync = BinanceBookSync(SYMBOL)
    buffered(sync, ev(100, 102))
    assert isinstance(sync.on_snapshot(snap(101)), Reset)
    assert sync.on_event(ev(106, 108)) == NeedSnapshot(
        "gap: expected U=103, got U=106 u=108 (3 updates missed)"
    )
    # the event that revealed the gap is kept for the next join, and so are the next ones
    assert sync.buffered == 1
    assert sync.on_event(ev(109, 111)) == Buffered(2)
    out = sync.on_snapshot(snap(107))
    assert isinstance(out, Reset)
    assert out.seq == 111
    assert [p for p, _ in out.bids] == [111.0, 108.0, 1.0]  # not 102: the book was rebuilt


def test_a_snapshot_too_old_for_the_first_buffered_event_is_fetched_again() -> None:
    sync = BinanceBookSync(SYMBOL)
    buffered(sync, ev(100, 102), ev(103, 105))
    assert sync.on_snapshot(snap(98)) == NeedSnapshot(
        "snapshot too old: lastUpdateId=98, first buffered event U=100"
    )
    assert not sync.joined
    assert sync.buffered == 2
    # lastUpdateId == U - 1: the first event continues the snapshot exactly, so it joins (the
    # documentation's "lastUpdateId < U" would fetch again)
    out = sync.on_snapshot(snap(99))
    assert isinstance(out, Reset)
    assert out.seq == 105


def test_a_gap_inside_the_buffer_fails_the_join_and_keeps_what_follows_it() -> None:
    sync = BinanceBookSync(SYMBOL)
    buffered(sync, ev(100, 102), ev(106, 108), ev(109, 110))
    assert sync.on_snapshot(snap(101)) == NeedSnapshot(
        "buffered events do not continue the snapshot: gap: expected U=103, got U=106 u=108 "
        "(3 updates missed)"
    )
    assert not sync.joined
    assert sync.buffered == 2
    assert sync.resyncs == 0  # never joined, never published
    # a snapshot inside the gap is not straddled by any buffered event either
    assert isinstance(sync.on_snapshot(snap(104)), NeedSnapshot)
    assert isinstance(sync.on_snapshot(snap(106)), Reset)
    assert sync.seq == 110


def test_buffered_events_are_ordered_by_id_and_repeats_dropped() -> None:
    sync = BinanceBookSync(SYMBOL)
    assert isinstance(sync.on_event(ev(103, 105)), NeedSnapshot)
    assert sync.on_event(ev(100, 102)) == Buffered(2)  # swapped in transit
    assert sync.on_event(ev(103, 105)) == Dropped("repeat of buffered event U=103 u=105")
    assert sync.on_event(ev(106, 108)) == Buffered(3)
    out = sync.on_snapshot(snap(101))
    assert isinstance(out, Reset)
    assert out.seq == 108


def test_the_buffer_is_bounded_and_overflowing_asks_again() -> None:
    sync = BinanceBookSync(SYMBOL, max_buffer=5)
    events = [ev(n * 10, n * 10 + 9) for n in range(1, 9)]
    assert isinstance(sync.on_event(events[0]), NeedSnapshot)
    for event in events[1:5]:
        assert isinstance(sync.on_event(event), Buffered)
    # the sixth drops the oldest: the snapshot asked for may now be too old, so ask again
    out = sync.on_event(events[5])
    assert out == NeedSnapshot(
        "buffer full (5 events): the oldest dropped, so a snapshot asked for before may be "
        "too old, or lost"
    )
    assert sync.on_event(events[6]) == Buffered(5)  # one new request per answer
    assert sync.buffered == 5
    assert sync.overflows == 2
    # the answer to the first request covered the first event only: too old now
    assert sync.on_snapshot(snap(15)) == NeedSnapshot(
        "snapshot too old: lastUpdateId=15, first buffered event U=30"
    )
    joined = sync.on_snapshot(snap(55))
    assert isinstance(joined, Reset)
    assert joined.seq == 79
    assert MAX_BUFFER == 1_000
    with pytest.raises(ValueError, match="max_buffer must be at least 1, got 0"):
        BinanceBookSync(SYMBOL, max_buffer=0)


def test_a_reconnect_discards_the_book_and_the_buffer() -> None:
    sync = BinanceBookSync(SYMBOL)
    buffered(sync, ev(100, 102))
    assert isinstance(sync.on_snapshot(snap(101)), Reset)
    sync.on_reconnect()
    assert not sync.joined
    assert sync.seq is None
    assert sync.buffered == 0
    assert sync.resyncs == 1
    assert isinstance(sync.on_event(ev(150, 152)), NeedSnapshot)


def test_a_snapshot_while_joined_is_not_needed() -> None:
    sync = BinanceBookSync(SYMBOL)
    buffered(sync, ev(100, 102))
    assert isinstance(sync.on_snapshot(snap(101)), Reset)
    assert sync.on_snapshot(snap(500)) == Dropped(
        "already joined at seq 102; snapshot 500 not needed"
    )
    assert sync.seq == 102


def test_removing_a_level_the_book_does_not_hold_is_applied_as_normal() -> None:
    sync = BinanceBookSync(SYMBOL)
    buffered(sync, ev(100, 102, bids=[(7.0, 0.0)], asks=[(20_000.0, 0.0)]))
    out = sync.on_snapshot(snap(99))
    assert out == Reset(102, [[1.0, 5.0]], [[10_000.0, 5.0]])


def test_an_event_of_another_symbol_is_a_wiring_error() -> None:
    sync = BinanceBookSync("BTCUSDT")
    with pytest.raises(
        BookFormatError, match="expected a depthUpdate of BTCUSDT, got one of 'BNBBTC'"
    ):
        sync.on_event(ev(1, 2))


# -- the central property: an exact book under every fault --------------------------------


@dataclass
class Run:
    steps: int = 0
    checks: int = 0
    joined_steps: int = 0
    resets: int = 0
    applied: int = 0
    need: int = 0
    dropped: int = 0
    snapshots: int = 0
    reconnects: int = 0
    reasons: set[str] = field(default_factory=set)


def drive(
    seed: int,
    steps: int,
    faults: Faults,
    *,
    levels: tuple[int, int] = (20, 60),
    reconnect: float = 0.003,
    vol: float = 3e-5,
    delay: int = 3,
    max_buffer: int = MAX_BUFFER,
) -> Run:
    """The adapter's loop, without I/O: events as they arrive (through JSON), a snapshot
    answered 0 to ``delay`` steps after it is asked for (events keep arriving meanwhile), the odd
    reconnect (events lost while down). Two clients follow: diff mode (``Reset`` + ``Applied``)
    and levels mode (top 10, turned into diffs by ``changes``)."""
    rng = random.Random(seed)
    sim = SimBook("BTCUSDT", 60_000.0, tick="0.01", lot="0.00001", seed=seed, levels=levels)
    stream = FaultyDepthStream(sim, faults, seed=seed, history=128)
    sync = BinanceBookSync("BTCUSDT", max_buffer=max_buffer)
    run = Run()
    diff_client: OrderBook | None = None
    top_client = OrderBook()
    top_before: tuple[list[list[float]], list[list[float]]] = ([], [])
    truth: dict[int, list[list[tuple[Decimal, Decimal]]]] = {}
    exact: dict[float, Decimal] = {}  # Decimal(str(x)), memoised: the same prices recur
    checked: int | None = None
    fetch_in: int | None = None
    down = 0
    mid = 60_000.0

    def decimals(rows: list[list[float]]) -> list[tuple[Decimal, Decimal]]:
        out = []
        for price, qty in rows:
            for x in (price, qty):
                if x not in exact:
                    exact[x] = Decimal(str(x))
            out.append((exact[price], exact[qty]))
        return out

    def check() -> None:
        """The served book (after each change) is the true book at its seq, decimal-exact."""
        nonlocal top_before, checked
        seq = sync.seq
        assert seq is not None
        if seq not in truth:
            true = stream.true_at(seq)
            assert true is not None, f"seq {seq} is no state the true book was ever in"
            truth[seq] = [decimal_rows(true[0]), decimal_rows(true[1])]
        bids, asks = sync.book.snapshot()
        assert [decimals(bids), decimals(asks)] == truth[seq]
        assert diff_client is not None
        assert diff_client == sync.book
        top = sync.book.top(10)
        top_client.apply(*changes(top_before, top))
        assert top_client.snapshot() == top
        top_before = top
        checked = seq
        run.checks += 1

    def handle(out: object) -> None:
        nonlocal diff_client, fetch_in
        if isinstance(out, NeedSnapshot):
            run.need += 1
            run.reasons.add(out.reason.split(":")[0])
            if fetch_in is None:
                fetch_in = rng.randint(0, delay)
        elif isinstance(out, Reset):
            run.resets += 1
            diff_client = OrderBook(out.bids, out.asks, out.seq)
            check()
        elif isinstance(out, Applied):
            run.applied += 1
            # no unnoticed gap: a diff always continues the seq the client holds
            assert diff_client is not None
            assert out.prev_seq == diff_client.seq
            diff_client.apply(out.bids, out.asks)
            diff_client.seq = out.seq
            check()
        elif isinstance(out, Dropped):
            run.dropped += 1
        else:
            assert isinstance(out, Buffered)

    for step in range(steps):
        run.steps += 1
        mid *= math.exp(rng.gauss(0, vol))
        delivered = stream.step(mid, 1_700_000_000_000 + step * 100)
        if down:
            down -= 1  # disconnected: these events are never received
        elif rng.random() < reconnect:
            run.reconnects += 1
            sync.on_reconnect()
            diff_client = None
            down = rng.randint(1, 5)
        else:
            for payload in delivered:
                handle(sync.on_event(parse_depth_update(orjson.loads(orjson.dumps(payload)))))
        if fetch_in is not None:
            if fetch_in == 0:
                fetch_in = None
                run.snapshots += 1
                body = orjson.loads(orjson.dumps(stream.snapshot(limit=1000)))
                handle(sync.on_snapshot(parse_depth_snapshot(body)))
            else:
                fetch_in -= 1
        if sync.joined:  # unchanged since its last check
            run.joined_steps += 1
            assert sync.seq == checked
            assert sync.book == diff_client
    return run


ALL_FAULTS = Faults(drop=0.03, duplicate=0.03, reorder=0.05, lagging_snapshot=0.5, max_lag=6)


@pytest.mark.parametrize("seed", range(10))
def test_the_joined_book_is_the_true_book_under_every_fault(seed: int) -> None:
    run = drive(seed, 1_200, ALL_FAULTS)
    assert run.checks > 800  # joined most of the time, and checked at each change
    assert run.joined_steps > run.steps * 0.6
    assert run.resets >= 10
    assert run.applied > 600
    assert run.dropped > 10
    assert {"gap", "no book yet"} <= run.reasons


def test_every_rule_is_exercised_across_the_seeds() -> None:
    """The property above is not vacuous: the faults make every path of the join happen."""
    reasons: set[str] = set()
    totals = Run()
    for seed in range(100, 106):
        run = drive(seed, 600, ALL_FAULTS, reconnect=0.01)
        reasons |= run.reasons
        totals.reconnects += run.reconnects
        totals.snapshots += run.snapshots
    assert {"gap", "no book yet", "snapshot too old"} <= reasons
    assert totals.reconnects > 10
    assert totals.snapshots > 50


def test_full_depth_books_under_faults() -> None:
    """The default 50-200 levels a side and a faster walk (whole sides replaced at once)."""
    for seed in (1, 2):
        run = drive(seed, 400, ALL_FAULTS, levels=(50, 200), vol=1e-4)
        assert run.checks > 200


def test_overflowing_buffers_under_faults() -> None:
    """Snapshots slow to come and a buffer of 4 events: the oldest are dropped, the snapshot
    asked for is often too old by the time it comes, and the book is still never wrong."""
    reasons: set[str] = set()
    for seed in (7, 8):
        run = drive(seed, 500, ALL_FAULTS, delay=8, max_buffer=4)
        reasons |= run.reasons
        assert run.checks > 100
    assert {"buffer full (4 events)", "snapshot too old"} <= reasons


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    drop=st.floats(0, 0.3),
    duplicate=st.floats(0, 0.3),
    reorder=st.floats(0, 0.3),
    lagging=st.floats(0, 1),
    max_lag=st.integers(1, 20),
)
def test_any_fault_rates(
    seed: int, drop: float, duplicate: float, reorder: float, lagging: float, max_lag: int
) -> None:
    run = drive(seed, 300, Faults(drop, duplicate, reorder, lagging, max_lag), reconnect=0.01)
    assert run.steps == 300  # every check inside drive held
