"""A client too slow for an order book's diffs gets the whole book again (a reset) instead of
losing a diff or its connection; any other topic that overflows still closes it (4008).

Driven through the real ``ServedBooks`` and ``Connection`` (over the fake transport of
``test_lazy_writer``): the transport stops taking data, diffs pile up past the outbox's limit,
then it drains, and what the client got is replayed by the documented client rules.
"""

from __future__ import annotations

from typing import Any

import orjson

from marketcast.book.binance_sync import Applied, Reset
from marketcast.book.levels import OrderBook
from marketcast.book.served import ServedBooks
from marketcast.delivery.connection import Connection
from marketcast.delivery.outbox import Outbox
from marketcast.wire import Frame
from tests.unit.test_book_served import Clock
from tests.unit.test_lazy_writer import FakeProtocol, FakeWebSocket, settle, written

SYMBOL = "BTCUSDT"
DIFF = 'orderbook:{"mode":"diff","symbol":"BTCUSDT"}'
BARS = 'bars:{"resolution":"1","symbol":"BTCUSDT"}'


def served(max_messages: int) -> tuple[ServedBooks, Connection, FakeProtocol, FakeWebSocket]:
    protocol = FakeProtocol()
    ws = FakeWebSocket(protocol)
    conn: Connection | None = None

    def publish(frame: Frame) -> None:
        assert conn is not None
        conn.deliver(frame)

    clock = Clock()
    books = ServedBooks(
        publish, clock.call_later, lambda: clock.now, update_type="orderbook.update"
    )
    conn = Connection(
        ws,  # type: ignore[arg-type]
        Outbox(max_messages, 1_000_000),
        resets=books.reset_frame,
    )
    books.watch(SYMBOL, DIFF, "diff")
    return books, conn, protocol, ws


def change(seq: int) -> Applied:
    """Diff ``seq``: the bid at 100 - seq/100 gets quantity ``seq``, an ask goes away."""
    return Applied(seq - 1, seq, [(100 - seq / 100, float(seq))], [(101 + seq / 100, 0.0)], seq)


def frames_of(raw: bytes) -> list[dict[str, Any]]:
    """The JSON messages in what the fake transport got (each frame's header cut)."""
    found = []
    for part in raw.split(b"\x81")[1:]:
        found.append(orjson.loads(part[part.index(b"{") :]))
    return found


def replay(messages: list[dict[str, Any]]) -> tuple[OrderBook | None, int]:
    """The client's book after ``messages`` by the documented rules, and the resets seen;
    fails on a diff that does not continue the book it holds."""
    held: OrderBook | None = None
    resets = 0
    for message in messages:
        update = message["payload"]
        if update.get("reset"):
            resets += 1
            held = OrderBook(update["bids"], update["asks"], update["seq"])
            continue
        assert held is not None, "a diff before any book"
        assert update["prev_seq"] == held.seq, f"gap: {update['prev_seq']} after {held.seq}"
        held.apply(update["bids"], update["asks"])
        held.seq = update["seq"]
    return held, resets


async def test_a_slow_diff_client_gets_a_reset_and_ends_with_the_true_book() -> None:
    books, conn, protocol, _ = served(max_messages=4)
    asks = [(101 + i / 100, 1.0) for i in range(1, 60)]
    books.on_reset(SYMBOL, Reset(1, [(99.0, 5.0)], asks), time=1)
    protocol.writable.clear()  # the client stops reading
    for seq in range(2, 30):
        books.on_applied(SYMBOL, change(seq))
    assert conn.close_code is None, "closed instead of reset"
    assert conn.stats.resets >= 1
    assert len(conn.outbox) <= 4
    protocol.writable.set()  # it reads again
    await settle()
    held, resets = replay(frames_of(written(protocol)))
    assert resets >= 2, "the first book and at least one reset for the slow client"
    assert held == books.book(SYMBOL)
    assert held is not None
    assert held.seq == 29


async def test_many_overflows_at_one_seq_share_one_reset_frame() -> None:
    books, _, _, _ = served(max_messages=4)
    books.on_reset(SYMBOL, Reset(1, [(99.0, 5.0)], [(101.0, 1.0)]), time=1)
    first = books.reset_frame(DIFF)
    assert first is not None
    assert first is books.reset_frame(DIFF)
    assert orjson.loads(first.text)["payload"] | {"bids": [], "asks": []} == {
        "topic": DIFF,
        "symbol": SYMBOL,
        "mode": "diff",
        "seq": 1,
        "prev_seq": None,
        "reset": True,
        "time": 1,
        "bids": [],
        "asks": [],
    }
    books.on_applied(SYMBOL, change(2))
    second = books.reset_frame(DIFF)
    assert second is not None
    assert second is not first
    assert second.order == 2


async def test_levels_topics_and_unjoined_books_have_no_reset() -> None:
    books, _, _, _ = served(max_messages=4)
    assert books.reset_frame(DIFF) is None, "not joined yet"
    books.watch(SYMBOL, "orderbook:levels", "levels", 5)
    books.on_reset(SYMBOL, Reset(1, [(99.0, 5.0)], [(101.0, 1.0)]))
    assert books.reset_frame("orderbook:levels") is None
    assert books.reset_frame("orderbook:unknown") is None


async def test_an_overflow_of_another_topic_still_closes_the_client() -> None:
    books, conn, protocol, ws = served(max_messages=2)
    books.on_reset(SYMBOL, Reset(1, [(99.0, 5.0)], [(101.0, 1.0)]))
    protocol.writable.clear()
    for minute in range(3):
        conn.deliver(Frame(f'{{"t":{minute}}}', BARS, minute, True))
    assert conn.close_code == 4008
    assert conn.stats.resets == 0
    await settle()
    assert ws.closed_with is not None
    assert ws.closed_with[0] == 4008
