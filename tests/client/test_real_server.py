"""The client against a real ``marketcast serve`` on 127.0.0.1 (simulator feed, 60x time: a
1-minute bar closes every second): typed updates, typed errors, and a server restart that the
client rides out by itself without missing or repeating a closed bar."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from marketcast_client import Backoff, MarketcastClient, SubscriptionRefused
from marketcast_client.models import (
    Bar,
    BarsListedSubscription,
    BarsUpdatePayload,
    QuotesListedSubscription,
    QuotesUpdatePayload,
)

from tests.integration.harness import free_port, run_server

pytestmark = pytest.mark.integration

STEP_MS = 60_000


async def until(condition: Callable[[], bool], within: float) -> None:
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0.05)


async def test_typed_updates_replies_and_errors(tmp_path: Path) -> None:
    with run_server(tmp_path, sim_speed=60, sim_tick_interval=0.05) as server:
        async with MarketcastClient(server.ws) as client:
            assert client.state == "open"
            pong = await client.ping()
            assert pong.time > 0

            bars = await client.subscribe_bars("BTCUSDT", resolution="1", snapshot=5)
            assert bars.topic == 'bars:{"resolution":"1","symbol":"BTCUSDT"}'
            snapshot = bars.reply.bars or []
            assert len(snapshot) == 5
            assert all(isinstance(bar, Bar) for bar in snapshot)
            assert [b.time - a.time for a, b in itertools.pairwise(snapshot)] == [STEP_MS] * 4

            quotes = await client.subscribe_quotes("EUR/USD")
            assert quotes.topic == 'quotes:{"symbol":"EUR/USD"}'

            # Requests in flight together are each answered by their own reply.
            results = await asyncio.gather(
                client.ping(),
                client.subscribe_bars("ETHUSDT", resolution="5"),
                client.subscribe_bars("DOGEUSDT", resolution="1"),
                return_exceptions=True,
            )
            assert isinstance(results[2], SubscriptionRefused)
            assert results[2].code == "unknown_symbol"
            assert results[2].request_type == "bars.subscribe"
            eth = results[1]
            assert not isinstance(eth, BaseException)
            assert eth.reply.symbol == "ETHUSDT"
            daily = await client.subscribe_bars("BTCUSDT", resolution="1D")
            assert daily.topic == 'bars:{"resolution":"D","symbol":"BTCUSDT"}'
            # One topic, one subscription: by the same spelling or by another one.
            with pytest.raises(ValueError, match="already subscribed"):
                await client.subscribe_bars("BTCUSDT", resolution="1")
            with pytest.raises(ValueError, match="already subscribed"):
                await client.subscribe_bars("BTCUSDT", resolution="D")
            assert daily.active

            closed: list[BarsUpdatePayload] = []
            async with asyncio.timeout(30):
                async for update in bars:
                    assert isinstance(update, BarsUpdatePayload)
                    assert (update.symbol, update.resolution) == ("BTCUSDT", "1")
                    assert update.time >= snapshot[-1].time
                    if update.closed:
                        closed.append(update)
                        if len(closed) == 2:
                            break
            assert closed[0].time >= snapshot[-1].time
            assert closed[1].time - closed[0].time == STEP_MS

            async with asyncio.timeout(30):
                quote = await anext(quotes)
            assert isinstance(quote, QuotesUpdatePayload)
            assert quote.symbol == "EUR/USD"

            await bars.unsubscribe()
            assert not bars.active
            async with asyncio.timeout(5):
                rest = [update async for update in bars]  # ends: no new updates after this
            assert all(update.topic == bars.topic for update in rest)

            # What the server holds for this connection, typed, in subscription order.
            listed = (await client.list_subscriptions()).subscriptions
            assert [(s.route, s.topic) for s in listed] == [
                ("quotes", quotes.topic),
                ("bars", eth.topic),
                ("bars", daily.topic),
            ]
            assert isinstance(listed[1], BarsListedSubscription)
            assert (listed[1].symbol, listed[1].params.resolution) == ("ETHUSDT", "5")
            assert isinstance(listed[0], QuotesListedSubscription)
        state: str = client.state
        assert state == "closed"
        async with asyncio.timeout(5):
            async for _ in quotes:  # iteration ends once the client is closed
                pass


async def test_a_server_restart_is_ridden_out_with_no_gap_and_no_repeat(tmp_path: Path) -> None:
    # The second server continues the first one's simulated timeline, as a cluster's workers
    # do, so the bars before and after the restart are one series.
    anchor = time.time()
    port = free_port()
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    closed: list[int] = []
    client = MarketcastClient(
        f"ws://127.0.0.1:{port}/api/v1/ws", backoff=Backoff(base=0.2, cap=1.0)
    )

    async def collect() -> None:
        async for update in bars:
            if update.closed:
                closed.append(update.time)

    with run_server(
        tmp_path / "first",
        port=port,
        sim_speed=60,
        sim_tick_interval=0.05,
        sim_anchor=anchor,
        close_notice_seconds=0.2,
    ):
        await client.connect()
        bars = await client.subscribe_bars("BTCUSDT", resolution="1", snapshot=3)
        collector = asyncio.create_task(collect())
        await until(lambda: len(closed) >= 3, within=30)
        before = len(closed)
    # The first server drained: a notice, then 1001; the client keeps trying to reconnect.
    await until(lambda: client.state == "reconnecting", within=10)
    with run_server(
        tmp_path / "second",
        port=port,
        sim_speed=60,
        sim_tick_interval=0.05,
        sim_anchor=anchor,
        close_notice_seconds=0.2,
    ):
        await until(lambda: client.connections >= 2 and len(closed) >= before + 4, within=60)
        assert client.state == "open"
        await client.close()
    async with asyncio.timeout(5):
        await collector

    assert client.connections >= 2
    assert len(bars.recoveries) >= 1
    assert bars.recoveries[0].recovered is True
    steps = {b - a for a, b in itertools.pairwise(closed)}
    assert steps == {STEP_MS}, f"closed bars are not continuous across the restart: {closed}"
