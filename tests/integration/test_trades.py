"""The ``trades`` channel end to end: a real ``marketcast serve`` on 127.0.0.1 and real
WebSocket clients, against the simulator, the shipped FakeBinance (with upstream drops and a
killed upstream) and a Twelve Data symbol (which has no trades).

What is asserted is the client's view: every trade id once, strictly increasing, and no hole
where the source's ids are consecutive (the simulator numbers a symbol's trades 1, 2, 3, ...;
the fake Binance's aggregate trade ids are its tape's tick numbers), a snapshot continuous with
the stream that follows it, and every trades frame valid against the published document
(``docs/asyncapi.json``): through the consumer models generated from it, as every harness
client does, and through its own JSON Schema (the component message, and for raw streams the
raw channel's messages). Nothing waits a fixed time: each step waits, bounded, for the state
it needs, so a loaded machine stretches a test instead of breaking it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any, Final

import httpx
import jsonschema
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from marketcast.sim.binance import FakeBinance
from marketcast.sim.market import TICK_MS, FakeClock, Market
from marketcast.sim.twelvedata import FakeTwelveData
from tests.consumer import validate_server_frame
from tests.integration.harness import ROOT, SERVER_TYPES, Client, Server, client, served, until

pytestmark = pytest.mark.integration

PUBLISHED: Final = ROOT / "docs" / "asyncapi.json"
TRADES_TYPES: Final = {"trades.subscribe.response", "trades.unsubscribe.response", "trades.update"}
RAW_CHANNEL: Final = "stream/trades/{symbol}"
#: Generous bound for one step on a loaded machine; the steps take well under a second idle.
STEP: Final = 30.0


def topic(symbol: str) -> str:
    return f"trades:{json.dumps({'symbol': symbol}, separators=(',', ':'))}"


# ---- the published document's verdict ------------------------------------------------------


@cache
def document() -> dict[str, Any]:
    published: dict[str, Any] = json.loads(PUBLISHED.read_text())
    return published


@cache
def message_validator(type_: str) -> jsonschema.Draft7Validator:
    """The schema of the component message titled ``type_`` (AsyncAPI 2.6: draft 7)."""
    doc = document()
    refs = [
        m["payload"]["$ref"] for m in doc["components"]["messages"].values() if m["title"] == type_
    ]
    assert len(refs) == 1, f"docs/asyncapi.json documents {type_} {len(refs)} times"
    return jsonschema.Draft7Validator({"$ref": refs[0], "components": doc["components"]})


@cache
def raw_channel_validator() -> jsonschema.Draft7Validator:
    """What the raw trades channel documents the server sends."""
    doc = document()
    messages = doc["channels"][RAW_CHANNEL]["subscribe"]["message"]["oneOf"]
    refs = [{"$ref": m["payload"]["$ref"]} for m in messages]
    return jsonschema.Draft7Validator({"oneOf": refs, "components": doc["components"]})


def check_against_document(raw: str | bytes) -> dict[str, Any]:
    """``raw`` parsed, once both the consumer models and the document's schema accept it."""
    validate_server_frame(raw)
    frame: dict[str, Any] = orjson.loads(raw)
    if frame.get("type") in TRADES_TYPES:
        errors = [e.message for e in message_validator(frame["type"]).iter_errors(frame)]
        assert not errors, f"{frame} breaks docs/asyncapi.json: {errors}"
    return frame


