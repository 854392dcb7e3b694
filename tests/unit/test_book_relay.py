"""``BookRelay`` across a simulated cluster: one owner's book served the same on every worker.

No sockets, no Redis: each worker is its own ``Hub``, ``ServedBooks`` and ``BookRelay`` in one
event loop, and ``Bus`` stands for Redis pub/sub: a publish reaches the publishing worker's hub
at once, then every other worker's, unless a test cuts a worker's subscription (its messages
from the others are lost, as Redis loses what is published while a subscriber is cut off),
holds them (delivered later, in order), or slows a sender (each of its publishes waits, after
the local delivery, until the test releases it: the Redis round trip). Each worker's diff
client is a hub subscriber of the diff topic, so the tests read exactly the frames a client
of that worker would get. The loop is advanced with ``sleep(0)`` and the relay's ask throttle
with a clock moved by hand, never wall-clock time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest

from marketcast.book.binance_sync import Applied, Reset
from marketcast.book.levels import OrderBook
from marketcast.book.served import Cancellable, ServedBooks
from marketcast.channels.orderbook import UPDATE_TYPE, book_source
from marketcast.cluster.book_relay import ASK_INTERVAL, BookRelay, relay_topic
from marketcast.cluster.ownership import Upstream
from marketcast.delivery.hub import Hub
from marketcast.market import StreamKey
from marketcast.wire import Frame

SYMBOL = "BTCUSDT"
DIFF = 'orderbook:{"mode":"diff","symbol":"BTCUSDT"}'
LEVELS = 'orderbook:{"depth":5,"mode":"levels","symbol":"BTCUSDT"}'
RELAY = relay_topic(SYMBOL)


# -- the simulated cluster ------------------------------------------------------------------


class Clock:
    """The one clock of the cluster, moved by hand (the relay's ask throttle reads it)."""

    def __init__(self) -> None:
        self.now = 0.0


class _Handle:
    def cancel(self) -> None:
        pass


def no_timers(delay: float, callback: Callable[[], None]) -> Cancellable:
    """``ServedBooks``'s ``call_later``: only diff topics are checked here, whose frames go
    out at once, so a levels flush deferred to the end of its interval is never needed."""
    return _Handle()


class Client:
    """A diff-mode client of one worker: every ``orderbook.update`` its hub delivers."""

    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []

    def deliver(self, frame: Frame) -> None:
        message = orjson.loads(frame.text)
        assert message["type"] == UPDATE_TYPE
        self.updates.append(message["payload"])

    def resets(self, since: int = 0) -> list[int]:
        """The ``seq`` of each whole book (flagged ``reset``) received after ``since`` updates."""
        return [u["seq"] for u in self.updates[since:] if u.get("reset")]

    def follow(self) -> OrderBook:
        """The book a client gets by the documented rules (a reset replaces it, a diff must
        continue it), failing on the first diff whose ``prev_seq`` is not the ``seq`` held."""
        book: OrderBook | None = None
        for update in self.updates:
            if update.get("reset"):
                assert update["prev_seq"] is None
                book = OrderBook(update["bids"], update["asks"], update["seq"])
                continue
            assert book is not None, f"a diff before any whole book: {update}"
            assert update["prev_seq"] == book.seq, (
                f"diff {update['prev_seq']}->{update['seq']} on a book at {book.seq}"
            )
            book.apply(update["bids"], update["asks"])
            book.seq = update["seq"]
        assert book is not None, "no book received"
        return book


class FakeOwnership:
    """``Ownership`` as the relay uses it: records ``want`` and ``unwant``; ``want`` waits
    for ``granted`` when a test sets one (a lease being taken). Who owns the book is the
    test's to say, with ``relay.own``."""

    ingests_all = True

    def __init__(self) -> None:
        self.wants: list[StreamKey] = []
        self.unwants: list[StreamKey] = []
        self.granted: asyncio.Event | None = None

    def bind(self, upstream: Upstream) -> None:
        pass

    async def start(self) -> None:
        pass

    async def want(self, key: StreamKey) -> None:
        self.wants.append(key)
        if self.granted is not None:
            await self.granted.wait()

    async def unwant(self, key: StreamKey) -> None:
        self.unwants.append(key)

    def owned(self) -> list[StreamKey]:
        return []

    def ingests(self, key: StreamKey) -> bool:
        return True

    async def close(self) -> None:
        pass


class Bus:
    """Redis pub/sub between the workers' hubs (see the module docstring)."""

    def __init__(self) -> None:
        self.hubs: dict[str, Hub] = {}
        #: Workers whose subscription is cut: the others' frames to them are lost.
        self.cut: set[str] = set()
        #: Workers whose subscription lags: the others' frames to them wait in ``held``.
        self.holding: set[str] = set()
        self.held: dict[str, list[Frame]] = {}
        #: Senders whose publishes wait, after the local delivery, for ``release_newest``.
        self.slow: set[str] = set()
        self.in_flight: list[asyncio.Future[None]] = []
        #: Each frame as it leaves for the other workers (the Redis PUBLISH), in that order.
        self.wire: list[tuple[str, Frame]] = []

    def publisher(self, name: str) -> Callable[[Frame], Awaitable[None]]:
        async def publish(frame: Frame) -> None:
            self.hubs[name].publish(frame)
            if name in self.slow:
                done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self.in_flight.append(done)
                await done
            self.wire.append((name, frame))
            for other, hub in self.hubs.items():
                if other == name or other in self.cut:
                    continue
                if other in self.holding:
                    self.held.setdefault(other, []).append(frame)
                else:
                    hub.publish(frame)

        return publish

    def release_newest(self) -> None:
        """Let the newest publish in flight finish first: two publishes in flight may take
        two connections of a pool, so nothing orders them but the sender."""
        self.in_flight.pop().set_result(None)

    def release_held(self, name: str) -> None:
        self.holding.discard(name)
        for frame in self.held.pop(name, []):
            self.hubs[name].publish(frame)

    def messages(self, sender: str | None = None) -> list[dict[str, Any]]:
        """The relay messages on the wire (of ``sender``), decoded."""
        return [orjson.loads(f.text) for s, f in self.wire if sender is None or s == sender]


class Worker:
    """One worker: its hub, served books, relay, ownership and one diff-mode client."""

    def __init__(self, name: str, bus: Bus, clock: Clock) -> None:
        self.name = name
        self.hub = Hub()
        self.client = Client()
        self.hub.add(DIFF, self.client)
        self.books = ServedBooks(
            self.hub.publish, no_timers, lambda: clock.now, update_type=UPDATE_TYPE
        )
        self.ownership = FakeOwnership()
        bus.hubs[name] = self.hub
        self.relay = BookRelay(
            self.books, self.hub, bus.publisher(name), self.ownership, clock=lambda: clock.now
        )

    async def serve(self) -> None:
        """What the stream manager does for a client's first diff view of the symbol."""
        self.books.watch(SYMBOL, DIFF, "diff")
        await self.relay.serve(SYMBOL)

    async def own(self) -> None:
        """Serve the symbol and hold its lease: this worker's feed runs the book."""
        await self.serve()
        self.relay.own(SYMBOL)

    async def feed(self, *changes: Applied | Reset) -> None:
        """Changes of this (owning) worker's feed, each published before the next."""
        for change in changes:
            await self.relay.publish(SYMBOL, change)

    def seq(self) -> int | None:
        book = self.books.book(SYMBOL)
        return None if book is None else book.seq


class Cluster:
    def __init__(self, *names: str) -> None:
        self.clock = Clock()
        self.bus = Bus()
        self.workers = {name: Worker(name, self.bus, self.clock) for name in names}

    def __getitem__(self, name: str) -> Worker:
        return self.workers[name]

    async def close(self) -> None:
        for worker in self.workers.values():
            await worker.relay.close()


@pytest.fixture
async def cluster() -> AsyncIterator[Callable[..., Cluster]]:
    """A factory of clusters, whose relays' tasks are cancelled after the test."""
    made: list[Cluster] = []

    def make(*names: str) -> Cluster:
        made.append(Cluster(*names))
        return made[-1]

    yield make
    for each in made:
        await each.close()


async def settle() -> None:
    """Let the relays' tasks (asks, replays) run to their end: none waits on time."""
    for _ in range(50):
        await asyncio.sleep(0)


def whole_book(seq: int, shift: float = 0.0) -> Reset:
    """The whole book at ``seq``; another ``shift`` of its prices, another book."""
    return Reset(
        seq,
        [[100.0 + shift, 1.0], [99.5 + shift, 2.0], [99.0 + shift, 3.0]],
        [[100.5 + shift, 1.5], [101.0 + shift, 2.5]],
    )


def change(seq: int) -> Applied:
    """The diff from ``seq - 1`` to ``seq``: levels added, changed and removed."""
    bids = [(99.0 + (seq % 4) * 0.5, float(seq % 7))]  # quantity 0 every seventh: removed
    asks = [(100.5 + (seq % 3) * 0.5, 1.0 + seq / 100)]
    return Applied(seq - 1, seq, bids, asks, 1_000 + seq)


def changes(first: int, last: int) -> list[Applied]:
    return [change(seq) for seq in range(first, last + 1)]


# -- the tests ------------------------------------------------------------------------------


async def test_the_owners_changes_reach_a_serving_worker_as_the_same_book(
    cluster: Callable[..., Cluster],
) -> None:
    """The point of the relay: one depth link, and every worker holds the owner's book at
    the owner's ``seq``, so a diff client's ``prev_seq`` chain means the same anywhere."""
    c = cluster("A", "B")
    a, b = c["A"], c["B"]
    await a.own()
    await b.serve()
    await settle()
    await a.feed(whole_book(100), *changes(101, 105))
    c.bus.holding.add("B")  # B's subscription lags: late is not lost
    await a.feed(*changes(106, 110))
    await settle()
    assert b.seq() == 105
    assert len(b.client.updates) == 6
    c.bus.release_held("B")
    await settle()
    assert a.seq() == b.seq() == 110
    assert a.books.book(SYMBOL) == b.books.book(SYMBOL)
    assert a.books.whole(SYMBOL) == b.books.whole(SYMBOL)
    assert b.client.resets() == [100]
    assert [u["seq"] for u in b.client.updates] == list(range(100, 111))
    assert b.client.follow() == b.books.book(SYMBOL)
    # Both workers' clients got the very same frames.
    assert a.client.updates == b.client.updates
    assert (b.relay.gaps, b.relay.asks, a.relay.replays) == (0, 1, 0)  # the ask: on serving


async def test_a_late_joiner_asks_and_gets_a_replay_that_others_holding_it_ignore(
    cluster: Callable[..., Cluster],
) -> None:
    """A worker that begins serving a book already running elsewhere has nothing until the
    owner replays it; every serving worker receives that replay, and one already holding
    the book at its ``seq`` must not send its diff clients a needless whole book."""
    c = cluster("A", "B", "C")
    a, b, cc = c["A"], c["B"], c["C"]
    await a.own()
    await cc.serve()
    await settle()
    await a.feed(whole_book(100), *changes(101, 105))
    await settle()
    assert cc.seq() == 105
    c_before, a_before = len(cc.client.updates), len(a.client.updates)

    await b.serve()
    await settle()
    assert b.relay.asks == 1
    assert a.relay.replays == 1
    assert [m["k"] for m in c.bus.messages("A")][-1] == "replay"
    assert b.books.book(SYMBOL) == a.books.book(SYMBOL)
    assert b.books.whole(SYMBOL) == a.books.whole(SYMBOL)
    assert len(b.client.updates) == 1
    assert b.client.resets() == [105]
    assert b.client.follow() == a.books.book(SYMBOL)
    # C and the owner held the book at 105: their clients got nothing for the replay.
    assert len(cc.client.updates) == c_before
    assert len(a.client.updates) == a_before
    assert cc.relay.gaps == 0

    await a.feed(change(106))
    await settle()
    assert [u["prev_seq"] for u in b.client.updates[1:]] == [105]
    assert a.books.book(SYMBOL) == b.books.book(SYMBOL) == cc.books.book(SYMBOL)


async def test_a_lost_diff_stops_the_diffs_until_a_replay_then_they_continue(
    cluster: Callable[..., Cluster],
) -> None:
    """Redis drops what is published while a subscriber is cut off. The diff after the lost
    one does not continue the book held: the worker's clients get no diff of a book it no
    longer holds (a wrong ``prev_seq`` would only tell them to resubscribe), it asks, and the
    replay puts it back on the owner's chain with one ``reset``."""
    c = cluster("A", "B")
    a, b = c["A"], c["B"]
    await a.own()
    await b.serve()
    await settle()
    assert b.relay.asks == 1  # on serving, before the owner joined: nobody answered
    c.clock.now = 1.0
    await a.feed(whole_book(100), *changes(101, 105))
    await settle()
    held = len(b.client.updates)

    c.bus.cut.add("B")
    await a.feed(change(106))
    c.bus.cut.discard("B")
    await a.feed(change(107), change(108))  # no await lets the ask out between these
    assert len(b.client.updates) == held
    assert not b.books.ready(SYMBOL)
    assert b.relay.gaps == 1  # 107 did not continue 105 (108 came to no book: no gap)
    assert b.relay.asks == 2

    await settle()
    assert a.relay.replays == 1
    assert b.seq() == 108
    assert b.client.resets(held) == [108]
    await a.feed(*changes(109, 111))
    await settle()
    assert [u["seq"] for u in b.client.updates[held:]] == [108, 109, 110, 111]
    assert b.client.follow() == a.books.book(SYMBOL)  # never a diff on the wrong book
    assert b.books.whole(SYMBOL) == a.books.whole(SYMBOL)
    assert b.relay.gaps == 1
    assert b.relay.asks == 2


async def test_asks_are_throttled_on_the_clock_given(cluster: Callable[..., Cluster]) -> None:
    """Diffs keep coming while a book is not held: each would ask, and an owner would build
    and send a whole book for each. One ask per ``ASK_INTERVAL``, and a lost ask is retried
    with the next diff after it."""
    c = cluster("A", "B")
    a, b = c["A"], c["B"]
    await a.own()
    await b.serve()
    await settle()
    await a.feed(whole_book(100))
    await settle()
    assert b.relay.asks == 1  # the serve's, at 0
    c.clock.now = 1.0
    c.bus.cut.add("A")  # the owner's subscription is cut: the asks do not reach it
    c.bus.cut.add("B")
    await a.feed(change(101))
    c.bus.cut.discard("B")
    for seq in range(102, 112):
        await a.feed(change(seq))
        await settle()
        c.clock.now += 0.04
    assert c.clock.now - 1.0 < ASK_INTERVAL
    assert b.relay.gaps == 1  # 102 on 100; the others came to no book held
    assert b.relay.asks == 2
    assert sum(m["k"] == "ask" for m in c.bus.messages("B")) == 2
    assert a.relay.replays == 0

    c.clock.now = 1.0 + ASK_INTERVAL
    await a.feed(change(112))
    await settle()
    assert b.relay.asks == 3
    c.bus.cut.discard("A")
    await a.feed(change(113))  # asked just now: the next ask waits for the interval
    await settle()
    assert b.relay.asks == 3
    assert not b.books.ready(SYMBOL)
    c.clock.now = 1.0 + 2 * ASK_INTERVAL
    await a.feed(change(114))
    await settle()
    assert b.relay.asks == 4
    assert a.relay.replays == 1
    assert b.books.whole(SYMBOL) == a.books.whole(SYMBOL)
    assert b.client.resets() == [100, 114]
    assert b.client.follow() == a.books.book(SYMBOL)


async def test_an_upstream_reset_is_applied_even_at_the_seq_held(
    cluster: Callable[..., Cluster],
) -> None:
    """A takeover: the new owner joins the book itself, and its book at an equal ``seq``
    need not be the old owner's (each simulator makes its own). Unlike a replay, a reset is
    applied everywhere: every diff client gets the new book whole."""
    c = cluster("A", "B")
    a, b = c["A"], c["B"]
    await a.own()
    await b.serve()
    await settle()
    await a.feed(whole_book(100), *changes(101, 102))
    await settle()
    assert a.seq() == b.seq() == 102
    before = a.books.whole(SYMBOL)
    a_held, b_held = len(a.client.updates), len(b.client.updates)

    a.relay.disown(SYMBOL)  # the lease moved; A still serves
    assert RELAY in a.hub.topics()
    b.relay.own(SYMBOL)
    new = whole_book(102, shift=-5.0)
    await b.feed(new)
    await settle()
    assert a.client.resets(a_held) == b.client.resets(b_held) == [102]
    for worker in (a, b):
        assert worker.books.book(SYMBOL) == OrderBook(new.bids, new.asks, 102)
        assert worker.client.updates[-1]["bids"] == new.bids
    assert a.books.whole(SYMBOL) != before
    await b.feed(*changes(103, 104))
    await settle()
    assert a.books.whole(SYMBOL) == b.books.whole(SYMBOL)
    assert a.seq() == 104
    assert a.client.follow() == b.client.follow() == b.books.book(SYMBOL)
    assert a.relay.gaps == b.relay.gaps == 0


async def test_the_old_owners_late_diff_does_not_break_the_new_owners_book(
    cluster: Callable[..., Cluster],
) -> None:
    """The old owner's last diff reaches Redis after the new owner's first reset. The new
    owner applies its own messages only, so it keeps its book and answers the asks of the
    workers the late diff threw off their chain; every client's chain stays continuous."""
    c = cluster("A", "B", "C")
    a, b, cc = c["A"], c["B"], c["C"]
    await a.own()
    await b.serve()
    await cc.serve()
    await settle()
    await a.feed(whole_book(100), change(101))
    await settle()
    c.clock.now = 1.0
    c.bus.holding.update({"B", "C"})  # A's last diff is still on its way to Redis
    await a.feed(change(102))
    a.relay.disown(SYMBOL)
    b.relay.own(SYMBOL)
    late = [*c.bus.held.pop("B"), *c.bus.held.pop("C")]
    c.bus.holding.clear()
    await b.feed(whole_book(500, shift=3.0))  # B joins: its hub first, then Redis
    c.bus.hubs["B"].publish(late[0])  # now Redis delivers A's diff, after B's reset
    c.bus.hubs["C"].publish(late[1])
    for seq in range(501, 511):
        c.clock.now += 0.3
        await b.feed(change(seq))
        await settle()
    assert b.books.ready(SYMBOL)
    assert b.seq() == 510
    assert b.relay.gaps == 0  # the foreign diff was not applied to the owner's book
    for worker in (a, cc):
        assert worker.books.whole(SYMBOL) == b.books.whole(SYMBOL), worker.name
        assert worker.client.follow() == b.books.book(SYMBOL), worker.name
    assert b.client.follow() == b.books.book(SYMBOL)


async def test_a_replay_never_overtakes_a_diff_the_owner_applied_before_it(
    cluster: Callable[..., Cluster],
) -> None:
    """The owner applies its diff locally at once and then awaits the Redis round trip; an
    ask arriving meanwhile must not get a replay on the wire before that diff, or a worker
    would take the replay and then an older diff (a gap, and a needless reset for the
    others). The relay sends one message of a symbol at a time, and builds the replay when
    its turn comes, so it holds every diff sent before it (here one queued behind the diff in
    flight when the ask came). The bus lets the newest publish finish first, which would put
    an unserialised replay ahead."""
    c = cluster("A", "B", "C")
    a, b, cc = c["A"], c["B"], c["C"]
    await a.own()
    await b.serve()
    await settle()
    await a.feed(whole_book(100), *changes(101, 102))
    await settle()
    c.clock.now = 1.0
    b_held = len(b.client.updates)

    c.bus.slow.add("A")
    first = asyncio.create_task(a.feed(change(103)))
    await settle()
    assert a.seq() == 103  # applied locally; B has not got it
    assert b.seq() == 102
    assert len(c.bus.in_flight) == 1
    second = asyncio.create_task(a.feed(change(104)))  # waits for its turn
    await settle()
    await cc.serve()  # C asks; the ask reaches the owner while the diff is in flight
    await settle()
    assert cc.relay.asks == 1
    assert len(c.bus.in_flight) == 1, "the replay must wait for the diffs"
    assert a.relay.replays == 0

    while c.bus.in_flight:
        c.bus.release_newest()
        await settle()
    assert first.done()
    assert second.done()
    from_a = [(m["k"], m.get("seq")) for m in c.bus.messages("A")]
    assert from_a[-3:] == [("diff", 103), ("diff", 104), ("replay", 104)]
    assert a.relay.replays == 1
    # B got the diffs, then a replay at the seq it held: no gap, no reset.
    assert b.relay.gaps == 0
    assert b.client.resets(b_held) == []
    assert [u["seq"] for u in b.client.updates[b_held:]] == [103, 104]
    # C got the diffs before any book (not applied), then the replay.
    assert cc.client.resets() == [104]
    assert cc.books.whole(SYMBOL) == b.books.whole(SYMBOL) == a.books.whole(SYMBOL)


async def test_serving_twice_at_once_wants_the_book_once(
    cluster: Callable[..., Cluster],
) -> None:
    """The stream manager serves each view (diff, levels at a depth) of a symbol; they are
    one upstream resource, so concurrent serves share one ``want`` and both return when it
    is answered."""
    c = cluster("B")
    b = c["B"]
    b.ownership.granted = asyncio.Event()
    b.books.watch(SYMBOL, DIFF, "diff")
    b.books.watch(SYMBOL, LEVELS, "levels", depth=5)
    first = asyncio.create_task(b.relay.serve(SYMBOL))
    second = asyncio.create_task(b.relay.serve(SYMBOL))
    await settle()
    assert b.ownership.wants == [book_source(SYMBOL)]
    assert not first.done()
    assert not second.done()
    assert [m["k"] for m in c.bus.messages("B")] == ["ask"]
    b.ownership.granted.set()
    await asyncio.gather(first, second)
    await b.relay.serve(SYMBOL)  # a third view, after the answer: still that one demand
    assert b.ownership.wants == [book_source(SYMBOL)]
    assert b.hub.subscriber_count(RELAY) == 1


async def test_a_book_neither_served_nor_owned_leaves_the_hub_and_is_forgotten(
    cluster: Callable[..., Cluster],
) -> None:
    """Held on, a book would be served stale to the next subscriber before a fresh one came:
    a worker that neither serves nor owns a symbol stops receiving it and drops its book.
    The owner keeps it while it runs the book upstream, until the lease goes."""
    c = cluster("A", "B")
    a, b = c["A"], c["B"]
    await a.own()
    await b.serve()
    await settle()
    await a.feed(whole_book(100), *changes(101, 103))
    await settle()
    assert RELAY in b.hub.topics()
    assert b.books.ready(SYMBOL)

    b.books.unwatch(SYMBOL, DIFF)  # the stream manager's order: the views, then the relay
    await b.relay.unserve(SYMBOL)
    assert b.ownership.unwants == [book_source(SYMBOL)]
    assert RELAY not in b.hub.topics()
    assert not b.books.ready(SYMBOL)
    assert b.books.whole(SYMBOL) is None
    assert b.books.book(SYMBOL) is None
    await b.relay.unserve(SYMBOL)  # not served any more: nothing to give up again
    assert b.ownership.unwants == [book_source(SYMBOL)]
    await a.feed(change(104))
    await settle()
    assert b.books.whole(SYMBOL) is None
    assert b.relay.gaps == 0

    # The owner stops serving but still holds the lease: it keeps receiving its feed.
    a.books.unwatch(SYMBOL, DIFF)
    await a.relay.unserve(SYMBOL)
    assert a.ownership.unwants == [book_source(SYMBOL)]
    assert RELAY in a.hub.topics()
    await a.feed(change(105))
    assert a.seq() == 105
    a.relay.disown(SYMBOL)
    assert RELAY not in a.hub.topics()
    assert not a.books.ready(SYMBOL)
    assert a.books.whole(SYMBOL) is None

    # Served again: a fresh demand, and a fresh ask (the dropped state took its throttle).
    c.clock.now = 0.1
    a.relay.own(SYMBOL)
    await a.feed(whole_book(300))
    await b.serve()
    await settle()
    assert b.ownership.wants == [book_source(SYMBOL)] * 2
    assert b.relay.asks == 2
    assert b.books.whole(SYMBOL) == a.books.whole(SYMBOL)
    assert b.seq() == 300


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[1, 2]",
        '{"seq": 104, "by": "x"}',
        '{"k": "diff", "seq": 104, "by": "x"}',
        '{"k": "diff", "by": "x", "seq": 104, "time": 1, "bids": [], "asks": []}',
        '{"k": "diff", "by": "x", "prev_seq": 103, "seq": 104, "time": 1, "bids": [[99.0]], '
        '"asks": []}',
        '{"k": "diff", "by": "x", "prev_seq": 103, "seq": 104, "time": 1, '
        '"bids": [[99.0, 1.0], ["x", 1.0]], "asks": []}',
        '{"k": "reset", "by": "x", "seq": 104, "time": null, "bids": []}',
        '{"k": "reset", "by": "x", "seq": "x", "time": null, "bids": [], "asks": []}',
        '{"k": "replay", "by": "x", "seq": 104, "bids": [], "asks": []}',
        '{"k": "diff", "prev_seq": 103, "seq": 104, "time": 1, "bids": [], "asks": []}',
    ],
)
async def test_a_malformed_relay_message_is_ignored_with_a_warning(
    cluster: Callable[..., Cluster], caplog: pytest.LogCaptureFixture, text: str
) -> None:
    """A message this version cannot read (another version's, a corrupt one) must not take
    the relay's hub delivery down or touch the book: it is logged and skipped."""
    caplog.set_level(logging.WARNING, "marketcast.books")
    c = cluster("A", "B")
    a, b = c["A"], c["B"]
    await a.own()
    await b.serve()
    await settle()
    await a.feed(whole_book(100), *changes(101, 103))
    await settle()
    before, frames, asks = b.books.whole(SYMBOL), len(b.client.updates), b.relay.asks

    b.hub.publish(Frame(text, RELAY))
    await settle()
    warnings = [r for r in caplog.records if r.name == "marketcast.books"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "malformed book relay message of BTCUSDT" in warnings[0].getMessage()
    assert b.books.whole(SYMBOL) == before
    assert len(b.client.updates) == frames
    assert (b.relay.gaps, b.relay.asks, a.relay.replays) == (0, asks, 0)
    await a.feed(change(104))  # and the next message is applied as ever
    await settle()
    assert b.books.whole(SYMBOL) == a.books.whole(SYMBOL)
    assert b.client.follow() == a.books.book(SYMBOL)


async def test_a_worker_does_not_parse_the_messages_it_sends(
    cluster: Callable[..., Cluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every change of every book a worker owns reaches it first through its own hub: it
    takes the message as it built it, and only the other workers parse the text."""
    from marketcast.cluster import book_relay

    parsed: list[str] = []
    real = book_relay.parse_message

    def counting(text: str) -> book_relay.RelayMessage:
        parsed.append(text)
        return real(text)

    monkeypatch.setattr(book_relay, "parse_message", counting)
    c = cluster("A", "B")
    a, b = c["A"], c["B"]
    await a.own()
    await b.serve()
    await settle()
    parsed.clear()
    await a.feed(whole_book(100), *changes(101, 105))
    await settle()
    assert len(parsed) == 6  # B's parses only: one per message
    assert a.books.whole(SYMBOL) == b.books.whole(SYMBOL)
    assert a.client.follow() == b.client.follow() == a.books.book(SYMBOL)
