"""``BinanceDepthLink`` against the shipped FakeBinance on 127.0.0.1, with every fault on.

What is asserted is what a consumer of the link holds: a sink rebuilds each book from the
outcomes alone (a ``Reset`` replaces it, an ``Applied`` must continue it: ``prev_seq`` is the
book's ``seq``), and at every outcome both that book and the link's own equal the fake's true
book at that update id, every level's price and quantity compared as ``Decimal``. A gap must
always be noticed: for every event the fake dropped (or swapped, unless its successor was
dropped too, which puts it back in order), the first outcome at or past its final id is a
``Reset`` — nothing was applied across the hole. On top: events sent twice are dropped by the
sync, the snapshots lag, and a connection drop ends in a ``Reset`` of every book.

The fake's clock runs 4x (40 diff events a second per symbol). Nothing waits a fixed time: each
step waits, bounded, for the state it needs; no assertion is about how long anything took.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest

from marketcast.book.binance_sync import Applied, Reset
from marketcast.book.levels import OrderBook, decimal_rows
from marketcast.feeds.binance_depth import BinanceDepthLink, BookOutcome
from marketcast.sim.binance import FakeBinance
from marketcast.sim.market import FakeClock, Market
from tests.integration.harness import until

pytestmark = pytest.mark.integration

SPEED = 4.0
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
#: True states the fake keeps per symbol: ~12 s of lag at 40 events/s before a checkpoint
#: cannot be verified (which is counted, not failed: the machine may be slow).
HISTORY = 512
#: Levels a side per snapshot: deeper than the fake's books (<= 200), so a snapshot is the
#: whole book, at weight 25 (1000 would cost 50 of the 6000 a minute for nothing).
LIMIT = 500


class Checker:
    """The sink: each book rebuilt from the outcomes, checked against the fake's truth."""

    def __init__(self, fake: FakeBinance) -> None:
        self.fake = fake
        self.link: BinanceDepthLink | None = None
        self.books: dict[str, OrderBook] = {}
        self.outcomes: dict[str, list[BookOutcome]] = {s: [] for s in SYMBOLS}
        self.verified = dict.fromkeys(SYMBOLS, 0)
        self.unverifiable = 0
        #: Mismatches, kept rather than raised: the link logs a sink's exception and goes on.
        self.problems: list[str] = []

    async def on_book(self, symbol: str, outcome: BookOutcome) -> None:
        if isinstance(outcome, Reset):
            self.books[symbol] = OrderBook(outcome.bids, outcome.asks, outcome.seq)
        else:
            book = self.books.get(symbol)
            if book is None or book.seq != outcome.prev_seq:
                self.problems.append(
                    f"{symbol}: Applied {outcome.prev_seq}->{outcome.seq} does not continue "
                    f"the book held, {book!r}"
                )
                return
            book.apply(outcome.bids, outcome.asks)
            book.seq = outcome.seq
        self.outcomes[symbol].append(outcome)
        self._check(symbol, outcome.seq)

    def _check(self, symbol: str, seq: int) -> None:
        truth = self.fake.true_book(symbol, seq)
        if truth is None:
            self.unverifiable += 1
            return
        expected = (decimal_rows(truth[0]), decimal_rows(truth[1]))
        held = self.books[symbol]
        synced = self.link.book(symbol) if self.link is not None else None
        if held.decimals() != expected:
            self.problems.append(f"{symbol}: the book built from outcomes differs at {seq}")
        elif synced is None or synced.seq != seq or synced.decimals() != expected:
            self.problems.append(f"{symbol}: the link's book {synced!r} differs at {seq}")
        else:
            self.verified[symbol] += 1

    def resets(self, symbol: str, since: int = 0) -> int:
        return sum(isinstance(o, Reset) for o in self.outcomes[symbol][since:])


def gaps(fake: FakeBinance, symbol: str) -> list[tuple[int, int]]:
    """(U, u) of the events that never came in order: dropped, or swapped with a successor
    that was delivered (a swapped event whose successor was dropped arrives in order)."""
    record = fake.depth.records(symbol)
    dropped_firsts = {first for first, _ in record.dropped}
    swapped = [(U, u) for U, u in record.reordered if u + 1 not in dropped_firsts]
    return sorted([*record.dropped, *swapped])


def noticed(outcomes: list[BookOutcome], holes: Iterable[tuple[int, int]]) -> tuple[int, int]:
    """(holes noticed while joined, holes crossed without a Reset) among ``holes``: for each
    one the outcomes reach, the first outcome at or past its final id must be a Reset; it was
    noticed while joined if the outcome before that was the book just before the hole."""
    seen = crossed = 0
    for first, final in holes:
        at = next((i for i, o in enumerate(outcomes) if o.seq >= final), None)
        if at is None or at == 0:
            continue  # not reached yet, or before the first join
        if not isinstance(outcomes[at], Reset):
            crossed += 1
        elif outcomes[at - 1].seq == first - 1:
            seen += 1
    return seen, crossed


