"""Token buckets and what a request costs — pure, no I/O, the clock is injected.

Why one module for the WebSocket and the REST limits: both must answer the same question —
may this client make the server do this much work now? — and both charge by the same unit,
so a client cannot get around one limit through the other's cheaper arithmetic.

Why a request is charged by its cost and not one token each: the server's work per request
ranges over three orders of magnitude. A ``ping`` is a few microseconds; a ``bars.subscribe``
with ``since: 0`` returns up to 1,000 bars and may have the feed generate or fetch as many
again. A bucket that charges one token for either lets 250 costly frames through in one
burst, which froze every other client of the server for seconds. So each request takes one
token when it is received (before any work), and once its work is known it is charged one
more token per ``BARS_PER_TOKEN`` bars it returned or had fetched. That second charge may
take the bucket below zero — the work is already done — and the debt is paid by refill
before the client's next request is allowed, so a client's sustained work is bounded by the
refill rate whatever mix of requests it sends. The debt is capped at one bucket's capacity,
so a single huge request costs at most two bursts' worth of waiting.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Final

#: Bars (returned, or fetched from a feed to build a reply) that cost one token more.
BARS_PER_TOKEN: Final = 50


def cost_of_bars(bars: int) -> float:
    """Tokens charged, on top of the one taken on receipt, for ``bars`` bars of work."""
    return max(bars, 0) / BARS_PER_TOKEN


class TokenBucket:
    """``capacity`` tokens, refilled continuously at ``rate`` per second of ``clock``."""

    __slots__ = ("_clock", "_stamp", "_tokens", "capacity", "rate")

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float]) -> None:
        if rate < 0:
            raise ValueError(f"rate must be >= 0 tokens per second, got {rate}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1 token, got {capacity}")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        #: Starts full: a new client may use its whole burst at once.
        self._tokens = float(capacity)
        #: When ``_tokens`` was last brought up to date.
        self._stamp = clock()

    @property
    def tokens(self) -> float:
        """Tokens available now; negative while a costly request's debt is being repaid."""
        self._refill()
        return self._tokens

    def take(self, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens if there are that many; False (and nothing taken) otherwise."""
        self._refill()
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def charge(self, cost: float) -> None:
        """Take ``cost`` tokens for work already done, going into debt (down to
        ``-capacity``) if there are not that many."""
        if cost <= 0:
            return
        self._refill()
        self._tokens = max(self._tokens - cost, -self.capacity)

    def wait_time(self, cost: float = 1.0) -> float:
        """Seconds until ``take(cost)`` would succeed (0 if it would now)."""
        missing = cost - self.tokens
        if missing <= 0:
            return 0.0
        return missing / self.rate if self.rate > 0 else float("inf")

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._stamp
        self._stamp = now
        if elapsed > 0:  # a clock that steps backwards adds nothing rather than subtracting
            self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)


class ClientBuckets:
    """One ``TokenBucket`` per client key (the REST limit keys by peer address).

    Why bounded: the keys come from the network, so an attacker cycling addresses must not
    grow this without limit. The least recently used key is forgotten beyond ``max_clients``;
    a forgotten client starts again with a full bucket, which costs at most one burst.
    """

    __slots__ = ("_buckets", "_clock", "burst", "max_clients", "rate")

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float], *, max_clients: int = 10_000
    ) -> None:
        if max_clients < 1:
            raise ValueError(f"max_clients must be >= 1, got {max_clients}")
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def bucket(self, client: str) -> TokenBucket:
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._buckets[client] = TokenBucket(self.rate, self.burst, self._clock)
            if len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(client)
        return bucket
