"""When to reconnect: full-jitter backoff, and what each close code asks for.

Why full jitter: when a server restarts every client notices at the same moment, and plain
exponential delays bring them back in synchronized waves; a delay drawn uniformly from
``[0, min(cap, base * 2**attempt))`` spreads them out with the same expected growth.

Why the close code matters (docs/websocket.md, "Closes"): 1001 is a planned close announced by
a ``notice`` — reconnect at once; 1008 (rate abuse), 1013 (server full or draining) and 4008
(slow consumer) say "you, or the server, need a pause" — the delay keeps growing across such
closes until a connection has stayed up for a while; 4404, 1009 and 1007 say the request or
the client is wrong — reconnecting would only repeat it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from marketcast_client.models import CLOSE_CODES

#: Closes that retrying cannot fix: stop and report them. From the document's close-code
#: table (``x-close-codes``), the one the TypeScript client reads too.
NO_RETRY: Final = frozenset(code for code, info in CLOSE_CODES.items() if info.retry == "never")
#: Closes after which the backoff keeps growing instead of starting over.
PENALTY: Final = frozenset(code for code, info in CLOSE_CODES.items() if info.retry == "growing")
#: A planned close (after a ``notice``): reconnect without waiting.
GOING_AWAY: Final = next(code for code, info in CLOSE_CODES.items() if info.retry == "immediate")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Full-jitter exponential backoff, in seconds."""

    #: The ceiling of the first delay.
    base: float = 0.5
    #: No delay exceeds this.
    cap: float = 30.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.base) and self.base > 0):
            raise ValueError(f"backoff base must be a positive number of seconds: {self.base}")
        if not (math.isfinite(self.cap) and self.cap >= self.base):
            raise ValueError(f"backoff cap must be at least base ({self.base}): {self.cap}")

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the delay before retry number ``attempt`` (0 first)."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0: {attempt}")
        # 2**attempt as a float overflows past about 1024; the cap is reached long before.
        return min(self.cap, self.base * 2.0 ** min(attempt, 64))

    def delay(self, attempt: int, draw: float) -> float:
        """The delay for ``attempt`` given ``draw`` in [0, 1) (``random.random()``)."""
        if not 0.0 <= draw < 1.0:
            raise ValueError(f"draw must be in [0, 1): {draw}")
        return draw * self.ceiling(attempt)


class ReconnectPolicy:
    """The delay before the next connection attempt, from what ended the previous one."""

    def __init__(
        self, backoff: Backoff, random: Callable[[], float], *, stable_after: float
    ) -> None:
        self.backoff = backoff
        self.random = random
        #: A connection up this long (seconds) ends a penalty: the next delay starts small.
        self.stable_after = stable_after
        self.attempt = 0
        self.penalised = False

    def after_close(self, code: int, *, uptime: float, noticed: bool) -> float | None:
        """Seconds to wait before reconnecting after a close with ``code`` (1006 when the
        connection dropped without one), or None: do not reconnect."""
        if code in NO_RETRY:
            return None
        if not self.penalised or uptime >= self.stable_after:
            self.attempt = 0
        if code == GOING_AWAY or noticed:
            self.penalised = False
            return 0.0
        self.penalised = code in PENALTY
        return self._next()

    def after_failed_attempt(self) -> float:
        """Seconds to wait after a connection attempt that failed (refused, timed out)."""
        return self._next()

    def _next(self) -> float:
        delay = self.backoff.delay(self.attempt, self.random())
        self.attempt += 1
        return delay
