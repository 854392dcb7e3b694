"""The ``book_levels`` scenario's parts, checked without running it: the topic and subscribe
request as marketcast spells them, the baselines' levels frames against the frames
marketcast's ``book.served`` builds from the same changes (byte for byte), the stamp the
clients recover, the marketcast target's publish through ``StreamManager.on_book``, the load
client's counting, and the presets."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from marketcast.book.binance_sync import Applied, Reset
from marketcast.book.served import LEVELS_INTERVAL, ServedBooks
from marketcast.channels.orderbook import (
    UPDATE_TYPE,
    BookKey,
    OrderbookFamily,
    OrderbookSubscribePayload,
)
from marketcast.wire import Frame
from scripts.bench import books
from scripts.bench.books import DEPTH, LevelsFrames, LevelSource, book_topic
from scripts.bench.cases import CaseResult
from scripts.bench.client import BookConn, Window
from scripts.bench.common import BAR_STEP_MS, BAR_TIME_BASE, symbol
from scripts.bench.report import table
from scripts.bench.scenarios import FULL, QUICK

#: A publish stamp of the size monotonic µs have after a few weeks of uptime.
STAMP = 2_812_345_678_901


def test_topic_and_subscribe_request_are_marketcasts() -> None:
    family = OrderbookFamily()
    key = family.make_key("BENCH007", {"mode": "levels", "depth": 20})
    assert key == BookKey("BENCH007", "levels", 20)
    assert book_topic("BENCH007") == family.topic(key)
    request = orjson.loads(books.subscribe_text("BENCH007", 3))
    assert request["type"] == "orderbook.subscribe"
    assert request["id"] == 3
    payload = OrderbookSubscribePayload.model_validate(request["payload"])
    assert family.make_key(payload.symbol, payload.params.model_dump()) == key
    assert books.UPDATE_TYPE == UPDATE_TYPE
    assert books.UPDATE_PREFIX == b'{"type":"orderbook.update",'


class ManualClock:
    """``ServedBooks``' clock and ``call_later``, driven by hand."""

    def __init__(self) -> None:
        self.now = 100.0
        self.pending: list[tuple[float, Any]] = []

    def __call__(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Any) -> Any:
        self.pending.append((self.now + delay, callback))
        return self

    def cancel(self) -> None:
        raise AssertionError("nothing is unwatched here")

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [item for item in self.pending if item[0] <= self.now]
        self.pending = [item for item in self.pending if item[0] > self.now]
        for _, callback in due:
            callback()


def served(topics: int) -> tuple[ServedBooks, list[Frame], ManualClock]:
    """marketcast's served books of ``topics`` benchmark symbols, levels-20 topics watched."""
    frames: list[Frame] = []
    clock = ManualClock()
    books_ = ServedBooks(frames.append, clock.call_later, clock, update_type=UPDATE_TYPE)
    for index in range(topics):
        books_.watch(symbol(index), book_topic(symbol(index)), "levels", DEPTH)
    return books_, frames, clock


def apply(books_: ServedBooks, sym: str, update: books.BookUpdate) -> None:
    """What the marketcast target hands ``StreamManager.on_book``, which calls these."""
    if update.reset:
        books_.on_reset(sym, Reset(update.seq, update.bids, update.asks))
    else:
        assert update.time is not None
        books_.on_applied(
            sym, Applied(update.prev_seq, update.seq, update.bids, update.asks, update.time)
        )


def test_baseline_frames_are_marketcasts_levels_frames_byte_for_byte() -> None:
    topics = 3
    served_books, frames, clock = served(topics)
    source, baseline = LevelSource(topics), LevelsFrames(topics)
    for n in range(40):
        index, bar_time, stamp = n % topics, BAR_TIME_BASE + n * BAR_STEP_MS, STAMP + n
        apply(served_books, symbol(index), source.next(index, stamp, bar_time))
        expected = baseline.frame(index, bar_time, stamp)
        # every update moves the top 20: one frame each, once the interval allows
        assert len(frames) == n + 1
        assert frames[-1].text.encode() == expected
        assert frames[-1].topic == book_topic(symbol(index))
        assert books.stamp_of(expected) == stamp
        assert 850 < len(expected) < 1000
        clock.advance(LEVELS_INTERVAL / topics)
    payload = orjson.loads(expected)["payload"]
    assert payload["mode"] == "levels"
    assert payload["depth"] == DEPTH
    assert len(payload["bids"]) == len(payload["asks"]) == DEPTH
    assert payload["asks"][-1][1] == float(STAMP + 39)
    assert payload["bids"][0][0] < payload["asks"][0][0]
    assert payload["time"] == BAR_TIME_BASE + 39 * BAR_STEP_MS
    # the book behind the frames is deeper than what is served, and changes beyond it too
    book = served_books.book(symbol(0))
    assert book is not None
    assert book.sizes() == (books.BOOK_DEPTH, books.BOOK_DEPTH)
    update = LevelSource(1)
    update.next(0, 1, 0)
    deep = update.next(0, 2, 0)
    top_bids = {price for price, _ in LevelSource(1).next(0, 1, 0).bids[:DEPTH]}
    assert any(price not in top_bids for price, _ in deep.bids)


def test_an_update_within_the_interval_waits_for_it_and_carries_the_newest_stamp() -> None:
    served_books, frames, clock = served(1)
    source, sym = LevelSource(1), symbol(0)
    apply(served_books, sym, source.next(0, STAMP, BAR_TIME_BASE))
    clock.advance(0.04)
    apply(served_books, sym, source.next(0, STAMP + 1, BAR_TIME_BASE + BAR_STEP_MS))
    apply(served_books, sym, source.next(0, STAMP + 2, BAR_TIME_BASE + 2 * BAR_STEP_MS))
    assert len(frames) == 1  # held until the interval ends
    clock.advance(0.06)
    assert len(frames) == 2
    # the two updates of the interval arrive as one frame, stamped with the newer one
    assert books.stamp_of(frames[-1].text.encode()) == STAMP + 2


