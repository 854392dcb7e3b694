"""What subscribe and unsubscribe requests do, for every route.

The generated routers stay thin: they validate the typed payload and call in here. This is the
one place that maps (route, symbol, params) to a stream key and a topic, checks that the
symbol and resolution are served, keeps per-connection subscriptions idempotent and bounded,
and does the hold/snapshot/arm dance that makes snapshots continuous with the live stream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from marketcast.delivery.hub import Hub, Subscriber
from marketcast.errors import ErrorCode, ProtocolError
from marketcast.market import BarKey, Candle, QuoteKey, StreamKey
from marketcast.protocol import MAX_SNAPSHOT
from marketcast.recovery import FetchTally
from marketcast.streams import StreamManager
from marketcast.timeframes import next_bucket
from marketcast.types import Millis, Route, Symbol, Topic


class SubscriberConnection(Subscriber, Protocol):
    """What a subscription needs from a connection (``delivery.connection.Connection``)."""

    subscriptions: dict[Topic, StreamKey]
    #: Bars the request being handled returned or had fetched: what the rate limiter
    #: charges it (``ws.limits``). Snapshots and recoveries add to it.
    work: int

    def hold(self, topic: Topic) -> None: ...

    def arm(self, topic: Topic, snapshot: list[Candle] | None) -> None: ...

    def cancel_hold(self, topic: Topic) -> None: ...


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    topic: Topic
    message: str
    #: The snapshot (or bars since ``since``), or None when none was asked for.
    bars: list[Candle] | None
    #: With ``since`` only: whether ``bars`` holds every bar since then.
    recovered: bool | None = None


#: May this connection subscribe to this topic of this route? (The per-topic authorization
#: seam; ``ws.security`` builds one from ``create_app(authorize_topic=...)``.)
TopicGuard = Callable[[SubscriberConnection, Route, Topic], Awaitable[bool]]


class Subscriptions:
    """Subscribe/unsubscribe logic shared by every generated router."""

    def __init__(
        self,
        streams: StreamManager,
        hub: Hub,
        *,
        max_per_connection: int,
        guard: TopicGuard | None = None,
    ) -> None:
        self._streams = streams
        self._hub = hub
        self._max_per_connection = max_per_connection
        #: None: every client may subscribe to every served topic.
        self._guard = guard

    def resolve(self, route: Route, symbol: Symbol, params: dict[str, Any]) -> StreamKey:
        """The stream key behind a request, or a ProtocolError saying what is not served."""
        info = self._streams.symbol_info(symbol)
        if info is None:
            served = ", ".join(sorted(i.symbol for i in self._streams.symbols()))
            raise ProtocolError(
                ErrorCode.UNKNOWN_SYMBOL,
                f"unknown symbol {symbol!r}: this server serves {served}",
            )
        if route == "quotes":
            return QuoteKey(symbol)
        resolution = params["resolution"]
        if resolution not in info.resolutions:
            raise ProtocolError(
                ErrorCode.UNSUPPORTED_RESOLUTION,
                f"resolution {resolution!r} is not served for {symbol}: expected one of "
                + ", ".join(info.resolutions),
            )
        return BarKey(symbol, resolution)

    async def subscribe(
        self,
        conn: SubscriberConnection,
        route: Route,
        symbol: Symbol,
        params: dict[str, Any],
        *,
        snapshot: int = 0,
        since: Millis | None = None,
    ) -> SubscribeResult:
        key = self.resolve(route, symbol, params)
        topic = self._streams.topic(key)
        wants_bars = isinstance(key, BarKey) and (snapshot > 0 or since is not None)
        if topic in conn.subscriptions:
            # Idempotent: the live stream continues untouched; a requested snapshot is
            # answered from the store as it is now.
            if not wants_bars:
                return SubscribeResult(topic, "already subscribed", None)
            bars, recovered = await self._snapshot(conn, key, snapshot, since)
            return SubscribeResult(topic, "already subscribed", bars, recovered)
        if self._guard is not None and not await self._guard(conn, route, topic):
            raise ProtocolError(ErrorCode.FORBIDDEN, f"not allowed to subscribe to {topic}")
        if len(conn.subscriptions) >= self._max_per_connection:
            raise ProtocolError(
                ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                f"a connection may hold at most {self._max_per_connection} subscriptions",
            )
        conn.subscriptions[topic] = key
        try:
            await self._streams.acquire(key)
        except BaseException:
            del conn.subscriptions[topic]
            raise
        if not wants_bars:
            self._hub.add(topic, conn)
            return SubscribeResult(topic, "subscribed", None)
        conn.hold(topic)
        self._hub.add(topic, conn)
        try:
            bars, recovered = await self._snapshot(conn, key, snapshot, since)
        except BaseException:
            conn.cancel_hold(topic)
            self._hub.remove(topic, conn)
            del conn.subscriptions[topic]
            self._streams.release(key)
            raise
        conn.arm(topic, bars)
        return SubscribeResult(topic, "subscribed", bars, recovered)

    async def unsubscribe(
        self, conn: SubscriberConnection, route: Route, symbol: Symbol, params: dict[str, Any]
    ) -> SubscribeResult:
        key = self.resolve(route, symbol, params)
        topic = self._streams.topic(key)
        if self._drop(conn, topic):
            return SubscribeResult(topic, "unsubscribed", None)
        return SubscribeResult(topic, "not subscribed", None)

    def drop_all(self, conn: SubscriberConnection) -> None:
        """Forget every subscription of a connection that is gone."""
        for topic in list(conn.subscriptions):
            self._drop(conn, topic)

    def _drop(self, conn: SubscriberConnection, topic: Topic) -> bool:
        key = conn.subscriptions.pop(topic, None)
        if key is None:
            return False
        conn.cancel_hold(topic)
        self._hub.remove(topic, conn)
        self._streams.release(key)
        return True

    async def _snapshot(
        self, conn: SubscriberConnection, key: StreamKey, count: int, since: Millis | None
    ) -> tuple[list[Candle], bool | None]:
        """The bars a reply carries; their number, and what the feed fetched to find them,
        are added to ``conn.work``."""
        assert isinstance(key, BarKey)
        if since is None:
            bars = await self._streams.snapshot(key, count, None)
            conn.work += len(bars)
            return bars, None
        await self._check_since(key, since)
        tally = FetchTally()
        bars, recovered = await self._streams.recover(key, since, MAX_SNAPSHOT, tally=tally)
        conn.work += len(bars) + tally.bars
        return bars, recovered

    async def _check_since(self, key: BarKey, since: Millis) -> None:
        """Refuse a ``since`` later than the open of the bar after the newest one.

        A client sends the open time after its last closed bar, which can never lie beyond
        that: a later one is a client bug (or a probe), and answering it "recovered: true,
        no bars" would tell the client it missed nothing when it knows nothing."""
        newest = await self._streams.newest(key)
        if newest is None:
            return  # nothing stored (the feed failed): recovery reports what it can
        latest = next_bucket(newest.time, key.resolution)
        if since > latest:
            raise ProtocolError(
                ErrorCode.VALIDATION_ERROR,
                f"since {since} is after the open of the bar after the newest one ({latest}): "
                "expected the open time after your last closed bar",
            )
