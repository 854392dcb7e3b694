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
directly only while nothing else of this connection is queued or being sent (``QUIET``); the
outbox limits, conflation and the slow-consumer close apply to the queue exactly as before.
Without a reachable transport (another server, permessage-deflate) every frame goes through
the outbox and ASGI ``send_text``, as it always did.

Why the writer task is started lazily: almost every connection is idle or keeping up, and a
parked task per connection (task, coroutine frame, the events it slept on) was most of the
~4 KB that step 4 of docs/performance.md took off each idle connection. A writer exists
only while something is queued: ``deliver`` starts one when a frame has to be queued, and
it ends once it has found the outbox empty with the transport writable (or, during a
close, just empty), going back to ``QUIET`` before it returns (no await in between, so no
frame can be queued to a writer that has already decided to stop). While a writer exists
the state is not ``QUIET``, so ordering holds exactly as with a permanent writer.
``stop_writer`` also forbids starting a new one (``STOPPED``/``CLOSED``): nothing is written
after a close began.

Why an optional write delay (``MARKETCAST_WS_WRITE_DELAY``, off by default): each write is
one ``send()``, which on loopback is most of a delivery's CPU. With a delay, a frame that
would have been written directly is queued instead and the first one arms a timer (no task:
a task per batch cost more than the writes it saved); when it fires, everything queued goes
out in one write, so a client whose topics tick within the delay gets them together — less
CPU per delivery, up to that much more latency. Ordering holds as before: the queue is
written whole, in order, and only while ``QUIET`` (no writer); over the high-water mark the
timer hands the queue to a writer instead. The outbox rules apply unchanged (a still-open
bar's updates within the delay conflate). Without a direct path the delay does not apply.

Why every write path counts its bytes (``_unswept``): a slow reader can keep its outbox empty
while megabytes wait in the kernel; the per-app sweep (``delivery.sweep``, ``delivery.lag``)
turns bytes written and bytes unsent into how far behind it is. The write paths add to one
integer; the first write of a sweep period registers the connection (``FanoutStats.wrote``).

Why a close drops the outbox but then waits while the client reads: see ``delivery.closing``. A
planned close already spent its patience flushing, and keeps the plain ``close_timeout``.

Why one state (``ConnectionState``) rather than flags: whether a frame may be written directly,
must be queued, or is dropped, and whether a writer may start, all follow from where the
connection is in its life — quiet, writing, sealed for a planned close, closing, stopped. Kept
as separate booleans these could be combined in ways the code never meant; one value, moved only
by the events in ``TRANSITIONS``, makes every combination that exists a named state and every
other one an error. What is data rather than lifecycle stays in plain attributes: the close
code, the writer task, the flush timer, the close task, the planned-close future.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from time import perf_counter
from uuid import uuid4

from fastws import Client
from starlette.websockets import WebSocket, WebSocketState

from marketcast.delivery.closing import close_patiently
from marketcast.delivery.direct import DirectSink, layer_close_code, open_direct
from marketcast.delivery.holds import SnapshotHold
from marketcast.delivery.lag import Backlog, format_size
from marketcast.delivery.outbox import Outbox
from marketcast.delivery.principal import ANONYMOUS, Principal
from marketcast.delivery.states import (
    CLOSED,
    QUIET,
    SEALED,
    STOPPED,
    TRANSITIONS,
    WRITING,
    ConnectionState,
    Event,
)
from marketcast.delivery.stats import FanoutStats
from marketcast.delivery.transport import abort_transport
from marketcast.errors import CloseCode
from marketcast.market import StreamKey
from marketcast.types import Topic
from marketcast.wire import Frame

log = logging.getLogger("marketcast.ws")


class Connection(Client):
    """A connected client, as the hub (``deliver``) and the adapter (``reply``) see it."""

    # Why slots: one of these lives per connection, tens of thousands per process. fastws's
    # ``Client`` has no slots, so its attributes (``ws``, ``uid``, ``topics``) are declared
    # here too and ``Client.__init__`` is not called: no instance dict is ever created.
    __slots__ = (
        "_close_patience",
        "_close_timeout",
        "_direct",
        "_flush_timer",
        "_holds",
        "_resets",
        "_state",
        "_terminating",
        "_topics",
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
        "uid",
        "work",
        "ws",
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
        resets: Callable[[Topic], Frame | None] | None = None,
    ) -> None:
        # What ``Client.__init__`` sets, without the set it would allocate for ``topics``.
        self.ws = ws
        self.uid = uuid4().hex
        self._topics: set[str] | None = None
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
        #: Topics whose updates wait for their snapshot's reply (``SnapshotHold``); created by
        #: the first hold (most connections never make one).
        self._holds: dict[Topic, SnapshotHold] | None = None
        #: The holds the request being handled made: the adapter settles them with its reply.
        self._unsettled: list[SnapshotHold] | None = None
        self._close_timeout = close_timeout
        #: Seconds a close (other than a planned one) may wait for a client that is still
        #: reading to take its close frame (``MARKETCAST_DRAIN_TIMEOUT``); see ``_close``.
        self._close_patience = close_patience
        #: Bytes handed to the transport since the slow-consumer sweep last took the count;
        #: 0 also means "not registered with the sweep for this period" (``delivery.sweep``).
        self._unswept = 0
        #: Where this connection is in its life (``ConnectionState``); moved only by ``_move``
        #: (and read for every delivery: ``QUIET`` is what allows a direct write).
        self._state = QUIET
        #: The task draining the outbox; exists only while something is queued or in flight
        #: (``WRITING``, or a close flushing or stopping it).
        self._writer: asyncio.Task[None] | None = None
        #: The task sending the close frame, once ``terminate`` started it.
        self._terminating: asyncio.Task[None] | None = None
        #: The code of the close the server decided (slow consumer, shutdown...), if it did;
        #: set once, by ``terminate``.
        self.close_code: int | None = None
        #: Seconds frames are collected before one write (``MARKETCAST_WS_WRITE_DELAY``); with
        #: a delay a frame that could go out directly is queued and ``_flush_timer`` armed.
        self._write_delay = write_delay
        #: Armed by the first frame collected under a write delay; None otherwise.
        self._flush_timer: asyncio.TimerHandle | None = None
        #: The transport path, or None when frames must go through ASGI (``delivery.direct``).
        self._direct: DirectSink | None = open_direct(ws)
        #: Resolved when the planned close (notice, flush, 1001) under way has finished; a
        #: second one (shutdown meeting a lifetime close) waits for it instead of repeating it.
        self.planned_close: asyncio.Future[None] | None = None
        #: A topic's reset frame, if updates of that topic can be replaced by one (an order
        #: book in diff mode: ``ServedBooks.reset_frame``): what an overflow of such a topic
        #: queues instead of closing the client (``_refused``).
        self._resets = resets

    # -- inbound from the hub ---------------------------------------------------------------

    def deliver(self, frame: Frame) -> None:
        """Send ``frame``: written at once while ``QUIET`` (collected under a write delay),
        queued behind the writer while ``WRITING`` (and, while ``STOPPED``, queued for a close
        or an overflow), dropped once a close is under way."""
        if self._state is not QUIET:
            state = self._state
            if state is WRITING or state is STOPPED:
                if self._holds and frame.topic in self._holds:
                    self._hold_back(self._holds[frame.topic], frame)
                elif not self.outbox.put(frame):
                    self._refused(frame)
            # SEALED, CLOSING, CLOSED: dropped.
            return
        if self._holds and frame.topic in self._holds:
            self._hold_back(self._holds[frame.topic], frame)
            return
        direct = self._direct
        if direct is not None:
            if self._write_delay:
                self._collect(frame)
                return
            data = direct.encode(frame)
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
        # Over the high-water mark, or no direct path: queue, and a writer takes it from here.
        if self.outbox.put(frame) or self._refused(frame):
            self._wrote(0)  # the sweep watches the queue's age from now on
            self._start_writer()

    def _hold_back(self, hold: SnapshotHold, frame: Frame) -> None:
        """Keep ``frame`` until its topic's snapshot reply is settled (``SnapshotHold``), or,
        once it is, drop it if the snapshot holds it (``SnapshotHold.pass_on``)."""
        if hold.passing:
            hold.pass_on(frame)
            return
        hold.frames.append(frame)
        if len(hold.frames) > self.outbox.max_messages:
            self._overflow(len(hold.frames))

    # -- replies and snapshot holds -----------------------------------------------------------

    def reply(self, text: str) -> None:
        """Queue a reply or error."""
        self.deliver(Frame(text))

    def hold(self, topic: Topic, on_abandon: Callable[[], None]) -> SnapshotHold:
        """Hold ``topic``'s updates back until the request being handled is settled."""
        holds = self._holds
        if holds is None:
            holds = self._holds = {}
        hold = SnapshotHold(holds, self.deliver, topic, on_abandon)
        holds[topic] = hold
        if self._unsettled is None:
            self._unsettled = [hold]
        else:
            self._unsettled.append(hold)
        return hold

    def settle(self, ok: bool) -> None:
        """The request being handled is answered: release its holds after a success (the
        reply is queued first), abandon them after a failure (before its error is queued)."""
        holds = self._unsettled
        if not holds:
            return
        self._unsettled = None
        for hold in holds:
            if ok:
                hold.release()
            else:
                hold.abandon()

    def cancel_hold(self, topic: Topic) -> None:
        hold = None if self._holds is None else self._holds.get(topic)
        if hold is not None:
            hold.cancel()

    @property
    def topics(self) -> set[str]:
        """fastws's ``Client.topics`` (marketcast keeps ``subscriptions`` instead); the set is
        created on first use."""
        if self._topics is None:
            self._topics = set()
        return self._topics

    @topics.setter
    def topics(self, value: set[str]) -> None:
        self._topics = value

    # -- writing ------------------------------------------------------------------------------

    def _collect(self, frame: Frame) -> None:
        """Write delay: queue ``frame``; the first one queued arms the flush timer."""
        if not self.outbox.put(frame) and not self._refused(frame):
            return
        if self._flush_timer is None:
            loop = asyncio.get_running_loop()
            self._flush_timer = loop.call_later(self._write_delay, self._flush_collected)

    def _flush_collected(self) -> None:
        """Write everything collected in one ``transport.write`` — or, if the transport is
        over its high-water mark, hand the queue to a writer that waits for it to drain."""
        self._flush_timer = None
        direct = self._direct
        if self._state is not QUIET or direct is None or not len(self.outbox):
            return  # a writer owns the queue, or the connection is closing
        if not direct.ready():
            self._start_writer()
            return
        self._write_batch(direct, self.outbox.take())

    def _start_writer(self) -> None:
        """Something was queued while ``QUIET``: a writer owns the queue from now on."""
        self._move("queue")
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    def _move(self, event: Event) -> None:
        """Apply ``event`` to the state (``TRANSITIONS``); one that cannot happen in the
        current state is a bug, and raises rather than leave the state undefined."""
        state = self._state
        following = TRANSITIONS[state].get(event)
        if following is None:
            raise RuntimeError(f"connection {self.uid}: {event!r} while {state.name}")
        self._state = following

    def _write_batch(self, direct: DirectSink, frames: list[Frame]) -> None:
        encode = direct.encode
        data = b"".join([encode(frame) for frame in frames])
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
                    if self._state is not WRITING and not len(outbox):
                        # A close is under way (a planned one flushing, or one that dropped
                        # the queue) and all it waits for is written; no direct write can
                        # follow, so the buffer need not drain here.
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
            # Drained: back to QUIET, so direct writes may resume (unless a close is under
            # way). Cancelled or failed: no direct write may follow, and no new writer either
            # (frames queued from now on wait for the close, or overflow into a 4008).
            self._move("stop" if stopped else "drain")

    # -- closing ------------------------------------------------------------------------------

    def terminate(self, code: int, reason: str, *, patient: bool = True) -> None:
        """Close this client from a synchronous context (e.g. inside ``deliver``).

        ``patient``: wait (up to ``close_patience``) while a slowly reading client makes its
        way to the close frame (``delivery.closing``); planned closes pass False.
        """
        if self.close_code is not None:
            return  # decided already: a close happens once
        self.close_code = code
        self._move("close")
        # Nothing queued will be written now: free it at once, not when the connection ends
        # (and before anything else can count it: no await since the close was decided).
        self.stats.dropped(code, len(self.outbox.take()))
        log.info("closing connection %s: %s (%d)", self.uid, reason, code)
        self._terminating = asyncio.get_running_loop().create_task(
            self._close(code, reason, patient)
        )

    def _refused(self, frame: Frame) -> bool:
        """The outbox refused ``frame`` (over its limits). A topic whose updates one reset
        frame can stand for (a diff-mode order book) gives its queued updates up for that
        frame, so the client starts that topic over instead of losing an update or its
        connection; anything else, or a queue still full without them, is a slow consumer.
        True if the reset was queued."""
        resets, topic = self._resets, frame.topic
        if resets is not None and topic is not None and self.close_code is None:
            reset = resets(topic)
            if reset is not None and self.outbox.reset(reset):
                self.stats.resets += 1
                return True
        self._overflow()
        return False

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
        flushed = True
        try:
            if self._flush_timer is not None:
                # Collected frames are queued too: write them (or start a writer) now, while
                # ``QUIET`` still allows it.
                self._flush_timer.cancel()
                self._flush_collected()
        finally:
            self._move("seal")  # even if that write raised: no update may follow
        writer = self._writer
        if self._state is SEALED and writer is not None:
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
        """The writer is stopped for good (``STOPPED``, ``CLOSED``): nothing more will be
        written."""
        state = self._state
        return state is STOPPED or state is CLOSED

    @property
    def state(self) -> ConnectionState:
        """Where this connection is in its life (read-only; ``_move`` changes it)."""
        return self._state

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
        self._move("stop")
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
