"""``Lifecycle.cut_drain`` (a second SIGTERM or Ctrl-C): every waiter of the drain returns at
once instead of waiting out the notice period, without an error, and a drain asked for after
the cut only turns readiness off."""

from __future__ import annotations

import asyncio

import pytest

from marketcast.lifecycle import Lifecycle, Phase


def waiting_lifecycle() -> tuple[Lifecycle, asyncio.Event, list[str]]:
    """A ready lifecycle whose one drainer waits until cancelled (a long notice period)."""
    lifecycle = Lifecycle()
    lifecycle.mark_ready()
    started = asyncio.Event()
    events: list[str] = []

    async def slow_drainer() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    lifecycle.add_drainer(slow_drainer)
    return lifecycle, started, events


async def test_cut_releases_every_waiter_of_the_drain() -> None:
    lifecycle, started, events = waiting_lifecycle()
    # The signal handler's drain, then the lifespan shutdown awaiting the same drain.
    by_signal = asyncio.create_task(lifecycle.drain())
    by_lifespan = asyncio.create_task(lifecycle.drain())
    await asyncio.wait_for(started.wait(), 5)
    assert not by_signal.done()
    assert not by_lifespan.done()
    lifecycle.cut_drain()
    # Both return normally (no CancelledError reaching the lifespan's clean-up).
    await asyncio.wait_for(asyncio.gather(by_signal, by_lifespan), 5)
    assert events == ["cancelled"]
    assert lifecycle.phase is Phase.DRAINING
    await asyncio.wait_for(lifecycle.drain(), 5)  # and any later caller too


async def test_cut_before_the_drain_skips_the_drainers() -> None:
    lifecycle, started, _ = waiting_lifecycle()
    lifecycle.cut_drain()
    assert not lifecycle.is_ready()
    assert not lifecycle.accepting
    await asyncio.wait_for(lifecycle.drain(), 5)
    assert not started.is_set()


async def test_a_cancelled_caller_is_still_cancelled() -> None:
    lifecycle, started, events = waiting_lifecycle()
    caller = asyncio.create_task(lifecycle.drain())
    await asyncio.wait_for(started.wait(), 5)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    # The drain itself is shielded from its callers: it goes on until cut.
    assert events == []
    lifecycle.cut_drain()
    await asyncio.wait_for(lifecycle.drain(), 5)
    assert events == ["cancelled"]
