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
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from marketcast.cluster.health import cancel_and_wait, connect
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

    async def subscribe(self, symbol: str) -> None:
        reply = await self.client.subscribe_bars(symbol, "1", snapshot=5)
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
async def recording(server: Server, symbol: str = "BTCUSDT") -> AsyncIterator[Recorder]:
    async with client(server) as connection:
        recorder = Recorder(connection)
        await recorder.subscribe(symbol)
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
