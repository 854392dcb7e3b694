"""Cost-charged token buckets (``marketcast.ratelimit``) and the WebSocket limiter's charge,
driven by a fake clock: no sleeping, no sockets."""

from __future__ import annotations

import pytest

from marketcast.ratelimit import BARS_PER_TOKEN, ClientBuckets, TokenBucket, cost_of_bars
from marketcast.ws.limits import RateLimiter, Verdict


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def frames_allowed(limiter: RateLimiter) -> int:
    """How many one-token frames the limiter allows now, before the first refusal."""
    allowed = 0
    while limiter.check() is Verdict.ALLOW:
        allowed += 1
    return allowed


def test_cost_is_one_token_per_bars_per_token_bars() -> None:
    assert cost_of_bars(0) == 0
    assert cost_of_bars(BARS_PER_TOKEN) == 1
    assert cost_of_bars(1000) == 1000 / BARS_PER_TOKEN
    assert cost_of_bars(-5) == 0


def test_charge_goes_into_debt_and_refill_pays_it_back() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, capacity=20, clock=clock)
    bucket.charge(25)
    assert bucket.tokens == -5
    assert not bucket.take()
    assert bucket.wait_time() == pytest.approx(0.6)  # 6 tokens at 10/s
    clock.now += 0.6
    assert bucket.take()


def test_debt_is_capped_at_one_capacity() -> None:
    bucket = TokenBucket(rate=10, capacity=20, clock=FakeClock())
    bucket.charge(10_000)
    assert bucket.tokens == -20


def test_a_zero_or_negative_charge_changes_nothing() -> None:
    bucket = TokenBucket(rate=10, capacity=20, clock=FakeClock())
    bucket.charge(0)
    bucket.charge(-3)
    assert bucket.tokens == 20


def test_wait_time_is_infinite_without_refill() -> None:
    bucket = TokenBucket(rate=0, capacity=1, clock=FakeClock())
    assert bucket.take()
    assert bucket.wait_time() == float("inf")


def test_a_costly_frame_drains_proportionally_more_tokens() -> None:
    """The same burst allows fewer frames after a frame that returned bars, in proportion to
    the bars: 1,000 bars cost 1,000 / BARS_PER_TOKEN frames' worth."""
    plain = RateLimiter(rate=1, burst=100, max_refused=5, clock=FakeClock())
    assert plain.check() is Verdict.ALLOW
    after_plain = frames_allowed(plain)

    costs = {}
    for bars in (100, 500, 1000):
        limiter = RateLimiter(rate=1, burst=100, max_refused=5, clock=FakeClock())
        assert limiter.check() is Verdict.ALLOW
        limiter.charge(bars)
        costs[bars] = after_plain - frames_allowed(limiter)
    assert after_plain == 99
    assert costs == {bars: bars // BARS_PER_TOKEN for bars in (100, 500, 1000)}


def test_a_costly_frame_leaves_the_next_one_refused_until_its_debt_is_paid() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=10, burst=10, max_refused=5, clock=clock)
    assert limiter.check() is Verdict.ALLOW
    limiter.charge(1000)  # 20 tokens: debt capped at -10
    assert limiter.tokens == -10
    assert limiter.check() is Verdict.REFUSE
    clock.now += 1.1  # 11 tokens refilled: back to +1
    assert limiter.check() is Verdict.ALLOW


def test_charging_a_disabled_limiter_does_nothing() -> None:
    limiter = RateLimiter(rate=0, burst=1, max_refused=1, clock=FakeClock())
    limiter.charge(10_000)
    assert all(limiter.check() is Verdict.ALLOW for _ in range(100))


def test_client_buckets_are_per_client_and_bounded() -> None:
    clock = FakeClock()
    buckets = ClientBuckets(rate=1, burst=2, clock=clock, max_clients=3)
    assert buckets.bucket("a").take()
    assert buckets.bucket("a").take()
    assert not buckets.bucket("a").take()
    assert buckets.bucket("b").take()  # another client has its own bucket
    buckets.bucket("c")
    buckets.bucket("a")  # used: now the most recent
    buckets.bucket("d")  # evicts the least recently used, "b"
    assert len(buckets) == 3
    assert not buckets.bucket("a").take()  # "a" kept its (empty) bucket
    assert buckets.bucket("b").tokens == 2  # "b" was forgotten: a fresh bucket


def test_client_buckets_refuse_a_nonsense_bound() -> None:
    with pytest.raises(ValueError, match="max_clients must be >= 1, got 0"):
        ClientBuckets(1, 1, FakeClock(), max_clients=0)
