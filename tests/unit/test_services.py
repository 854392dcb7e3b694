"""Choosing the store, bus and ownership by URL; refusing what cannot work, in one line."""

from __future__ import annotations

import pytest

from marketcast.bus.memory import MemoryBus
from marketcast.bus.redis import RedisBus
from marketcast.cluster.leases import RedisOwnership
from marketcast.errors import ConfigurationError
from marketcast.services import default_worker_id, open_services
from marketcast.settings import Settings
from marketcast.store.memory import MemoryCandleStore
from marketcast.store.redis import RedisCandleStore

REDIS = "redis://127.0.0.1:1/0"  # never connected to: building connects nothing


async def test_memory_is_the_default_and_needs_nothing() -> None:
    services = open_services(Settings())
    assert isinstance(services.store, MemoryCandleStore)
    assert isinstance(services.bus, MemoryBus)
    assert services.ownership is None  # the stream manager's LocalOwnership
    assert services.healthy()
    await services.start()
    await services.close()


async def test_redis_urls_make_a_cluster_worker() -> None:
    services = open_services(Settings(store_url=REDIS, bus_url=REDIS, worker_id="w1"))
    try:
        assert isinstance(services.store, RedisCandleStore)
        assert isinstance(services.bus, RedisBus)
        assert isinstance(services.ownership, RedisOwnership)
        assert services.ownership.worker_id == "w1"
        assert not services.healthy()  # not before Redis answered a probe
    finally:
        await services.close()


async def test_a_redis_store_alone_is_allowed() -> None:
    services = open_services(Settings(store_url=REDIS))
    try:
        assert isinstance(services.store, RedisCandleStore)
        assert isinstance(services.bus, MemoryBus)
        assert services.ownership is None
    finally:
        await services.close()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"store_url": "postgres://u:secret@db/x"},
            r"^MARKETCAST_STORE_URL has an unknown scheme \(postgres://…\): expected memory:// or "
            r"redis://host:port/db$",
        ),
        ({"bus_url": "localhost:6379"}, r"^MARKETCAST_BUS_URL has an unknown scheme"),
        (
            {"bus_url": REDIS},
            r"^MARKETCAST_BUS_URL is redis:// but MARKETCAST_STORE_URL is not",
        ),
    ],
)
def test_unusable_urls_are_refused(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        open_services(Settings(**settings))
    assert "secret" not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_default_worker_ids_are_unique_and_plain() -> None:
    first, second = default_worker_id(), default_worker_id()
    assert first != second
    assert all(ch.isalnum() or ch in "_.:-" for ch in first)
