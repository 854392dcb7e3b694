"""Phases and the drain: readiness flips before any drainer runs, the drain runs once."""

from __future__ import annotations

import asyncio

from marketcast.lifecycle import Lifecycle, Phase


async def test_phases_and_single_shared_drain() -> None:
    lifecycle = Lifecycle()
    assert not lifecycle.is_ready()
    assert not lifecycle.accepting
    lifecycle.mark_ready()
    assert lifecycle.is_ready()
    assert lifecycle.accepting
    assert not lifecycle.draining

    observed: list[tuple[bool, bool]] = []
    release = asyncio.Event()

    async def drainer() -> None:
        # By the time a drainer runs, readiness is off and new connections are refused.
        observed.append((lifecycle.is_ready(), lifecycle.accepting))
        await release.wait()

    lifecycle.add_drainer(drainer)
    first = asyncio.create_task(lifecycle.drain())
    second = asyncio.create_task(lifecycle.drain())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert lifecycle.phase is Phase.DRAINING
    assert lifecycle.draining
    assert not first.done()
    assert not second.done()
    release.set()
    await asyncio.gather(first, second)
    assert observed == [(False, False)], "the drainer ran once"
    await lifecycle.drain()  # later calls return at once
    assert observed == [(False, False)]
    lifecycle.mark_stopped()
    assert lifecycle.phase is Phase.STOPPED
    assert lifecycle.draining


async def test_failing_drainer_does_not_stop_the_others() -> None:
    lifecycle = Lifecycle()
    lifecycle.mark_ready()
    done: list[str] = []

    async def broken() -> None:
        raise RuntimeError("boom")

    async def fine() -> None:
        done.append("fine")

    lifecycle.add_drainer(broken)
    lifecycle.add_drainer(fine)
    await lifecycle.drain()
    assert done == ["fine"]
