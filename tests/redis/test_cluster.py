"""Acceptance of horizontal scale on Redis: real ``marketcast serve`` workers, a private
redis-server, WebSocket clients. Each test runs its own Redis and workers.

The simulator runs 600x (a one-minute bar closes every 0.1 s) with one shared time anchor, so
every worker's simulated clock agrees. Each worker's simulator makes its own prices: after a
takeover the bars come from the new owner's simulator, so the tests check what a cluster
guarantees — closed-bar *times* contiguous and unique — not the values.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from marketcast.redis_health import cancel_and_wait, connect
from marketcast.sim.binance import FakeBinance
from marketcast.sim.market import FakeClock, Market
from tests.integration.harness import Client, Server, client, run_server
from tests.redis.redis_server import RedisServer, running_redis

pytestmark = pytest.mark.integration

MINUTE = 60_000
LEASE_TTL = 1.5
BTC = "bars|BTCUSDT|1"
ETH = "bars|ETHUSDT|1"


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server per test: these tests stop and restart it."""
    with running_redis(tmp_path) as server:
        yield server


@pytest.fixture
async def redis_cli(redis: RedisServer) -> AsyncIterator[Redis]:
    client = connect(redis.url, timeout=2.0, name="test")
    try:
        yield client
    finally:
        await client.aclose()


@contextlib.contextmanager
def workers(tmp: Path, redis: RedisServer, *names: str) -> Iterator[dict[str, Server]]:
    """Workers named ``names`` on one Redis, with a common simulated clock."""
    settings = {
        "store_url": redis.url,
        "bus_url": redis.url,
        "sim_speed": 600,
        "sim_tick_interval": 0.02,
        "sim_anchor": time.time(),
        "lease_ttl": LEASE_TTL,
        "stream_grace_period": 0.5,
        "redis_timeout": 1.0,
    }
    with contextlib.ExitStack() as stack:
        yield {
            name: stack.enter_context(run_server(tmp, worker_id=name, **settings)) for name in names
        }


@dataclass
class Recorder:
    """A client subscribed to one bar topic, recording every update with its arrival time."""

    client: Client
    closed: list[int] = field(default_factory=list)
    arrivals: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    #: Ends ``run`` even when a cancellation is lost (``cancel_and_wait`` says why).
    stopped: bool = False

    async def subscribe(self, symbol: str, within: float = 10.0) -> None:
        """``within``: how long the reply may take (a first subscriber that takes the key
        waits for its catch-up from the upstream)."""
        self.client.next_id += 1
        request_id = self.client.next_id
        payload = {"symbol": symbol, "params": {"resolution": "1"}, "snapshot": 5}
        await self.client.send({"type": "bars.subscribe", "payload": payload, "id": request_id})
        reply = await self.client.recv_until(lambda f: f.get("id") == request_id, within)
        assert reply["payload"]["status"] == "ok", reply
        self.closed += [b["time"] for b in reply["payload"]["bars"] if b["closed"]]

    async def run(self) -> None:
        while not self.stopped:
            frame = await self.client.recv(within=30)
            if frame["type"] == "bars.update":
                self.arrivals.append((time.monotonic(), frame["payload"]))
                if frame["payload"]["closed"]:
                    self.closed.append(frame["payload"]["time"])

    async def wait_closed(self, count: int, within: float = 15.0) -> None:
        """Until ``count`` more closed bars arrived."""
        target = len(self.closed) + count
        deadline = time.monotonic() + within
        while len(self.closed) < target:
            assert time.monotonic() < deadline, f"only {len(self.closed)} closed bars"
            await asyncio.sleep(0.02)

    def first_update_after(self, instant: float) -> float | None:
        return next((t for t, _ in self.arrivals if t >= instant), None)


def assert_contiguous(closed: list[int]) -> None:
    """Each closed bar once, in order, none missing (one-minute bars)."""
    steps = [b - a for a, b in pairwise(closed)]
    wrong = [(i, closed[i], s) for i, s in enumerate(steps) if s != MINUTE]
    assert not wrong, f"gaps or repeats (index, time, step): {wrong[:10]}"


@contextlib.asynccontextmanager
async def recording(
    server: Server, symbol: str = "BTCUSDT", within: float = 10.0
) -> AsyncIterator[Recorder]:
    async with client(server) as connection:
        recorder = Recorder(connection)
        await recorder.subscribe(symbol, within)
        task = asyncio.create_task(recorder.run())
        try:
            yield recorder
        finally:
            recorder.stopped = True
            await cancel_and_wait(task)


async def lease_holder(redis: Redis, key: str) -> str | None:
    value = await redis.get(f"marketcast:lease:{key}")
    return None if value is None else value.decode()


