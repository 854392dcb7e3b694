"""``RedisCandleStore``: the ``CandleStore`` shared by every worker of a cluster.

One sorted set per key, scored by open time, each member the candle as compact JSON. Why a
sorted set: the three questions the server asks — the newest N, a time range, how many — are
single commands (ZRANGE by rank, ZRANGE BYSCORE ... REV LIMIT, ZCARD), and trimming to the
capacity is ZREMRANGEBYRANK.

Why a Lua script for writes: "replace the candle opening at t" is remove-by-score then add,
followed by a trim, and another worker's read must never see the key without its bar or
above capacity. A script runs atomically, costs one round trip for a whole batch, and
redis-py reloads it by itself after a Redis restart flushed the script cache.

Why the same script can also PUBLISH (``upsert_and_publish``): a live candle is stored, then
published to the other workers (``bus.redis``). Two round trips per candle doubled the ingest
path's latency and Redis load; one script does both, in that order, atomically — so a worker
that receives the update and reads the store always finds the bar there.

Why several keys' candles can go in one script call (``upsert_and_publish_many``): one upstream
update may move many keys at once (a 1-minute kline and every resolution aggregated from it),
and a round trip per key made the ingest path wait on Redis once per key: at 11 keys per
update, a feed awaiting each spent most of its time idle and one worker ingested a few hundred
updates a second (under 700). One call per batch stores and publishes each candle exactly as the
one-candle call does (same sorted set, same member, same message on the same channel, each
candle stored before its own message), atomically for the whole batch. Every key of a batch
must live on the one Redis server the script runs on, which is what a store and bus sharing a
client means.

Scores are open times in ms: integers below 2**53, so the double a score is stored as holds
them exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from redis.asyncio import Redis

from marketcast.market import BarKey, Candle
from marketcast.redis_health import RedisHealth, store_answer
from marketcast.types import Millis

#: KEYS[1] the key's sorted set; ARGV[1] the capacity; ARGV[2] a pub/sub channel and ARGV[3]
#: a message to publish there once stored (empty channel: none); then (open time, member) pairs.
_UPSERT = """
for i = 4, #ARGV, 2 do
  redis.call('ZREMRANGEBYSCORE', KEYS[1], ARGV[i], ARGV[i])
  redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
end
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[1])
if excess > 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, excess - 1)
end
if ARGV[2] ~= '' then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return excess
"""

#: KEYS[i] the i-th candle's sorted set; ARGV[1] the capacity, ARGV[2] the pub/sub channel;
#: then per candle (open time, member, message). Each candle as ``_UPSERT`` writes one (replace
#: the bar at that open time, trim to the capacity), then its message is published.
_UPSERT_PUBLISH_MANY = """
local capacity = tonumber(ARGV[1])
for i = 1, #KEYS do
  local j = 3 * i
  redis.call('ZREMRANGEBYSCORE', KEYS[i], ARGV[j], ARGV[j])
  redis.call('ZADD', KEYS[i], ARGV[j], ARGV[j + 1])
  local excess = redis.call('ZCARD', KEYS[i]) - capacity
  if excess > 0 then
    redis.call('ZREMRANGEBYRANK', KEYS[i], 0, excess - 1)
  end
  redis.call('PUBLISH', ARGV[2], ARGV[j + 2])
