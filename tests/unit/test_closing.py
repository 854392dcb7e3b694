"""A close that waits while the client keeps reading (``delivery.closing``), over a fake uvicorn
protocol whose "client" takes bytes each time the server looks — no socket, no wall-clock
assertions (only the outcome of each scenario)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from starlette.websockets import WebSocketState

from marketcast.delivery.closing import _Progress
from marketcast.delivery.connection import Connection
from marketcast.delivery.outbox import Outbox
from marketcast.delivery.transport import RAW_SEND_KEY
from marketcast.wire import Frame


class ReadingTransport:
    """A transport whose peer takes ``rate`` bytes each time its buffer is looked at."""

    def __init__(self, protocol: ReadingProtocol, buffered: int, rate: int) -> None:
        self.protocol = protocol
        self.buffered = buffered
        self.rate = rate
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.buffered += len(data)

    def is_closing(self) -> bool:
        return self.aborted

    def get_write_buffer_size(self) -> int:
        self.buffered = max(0, self.buffered - self.rate)
        if self.buffered <= 100:
            self.protocol.writable.set()  # back under the low-water mark
        return self.buffered

    def get_extra_info(self, name: str) -> Any:
        return None

    def abort(self) -> None:
        self.aborted = True
        self.protocol.disconnected = True
        self.protocol.writable.set()


class FakeConn:
    def __init__(self) -> None:
        self.extensions: list[Any] = []


class ReadingProtocol:
    def __init__(self, buffered: int, rate: int) -> None:
        self.writable = asyncio.Event()  # over the high-water mark to begin with
        self.transport = ReadingTransport(self, buffered, rate)
        self.conn = FakeConn()
        self.close_sent = False
        self.disconnected = False
        #: uvicorn's own delay before it closes the socket after its close frame.
        self.close_timeout = 10.0

    async def send(self, message: Any) -> None:
        raise AssertionError("not used")


class FakeWebSocket:
    """``close`` behaves like uvicorn's: it waits until the transport is writable."""

    def __init__(self, protocol: ReadingProtocol) -> None:
        self.protocol = protocol
        self.scope: dict[str, Any] = {RAW_SEND_KEY: protocol.send}
        self.application_state = WebSocketState.CONNECTED
        self.closed_with: tuple[int, str] | None = None

    async def close(self, code: int, reason: str) -> None:
        await self.protocol.writable.wait()
        if self.protocol.disconnected:
            raise RuntimeError("disconnected")
        self.protocol.transport.write(b"\x88" + reason.encode())
        self.protocol.close_sent = True
        self.closed_with = (code, reason)


def closing(
    buffered: int, rate: int, *, close_timeout: float, patience: float
) -> tuple[Connection, ReadingProtocol, FakeWebSocket]:
    protocol = ReadingProtocol(buffered, rate)
    ws = FakeWebSocket(protocol)
    conn = Connection(
        ws,  # type: ignore[arg-type]
        Outbox(100, 1_000_000),
        close_timeout=close_timeout,
        close_patience=patience,
    )
    return conn, protocol, ws


async def test_a_slow_client_that_keeps_reading_gets_its_close_frame() -> None:
    conn, protocol, ws = closing(1_500, 400, close_timeout=30.0, patience=60.0)
    conn.deliver(Frame("still queued"))  # the transport is full: queued, never written
    await asyncio.wait_for(conn.close(4008, "slow consumer: 12.3 s behind"), 30)
    assert ws.closed_with == (4008, "slow consumer: 12.3 s behind")
    assert not protocol.transport.aborted
    assert protocol.transport.buffered == 0, "the client took everything, the close frame too"
    # uvicorn's own timer may not close the socket before the server gave up waiting.
    assert protocol.close_timeout == 90.0
    assert len(conn.outbox) == 0
    assert conn.stats.unsent == {"slow_consumer": 1}


async def test_a_client_that_reads_nothing_is_aborted_after_the_close_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn, protocol, ws = closing(1_500, 0, close_timeout=0.3, patience=60.0)
    with caplog.at_level(logging.WARNING, "marketcast.ws"):
        await asyncio.wait_for(conn.close(4008, "slow consumer"), 30)
    assert protocol.transport.aborted
    assert ws.closed_with is None
    assert "close frame (4008) not taken (nothing taken for 0.3s), aborting TCP" in caplog.text


async def test_a_client_too_slow_to_reach_its_close_frame_is_aborted_after_the_patience(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn, protocol, _ = closing(1_000_000, 1, close_timeout=30.0, patience=0.5)
    with caplog.at_level(logging.WARNING, "marketcast.ws"):
        await asyncio.wait_for(conn.close(4008, "slow consumer"), 30)
    assert protocol.transport.aborted
    assert "still ahead of it after 0.5s), aborting TCP" in caplog.text


async def test_a_planned_close_keeps_the_plain_close_timeout() -> None:
    conn, protocol, ws = closing(1_500, 0, close_timeout=0.2, patience=60.0)
    await asyncio.wait_for(conn.close(1001, "bye", patient=False), 30)
    assert protocol.transport.aborted
    assert ws.closed_with is None
    assert protocol.close_timeout == 10.0


def test_progress_is_any_byte_taken_within_the_stall_window() -> None:
    progress = _Progress(1000, 0.0, stall=2.0, patience=10.0)
    assert progress.stuck(1000, 1.9) is None
    assert progress.stuck(999, 1.95) is None  # one byte taken: the window starts again
    assert progress.stuck(999, 3.9) is None
    assert progress.stuck(999, 3.95) == "nothing taken for 2.0s"


def test_progress_gives_up_at_the_patience_even_while_reading() -> None:
    progress = _Progress(10_000, 0.0, stall=2.0, patience=5.0)
    for second in range(1, 5):
        assert progress.stuck(10_000 - second, float(second)) is None
    assert progress.stuck(9_990, 5.0) == "10 KB still ahead of it after 5.0s"
