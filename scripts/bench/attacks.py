"""The abuse benchmark's attacks, in the order they run (issue 19, "What to build" 8).

Why this order rather than the issue's: the re-watch attack needs 25 keys that nobody has
watched since the start of the run, so every attack that subscribes to bars keys (the
``since`` floods, the slow readers) runs after it. The letters are the issue's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .attack_kit import AttackContext, Tally
from .attacks_http import long_url, rest_flood, slow_headers
from .attacks_ws import Rewatch, deep_nesting, since_burst, since_paced, slow_readers


@dataclass(frozen=True)
class Attack:
    name: str
    label: str
    description: str
    run: Callable[[AttackContext], Awaitable[Tally]]
    #: The attack lasts at least this long whatever the window length: what it tests only
    #: happens after a server-side deadline (header timeout 10 s, slow-consumer lag 10 s by
    #: default), and a 3 s window would end before the server could react.
    min_s: float = 0.0


def catalogue(rewatch: Rewatch) -> list[Attack]:
    """Every attack, in running order; ``rewatch`` must have been prepared at the start."""
    return [
        Attack(
            "long_url",
            "a long URL",
            "GET /healthz?<60,000 x j> and a 30 KB path (404), alternately, one at a time",
            long_url,
        ),
        Attack(
            "rest_flood",
            "c REST flood",
            "10 keep-alive clients looping GET history?...&to=1&limit=1000, ignoring 429",
            rest_flood,
        ),
        Attack(
            "deep_nesting",
            "d deep nesting",
            "20 connections at 50 frames/s: symbol = 1,000 / 10,000 nested arrays",
            deep_nesting,
        ),
        Attack(
            "slow_headers",
            "e slow headers",
            "1,000 (quick) / 2,000 connections sending one header line every 1 / 3 s",
            slow_headers,
            min_s=13.0,
        ),
        Attack(
            "rewatch",
            "g re-watch",
            "resubscribe to 25 one-minute keys left idle since the start of the run",
            rewatch.run,
        ),
        Attack(
            "since_burst",
            "b1 since burst",
            "250 bars.subscribe since=0 at once on one connection, again every 5.2 s "
            "(reconnecting if closed)",
            since_burst,
        ),
        Attack(
            "since_paced",
            "b2 since paced",
            "3 (quick) / 4 connections, 45 bars.subscribe since=0 per second each",
            since_paced,
        ),
        Attack(
            "slow_readers",
            "f slow readers",
            "3 clients on 30 fast topics reading one frame a second (default buffers)",
            slow_readers,
            min_s=14.0,
        ),
    ]


NAMES = [a.name for a in catalogue(Rewatch(0.0))]
