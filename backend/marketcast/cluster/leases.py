"""``RedisOwnership``: one upstream owner per key across the cluster, by leases in Redis.

Three structures, all under the deployment's prefix:

- ``lease:<key>`` — a string holding the owner's worker id, expiring after two thirds of
  ``lease_ttl``. Taken with a SET-if-absent (or re-taken by the same worker), renewed with
  compare-and-extend every third of ``lease_ttl``, released with compare-and-delete — all Lua,
  so a worker can never extend or delete a lease another worker holds. Why two thirds: a dead
  owner's lease is gone within 2/3 of ``lease_ttl`` and every other worker looks within the
  next third, so ``lease_ttl`` is the longest a key stays without an owner, as documented.
- ``demand`` — a sorted set of ``<key>#<worker>`` scored by expiry (Redis server time, so
  worker clocks do not matter). Every worker refreshes its members for the keys its clients
  want; a dead worker's members expire within ``lease_ttl``.
- the bus channel, for the resync request a new owner sends (``bus.redis``).

A loop in each worker, every third of the TTL (and at once when Redis comes back): refresh
demand; renew the leases it holds, giving up those nobody wants any more or that it lost;
take every wanted key nobody holds. Taking a key is: take the lease, catch the key up in the
store from the feed (the gap since the newest stored bar; all of history when the store lost
it), ask every worker to resync the topic from the store, then watch it upstream. Only then
does live data flow, so clients see the catch-up before anything newer.

Why drop every key when Redis was unreachable, even briefly: the owner's store writes failed
meanwhile (those bars are lost unless caught up again), and a lease may have expired and
moved to another worker. Stopping upstream and re-taking — usually the same lease, reclaimed
at once — runs the same catch-up and resync as a takeover, so the rule is one, not two.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from marketcast.cluster.health import CONNECTION_ERRORS, RedisHealth, cancel_and_wait
from marketcast.cluster.ownership import Upstream
from marketcast.market import BarKey, QuoteKey, StreamKey
from marketcast.timeframes import normalize_resolution
from marketcast.types import Topic

log = logging.getLogger("marketcast.cluster")

#: Take the lease, or re-take it when this worker still holds it (after a Redis blip).
_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

#: Extend the lease only while this worker holds it.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

#: Delete the lease only while this worker holds it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def key_id(key: StreamKey) -> str:
    """A key's name in Redis: ``bars|BTCUSDT|1`` or ``quotes|EUR/USD``."""
    if isinstance(key, BarKey):
        return f"bars|{key.symbol}|{key.resolution}"
    return f"quotes|{key.symbol}"


def parse_key_id(text: str) -> StreamKey | None:
    """The key named ``text``, or None if it is not one this version understands."""
    parts = text.split("|")
    if len(parts) == 3 and parts[0] == "bars":
        resolution = normalize_resolution(parts[2])
        return BarKey(parts[1], resolution) if resolution is not None else None
    if len(parts) == 2 and parts[0] == "quotes":
        return QuoteKey(parts[1])
    return None


