"""The ingest scenario's baseline: the least Python that does marketcast's ingest job.

``RawKlineFeed`` takes the same upstream updates as ``ingest_feed.KlineFeed`` (driven by the
same ``KlineDriver``: 8 upstream connections, each awaiting its update) and does what
marketcast does with each, with nothing around it:

- every coarser resolution aggregated from the 1-minute kline (open, high, low, close, volume;
  a finer bar's new version replaces its part; a bucket's bar closes with its last part, and a
  bucket left behind is emitted closed);
- a closed bar never published twice (a floor per key, one dict lookup);
- one ``bars.update`` frame per key, with marketcast's fields, by one ``orjson`` call;
- the bar kept in a per-key series (the newest replaced or appended, trimmed to 1,000);
- the frame handed to the key's subscribers (a dict lookup: none in the ingest-alone window).

What it leaves out is what a framework adds: no stream manager, no cluster ownership, no
staleness clock, no ``Frame`` object, no store or bus seam. So the gap between marketcast's
``ingest`` row and this one is marketcast's own overhead, and this row's rate is what any
Python server on this machine could ingest (``ingest_report``: a goal this row misses is a
FLOOR, not marketcast's failure).

Run by ``ingest`` as ``python -m scripts.bench.ingest_raw --cpu 0 --symbols N`` and driven over
stdin as ``ingest_server`` is (``want`` answers at once, ``drive``, ``stop``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from datetime import UTC, datetime
from typing import Any

import orjson

from .common import BAR_TIME_BASE, emit, pin_to_cpu, read_command, stdin_reader, symbol
from .gcmeter import GcMeter
from .ingest import RESOLUTIONS
from .ingest_feed import MINUTE_MS, UPDATES_PER_BAR, KlineDriver, drive_window

#: Fixed bucket sizes in ms (W counted from a Monday, M by the calendar).
_SIZES = {"1": 1, "3": 3, "5": 5, "15": 15, "30": 30, "60": 60, "120": 120, "240": 240}
_DAY_MS = 86_400_000
_WEEK_MS = 7 * _DAY_MS
#: 1970-01-05, a Monday: weeks open on Mondays.
_MONDAY_MS = 4 * _DAY_MS
#: Bars kept per key, as marketcast's default history.
_KEEP = 1000


def bucket(time_ms: int, resolution: str) -> tuple[int, int]:
    """(open, next open) of the ``resolution`` bucket holding ``time_ms``."""
    if resolution in _SIZES:
        size = _SIZES[resolution] * MINUTE_MS
    elif resolution == "D":
        size = _DAY_MS
    elif resolution == "W":
        start = time_ms - (time_ms - _MONDAY_MS) % _WEEK_MS
        return start, start + _WEEK_MS
    else:
        moment = datetime.fromtimestamp(time_ms / 1000, tz=UTC)
        first = datetime(moment.year, moment.month, 1, tzinfo=UTC)
        following = datetime(moment.year + moment.month // 12, moment.month % 12 + 1, 1, tzinfo=UTC)
        return int(first.timestamp() * 1000), int(following.timestamp() * 1000)
    start = time_ms - time_ms % size
    return start, start + size


class _Bar:
    """One key's open bar: its bucket, its first part, the settled parts, the newest part.

    The bench's klines have open = high = low = close (``ingest_feed.kline``), so a part is
    its price and volume; the newest part's new version replaces it, as in marketcast."""

    __slots__ = ("end", "first", "high", "low", "newest", "open", "price", "start", "volume")

    def __init__(self, start: int, end: int, part: int) -> None:
        self.start, self.end, self.first = start, end, part
        self.open = 0.0
        self.high, self.low, self.volume = float("-inf"), float("inf"), 0.0  # settled parts
        self.newest, self.price = part, 0.0


