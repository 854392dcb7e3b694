"""``Deadlines``: until when each lease this worker holds surely lives, and the stop at the end.

Why one timer per deadline rather than per key: every renewal round extends all the leases a
worker holds in one script call, so all of them get the same deadline (when that call was
sent, plus the lease's lifetime, less the margin). With a timer per key a worker owning 22,000
keys cancelled and scheduled 22,000 timers every round, and kept that many in the event loop's
heap, where every other timer of the process paid for them. Here each round adds its keys to
the one timer of its deadline; when it fires, the keys whose deadline is still that one (no
later renewal moved it) expire.

Why deadlines are rounded down to a ``tick``: takeovers confirm their keys one at a time, each
at its own instant, so a worker taking 22,000 keys gave each its own deadline, and the loop
kept thousands of timers until they passed. Rounded down to a tick, the keys confirmed within
one tick share a timer; a key stops at most a tick earlier than it had to, never later.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable, Iterator
from itertools import compress, repeat
from operator import eq

from marketcast.market import StreamKey


class Deadlines:
    """Held keys -> event-loop time until which their lease surely lives (see above)."""

    def __init__(self, on_expiry: Callable[[StreamKey], None], *, tick: float = 0.0) -> None:
        if tick < 0:
            raise ValueError(f"tick must be >= 0 seconds, got {tick}")
        #: Called, from a timer, for each key whose deadline passed with no renewal.
        self._on_expiry = on_expiry
        #: Deadlines are rounded down to a multiple of it (0: kept exact).
        self._tick = tick
        self._deadline: dict[StreamKey, float] = {}
        #: Each pending deadline: its timer and the keys given it (some renewed since).
        self._rounds: dict[float, tuple[asyncio.TimerHandle, list[StreamKey]]] = {}

    def hold(self, key: StreamKey, deadline: float) -> None:
        """``key`` is held until ``deadline`` (rounded down to the tick)."""
        self.hold_many((key,), deadline)

    def hold_many(self, keys: Iterable[StreamKey], deadline: float) -> None:
        """``hold`` for each of ``keys``, all until ``deadline``: a renewal round confirms
        every lease it extended at once, and this sets them without a call per key."""
        if self._tick:
            deadline = math.floor(deadline / self._tick) * self._tick
        keys = list(keys)
        if not keys:
            return
        self._deadline.update(dict.fromkeys(keys, deadline))
        pending = self._rounds.get(deadline)
        if pending is None:
            timer = asyncio.get_running_loop().call_at(deadline, self._expire, deadline)
            pending = self._rounds[deadline] = (timer, [])
        pending[1].extend(keys)

    def forget(self, key: StreamKey) -> None:
        """No longer held (its round's timer skips it)."""
        self._deadline.pop(key, None)

    def holds_all(self, keys: Iterable[StreamKey]) -> bool:
        """Whether every one of ``keys`` is held (one pass in C, not a test per key)."""
        return all(map(self._deadline.__contains__, keys))

    def __contains__(self, key: object) -> bool:
        return key in self._deadline

    def __iter__(self) -> Iterator[StreamKey]:
        return iter(self._deadline)

    def __len__(self) -> int:
        return len(self._deadline)

    def close(self) -> None:
        for timer, _ in self._rounds.values():
            timer.cancel()
        self._rounds.clear()
        self._deadline.clear()

    def _expire(self, deadline: float) -> None:
        _, keys = self._rounds.pop(deadline, (None, []))
        current = self._deadline
        # Usually a later round moved every key on: the ones still due are picked in C
        # (``compress``), not by a step per key in Python.
        due = compress(keys, map(eq, map(current.get, keys), repeat(deadline)))
        for key in list(due):
            if current.get(key) == deadline:  # an expiry just before may have changed it
                del current[key]
                self._on_expiry(key)
