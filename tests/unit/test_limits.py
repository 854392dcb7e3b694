"""Token bucket and rate-limit verdicts, driven by a fake clock (no sleeping, no sockets)."""

from __future__ import annotations

import random

import pytest

from marketcast.errors import CloseCode
from marketcast.settings import Settings
from marketcast.ws.limits import (
    LIFETIME_JITTER,
    ConnectionLimits,
    RateLimiter,
    TokenBucket,
    Verdict,
    describe,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_starts_full_and_refills_at_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, capacity=5, clock=clock)
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    clock.now += 0.1  # one token
    assert bucket.take()
    assert not bucket.take()
    clock.now += 100  # refill stops at capacity
    assert bucket.tokens == 5


def test_bucket_ignores_a_clock_stepping_back() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, capacity=2, clock=clock)
    assert bucket.take()
    assert bucket.take()
    clock.now -= 50
    assert not bucket.take()
    assert bucket.tokens == 0


def test_bucket_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="rate must be >= 0"):
        TokenBucket(-1, 5, FakeClock())
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        TokenBucket(1, 0, FakeClock())


def test_limiter_allows_burst_then_refuses_then_closes() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=10, burst=20, max_refused=5, clock=clock)
    verdicts = [limiter.check() for _ in range(26)]
    assert verdicts[:20] == [Verdict.ALLOW] * 20
    assert verdicts[20:25] == [Verdict.REFUSE] * 5
    assert verdicts[25] is Verdict.CLOSE
    assert limiter.refused == 6


def test_limiter_slightly_over_rate_is_refused_but_never_closed() -> None:
    """10.5 frames a second against a rate of 10: a refusal every other second, each one
    forgiven within a second, so the connection stays open."""
    clock = FakeClock()
    limiter = RateLimiter(rate=10, burst=5, max_refused=3, clock=clock)
    verdicts = []
    for _ in range(60 * 21 // 2):
        clock.now += 1 / 10.5
        verdicts.append(limiter.check())
    assert Verdict.CLOSE not in verdicts
    assert 20 <= verdicts.count(Verdict.REFUSE) <= 40


def test_limiter_sustained_flood_is_closed() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=10, burst=10, max_refused=50, clock=clock)
    verdict = Verdict.ALLOW
    frames = 0
    while verdict is not Verdict.CLOSE and frames < 10_000:
        clock.now += 0.01  # 100 frames a second against 10 allowed
        verdict = limiter.check()
        frames += 1
    assert verdict is Verdict.CLOSE
    # 90 refusals a second minus one forgiven: the 50 deep refusal bucket lasts well under 1 s.
    assert frames < 200


def test_rate_zero_disables_the_limiter() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=0, burst=1, max_refused=1, clock=clock)
    assert all(limiter.check() is Verdict.ALLOW for _ in range(1000))


def test_lifetime_jitter_only_shortens() -> None:
    limits = ConnectionLimits(max_lifetime=100)
    rng = random.Random(1)
    lifetimes = [limits.lifetime(rng) for _ in range(1000)]
    assert min(lifetimes) >= 100 * (1 - LIFETIME_JITTER)
    assert max(lifetimes) <= 100
    assert max(lifetimes) - min(lifetimes) > 5


def test_limits_from_settings_and_description() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        rate_limit_per_second=7,
        rate_limit_burst=9,
        max_connection_lifetime=3600,
        max_connections=500,
    )
    limits = ConnectionLimits.from_settings(settings)
    assert (limits.rate_per_second, limits.rate_burst, limits.max_connections) == (7, 9, 500)
    text = describe(settings)
    assert "7 frames/s with bursts of 9" in text
    assert "3600 s" in text
    assert "500" in text
    for code in (1001, 1008, 1009, 1013, CloseCode.SLOW_CONSUMER):
        assert f"`{int(code)}`" in text
    off = describe(Settings(_env_file=None, rate_limit_per_second=0))  # type: ignore[call-arg]
    assert "rate: not limited" in off
    assert "lifetime: unlimited" in off


def test_write_delay_reaches_the_limits_and_is_described_only_when_set() -> None:
    delayed = Settings(_env_file=None, ws_write_delay=0.02)  # type: ignore[call-arg]
    assert ConnectionLimits.from_settings(delayed).write_delay == 0.02
    assert "collected for 0.02 s and written together" in describe(delayed)
    default = Settings(_env_file=None)  # type: ignore[call-arg]
    assert ConnectionLimits.from_settings(default).write_delay == 0.0
    assert "collected for" not in describe(default)
    with pytest.raises(ValueError, match="ws_write_delay"):
        Settings(_env_file=None, ws_write_delay=2)  # type: ignore[call-arg]
