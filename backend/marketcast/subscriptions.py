"""What subscribe and unsubscribe requests do, for every channel family.

The generated routers stay thin: they validate the typed payload and call in here. This is the
one place that maps (route, symbol, params) to a stream key and a topic (through the channel
registry), checks that the symbol and the family are served, keeps per-connection
subscriptions idempotent and bounded, and does the hold/snapshot/arm dance that makes
snapshots continuous with the live stream, for every family that keeps history.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from marketcast.channels.base import Family, History, Registry
from marketcast.delivery.hub import Hub, Subscriber
from marketcast.errors import ErrorCode, ProtocolError
from marketcast.market import BarKey, StreamKey
from marketcast.recovery import FetchTally
from marketcast.streams import StreamManager
from marketcast.timeframes import next_bucket
from marketcast.types import Millis, Symbol, Topic
from marketcast.wire import candle_dict


class Hold(Protocol):
    """A snapshot hold (``delivery.connection.SnapshotHold``), owned by the subscribe call."""

    def arm(self, last_order: int | None, last_final: bool) -> None: ...

    def abandon(self) -> None: ...

    def cancel(self) -> None: ...

    def forget_before(self, created: float) -> None: ...


class SubscriberConnection(Subscriber, Protocol):
    """What a subscription needs from a connection (``delivery.connection.Connection``)."""

    subscriptions: dict[Topic, StreamKey]
    #: Bars (or trades) the request being handled returned or had fetched: what the rate
    #: limiter charges it (``ws.limits``). Snapshots and recoveries add to it.
    work: int

    def hold(self, topic: Topic, on_abandon: Callable[[], None]) -> Hold: ...

    def cancel_hold(self, topic: Topic) -> None: ...


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a subscribe reply carries of a family's history."""

    #: The elements, oldest first, as the family's snapshot item (``Bar``, ``TradeRecord``).
    records: list[dict[str, Any]]
    #: With ``since`` only: whether ``records`` holds every bar since then.
    recovered: bool | None
    #: The newest element's order and finality, for the hold's de-duplication.
    last_order: int | None
    last_final: bool
    #: A ``STATE`` family's state (``orderbook``: the book), None when it has none yet.
    state: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    topic: Topic
    message: str
    #: The snapshot (or bars since ``since``), or None when none was asked for.
    snapshot: list[dict[str, Any]] | None
    #: With ``since`` only: whether ``snapshot`` holds every bar since then.
    recovered: bool | None = None
    #: A ``STATE`` family's state as the reply carries it (``orderbook``: the book).
    state: dict[str, Any] | None = None


