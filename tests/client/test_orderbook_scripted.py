"""``OrderBook`` on the real client against a scripted server on 127.0.0.1 that sends the frames
each test writes by hand: a gap makes it unsubscribe and subscribe again; a reconnect's
renewal book replaces the book held (a null one waits for the reset); gaps that keep coming
end it with ``BookGapError`` after ``max_resyncs`` fresh books, the later ones after a
backoff delay."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from marketcast_client import Backoff, BookChange, BookGapError, OrderBook
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from tests.client.test_close_codes import client, scripted, until

TOPIC = 'orderbook:{"mode":"diff","symbol":"BTCUSDT"}'
REQUEST = {"symbol": "BTCUSDT", "params": {"mode": "diff"}}

#: Answers one ``orderbook.subscribe`` (its request, how many came before on any connection).
OnSubscribe = Callable[[ServerConnection, dict[str, Any], int], Awaitable[None]]


def book(seq: int, bids: list[list[float]], asks: list[list[float]]) -> dict[str, Any]:
    return {"seq": seq, "time": 1_000 + seq, "bids": bids, "asks": asks}


def reply(request: dict[str, Any], snapshot: dict[str, Any] | None) -> str:
    payload = {"status": "ok", "symbol": "BTCUSDT", "message": "subscribed", "topic": TOPIC}
    return json.dumps(
        {
            "type": "orderbook.subscribe.response",
            "id": request["id"],
            "payload": {**payload, "book": snapshot},
        }
    )


def update(
    seq: int,
    prev_seq: int | None,
    bids: list[list[float]] | None = None,
    asks: list[list[float]] | None = None,
    *,
    reset: bool = False,
) -> str:
    payload: dict[str, Any] = {"topic": TOPIC, "symbol": "BTCUSDT", "mode": "diff", "seq": seq}
    payload.update(prev_seq=prev_seq, time=1_000 + seq, bids=bids or [], asks=asks or [])
    if reset:
        payload["reset"] = True
    return json.dumps({"type": "orderbook.update", "payload": payload})


class BookServer:
    """Answers every request of every connection: unsubscribes with an ``ok``, subscribes
    with what ``on_subscribe`` sends. Records every request, in order."""

    def __init__(self, on_subscribe: OnSubscribe) -> None:
        self.on_subscribe = on_subscribe
        self.requests: list[dict[str, Any]] = []
        self.subscribes = 0

    async def __call__(self, ws: ServerConnection, number: int) -> None:
        try:
            async for raw in ws:
                request: dict[str, Any] = json.loads(raw)
                self.requests.append(request)
                if request["type"] == "orderbook.unsubscribe":
                    payload = {"status": "ok", "symbol": "BTCUSDT", "message": "unsubscribed"}
                    answer = {
                        "type": "orderbook.unsubscribe.response",
                        "id": request["id"],
                        "payload": {**payload, "topic": TOPIC},
                    }
                    await ws.send(json.dumps(answer))
                    continue
                assert request["type"] == "orderbook.subscribe", request
                count, self.subscribes = self.subscribes, self.subscribes + 1
                await self.on_subscribe(ws, request, count)
        except ConnectionClosed:
            pass

    def types(self) -> list[str]:
        return [request["type"].removeprefix("orderbook.") for request in self.requests]


async def drain(book: OrderBook) -> None:
    """Iterate ``book`` until its iteration ends (within 10 s)."""
    async with asyncio.timeout(10):
        async for _ in book:
            pass


def prices(levels: list[Any]) -> list[tuple[float, float]]:
    return [(level.price, level.qty) for level in levels]


async def test_a_gap_unsubscribes_then_subscribes_for_a_fresh_book() -> None:
    async def on_subscribe(ws: ServerConnection, request: dict[str, Any], count: int) -> None:
        if count == 0:
            await ws.send(reply(request, book(10, [[100.0, 1.0]], [[101.0, 1.0]])))
            await ws.send(update(11, 10, bids=[[100.0, 2.0]]))
            await ws.send(update(15, 13, bids=[[100.0, 9.0]]))  # 12 and 13 never came: a gap
            return
        await ws.send(reply(request, book(20, [[99.0, 1.0]], [[102.0, 1.0]])))
        await ws.send(update(20, 19, asks=[[102.0, 0.0]]))  # already in the book: skipped
        await ws.send(update(21, 20, bids=[[99.0, 0.0], [98.0, 3.0]]))

    server = BookServer(on_subscribe)
    async with scripted(server) as (_, url), client(url) as marketcast:
        async with OrderBook(marketcast, "BTCUSDT") as book_held:
            assert book_held.synced
            assert book_held.seq == 10
            first = book_held.subscription
            changes: list[BookChange] = []
            book_held.on_change(changes.append)
            await until(lambda: book_held.seq == 21)
            assert book_held.synced
            assert [(c.kind, c.seq, c.prev_seq) for c in changes] == [
                ("diff", 11, 10),
                ("snapshot", 20, None),
                ("diff", 21, 20),
            ]
            assert prices(book_held.bids()) == [(98.0, 3.0)]
            assert prices(book_held.asks()) == [(102.0, 1.0)]
            assert (book_held.resyncs, book_held.renewals, book_held.skipped) == (1, 0, 1)
            assert book_held.subscription is not first
            assert first is not None
            assert not first.active
        assert server.types() == ["subscribe", "unsubscribe", "subscribe", "unsubscribe"]
        # Every request names the diff topic, and nothing else (no depth, no snapshot).
        assert all(request["payload"] == REQUEST for request in server.requests)
        assert marketcast.connections == 1


async def test_after_a_reconnect_the_renewal_book_replaces_the_book_held() -> None:
    async def on_subscribe(ws: ServerConnection, request: dict[str, Any], count: int) -> None:
        if count == 0:
            await ws.send(reply(request, book(1_000_010, [[100.0, 1.0]], [[101.0, 1.0]])))
            await ws.send(update(1_000_011, 1_000_010, asks=[[101.0, 0.0], [101.5, 2.0]]))
            await ws.close(1012, "restart")
            return
        # A restarted server's new book: another seq space, lower than the one held.
        await ws.send(reply(request, book(1_000_002, [[90.0, 5.0]], [[91.0, 6.0], [92.0, 7.0]])))
        await ws.send(update(1_000_003, 1_000_002, asks=[[91.0, 0.0]]))

    server = BookServer(on_subscribe)
    async with scripted(server) as (_, url), client(url) as marketcast:
        async with OrderBook(marketcast, "BTCUSDT") as book_held:
            seen: list[tuple[str, int, int | None]] = []
            async with asyncio.timeout(10):
                async for change in book_held:
                    seen.append((change.kind, change.seq, change.prev_seq))
                    if change.seq == 1_000_003:
                        break
            assert seen == [
                ("snapshot", 1_000_010, None),  # iteration starts with the book held
                ("diff", 1_000_011, 1_000_010),
                ("snapshot", 1_000_002, None),  # the renewal's book
                ("diff", 1_000_003, 1_000_002),
            ]
            assert prices(book_held.bids()) == [(90.0, 5.0)]
            assert prices(book_held.asks()) == [(92.0, 7.0)]
            assert (book_held.resyncs, book_held.renewals) == (0, 1)
            assert book_held.synced
        assert marketcast.connections == 2
        assert server.types() == ["subscribe", "subscribe", "unsubscribe"]


async def test_a_renewal_without_a_book_waits_for_the_reset() -> None:
    released = asyncio.Event()

    async def on_subscribe(ws: ServerConnection, request: dict[str, Any], count: int) -> None:
        if count == 0:
            await ws.send(reply(request, book(10, [[100.0, 1.0]], [[101.0, 1.0]])))
            await ws.close(1012, "restart")
            return
        await ws.send(reply(request, None))  # the upstream book is not joined yet
        await released.wait()
        await ws.send(update(7, 6, bids=[[1.0, 1.0]]))  # no book to apply it to: skipped
        await ws.send(update(8, None, bids=[[50.0, 1.0]], asks=[[51.0, 2.0]], reset=True))
        await ws.send(update(9, 8, bids=[[49.5, 4.0]]))

    server = BookServer(on_subscribe)
    async with (
        scripted(server) as (_, url),
        client(url) as marketcast,
        OrderBook(marketcast, "BTCUSDT") as book_held,
    ):
        assert book_held.seq == 10
        await until(lambda: book_held.renewals == 1)
        assert not book_held.synced
        assert book_held.seq is None
        assert book_held.bids() == []
        assert book_held.asks() == []
        changes: list[BookChange] = []
        book_held.on_change(changes.append)
        released.set()
        async with asyncio.timeout(10):
            await book_held.wait_synced()
        assert book_held.seq in (8, 9)  # synced from the reset on
        await until(lambda: book_held.seq == 9)
        assert [(c.kind, c.seq) for c in changes] == [("reset", 8), ("diff", 9)]
        assert prices(list(changes[0].bids)) == [(50.0, 1.0)]
        assert prices(book_held.bids()) == [(50.0, 1.0), (49.5, 4.0)]
        assert (book_held.resyncs, book_held.skipped) == (0, 1)


async def test_gaps_that_keep_coming_end_the_book_after_max_resyncs() -> None:
    async def on_subscribe(ws: ServerConnection, request: dict[str, Any], count: int) -> None:
        seq = 100 * (count + 1)
        await ws.send(reply(request, book(seq, [[1.0, 1.0]], [[2.0, 1.0]])))
        await ws.send(update(seq + 5, seq + 3))  # every fresh book is followed by a gap

    draws: list[float] = []

    def draw() -> float:
        draws.append(0.5)
        return 0.5

    server = BookServer(on_subscribe)
    async with scripted(server) as (_, url), client(url) as marketcast:
        book_held = OrderBook(
            marketcast, "BTCUSDT", max_resyncs=2, backoff=Backoff(base=0.02, cap=0.02), random=draw
        )
        async with book_held:
            with pytest.raises(BookGapError, match="2 fresh books in a row"):
                await drain(book_held)
            assert isinstance(book_held.error, BookGapError)
            assert book_held.resyncs == 2
            assert not book_held.synced
            with pytest.raises(BookGapError):
                await book_held.wait_synced()
            await until(lambda: len(server.requests) == 6)
        # The first resubscription at once, the second after a backoff delay; then it stops
        # and unsubscribes what it no longer reads.
        assert draws == [0.5]
        assert server.types() == ["subscribe", "unsubscribe"] * 3
        assert marketcast.state == "open"
