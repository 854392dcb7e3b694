"""The lease protocol's Redis side: its Lua scripts, and how a round over every key is cut.

A worker may hold tens of thousands of leases (22,000 in the ingest benchmark). Each round over
all of them (renewal, demand refresh, release at shutdown) is cut twice: into script calls of
``RENEW_CHUNK`` / ``DEMAND_CHUNK`` names joined in one argument (``joined``), sent one after the
other so Redis runs other clients' commands between them; and, in the worker, into ``STEP``
keys at a time with a turn of the event loop between them (``steps``), so its clients' frames
never wait for a whole round. ``leases.RedisOwnership`` runs the protocol with them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Final

#: Leases renewed per script call: a call runs alone in Redis, so one for 22,000 keys held
#: every other client (the store's writes) for tens of milliseconds.
RENEW_CHUNK: Final = 1_000
#: Demand members refreshed per ZADD, for the same reason.
DEMAND_CHUNK: Final = 1_000

#: Take the lease, or re-take it when this worker still holds it (after a Redis blip).
ACQUIRE = """
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

#: Extend each lease named in ARGV[3] (joined by newlines) only while this worker holds it;
#: answers a string of one character per lease, "1" renewed or "0" not. Why the names travel
#: in one argument and the answer is one string: a worker may hold tens of thousands of
#: leases, and redis-py encodes each argument and parses each element of an answer on its
#: own, in Python — that was most of the cost of a renewal round. (A lease name is never
#: declared in KEYS, which only Redis Cluster would need; the store's writes already keep
#: one deployment on one Redis server.)
RENEW = """
local renewed = {}
for key in string.gmatch(ARGV[3], '[^\\n]+') do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    renewed[#renewed + 1] = '1'
  else
    renewed[#renewed + 1] = '0'
  end
end
return table.concat(renewed)
"""

#: Set the score of each demand member in ARGV[2] (joined by newlines) to ARGV[1], in
#: KEYS[1]; one argument for the members, for the reason given at ``RENEW``.
REFRESH = """
local pairs = {}
for member in string.gmatch(ARGV[2], '[^\\n]+') do
  pairs[#pairs + 1] = ARGV[1]
  pairs[#pairs + 1] = member
end
if #pairs > 0 then
  redis.call('ZADD', KEYS[1], unpack(pairs))
end
return #pairs / 2
"""

#: Every member of the demand set KEYS[1], joined by newlines: one string to split instead
#: of an element per member to parse.
MEMBERS = """
return table.concat(redis.call('ZRANGE', KEYS[1], 0, -1), '\\n')
"""

#: Delete the lease only while this worker holds it.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

#: ``RELEASE`` for each lease named in ARGV[2] (joined by newlines, as for ``RENEW``);
#: answers how many were deleted. A closing worker gives back all its leases this way.
RELEASE_MANY = """
local released = 0
for key in string.gmatch(ARGV[2], '[^\\n]+') do
  if redis.call('GET', key) == ARGV[1] then
    released = released + redis.call('DEL', key)
  end
end
return released
"""


#: Keys handled per step of a round over every key (renewal, demand), with a turn of the event
#: loop between steps: a worker holding 22,000 keys otherwise held its loop for tens of
#: milliseconds at each round, every clients' frames and every feed waiting meanwhile.
STEP: Final = 1_000


def joined(names: list[str], size: int) -> list[str]:
    """``names`` in chunks of ``size``, each joined by newlines: one script argument each."""
    return ["\n".join(names[first : first + size]) for first in range(0, len(names), size)]


async def steps(size: int) -> AsyncIterator[slice]:
    """The parts of a round over ``size`` keys, a ``STEP`` each, with a turn of the event
    loop before every part but the first."""
    for first in range(0, size, STEP):
        if first:
            await asyncio.sleep(0)
        yield slice(first, first + STEP)
