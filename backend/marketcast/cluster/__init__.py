"""Running several workers as one service, on Redis.

``ownership`` is the seam that decides which worker runs a key upstream (``LocalOwnership``:
this one, always; ``leases.RedisOwnership``: whoever holds the key's lease), and ``resync``
rebuilds what a worker's subscribers missed from the shared store. The Redis connection is
watched by ``marketcast.redis_health`` (readiness, and the trigger for every recovery), outside
this package because the store and the bus report to it too. ``docs/operations.md`` describes
the whole protocol and what happens on each fault.
"""