end
return #KEYS
"""

#: Candles written per script call: bounds the time one call blocks Redis (a 20k-bar
#: backfill becomes a few short scripts instead of one long one).
_BATCH = 500
#: Candles stored and published per ``upsert_and_publish_many`` script call: each costs Redis
#: a few microseconds, so a call blocks it well under a millisecond.
PUBLISH_BATCH = 128


def _check_count(name: str, value: int) -> None:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


def encode_candle(candle: Candle) -> bytes:
    """The member stored for ``candle``: a JSON array, field order as in ``Candle``."""
    return orjson.dumps(
        [
            candle.time,
            candle.open,
            candle.high,
            candle.low,
            candle.close,
            candle.volume,
            candle.closed,
        ]
    )


def decode_candle(member: bytes | str) -> Candle:
    time, open_, high, low, close, volume, closed = orjson.loads(member)
    return Candle(time, open_, high, low, close, volume, bool(closed))


class RedisCandleStore:
    """``CandleStore`` in Redis; survives worker restarts, shared by all workers.

    The client is lent, not owned: ``close`` leaves it open for the other parts using it.
    Connection errors are reported to ``health`` (readiness, lease loop) and re-raised.
    """

    def __init__(
        self,
        client: Redis,
        capacity: int,
        *,
        prefix: str = "marketcast",
        health: RedisHealth | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1 candle per key, got {capacity}")
        self._client = client
        #: Candles kept per key; the oldest beyond it are dropped on write.
        self.capacity = capacity
        #: Namespace of every key this store writes, so deployments can share a Redis.
        self._prefix = prefix
        self._health = health
        self._upsert = client.register_script(_UPSERT)
        self._upsert_publish_many = client.register_script(_UPSERT_PUBLISH_MANY)
        #: ``redis_key`` of each key written so far: computed once, it is on the ingest path.
        self._redis_keys: dict[BarKey, str] = {}

    def redis_key(self, key: BarKey) -> str:
        """The sorted set holding ``key``'s candles."""
        name = self._redis_keys.get(key)
        if name is None:
            name = self._redis_keys[key] = f"{self._prefix}:candles:{key.symbol}:{key.resolution}"
        return name

    def shares(self, client: Redis) -> bool:
        """Whether ``client`` is this store's own, i.e. one script can reach both."""
        return client is self._client

    async def upsert(self, key: BarKey, candle: Candle) -> None:
        await self.upsert_many(key, (candle,))

    async def upsert_and_publish(
        self, key: BarKey, candle: Candle, channel: str, message: bytes
    ) -> None:
        """Store ``candle``, then PUBLISH ``message`` on ``channel``: one round trip, atomic."""
        args: list[Any] = [self.capacity, channel, message, candle.time, encode_candle(candle)]
        await self._run(self._upsert(keys=[self.redis_key(key)], args=args))

    async def upsert_and_publish_many(
        self, items: Sequence[tuple[BarKey, Candle, bytes]], channel: str
    ) -> None:
        """Store each ``(key, candle, message)`` and PUBLISH its message on ``channel``, in
        order: one round trip, atomic, per ``PUBLISH_BATCH`` candles (a caller that delivers
        what a call carried once it is written passes at most that many)."""
        for first in range(0, len(items), PUBLISH_BATCH):
            chunk = items[first : first + PUBLISH_BATCH]
            args: list[Any] = [self.capacity, channel]
            for _, candle, message in chunk:
                args += (candle.time, encode_candle(candle), message)
            redis_key = self.redis_key
            keys = [redis_key(key) for key, _, _ in chunk]
            await self._run(self._upsert_publish_many(keys=keys, args=args))

    async def upsert_many(self, key: BarKey, candles: Sequence[Candle]) -> None:
        for first in range(0, len(candles), _BATCH):
            args: list[Any] = [self.capacity, "", ""]
            for candle in candles[first : first + _BATCH]:
                args += (candle.time, encode_candle(candle))
            await self._run(self._upsert(keys=[self.redis_key(key)], args=args))

    async def last(self, key: BarKey, count: int) -> list[Candle]:
        """The newest ``count`` candles, ascending."""
        _check_count("count", count)
        if count == 0:
            return []
        members = await self._run(self._client.zrange(self.redis_key(key), -count, -1))
        return [decode_candle(m) for m in members]

    async def range(
        self, key: BarKey, start: Millis | None, end: Millis | None, limit: int
    ) -> list[Candle]:
        """Candles with ``start <= time < end`` (None = unbounded), the newest ``limit`` of
        them, ascending."""
        _check_count("limit", limit)
        if limit == 0 or (start is not None and end is not None and start >= end):
            return []
        newest_first = await self._run(
            self._client.zrange(
                self.redis_key(key),
                "+inf" if end is None else f"({end}",
                "-inf" if start is None else start,
                desc=True,
                byscore=True,
                offset=0,
                num=limit,
            )
        )
        return [decode_candle(m) for m in reversed(newest_first)]

    async def count(self, key: BarKey) -> int:
        result: int = await self._run(self._client.zcard(self.redis_key(key)))
        return result

    async def close(self) -> None:
        """Nothing to free: the data is shared and the client belongs to the caller."""

    async def _run(self, command: Any) -> Any:
        return await store_answer(command, self._health)
