"""``RedisBus``: updates published by one worker reach the hubs of all workers.

Why one channel for every topic: each worker receives every update and its hub drops the
topics nobody there subscribes to (one dict lookup). Per-topic channels would save that
traffic but make each worker SUBSCRIBE/UNSUBSCRIBE as its clients come and go and replay all
of it after each reconnect; one channel is one subscription, and every worker also keeps its
``ClosedBarGuard`` floors current for topics it does not serve yet. At the rates one upstream
produces (thousands of updates a second) the extra traffic is small; a deployment that
outgrows it can shard the channel by topic hash without changing the message format.

Why local delivery first: the publishing worker hands the frame to its own hub directly and
skips its own echo from Redis, so its clients do not wait on a round trip, and each frame
reaches each worker's hub exactly once.

Why a candle's store write and its publish are one script (``publish_stored_many``): with the
store on the same Redis, ``RedisCandleStore.store_and_publish`` writes and PUBLISHes in one
round trip instead of two, still in that order; only then does the owner's own hub get the
frames. A store on another Redis server falls back to a write, then a publish, per candle.

Why updates are gathered while writes are in flight (group commit, pipelined): a worker
ingesting many keys has many updates arriving while it waits on Redis; each caller's candles
join a queue, and one writer task sends what is queued as script calls carrying one ``B``
message each, then wakes each caller once its own candles are stored and delivered here. An
idle worker sends each update at once; a busy one pays one command encoding and one message
per batch instead of per key, and every other worker decodes one message per batch.

Why up to ``IN_FLIGHT`` calls at once, each with a share of the callers queued
(``redis_pipeline``): with one call at a time, every caller waited on the same call, so this
worker sat idle while Redis ran it and Redis sat idle while the callers prepared their next
updates (the worker's core about 70 % busy at saturation). Spread over two calls, one share
of the callers prepares its next updates while Redis runs the other's call. Callers still
return only once their candles are stored, published and delivered here, and a failed write
still raises in each of its callers. Order holds: the calls go out on one connection in the
order callers queued, Redis runs them in that order, and their answers (and so the local
deliveries) come back in it.

Why the reader reads the subscription's stream itself (``_read_messages``): with one channel,
every worker receives every update of the cluster, its own included; parsing each with
redis-py's pure-Python parser cost more than ingesting the candle had.

Why the reconnect pause is drawn at random (full jitter, ``feeds.pacing.Backoff``): when Redis
restarts, every worker's reader is cut off at the same instant; plain doubling would bring them
all back in lockstep, each with a full resync read, at every retry.

Why resync: Redis pub/sub drops whatever is published while a subscriber is disconnected.
After every (re)subscribe, before reading the next message, the reader asks the resync source
for the stored bars at or after each topic's guard floor and delivers them through the guard;
messages published meanwhile wait in the subscription's buffer, so the order holds. An owner
that caught a key up after a takeover sends a resync request for its topic; every worker
answers it the same way, in order with the live stream.

The message formats are ``bus.redis_messages``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from marketcast.bus.base import FrameHandler
from marketcast.bus.guard import ClosedBarGuard
from marketcast.bus.redis_messages import (
    BATCH_HEAD,
    FRAME,
    RESYNC,
    decode,
    decode_batch,
    encode,
    encode_batch,
    split_messages,
)
from marketcast.feeds.pacing import Backoff
from marketcast.market import BarKey, Candle
from marketcast.redis_health import CONNECTION_ERRORS, RedisHealth, cancel_and_wait
from marketcast.redis_pipeline import OrderedPipeline, StreamSplitter, exact_stream
from marketcast.store.base import CandleStore
from marketcast.store.redis import PUBLISH_BATCH, RedisCandleStore
from marketcast.types import Millis, Topic
from marketcast.wire import Frame

log = logging.getLogger("marketcast.bus")

#: Reads the store for a resync: (topics or None for all, floor per topic) -> frames to
#: deliver, ascending per topic.
ResyncSource = Callable[
    [Collection[Topic] | None, Callable[[Topic], Millis | None]], Awaitable[list[Frame]]
]

#: Store-and-publish calls sent and not yet answered, at most (group commit, pipelined):
#: while Redis runs one, this worker prepares the next.
IN_FLIGHT = 2


def _settle(waiting: Sequence[asyncio.Future[None]], exc: BaseException | None) -> None:
    """Wake each caller still waiting: with ``exc`` raised, or done."""
    for written in waiting:
        if written.done():
            continue
        if exc is None:
            written.set_result(None)
        else:
            written.set_exception(exc)


class RedisBus:
    """``Bus`` over one Redis pub/sub channel, with resync after every reconnect."""

    def __init__(
        self,
        publisher: Redis,
        subscriber: Redis,
        *,
        channel: str,
        worker_id: str,
        health: RedisHealth | None = None,
        retry_delay: tuple[float, float] = (0.05, 1.0),
        rng: random.Random | None = None,
    ) -> None:
        self._publisher = publisher
        #: A client of its own that never retries by itself: the reader must notice each
        #: reconnect, since every reconnect may have lost messages.
        self._subscriber = subscriber
        self._channel = channel
        #: Messages carry it so a worker skips its own (already delivered locally).
        self._sender = worker_id.encode()
        self._health = health
        #: Pause before resubscribing: full jitter between 0 and a ceiling doubling from
        #: ``retry_delay[0]`` up to ``retry_delay[1]``; back to the start once subscribed.
        self._backoff = Backoff(*retry_delay, rng=rng)
        self.guard = ClosedBarGuard()
        self._deliver: FrameHandler | None = None
        self._resync: ResyncSource | None = None
        self._reader: asyncio.Task[None] | None = None
        #: True while subscribed and caught up; readiness requires it.
        self.connected = False
        #: Times the reader subscribed and resynced (the first start counts).
        self.subscriptions = 0
        #: Frames this worker could not publish because Redis was unreachable.
        self.publish_failures = 0
        #: Candles waiting for the writer (group commit): the store, a caller's items, and
        #: the future that caller waits on.
        self._queued: deque[
            tuple[RedisCandleStore, Sequence[tuple[BarKey, Candle, Frame]], asyncio.Future[None]]
        ] = deque()
        #: The task sending the queue, while there is one.
        self._writer: asyncio.Task[None] | None = None
        #: Where the writer sends the store's script calls: a few in flight at once.
        self._pipeline = OrderedPipeline(publisher, depth=IN_FLIGHT)

    def set_resync(self, source: ResyncSource) -> None:
        """Where resyncs read from; set once the stream manager and hub exist."""
        self._resync = source

    # -- Bus ----------------------------------------------------------------------------------

    async def start(self, deliver: FrameHandler) -> None:
        if self._reader is not None:
            raise RuntimeError("RedisBus.start called twice")
        self._deliver = deliver
        self._reader = asyncio.create_task(self._read_loop(), name="redis-bus-reader")

    async def publish(self, frame: Frame) -> None:
        """Deliver locally, then to the other workers; never raises for a Redis outage (the
        other workers resync from the store once it is back)."""
        self.deliver_local(frame)
        await self._send(FRAME, frame)

    async def publish_stored_many(
        self, store: CandleStore, items: Sequence[tuple[BarKey, Candle, Frame]]
    ) -> None:
        """Store each ``(key, candle, frame)``, then publish its frame, in order. With the
        store on this bus's Redis the items join the write queue (group commit, see the
        module docstring) and this returns once they are stored, published and delivered to
        this worker's hub; a failed write raises here and publishes nothing of its batch."""
        if not items:
            return
        if not (isinstance(store, RedisCandleStore) and store.shares(self._publisher)):
            for key, candle, frame in items:
                await store.upsert(key, candle)
                await self.publish(frame)
            return
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queued.append((store, items, written))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_queued(), name="redis-bus-writer")
        await written

    async def _write_queued(self) -> None:
        """Send what is queued, one batch at a time, until the queue is empty: each batch
        is whole callers' items (up to ``PUBLISH_BATCH`` candles unless one caller brings
        more) for one store, one script call and one ``B`` message. A batch goes out once
        the pipeline has room, without waiting for the answers of those before it; its
        callers are woken when its own answer comes (``_written``), in the order sent."""
        queued, pipeline = self._queued, self._pipeline
        try:
            while queued:
                await pipeline.ready()  # what queues meanwhile joins this batch
                # The callers queued now, spread over the calls that may go out now: each
                # call's answer then wakes its own share of them, and they prepare their
                # next updates while Redis runs the calls still in flight.
                share = -(-len(queued) // pipeline.room)
                store, items, written = queued.popleft()
                batch, waiting = list(items), [written]
                while queued and queued[0][0] is store and len(waiting) < share:
                    if len(batch) + len(queued[0][1]) > PUBLISH_BATCH:
                        break
                    _, items, written = queued.popleft()
                    batch += items
                    waiting.append(written)
                frames = [frame for _, _, frame in batch]
                commands = store.store_and_publish_commands(
                    [(key, candle) for key, candle, _ in batch],
                    self._channel,
                    encode_batch(self._sender, frames),
                )
                try:
                    # Over ``PUBLISH_BATCH`` candles (one caller's many): the calls before the
                    # last publish nothing, and each is answered before the next goes, so a
                    # failed one publishes nothing of the batch.
                    for command in commands[:-1]:
                        await (await pipeline.send(command))
                    answer = await pipeline.send(commands[-1])
                except Exception as exc:
                    _settle(waiting, store.failure(exc))
                    continue
                answer.add_done_callback(functools.partial(self._written, store, frames, waiting))
        finally:
            self._writer = None
            while queued:  # cancelled (the bus closing): nobody writes these any more
                queued.popleft()[2].cancel()

    def _written(
        self,
        store: RedisCandleStore,
        frames: list[Frame],
        waiting: list[asyncio.Future[None]],
        answer: asyncio.Future[Any],
    ) -> None:
        """A batch's script call was answered (answers come in the order sent): deliver its
        frames here and wake its callers, or fail them."""
        if answer.cancelled():  # the bus is closing
            for written in waiting:
                written.cancel()
            return
        exc = answer.exception()
        if exc is not None:
            _settle(waiting, store.failure(exc))
            return
        self.deliver_local_many(frames)
        _settle(waiting, None)

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            await cancel_and_wait(reader)
        writer = self._writer
        if writer is not None:
            await cancel_and_wait(writer)
        await self._pipeline.close()
        self._deliver = None
        self.connected = False

    # -- resync -------------------------------------------------------------------------------

    def publish_local(self, frame: Frame) -> None:
        """``Bus.publish_local``: this worker's hub only, never Redis."""
        deliver = self._deliver
        if deliver is not None:
            deliver(frame)

    def deliver_local(self, frame: Frame) -> None:
        """Hand ``frame`` to this worker's hub unless the guard has seen it (or newer)."""
        deliver = self._deliver
        if deliver is not None and self.guard.admit(frame):
            deliver(frame)

    def deliver_local_many(self, frames: Sequence[Frame]) -> None:
        """``deliver_local`` for each of ``frames``, in order (``ClosedBarGuard.admit_many``)."""
        deliver = self._deliver
        if deliver is not None:
            for frame in self.guard.admit_many(frames):
                deliver(frame)

    async def request_resync(self, topic: Topic) -> None:
        """After catching ``topic`` up in the store: resync it here, then everywhere else."""
        await self._resync_topics((topic,))
        await self._send(RESYNC, Frame("", topic))

    async def _resync_topics(self, topics: Collection[Topic] | None) -> None:
        if self._resync is None or self._deliver is None:
            return
        for frame in await self._resync(topics, self.guard.floor):
            self.deliver_local(frame)

    # -- internals ----------------------------------------------------------------------------

    async def _send(self, kind: bytes, frame: Frame) -> None:
        try:
            await self._publisher.publish(self._channel, encode(kind, self._sender, frame))
        except CONNECTION_ERRORS as exc:
            self.publish_failures += 1
            if self._health is not None:
                self._health.report_failure(exc)

    async def _read_loop(self) -> None:
        while True:
            try:
                await self._read_once()
            except asyncio.CancelledError:
                raise
            except CONNECTION_ERRORS as exc:
                if self._health is not None:
                    self._health.report_failure(exc)
                log.debug("bus reader disconnected: %r", exc)
            except Exception:
                log.exception("bus reader failed; reconnecting")
            if self.connected:
                self._backoff.reset()
            self.connected = False
            await asyncio.sleep(self._backoff.next_delay())

    async def _read_once(self) -> None:
        """Subscribe, resync, then deliver messages until the connection breaks."""
        pubsub = self._subscriber.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            await self._confirm(pubsub)
            # Subscribed: from here on nothing is lost, messages queue up while we resync.
            await self._resync_topics(None)
            self.subscriptions += 1
            self.connected = True
            if self.subscriptions > 1:
                log.info("bus resubscribed and resynced")
            await self._read_messages(pubsub)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py lacks a hint

    async def _read_messages(self, pubsub: PubSub) -> None:
        """Hand every message to ``_handle`` until the connection breaks (raises then).

        Why not ``pubsub.get_message`` for each: every worker receives every update of the
        cluster, its own included, and redis-py's pure-Python reply parser spent ~20 µs on
        each, more than the rest of a candle's ingest. Its reads are exact (a line, then a
        bulk of known length), so once the subscription is confirmed nothing of the stream
        sits in the parser: the messages that follow are read here straight from the
        connection's stream, many per read, split with ``split_messages``, and this worker's
        own are skipped by their sender before anything is decoded. Where that is not so (the
        hiredis parser buffers ahead; a redis-py without the stream), redis-py reads them."""
        stream = exact_stream(pubsub.connection)
        if stream is None:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message.get("type") == "message":
                    await self._handle(message["data"])
        own = self._sender + b"\n"
        arrived = StreamSplitter(
            stream, split_messages, closed="the bus subscription was closed by the server"
        )
        while True:
            for data in await arrived.read():
                # ``kind \n sender \n ...``: a one-byte kind (F, R) from this worker is its
                # own echo; anything else is decoded (``_handle`` skips a longer kind's own).
                if not data.startswith(own, 2):
                    await self._handle(data)

    async def _confirm(self, pubsub: PubSub) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10.0
        while loop.time() < deadline:
            message = await pubsub.get_message(timeout=1.0)
            if message is not None and message.get("type") == "subscribe":
                return
        raise TimeoutError(f"no confirmation of SUBSCRIBE {self._channel} within 10 s")

    async def _handle(self, data: bytes) -> None:
        if data.startswith(BATCH_HEAD):
            try:
                sender, frames = decode_batch(data)
            except ValueError:
                log.warning("ignoring a malformed bus batch: %r", data[:200])
                return
            if sender != self._sender:
                self.deliver_local_many(frames)
            return
        try:
            kind, sender, frame = decode(data)
        except ValueError:
            log.warning("ignoring a malformed bus message: %r", data[:200])
            return
        if sender == self._sender:
            return
        if kind == FRAME:
            self.deliver_local(frame)
        elif kind == RESYNC and frame.topic is not None:
            await self._resync_topics((frame.topic,))
