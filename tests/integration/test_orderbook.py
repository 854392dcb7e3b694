"""The ``orderbook`` family end to end: a real server on 127.0.0.1 (the simulator's books,
joined as Binance's are) and real WebSocket clients, every frame checked against the
published contract by the harness.

- ``diff``: the reply's book and ``seq``, then diffs whose ``prev_seq`` is always the ``seq``
  the client holds; a second client joining later gets a snapshot equal to the first client's
  book at that ``seq``.
- ``levels``: the best ``depth`` levels, sorted, never crossed.
"""

from __future__ import annotations

from typing import Any, Final

import pytest
from websockets.asyncio.client import connect

from marketcast.book.levels import OrderBook
from tests.integration.harness import Client, client, in_process_server

pytestmark = pytest.mark.integration

SETTINGS: Final = {"sim_tick_interval": 0.05, "sim_speed": 60}
DIFF: Final = {"symbol": "BTCUSDT", "params": {"mode": "diff"}}


def book_of(snapshot: dict[str, Any]) -> OrderBook:
    return OrderBook(snapshot["bids"], snapshot["asks"], snapshot["seq"])


def check_sorted(bids: list[list[float]], asks: list[list[float]]) -> None:
    assert [p for p, _ in bids] == sorted((p for p, _ in bids), reverse=True)
    assert [p for p, _ in asks] == sorted(p for p, _ in asks)
    assert all(q > 0 for _, q in bids + asks)
    if bids and asks:
        assert bids[0][0] < asks[0][0], "a crossed book"


async def next_diff(conn: Client, book: OrderBook) -> None:
    """Apply the next update of the diff topic to ``book``; a diff must continue it."""
    frame = await conn.recv_until(lambda f: f["type"] == "orderbook.update", within=30)
    update = frame["payload"]
    assert update["mode"] == "diff"
    if update.get("reset"):
        book.replace(update["bids"], update["asks"], update["seq"])
        return
    assert update["prev_seq"] == book.seq, "a diff that does not continue the book held"
    assert update["seq"] > update["prev_seq"]
    book.apply(update["bids"], update["asks"])
    book.seq = update["seq"]


async def test_diff_clients_never_see_a_gap_and_agree_with_a_later_snapshot() -> None:
    async with in_process_server(SETTINGS) as server, client(server) as first:
        reply = await first.request("orderbook.subscribe", DIFF)
        assert reply["type"] == "orderbook.subscribe.response", reply
        assert reply["payload"]["topic"] == 'orderbook:{"mode":"diff","symbol":"BTCUSDT"}'
        held = book_of(reply["payload"]["book"])
        check_sorted(*held.snapshot())
        for _ in range(20):
            await next_diff(first, held)
        async with client(server) as second:
            later = await second.request("orderbook.subscribe", DIFF)
            theirs = book_of(later["payload"]["book"])
            assert theirs.seq > reply["payload"]["book"]["seq"]
            for _ in range(500):  # the first client reaches the second's seq...
                if held.seq >= theirs.seq:
                    break
                await next_diff(first, held)
            assert held == theirs  # ...and holds the same book there
            for _ in range(20):  # both go on from there, each continuous
                await next_diff(first, held)
                await next_diff(second, theirs)
            while theirs.seq < held.seq:
                await next_diff(second, theirs)
            assert theirs == held
            check_sorted(*held.snapshot())


async def test_levels_are_the_best_depth_sorted_and_uncrossed() -> None:
    async with in_process_server(SETTINGS) as server, client(server) as conn:
        reply = await conn.request(
            "orderbook.subscribe", {"symbol": "ETHUSDT", "params": {"depth": 5}}
        )
        payload = reply["payload"]
        assert payload["topic"] == 'orderbook:{"depth":5,"mode":"levels","symbol":"ETHUSDT"}'
        assert 0 < len(payload["book"]["bids"]) <= 5
        check_sorted(payload["book"]["bids"], payload["book"]["asks"])
        seqs = [payload["book"]["seq"]]
        for _ in range(5):
            frame = await conn.recv_until(lambda f: f["type"] == "orderbook.update", within=30)
            update = frame["payload"]
            assert (update["mode"], update["depth"]) == ("levels", 5)
            assert len(update["bids"]) == len(update["asks"]) == 5
            check_sorted(update["bids"], update["asks"])
            seqs.append(update["seq"])
        assert seqs == sorted(seqs)
        listed = await conn.request("subscriptions.list")
        entry = listed["payload"]["subscriptions"][0]
        assert (entry["route"], entry["params"]) == ("orderbook", {"mode": "levels", "depth": 5})


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"mode": "diff", "depth": 5}, "depth 5 applies to levels mode only"),
        ({"mode": "ladder"}, "mode"),
        ({"depth": 7}, "depth"),
    ],
)
async def test_refused_params_get_a_validation_error(params: dict[str, Any], expected: str) -> None:
    async with in_process_server(SETTINGS) as server, client(server) as conn:
        reply = await conn.request("orderbook.subscribe", {"symbol": "BTCUSDT", "params": params})
        assert reply["type"] == "error", reply
        assert reply["payload"]["code"] == "validation_error"
        assert expected in reply["payload"]["message"]


@pytest.mark.parametrize(
    ("path", "mode"),
    [("orderbook/BTCUSDT/levels/10", "levels"), ("orderbook/BTCUSDT/diff/0", "diff")],
)
async def test_raw_streams_of_both_modes(path: str, mode: str) -> None:
    async with (
        in_process_server(SETTINGS) as server,
        connect(f"{server.ws}/stream/{path}", open_timeout=30) as ws,
    ):
        conn = Client(ws)
        for _ in range(3):
            frame = await conn.recv_until(lambda f: f["type"] == "orderbook.update", within=30)
            assert frame["payload"]["mode"] == mode
            assert frame["payload"]["symbol"] == "BTCUSDT"