def test_baseline_answers_orderbook_subscribe_like_marketcast() -> None:
    baseline = LevelsFrames(2)
    topics = set(baseline.topics)
    text, topic = baseline.subscribe_reply(books.subscribe_text("BENCH001", 5), topics)
    reply = orjson.loads(text)
    assert topic == book_topic("BENCH001")
    assert reply["type"] == "orderbook.subscribe.response"
    assert reply["id"] == 5
    assert reply["payload"]["topic"] == topic
    assert reply["payload"]["book"] is None  # nothing published yet
    baseline.frame(1, BAR_TIME_BASE, STAMP)
    text, _ = baseline.subscribe_reply(books.subscribe_text("BENCH001", 6), topics)
    book = orjson.loads(text)["payload"]["book"]
    assert len(book["bids"]) == DEPTH
    assert book["asks"][-1][1] == float(STAMP)
    for refused in (books.subscribe_text("BENCH009", 1), b'{"type":"bars.subscribe"}', b"x"):
        text, topic = baseline.subscribe_reply(refused, topics)
        assert topic is None
        assert orjson.loads(text)["type"] == "error"


def test_book_clients_count_levels_frames_and_replies() -> None:
    window = Window(t0=100, t1=200)
    conn = BookConn(["BENCH000"], False, window)

    class Proto:
        frame_bytes = 0

    proto = Proto()
    conn.proto = proto  # type: ignore[assignment]
    assert orjson.loads(conn.subscribe_text("BENCH000", 1))["type"] == "orderbook.subscribe"
    baseline = LevelsFrames(1)
    for n, stamp in enumerate((150, 199, 250, 99)):
        proto.frame_bytes = 900 + n
        conn.on_text(baseline.frame(0, BAR_TIME_BASE, stamp), 300)
    conn.on_text(b'{"type":"orderbook.subscribe.response","id":1,"payload":{"book":null}}', 1)
    assert conn.count == 2
    assert window.out_of_window == 2
    assert window.wire_bytes == 900 + 901
    assert window.healthy.total == 2
    assert window.healthy.max_us == 150
    assert conn.replies == 1
    assert window.other_frames == 0


async def test_marketcast_target_publishes_through_on_book(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("SIM_TICK_INTERVAL", "SIM_SPEED", "LOG_LEVEL", "SIM_SYMBOLS"):
        monkeypatch.setenv(f"MARKETCAST_{name}", "")
        monkeypatch.delenv(f"MARKETCAST_{name}")
    monkeypatch.setenv("MARKETCAST_GC_FREEZE", "false")
    from scripts.bench.targets.marketcast import MarketcastTarget

    target = MarketcastTarget(2, "levels")
    key = BookKey("BENCH001", "levels", DEPTH)
    received: list[Frame] = []

    class Subscriber:
        def deliver(self, frame: Frame) -> None:
            received.append(frame)

    baseline = LevelsFrames(2)
    async with target.app.router.lifespan_context(target.app):
        await target.streams.acquire(key)
        # the simulator's own first book went to the dropped feed path, not to the clients
        assert target.feed_book_changes == 1
        assert target.streams.state(key) is None
        target.hub.add(target.streams.topic(key), Subscriber())
        expected = []
        for n in range(2):
            bar_time = BAR_TIME_BASE + n * BAR_STEP_MS
            await target.publish(1, bar_time, STAMP + n)
            expected.append(baseline.frame(1, bar_time, STAMP + n))
        assert len(received) == 1  # the second waits for the levels interval
        await asyncio.sleep(LEVELS_INTERVAL + 0.05)
        target.streams.release(key)
    assert [frame.text.encode() for frame in received] == expected
    assert [books.stamp_of(f) for f in expected] == [STAMP, STAMP + 1]


def test_both_presets_fan_levels_out_at_10_updates_per_symbol_per_second() -> None:
    full = {s.name: s for s in FULL}["book_levels"]
    quick = {s.name: s for s in QUICK}["book_levels"]
    assert (full.clients, full.topics) == (1000, 100)
    assert (quick.clients, quick.topics) == (200, 20)
    for scenario in (full, quick):
        assert scenario.frame == "levels"
        assert scenario.publish_rate / scenario.topics == 10.0
        assert scenario.subscribers_per_topic == 50.0
        assert scenario.quickack
        assert scenario.runs("marketcast")
        assert scenario.runs("websockets")
        assert scenario.runs("raw")
        assert not scenario.runs("fastws")
    assert full.offered_per_s == 50_000


def test_levels_table_shows_bytes_and_the_ratios() -> None:
    scenario = {s.name: s for s in QUICK}["book_levels"]
    figures = {"p99_ms": 3.0, "cpu_us_per_delivery": 6.0, "wire_bytes_per_delivery": 921.5}
    results = {
        "marketcast": CaseResult("marketcast", "book_levels", dict(figures)),
        "websockets": CaseResult("websockets", "book_levels", {**figures, "p99_ms": 1.5}),
    }
    text = table(scenario, results, ["fastws"])
    assert "B/deliv" in text.splitlines()[1]
    assert "order-book levels-20 frames" in text.splitlines()[0]
    assert "marketcast/websockets: p99 ms 2.00x  µs/deliv 1.00x  B/deliv 1.00x" in text
    assert books.TABLE_NOTE in text
