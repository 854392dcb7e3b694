"""``cluster.deadlines.Deadlines``: every held lease stops at its deadline unless a renewal
moved it, with one timer per deadline however many keys share it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from marketcast.cluster.deadlines import Deadlines
from marketcast.market import BarKey, StreamKey

KEYS: list[StreamKey] = [BarKey(f"S{n:04d}", "1") for n in range(1_000)]


def expiry_log() -> tuple[list[StreamKey], asyncio.Event, Callable[[StreamKey], None]]:
    """The keys expired, in order; an event set at the first expiry; the callback that
    records them, for ``Deadlines``."""
    expired: list[StreamKey] = []
    first = asyncio.Event()

    def on_expiry(key: StreamKey) -> None:
        expired.append(key)
        first.set()

    return expired, first, on_expiry


async def test_only_keys_still_at_a_passed_deadline_expire() -> None:
    loop = asyncio.get_running_loop()
    expired, first_round, on_expiry = expiry_log()
    deadlines = Deadlines(on_expiry)
    soon = loop.time() + 0.05
    for key in KEYS:
        deadlines.hold(key, soon)
    renewed, forgotten = KEYS[::2], KEYS[1]
    for key in renewed:
        deadlines.hold(key, soon + 3600)  # a later round moved these
    deadlines.forget(forgotten)
    assert len(deadlines) == len(KEYS) - 1
    async with asyncio.timeout(10):
        await first_round.wait()
    # Each round's keys expire in one callback: the first expiry means the round is done.
    assert len(expired) == len(set(expired))
    assert set(expired) == set(KEYS[1::2]) - {forgotten}
    assert all(key in deadlines for key in renewed)
    assert forgotten not in deadlines
    assert not any(key in deadlines for key in expired)
    deadlines.close()
    assert len(deadlines) == 0


async def test_a_key_renewed_to_the_same_deadline_expires_once() -> None:
    loop = asyncio.get_running_loop()
    expired, done, on_expiry = expiry_log()
    deadlines = Deadlines(on_expiry)
    when = loop.time() + 0.02
    deadlines.hold(KEYS[0], when)
    deadlines.hold(KEYS[0], when)
    async with asyncio.timeout(10):
        await done.wait()
    await asyncio.sleep(0)
    assert expired == [KEYS[0]]


async def test_deadlines_within_a_tick_share_a_timer_and_none_expires_late() -> None:
    """Takeovers confirm keys one by one: rounded down to the tick, the deadlines of one tick
    are one timer, set no later than the earliest of them, and all those keys expire."""
    loop = asyncio.get_running_loop()
    expired: list[StreamKey] = []
    done = asyncio.Event()

    def on_expiry(key: StreamKey) -> None:
        expired.append(key)
        if len(expired) == 100:
            done.set()

    tick = 0.2
    deadlines = Deadlines(on_expiry, tick=tick)
    base = (int(loop.time() / tick) + 1) * tick  # a tick boundary ahead
    given = [base + 0.001 + index * (tick - 0.01) / 100 for index in range(100)]
    for key, deadline in zip(KEYS, given, strict=False):
        deadlines.hold(key, deadline)
    [(rounded, (timer, _))] = deadlines._rounds.items()  # one timer for the hundred
    assert timer.when() == rounded <= min(given)
    assert rounded > min(given) - tick
    async with asyncio.timeout(10):
        await done.wait()
    assert len(expired) == 100
    assert set(expired) == set(KEYS[:100])
    deadlines.close()


async def test_a_round_held_at_once_is_one_timer_and_moves_keys_held_before() -> None:
    """A renewal round confirms its keys in one ``hold_many``: one timer for all of them; a
    key it moves past an earlier deadline no longer expires at that one, and an empty round
    schedules nothing."""
    loop = asyncio.get_running_loop()
    expired, done, on_expiry = expiry_log()
    deadlines = Deadlines(on_expiry)
    soon = loop.time() + 0.05
    deadlines.hold_many(KEYS[:10], soon)
    deadlines.hold_many([], soon + 1)
    deadlines.hold_many(KEYS[5:], soon + 3600)  # renewed: KEYS[5:10] moved on
    assert len(deadlines) == len(KEYS)
    assert sorted(deadlines._rounds) == [soon, soon + 3600]
    async with asyncio.timeout(10):
        await done.wait()
    assert expired == KEYS[:5]
    assert all(key in deadlines for key in KEYS[5:])
    deadlines.close()


def test_a_negative_tick_is_refused() -> None:
    with pytest.raises(ValueError, match=r"tick must be >= 0 seconds, got -1.0"):
        Deadlines(lambda key: None, tick=-1.0)


async def test_holds_all_says_whether_every_key_is_still_held() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(lambda key: None)
    deadlines.hold_many(KEYS[:10], loop.time() + 60)
    assert deadlines.holds_all(KEYS[:10])
    assert deadlines.holds_all([])
    deadlines.forget(KEYS[3])
    assert not deadlines.holds_all(KEYS[:10])
    assert deadlines.holds_all(KEYS[4:10])
    assert not deadlines.holds_all(KEYS[9:11])  # KEYS[10] was never held
    deadlines.close()
