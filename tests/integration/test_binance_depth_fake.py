"""The shipped FakeBinance's order books on 127.0.0.1: ``<symbol>@depth@100ms`` / ``@depth`` diff
events, ``GET /api/v3/depth``, and the faults it injects.

Why these checks: the book sync (``test_binance_depth_sync``) is only proven against the real
Binance if the fake speaks its wire format and its faults are exactly what the fake records.
There are no depth captures in ``tests/fixtures/upstreams``, so the shape is checked against
the documented payloads and, where the captures do say something, against them: the
combined-stream envelope of ``ws_kline_combined_slfusdt_1m.json`` and the 8-place decimal
strings of every Binance capture. The faults are checked against the wire: the events missing
from it are exactly the ones recorded as dropped, a repeat comes twice in a row, a swapped
event right after its successor, and the 1000 ms stream never merges across a drop.

The fake's clock runs 10x (an event every 10 ms of wall time); nothing waits a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from marketcast.book.levels import OrderBook, decimal_rows, parse_levels
from marketcast.sim.binance import FakeBinance
from marketcast.sim.market import TICK_MS, FakeClock, Market
from tests.integration.harness import until

pytestmark = pytest.mark.integration

CAPTURES = Path(__file__).resolve().parents[1] / "fixtures" / "upstreams" / "binance"
SPEED = 10.0
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
WEIGHT = "x-mbx-used-weight-1m"
#: Binance's decimal strings, as in every capture: digits, a point, 8 places.
DECIMAL = re.compile(r"^\d+\.\d{8}$")
PAYLOAD_KEYS = {"e", "E", "s", "U", "u", "b", "a"}
#: Frames read per wait at most: every read loop is bounded by count as well as by time.
MAX_FRAMES = 5_000


@contextlib.asynccontextmanager
async def fake_binance(**options: Any) -> AsyncIterator[tuple[Market, FakeBinance]]:
    market = Market(SYMBOLS, clock=FakeClock(SPEED), history_days=0.1)
    fake = FakeBinance(market, push_interval=0.05, ping_interval=2.0, **options)
    await fake.start()
    try:
        yield market, fake
    finally:
        await fake.stop()


async def frames(ws: ClientConnection, count: int, within: float = 15.0) -> list[dict[str, Any]]:
    """The next ``count`` data frames (control replies skipped), failing after ``within`` s."""
    out: list[dict[str, Any]] = []
    async with asyncio_timeout(within, f"{count} frames"):
        for _ in range(MAX_FRAMES):
            frame = orjson.loads(await ws.recv())
            if "result" not in frame:
                out.append(frame)
            if len(out) == count:
                return out
    raise AssertionError(f"expected {count} data frames within {MAX_FRAMES} frames")


@contextlib.asynccontextmanager
async def asyncio_timeout(seconds: float, what: str) -> AsyncIterator[None]:
    """``asyncio.timeout`` whose failure names what was awaited."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise AssertionError(f"not within {seconds} s: {what}") from None


def ids(payload: dict[str, Any]) -> tuple[int, int]:
    return payload["U"], payload["u"]


async def request(ws: ClientConnection, message: dict[str, Any]) -> tuple[Any, list[Any]]:
    """Send a control ``message``; its reply, and the data frames that came before it."""
    await ws.send(orjson.dumps(message).decode())
    before: list[Any] = []
    async with asyncio_timeout(15, f"the reply to {message}"):
        for _ in range(MAX_FRAMES):
            frame = orjson.loads(await ws.recv())
            if "stream" not in frame and frame.get("id") == message["id"]:
                return frame, before
            before.append(frame)
    raise AssertionError(f"no reply to {message} within {MAX_FRAMES} frames")


def assert_levels(levels: object, tick: str, lot: str) -> None:
    """Binance's ``[["price", "qty"], ...]``: decimal strings on the instrument's grid."""
    assert isinstance(levels, list), levels
    for level in levels:
        assert isinstance(level, list), level
        assert len(level) == 2, level
        price, qty = level
        assert DECIMAL.match(price), price
        assert DECIMAL.match(qty), qty
        assert Decimal(price) > 0, level
        assert Decimal(price) % Decimal(tick) == 0, level
        assert Decimal(qty) % Decimal(lot) == 0, level


