"""One client connection: its outbox, its writer task, and how it is closed.

Why snapshots need a hold: a ``subscribe`` with ``snapshot``/``since`` registers the client
on the topic *before* reading the store, so no update can slip between the two; updates that
arrive meanwhile are held back (``SnapshotHold``), and once the reply is queued they are
released minus the ones the snapshot already contains. The rule relies on every update of a
family with history being stored before it is published (``StreamManager``): a held update
older than the snapshot's newest element, or equal to it when that element is final (a closed
bar, a trade), is a duplicate and is dropped.

Why a planned close flushes first: a close announced by a ``notice`` (shutdown, maximum
lifetime) is a promise that nothing queued is lost, so ``close_after_flush`` stops taking new
updates, waits (up to a deadline) until the writer has sent everything queued, and only then
sends the close frame. A close because of abuse or a slow consumer does not wait.

Why two write paths: under uvicorn the transport is reachable (``delivery.direct``), and a frame to
a client that is keeping up is written from ``deliver`` itself, synchronously, as the
pre-encoded bytes every subscriber shares — no task wake-up, no ASGI layers. Only when
something is queued, the writer is mid-batch, or the transport is over its high-water mark
does a frame go to the outbox; the writer then waits for the transport to drain and writes
everything queued in one ``transport.write``. Ordering holds because a frame is written
directly only while nothing else of this connection is queued or being sent (``_quiet``);
the outbox limits, conflation and the slow-consumer close apply to the queue exactly as
before. Without a reachable transport (another server, permessage-deflate) every frame goes
through the outbox and ASGI ``send_text``, as it always did.

Why the writer task is started lazily: almost every connection is idle or keeping up, and a
parked task per connection (task, coroutine frame, the events it slept on) was most of the
~4 KB that step 4 of docs/performance.md took off each idle connection. A writer exists
only while something is queued: ``deliver`` starts one when a frame has to be queued, and
it ends once it has found the outbox empty with the transport writable (or, during a
planned close, just empty), clearing ``_writer`` before it returns (no await in between, so
no frame can be queued to a writer that has already decided to stop). While a writer exists
``_quiet`` is False, so ordering holds exactly as with a permanent writer. ``stop_writer``
also forbids starting a new one (``_stopped``): nothing is written after a close began.

Why an optional write delay (``MARKETCAST_WS_WRITE_DELAY``, off by default): each write is
one ``send()``, which on loopback is most of a delivery's CPU. With a delay, a frame that
would have been written directly is queued instead and the first one arms a timer (no task:
a task per batch cost more than the writes it saved); when it fires, everything queued goes
out in one write, so a client whose topics tick within the delay gets them together — less
CPU per delivery, up to that much more latency. Ordering holds as before: the queue is
written whole, in order, and only while ``_quiet`` (no writer); over the high-water mark the
timer hands the queue to a writer instead. The outbox rules apply unchanged (a still-open
bar's updates within the delay conflate). Without a direct path the delay does not apply.

Why every write path counts its bytes (``_unswept``): a slow reader can keep its outbox empty
while megabytes wait in the kernel; the per-app sweep (``delivery.sweep``, ``delivery.lag``)
turns bytes written and bytes unsent into how far behind it is. The write paths add to one
integer; the first write of a sweep period registers the connection (``FanoutStats.wrote``).

Why a close drops the outbox but then waits while the client reads: see ``delivery.closing``. A
planned close already spent its patience flushing, and keeps the plain ``close_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from time import perf_counter

from fastws import Client
from starlette.websockets import WebSocket, WebSocketState

from marketcast.delivery.closing import close_patiently
from marketcast.delivery.direct import DirectSink, layer_close_code, open_direct
from marketcast.delivery.lag import Backlog, format_size
from marketcast.delivery.outbox import Outbox
from marketcast.delivery.principal import ANONYMOUS, Principal
from marketcast.delivery.stats import FanoutStats
from marketcast.delivery.transport import abort_transport
from marketcast.errors import CloseCode
from marketcast.market import StreamKey
from marketcast.types import Topic
from marketcast.wire import Frame

log = logging.getLogger("marketcast.ws")


class SnapshotHold:
    """Updates of one topic held back while its snapshot is read: the token of the subscribe
    call that made it (``Connection.hold``).

    Why a token: the held updates may go out only after the reply that carries the snapshot,
    and only if that reply is a success. The adapter settles every hold the request made once
    its reply is queued (``Connection.settle``): a success releases them, minus what the
    snapshot already holds; a failure anywhere after the hold was made (the snapshot read, the
    reply's encoding) abandons them, and ``on_abandon`` undoes the subscription, so an error
    reply never leaves the client subscribed.
    """

    __slots__ = ("_conn", "frames", "last_final", "last_order", "on_abandon", "topic")

    def __init__(self, conn: Connection, topic: Topic, on_abandon: Callable[[], None]) -> None:
        self._conn = conn
        self.topic = topic
        self.frames: list[Frame] = []
        #: The snapshot's newest element (a bar's open time, a trade's id) and whether it is
        #: final; None until ``arm`` (or when the snapshot was empty): nothing is a duplicate.
        self.last_order: int | None = None
        self.last_final = False
        self.on_abandon = on_abandon

    def arm(self, last_order: int | None, last_final: bool) -> None:
        """The snapshot is read; its newest element is (``last_order``, ``last_final``)."""
        self.last_order = last_order
        self.last_final = last_final

    def keeps(self, frame: Frame) -> bool:
        """Whether a held update is newer than the snapshot (the store is written before the
        bus, so anything at or before the snapshot's newest final element is in it)."""
        if frame.order is None or self.last_order is None:
            return True
        if frame.order < self.last_order:
            return False
        return not (frame.order == self.last_order and self.last_final)

    def release(self) -> None:
        """Deliver what the snapshot lacks, then deliver the topic's updates directly."""
        if self._conn._holds.get(self.topic) is not self:
            return
        del self._conn._holds[self.topic]
        for frame in self.frames:
            if self.keeps(frame):
                self._conn.deliver(frame)
        self.frames = []

    def cancel(self) -> None:
        """Drop the held updates (the subscription is going away); idempotent."""
        if self._conn._holds.get(self.topic) is self:
            del self._conn._holds[self.topic]
        self.frames = []

    def abandon(self) -> None:
        """The request failed: drop the held updates and undo the subscription."""
        if self._conn._holds.get(self.topic) is self:
            self.cancel()
            self.on_abandon()


class Connection(Client):
    """A connected client, as the hub (``deliver``) and the adapter (``reply``) see it."""

    # Why slots: one of these lives per connection, tens of thousands per process; fastws's
    # ``Client`` has no slots, so its own ``ws``/``uid``/``topics`` stay in a (small) dict.
    __slots__ = (
        "_close_patience",
        "_close_timeout",
        "_direct",
        "_flush_timer",
        "_holds",
        "_quiet",
        "_sealed",
        "_stopped",
        "_terminating",
        "_unsettled",
        "_unswept",
        "_write_delay",
        "_writer",
        "close_code",
        "frames_sent",
        "outbox",
        "planned_close",
        "principal",
        "stats",
        "subscriptions",
        "work",
    )

    def __init__(
        self,
        ws: WebSocket,
        outbox: Outbox,
        *,
        close_timeout: float = 2.0,
        close_patience: float = 0.0,
        principal: Principal = ANONYMOUS,
        stats: FanoutStats | None = None,
        write_delay: float = 0.0,
    ) -> None:
        super().__init__(ws)
        self.outbox = outbox
        #: Who the handshake said this is; the topic authorization hook sees it.
        self.principal = principal
        #: Frames handed to the socket, and where sampled latencies go (``delivery.stats``): plain
        #: counters that ``/metrics`` reads at scrape time, nothing on the hot path.
        self.frames_sent = 0
        self.stats = stats if stats is not None else FanoutStats()
        #: Topic -> the stream key it consumes, so a disconnect can release every key.
        self.subscriptions: dict[Topic, StreamKey] = {}
        #: Bars the request being handled returned or had a feed fetch: the adapter resets it
        #: before each frame and charges the rate limiter by it afterwards (``ws.limits``);
        #: the generated routers have no other channel through which to report their cost.
        self.work = 0
        #: Topics whose updates wait for their snapshot's reply (``SnapshotHold``).
        self._holds: dict[Topic, SnapshotHold] = {}
        #: The holds the request being handled made: the adapter settles them with its reply.
        self._unsettled: list[SnapshotHold] = []
        self._close_timeout = close_timeout
        #: Seconds a close (other than a planned one) may wait for a client that is still
        #: reading to take its close frame (``MARKETCAST_DRAIN_TIMEOUT``); see ``_close``.
        self._close_patience = close_patience
        #: Bytes handed to the transport since the slow-consumer sweep last took the count;
        #: 0 also means "not registered with the sweep for this period" (``delivery.sweep``).
        self._unswept = 0
        #: The task draining the outbox; exists only while something is queued or in flight.
        self._writer: asyncio.Task[None] | None = None
        #: Set by ``stop_writer`` (or a writer that failed): no writer may be started again.
        self._stopped = False
        self._terminating: asyncio.Task[None] | None = None
        #: Set when the server decided to close this client (slow consumer, shutdown...).
        self.close_code: int | None = None
        #: Seconds frames are collected before one write (``MARKETCAST_WS_WRITE_DELAY``); with
        #: a delay a frame that could go out directly is queued and ``_flush_timer`` armed.
        self._write_delay = write_delay
        #: Armed by the first frame collected under a write delay; None otherwise.
        self._flush_timer: asyncio.TimerHandle | None = None
        #: The transport path, or None when frames must go through ASGI (``delivery.direct``).
        self._direct: DirectSink | None = open_direct(ws)
        #: No writer exists and none was stopped, so nothing is queued or in flight. Read for
        #: every delivery: a direct write is allowed only while it is True, so nothing can
        #: overtake a queued or in-flight frame; the first frame queued while it is True
        #: starts the writer.
        self._quiet = True
        #: A planned close has begun: later updates are dropped so the flush can finish.
        self._sealed = False
        #: Resolved when the planned close (notice, flush, 1001) under way has finished; a
        #: second one (shutdown meeting a lifetime close) waits for it instead of repeating it.
        self.planned_close: asyncio.Future[None] | None = None

    # -- inbound from the hub ---------------------------------------------------------------

    def deliver(self, frame: Frame) -> None:
        if self.close_code is not None or self._sealed:
            return
        if self._holds and frame.topic in self._holds:
            hold = self._holds[frame.topic]
            hold.frames.append(frame)
            if len(hold.frames) > self.outbox.max_messages:
                self._overflow(len(hold.frames))
            return
        if self._quiet:
            direct = self._direct
            if direct is not None:
                if self._write_delay:
                    self._collect(frame)
                    return
                data = frame.wire()
                if direct.offer(data):
                    stats = self.stats
                    stats.direct_frames += 1
                    self.frames_sent += 1
                    # ``_wrote`` inlined: its registration runs once per sweep period.
                    unswept = self._unswept
                    if not unswept and stats.wrote is not None:
                        stats.wrote.add(self)
                    self._unswept = unswept + len(data)
                    if not self.frames_sent % stats.sample_every:
                        stats.latency.observe(perf_counter() - frame.created)
                    return
        if self.outbox.put(frame):
            if self._quiet:
                self._quiet = False
                self._wrote(0)  # the sweep watches the queue's age from now on
                self._writer = asyncio.get_running_loop().create_task(self._write_loop())
        else:
            self._overflow()

    # -- replies and snapshot holds -----------------------------------------------------------

    def reply(self, text: str) -> None:
        """Queue a reply or error."""
        self.deliver(Frame(text))

    def hold(self, topic: Topic, on_abandon: Callable[[], None]) -> SnapshotHold:
        """Hold ``topic``'s updates back until the request being handled is settled."""
        hold = SnapshotHold(self, topic, on_abandon)
        self._holds[topic] = hold
        self._unsettled.append(hold)
        return hold

    def settle(self, ok: bool) -> None:
        """The request being handled is answered: release its holds after a success (the
        reply is queued first), abandon them after a failure (before its error is queued)."""
        if not self._unsettled:
            return
        holds, self._unsettled = self._unsettled, []
        for hold in holds:
            if ok:
                hold.release()
            else:
                hold.abandon()

    def cancel_hold(self, topic: Topic) -> None:
        hold = self._holds.get(topic)
        if hold is not None:
            hold.cancel()

    # -- writing ------------------------------------------------------------------------------

    def _collect(self, frame: Frame) -> None:
        """Write delay: queue ``frame``; the first one queued arms the flush timer."""
        if not self.outbox.put(frame):
            self._overflow()
        elif self._flush_timer is None:
            loop = asyncio.get_running_loop()
            self._flush_timer = loop.call_later(self._write_delay, self._flush_collected)

    def _flush_collected(self) -> None:
        """Write everything collected in one ``transport.write`` — or, if the transport is
        over its high-water mark, hand the queue to a writer that waits for it to drain."""
        self._flush_timer = None
        direct = self._direct
        if not self._quiet or direct is None or not len(self.outbox):
            return  # a writer owns the queue, or the connection is closing
        if not direct.ready():
            self._quiet = False
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())
            return
        self._write_batch(direct, self.outbox.take())

    def _write_batch(self, direct: DirectSink, frames: list[Frame]) -> None:
        data = b"".join([frame.wire() for frame in frames])
        direct.write(data)
        self.stats.batched_frames += len(frames)
        self._wrote(len(data))
        self._record_sent(frames)

    def _wrote(self, nbytes: int) -> None:
        """Count bytes handed to the transport; the first of a sweep period registers."""
        unswept = self._unswept
        if not unswept:
            wrote = self.stats.wrote
            if wrote is not None:
                wrote.add(self)
        self._unswept = unswept + nbytes

    def _record_sent(self, frames: Sequence[Frame]) -> None:
        """Count frames handed to the socket; time one in ``sample_every`` (``delivery.stats``).

        (``deliver`` does the same inline for its single direct frame: it runs per frame per
        client, where a call more shows.)
        """
        stats = self.stats
        sample_every = stats.sample_every
        sent = self.frames_sent
        self.frames_sent = sent + len(frames)
        for frame in frames:
            sent += 1
            if not sent % sample_every:
                stats.latency.observe(perf_counter() - frame.created)

    async def _write_loop(self) -> None:
        """Drain the outbox until it is empty and the transport writable, then end."""
        send = self.ws.send_text
        outbox = self.outbox
        direct = self._direct
        stats = self.stats
        stopped = True
        try:
            while True:
                if direct is not None:
                    if self._sealed and not len(outbox):
                        # A planned close is flushing and all it waits for is written; no
                        # direct write can follow a seal, so the buffer need not drain here.
                        stopped = False
                        return
                    # Queued because the transport was full (or a batch was just written):
                    # let it drain first, and take whatever was queued meanwhile as one batch.
                    await direct.wait_writable()
                frames = outbox.take()
                if not frames:
                    # Drained and writable: direct writes may resume. No await since ``take``,
                    # so nothing was queued behind this decision.
                    stopped = False
                    return
                if direct is not None and direct.open():
                    self._write_batch(direct, frames)
                else:
                    for frame in frames:
                        await send(frame.text)
                        stats.asgi_frames += 1
                        self._wrote(len(frame.text))
                        self._record_sent((frame,))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the socket went away under us; the reader sees it too
            log.debug("writer for %s stopped: %r", self.uid, exc)
        finally:
            self._writer = None
            if stopped:
                # Cancelled or failed: no direct write may follow, and no new writer either
                # (frames queued from now on wait for the close, or overflow into a 4008).
                self._stopped = True
                self._quiet = False
            else:
                self._quiet = not self._stopped

    # -- closing ------------------------------------------------------------------------------

    def terminate(self, code: int, reason: str, *, patient: bool = True) -> None:
        """Close this client from a synchronous context (e.g. inside ``deliver``).

        ``patient``: wait (up to ``close_patience``) while a slowly reading client makes its
        way to the close frame (``delivery.closing``); planned closes pass False.
        """
        if self.close_code is not None:
            return
        self.close_code = code
        # Nothing queued will be written now: free it at once, not when the connection ends
        # (and before anything else can count it: no await since the close was decided).
        self.stats.dropped(code, len(self.outbox.take()))
        log.info("closing connection %s: %s (%d)", self.uid, reason, code)
        self._terminating = asyncio.get_running_loop().create_task(
            self._close(code, reason, patient)
        )

    def _overflow(self, frames: int | None = None) -> None:
        """The outbox (or, with ``frames``, a snapshot hold) is over its limit."""
        if self.close_code is None:
            outbox = self.outbox
            self.stats.slow_consumer("queue")
            what = (
                f"{len(outbox)} frames, {format_size(outbox.nbytes)}"
                if frames is None
                else f"{frames} frames held"
            )
            self.terminate(CloseCode.SLOW_CONSUMER, f"slow consumer: queue full ({what})")

    async def _close(self, code: int, reason: str, patient: bool) -> None:
        await self.stop_writer()
        direct = self._direct
        try:
            if self.ws.application_state != WebSocketState.CONNECTED:
                return
            if patient and direct is not None and self._close_patience > 0:
                await close_patiently(
                    self.ws,
                    direct,
                    code,
                    reason,
                    close_timeout=self._close_timeout,
                    patience=self._close_patience,
                    uid=self.uid,
                )
                return
            async with asyncio.timeout(self._close_timeout):
                await self.ws.close(code, reason)
        except TimeoutError:
            # The peer reads nothing, so even the close frame cannot be written: drop the
            # TCP connection instead of keeping its buffers alive.
            aborted = abort_transport(self.ws)
            log.warning(
                "connection %s: close frame (%d) not written within %.1fs, %s",
                self.uid,
                code,
                self._close_timeout,
                "aborting TCP" if aborted else "left to the server (no transport to abort)",
            )
        except Exception as exc:
            log.debug("close of %s failed: %r", self.uid, exc)

    async def close_after_flush(self, code: int, reason: str, deadline: float) -> bool:
        """Planned close: send what is queued (for up to ``deadline`` s), then close.

        Returns whether everything queued went out before the close.
        """
        self._sealed = True
        flushed = True
        if self._flush_timer is not None:
            # Collected frames are queued too: write them (or start a writer) now.
            self._flush_timer.cancel()
            self._flush_collected()
        writer = self._writer
        if self.close_code is None and writer is not None:
            # Sealed, so nothing new is queued: the writer ends once what is queued is out.
            done, _ = await asyncio.wait((writer,), timeout=deadline)
            if not done:
                flushed = False
                log.info("connection %s: queue not flushed within %.1fs", self.uid, deadline)
        await self.close(code, reason, patient=False)
        return flushed

    async def close(self, code: int, reason: str, *, patient: bool = True) -> None:
        """Close this client and wait until the close frame is out (or the deadline passed)."""
        self.terminate(code, reason, patient=patient)
        if self._terminating is not None:
            await self._terminating

    # -- what the slow-consumer sweep reads (``delivery.sweep``) ----------------------------------

    @property
    def stopped(self) -> bool:
        """Closing or closed: nothing more will be written."""
        return self._stopped

    def take_written(self) -> int:
        """Bytes handed to the transport since the previous call."""
        nbytes, self._unswept = self._unswept, 0
        return nbytes

    def backlog(self) -> Backlog:
        """What waits for this client: its outbox, and what the socket has not sent."""
        outbox = self.outbox
        oldest = outbox.oldest()
        direct = self._direct
        return Backlog(
            queued_bytes=outbox.nbytes,
            oldest_queued=None if oldest is None else oldest.created,
            unsent=None if direct is None else direct.unsent(),
        )

    def layer_close_code(self) -> int | None:
        """The close code the WebSocket layer sent on its own (e.g. 1011 on a keepalive
        timeout), for the closed-connections counter (``delivery.stats``)."""
        return layer_close_code(self.ws)

    async def stop_writer(self) -> None:
        """Stop writing for good: cancel the writer, if any, and never start another."""
        self._stopped = True
        self._quiet = False
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        writer = self._writer
        if writer is not None and not writer.done():
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        # A writer cancelled before its first step never ran its ``finally``.
        self._writer = None
