"""The publisher task that runs inside the server process and drives the load.

Two modes:

- ``saturate``: one update per event-loop iteration (publish, then ``sleep(0)``), round-robin
  over the topics, as fast as the server can go. Every target gets the same closed loop: the
  next update is published once the previous one's writes have had their turn, so the rate
  found is what the server sustains, not what it can buffer.
- ``rate``: a fixed number of updates per second, round-robin over the topics; when the loop
  falls behind, the updates that are due are published in a burst (at most ``BURST_MAX`` per
  iteration). How far behind schedule it ran is reported: a target whose publish awaits
  a stalled client shows up here, and in the deliveries short of what was offered.

Each update's publish stamp is taken immediately before ``publish`` is called; the loop stops
at ``t1`` and is cancelled if a blocked publish holds it more than ``OVERRUN_S`` past that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .common import BAR_STEP_MS, BAR_TIME_BASE, now_us

#: Most updates published in one loop iteration when catching up in ``rate`` mode.
BURST_MAX = 1000
#: How long a publish blocked on a client may overrun the window before it is cancelled.
OVERRUN_S = 1.0

PublishFn = Callable[[int, int, int], Awaitable[None]]


@dataclass
class PublishResult:
    total: int = 0
    in_window: int = 0
    errors: int = 0
    #: Largest lag of a publish behind its schedule (``rate`` mode), µs.
    max_lag_us: int = 0
    #: Whether a publish was still blocked OVERRUN_S after the window and was cancelled.
    cancelled: bool = False
    #: The sequence number the next run must start from: bar times never repeat.
    next_seq: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "in_window": self.in_window,
            "errors": self.errors,
            "max_lag_us": self.max_lag_us,
            "cancelled": self.cancelled,
        }


async def run_publisher(
    publish: PublishFn,
    *,
    topics: int,
    mode: str,
    rate: float,
    t0: int,
    t1: int,
    first_seq: int = 0,
) -> PublishResult:
    """Publish from now until ``t1`` (µs, ``common.now_us`` clock); count stamps in [t0, t1).

    Update ``seq`` goes to topic ``seq % topics`` with bar ``seq // topics``; a later run
    starts at ``result.next_seq`` so that no key ever sees a bar time twice.
    """
    if mode not in ("saturate", "rate"):
        raise ValueError(f"mode must be 'saturate' or 'rate', got {mode!r}")
    if mode == "rate" and rate <= 0:
        raise ValueError(f"rate mode needs a positive rate, got {rate}")
    if topics < 1:
        raise ValueError(f"need at least one topic, got {topics}")
    result = PublishResult(next_seq=-(-first_seq // topics) * topics)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (t1 - now_us()) / 1e6 + OVERRUN_S
    try:
        async with asyncio.timeout_at(deadline):
            if mode == "saturate":
                await _saturate(publish, topics, t0, t1, result)
            else:
                await _fixed_rate(publish, topics, rate, t0, t1, result)
    except TimeoutError:
        result.cancelled = True
    return result


async def _one(publish: PublishFn, topics: int, t0: int, t1: int, result: PublishResult) -> None:
    seq = result.next_seq
    result.next_seq += 1
    index, bar = seq % topics, seq // topics
    stamp = now_us()
    # Counted before the call: a publish cancelled half-way may have reached some clients.
    result.total += 1
    if t0 <= stamp < t1:
        result.in_window += 1
    try:
        await publish(index, BAR_TIME_BASE + bar * BAR_STEP_MS, stamp)
    except Exception:
        result.errors += 1


async def _saturate(
    publish: PublishFn, topics: int, t0: int, t1: int, result: PublishResult
) -> None:
    while now_us() < t1:
        await _one(publish, topics, t0, t1, result)
        await asyncio.sleep(0)


async def _fixed_rate(
    publish: PublishFn, topics: int, rate: float, t0: int, t1: int, result: PublishResult
) -> None:
    start, sent = now_us(), 0
    interval_us = 1e6 / rate
    while True:
        now = now_us()
        if now >= t1:
            return
        due = int((now - start) / interval_us) + 1
        burst = min(due - sent, BURST_MAX)
        if burst > 0:
            lag = now - int(start + sent * interval_us)
            result.max_lag_us = max(result.max_lag_us, lag)
            for _ in range(burst):
                await _one(publish, topics, t0, t1, result)
                sent += 1
        next_due = start + sent * interval_us
        await asyncio.sleep(max(next_due - now_us(), 0) / 1e6)
