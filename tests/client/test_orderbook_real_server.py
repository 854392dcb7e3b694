"""``OrderBook`` against a real marketcast server (uvicorn on 127.0.0.1, in this process, the
simulator's books joined as Binance's are, 60x time): a diff-mode book stays continuous
update after update and equals what a second connection's subscribe reply holds at the same
``seq``; after its connection drops, the renewal's book takes over and the book again equals
a second client's, seq for seq."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from typing import Any, Final

import pytest
from marketcast_client import Backoff, BookChange, Level, MarketcastClient, OrderBook

from tests.integration.harness import in_process_server

pytestmark = pytest.mark.integration

SETTINGS: Final[dict[str, object]] = {"sim_tick_interval": 0.05, "sim_speed": 60}
#: Diffs each book must apply, continuously, before the comparisons.
N: Final = 60

Sides = tuple[list[tuple[float, float]], list[tuple[float, float]]]


def pairs(levels: Sequence[Level] | Sequence[Sequence[Any]]) -> list[tuple[float, float]]:
    return [(float(price), float(qty)) for price, qty in levels]


def sides(book: OrderBook) -> Sides:
    return pairs(book.bids()), pairs(book.asks())


def check_sorted(book: OrderBook) -> None:
    bids, asks = sides(book)
    assert [p for p, _ in bids] == sorted((p for p, _ in bids), reverse=True)
    assert [p for p, _ in asks] == sorted(p for p, _ in asks)
    assert all(q > 0 for _, q in bids + asks)
    assert bids, "no bids"
    assert asks, "no asks"
    assert bids[0][0] < asks[0][0], "a crossed book"


class Recorder:
    """Every change of one book, and the whole book right after each (by ``seq``)."""

    def __init__(self, book: OrderBook) -> None:
        self.book = book
        self.changes: list[BookChange] = []
        assert book.seq is not None
        self.states: dict[int, Sides] = {book.seq: sides(book)}
        book.on_change(self.record)

    def record(self, change: BookChange) -> None:
        self.changes.append(change)
        self.states[change.seq] = sides(self.book)

    def diffs_since(self, start: int) -> int:
        return sum(change.kind == "diff" for change in self.changes[start:])


async def until(condition: Callable[[], bool], within: float, what: str) -> None:
    """Poll ``condition``; fail naming ``what`` after ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            while True:
                if condition():
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not within {within} s: {what}") from None


def check_continuous(first_seq: int, changes: list[BookChange]) -> None:
    """Every change a diff continuing the one before, from the book at ``first_seq``."""
    assert changes
    assert all(change.kind == "diff" for change in changes), changes[:3]
    assert changes[0].prev_seq == first_seq
    for before, after in itertools.pairwise(changes):
        assert after.prev_seq == before.seq < after.seq


async def test_a_diff_book_stays_continuous_and_equals_a_second_connections_snapshot() -> None:
    async with (
        in_process_server(SETTINGS) as server,
        MarketcastClient(server.ws) as first,
        MarketcastClient(server.ws) as second,
        OrderBook(first, "BTCUSDT") as book,
    ):
        assert book.synced
        assert book.seq is not None
        check_sorted(book)
        first_seq = book.seq
        recorder = Recorder(book)
        await until(lambda: len(recorder.changes) >= N, 60, f"{N} changes of the book")
        check_continuous(first_seq, recorder.changes)

        other = await second.subscribe_orderbook("BTCUSDT", mode="diff")
        snapshot = other.reply.book
        assert snapshot is not None
        assert snapshot.seq >= first_seq
        await until(lambda: (book.seq or 0) >= snapshot.seq, 30, "the book at the later seq")
        assert recorder.states[snapshot.seq] == (pairs(snapshot.bids), pairs(snapshot.asks))

        await until(lambda: len(recorder.changes) >= 2 * N, 60, f"{2 * N} changes")
        check_continuous(first_seq, recorder.changes)
        check_sorted(book)
        assert (book.resyncs, book.renewals, book.skipped) == (0, 0, 0)
        assert book.synced
        assert book.error is None
        await other.unsubscribe()


async def test_after_a_dropped_connection_the_book_is_renewed_and_agrees_again() -> None:
    no_wait = Backoff(base=0.05, cap=0.05)
    async with (
        in_process_server(SETTINGS) as server,
        MarketcastClient(server.ws, backoff=no_wait, random=lambda: 0.0) as dropping,
        MarketcastClient(server.ws) as steady,
        OrderBook(steady, "BTCUSDT") as reference,
        OrderBook(dropping, "BTCUSDT") as book,
    ):
        theirs, ours = Recorder(reference), Recorder(book)
        await until(lambda: len(ours.changes) >= 10, 60, "10 changes before the drop")

        # The connection dies under the client (no close frame): it reconnects by itself.
        ws = dropping._ws
        assert ws is not None
        ws.transport.abort()
        await until(lambda: book.renewals == 1 and book.synced, 30, "the renewal")
        renewed_at = len(ours.changes) - 1
        renewal = ours.changes[renewed_at]
        assert renewal.kind == "snapshot"
        await until(lambda: ours.diffs_since(renewed_at) >= N, 60, f"{N} diffs after it")
        check_continuous(renewal.seq, ours.changes[renewed_at + 1 :])
        await until(lambda: (reference.seq or 0) >= (book.seq or 0), 30, "the reference")

        common = sorted(set(ours.states) & set(theirs.states))
        after = [seq for seq in common if seq >= renewal.seq]
        assert len(after) >= N
        for seq in after:
            assert ours.states[seq] == theirs.states[seq], f"the books differ at seq {seq}"
        check_sorted(book)
        assert (book.resyncs, reference.resyncs, reference.renewals) == (0, 0, 0)
        assert dropping.connections == 2