class TradesClient(Client):
    """The harness client, also knowing the trades frames (the harness' list of server types
    predates them), each checked against the published document's schema."""

    async def recv(self, within: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(within):
            raw = await self.connection.recv()
        frame = check_against_document(raw)
        assert frame["type"] in SERVER_TYPES | TRADES_TYPES, frame
        assert isinstance(frame["payload"], dict), frame
        return frame


@contextlib.asynccontextmanager
async def trades_client(server: Server) -> AsyncIterator[TradesClient]:
    # The harness' client, for its bounded close; read through TradesClient.
    async with client(server, max_queue=None) as c:
        yield TradesClient(c.connection)


# ---- a client's trades, read in the background -----------------------------------------------


class Tape:
    """Every frame a client receives, read by a task of its own; ``trades`` are the payloads
    of the ``trades.update`` frames of one topic, in arrival order."""

    def __init__(self, c: TradesClient, symbol: str) -> None:
        self.client, self.topic = c, topic(symbol)
        self.frames: list[dict[str, Any]] = []
        self.trades: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            frame = await self.client.recv(within=STEP)
            self.frames.append(frame)
            if frame["type"] == "trades.update" and frame["payload"]["topic"] == self.topic:
                self.trades.append(frame["payload"])

    def newest(self) -> int:
        """The newest trade id received (-1: none yet); the reader's failure, if it failed."""
        if self.task.done() and not self.task.cancelled():
            self.task.result()
        return self.trades[-1]["id"] if self.trades else -1

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    def ids(self) -> list[int]:
        return [t["id"] for t in self.trades]


def assert_once_each_in_order(ids: list[int], what: str) -> None:
    assert ids, f"{what}: no trades"
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    assert not repeated, f"{what}: delivered twice: {repeated}"
    backwards = [(a, b) for a, b in pairwise(ids) if b <= a]
    assert not backwards, f"{what}: out of order: {backwards}"
    holes = [(a, b) for a, b in pairwise(ids) if b != a + 1]
    assert not holes, f"{what}: trades missing between {holes}"


# ---- 1. the simulator, and a snapshot continuous with the stream ----------------------------


async def test_simulator_trades_arrive_in_order_and_a_snapshot_joins_the_stream(
    server: Server,
) -> None:
    """Default sources (the simulator): ids 1, 2, 3, ... each once, every frame as the
    document says; a second client's ``snapshot: 20`` is the newest 20 trades, equal to what
    the first client received, and its stream goes on from the next id."""
    symbol = "BTCUSDT"
    async with trades_client(server) as first, trades_client(server) as second:
        reply = await first.request("trades.subscribe", {"symbol": symbol, "params": {}})
        assert reply["type"] == "trades.subscribe.response", reply
        assert reply["payload"]["status"] == "ok", reply
        assert (reply["payload"]["symbol"], reply["payload"]["topic"]) == (symbol, topic(symbol))
        assert not reply["payload"].get("trades"), "no snapshot asked for"
        tape = Tape(first, symbol)
        try:
            await until(lambda: len(tape.trades) >= 40, STEP, "40 trades on the first client")

            reply = await second.request(
                "trades.subscribe", {"symbol": symbol, "params": {}, "snapshot": 20}
            )
            assert reply["type"] == "trades.subscribe.response", reply
            assert reply["payload"]["status"] == "ok", reply
            snapshot = reply["payload"]["trades"]
            assert len(snapshot) == 20, snapshot
            following = Tape(second, symbol)
            try:
                last = snapshot[-1]["id"]
                await until(
                    lambda: following.newest() >= last + 20, STEP, "20 trades after the snapshot"
                )
            finally:
                await following.stop()
            await until(
                lambda: tape.newest() >= following.newest(), STEP, "the first client catching up"
            )
        finally:
            await tape.stop()

        # The first client: every trade once, in order, from the simulator's first one.
        assert_once_each_in_order(tape.ids(), "first client")
        assert tape.ids()[0] == 1, "the symbol's tape starts at 1 for its first watcher"
        for trade in tape.trades:
            assert trade["symbol"] == symbol
            assert trade["price"] > 0
            assert trade["quantity"] > 0
        times = [t["time"] for t in tape.trades]
        assert times == sorted(times)

        # The second client: snapshot (oldest first), then the stream, with no gap and no
        # repeat at the seam; the snapshot is the trades the first client received.
        joined = [t["id"] for t in snapshot] + following.ids()
        assert_once_each_in_order(joined, "second client: snapshot + stream")
        assert not [f for f in following.frames if f["type"] != "trades.update"], "stray frames"
        by_id = {t["id"]: t for t in tape.trades}
        for record in snapshot:
            live = {k: v for k, v in by_id[record["id"]].items() if k not in ("topic", "symbol")}
            assert record == live, (record, live)
        for trade in following.trades:
            assert trade == by_id[trade["id"]], "both clients see the same trade"

        # The document the server serves says what docs/asyncapi.json says of trades.
        async with httpx.AsyncClient() as http:
            served_doc = (await http.get(f"{server.http}/api/v1/ws/asyncapi.json")).json()
        published = document()["components"]["schemas"]
        for name in ("TradesUpdateMessage", "TradesUpdatePayload", "TradeRecord"):
            assert served_doc["components"]["schemas"][name] == published[name], name


# ---- 2. Binance through drops and a killed upstream ------------------------------------------


def now_id(market: Market) -> int:
    """The id of the fake's newest trade (one per tick of its tape)."""
    return market.clock.now_ms() // TICK_MS


def agg_trade_fills(fake: FakeBinance) -> int:
    return sum(1 for _, path, params, _ in fake.rest_requests if path == "/api/v3/aggTrades")


async def test_binance_trades_reach_the_client_once_each_without_a_hole_across_drops(
    tmp_path: Path,
) -> None:
    """The server's Binance feed against FakeBinance (60x: a trade every ~83 ms): a plain
    drop, a drop with reconnects refused for a while, then a killed upstream (REST down too)
    that comes back on its port. The client sees every aggregate trade once, in id order,
    with the fake's values; the holes were closed by ``GET /api/v3/aggTrades?fromId=``; a
    client arriving afterwards gets a snapshot spanning the holes, continuous with its stream."""
    symbol = "BTCUSDT"
    market = Market([symbol], clock=FakeClock(60.0), history_days=0.1)
    fake = FakeBinance(market, push_interval=0.05, ping_interval=2.0, shutdown_grace=0.2)
    await fake.start()
    try:
        async with (
            served(
                tmp_path,
                binance_symbols=symbol,
                binance_ws_url=fake.ws_url,
                binance_rest_url=fake.rest_url,
                binance_reconnect_min=0.05,
                binance_reconnect_max=0.5,
                stream_grace_period=0.5,
                sim_symbols="AAPL",
            ) as server,
            trades_client(server) as c,
            trades_client(server) as late,
        ):
            reply = await c.request("trades.subscribe", {"symbol": symbol, "params": {}})
            assert reply["type"] == "trades.subscribe.response", reply
            assert reply["payload"]["status"] == "ok", reply
            tape = Tape(c, symbol)
            try:
                await until(lambda: len(tape.trades) >= 5, STEP, "the first trades")
                assert f"{symbol.lower()}@aggTrade" in fake.subscriptions()

                # 1. A drop: the server reconnects at once.
                dropped_at = now_id(market)
                fake.drop()
                await until(lambda: tape.newest() > dropped_at + 5, STEP, "trades after drop 1")

                # 2. A drop, and reconnects refused long enough for trades to be missed.
                fills = agg_trade_fills(fake)
                dropped_at = now_id(market)
                fake.drop()
                fake.refuse_connections(0.6)
                await until(lambda: now_id(market) >= dropped_at + 5, STEP, "trades while down")
                await until(lambda: tape.newest() > dropped_at + 5, STEP, "trades after drop 2")
                await until(lambda: agg_trade_fills(fake) > fills, STEP, "the hole of drop 2")

                # 3. The upstream dies (port closed, REST too) and comes back on its port.
                fills = agg_trade_fills(fake)
                killed_at = now_id(market)
                await fake.kill()
                await until(lambda: now_id(market) >= killed_at + 5, STEP, "trades while dead")
                await fake.start()
                await until(lambda: tape.newest() > killed_at + 5, STEP, "trades after the kill")
                await until(lambda: agg_trade_fills(fake) > fills, STEP, "the hole of the kill")

                # 4. A client arriving now: its snapshot holds the filled trades, in order,
                # and the stream goes on from the next one.
                reply = await late.request(
                    "trades.subscribe", {"symbol": symbol, "params": {}, "snapshot": 500}
                )
                assert reply["type"] == "trades.subscribe.response", reply
                snapshot = reply["payload"]["trades"]
                assert snapshot, reply
                following = Tape(late, symbol)
                try:
                    last = snapshot[-1]["id"]
                    await until(lambda: following.newest() >= last + 5, STEP, "after the snapshot")
                finally:
                    await following.stop()
                await until(lambda: tape.newest() >= following.newest(), STEP, "the first client")
            finally:
                await tape.stop()
    finally:
        await fake.stop()

    joined = [t["id"] for t in snapshot] + following.ids()
    assert_once_each_in_order(joined, "late client: snapshot + stream")
    assert snapshot[0]["id"] <= dropped_at < killed_at < snapshot[-1]["id"], "holes in snapshot"
    by_id = {t["id"]: t for t in tape.trades}
    for record in snapshot:
        if record["id"] in by_id:
            live = {k: v for k, v in by_id[record["id"]].items() if k not in ("topic", "symbol")}
            assert record == live, (record, live)
    assert all(t == by_id[t["id"]] for t in following.trades), "both clients see the same trade"

    ids = tape.ids()
    assert_once_each_in_order(ids, "client across drops")
    assert ids[-1] - ids[0] >= 15
    assert len(fake.connections) >= 3, "the drops and the kill each cost a connection"
    # Gaps are filled by id; the one request without an id is the tape a watch starts from.
    requests = [p for _, path, p, _ in fake.rest_requests if path.endswith("Trades")]
    assert [p for p in requests if "fromId" not in p] == [{"symbol": symbol, "limit": "500"}]
    ticks = market.tapes[symbol]
    for trade in tape.trades:
        tick = ticks.tick(trade["id"])
        assert trade["time"] == trade["id"] * TICK_MS, trade
        assert trade["side"] == ("buy" if tick.taker_volume else "sell"), trade
        assert (trade["price"], trade["quantity"]) == pytest.approx((tick.close, tick.volume))


# ---- 3. a Twelve Data symbol has no trades -----------------------------------------------------

TD_KEY: Final = "td-trades-secret"


async def test_a_twelvedata_symbol_refuses_trades_and_the_connection_stays_open(
    tmp_path: Path,
) -> None:
    market = Market(["EUR/USD"], clock=FakeClock(60.0), history_days=0.5)
    fake = FakeTwelveData(market, api_key=TD_KEY)
    await fake.start()
    try:
        async with (
            served(
                tmp_path,
                twelvedata_symbols="EUR/USD",
                twelvedata_rest_url=fake.rest_url,
                twelvedata_api_key=TD_KEY,
                stream_grace_period=0.5,
                sim_symbols="AAPL",
            ) as server,
            trades_client(server) as c,
        ):
            refused = await c.request("trades.subscribe", {"symbol": "EUR/USD", "params": {}})
            assert refused["type"] == "error", refused
            assert refused["payload"]["code"] == "unsupported_channel", refused

            # Still open, and still serving: a ping, then trades of a symbol that has them.
            pong = await c.request("ping")
            assert pong["type"] == "pong", pong
            ok = await c.request("trades.subscribe", {"symbol": "AAPL", "params": {}})
            assert ok["type"] == "trades.subscribe.response", ok
            assert ok["payload"]["status"] == "ok", ok
            update = await c.recv_until(lambda f: f["type"] == "trades.update", within=STEP)
            assert update["payload"]["symbol"] == "AAPL"

            # The raw stream of the same symbol: one error, then 4404.
            url = f"{server.ws}/stream/trades/EUR%2FUSD"
            async with connect(url, open_timeout=10, close_timeout=2) as ws:
                async with asyncio.timeout(STEP):
                    error = check_against_document(await ws.recv())
                    with pytest.raises(ConnectionClosed) as closed:
                        await ws.recv()
    finally:
        await fake.stop()
    assert error["type"] == "error", error
    assert error["payload"]["code"] == "unsupported_channel", error
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4404, "unsupported_channel")


