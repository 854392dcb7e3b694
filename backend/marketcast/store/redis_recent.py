"""``RedisRecentStore``: the ``RecentStore`` shared by every worker of a cluster.

One sorted set per stream name, scored by order (a trade's id), each member the record as
compact JSON ``{"o": order, "v": value}``. Why a sorted set: the newest kept order — what a
repeat is told apart by — is its highest score, read without decoding a member; the newest
N are one ZRANGE by rank; trimming to ``keep`` is ZREMRANGEBYRANK. Members never collide,
since each holds its own order and orders are strictly increasing.

Why a Lua script for writes: "skip a repeat, else add, then trim" reads before it writes, and
two workers appending at once (a takeover re-delivering what the old owner already stored)
must never both pass the check, nor another worker's read see the key above ``keep``. A
script runs atomically, costs one round trip, and redis-py reloads it by itself after a
Redis restart flushed the script cache.

Orders must be integers of magnitude below 2**53 (trade ids are): the double a score is
stored as holds them exactly, so the comparison in the script is exact. Values must be JSON
values (the snapshot element): they come back as decoded JSON, so a tuple returns as a list.
"""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio import Redis

from marketcast.market import RecentRecord
from marketcast.redis_health import RedisHealth, store_answer

#: KEYS[1] the stream's sorted set; ARGV[1] the record's order, ARGV[2] keep, ARGV[3] the
#: member. Adds the member unless its order is not above the highest score, then trims to
#: keep either way (as ``MemoryRecentStore`` applies a changed ``keep`` on any append).
#: Returns 1 if the record was kept, 0 for a repeat.
_APPEND = """
local kept = 0
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if newest[2] == nil or tonumber(newest[2]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
  kept = 1
end
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
if excess > 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, excess - 1)
end
return kept
"""

#: Orders a sorted-set score (a double) holds exactly.
_EXACT = 2**53


def encode_record(record: RecentRecord) -> bytes:
    """The member stored for ``record``: compact JSON ``{"o": order, "v": value}``."""
    return orjson.dumps({"o": record.order, "v": dict(record.value)})


def decode_record(member: bytes | str) -> RecentRecord:
    decoded = orjson.loads(member)
    return RecentRecord(decoded["o"], decoded["v"])


class RedisRecentStore:
    """``RecentStore`` in Redis; survives worker restarts, shared by all workers.

    The client is lent, not owned: ``close`` leaves it open for the other parts using it.
    Connection errors are reported to ``health`` (readiness, lease loop) and re-raised as
    ``ServiceUnavailable``.
    """

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "marketcast",
        health: RedisHealth | None = None,
    ) -> None:
        self._client = client
        #: Namespace of every key this store writes, so deployments can share a Redis.
        self._prefix = prefix
        self._health = health
        self._append = client.register_script(_APPEND)

    def redis_key(self, name: str) -> str:
        """The sorted set holding stream ``name``'s records."""
        return f"{self._prefix}:recent:{name}"

    async def append(self, name: str, record: RecentRecord, keep: int) -> None:
        """Keep ``record`` unless its order is not newer than the newest kept (a repeat);
        then at most ``keep`` records remain. One round trip, atomic."""
        if keep < 0:
            raise ValueError(f"keep must be >= 0, got {keep}")
        if not -_EXACT < record.order < _EXACT:
            raise ValueError(f"order must be below 2**53 in magnitude, got {record.order}")
        args: list[Any] = [record.order, keep, encode_record(record)]
        await self._run(self._append(keys=[self.redis_key(name)], args=args))

    async def last(self, name: str, count: int) -> list[RecentRecord]:
        """The newest ``count`` records, oldest first; none for ``count <= 0``."""
        if count <= 0:
            return []  # and never ZRANGE -0 -1: that would be the whole set
        members = await self._run(self._client.zrange(self.redis_key(name), -count, -1))
        return [decode_record(m) for m in members]

    async def close(self) -> None:
        """Nothing to free: the data is shared and the client belongs to the caller."""

    async def _run(self, command: Any) -> Any:
        return await store_answer(command, self._health)
