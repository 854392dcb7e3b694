"""``RedisCandleStore``: the ``CandleStore`` shared by every worker of a cluster.

One sorted set per key, scored by open time, each member the candle as compact JSON. Why a
sorted set: the three questions the server asks — the newest N, a time range, how many — are
single commands (ZRANGE by rank, ZRANGE BYSCORE ... REV LIMIT, ZCARD), and trimming to the
capacity is ZREMRANGEBYRANK.

Why a Lua script for writes: "replace the candle opening at t" is remove-by-score then add,
followed by a trim, and another worker's read must never see the key without its bar or
above capacity. A script runs atomically, costs one round trip for a whole batch, and
redis-py reloads it by itself after a Redis restart flushed the script cache.

Why the same script also PUBLISHes (``store_and_publish``): a live candle is stored, then
published to the other workers (``bus.redis``). Two round trips per candle doubled the ingest
path's latency and Redis load; one script does both, in that order, atomically — so a worker
that receives the update and reads the store always finds the bar there.

Why one call takes many keys' candles and one message for all of them: one upstream update
moves many keys at once (a 1-minute kline and every resolution aggregated from it), and the
bus gathers the updates that arrive while its previous call is in flight (``bus.redis``). A
round trip and a message per key made one worker ingest a few hundred updates a second; one
call per batch stores every candle exactly as a one-candle call would (same sorted set, same
member), then publishes the batch's one message. Every key of a batch must live on the one
Redis server the script runs on, which is what a store and bus sharing a client means.

Scores are open times in ms: integers below 2**53, so the double a score is stored as holds
them exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from redis.asyncio import Redis

from marketcast.market import BarKey, Candle
from marketcast.redis_health import RedisHealth, store_answer, store_failure
from marketcast.redis_pipeline import bulk, pack_after
from marketcast.types import Millis

#: ARGV[1] the capacity; ARGV[2] a pub/sub channel and ARGV[3] a message to publish there once
#: every candle is stored (empty channel: none); ARGV[4] the candles' open times joined by
#: commas; ARGV[5] their members joined by newlines (compact JSON holds none); ARGV[6] the
#: prefix of every sorted set's name and ARGV[7] each candle's ``symbol:resolution`` after it,
#: joined by newlines (a key may repeat). Each candle replaces the bar at its open time; a new
#: bar then trims its set to the capacity (a replaced one leaves the size as it was: most
#: writes are a new version of the open bar, and skip the ZCARD).
#:
#: Why a call carries its candles in a few joined arguments rather than a few each: the
#: client encodes every argument of a command on its own, and at eleven candles an update
#: that encoding was most of a worker's ingest cost. Why the sets are named in ARGV, not
#: KEYS: building (or looking up) each set's full name in the worker cost more than the rest
#: of a candle's encoding, at 22,000 keys; the script builds it from its two parts. KEYS would
#: matter only to Redis Cluster, and one deployment's store already lives on one server.
_STORE = """
local capacity = tonumber(ARGV[1])
local keys = {}
for name in string.gmatch(ARGV[7], '[^\\n]+') do
  keys[#keys + 1] = ARGV[6] .. name
end
local members = {}
for member in string.gmatch(ARGV[5], '[^\\n]+') do
  members[#members + 1] = member
end
if #members ~= #keys then
  return redis.error_reply('marketcast: ' .. #keys .. ' keys but ' .. #members .. ' members')
end
local i = 0
for time in string.gmatch(ARGV[4], '[^,]+') do
  i = i + 1
  local key = keys[i]
  local replaced = redis.call('ZREMRANGEBYSCORE', key, time, time)
  redis.call('ZADD', key, time, members[i])
  if replaced == 0 then
    local excess = redis.call('ZCARD', key) - capacity
    if excess > 0 then
      redis.call('ZREMRANGEBYRANK', key, 0, excess - 1)
    end
  end
end
if i ~= #keys then
  return redis.error_reply('marketcast: ' .. #keys .. ' keys but ' .. i .. ' open times')
end
if ARGV[2] ~= '' then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return i
"""

#: Candles stored per script call: each costs Redis a few microseconds, so one call blocks it
#: well under a millisecond (a 20k-bar backfill becomes a few short scripts, not one long one).
PUBLISH_BATCH = 128


def _check_count(name: str, value: int) -> None:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


def encode_candle(candle: Candle) -> bytes:
    """The member stored for ``candle``: a JSON array, field order as in ``Candle``."""
    return encode_candles((candle,))[1]


def encode_candles(candles: Sequence[Candle]) -> tuple[bytes, bytes]:
    """(open times joined by commas, members joined by newlines) of ``candles``: the bytes of
    ``encode_candle`` and ``%d`` for each, joined, in two orjson calls instead of one or two
    per candle (the rows hold numbers and booleans only, so ``],[`` only ever separates
    two of them)."""
    rows = [[c.time, c.open, c.high, c.low, c.close, c.volume, c.closed] for c in candles]
    times = orjson.dumps([row[0] for row in rows])[1:-1]
    return times, orjson.dumps(rows)[1:-1].replace(b"],[", b"]\n[")


def _set_name(key: BarKey) -> str:
    """The part of ``key``'s sorted set name after the store's prefix."""
    return f"{key.symbol}:{key.resolution}"


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
        self._store = client.register_script(_STORE)
        #: ``EVAL``, the script's text and its KEYS count (none), as every packed call
        #: begins.
        self._eval_head = bulk(b"EVAL") + bulk(_STORE.encode()) + bulk(b"0")
        self._capacity = b"%d" % capacity
        #: What every sorted set's name starts with (``redis_key``): the script's ARGV[6].
        self._names_prefix = f"{prefix}:candles:".encode()
        #: ``redis_key`` of each key written so far: computed once, it is on the ingest path.
        self._redis_keys: dict[BarKey, str] = {}

    def redis_key(self, key: BarKey) -> str:
        """The sorted set holding ``key``'s candles."""
        name = self._redis_keys.get(key)
        if name is None:
            name = self._redis_keys[key] = f"{self._prefix}:candles:{_set_name(key)}"
        return name

    def shares(self, client: Redis) -> bool:
        """Whether ``client`` is this store's own, i.e. one script can reach both."""
        return client is self._client

    async def upsert(self, key: BarKey, candle: Candle) -> None:
        await self.store_and_publish(((key, candle),))

    async def upsert_many(self, key: BarKey, candles: Sequence[Candle]) -> None:
        await self.store_and_publish([(key, candle) for candle in candles])

    async def store_and_publish(
        self, items: Sequence[tuple[BarKey, Candle]], channel: str = "", message: bytes = b""
    ) -> None:
        """Store each ``(key, candle)`` in order, then PUBLISH ``message`` on ``channel`` (none
        when it is empty): one atomic script call, one round trip, per ``PUBLISH_BATCH``
        candles; the message goes with the last, once everything before it is stored."""
        for args in self._store_calls(items, channel.encode(), message):
            await self._run(self._store(keys=[], args=args))

    def store_and_publish_commands(
        self, items: Sequence[tuple[BarKey, Candle]], channel: str, message: bytes
    ) -> list[bytes]:
        """``store_and_publish``'s script calls as packed ``EVAL`` commands, for a caller that
        sends them itself without waiting for each answer (``redis_pipeline``). Why EVAL
        with the script's text rather than EVALSHA: a Redis that lost its script cache (a
        restart, a failover) answers EVALSHA with NOSCRIPT, and a command sent after it may
        already have run; EVAL cannot fail that way, and Redis caches the compiled script."""
        head = self._eval_head
        return [
            pack_after(head, 3, args)
            for args in self._store_calls(items, channel.encode(), message)
        ]

    def failure(self, exc: BaseException) -> BaseException:
        """What a failed store command raises (``redis_health.store_failure``)."""
        return store_failure(exc, self._health)

    def _store_calls(
        self, items: Sequence[tuple[BarKey, Candle]], channel: bytes, message: bytes
    ) -> list[list[bytes]]:
        """The ARGV of each script call storing ``items``: one per ``PUBLISH_BATCH``, the
        message with the last."""
        calls = []
        capacity, prefix = self._capacity, self._names_prefix
        for first in range(0, len(items), PUBLISH_BATCH):
            chunk = items[first : first + PUBLISH_BATCH]
            publish = first + PUBLISH_BATCH >= len(items)
            times, members = encode_candles([candle for _, candle in chunk])
            names = "\n".join([_set_name(key) for key, _ in chunk]).encode()
            calls.append(
                [
                    capacity,
                    channel if publish else b"",
                    message if publish else b"",
                    times,
                    members,
                    prefix,
                    names,
                ]
            )
        return calls

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