# ---- 4. the raw stream -----------------------------------------------------------------------


async def test_raw_trades_stream_pushes_every_trade_in_order(server: Server) -> None:
    symbol = "ETHUSDT"
    frames: list[dict[str, Any]] = []
    async with connect(f"{server.ws}/stream/trades/{symbol}", open_timeout=10) as ws:
        async with asyncio.timeout(STEP):
            while len(frames) < 30:
                raw = await ws.recv()
                frame = check_against_document(raw)
                errors = [e.message for e in raw_channel_validator().iter_errors(frame)]
                assert not errors, f"{frame} is not what {RAW_CHANNEL} documents: {errors}"
                frames.append(frame)
    assert {f["type"] for f in frames} == {"trades.update"}
    assert {(f["payload"]["symbol"], f["payload"]["topic"]) for f in frames} == {
        (symbol, topic(symbol))
    }
    assert_once_each_in_order([f["payload"]["id"] for f in frames], "raw stream")


@pytest.mark.parametrize(
    ("path", "code"), [("NOPE", "unknown_symbol"), ("btcusdt", "invalid_symbol")]
)
async def test_a_raw_trades_stream_not_served_is_explained_then_closed(
    server: Server, path: str, code: str
) -> None:
    async with connect(f"{server.ws}/stream/trades/{path}", open_timeout=10) as ws:
        async with asyncio.timeout(STEP):
            error = check_against_document(await ws.recv())
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
    assert error["type"] == "error", error
    assert error["payload"]["code"] == code, error
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4404, code)
