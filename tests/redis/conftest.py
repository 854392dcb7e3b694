"""Fixtures for everything that needs a real Redis: a private redis-server per session, and
clients that are always closed (warnings are errors, and an unclosed client warns)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from marketcast.redis_health import connect
from tests.redis.redis_server import RedisServer, running_redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session's tests that do not stop it."""
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A client on an emptied database, closed afterwards."""
    client = connect(redis_server.url, timeout=2.0, name="marketcast-tests")
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()
