"""``cluster.deadlines.Deadlines``: every held lease stops at its deadline unless a renewal
moved it, with one timer per deadline however many keys share it."""

from __future__ import annotations

import asyncio

from marketcast.cluster.deadlines import Deadlines
from marketcast.market import BarKey, StreamKey

KEYS: list[StreamKey] = [BarKey(f"S{n:04d}", "1") for n in range(1_000)]


async def test_only_keys_still_at_a_passed_deadline_expire() -> None:
    loop = asyncio.get_running_loop()
    expired: list[StreamKey] = []
    first_round = asyncio.Event()

    def on_expiry(key: StreamKey) -> None:
        expired.append(key)
        first_round.set()

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
    expired: list[StreamKey] = []
    done = asyncio.Event()

    def on_expiry(key: StreamKey) -> None:
        expired.append(key)
        done.set()

    deadlines = Deadlines(on_expiry)
    when = loop.time() + 0.02
    deadlines.hold(KEYS[0], when)
    deadlines.hold(KEYS[0], when)
    async with asyncio.timeout(10):
        await done.wait()
    await asyncio.sleep(0)
    assert expired == [KEYS[0]]