@contextlib.asynccontextmanager
async def running(
    symbols: list[str] = SYMBOLS, **options: Any
) -> AsyncIterator[tuple[FakeBinance, BinanceDepthLink, Checker]]:
    """A fake Binance and a link to it (not started); both stopped on the way out."""
    market = Market(SYMBOLS, clock=FakeClock(SPEED), history_days=0.1)
    fake = FakeBinance(market, push_interval=0.05, ping_interval=2.0, depth_history=HISTORY)
    await fake.start()
    checker = Checker(fake)
    defaults: dict[str, Any] = {"reconnect_min": 0.05, "reconnect_max": 0.5, "timeout": 10.0}
    link = BinanceDepthLink(
        symbols,
        ws_url=fake.ws_url,
        rest_url=fake.rest_url,
        on_book=checker.on_book,
        snapshot_limit=LIMIT,
        **(defaults | options),
    )
    checker.link = link
    try:
        yield fake, link, checker
    finally:
        async with asyncio.timeout(10):  # a hang check: close is prompt
            await link.close()
        await fake.stop()


async def test_synced_books_equal_the_true_books_under_every_fault() -> None:
    async with running() as (fake, link, checker):
        fake.depth_faults(drop=0.04, duplicate=0.05, reorder=0.02, lagging_snapshot=0.5)
        await link.start()

        def enough(verified: int, holes: int) -> bool:
            return bool(checker.problems) or all(
                checker.verified[s] >= verified
                and noticed(checker.outcomes[s], gaps(fake, s))[0] >= holes
                and fake.depth.records(s).lagged
                and link.syncs[s].dropped > 0
                for s in SYMBOLS
            )

        await until(lambda: enough(100, 3), 15, "100 checkpoints and 3 holes noticed per book")
        assert not checker.problems, checker.problems[:5]
        marks = {s: len(checker.outcomes[s]) for s in SYMBOLS}
        verified = dict(checker.verified)
        fake.drop()  # every connection aborted, no close frame
        await until(
            lambda: (
                bool(checker.problems)
                or (
                    link.connections_opened >= 2
                    and all(checker.resets(s, marks[s]) > 0 for s in SYMBOLS)
                    and all(checker.verified[s] >= verified[s] + 50 for s in SYMBOLS)
                )
            ),
            15,
            "a new connection, a Reset of every book and 50 more checkpoints",
        )

    assert not checker.problems, checker.problems[:5]
    assert len(fake.connections) >= 2
    for symbol in SYMBOLS:
        outcomes = checker.outcomes[symbol]
        assert isinstance(outcomes[0], Reset)
        assert all(isinstance(o, Reset | Applied) for o in outcomes)
        seen, crossed = noticed(outcomes, gaps(fake, symbol))
        assert crossed == 0, f"{symbol}: {crossed} holes applied across without a Reset"
        assert seen >= 3
        sync = link.syncs[symbol]
        assert sync.resyncs >= seen, "each hole noticed while joined is a resync"
        record = fake.depth.records(symbol)
        assert record.duplicated, "events were sent twice..."
        assert sync.dropped > 0, "...and the repeats dropped, not applied twice"
        assert record.lagged, "some snapshots were older than the stream"
        assert checker.verified[symbol] >= 150
    assert link.snapshots >= sum(checker.resets(s) for s in SYMBOLS)


async def test_failed_snapshots_are_retried_then_given_up_and_started_again() -> None:
    async with running(symbols=["BTCUSDT"], snapshot_attempts=2, reconnect_max=0.3) as (
        fake,
        link,
        checker,
    ):
        fake.fail_rest(500, times=3)  # the first round's 2 attempts, and the next round's first
        await link.start()
        await until(lambda: checker.resets("BTCUSDT") > 0, 15, "the book joined after 3 failures")
        assert link.snapshot_failures == 3
        assert link.rounds_given_up == 1
        await until(lambda: checker.verified["BTCUSDT"] >= 20, 15, "20 checkpoints")
    assert not checker.problems, checker.problems[:5]


async def test_close_is_idempotent_and_prompt_at_any_point() -> None:
    async with running() as (fake, link, checker):
        await link.close()  # before start: nothing to stop
    async with running() as (fake, link, checker):
        await link.start()
        await link.close()  # before the connection is open
        await link.close()
        with pytest.raises(RuntimeError, match="starts once"):
            await link.start()
    async with running() as (fake, link, checker):
        fake.fail_rest(500, times=1_000)  # every snapshot fails: rounds retry and give up
        await link.start()
        await until(lambda: link.snapshot_failures >= 2, 15, "snapshot requests failing")
        # The running context closes the link while fetches wait between attempts.
    assert checker.resets("BTCUSDT") == 0
