"""Binance's rules that need state — pure, no I/O, time passed in.

- ``ControlPlanner``: which ``SUBSCRIBE``/``UNSUBSCRIBE`` to send next so that the upstream's
  subscriptions converge to what is wanted, batching many streams into one message (each
  message counts toward the 5 messages/s limit, a stream in a batch does not);
- ``RestGate``: when the REST API may be called again after 429/418 or a high used weight;
- ``QuoteAssembler``: a quote from the book ticker (bid/ask) and the mini ticker (last price,
  24 h volume and change), because neither stream alone carries all of a ``Quote``;
- ``UpstreamClock``: the upstream's own time as it last told it, which decides whether the
  newest REST row is final (this machine's clock may be ahead of Binance's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from marketcast.feeds.aggregate import decimal_sum
from marketcast.feeds.binance_protocol import BookTickerEvent, MiniTickerEvent
from marketcast.market import Quote
from marketcast.types import Millis

# -- control messages ---------------------------------------------------------------------------


class ControlPlanner:
    """Converges one connection's upstream subscriptions to the wanted set.

    ``sent`` is what the upstream will be subscribed to once it has processed every message
    already sent (it processes them in order, so an UNSUBSCRIBE may follow a SUBSCRIBE that has
    not been answered yet). A SUBSCRIBE answered with an error is not retried until the stream
    is dropped and wanted again, so one bad symbol cannot make a loop of failing messages.
    """

    def __init__(self, max_params: int = 200) -> None:
        if max_params < 1:
            raise ValueError(f"max_params must be at least 1, got {max_params}")
        #: Streams per message: a handful of big messages instead of many small ones.
        self.max_params = max_params
        #: Wanted streams, insertion-ordered so messages are reproducible.
        self._wanted: dict[str, None] = {}
        self.sent: set[str] = set()
        self.refused: set[str] = set()
        self._inflight: dict[int, tuple[str, tuple[str, ...]]] = {}
        self._next_id = 1

    @property
    def wanted(self) -> list[str]:
        return list(self._wanted)

    def want(self, stream: str) -> None:
        self._wanted[stream] = None

    def drop(self, stream: str) -> None:
        self._wanted.pop(stream, None)
        self.refused.discard(stream)

    def connected(self, initial: Iterable[str]) -> None:
        """A new connection, already subscribed to ``initial`` by its URL."""
        self.sent = set(initial)
        self._inflight.clear()

    def next_message(self) -> dict[str, Any] | None:
        """The next control message to send (UNSUBSCRIBE first: it frees room), or None."""
        stale = [s for s in sorted(self.sent) if s not in self._wanted][: self.max_params]
        if stale:
            self.sent.difference_update(stale)
            return self._message("UNSUBSCRIBE", stale)
        missing = [s for s in self._wanted if s not in self.sent and s not in self.refused]
        if missing:
            batch = missing[: self.max_params]
            self.sent.update(batch)
            return self._message("SUBSCRIBE", batch)
        return None

    def on_reply(self, request_id: object) -> tuple[str, tuple[str, ...]] | None:
        """A ``{"result": ..., "id": N}``; returns what it confirmed."""
        return self._inflight.pop(request_id, None) if isinstance(request_id, int) else None

    def on_failure(self, request_id: object) -> tuple[str, tuple[str, ...]] | None:
        """An error reply; a refused SUBSCRIBE's streams are marked refused."""
        entry = self.on_reply(request_id)
        if entry is not None and entry[0] == "SUBSCRIBE":
            self.sent.difference_update(entry[1])
            self.refused.update(s for s in entry[1] if s in self._wanted)
        return entry

    def _message(self, method: str, streams: list[str]) -> dict[str, Any]:
        request_id = self._next_id
        self._next_id += 1
        self._inflight[request_id] = (method, tuple(streams))
        return {"method": method, "params": streams, "id": request_id}


# -- REST pacing --------------------------------------------------------------------------------


class RestGate:
    """When the REST API may be called: after 429/418 (``Retry-After``) and when the used
    weight reported in ``X-MBX-USED-WEIGHT-1M`` nears the per-minute limit."""

    def __init__(self, weight_limit: int = 6000, headroom: float = 0.9) -> None:
        #: Binance's default REQUEST_WEIGHT limit per minute, and the share of it we use.
        self.weight_limit = weight_limit
        self.headroom = headroom
        #: Monotonic time before which no request may be sent.
        self.blocked_until = 0.0
        self.last_used_weight = 0

    def wait_time(self, now: float) -> float:
        return max(0.0, self.blocked_until - now)

    def on_response(
        self, now: float, wall_ms: Millis, status: int, headers: Mapping[str, str]
    ) -> None:
        used = headers.get("x-mbx-used-weight-1m")
        if used is not None and used.isdigit():
            self.last_used_weight = int(used)
            if self.last_used_weight >= self.weight_limit * self.headroom:
                # Weight is counted per clock minute: wait for the next one.
                self._block(now + (60_000 - wall_ms % 60_000) / 1000)
        if status in (418, 429):
            retry_after = headers.get("retry-after", "")
            default = 120.0 if status == 418 else 60.0
            self._block(now + (float(retry_after) if retry_after.isdigit() else default))

    def _block(self, until: float) -> None:
        self.blocked_until = max(self.blocked_until, until)


# -- quotes ---------------------------------------------------------------------------------


class QuoteAssembler:
    """One symbol's quote from two streams: bid/ask from ``@bookTicker``, last price, 24 h
    volume and change from ``@miniTicker``. Nothing is emitted until both have spoken."""

    def __init__(self) -> None:
        self.bid: float | None = None
        self.ask: float | None = None
        self.last: float | None = None
        self.open_24h: float | None = None
        self.volume: float | None = None

    def on_event(self, event: BookTickerEvent | MiniTickerEvent, now: Millis) -> Quote | None:
        """Apply an event; ``now`` (receive time) stamps the quote, since the spot book ticker
        carries no event time."""
        if isinstance(event, BookTickerEvent):
            self.bid, self.ask = event.bid, event.ask
        else:
            self.last, self.open_24h, self.volume = event.close, event.open, event.volume
        if self.bid is None or self.ask is None or self.last is None:
            return None
        change = change_percent = None
        if self.open_24h:
            change = decimal_sum(self.last, -self.open_24h)  # no binary noise on the wire
            change_percent = round(change / self.open_24h * 100, 4)
        return Quote(now, self.bid, self.ask, self.last, self.volume, change, change_percent)


# -- the upstream's clock -----------------------------------------------------------------------


class UpstreamClock:
    """The newest time the upstream has stated (kline/ticker event times, ``serverTime``).

    Only what the upstream said counts, never an extrapolation with this machine's clock: a
    bar is final once the upstream's time is past its close, and an estimate running ahead of
    the upstream (a clock that differs, or a fake running faster or slower than real time)
    would declare a bar final while it still changes. Stated times only lag, which at worst
    leaves a final bar open a little longer. ``seen_at`` (local monotonic seconds) tells how
    old the statement is, so callers can ask again before relying on it."""

    def __init__(self) -> None:
        self.now: Millis | None = None
        self.seen_at: float | None = None

    def observe(self, upstream_ms: Millis, local_monotonic: float) -> None:
        if self.now is None or upstream_ms >= self.now:
            self.now, self.seen_at = upstream_ms, local_monotonic

    def fresh(self, local_monotonic: float, max_age: float) -> bool:
        """Whether a statement younger than ``max_age`` seconds is known."""
        return self.seen_at is not None and local_monotonic - self.seen_at <= max_age
