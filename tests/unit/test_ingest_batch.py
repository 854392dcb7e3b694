"""Several keys' candles at once (``StreamManager.on_candles``, ``Bus.publish_stored_many``),
and the bus reader's split of a subscription's byte stream (``bus.redis.split_messages``)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from marketcast.bus.memory import MemoryBus
from marketcast.bus.redis_messages import split_messages
from marketcast.cluster.ownership import LocalOwnership
from marketcast.feeds.base import FeedSink
from marketcast.market import BarKey, Candle, StreamKey, SymbolInfo
from marketcast.store.memory import MemoryCandleStore
from marketcast.streams import StreamManager
from marketcast.types import Millis
from marketcast.wire import Frame

ONE, FIVE = BarKey("BTCUSDT", "1"), BarKey("BTCUSDT", "5")


class QuietFeed:
    name = "quiet"

    def symbols(self) -> Sequence[SymbolInfo]:
        return [SymbolInfo("BTCUSDT", "crypto", self.name, ("1", "5"))]

    async def start(self, sink: FeedSink) -> None:
        pass

    async def close(self) -> None:
        pass

    async def watch(self, key: StreamKey) -> None:
        pass

    async def unwatch(self, key: StreamKey) -> None:
        pass

    async def fetch_history(self, key: BarKey, end: Millis | None, limit: int) -> list[Candle]:
        return []


class OnlyOne(LocalOwnership):
    """Ingests ``ONE`` only, as a cluster worker owning that key alone would."""

    def ingests(self, key: StreamKey) -> bool:
        return key == ONE


async def manager(
    ownership: LocalOwnership | None = None,
) -> tuple[StreamManager, MemoryCandleStore, list[Frame]]:
    store, bus, frames = MemoryCandleStore(100), MemoryBus(), []
    await bus.start(frames.append)
    streams = StreamManager(
        [QuietFeed()], store, bus, grace_period=0, history_size=100, ownership=ownership
    )
    return streams, store, frames


async def test_a_batch_is_stored_and_published_in_order_like_single_candles() -> None:
    one, five = Candle(300_000, 1, 2, 1, 2, 3), Candle(300_000, 1, 2, 1, 2, 3)
    streams, store, frames = await manager()
    await streams.on_candles([(ONE, one), (FIVE, five)])
    singles, _, single_frames = await manager()
    await singles.on_candle(ONE, one)
    await singles.on_candle(FIVE, five)
    assert frames == single_frames
    assert [f.topic for f in frames] == [streams.topic(ONE), streams.topic(FIVE)]
    assert await store.last(ONE, 5) == [one]
    assert await store.last(FIVE, 5) == [five]


async def test_a_batch_drops_repeats_and_keys_this_worker_does_not_ingest() -> None:
    streams, store, frames = await manager(OnlyOne())
    closed = Candle(60_000, 1, 2, 1, 2, 5, closed=True)
    await streams.on_candles([(ONE, closed), (FIVE, Candle(0, 1, 1, 1, 1, 1))])
    # The same closed bar again in one batch, then a newer bar: only the newer one goes out.
    await streams.on_candles([(ONE, closed), (ONE, Candle(120_000, 2, 2, 2, 2, 1))])
    assert [(f.order, f.final) for f in frames] == [(60_000, True), (120_000, False)]
    assert streams.repeats_dropped == 1
    assert await store.count(FIVE) == 0


def test_an_ownership_that_answers_itself_is_asked_for_every_candle() -> None:
    """``ingests_all`` is derived: a subclass answering ``ingests`` cannot inherit True."""
    assert LocalOwnership().ingests_all
    assert not OnlyOne().ingests_all


async def test_an_empty_or_fully_dropped_batch_publishes_nothing() -> None:
    streams, _, frames = await manager(OnlyOne())
    await streams.on_candles([])
    await streams.on_candles([(FIVE, Candle(0, 1, 1, 1, 1, 1))])
    assert frames == []


async def test_candles_keep_their_keys_fresh_across_a_restart() -> None:
    """A batch's candles are data for staleness (written into each key's ingest record,
    which the tracker reads): a key fed in time is never stale, a silent one turns stale,
    the next candle brings it back, and all of it holds again once the key was stopped and
    started anew."""
    now = [1000.0]
    streams, _, _ = await manager()
    streams._staleness.clock = lambda: now[0]  # time by hand
    tracker = streams._staleness.tracker
    await streams.start()
    for run in range(2):
        await streams.acquire(ONE)
        bar = run * 3_600_000
        for step in range(1, 6):
            now[0] += 100.0  # the 1-minute key's threshold is three minutes
            await streams.on_candles([(ONE, Candle(bar + 60_000 * step, 1, 1, 1, 1, 1))])
            assert tracker.check(now[0]) == []
        now[0] += 180.0
        assert tracker.check(now[0]) == [ONE]
        await streams.on_candles([(ONE, Candle(bar + 600_000, 1, 1, 1, 1, 1))])
        assert tracker.stale_keys() == []
        now[0] += 179.0
        assert tracker.check(now[0]) == []
        streams.release(ONE)  # grace period 0: stopped on the next turns of the loop
        for _ in range(100):
            if ONE not in streams.active_keys():
                break
            await asyncio.sleep(0)
        assert ONE not in streams.active_keys()
        now[0] += 1000.0
        await streams.on_candles([(ONE, Candle(bar + 660_000, 1, 1, 1, 1, 1))])
        assert tracker.check(now[0]) == []  # not watched: never stale
    await streams.close()


def push(*items: bytes, resp3: bool = False) -> bytes:
    head = b">" if resp3 else b"*"
    return head + str(len(items)).encode() + b"\r\n" + b"".join(bulk(i) for i in items)


def bulk(data: bytes) -> bytes:
    return b"$" + str(len(data)).encode() + b"\r\n" + data + b"\r\n"


def test_messages_are_split_from_resp2_and_resp3_streams() -> None:
    first = b"F\nw1\ntopic\n1\n0\n{}"
    second = b'F\nw2\ntopic\n2\n1\n{"a":"b\\r\\n"}'  # data may hold anything, CRLF too
    for resp3 in (False, True):
        stream = push(b"message", b"chan", first, resp3=resp3)
        stream += push(b"message", b"chan", second, resp3=resp3)
        assert split_messages(stream) == ([first, second], len(stream))


def test_a_message_cut_short_waits_for_the_rest() -> None:
    data = b"F\nw1\ntopic\n1\n0\n" + b"x" * 300
    whole = push(b"message", b"chan", b"before") + push(b"message", b"chan", data)
    first_length = len(push(b"message", b"chan", b"before"))
    for cut in range(first_length, len(whole)):
        messages, used = split_messages(whole[:cut])
        assert (messages, used) == ([b"before"], first_length)
        rest, more = split_messages(whole[used:])
        assert (rest, more) == ([data], len(whole) - used)


def test_other_replies_are_skipped_and_errors_raise() -> None:
    confirmation = b"*3\r\n$9\r\nsubscribe\r\n$4\r\nchan\r\n:1\r\n"
    pong = b"+PONG\r\n"
    stream = confirmation + pong + push(b"message", b"chan", b"data") + b":7\r\n"
    assert split_messages(stream) == ([b"data"], len(stream))
    assert split_messages(b"*2\r\n$-1\r\n$1\r\nx\r\n") == ([], 16)  # a null bulk
    with pytest.raises(ValueError, match="error reply"):
        split_messages(b"-ERR wrong\r\n")
    with pytest.raises(ValueError, match="unexpected reply"):
        split_messages(b"%1\r\n")
    with pytest.raises(ValueError, match="unexpected reply"):
        split_messages(b"*1\r\n#t\r\n")


async def test_active_keys_of_named_topics_are_found_by_topic() -> None:
    """A takeover's resync names one topic: found directly, never by walking every key."""
    streams, _, _ = await manager()
    await streams.acquire(ONE)
    assert streams.active_keys_of([streams.topic(ONE), "bars:unknown"]) == [ONE]
    assert streams.active_keys_of([streams.topic(FIVE)]) == []  # known topic, not started
    await streams.acquire(FIVE)
    assert streams.active_keys_of([streams.topic(FIVE), streams.topic(ONE)]) == [FIVE, ONE]
    assert sorted(streams.active_keys(), key=str) == sorted([ONE, FIVE], key=str)
