"""The store, bus and ownership behind the seams, chosen by URL (``MARKETCAST_STORE_URL``,
``MARKETCAST_BUS_URL``), and the Redis clients and health probes they share.

``memory://`` for both (the default) is a single worker with no services: the same objects
``create_app`` always built, and ``LocalOwnership``. A ``redis://`` bus makes the worker part
of a cluster: cross-worker fan-out, upstream leases and resync; it needs a ``redis://`` store
too, since a resync reads what the owner of a key stored. A ``redis://`` store with a memory
bus is allowed: workers that share history but each ingest for themselves.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from redis.asyncio import Redis

from marketcast.bus.base import Bus
from marketcast.bus.memory import MemoryBus
from marketcast.bus.redis import RedisBus
from marketcast.cluster.leases import RedisOwnership
from marketcast.cluster.ownership import Ownership
from marketcast.cluster.resync import StoreResync
from marketcast.delivery.hub import Hub
from marketcast.errors import ConfigurationError
from marketcast.redis_health import RedisHealth, connect
from marketcast.settings import Settings
from marketcast.store.base import CandleStore
from marketcast.store.memory import MemoryCandleStore
from marketcast.store.recent import MemoryRecentStore, RecentStore
from marketcast.store.redis import RedisCandleStore
from marketcast.store.redis_recent import RedisRecentStore
from marketcast.streams import StreamManager

log = logging.getLogger("marketcast.cluster")

_REDIS_SCHEMES = ("redis", "rediss")
#: Seconds between two readiness probes of a Redis server; also the longest a recovered
#: Redis goes unnoticed when nothing else talks to it.
_PROBE_INTERVAL = 0.5


def _scheme(url: str, setting: str) -> str:
    """``memory`` or ``redis``; a ConfigurationError naming the setting otherwise."""
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme == "memory":
        return "memory"
    if scheme in _REDIS_SCHEMES:
        return "redis"
    # Only the scheme is echoed: the rest of a URL may hold a password.
    shown = f"{scheme}://…" if scheme else repr(url[:20])
    raise ConfigurationError(
        f"{setting} has an unknown scheme ({shown}): expected memory:// or redis://host:port/db"
    )


def default_worker_id() -> str:
    """``host:pid:random`` — unique even when a pid is reused on another host."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:60] or "host"
    return f"{host}:{os.getpid()}:{secrets.token_hex(2)}"


@dataclass
class Services:
    """What ``create_app`` wires in; ``start``/``close`` run in its lifespan."""

    store: CandleStore
    bus: Bus
    #: None: the stream manager's default, ``LocalOwnership``.
    ownership: Ownership | None = None
    worker_id: str = ""
    #: The newest events of ``History.RECENT`` families (trades): Redis with a Redis store.
    recent: RecentStore = field(default_factory=MemoryRecentStore)
    _healths: list[RedisHealth] = field(default_factory=list)
    _clients: list[Redis] = field(default_factory=list)

    def attach(self, streams: StreamManager, hub: Hub, *, history_size: int) -> None:
        """Wire what needs the stream manager and hub: the bus's resync source, and history
        bootstrapping again after Redis came back (a restart may have emptied the store)."""
        if isinstance(self.bus, RedisBus):
            self.bus.set_resync(StoreResync(streams, hub, self.store, limit=history_size))
        for health in self._healths:
            health.subscribe(lambda reachable: streams.forget_history() if reachable else None)

    def healthy(self) -> bool:
        """Every Redis answers and the bus is subscribed (always True without Redis)."""
        if not all(health.reachable for health in self._healths):
            return False
        return not isinstance(self.bus, RedisBus) or self.bus.connected

    async def start(self) -> None:
        for health in self._healths:
            await health.start()

    async def close(self) -> None:
        for health in self._healths:
            await health.close()
        for client in self._clients:
            await client.aclose()


def open_services(settings: Settings) -> Services:
    """Build the store, bus and ownership that ``settings`` asks for (nothing connects yet)."""
    store_kind = _scheme(settings.store_url, "MARKETCAST_STORE_URL")
    bus_kind = _scheme(settings.bus_url, "MARKETCAST_BUS_URL")
    if bus_kind == "redis" and store_kind != "redis":
        raise ConfigurationError(
            "MARKETCAST_BUS_URL is redis:// but MARKETCAST_STORE_URL is not: workers that share "
            "a bus must share the store too (set MARKETCAST_STORE_URL=redis://host:port/db)"
        )
    worker_id = settings.worker_id or default_worker_id()
    services = Services(MemoryCandleStore(settings.store_capacity), MemoryBus(), None, worker_id)
    healths: dict[str, RedisHealth] = {}

    shared: dict[str, Redis] = {}

    def client_for(url: str, *, retries: int = 1) -> Redis:
        """One client (pool) per URL for commands; the pub/sub reader gets its own."""
        if retries == 1 and url in shared:
            return shared[url]
        try:
            client = connect(
                url, timeout=settings.redis_timeout, name=f"marketcast-{worker_id}", retries=retries
            )
        except ValueError as exc:
            raise ConfigurationError(f"invalid Redis URL: {exc}") from None
        services._clients.append(client)
        if retries == 1:
            shared[url] = client
        return client

    def health_for(url: str, client: Redis) -> RedisHealth:
        if url not in healths:
            healths[url] = RedisHealth(
                client, interval=_PROBE_INTERVAL, timeout=settings.redis_timeout
            )
            services._healths.append(healths[url])
        return healths[url]

    if store_kind == "redis":
        client = client_for(settings.store_url)
        services.store = RedisCandleStore(
            client,
            settings.store_capacity,
            prefix=settings.redis_prefix,
            health=health_for(settings.store_url, client),
        )
        services.recent = RedisRecentStore(
            client, prefix=settings.redis_prefix, health=health_for(settings.store_url, client)
        )
    if bus_kind == "redis":
        if settings.sim_speed != 1 and settings.sim_anchor is None:
            log.warning(
                "MARKETCAST_SIM_SPEED is %s without MARKETCAST_SIM_ANCHOR: each worker's "
                "simulated clock starts at its own start time, so a key taken over by another "
                "worker jumps in time; give every worker the same MARKETCAST_SIM_ANCHOR",
                settings.sim_speed,
            )
        client = client_for(settings.bus_url)
        health = health_for(settings.bus_url, client)
        bus = RedisBus(
            client,
            client_for(settings.bus_url, retries=0),
            channel=f"{settings.redis_prefix}:updates",
            worker_id=worker_id,
            health=health,
        )
        services.bus = bus
        ownership = RedisOwnership(
            client,
            health,
            worker_id=worker_id,
            lease_ttl=settings.lease_ttl,
            prefix=settings.redis_prefix,
            request_resync=bus.request_resync,
        )
        for other in services._healths:
            if other is not health:  # the store on another Redis server
                ownership.watch(other)
        services.ownership = ownership
    return services
