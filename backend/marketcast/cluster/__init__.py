"""Running several workers as one service, on Redis.

``health`` watches the Redis connection (readiness, and the trigger for every recovery),
``ownership`` is the seam that decides which worker runs a key upstream (``LocalOwnership``:
this one, always; ``leases.RedisOwnership``: whoever holds the key's lease), and ``resync``
rebuilds what a worker's subscribers missed from the shared store. ``docs/operations.md``
describes the whole protocol and what happens on each fault.
"""