async def test_diff_events_are_depth_updates_in_combined_frames_like_the_captures() -> None:
    capture = orjson.loads((CAPTURES / "ws_kline_combined_slfusdt_1m.json").read_bytes())
    assert DECIMAL.match(capture["data"]["k"]["o"])  # the captures' decimal format
    async with fake_binance() as (market, fake):
        async with connect(f"{fake.ws_url}/stream?streams=btcusdt@depth@100ms") as ws:
            got = await frames(ws, 40)
        now = market.clock.now_ms()
    removals = 0
    for frame, following in pairwise(got):
        assert set(following) == set(capture) == {"stream", "data"}
        assert following["stream"] == "btcusdt@depth@100ms"
        data, before = following["data"], frame["data"]
        assert set(data) == PAYLOAD_KEYS
        assert data["e"] == "depthUpdate"
        assert data["s"] == "BTCUSDT"  # upper case, as the capture's "s"
        assert all(type(data[k]) is int for k in ("E", "U", "u"))
        assert data["U"] <= data["u"]
        assert data["U"] == before["u"] + 1, "no faults injected: the ids chain"
        assert before["E"] < data["E"] <= now
        assert data["E"] % 100 == 0, "one event per 100 ms of the fake's clock"
        assert data["b"] or data["a"]
        assert_levels(data["b"], "0.01", "0.00001")  # BTCUSDT's tick and lot
        assert_levels(data["a"], "0.01", "0.00001")
        removals += sum(Decimal(q) == 0 for _, q in data["b"] + data["a"])
    assert removals > 0, "a quantity of 0 removes a level"


async def test_raw_frames_subscribe_and_the_1000ms_stream_merges_the_100ms_events() -> None:
    async with fake_binance() as (_, fake):
        async with connect(f"{fake.ws_url}/ws/ethusdt@depth@100ms") as raw:
            for payload in await frames(raw, 3):
                assert set(payload) == PAYLOAD_KEYS, "a raw stream sends the bare payload"
        async with connect(f"{fake.ws_url}/stream") as ws:
            bad = {"method": "SUBSCRIBE", "params": ["ethusdt@depth@250ms"], "id": 1}
            assert (await request(ws, bad))[0]["error"]["code"] == 2
            unknown = {"method": "SUBSCRIBE", "params": ["nopeusdt@depth"], "id": 2}
            assert (await request(ws, unknown))[0]["error"]["code"] == 2
            params = ["ethusdt@depth", "ethusdt@depth@100ms"]
            subscribe = {"method": "SUBSCRIBE", "params": params, "id": 3}
            assert (await request(ws, subscribe))[0] == {"result": None, "id": 3}
            listed, early = await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 4})
            assert listed == {"result": params, "id": 4}
            slow: list[dict[str, Any]] = []
            fast: list[dict[str, Any]] = []
            async with asyncio_timeout(15, "4 events of ethusdt@depth and the 100ms ones"):
                for _ in range(MAX_FRAMES):
                    frame = early.pop(0) if early else orjson.loads(await ws.recv())
                    (slow if frame["stream"] == "ethusdt@depth" else fast).append(frame["data"])
                    if len(slow) >= 4 and fast and fast[-1]["u"] >= slow[3]["u"]:
                        break
    for before, after in pairwise(slow[:4]):
        assert after["U"] == before["u"] + 1, "no faults: the merged events chain"
        assert after["E"] // 1000 > before["E"] // 1000, "one event per second of fake time"
    for event in slow[:4]:
        assert set(event) == PAYLOAD_KEYS
        parts = [f for f in fast if event["U"] <= f["U"] and f["u"] <= event["u"]]
        assert parts, event
        assert (parts[0]["U"], parts[-1]["u"]) == ids(event), "covers whole 100 ms events"
        assert all(b["U"] == a["u"] + 1 for a, b in pairwise(parts))
        for side in ("b", "a"):
            latest: dict[str, str] = {}
            for part in parts:
                latest.update((p, q) for p, q in part[side])
            assert dict((p, q) for p, q in event[side]) == latest, "each level's last quantity"
            prices = [Decimal(p) for p, _ in event[side]]
            assert prices == sorted(prices, reverse=side == "b"), "best first"


