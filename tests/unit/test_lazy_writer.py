"""``Connection`` starts a writer task only while something is queued, and keeps order.

Driven with a fake uvicorn protocol (the attributes ``delivery.direct`` reads) and a transport that
records what is written; the event loop is advanced with ``sleep(0)``, never a clock.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.websockets import WebSocketState

from marketcast.delivery.connection import Connection
from marketcast.delivery.outbox import Outbox
from marketcast.delivery.transport import RAW_SEND_KEY
from marketcast.wire import Frame


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        #: What ``get_write_buffer_size`` reports (the kernel's queue is not reachable here).
        self.buffered = 0
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.aborted

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_extra_info(self, name: str) -> Any:
        return None  # no socket: ``delivery.direct.kernel_unsent`` counts 0

    def abort(self) -> None:
        self.aborted = True


class FakeConn:
    def __init__(self) -> None:
        self.extensions: list[Any] = []


class FakeProtocol:
    def __init__(self) -> None:
        self.transport = FakeTransport()
        self.writable = asyncio.Event()
        self.writable.set()
        self.conn = FakeConn()
        self.close_sent = False
        self.disconnected = False

    async def send(self, message: Any) -> None:
        raise AssertionError("the direct path should have been used")


class FakeWebSocket:
    def __init__(self, protocol: FakeProtocol) -> None:
        self.scope: dict[str, Any] = {RAW_SEND_KEY: protocol.send}
        self.application_state = WebSocketState.CONNECTED
        self.closed_with: tuple[int, str] | None = None

    async def send_text(self, text: str) -> None:
        raise AssertionError("the direct path should have been used")

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)
        self.application_state = WebSocketState.DISCONNECTED


def connection() -> tuple[Connection, FakeProtocol, FakeWebSocket]:
    protocol = FakeProtocol()
    ws = FakeWebSocket(protocol)
    conn = Connection(ws, Outbox(100, 1_000_000))  # type: ignore[arg-type]
    return conn, protocol, ws


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def written(protocol: FakeProtocol) -> bytes:
    return b"".join(protocol.transport.writes)


async def test_no_writer_while_frames_go_straight_to_the_transport() -> None:
    conn, protocol, _ = connection()
    assert conn._writer is None
    conn.deliver(Frame("a"))
    conn.deliver(Frame("b"))
    assert conn._writer is None
    assert protocol.transport.writes == [Frame("a").wire(), Frame("b").wire()]
    assert conn.stats.direct_frames == 2


async def test_writer_starts_when_queueing_keeps_order_and_ends_when_drained() -> None:
    conn, protocol, _ = connection()
    protocol.writable.clear()  # the transport is over its high-water mark
    conn.deliver(Frame("a"))
    writer = conn._writer
    assert writer is not None
    protocol.writable.set()
    # Writable again, but "a" is still queued: "b" must queue behind it, not overtake it.
    conn.deliver(Frame("b"))
    assert protocol.transport.writes == []
    assert conn._writer is writer
    await settle()
    assert writer.done()
    assert conn._writer is None
    # One batch, in order; then the direct path resumes.
    assert protocol.transport.writes == [Frame("a").wire() + Frame("b").wire()]
    assert conn.stats.batched_frames == 2
    conn.deliver(Frame("c"))
    assert conn._writer is None
    assert written(protocol) == b"".join(Frame(t).wire() for t in "abc")
    assert conn.frames_sent == 3


async def test_writer_waits_for_writable_after_its_batch_before_ending() -> None:
    conn, protocol, _ = connection()
    protocol.writable.clear()
    conn.deliver(Frame("a"))
    await settle()  # the writer is waiting for the transport
    # Writable just long enough to wake the writer; its batch fills the buffer again.
    protocol.writable.set()
    protocol.writable.clear()
    await settle()
    writer = conn._writer
    assert writer is not None
    assert not writer.done()
    conn.deliver(Frame("b"))  # still queued behind the writer, not written directly
    assert written(protocol) == Frame("a").wire()
    protocol.writable.set()
    await settle()
    assert conn._writer is None
    assert written(protocol) == Frame("a").wire() + Frame("b").wire()


async def test_each_queueing_episode_gets_a_new_writer() -> None:
    conn, protocol, _ = connection()
    for text in ("a", "b"):
        protocol.writable.clear()
        conn.deliver(Frame(text))
        assert conn._writer is not None
        protocol.writable.set()
        await settle()
        assert conn._writer is None
    assert written(protocol) == Frame("a").wire() + Frame("b").wire()


async def test_stop_writer_cancels_and_nothing_is_written_or_started_after() -> None:
    conn, protocol, _ = connection()
    protocol.writable.clear()
    conn.deliver(Frame("a"))
    await conn.stop_writer()
    assert conn._writer is None
    protocol.writable.set()
    conn.deliver(Frame("b"))
    await settle()
    assert conn._writer is None
    assert protocol.transport.writes == []
    assert len(conn.outbox) == 2


async def test_stop_writer_without_a_writer_forbids_direct_writes_too() -> None:
    conn, protocol, _ = connection()
    await conn.stop_writer()
    conn.deliver(Frame("a"))
    assert protocol.transport.writes == []
    assert conn._writer is None


async def test_planned_close_flushes_the_queue_before_the_close_frame() -> None:
    conn, protocol, ws = connection()
    protocol.writable.clear()
    conn.deliver(Frame("a"))
    conn.deliver(Frame("b"))
    closing = asyncio.create_task(conn.close_after_flush(1001, "bye", deadline=60.0))
    await settle()
    assert not closing.done()  # the transport is still full
    assert ws.closed_with is None
    protocol.writable.set()
    assert await closing
    assert written(protocol) == Frame("a").wire() + Frame("b").wire()
    assert ws.closed_with == (1001, "bye")
    conn.deliver(Frame("late"))  # sealed and closed: dropped
    assert written(protocol) == Frame("a").wire() + Frame("b").wire()


async def test_planned_close_with_nothing_queued_closes_at_once() -> None:
    conn, _, ws = connection()
    assert await conn.close_after_flush(1001, "bye", deadline=60.0)
    assert ws.closed_with == (1001, "bye")


async def test_overflowing_queue_closes_as_slow_consumer_without_a_writer_left() -> None:
    protocol = FakeProtocol()
    ws = FakeWebSocket(protocol)
    conn = Connection(ws, Outbox(2, 1_000_000))  # type: ignore[arg-type]
    protocol.writable.clear()
    for text in ("a", "b", "c"):
        conn.deliver(Frame(text))
    assert conn.close_code == 4008
    await settle()
    assert conn._writer is None
    assert ws.closed_with == (4008, "slow consumer: queue full (2 frames, 2 B)")
    assert protocol.transport.writes == []
    # What was still queued is dropped at the close, and counted.
    assert len(conn.outbox) == 0
    assert conn.stats.unsent == {"slow_consumer": 2}
    assert conn.stats.slow_consumers == {"queue": 1}


def delayed_connection() -> tuple[Connection, FakeProtocol, FakeWebSocket]:
    protocol = FakeProtocol()
    ws = FakeWebSocket(protocol)
    conn = Connection(ws, Outbox(100, 1_000_000), write_delay=0.001)  # type: ignore[arg-type]
    return conn, protocol, ws


async def after_the_delay() -> None:
    """Timers fire in deadline order: one set 1 ms from now has run once this returns."""
    await asyncio.sleep(0.01)


async def test_write_delay_collects_frames_into_one_write_without_a_task() -> None:
    """With ``write_delay`` nothing goes out on the direct path alone: frames delivered before
    the timer fires are written together, in order, by the timer (no writer task)."""
    conn, protocol, _ = delayed_connection()
    for text in "abc":
        conn.deliver(Frame(text))
    assert protocol.transport.writes == []
    assert conn._writer is None
    assert conn._flush_timer is not None
    await after_the_delay()
    assert protocol.transport.writes == [b"".join(Frame(t).wire() for t in "abc")]
    assert (conn.stats.direct_frames, conn.stats.batched_frames) == (0, 3)
    assert conn._flush_timer is None
    # The next frame starts a new collection rather than going straight out.
    conn.deliver(Frame("d"))
    assert len(protocol.transport.writes) == 1
    await after_the_delay()
    assert written(protocol) == b"".join(Frame(t).wire() for t in "abcd")
    assert conn.frames_sent == 4


async def test_write_delay_over_the_high_water_mark_hands_the_queue_to_a_writer() -> None:
    conn, protocol, _ = delayed_connection()
    conn.deliver(Frame("a"))
    protocol.writable.clear()
    await after_the_delay()
    assert protocol.transport.writes == []
    writer = conn._writer
    assert writer is not None, "a full transport gets a writer that waits for it"
    conn.deliver(Frame("b"))  # queued behind "a", not collected separately
    assert conn._flush_timer is None
    protocol.writable.set()
    await settle()
    assert writer.done()
    assert protocol.transport.writes == [Frame("a").wire() + Frame("b").wire()]


async def test_planned_close_writes_collected_frames_before_the_close() -> None:
    conn, protocol, ws = delayed_connection()
    conn.deliver(Frame("a"))
    conn.deliver(Frame("b"))
    assert await conn.close_after_flush(1001, "bye", deadline=1.0)
    assert written(protocol) == Frame("a").wire() + Frame("b").wire()
    assert ws.closed_with == (1001, "bye")
    conn.deliver(Frame("c"))  # sealed: dropped
    await after_the_delay()
    assert written(protocol) == Frame("a").wire() + Frame("b").wire()


async def test_stop_writer_cancels_a_pending_flush() -> None:
    conn, protocol, _ = delayed_connection()
    conn.deliver(Frame("a"))
    await conn.stop_writer()
    await after_the_delay()
    assert protocol.transport.writes == []
    assert conn._flush_timer is None
