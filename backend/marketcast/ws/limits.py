"""Per-connection message rate limiting — pure, no I/O, the clock is injected.

Why a token bucket: clients legitimately send bursts (a chart page subscribing to a few dozen
topics at load) and then almost nothing, so a fixed "N per second" window would either refuse
the burst or allow a sustained flood. The bucket holds ``burst`` tokens, refills at ``rate``
tokens per second, and each client frame takes one when it is received; a frame whose reply
carried bars (``snapshot``, ``since``) or made the feed fetch them is then charged by that
work too (``marketcast.ratelimit``), so costly frames drain the bucket proportionally faster.

Why charging on receipt is charging on arrival here: the server reads a connection's next
frame from the socket only after the previous one was handled (uvicorn pauses reading until
its queue is empty, and the receive loop handles one frame at a time and yields to the
event loop between frames). A backlog therefore waits in the client's kernel buffers, not in
the server, and is never worked through on credit that accrued while the server was busy.

Why a second bucket for refusals: a frame over the limit is answered with one
``rate_limited`` error and otherwise ignored, which is the right answer for a client that is a
little too eager. A client that keeps sending regardless is abusive, and answering every frame
with an error would let it make the server write as much as it reads; so refusals drain their
own bucket (``max_refused`` deep, one forgiven per second) and when that is empty the
connection is closed with 1008 (policy violation).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from marketcast.errors import close_code_meanings
from marketcast.ratelimit import BARS_PER_TOKEN, TokenBucket, cost_of_bars
from marketcast.settings import Settings

__all__ = ["ConnectionLimits", "RateLimiter", "TokenBucket", "Verdict", "describe"]

#: Refused frames forgiven per second: a client slightly over its rate is told so on every
#: excess frame but never closed; only a sustained flood empties the refusal bucket.
REFUSALS_FORGIVEN_PER_SECOND = 1.0
#: The largest fraction by which a connection's lifetime is shortened at random.
LIFETIME_JITTER = 0.1


class Verdict(Enum):
    """What to do with one client frame."""

    ALLOW = "allow"
    #: Answer with one ``rate_limited`` error; do not process the frame.
    REFUSE = "refuse"
    #: Close the connection with 1008: the client keeps flooding.
    CLOSE = "close"


class RateLimiter:
    """The verdict for each frame of one connection."""

    __slots__ = ("_clock", "_frames", "_max_refused", "_refusals", "enabled", "refused")

    def __init__(
        self, rate: float, burst: int, max_refused: int, clock: Callable[[], float]
    ) -> None:
        if max_refused < 1:  # what the refusal bucket would say, before it exists
            raise ValueError(f"capacity must be >= 1 token, got {max_refused}")
        #: ``rate == 0`` means no limit: every frame is allowed and no clock is read.
        self.enabled = rate > 0
        self._frames = TokenBucket(rate, burst, clock)
        #: Created by the first refusal: a bucket nothing has taken from is full whenever it
        #: was made, and most connections are never refused (one fewer bucket per connection).
        self._refusals: TokenBucket | None = None
        self._max_refused = max_refused
        self._clock = clock
        #: Frames refused so far on this connection (for logs and tests).
        self.refused = 0

    def check(self) -> Verdict:
        """Account for one frame and say what to do with it."""
        if not self.enabled or self._frames.take():
            return Verdict.ALLOW
        self.refused += 1
        refusals = self._refusals
        if refusals is None:
            refusals = self._refusals = TokenBucket(
                REFUSALS_FORGIVEN_PER_SECOND, self._max_refused, self._clock
            )
        return Verdict.REFUSE if refusals.take() else Verdict.CLOSE

    def charge(self, bars: int) -> None:
        """Charge the frame just handled for the ``bars`` bars it returned or had fetched."""
        if self.enabled:
            self._frames.charge(cost_of_bars(bars))

    @property
    def tokens(self) -> float:
        """Frames this connection may send now (negative: paying off a costly frame)."""
        return self._frames.tokens


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Every per-connection and per-worker limit the WebSocket adapter enforces."""

    #: Token bucket: frames per second (0 = off), bucket size, refusals before a 1008 close.
    rate_per_second: float = 0.0
    rate_burst: int = 1
    max_refused: int = 1
    #: Seconds a connection may live (0 = no limit), before jitter.
    max_lifetime: float = 0.0
    #: Open connections per worker (0 = no cap).
    max_connections: int = 0
    #: Seconds from a ``notice`` to the close it announces.
    close_notice_seconds: float = 0.0
    #: Seconds a planned close waits for queued frames to be written.
    drain_timeout: float = 0.0
    #: Seconds a close frame may take before the TCP connection is aborted.
    close_timeout: float = 2.0
    #: Seconds a connection collects frames before one write (0 = write as they come).
    write_delay: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            rate_per_second=settings.rate_limit_per_second,
            rate_burst=settings.rate_limit_burst,
            max_refused=settings.rate_limit_max_refused,
            max_lifetime=settings.max_connection_lifetime,
            max_connections=settings.max_connections,
            close_notice_seconds=settings.close_notice_seconds,
            drain_timeout=settings.drain_timeout,
            close_timeout=settings.close_timeout,
            write_delay=settings.ws_write_delay,
        )

    def rate_limiter(self, clock: Callable[[], float]) -> RateLimiter:
        return RateLimiter(self.rate_per_second, self.rate_burst, self.max_refused, clock)

    def lifetime(self, rng: random.Random) -> float:
        """This connection's lifetime: up to ``LIFETIME_JITTER`` shorter than the maximum, so
        connections opened together (after a deploy) do not all reconnect together."""
        return self.max_lifetime * (1.0 - LIFETIME_JITTER * rng.random())