#: May this connection subscribe to this topic of this route? (The per-topic authorization
#: seam; ``ws.security`` builds one from ``create_app(authorize_topic=...)``.)
TopicGuard = Callable[[SubscriberConnection, str, Topic], Awaitable[bool]]


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
        self._channels: Registry = streams.channels
        self._hub = hub
        self._max_per_connection = max_per_connection
        #: None: every client may subscribe to every served topic.
        self._guard = guard

    def resolve(self, route: str, symbol: Symbol, params: Mapping[str, Any]) -> StreamKey:
        """The stream key behind a request, or a ProtocolError saying what is not served."""
        info = self._streams.symbol_info(symbol)
        if info is None:
            served = ", ".join(sorted(i.symbol for i in self._streams.symbols()))
            raise ProtocolError(
                ErrorCode.UNKNOWN_SYMBOL,
                f"unknown symbol {symbol!r}: this server serves {served}",
            )
        return self._channels.resolve(route, info, params)

    async def subscribe(
        self,
        conn: SubscriberConnection,
        route: str,
        symbol: Symbol,
        params: Mapping[str, Any],
        *,
        snapshot: int = 0,
        since: Millis | None = None,
    ) -> SubscribeResult:
        key = self.resolve(route, symbol, params)
        family = self._channels.of_key(key)
        topic = self._streams.topic(key)
        wants_history = family.history is History.STATE or (
            family.history is not History.NONE and (snapshot > 0 or since is not None)
        )
        if topic in conn.subscriptions:
            # Idempotent: the live stream continues untouched; a requested snapshot is
            # answered from the store as it is now.
            if not wants_history:
                return SubscribeResult(topic, "already subscribed", None)
            found = await self._snapshot(conn, family, key, snapshot, since)
            return _result(topic, "already subscribed", family, found)
        await self._check_allowed(conn, route, topic)
        if self.free_slots(conn) <= 0:
            raise self.too_many_error()
        conn.subscriptions[topic] = key

        def undo() -> None:
            self._drop(conn, topic)

        # The hold keeps the topic's updates until the reply is queued, and undoes all this if
        # the request fails after the key started.
        hold = conn.hold(topic, on_abandon=undo)
        if not wants_history:
            # Registered before the key starts, not after: a feed's first update can come
            # between the start and this call resuming (the simulator's first trade did), and
            # the first subscriber would never see it.
            self._hub.add(topic, conn)
        try:
            await self._streams.acquire(key)
        except BaseException:
            # ``acquire`` gave its reference back: undo the rest without a release.
            hold.cancel()
            self._hub.remove(topic, conn)
            del conn.subscriptions[topic]
            raise
        if not wants_history:
            watched_at = self._streams.watched_at(key)
            if watched_at is not None:
                # What the feed published while it was starting the key is history.
                hold.forget_before(watched_at)
            return SubscribeResult(topic, "subscribed", None)
        # Registered after the start and right before the history is read: no update slips
        # between the two, and what came during the start is in the history (the store is
        # written before the bus; a book's state is its latest). Earlier, a levels book's
        # held frames would be older than its state and follow it out.
        self._hub.add(topic, conn)
        try:
            found = await self._snapshot(conn, family, key, snapshot, since)
        except BaseException:
            hold.abandon()
            raise
        hold.arm(found.last_order, found.last_final)
        return _result(topic, "subscribed", family, found)

    async def check(
        self, conn: SubscriberConnection, route: str, symbol: Symbol, params: Mapping[str, Any]
    ) -> Topic:
        """The topic ``subscribe`` would add, refused as ``subscribe`` would refuse it (the
        symbol, the family, the authorization hook), without subscribing: for a caller that
        takes a batch only whole (a combined raw stream). The limit is ``free_slots``'s."""
        topic = self._streams.topic(self.resolve(route, symbol, params))
        if topic not in conn.subscriptions:
            await self._check_allowed(conn, route, topic)
        return topic

    def free_slots(self, conn: SubscriberConnection) -> int:
        """How many more topics ``conn`` may subscribe to."""
        return self._max_per_connection - len(conn.subscriptions)

    async def _check_allowed(self, conn: SubscriberConnection, route: str, topic: Topic) -> None:
        if self._guard is not None and not await self._guard(conn, route, topic):
            raise ProtocolError(ErrorCode.FORBIDDEN, f"not allowed to subscribe to {topic}")

    def too_many_error(self) -> ProtocolError:
        return ProtocolError(
            ErrorCode.TOO_MANY_SUBSCRIPTIONS,
            f"a connection may hold at most {self._max_per_connection} subscriptions",
        )

    async def unsubscribe(
        self, conn: SubscriberConnection, route: str, symbol: Symbol, params: Mapping[str, Any]
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
        self,
        conn: SubscriberConnection,
        family: Family,
        key: StreamKey,
        count: int,
        since: Millis | None,
    ) -> Snapshot:
        """The history a reply carries; its size, and what the feed fetched to find it, are
        added to ``conn.work``."""
        if family.history is History.STATE:
            # Read now, with no await since the hub registration: continuous with the stream.
            state = self._streams.state(key)
            if state is None:
                return Snapshot([], None, None, False, None)
            conn.work += len(state.get("bids", ())) + len(state.get("asks", ()))
            order = state.get("seq") if family.state_ordered(key) else None
            return Snapshot([], None, order, True, state)
        if family.history is History.RECENT:
            kept = family.joined(await self._streams.recent(key, count))
            conn.work += len(kept)
            last = kept[-1].order if kept else None
            return Snapshot([dict(r.value) for r in kept], None, last, True)
        assert isinstance(key, BarKey)
        if since is None:
            bars = await self._streams.snapshot(key, count, None)
            conn.work += len(bars)
            recovered = None
        else:
            await self._check_since(key, since)
            tally = FetchTally()
            bars, recovered = await self._streams.recover(
                key, since, family.snapshot_max, tally=tally
            )
            conn.work += len(bars) + tally.bars
        newest = bars[-1] if bars else None
        return Snapshot(
            [candle_dict(c) for c in bars],
            recovered,
            newest.time if newest else None,
            newest.closed if newest else False,
        )

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


def _result(topic: Topic, message: str, family: Family, found: Snapshot) -> SubscribeResult:
    if family.history is History.STATE:
        return SubscribeResult(topic, message, None, None, found.state)
    return SubscribeResult(topic, message, found.records, found.recovered)
