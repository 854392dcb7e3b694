"""Issue 14, "Numbers on the wire": no simulated number has more decimals than its instrument.

Prices have at most the instrument's price decimals, sizes and volumes at most its size
decimals (``sim_prices.Profile``), read from the frames' JSON text itself as decimals — so
``5.434880000000001``, a float sum of trade sizes, fails where ``5.43488`` passes. Integral
values written ``12.0`` have no decimals.

- The whole ingest path on a fake clock (feed -> stream manager -> store -> bus -> frames),
  as ``tests/unit/test_rewatch_backfill.py`` drives it: an hour of simulated trading, every
  update frame of every family and the snapshots kept for them, in no real time.
- A real server (``integration``): the frames a WebSocket client receives, snapshot replies
  included, for a few real seconds at 60 simulated seconds per second.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Final

import orjson
import pytest
from websockets.asyncio.client import connect

from marketcast.bus.memory import MemoryBus
from marketcast.channels.trades import TradeKey
from marketcast.feeds.sim_prices import profile_for
from marketcast.feeds.simulator import SimulatorFeed
from marketcast.market import BarKey, QuoteKey, StreamKey
from marketcast.settings import DEFAULT_SIM_SYMBOLS
from marketcast.store.memory import MemoryCandleStore
from marketcast.streams import StreamManager
from marketcast.wire import Frame, candle_dict
from tests.consumer import validate_server_frame
from tests.integration.harness import Client, Server
from tests.unit.test_simulator import FakeTime

PRICE_FIELDS: Final = frozenset({"open", "high", "low", "close", "bid", "ask", "last", "change"})
PRICE_FIELDS_OF_TRADES: Final = frozenset({"price"})
SIZE_FIELDS: Final = frozenset({"volume", "quantity"})
#: ``change_percent`` is a percentage, not an instrument's value: four decimals.
PERCENT_DECIMALS: Final = 4
#: The defaults plus a yen pair (3 price decimals) and a pair priced in bitcoin (8).
SYMBOLS: Final = (*DEFAULT_SIM_SYMBOLS, "USD/JPY", "ETHBTC")


def decimals(number: Decimal) -> int:
    """Decimals of the value (``12.0`` has none, ``0.00001`` five)."""
    return max(0, -int(number.normalize().as_tuple().exponent))


def allowed(symbol: str, field: str) -> int | None:
    """The most decimals ``field`` of ``symbol`` may have; None: not a number checked here."""
    profile = profile_for(symbol)
    if field in PRICE_FIELDS or field in PRICE_FIELDS_OF_TRADES:
        return profile.decimals
    if field in SIZE_FIELDS:
        return profile.size_decimals
    if field == "change_percent":
        return PERCENT_DECIMALS
    return None


class Numbers:
    """Every number checked so far, and the ones with too many decimals."""

    def __init__(self) -> None:
        #: (message type, field) -> numbers checked, and how many of them had decimals.
        self.checked: Counter[tuple[str, str]] = Counter()
        self.fractional: Counter[tuple[str, str]] = Counter()
        self.excess: list[str] = []

    def frame(self, text: str | bytes) -> None:
        """One frame's JSON text, numbers read as decimals (not floats)."""
        message = json.loads(text, parse_float=Decimal)
        payload = message.get("payload")
        if not isinstance(payload, dict) or "symbol" not in payload:
            return
        items = [payload, *(payload.get("bars") or ()), *(payload.get("trades") or ())]
        self.objects(message["type"], payload["symbol"], items)

    def objects(self, kind: str, symbol: str, items: Iterable[Mapping[str, Any]]) -> None:
        for item in items:
            for field, value in item.items():
                limit = allowed(symbol, field)
                if limit is None or not isinstance(value, Decimal):
                    continue
                self.checked[kind, field] += 1
                self.fractional[kind, field] += decimals(value) > 0
                if decimals(value) > limit:
                    self.excess.append(f"{kind} {symbol} {field}={value} (at most {limit})")

    def encoded(self, kind: str, symbol: str, values: Iterable[Mapping[str, Any]]) -> None:
        """Values as the server encodes them (orjson), then read back as decimals."""
        texts = [orjson.dumps(dict(value)) for value in values]
        self.objects(kind, symbol, [json.loads(text, parse_float=Decimal) for text in texts])

    def assert_clean(self) -> None:
        assert not self.excess, f"{len(self.excess)} numbers with noise, e.g. {self.excess[:5]}"