class RawKlineFeed:
    """``KlineFeed``'s job with nothing around it; see the module docstring."""

    def __init__(self, symbols: int) -> None:
        names = [symbol(i) for i in range(symbols)]
        #: Per symbol, per resolution (finest first): the topic, computed once.
        self.topics = [
            [f'bars:{{"resolution":"{r}","symbol":"{name}"}}' for r in RESOLUTIONS]
            for name in names
        ]
        self.names = names
        self.bars: list[list[_Bar | None]] = [[None] * len(RESOLUTIONS) for _ in names]
        self.series: dict[str, list[tuple[Any, ...]]] = {}
        self.closed_floor: dict[str, int] = {}
        self.subscribers: dict[str, list[Any]] = {}
        self.candles = 0

    async def update(self, index: int, seq: int, stamp_us: int) -> int:
        """Symbol ``index``'s ``seq``-th kline (as ``ingest_feed.kline``); the keys moved."""
        price = float(stamp_us)
        part = BAR_TIME_BASE + (seq // UPDATES_PER_BAR) * MINUTE_MS
        part_closed = seq % UPDATES_PER_BAR == UPDATES_PER_BAR - 1
        name, topics, bars = self.names[index], self.topics[index], self.bars[index]
        moved = 0
        for position, resolution in enumerate(RESOLUTIONS):
            bar = bars[position]
            if bar is None or part >= bar.end:
                if bar is not None and part != bar.newest:
                    # The bucket was left before its last part closed: emit it closed.
                    self._emit(topics[position], name, resolution, bar, bar.price, True)
                    moved += 1
                start, end = bucket(part, resolution)
                bar = bars[position] = _Bar(start, end, part)
            elif part != bar.newest:  # a new part: the newest one is settled
                if bar.price > bar.high:
                    bar.high = bar.price
                if bar.price < bar.low:
                    bar.low = bar.price
                bar.volume += 1.0
                bar.newest = part
            bar.price = price
            if part == bar.first:
                bar.open = price
            closed = part_closed and part + MINUTE_MS == bar.end
            self._emit(topics[position], name, resolution, bar, price, closed)
            moved += 1
            if closed:
                bars[position] = None
        self.candles += moved
        return moved

    def _emit(
        self, topic: str, name: str, resolution: str, bar: _Bar, close: float, closed: bool
    ) -> None:
        floor = self.closed_floor.get(topic)
        if floor is not None and bar.start <= floor:
            return
        if closed:
            self.closed_floor[topic] = bar.start
        volume = bar.volume + 1.0  # the settled parts', and the newest part's
        high = bar.high if bar.high > close else close
        low = bar.low if bar.low < close else close
        frame = orjson.dumps(
            {
                "type": "bars.update",
                "payload": {
                    "topic": topic,
                    "symbol": name,
                    "resolution": resolution,
                    "time": bar.start,
                    "open": bar.open,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": volume,
                    "closed": closed,
                },
            }
        )
        row = (
            bar.start,
            bar.open,
            max(bar.high, close),
            min(bar.low, close),
            close,
            volume,
            closed,
        )
        series = self.series.get(topic)
        if series is None:
            self.series[topic] = [row]
        elif series[-1][0] == bar.start:
            series[-1] = row
        else:
            series.append(row)
            if len(series) > _KEEP:
                del series[0]
        for deliver in self.subscribers.get(topic, ()):
            deliver(frame)


async def run(args: argparse.Namespace) -> None:
    feed = RawKlineFeed(args.symbols)
    driver = KlineDriver(feed, args.symbols, args.connections)
    emit("ready", port=0, pid=os.getpid(), source="raw (scripts/bench/ingest_raw.py)")
    gc_meter = GcMeter()
    gc_meter.install()
    reader = await stdin_reader()
    while True:
        command = await read_command(reader)
        if command is None or command["cmd"] == "stop":
            break
        if command["cmd"] == "want":
            keys = args.symbols * len(RESOLUTIONS)
            emit("wanted", keys=keys, failed=0, watched=keys, seconds=0.0)
        elif command["cmd"] == "drive":
            emit("driven", **await drive_window(driver, gc_meter, command))
        else:
            raise ValueError(f"unknown raw ingest command {command['cmd']!r}")
    emit("bye")


def main() -> None:
    parser = argparse.ArgumentParser(description="raw ingest baseline process")
    parser.add_argument("--cpu", type=int, required=True, help="core to pin this process to")
    parser.add_argument("--symbols", type=int, required=True, help="benchmark symbols")
    parser.add_argument("--connections", type=int, default=8, help="upstream connections")
    args = parser.parse_args()
    pin_to_cpu(args.cpu)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
