"""Acceptance 3: a client that disconnects, misses bars and reconnects with ``since`` ends with
every closed bar exactly once — from the store, and from the feed where the store has a hole.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from marketcast.timeframes import next_bucket
from tests.integration.harness import Client, Server, client, run_server

TOPIC = 'bars:{"resolution":"1","symbol":"BTCUSDT"}'


class Chart:
    """What a charting client keeps: closed bars by open time, counting any repeat."""

    def __init__(self) -> None:
        self.closed: dict[int, dict[str, Any]] = {}
        self.repeats: list[int] = []

    def add(self, bar: dict[str, Any]) -> None:
        if not bar["closed"]:
            return
        if bar["time"] in self.closed:
            self.repeats.append(bar["time"])
        self.closed[bar["time"]] = bar

    @property
    def resume_from(self) -> int:
        """``since`` for the next subscription: the bucket after the newest closed bar."""
        return next_bucket(max(self.closed), "1")

    async def follow(self, c: Client, bars: int) -> None:
        """Read until ``bars`` more closed bars arrived: counted, not timed, so a loaded
        machine makes the session longer rather than emptier."""
        goal = len(self.closed) + bars
        while len(self.closed) < goal:
            frame = await c.recv(within=30)
            if frame["type"] == "bars.update" and frame["payload"]["topic"] == TOPIC:
                self.add(frame["payload"])

    def assert_complete(self, minimum: int) -> None:
        assert not self.repeats, f"closed bars delivered twice: {self.repeats}"
        times = sorted(self.closed)
        assert len(times) >= minimum, f"only {len(times)} closed bars"
        holes = [(a, b) for a, b in pairwise(times) if next_bucket(a, "1") != b]
        assert not holes, f"closed bars missing between {holes[:3]}"


async def session(chart: Chart, server: Any, bars: int, **subscribe: Any) -> dict[str, Any]:
    async with client(server) as c:
        reply = await c.subscribe_bars("BTCUSDT", "1", **subscribe)
        assert reply["payload"]["status"] == "ok", reply
        for bar in reply["payload"]["bars"]:
            chart.add(bar)
        await chart.follow(c, bars)
        payload: dict[str, Any] = reply["payload"]
        return payload


async def away(keeper: Client, chart: Chart, bars: int) -> None:
    """While the chart's client is away, until ``bars`` bars closed after its newest one, as
    the keeper (subscribed all along) sees them: missed bars counted, not a time waited."""
    last = chart.resume_from
    for _ in range(bars - 1):
        last = next_bucket(last, "1")
    while True:
        frame = await keeper.recv(within=30)
        payload = frame["payload"]
        if frame["type"] == "bars.update" and payload["closed"] and payload["time"] >= last:
            return


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """240x: a 1-minute bar closes every quarter of a second."""
    with run_server(tmp_path_factory.mktemp("fast"), sim_speed=240, sim_tick_interval=0.02) as s:
        yield s


async def test_reconnect_with_since_from_the_store(fast: Server) -> None:
    """The client is away for four bars; the store has them."""
    chart = Chart()
    async with client(fast) as keeper:  # keeps the stream running while we are away
        await keeper.subscribe_bars("BTCUSDT", "1")
        first = await session(chart, fast, 4, snapshot=3)
        assert first.get("recovered") is None, "no `since`, no recovery flag"
        await away(keeper, chart, 4)
        resumed = await session(chart, fast, 4, since=chart.resume_from)
    assert resumed["recovered"] is True
    missed = [b for b in resumed["bars"] if b["closed"]]
    assert len(missed) >= 4, "bars closed while the client was away came back"
    chart.assert_complete(minimum=10)


async def test_since_older_than_any_history_is_not_recovered(fast: Server) -> None:
    async with client(fast) as c:
        reply = await c.subscribe_bars("ETHUSDT", "1", since=0)
        assert reply["payload"]["recovered"] is False
        bars = reply["payload"]["bars"]
        assert len(bars) == 1000, "the newest bars, as many as one reply may carry"
        assert [b["time"] for b in bars] == sorted({b["time"] for b in bars})


async def test_reconnect_with_since_fills_a_store_hole_from_the_feed(tmp_path: Path) -> None:
    """600x and a 10-bar store: fifteen bars close during the absence and the store forgets the
    first of them; the feed fills the hole."""
    with run_server(tmp_path, sim_speed=600, sim_tick_interval=0.02, store_capacity=10) as server:
        chart = Chart()
        async with client(server) as keeper:
            await keeper.subscribe_bars("BTCUSDT", "1")
            await session(chart, server, 6, snapshot=3)
            await away(keeper, chart, 15)
            resumed = await session(chart, server, 6, since=chart.resume_from)
        assert resumed["recovered"] is True
        assert len(resumed["bars"]) > 10, "more bars than the store holds: some from the feed"
        chart.assert_complete(minimum=20)