def describe(settings: Settings | None) -> str:
    """The limits and close codes as Markdown, for the AsyncAPI document's description.

    With ``settings``: the numbers in force, for the document a running server serves. Without:
    the committed contract (``docs/asyncapi.json``), which names each limit's setting instead
    of its value, so that a deployment's (or a default's) change of a limit never changes the
    contract or the types generated from it.
    """
    value = _Values(settings)
    lines = [
        "**Limits** (per connection unless stated)"
        + (
            ":"
            if settings is not None
            else ", each set by the `MARKETCAST_*` setting named (0 turns a limit off where "
            "it says so); the document a running server serves at `/api/v1/ws/asyncapi.json` "
            "states its values:"
        ),
        "",
        f"- frame size: {value.of('max_message_bytes')} bytes; a larger frame closes with 1009;",
        *value.when(
            "rate_limit_per_second",
            "rate",
            f"{value.of('rate_limit_per_second')} frames/s with bursts of "
            f"{value.of('rate_limit_burst')} (token bucket); a frame whose reply carries bars "
            f"(`snapshot`, `since`) costs one frame more per {BARS_PER_TOKEN} bars returned or "
            "fetched to build it; an excess frame gets one `rate_limited` error and is not "
            f"processed; after {value.of('rate_limit_max_refused')} refusals (one forgiven per "
            "second) the connection closes with 1008",
            "not limited",
        ),
        f"- subscriptions: {value.of('max_subscriptions')}; more get `too_many_subscriptions`;",
        (
            f"- outbox: {value.of('outbox_max_messages')} frames or "
            f"{value.of('outbox_max_bytes')} bytes queued (after conflating updates of a "
            "still-open bar; closed bars are never dropped); beyond it the connection closes "
            "with 4008;"
        ),
        *value.when(
            "slow_consumer_lag",
            "lag",
            f"a client more than {value.of('slow_consumer_lag')} s behind (what waits "
            "in the server's socket buffers counted too) is closed with 4008",
            "not bounded, only the outbox limits apply",
        ),
        *value.when(
            "max_connection_lifetime",
            "lifetime",
            f"{value.of('max_connection_lifetime')} s (up to "
            f"{LIFETIME_JITTER:.0%} shorter), a `notice` {value.of('close_notice_seconds')} s "
            "before the close (1001)",
            "unlimited",
        ),
        *value.when(
            "max_connections",
            "connections per worker",
            f"{value.of('max_connections')}; beyond it accept + close 1013",
            "not capped",
        ),
        *value.when(
            "ws_write_delay",
            "writes",
            f"frames are collected for {value.of('ws_write_delay')} s and written "
            "together (updates arrive up to that much later; updates of a still-open bar within "
            "it are conflated)",
            "each frame is written as it comes",
        ),
        "",
        "A handshake is refused with HTTP 403 — never a 101 — when its `Origin` is not on "
        "the allow-list, or (when tokens are configured) it carries no valid token. Tokens "
        "travel as the subprotocol `token.<TOKEN>` next to `marketcast.v1`; the server "
        "echoes `marketcast.v1` only.",
        "",
        "**Close codes**:",
        "",
        *(f"- `{int(code)}`: {meaning}." for code, meaning in close_code_meanings()),
    ]
    return "\n".join(lines)


class _Values:
    """A limit as ``describe`` writes it: the configured number, or the setting's name."""

    def __init__(self, settings: Settings | None) -> None:
        #: None: the contract, which names settings rather than stating their values.
        self._settings = settings

    def of(self, field: str) -> str:
        if self._settings is None:
            return f"`MARKETCAST_{field.upper()}`"
        number = getattr(self._settings, field)
        return f"{number:g}" if isinstance(number, float) else str(number)

    def when(self, field: str, label: str, on: str, off: str) -> list[str]:
        """The ``label`` line: ``on`` if the limit is on, else ``off``; the contract says both
        (0 turns it off)."""
        if self._settings is None:
            return [f"- {label}: {on} (0: {off});"]
        return [f"- {label}: {on if getattr(self._settings, field) > 0 else off};"]