class RedisOwnership:
    """``Ownership`` by Redis leases; see the module docstring for the protocol."""

    def __init__(
        self,
        client: Redis,
        health: RedisHealth,
        *,
        worker_id: str,
        lease_ttl: float,
        prefix: str,
        request_resync: Callable[[Topic], Awaitable[None]],
    ) -> None:
        self._client = client
        self._health = health
        self.worker_id = worker_id
        #: How long demand entries live: a dead worker's demand is gone within ``lease_ttl``.
        self._ttl_ms = max(round(lease_ttl * 1000), 3)
        #: How long a lease lives unrenewed: see the module docstring for why 2/3.
        self._lease_ms = self._ttl_ms * 2 // 3
        #: Loop (renewal) period; one late renewal is tolerated before the lease expires.
        self._interval = lease_ttl / 3
        self._prefix = prefix
        self._demand = f"{prefix}:demand"
        #: Sent after a catch-up, so every worker resyncs the topic from the store.
        self._request_resync = request_resync
        self._acquire_script = client.register_script(_ACQUIRE)
        self._renew_script = client.register_script(_RENEW)
        self._release_script = client.register_script(_RELEASE)
        self._upstream: Upstream | None = None
        #: Keys this worker's clients want (its demand members).
        self._wanted: set[StreamKey] = set()
        #: Keys whose lease this worker holds *and* that run upstream here.
        self._owned: set[StreamKey] = set()
        #: One transition at a time: the loop, want and unwant never interleave their awaits.
        self._lock = asyncio.Lock()
        #: Set to run the loop now instead of at the next period.
        self._wake = asyncio.Event()
        #: Every Redis this worker's ingest depends on (the store's too, when it is another
        #: server): an outage of any of them drops and re-takes the owned keys.
        self._healths = [health]
        #: Their outage counts when the loop last looked; a change means an outage.
        self._epoch = self._epochs()
        self._task: asyncio.Task[None] | None = None
        #: Event-loop time of the last renewal pass: a long series of catch-ups renews in
        #: between, so keys taken early in a pass do not expire before it ends.
        self._renewed_at = 0.0
        #: Keys taken (including re-taken after a blip), for tests and logs.
        self.takeovers = 0
        health.subscribe(lambda _reachable: self._wake.set())

    def watch(self, health: RedisHealth) -> None:
        """Also drop and re-take keys when ``health`` (e.g. the store's Redis) had an outage."""
        self._healths.append(health)
        self._epoch = self._epochs()
        health.subscribe(lambda _reachable: self._wake.set())

    def _epochs(self) -> tuple[int, ...]:
        return tuple(health.epoch for health in self._healths)

    def _reachable(self) -> bool:
        return all(health.reachable for health in self._healths)

    def lease_key(self, key: StreamKey) -> str:
        return f"{self._prefix}:lease:{key_id(key)}"

    # -- Ownership ----------------------------------------------------------------------------

    def bind(self, upstream: Upstream) -> None:
        self._upstream = upstream

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("RedisOwnership.start called twice")
        self._task = asyncio.create_task(self._run(), name="lease-loop")

    async def want(self, key: StreamKey) -> None:
        """Register demand and try to take the lease at once, so the first subscriber of an
        idle key does not wait for the loop. Never raises for a Redis outage: the loop
        registers the demand once Redis is back."""
        self._wanted.add(key)
        async with self._lock:
            if key in self._owned or not self._reachable():
                self._wake.set()
                return
            try:
                # Lease before demand: no other worker can see the demand and take the key
                # first, so the worker whose client asked first usually owns it.
                taken = await self._acquire(key)
                now = await self._server_ms()
                await self._client.zadd(self._demand, {self._member(key): now + self._ttl_ms})
                if taken:
                    await self._take_over(key)
            except CONNECTION_ERRORS as exc:
                self._health.report_failure(exc)

    async def unwant(self, key: StreamKey) -> None:
        """Withdraw demand; stop the key upstream if this worker owns it and no other
        worker wants it (otherwise keep owning it for them)."""
        self._wanted.discard(key)
        async with self._lock:
            try:
                await self._client.zrem(self._demand, self._member(key))
                if key in self._owned and key not in await self._cluster_demand():
                    await self._give_up(key, release=True)
            except CONNECTION_ERRORS as exc:
                self._health.report_failure(exc)

    def owned(self) -> list[StreamKey]:
        return sorted(self._owned, key=key_id)

    async def close(self) -> None:
        """Stop the loop, stop every owned key upstream and release its lease, withdraw
        demand: the other workers take over at their next loop instead of after the TTL."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        async with self._lock:
            for key in list(self._owned):
                await self._give_up(key, release=True)
            with contextlib.suppress(*CONNECTION_ERRORS):
                members = [self._member(key) for key in self._wanted]
                if members:
                    await self._client.zrem(self._demand, *members)

    # -- the loop -----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                async with self._lock:
                    await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("lease loop iteration failed")

    async def _tick(self) -> None:
        if self._epochs() != self._epoch:
            self._epoch = self._epochs()
            if self._owned:
                log.warning("redis was unreachable: stopping %d keys upstream", len(self._owned))
            for key in list(self._owned):
                await self._give_up(key, release=False)
        if not self._reachable():
            return
        try:
            wanted = await self._refresh_demand()
            await self._renew_owned(wanted)
            await self._take_free(wanted)
        except CONNECTION_ERRORS as exc:
            self._health.report_failure(exc)

    async def _renew_owned(self, wanted: set[StreamKey]) -> None:
        """Renew every held lease; give up keys nobody wants and leases lost meanwhile."""
        self._renewed_at = asyncio.get_running_loop().time()
        for key in sorted(self._owned, key=key_id):
            if key not in wanted:
                await self._give_up(key, release=True)
            elif not await self._renew(key):
                log.warning("lease lost: %s", key_id(key))
                await self._give_up(key, release=False)

    async def _refresh_demand(self) -> set[StreamKey]:
        """Refresh this worker's demand, drop expired members; every key wanted anywhere."""
        now = await self._server_ms()
        async with self._client.pipeline(transaction=False) as pipe:
            if self._wanted:
                pipe.zadd(self._demand, {self._member(k): now + self._ttl_ms for k in self._wanted})
            pipe.zremrangebyscore(self._demand, "-inf", now)
            await pipe.execute()
        return await self._cluster_demand()

    async def _cluster_demand(self) -> set[StreamKey]:
        members = await self._client.zrange(self._demand, 0, -1)
        wanted: set[StreamKey] = set()
        for member in members:
            text = member.decode() if isinstance(member, bytes) else str(member)
            key = parse_key_id(text.rsplit("#", 1)[0])
            if key is not None and self._serves(key):
                wanted.add(key)
        return wanted

    async def _take_free(self, wanted: set[StreamKey]) -> None:
        """Take every wanted key without a lease; this worker's own demand first."""
        candidates = sorted(wanted - self._owned, key=lambda k: (k not in self._wanted, key_id(k)))
        if not candidates:
            return
        holders = await self._client.mget([self.lease_key(k) for k in candidates])
        loop = asyncio.get_running_loop()
        for key, holder in zip(candidates, holders, strict=True):
            mine = holder is not None and holder == self.worker_id.encode()
            if (holder is None or mine) and await self._acquire(key):
                await self._take_over(key)
            if loop.time() - self._renewed_at > self._interval:
                await self._renew_owned(wanted)

    # -- transitions --------------------------------------------------------------------------

    async def _take_over(self, key: StreamKey) -> None:
        """Lease held: catch up, resync everywhere, watch. On failure, release and retry at
        the next loop (the demand is still there)."""
        upstream = self._bound()
        try:
            if isinstance(key, BarKey):
                await upstream.catch_up(key)
                await self._request_resync(upstream.topic(key))
            await upstream.start_upstream(key)
        except Exception as exc:
            log.warning("could not take %s: %r", key_id(key), exc)
            if isinstance(exc, CONNECTION_ERRORS):
                self._health.report_failure(exc)
            with contextlib.suppress(*CONNECTION_ERRORS):
                await self._release(key)
            return
        self._owned.add(key)
        self.takeovers += 1
        log.info("upstream on: %s (lease held by %s)", key_id(key), self.worker_id)

    async def _give_up(self, key: StreamKey, *, release: bool) -> None:
        self._owned.discard(key)
        try:
            await self._bound().stop_upstream(key)
        except Exception:
            log.exception("stopping %s upstream failed", key_id(key))
        if release:
            with contextlib.suppress(*CONNECTION_ERRORS):
                await self._release(key)
        log.info("upstream off: %s (%s)", key_id(key), "released" if release else "lease lost")

    # -- Redis --------------------------------------------------------------------------------

    async def _acquire(self, key: StreamKey) -> bool:
        result = await self._acquire_script(
            keys=[self.lease_key(key)], args=[self.worker_id, self._lease_ms]
        )
        return bool(result)

    async def _renew(self, key: StreamKey) -> bool:
        result = await self._renew_script(
            keys=[self.lease_key(key)], args=[self.worker_id, self._lease_ms]
        )
        return bool(result)

    async def _release(self, key: StreamKey) -> None:
        await self._release_script(keys=[self.lease_key(key)], args=[self.worker_id])

    async def _server_ms(self) -> int:
        """Redis's clock, so demand expiry does not depend on each worker's clock."""
        seconds, micros = await self._client.time()
        return seconds * 1000 + micros // 1000

    def _member(self, key: StreamKey) -> str:
        return f"{key_id(key)}#{self.worker_id}"

    def _serves(self, key: StreamKey) -> bool:
        info = self._bound().symbol_info(key.symbol)
        return info is not None and (
            not isinstance(key, BarKey) or key.resolution in info.resolutions
        )

    def _bound(self) -> Upstream:
        if self._upstream is None:
            raise RuntimeError("RedisOwnership used before StreamManager bound it")
        return self._upstream