async def ready(http: httpx.AsyncClient, server: Server) -> bool:
    try:
        return (await http.get(f"{server.http}/readyz", timeout=1.0)).status_code == 200
    except httpx.TransportError:
        return False


async def wait_until(check: Any, within: float, what: str) -> float:
    """Poll the async ``check()`` until true; the seconds it took."""
    start = time.monotonic()
    while not await check():
        assert time.monotonic() - start < within, f"{what} not within {within}s"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


def upstream_starts(server: Server, key: str) -> int:
    return server.log().count(f"upstream on: {key} ")


async def test_clients_on_any_worker_get_a_key_one_worker_ingests(
    tmp_path: Path, redis: RedisServer, redis_cli: Redis
) -> None:
    """Acceptance 1: a client on worker A receives the updates of a key whose upstream is
    owned by worker B; each key has exactly one upstream subscription in the cluster."""
    with workers(tmp_path, redis, "a", "b") as cluster:
        a, b = cluster["a"], cluster["b"]
        async with recording(b) as on_b:  # b's client asks first: b takes BTC
            assert await lease_holder(redis_cli, BTC) == "b"
            async with recording(a) as on_a, recording(a, "ETHUSDT") as eth_on_a:
                await on_a.wait_closed(10)
                await eth_on_a.wait_closed(3)
                assert_contiguous(on_a.closed)
                assert_contiguous(on_b.closed)
                assert await lease_holder(redis_cli, BTC) == "b"
                assert await lease_holder(redis_cli, ETH) == "a"
                leases = sorted(k.decode() for k in await redis_cli.keys("marketcast:lease:*"))
                assert leases == [f"marketcast:lease:{BTC}", f"marketcast:lease:{ETH}"]
        # Watching upstream happened once per key, on its owner only.
        assert (upstream_starts(a, BTC), upstream_starts(b, BTC)) == (0, 1)
        assert (upstream_starts(a, ETH), upstream_starts(b, ETH)) == (1, 0)


async def test_killing_the_owner_hands_the_key_over_without_gap_or_repeat(
    tmp_path: Path, redis: RedisServer, redis_cli: Redis
) -> None:
    """Acceptance 2: another worker owns the key within the lease TTL; the client on the
    surviving worker sees every closed bar once."""
    with workers(tmp_path, redis, "a", "b") as cluster:
        a, b = cluster["a"], cluster["b"]
        async with client(b) as owner_client:
            await owner_client.subscribe_bars("BTCUSDT", "1")
            assert await lease_holder(redis_cli, BTC) == "b"
            async with recording(a) as on_a:
                await on_a.wait_closed(5)
                b.process.send_signal(signal.SIGKILL)
                killed = time.monotonic()
                b.process.wait(timeout=5)

                async def a_owns() -> bool:
                    return await lease_holder(redis_cli, BTC) == "a"

                took = await wait_until(a_owns, 3 * LEASE_TTL, "takeover by a")
                assert took <= LEASE_TTL + 0.2, f"takeover took {took:.2f}s"
                await on_a.wait_closed(10)
        silence = max(
            (t2 - t1 for (t1, _), (t2, _) in pairwise(on_a.arrivals)),
            default=0.0,
        )
        print(f"takeover {took:.2f}s, longest silence {silence:.2f}s after kill at {killed:.1f}")
        assert_contiguous(on_a.closed)
        assert upstream_starts(a, BTC) == 1


async def test_restarting_redis_keeps_every_closed_bar(tmp_path: Path, redis: RedisServer) -> None:
    """Acceptance 3: readiness drops and recovers; fan-out resumes within 5 s; no closed bar
    is missing (or repeated) for any client afterwards."""
    with workers(tmp_path, redis, "a", "b") as cluster:
        a, b = cluster["a"], cluster["b"]
        async with (
            httpx.AsyncClient() as http,
            recording(b) as on_b,
            recording(a) as on_a,
        ):
            await on_a.wait_closed(5)
            await on_b.wait_closed(5)
            await asyncio.to_thread(redis.stop)

            async def both_unready() -> bool:
                return not await ready(http, a) and not await ready(http, b)

            await wait_until(both_unready, 5.0, "readiness dropping")
            await asyncio.sleep(1.0)  # an outage: several bars close meanwhile
            await asyncio.to_thread(redis.start)
            back = time.monotonic()

            async def both_ready() -> bool:
                return await ready(http, a) and await ready(http, b)

            recovered = await wait_until(both_ready, 10.0, "readiness recovering")
            await on_a.wait_closed(10)
            await on_b.wait_closed(10)
            resumed = [r.first_update_after(back) for r in (on_a, on_b)]
            assert all(t is not None and t - back <= 5.0 for t in resumed), (back, resumed)
            print(
                f"ready again after {recovered:.2f}s; updates after",
                [t - back for t in resumed if t],
            )
        assert_contiguous(on_a.closed)
        assert_contiguous(on_b.closed)