# -- the ingest path, on a fake clock -----------------------------------------------------------


async def test_every_simulated_frame_keeps_to_the_instruments_decimals() -> None:
    fake = FakeTime()
    # 15 simulated seconds per tick: four trades in every 1-minute bar, 240 in the hour bar.
    feed = SimulatorFeed(SYMBOLS, speed=60, clock=fake.clock, sleep=fake.sleep)
    store, bus = MemoryCandleStore(1_000), MemoryBus()
    frames: list[Frame] = []
    await bus.start(frames.append)
    streams = StreamManager([feed], store, bus, grace_period=0, history_size=200)
    await streams.start()
    keys: list[StreamKey] = []
    for symbol in SYMBOLS:
        keys += [BarKey(symbol, r) for r in ("1", "60", "D")]
        keys += [QuoteKey(symbol), TradeKey(symbol)]
    for key in keys:
        await streams.acquire(key)
    await fake.advance(60)  # an hour of simulated trading
    numbers = Numbers()
    for frame in frames:
        numbers.frame(frame.text)
    for key in keys:  # what snapshots are made of: the store (history included), kept trades
        if isinstance(key, BarKey):
            bars = await streams.snapshot(key, 1_000, None)
            numbers.encoded("bars.snapshot", key.symbol, map(candle_dict, bars))
        elif isinstance(key, TradeKey):
            kept = await streams.recent(key, 500)
            numbers.encoded("trades.snapshot", key.symbol, [r.value for r in kept])
    await streams.close()

    numbers.assert_clean()
    for kind, field in [
        ("bars.update", "volume"),
        ("bars.update", "close"),
        ("bars.snapshot", "volume"),
        ("quotes.update", "volume"),
        ("quotes.update", "bid"),
        ("quotes.update", "change"),
        ("trades.update", "quantity"),
        ("trades.snapshot", "price"),
    ]:
        assert numbers.fractional[kind, field] > 100, f"too few {kind} {field} with decimals"


# -- a real server ------------------------------------------------------------------------------


@pytest.mark.integration
async def test_every_served_frame_keeps_to_the_instruments_decimals(server: Server) -> None:
    """Bars (with a snapshot), quotes and trades (with a snapshot) of every default symbol,
    until enough updates of each family arrived (a few real seconds)."""
    numbers = Numbers()

    def check(raw: str | bytes) -> None:
        validate_server_frame(raw)
        numbers.frame(raw)

    async with connect(server.ws, open_timeout=10, close_timeout=2) as connection:
        c = Client(connection, check=check)
        for symbol in DEFAULT_SIM_SYMBOLS:
            for resolution in ("1", "60"):
                reply = await c.subscribe_bars(symbol, resolution, snapshot=50)
                assert reply["payload"]["status"] == "ok", reply
            for route, extra in (("quotes", {}), ("trades", {"snapshot": 100})):
                payload = {"symbol": symbol, "params": {}, **extra}
                reply = await c.request(f"{route}.subscribe", payload)
                assert reply["payload"]["status"] == "ok", reply
        wanted = [("bars.update", "volume"), ("quotes.update", "volume")]
        wanted.append(("trades.update", "quantity"))
        async with asyncio.timeout(60):
            while min(numbers.checked[kind] for kind in wanted) < 200:
                await c.recv()
        # A second client, now that there are trades to snapshot and bars with trades in them.
        async with connect(server.ws, open_timeout=10, close_timeout=2) as second:
            late = Client(second, check=check)
            for symbol in DEFAULT_SIM_SYMBOLS:
                payload = {"symbol": symbol, "params": {}, "snapshot": 100}
                reply = await late.request("trades.subscribe", payload)
                assert reply["payload"]["status"] == "ok", reply
                reply = await late.subscribe_bars(symbol, "1", snapshot=50)
                assert reply["payload"]["status"] == "ok", reply
    numbers.assert_clean()
    assert numbers.fractional["bars.subscribe.response", "volume"] > 0
    assert numbers.fractional["trades.subscribe.response", "quantity"] > 0
