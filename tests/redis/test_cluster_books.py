"""Order books across a cluster: one depth link per symbol, every worker serving the true book.

Two real workers on a private redis-server read the shipped fake Binance with every depth
fault on (events dropped, repeated, swapped; snapshots older than the stream). The worker
whose client asks first takes the lease of the symbol's book (``orderbook|BTCUSDT|diff|None``)
and is the only one with a depth stream; the other serves its clients from the changes the
owner relays over the bus (``cluster.book_relay``). Clients in diff mode on both workers never
get a diff that does not continue their book, and at every ``seq`` the fake still knows, their
book equals the fake's true book, each price and quantity compared as ``Decimal``. When the
owner dies, the other worker takes the lease, joins the book itself, and its client gets a
``reset`` and goes on exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis

from marketcast.book.levels import OrderBook, decimal_rows
from marketcast.sim.binance import FakeBinance
from tests.integration.harness import Client, Server, client
from tests.integration.test_metrics import scrape, value
from tests.integration.test_orderbook_binance import faulty_binance
from tests.redis.redis_server import RedisServer
from tests.redis.test_cluster import (
    LEASE_TTL,
    binance_workers,
    lease_holder,
    redis,
    redis_cli,
    upstream_periods,
    upstream_starts,
    wait_until,
)

pytestmark = pytest.mark.integration
__all__ = ["redis", "redis_cli"]  # fixtures, used by name

BOOK = "orderbook|BTCUSDT|diff|None"
DEPTH = "btcusdt@depth@100ms"


@dataclass
class Follower:
    """A diff-mode client applying its book by the documented rules, checked as it goes."""

    client: Client
    fake: FakeBinance
    held: OrderBook | None = None
    resets: int = 0
    diffs: int = 0
    #: Books compared with the fake's true book (the fake keeps the recent ones).
    verified: int = 0

    async def subscribe(self) -> None:
        reply = await self.client.request(
            "orderbook.subscribe", {"symbol": "BTCUSDT", "params": {"mode": "diff"}}
        )
        assert reply["type"] == "orderbook.subscribe.response", reply
        book = reply["payload"].get("book")
        if book is not None:
            self.held = OrderBook(book["bids"], book["asks"], book["seq"])
            self._check()

    async def follow(self, updates: int) -> None:
        for _ in range(updates):
            frame = await self.client.recv_until(
                lambda f: f["type"] == "orderbook.update", within=30
            )
            update = frame["payload"]
            if update.get("reset"):
                self.resets += 1
                self.held = OrderBook(update["bids"], update["asks"], update["seq"])
            else:
                assert self.held is not None, "a diff before any book"
                assert update["prev_seq"] == self.held.seq, (
                    f"a diff {update['prev_seq']}->{update['seq']} that does not continue "
                    f"the book held at {self.held.seq}"
                )
                self.held.apply(update["bids"], update["asks"])
                self.held.seq = update["seq"]
                self.diffs += 1
            self._check()

    def _check(self) -> None:
        assert self.held is not None
        truth = self.fake.true_book("BTCUSDT", self.held.seq)
        if truth is not None:
            self.verified += 1
            assert self.held.decimals() == (decimal_rows(truth[0]), decimal_rows(truth[1]))


@contextlib.asynccontextmanager
async def owned_by_b(
    tmp: Path, redis: RedisServer, redis_cli: Redis
) -> AsyncIterator[tuple[FakeBinance, dict[str, Server], Follower, Follower]]:
    """Workers a and b on the faulty fake; b's diff client asks first, so b takes the book;
    once it has it, a's diff client subscribes (a asks b for the book: a replay)."""
    async with (
        faulty_binance() as fake,
        binance_workers(tmp, redis, fake, "a", "b") as cluster,
        client(cluster["b"]) as b_conn,
        client(cluster["a"]) as a_conn,
    ):
        on_b = Follower(b_conn, fake)
        await on_b.subscribe()
        assert await lease_holder(redis_cli, BOOK) == "b"
        await on_b.follow(10)  # b holds a joined book now
        on_a = Follower(a_conn, fake)
        await on_a.subscribe()
        yield fake, cluster, on_a, on_b


async def test_one_worker_joins_the_book_and_every_worker_serves_it_exact(
    tmp_path: Path, redis: RedisServer, redis_cli: Redis
) -> None:
    async with (
        owned_by_b(tmp_path, redis, redis_cli) as (fake, cluster, on_a, on_b),
        client(cluster["a"]) as a_levels,
    ):
        reply = await a_levels.request("orderbook.subscribe", {"symbol": "BTCUSDT"})
        assert reply["payload"]["status"] == "ok", reply
        depth_links = []
        for _ in range(6):
            await asyncio.gather(on_a.follow(25), on_b.follow(25))
            depth_links.append(fake.subscribers(DEPTH))
        levels_checked = 0
        for _ in range(20):
            frame = await a_levels.recv_until(lambda f: f["type"] == "orderbook.update", 30)
            update = frame["payload"]
            truth = fake.true_book("BTCUSDT", update["seq"])
            if truth is not None:
                levels_checked += 1
                assert decimal_rows(update["bids"]) == decimal_rows(truth[0][:20])
                assert decimal_rows(update["asks"]) == decimal_rows(truth[1][:20])
        assert depth_links == [1] * 6, "one depth stream for the cluster, the owner's"
        assert upstream_starts(cluster["a"], BOOK) == 0
        assert upstream_starts(cluster["b"], BOOK) == 1
        assert fake.depth.records("BTCUSDT").dropped, "the faults were not exercised"
        for who, follower in (("a", on_a), ("b", on_b)):
            assert follower.resets >= 1, f"{who}: no resync reached the client"
            assert follower.verified >= 75, f"{who}: only {follower.verified} books checked"
        assert levels_checked >= 10, f"only {levels_checked} of 20 levels updates checked"
        # a asked b for the book it joined late, and b (the owner) answered with a replay.
        on_a_metrics, on_b_metrics = await scrape(cluster["a"]), await scrape(cluster["b"])
        assert value(on_a_metrics, "marketcast_book_relay_asks_total") >= 1
        assert value(on_b_metrics, "marketcast_book_relay_replays_total") >= 1
        assert value(on_a_metrics, "marketcast_book_relay_replays_total") == 0


async def test_a_takeover_joins_the_book_again_and_the_clients_stay_exact(
    tmp_path: Path, redis: RedisServer, redis_cli: Redis
) -> None:
    async with owned_by_b(tmp_path, redis, redis_cli) as (fake, cluster, on_a, _):
        a, b = cluster["a"], cluster["b"]
        await on_a.follow(40)
        resets_before = on_a.resets
        b.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(b.process.wait, 5)

        async def a_owns() -> bool:
            return await lease_holder(redis_cli, BOOK) == "a"

        await wait_until(a_owns, 5 * LEASE_TTL, "takeover by a")
        await on_a.follow(120)
        assert on_a.resets > resets_before, "the new owner's join reached a's client as a reset"
        # Once; or again after stopping it, when a renewal came too late on a loaded machine
        # ("lease expiring"): never twice at once (``upstream_periods`` checks).
        assert upstream_periods(a, BOOK, time.time()), "a never started the book upstream"
        assert fake.subscribers(DEPTH) == 1, "the new owner's depth stream only"
        assert on_a.verified >= 100, f"only {on_a.verified} books checked"