async def weight_of(client: httpx.AsyncClient, params: dict[str, str]) -> int:
    """The weight ``GET /api/v3/depth`` with ``params`` added to ``X-MBX-USED-WEIGHT-1M`` (a
    ping, weight 1, reads it before; retried if the fake's weight minute turned meanwhile)."""
    for _ in range(3):
        minute = int(time.time() // 60)
        before = int((await client.get("/api/v3/ping")).headers[WEIGHT])
        after = int((await client.get("/api/v3/depth", params=params)).headers[WEIGHT])
        if int(time.time() // 60) == minute:
            return after - before
    raise AssertionError("the minute turned during each of three tries")


async def test_rest_depth_is_the_documented_body_with_its_limits_and_weights() -> None:
    async with (
        fake_binance() as (market, fake),
        httpx.AsyncClient(base_url=fake.rest_url) as client,
    ):
        response = await client.get("/api/v3/depth", params={"symbol": "BTCUSDT"})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert set(body) == {"lastUpdateId", "bids", "asks"}
        assert type(body["lastUpdateId"]) is int
        truth = fake.true_book("BTCUSDT", body["lastUpdateId"])
        assert truth is not None, "no faults: the snapshot is the newest true book"
        bids, asks = truth
        assert (body["bids"], body["asks"]) == (bids[:100], asks[:100]), "limit 100 by default"
        assert_levels(body["bids"], "0.01", "0.00001")
        assert_levels(body["asks"], "0.01", "0.00001")
        assert all(Decimal(q) > 0 for _, q in body["bids"] + body["asks"])
        bid_prices = [Decimal(p) for p, _ in body["bids"]]
        ask_prices = [Decimal(p) for p, _ in body["asks"]]
        assert bid_prices == sorted(bid_prices, reverse=True)
        assert ask_prices == sorted(ask_prices)
        assert bid_prices[0] < ask_prices[0]
        last_trade = market.tapes["BTCUSDT"].tick(market.clock.now_ms() // TICK_MS).close
        mid = (bid_prices[0] + ask_prices[0]) / 2
        assert abs(float(mid) / last_trade - 1) < 2e-3, "the book is around the market's price"

        for limit, levels in (("5", 5), ("5000", 5000), ("6000", 5000)):
            body = (
                await client.get("/api/v3/depth", params={"symbol": "ETHUSDT", "limit": limit})
            ).json()
            truth = fake.true_book("ETHUSDT", body["lastUpdateId"])
            assert truth is not None
            assert (body["bids"], body["asks"]) == (truth[0][:levels], truth[1][:levels])

        weights: list[tuple[str | None, int]] = [
            (None, 5),
            ("1", 5),
            ("100", 5),
            ("101", 25),
            ("500", 25),
            ("501", 50),
            ("1000", 50),
            ("1001", 250),
            ("5000", 250),
        ]
        for sent, weight in weights:
            params = {"symbol": "BTCUSDT"} | ({"limit": sent} if sent else {})
            assert await weight_of(client, params) == weight, sent

        for params, code in [
            ({}, -1102),
            ({"symbol": "NOPEUSDT"}, -1121),
            ({"symbol": "BTCUSDT", "limit": "abc"}, -1100),
            ({"symbol": "BTCUSDT", "limit": "-5"}, -1100),
            ({"symbol": "BTCUSDT", "limit": "0"}, -1130),
        ]:
            response = await client.get("/api/v3/depth", params=params)
            assert response.status_code == 400, params
            assert response.json()["code"] == code, params


async def test_the_documented_join_of_stream_and_snapshot_gives_the_true_book() -> None:
    """Binance's procedure, written out here (not ``BinanceBookSync``): buffer, snapshot, drop
    ``u <= lastUpdateId``, the first kept straddles it, then apply in order."""
    async with (
        fake_binance() as (_, fake),
        connect(f"{fake.ws_url}/stream?streams=ethusdt@depth@100ms") as ws,
        httpx.AsyncClient(base_url=fake.rest_url) as client,
    ):
        buffered = [f["data"] for f in await frames(ws, 1)]
        params = {"symbol": "ETHUSDT", "limit": "1000"}
        snapshot = (await client.get("/api/v3/depth", params=params)).json()
        last = snapshot["lastUpdateId"]
        async with asyncio_timeout(15, "5 events past the snapshot"):
            for _ in range(MAX_FRAMES):
                if sum(e["u"] > last for e in buffered) >= 5:
                    break
                buffered += [f["data"] for f in await frames(ws, 1)]
        bids = parse_levels(snapshot["bids"], "bids")
        book = OrderBook(bids, parse_levels(snapshot["asks"], "asks"), last)
        kept = [e for e in buffered if e["u"] > last]
        assert kept[0]["U"] <= last + 1 <= kept[0]["u"], "the first kept straddles the snapshot"
        for event in kept:
            assert event["U"] == book.seq + 1 or book.seq == last
            book.apply(parse_levels(event["b"], "b"), parse_levels(event["a"], "a"))
            book.seq = event["u"]
            truth = fake.true_book("ETHUSDT", book.seq)
            assert truth is not None
            assert book.decimals() == (decimal_rows(truth[0]), decimal_rows(truth[1]))
    assert len(kept) >= 5


async def test_dropped_repeated_and_swapped_events_are_exactly_what_the_fake_records() -> None:
    async with fake_binance() as (_, fake):
        fake.depth_faults(drop=0.15, duplicate=0.15, reorder=0.15)
        streams = "btcusdt@depth@100ms/btcusdt@depth"
        async with connect(f"{fake.ws_url}/stream?streams={streams}") as ws:
            wire: list[dict[str, Any]] = []
            slow: list[dict[str, Any]] = []
            async with asyncio_timeout(20, "200 events of btcusdt@depth@100ms"):
                for _ in range(MAX_FRAMES):
                    frame = orjson.loads(await ws.recv())
                    (wire if frame["stream"].endswith("@100ms") else slow).append(frame["data"])
                    if len(wire) >= 200:
                        break
        record = fake.depth.records("BTCUSDT")
    # The window: clear of events held back across its edges (a swapped event comes at most
    # one step, three frames, after its successor).
    low: int = wire[10]["U"]
    high: int = wire[-10]["u"]

    def inside(pair: tuple[int, int]) -> bool:
        return low <= pair[0] and pair[1] <= high

    dropped = [p for p in record.dropped if inside(p)]
    duplicated = [p for p in record.duplicated if inside(p)]
    reordered = [p for p in record.reordered if inside(p)]
    assert dropped, "a 15% drop rate over 200 events drops some"
    assert duplicated
    assert reordered
    sent = [ids(e) for e in wire]
    # Nothing missing but the dropped events, nothing invented: the distinct events on the
    # wire and the dropped ones chain without a gap or an overlap.
    covered = sorted({p for p in sent if inside(p)} | set(dropped))
    assert covered[0][0] == low
    assert covered[-1][1] == high
    assert all(b[0] == a[1] + 1 for a, b in pairwise(covered)), "a gap no fault explains"
    assert not set(dropped) & set(sent), "a dropped event was sent"
    for pair in {p for p in sent if inside(p)}:
        assert sent.count(pair) == (2 if pair in duplicated else 1), pair
    for pair in duplicated:
        at = sent.index(pair)
        assert sent[at + 1] == pair, "a repeat comes right after the event"
        assert wire[at] == wire[at + 1]
    for pair in reordered:
        at = sent.index(pair)
        successor = covered[covered.index(pair) + 1]
        if successor not in dropped:  # with its successor dropped, it comes alone, in order
            assert sent[at - 1] == successor, "a swapped event comes right after its successor"
    # The 1000 ms stream merges only chained events: no merged event spans a dropped one.
    assert len(slow) >= 3
    for event in slow:
        for gone in record.dropped:
            assert not (event["U"] <= gone[0] and gone[1] <= event["u"]), (ids(event), gone)


async def test_lagging_snapshots_are_true_past_books() -> None:
    async with (
        fake_binance() as (market, fake),
        httpx.AsyncClient(base_url=fake.rest_url) as client,
    ):
        params = {"symbol": "BTCUSDT", "limit": "5000"}
        first = (await client.get("/api/v3/depth", params=params)).json()
        assert first["lastUpdateId"] == fake.depth.newest_id("BTCUSDT"), "no faults: newest"
        start = market.clock.now_ms()
        await until(lambda: market.clock.now_ms() > start + 1_000, 15, "ten steps of the book")
        fake.depth_faults(lagging_snapshot=1.0, max_lag=3)
        for count in range(1, 6):
            body = (await client.get("/api/v3/depth", params=params)).json()
            newest = fake.depth.newest_id("BTCUSDT")
            assert newest is not None
            assert body["lastUpdateId"] < newest, "older than the stream"
            assert list(fake.depth.records("BTCUSDT").lagged)[-1] == (body["lastUpdateId"], newest)
            assert len(fake.depth.records("BTCUSDT").lagged) == count
            truth = fake.true_book("BTCUSDT", body["lastUpdateId"])
            assert (body["bids"], body["asks"]) == truth, "a book that was true, earlier"
        assert fake.depth.records("BTCUSDT").snapshots == 6


async def test_true_book_is_none_where_no_event_ended() -> None:
    async with fake_binance() as (_, fake):
        async with connect(f"{fake.ws_url}/stream?streams=btcusdt@depth@100ms") as ws:
            event = next(f["data"] for f in await frames(ws, 5) if f["data"]["U"] < f["data"]["u"])
        assert fake.true_book("BTCUSDT", event["u"]) is not None
        assert fake.true_book("BTCUSDT", event["U"]) is None, "inside an event: no such state"
        assert fake.true_book("BTCUSDT", 1) is None
        assert fake.true_book("ETHUSDT", event["u"]) is None, "a book never asked for"
