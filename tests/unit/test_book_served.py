"""The books a worker serves (``book.served``): diff frames a client can prove complete,
levels frames at most once per interval, snapshots consistent with the stream; and the whole
pure path, a faulty upstream through ``BinanceBookSync`` to a client's book, exact."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from itertools import pairwise
from typing import Any

import orjson
import pytest

from marketcast.book.binance_sync import (
    Applied,
    BinanceBookSync,
    NeedSnapshot,
    Reset,
    parse_depth_snapshot,
    parse_depth_update,
)
from marketcast.book.levels import OrderBook, decimal_rows
from marketcast.book.served import ServedBooks
from marketcast.book.sim_book import Faults, FaultyDepthStream, SimBook
from marketcast.wire import Frame

DIFF, LEVELS = "orderbook:diff", "orderbook:levels5"


class Clock:
    """Time by hand, and the callbacks ``call_later`` scheduled, run by ``advance``."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, Callable[[], None], list[bool]]] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        cancelled = [False]
        self.timers.append((self.now + delay, callback, cancelled))

        class Handle:
            def cancel(self) -> None:
                cancelled[0] = True

        return Handle()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [t for t in self.timers if t[0] <= self.now]
        self.timers = [t for t in self.timers if t[0] > self.now]
        for _, callback, cancelled in sorted(due, key=lambda t: t[0]):
            if not cancelled[0]:
                callback()


def payload(frame: Frame) -> dict[str, Any]:
    message = orjson.loads(frame.text)
    assert message["type"] == "orderbook.update"
    result: dict[str, Any] = message["payload"]
    return result


def served(clock: Clock) -> tuple[ServedBooks, list[Frame]]:
    frames: list[Frame] = []
    return ServedBooks(
        frames.append, clock.call_later, lambda: clock.now, update_type="orderbook.update"
    ), frames


def reset(seq: int) -> Reset:
    return Reset(seq, [[100.0, 1.0], [99.5, 2.0], [99.0, 3.0]], [[100.5, 1.5], [101.0, 2.5]])


def test_diff_topics_get_the_reset_whole_then_each_change_with_its_seqs() -> None:
    clock = Clock()
    books, frames = served(clock)
    books.watch("BTC", DIFF, "diff")
    books.on_applied("BTC", Applied(10, 11, [(100.0, 5.0)], [], 1))  # not joined: nothing
    assert frames == []
    assert books.snapshot("BTC", DIFF) is None
    books.on_reset("BTC", reset(20), 1000)
    books.on_applied("BTC", Applied(20, 23, [(100.0, 0.0), (99.7, 4.0)], [(100.5, 1.0)], 1001))
    first, second = (payload(f) for f in frames)
    assert first["reset"] is True
    assert (first["seq"], first["prev_seq"]) == (20, None)
    assert first["bids"] == [[100.0, 1.0], [99.5, 2.0], [99.0, 3.0]]
    assert (second["prev_seq"], second["seq"], second["time"]) == (20, 23, 1001)
    assert second["bids"] == [[100.0, 0.0], [99.7, 4.0]]
    assert second["asks"] == [[100.5, 1.0]]
    assert [(f.topic, f.order, f.final) for f in frames] == [(DIFF, 20, True), (DIFF, 23, True)]
    # A client replaying the frames holds the served book.
    client = OrderBook()
    for message in map(payload, frames):
        if message.get("reset"):
            client.replace(message["bids"], message["asks"], message["seq"])
        else:
            assert message["prev_seq"] == client.seq
            client.apply(message["bids"], message["asks"])
            client.seq = message["seq"]
    assert client == books.book("BTC")


def test_levels_go_out_at_most_once_per_interval_newest_first_and_only_when_changed() -> None:
    clock = Clock()
    books, frames = served(clock)
    books.watch("BTC", LEVELS, "levels", depth=2)
    books.on_reset("BTC", reset(20), 1000)
    assert [payload(f)["bids"] for f in frames] == [[[100.0, 1.0], [99.5, 2.0]]]
    for seq, qty in ((21, 7.0), (22, 8.0), (23, 9.0)):  # within the interval: held back
        clock.advance(0.01)
        books.on_applied("BTC", Applied(seq - 1, seq, [(100.0, qty)], [], 1000 + seq))
    assert len(frames) == 1
    clock.advance(0.1)
    newest = payload(frames[-1])
    assert len(frames) == 2
    assert newest["bids"][0] == [100.0, 9.0]
    assert newest["seq"] == 23
    assert (frames[-1].order, frames[-1].final) == (None, False)  # latest wins in a queue
    clock.advance(0.2)
    books.on_applied("BTC", Applied(23, 24, [(98.0, 1.0)], [], 1024))  # below the top 2
    assert len(frames) == 2  # nothing changed in the top: nothing sent
    books.unwatch("BTC", LEVELS)
    books.on_applied("BTC", Applied(24, 25, [(100.0, 1.0)], [], 1025))
    clock.advance(1.0)
    assert len(frames) == 2


