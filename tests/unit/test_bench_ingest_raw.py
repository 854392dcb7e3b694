"""The raw ingest baseline does marketcast's job: for the same upstream updates it publishes
the same bars (every key, every field) as marketcast's feed and stream manager path, so its
row in ``make bench`` is a fair floor (``scripts.bench.ingest_raw``)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from marketcast.market import BarKey, Candle
from marketcast.topics import build_topic
from scripts.bench.ingest import RESOLUTIONS
from scripts.bench.ingest_feed import KlineFeed
from scripts.bench.ingest_raw import RawKlineFeed, bucket

Row = tuple[str, int, float, float, float, float, float, bool]


class Sink:
    """What marketcast's feed hands on, as the rows a client would see (repeats of a
    closed bar dropped, as the stream manager drops them)."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.closed: dict[BarKey, int] = {}

    async def on_candle(self, key: BarKey, candle: Candle) -> None:
        floor = self.closed.get(key)
        if floor is not None and candle.time <= floor:
            return
        if candle.closed:
            self.closed[key] = candle.time
        topic = build_topic("bars", {"symbol": key.symbol, "resolution": key.resolution})
        c = candle
        self.rows.append((topic, c.time, c.open, c.high, c.low, c.close, c.volume, c.closed))


def raw_row(frame: bytes) -> Row:
    p: dict[str, Any] = orjson.loads(frame)["payload"]
    return (
        p["topic"],
        p["time"],
        p["open"],
        p["high"],
        p["low"],
        p["close"],
        p["volume"],
        p["closed"],
    )


@pytest.mark.parametrize("updates", [1, 59, 60, 61, 400])
async def test_the_raw_baseline_publishes_what_marketcast_publishes(updates: int) -> None:
    ours, sink = KlineFeed(3, calls="each"), Sink()
    await ours.start(sink)
    raw = RawKlineFeed(3)
    got: list[Row] = []
    for per_symbol in raw.topics:
        for topic in per_symbol:
            raw.subscribers[topic] = [lambda frame: got.append(raw_row(frame))]
    moved = 0
    for seq in range(updates):
        for index in range(3):
            stamp = 1_000_000 + 7 * seq + index  # every version a new price
            expected = await ours.update(index, seq, stamp)
            moved += await raw.update(index, seq, stamp)
            assert moved == ours.candles, (seq, index, expected)
    assert got == sink.rows
    assert {row[0] for row in got} == {t for per_symbol in raw.topics for t in per_symbol}


def test_buckets_match_marketcasts() -> None:
    from marketcast.timeframes import bucket_start, next_bucket

    for time_ms in (4_102_444_800_000, 4_102_444_800_000 + 37 * 86_400_000 + 123_456):
        for resolution in RESOLUTIONS:
            start = bucket_start(time_ms, resolution)
            assert bucket(time_ms, resolution) == (start, next_bucket(start, resolution))