@contextlib.asynccontextmanager
async def binance_workers(
    tmp: Path, redis: RedisServer, fake: FakeBinance, *names: str
) -> AsyncIterator[dict[str, Server]]:
    """Workers serving BTCUSDT from ``fake`` (in this process: started and stopped in a
    thread, so the fake keeps answering meanwhile)."""
    settings = {
        "store_url": redis.url,
        "bus_url": redis.url,
        "binance_symbols": "BTCUSDT",
        "binance_ws_url": fake.ws_url,
        "binance_rest_url": fake.rest_url,
        "binance_reconnect_min": 0.05,
        "binance_reconnect_max": 0.4,
        "sim_symbols": "AAPL",
        "store_capacity": 200,
        "lease_ttl": LEASE_TTL,
        "stream_grace_period": 0.5,
        "redis_timeout": 1.0,
    }
    with contextlib.ExitStack() as stack:
        cluster: dict[str, Server] = {}
        try:
            for name in names:
                manager = run_server(tmp, worker_id=name, **settings)
                cluster[name] = await asyncio.to_thread(manager.__enter__)
                stack.callback(manager.__exit__, None, None, None)
            yield cluster
        finally:
            await asyncio.to_thread(stack.close)


def upstream_periods(server: Server, key: str, end: float) -> list[tuple[float, float]]:
    """The (start, end) wall-clock times of each "upstream on" ... "upstream off" in the
    worker's log; a period still open (a killed worker) ends at ``end``."""
    periods: list[tuple[float, float]] = []
    start: float | None = None
    for line in server.log().splitlines():
        on = f"upstream on: {key} " in line
        if not on and f"upstream off: {key} " not in line:
            continue
        stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if on:
            assert start is None, f"two 'upstream on' without 'upstream off' in between: {line}"
            start = stamp
        else:
            assert start is not None, f"'upstream off' without 'upstream on': {line}"
            periods.append((start, stamp))
            start = None
    if start is not None:
        periods.append((start, end))
    return periods


async def test_a_slow_upstream_catch_up_keeps_one_ingesting_worker_and_serves_the_key(
    tmp_path: Path, redis: RedisServer, redis_cli: Redis
) -> None:
    """Issue 18: the klines REST answers after 3x the lease TTL, so every catch-up outlives
    a lease that is not renewed meanwhile. The owner keeps its lease through its catch-up;
    after it is killed the other worker takes over (another slow catch-up). At no time do
    two workers ingest the key, and the surviving worker's client gets every closed bar
    once, in order."""
    market = Market(["BTCUSDT"], clock=FakeClock(600.0), history_days=0.3)
    fake = FakeBinance(market, push_interval=0.05, ping_interval=1.0, rest_delay=3 * LEASE_TTL)
    await fake.start()
    try:
        async with binance_workers(tmp_path, redis, fake, "a", "b") as cluster:
            a, b = cluster["a"], cluster["b"]
            async with client(b) as owner_client:
                # b's client asks first: b takes the key (bootstrap and catch-up: two slow
                # REST answers before the reply).
                owner = Recorder(owner_client)
                await owner.subscribe("BTCUSDT", within=40)
                assert await lease_holder(redis_cli, BTC) == "b"
                async with recording(a, within=20) as on_a:
                    await on_a.wait_closed(5, within=30)
                    b.process.send_signal(signal.SIGKILL)
                    b.process.wait(timeout=5)
                    killed = time.time()
                    market_at_kill = market.clock.now_ms()

                    async def a_owns() -> bool:
                        return await lease_holder(redis_cli, BTC) == "a"

                    await wait_until(a_owns, 3 * LEASE_TTL, "takeover by a")
                    # Served on: bars closed long after the kill, past the new owner's slow
                    # catch-up and its slow gap-fill.
                    target = market_at_kill + 150 * MINUTE
                    deadline = time.monotonic() + 60
                    while not on_a.closed or on_a.closed[-1] < target:
                        assert time.monotonic() < deadline, f"served up to {on_a.closed[-1:]}"
                        await asyncio.sleep(0.05)
        periods = sorted(
            upstream_periods(a, BTC, end=time.time()) + upstream_periods(b, BTC, end=killed)
        )
    finally:
        await fake.stop()
    print(f"upstream periods: {periods}; {len(on_a.closed)} closed bars on a")
    assert upstream_periods(b, BTC, killed), "b never ingested"
    assert upstream_periods(a, BTC, 0), "a never took over"
    overlaps = [(p, q) for p, q in pairwise(periods) if q[0] < p[1]]
    assert not overlaps, f"two workers ingested at once: {overlaps}"
    assert_contiguous(on_a.closed)
    assert "Traceback" not in a.log()