def test_late_timers_do_not_let_a_steady_cadence_drift_behind() -> None:
    """Updates every 100 ms, each half a millisecond ahead of the interval's end, and every
    deferred flush run 2 ms late (timers wait whole milliseconds on a busy loop): each update
    goes out in its own frame 2.5 ms after it came, forty intervals on as at the first."""
    clock = Clock()
    sent_at: list[float] = []
    frames: list[Frame] = []

    def publish(frame: Frame) -> None:
        frames.append(frame)
        sent_at.append(clock.now)

    books = ServedBooks(
        publish, clock.call_later, lambda: clock.now, update_type="orderbook.update"
    )
    books.watch("BTC", LEVELS, "levels", depth=2)
    books.on_reset("BTC", reset(20), 1000)  # sent at once, at 0
    arrived = []
    for k in range(1, 41):
        clock.advance(0.1 - (clock.now - (k - 1) * 0.1) - 0.0005)  # to k * 0.1 - 0.5 ms
        arrived.append(clock.now)
        books.on_applied("BTC", Applied(19 + k, 20 + k, [(100.0, k + 0.5)], [], 1000 + k))
        clock.advance(0.0025)  # the flush, due in 0.5 ms, runs 2 ms late
    assert [payload(f)["seq"] for f in frames[1:]] == list(range(21, 61)), "one frame each"
    waits = [sent - came for sent, came in zip(sent_at[1:], arrived, strict=True)]
    assert max(waits) == pytest.approx(0.0025), waits
    # Still at most one frame per interval: the frames are 100 ms apart.
    assert min(b - a for a, b in pairwise(sent_at[1:])) == pytest.approx(0.1)


def test_unwatching_cancels_a_pending_levels_frame() -> None:
    clock = Clock()
    books, frames = served(clock)
    books.watch("BTC", LEVELS, "levels", depth=2)
    books.on_reset("BTC", reset(20))
    books.on_applied("BTC", Applied(20, 21, [(100.0, 7.0)], [], 1))
    books.unwatch("BTC", LEVELS)
    clock.advance(1.0)
    assert len(frames) == 1
    assert not books.watched("BTC")


@pytest.mark.parametrize("bad", [0, -1])
def test_a_levels_topic_needs_a_depth(bad: int) -> None:
    books, _ = served(Clock())
    with pytest.raises(ValueError, match="depth >= 1"):
        books.watch("BTC", LEVELS, "levels", depth=bad)


def _exact(rows: list[list[str]]) -> list[tuple[Decimal, Decimal]]:
    return decimal_rows(rows)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_faulty_upstream_served_in_both_modes_stays_exact(seed: int) -> None:
    """Drops, repeats, swaps and lagging snapshots upstream; the sync resyncs; every diff
    client (one from the start, one joining later from a snapshot) holds the true book at
    every checkpoint, never applies a diff whose ``prev_seq`` is not its ``seq``, and the
    levels topic shows the true best levels once its interval has passed."""
    clock = Clock()
    books, frames = served(clock)
    books.watch("BTC", DIFF, "diff")
    books.watch("BTC", LEVELS, "levels", depth=5)
    stream = FaultyDepthStream(
        SimBook("BTC", 60_000.0, tick="0.01", lot="0.00001", seed=seed), Faults.all(0.05), seed=seed
    )
    sync = BinanceBookSync("BTC")
    clients: list[OrderBook | None] = [None, None]
    delivered = [0, 0]
    checked = resyncs = gaps = 0

    def consume(index: int) -> None:
        nonlocal gaps
        for frame in frames[delivered[index] :]:
            if frame.topic != DIFF:
                continue
            message = payload(frame)
            book = clients[index]
            if message.get("reset"):
                book = clients[index] = OrderBook(message["bids"], message["asks"], message["seq"])
            elif book is not None:
                if message["prev_seq"] != book.seq:
                    gaps += 1
                    continue
                book.apply(message["bids"], message["asks"])
                book.seq = message["seq"]
        delivered[index] = len(frames)

    def fetch() -> None:
        nonlocal resyncs
        outcome = sync.on_snapshot(parse_depth_snapshot(stream.snapshot()))
        if isinstance(outcome, Reset):
            resyncs += 1
            books.on_reset("BTC", outcome, int(clock.now * 1000))
        elif isinstance(outcome, NeedSnapshot):
            fetch()

    price = 60_000.0
    for step in range(600):
        price *= 1.0 + (((step * 7919 + seed) % 11) - 5) / 20_000
        clock.advance(0.1)
        for event in stream.step(price, int(clock.now * 1000)):
            outcome = sync.on_event(parse_depth_update(event))
            if isinstance(outcome, Applied):
                books.on_applied("BTC", outcome)
            elif isinstance(outcome, NeedSnapshot):
                fetch()
        if step == 300:  # a late joiner: the snapshot, then the stream from there
            snap = books.snapshot("BTC", DIFF)
            assert snap is not None
            clients[1] = OrderBook(snap["bids"], snap["asks"], snap["seq"])
            delivered[1] = len(frames)
        consume(0)
        if clients[1] is not None:
            consume(1)
        truth = stream.true_at(sync.seq) if sync.seq is not None else None
        if truth is None:
            continue
        checked += 1
        for book in clients:
            if book is not None:
                assert book.decimals() == (_exact(truth[0]), _exact(truth[1]))
        clock.advance(0.1)  # the levels interval is over: the newest top is out
        last_levels = next(payload(f) for f in reversed(frames) if f.topic == LEVELS)
        assert decimal_rows(last_levels["bids"]) == _exact(truth[0][:5])
        assert decimal_rows(last_levels["asks"]) == _exact(truth[1][:5])
    assert gaps == 0
    assert checked > 300
    assert resyncs > 1
    assert stream.dropped > 0
    assert stream.lagged > 0
