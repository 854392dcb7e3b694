"""``Connection``'s lifecycle state (``ConnectionState``): which events move it where, and what
each state lets ``deliver`` do.

Same fakes as ``test_lazy_writer`` (a uvicorn protocol whose transport records writes); the
event loop is advanced with ``sleep(0)``, never a clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import get_args

import pytest

from marketcast.delivery.connection import Connection
from marketcast.delivery.outbox import Outbox
from marketcast.delivery.states import TRANSITIONS, ConnectionState, Event
from marketcast.wire import Frame
from tests.unit.test_lazy_writer import (
    FakeProtocol,
    FakeWebSocket,
    after_the_delay,
    connection,
    delayed_connection,
    settle,
    written,
)

QUIET = ConnectionState.QUIET
WRITING = ConnectionState.WRITING
SEALED = ConnectionState.SEALED
CLOSING = ConnectionState.CLOSING
STOPPED = ConnectionState.STOPPED
CLOSED = ConnectionState.CLOSED
EVENTS: tuple[Event, ...] = get_args(Event)


def wire(*texts: str) -> bytes:
    return b"".join(Frame(text).wire() for text in texts)


def fail_writes(conn: Connection) -> None:
    """Make the next write to the transport fail, as a socket that went away would."""

    def boom(data: bytes) -> None:
        raise ConnectionResetError("gone")

    assert conn._direct is not None
    conn._direct.write = boom  # type: ignore[assignment]


# -- the table ------------------------------------------------------------------------------


def test_every_state_has_a_row_and_every_event_leads_to_a_state() -> None:
    assert set(TRANSITIONS) == set(ConnectionState)
    for row in TRANSITIONS.values():
        assert set(row) <= set(EVENTS)
        assert set(row.values()) <= set(ConnectionState)


def test_only_quiet_starts_a_writer_and_only_writing_goes_back_to_quiet() -> None:
    assert [s for s, row in TRANSITIONS.items() if "queue" in row] == [QUIET]
    assert [s for s, row in TRANSITIONS.items() if QUIET in row.values()] == [WRITING]


def test_every_state_can_be_closed_and_stopped_and_stopping_ends_writing() -> None:
    for state, row in TRANSITIONS.items():
        assert row["stop"] in (STOPPED, CLOSED), state
        assert row["seal"] in (SEALED, CLOSING, CLOSED), state
        # "close" is absent only where a close was already decided (terminate runs once).
        assert row.get("close", CLOSING) in (CLOSING, CLOSED), state


def test_closed_is_final_and_stopped_leads_only_to_closed() -> None:
    assert set(TRANSITIONS[CLOSED].values()) == {CLOSED}
    assert set(TRANSITIONS[CLOSED]) == set(EVENTS) - {"queue"}
    assert set(TRANSITIONS[STOPPED].values()) == {STOPPED, CLOSED}


def test_an_event_that_cannot_happen_raises() -> None:
    conn, _, _ = connection()
    with pytest.raises(RuntimeError, match="'drain' while QUIET"):
        conn._move("drain")
    assert conn.state is QUIET


# -- quiet and writing ----------------------------------------------------------------------


async def test_quiet_while_frames_go_straight_out() -> None:
    conn, protocol, _ = connection()
    assert conn.state is QUIET
    conn.deliver(Frame("a"))
    assert conn.state is QUIET
    assert conn._writer is None
    assert written(protocol) == wire("a")
    assert not conn.stopped


async def test_queueing_a_frame_moves_to_writing_and_draining_back_to_quiet() -> None:
    conn, protocol, _ = connection()
    protocol.writable.clear()
    conn.deliver(Frame("a"))
    assert conn.state is WRITING
    assert conn._writer is not None
    conn.deliver(Frame("b"))  # behind "a": still writing, one writer
    assert conn.state is WRITING
    assert len(conn.outbox) == 2
    protocol.writable.set()
    await settle()
    assert conn.state is QUIET
    assert conn._writer is None
    conn.deliver(Frame("c"))  # direct again
    assert conn.state is QUIET
    assert protocol.transport.writes == [wire("a", "b"), wire("c")]


async def test_write_delay_collects_while_quiet_and_a_full_transport_moves_to_writing() -> None:
    conn, protocol, _ = delayed_connection()
    conn.deliver(Frame("a"))
    assert conn.state is QUIET  # collected: the timer, not a writer, owns it
    assert conn._flush_timer is not None
    await after_the_delay()
    assert conn.state is QUIET
    conn.deliver(Frame("b"))
    protocol.writable.clear()
    await after_the_delay()
    assert conn.state is WRITING
    protocol.writable.set()
    await settle()
    assert conn.state is QUIET
    assert written(protocol) == wire("a", "b")


# -- sealed ---------------------------------------------------------------------------------


async def test_sealed_drops_updates_while_the_queue_flushes_then_closes() -> None:
    conn, protocol, ws = connection()
    protocol.writable.clear()
    conn.deliver(Frame("a"))
    closing = asyncio.create_task(conn.close_after_flush(1001, "bye", deadline=60.0))
    await settle()
    assert conn.state is SEALED
    assert conn.close_code is None
    conn.deliver(Frame("late"))  # dropped: not queued, never written
    assert len(conn.outbox) == 1
    protocol.writable.set()
    assert await closing
    assert written(protocol) == wire("a")
    assert ws.closed_with == (1001, "bye")
    assert conn.state is CLOSED
    assert conn.close_code == 1001
    assert conn.stopped


async def test_sealing_a_quiet_connection_closes_without_a_writer() -> None:
    conn, _, ws = connection()
    assert await conn.close_after_flush(1001, "bye", deadline=60.0)
    assert conn.state is CLOSED
    assert ws.closed_with == (1001, "bye")


async def test_a_writer_that_fails_while_sealed_leaves_updates_dropped() -> None:
    conn, protocol, _ = connection()
    protocol.writable.clear()
    conn.deliver(Frame("a"))
    fail_writes(conn)
    closing = asyncio.create_task(conn.close_after_flush(1001, "bye", deadline=60.0))
    await settle()
    assert conn.state is SEALED
    protocol.writable.set()
    await settle()
    assert closing.done()
    assert conn.state is CLOSED
    conn.deliver(Frame("late"))
    assert len(conn.outbox) == 0


# -- closing (terminate) --------------------------------------------------------------------


async def quiet() -> tuple[Connection, FakeProtocol, FakeWebSocket]:
    return connection()


async def writing() -> tuple[Connection, FakeProtocol, FakeWebSocket]:
    conn, protocol, ws = connection()
    protocol.writable.clear()
    conn.deliver(Frame("queued"))
    return conn, protocol, ws


#: Planned closes the ``sealed`` setup leaves running (kept referenced until they end).
_closers: set[asyncio.Task[bool]] = set()


async def sealed() -> tuple[Connection, FakeProtocol, FakeWebSocket]:
    conn, protocol, ws = await writing()
    closer = asyncio.create_task(conn.close_after_flush(1001, "bye", deadline=60.0))
    _closers.add(closer)
    closer.add_done_callback(_closers.discard)
    await settle()
    return conn, protocol, ws


async def stopped() -> tuple[Connection, FakeProtocol, FakeWebSocket]:
    conn, protocol, ws = await writing()
    await conn.stop_writer()
    return conn, protocol, ws


Setup = Callable[[], Awaitable[tuple[Connection, FakeProtocol, FakeWebSocket]]]


@pytest.mark.parametrize(
    ("setup", "before", "right_after"),
    [
        (quiet, QUIET, CLOSING),
        (writing, WRITING, CLOSING),
        (sealed, SEALED, CLOSING),
        (stopped, STOPPED, CLOSED),
    ],
)
async def test_terminate_from_any_state_ends_closed_and_drops_updates(
    setup: Setup, before: ConnectionState, right_after: ConnectionState
) -> None:
    conn, protocol, ws = await setup()
    assert conn.state is before
    conn.terminate(4008, "slow consumer")
    assert conn.state is right_after
    assert conn.close_code == 4008
    assert len(conn.outbox) == 0
    conn.deliver(Frame("late"))
    assert len(conn.outbox) == 0
    await settle()
    assert conn.state is CLOSED
    assert conn._writer is None
    assert ws.closed_with == (4008, "slow consumer")
    protocol.writable.set()
    await settle()
    assert b"late" not in written(protocol)


async def test_terminate_happens_once() -> None:
    conn, _, ws = connection()
    conn.terminate(4008, "first")
    conn.terminate(1001, "second")
    await settle()
    assert conn.close_code == 4008
    assert ws.closed_with == (4008, "first")
    assert conn.state is CLOSED


async def test_closing_is_not_stopped_until_the_writer_is() -> None:
    """The sweep forgets a connection once ``stopped``: not before the close task ran."""
    conn, _, _ = await writing()
    conn.terminate(4008, "slow consumer")
    assert conn.state is CLOSING
    assert not conn.stopped
    await settle()
    assert conn.stopped


# -- stopped and closed ---------------------------------------------------------------------


async def test_stopped_queues_updates_without_writing_them_until_they_overflow() -> None:
    protocol = FakeProtocol()
    ws = FakeWebSocket(protocol)
    conn = Connection(ws, Outbox(2, 1_000_000))  # type: ignore[arg-type]
    await conn.stop_writer()
    assert conn.state is STOPPED
    assert conn.stopped
    conn.deliver(Frame("a"))
    conn.deliver(Frame("b"))
    assert conn.state is STOPPED
    assert len(conn.outbox) == 2
    assert conn._writer is None
    conn.deliver(Frame("c"))  # over the limit: a slow-consumer close
    assert conn.close_code == 4008
    assert conn.state is CLOSED
    await settle()
    assert protocol.transport.writes == []
    assert ws.closed_with is not None


async def test_a_writer_that_fails_stops_the_connection() -> None:
    conn, protocol, _ = await writing()
    fail_writes(conn)
    protocol.writable.set()
    await settle()
    assert conn.state is STOPPED
    assert conn._writer is None
    conn.deliver(Frame("after"))  # queued for the close, never written
    assert len(conn.outbox) == 1
    assert conn.state is STOPPED


async def test_sealing_a_stopped_connection_closes_it() -> None:
    conn, _, ws = await stopped()
    assert await conn.close_after_flush(1001, "bye", deadline=60.0)
    assert conn.state is CLOSED
    assert ws.closed_with == (1001, "bye")


async def test_closed_is_final() -> None:
    conn, protocol, ws = connection()
    await conn.close(1001, "bye")
    assert conn.state is CLOSED
    protocol.writable.clear()
    conn.deliver(Frame("a"))
    conn.terminate(4008, "again")
    await conn.stop_writer()
    assert await conn.close_after_flush(1001, "again", deadline=1.0)
    conn.deliver(Frame("b"))
    protocol.writable.set()
    await settle()
    assert conn.state is CLOSED
    assert conn.close_code == 1001
    assert ws.closed_with == (1001, "bye")
    assert protocol.transport.writes == []
    assert conn._writer is None
