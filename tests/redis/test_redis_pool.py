"""The Redis client marketcast builds (``redis_health.connect``) under a burst of commands.

A burst of first subscribes (every client of a restarted worker coming back at once) sends
hundreds of commands together. redis-py's default pool refused the 101st with an error that
reads like an unreachable Redis; the pool ``connect`` builds makes them wait for a connection
instead, so every command is answered and none is taken for an outage.
"""

from __future__ import annotations

import asyncio

from marketcast.redis_health import POOL_SIZE, connect
from tests.redis.redis_server import RedisServer

BURST = 5 * POOL_SIZE


async def test_a_burst_past_the_pool_size_waits_and_every_command_is_answered(
    redis_server: RedisServer,
) -> None:
    client = connect(redis_server.url, timeout=2.0, name="marketcast-pool-test")
    try:
        # BLPOP holds its connection for the whole timeout: each command needs one of its own.
        answers = await asyncio.gather(
            *(client.blpop([f"pool-test-{n}"], timeout=0.2) for n in range(BURST))
        )
        assert answers == [None] * BURST
        clients = await client.client_list()
        mine = [c for c in clients if c.get("name") == "marketcast-pool-test"]
        assert 0 < len(mine) <= POOL_SIZE
    finally:
        await client.aclose()
