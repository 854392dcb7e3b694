"""Order books from Binance end to end: a real ``marketcast serve`` whose Binance feed reads
the shipped fake Binance with every depth fault on (events dropped, repeated, swapped;
snapshots older than the stream), and a real client in diff mode.

The client applies what it gets as the documented rules say (the reply's book, then each diff
whose ``prev_seq`` is its ``seq``; a ``reset`` replaces the book) and must never see a diff
that does not continue its book; at every ``seq`` it holds whose true book the fake still
keeps, its book equals the fake's true book, every level's price and quantity compared as
``Decimal``. The fake's drops force resyncs: the client sees them as ``reset`` updates.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from marketcast.book.levels import OrderBook, decimal_rows
from marketcast.sim.binance import FakeBinance
from marketcast.sim.market import MINUTE, FakeClock, Market
from tests.integration.harness import Client, client, served

pytestmark = pytest.mark.integration

#: The fake's clock runs this much faster than real time: 40 diff events a second.
SPEED = 4.0


@contextlib.asynccontextmanager
async def faulty_binance() -> AsyncIterator[FakeBinance]:
    real_minute = int(time.time() * 1000) // MINUTE * MINUTE
    market = Market(["BTCUSDT"], clock=FakeClock(SPEED, origin_ms=real_minute), history_days=0.1)
    fake = FakeBinance(market, push_interval=0.1, ping_interval=5.0, depth_history=2048)
    fake.depth_faults(drop=0.03, duplicate=0.03, reorder=0.03, lagging_snapshot=0.5)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@contextlib.asynccontextmanager
async def served_from_faulty_binance(tmp_path: Path) -> AsyncIterator[tuple[FakeBinance, Client]]:
    """The faulty fake, a server whose Binance feed reads it, and a client of that server."""
    async with (
        faulty_binance() as fake,
        served(
            tmp_path,
            binance_symbols="BTCUSDT",
            binance_ws_url=fake.ws_url,
            binance_rest_url=fake.rest_url,
            sim_symbols="AAPL",
        ) as server,
        client(server) as conn,
    ):
        yield fake, conn


async def test_a_diff_client_holds_the_true_book_through_upstream_faults(tmp_path: Path) -> None:
    async with served_from_faulty_binance(tmp_path) as (fake, conn):
        reply = await conn.request(
            "orderbook.subscribe", {"symbol": "BTCUSDT", "params": {"mode": "diff"}}
        )
        assert reply["type"] == "orderbook.subscribe.response", reply
        snapshot = reply["payload"].get("book")
        held = (
            None
            if snapshot is None
            else OrderBook(snapshot["bids"], snapshot["asks"], snapshot["seq"])
        )
        verified = resets = 0
        for _ in range(300):
            frame = await conn.recv_until(lambda f: f["type"] == "orderbook.update", within=30)
            update = frame["payload"]
            if update.get("reset"):
                resets += 1
                held = OrderBook(update["bids"], update["asks"], update["seq"])
            else:
                assert held is not None, "a diff before any book"
                assert update["prev_seq"] == held.seq, "a diff that does not continue the book"
                held.apply(update["bids"], update["asks"])
                held.seq = update["seq"]
            truth = fake.true_book("BTCUSDT", held.seq)
            if truth is not None:
                verified += 1
                assert held.decimals() == (decimal_rows(truth[0]), decimal_rows(truth[1]))
        records = fake.depth.records("BTCUSDT")
        assert records.dropped, "the fake dropped no event: the faults were not exercised"
        assert resets >= 1, "no resync reached the client despite dropped events"
        assert verified >= 150, f"only {verified} of 300 books could be checked"


async def test_levels_are_the_true_best_levels_through_upstream_faults(tmp_path: Path) -> None:
    """Every levels update is the fake's true best 20 levels at the update's ``seq``."""
    async with served_from_faulty_binance(tmp_path) as (fake, conn):
        reply = await conn.request("orderbook.subscribe", {"symbol": "BTCUSDT", "params": {}})
        assert reply["payload"]["topic"].startswith('orderbook:{"depth":20,"mode":"levels"')
        verified = 0
        for _ in range(60):
            frame = await conn.recv_until(lambda f: f["type"] == "orderbook.update", within=30)
            update = frame["payload"]
            truth = fake.true_book("BTCUSDT", update["seq"])
            if truth is None:
                continue
            verified += 1
            assert decimal_rows(update["bids"]) == decimal_rows(truth[0][:20])
            assert decimal_rows(update["asks"]) == decimal_rows(truth[1][:20])
        assert fake.depth.records("BTCUSDT").dropped, "the faults were not exercised"
        assert verified >= 30, f"only {verified} of 60 updates could be checked"
