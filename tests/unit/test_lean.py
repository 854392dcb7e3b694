"""The lean stand-ins for uvicorn's per-connection objects (``delivery.lean``): they behave
like ``asyncio.Queue`` and ``asyncio.Event`` for every call made on them, allocate nothing
while idle, and replace uvicorn's own only on its ``websockets-sansio`` protocol."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from marketcast.delivery.lean import LeanEvent, LeanQueue, LeanSansIOProtocol, slim_protocol


async def test_queue_is_fifo_and_holds_no_list_while_empty() -> None:
    queue: LeanQueue[int] = LeanQueue()
    assert queue.empty()
    assert queue.qsize() == 0
    assert queue._items is None
    assert queue._getters is None
    for item in (1, 2, 3):
        queue.put_nowait(item)
    assert queue.qsize() == 3
    assert not queue.empty()
    assert [await queue.get(), queue.get_nowait(), await queue.get()] == [1, 2, 3]
    assert queue.empty()
    assert queue._items is None
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()


async def test_a_waiting_getter_is_woken_by_put_in_order() -> None:
    queue: LeanQueue[str] = LeanQueue()
    first = asyncio.create_task(queue.get())
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert queue._getters is not None
    assert len(queue._getters) == 2
    queue.put_nowait("a")
    queue.put_nowait("b")
    assert await first == "a"
    assert await second == "b"
    assert queue._getters is None
    assert queue.empty()


async def test_a_cancelled_getter_leaves_nothing_behind() -> None:
    queue: LeanQueue[str] = LeanQueue()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    getter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getter
    assert queue._getters is None
    queue.put_nowait("kept")
    assert await queue.get() == "kept"


async def test_a_getter_cancelled_after_its_wakeup_passes_it_on() -> None:
    """As ``asyncio.Queue``: the item stays queued, and the next getter is woken for it."""
    queue: LeanQueue[str] = LeanQueue()
    first = asyncio.create_task(queue.get())
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("x")  # wakes ``first``...
    first.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, 1) == "x"


async def test_event_behaves_like_asyncio_event_without_a_waiter_list_when_idle() -> None:
    event = LeanEvent(True)
    assert isinstance(event, asyncio.Event)
    assert event.is_set()
    assert await event.wait() is True
    assert event._waiting is None
    event.clear()
    assert not event.is_set()
    waiters = [asyncio.create_task(event.wait()) for _ in range(2)]
    await asyncio.sleep(0)
    assert event._waiting is not None
    assert len(event._waiting) == 2
    event.set()
    assert await asyncio.gather(*waiters) == [True, True]
    assert event._waiting is None
    assert "set" in repr(event)


async def test_a_cancelled_event_waiter_is_removed() -> None:
    event = LeanEvent()
    waiter = asyncio.create_task(event.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert event._waiting is None
    event.set()
    assert await event.wait() is True


def uvicorn_protocol(cls: type[WebSocketsSansIOProtocol], **options: Any) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    config = uvicorn.Config(app, ws="websockets-sansio", **options)
    config.load()
    return cls(config=config, server_state=ServerState(), app_state={})


async def test_slim_protocol_swaps_uvicorns_objects_keeping_what_was_queued() -> None:
    protocol = uvicorn_protocol(WebSocketsSansIOProtocol, ws_per_message_deflate=True)
    protocol.queue.put_nowait({"type": "websocket.connect"})
    protocol.queue.put_nowait({"type": "websocket.receive", "text": "early"})
    assert protocol.conn.available_extensions  # uvicorn's deflate factory, offered

    assert slim_protocol(protocol)
    assert isinstance(protocol.queue, LeanQueue)
    assert isinstance(protocol.writable, LeanEvent)
    assert protocol.writable.is_set()
    assert protocol.conn.available_extensions is None
    # uvicorn's own ``receive`` reads the new queue, in order.
    assert await protocol.receive() == {"type": "websocket.connect"}
    assert await protocol.receive() == {"type": "websocket.receive", "text": "early"}


def test_slim_protocol_leaves_anything_else_alone() -> None:
    class Other:
        queue: asyncio.Queue[Any] = asyncio.Queue()

    other = Other()
    assert not slim_protocol(other)
    assert not slim_protocol(None)
    assert type(other.queue) is asyncio.Queue


async def test_lean_protocol_keeps_its_instance_dict_under_the_shared_keys_limit() -> None:
    protocol = uvicorn_protocol(LeanSansIOProtocol)
    assert isinstance(protocol.queue, LeanQueue)
    assert isinstance(protocol.writable, LeanEvent)
    assert protocol.writable.is_set()
    # CPython shares the keys of instance dicts of up to 30 keys; the handshake adds three.
    assert len(vars(protocol)) + 3 <= 30, sorted(vars(protocol))
    # What uvicorn set in ``__init__`` is all there, slots or not.
    assert protocol.ping_interval == protocol.config.ws_ping_interval
    assert protocol.root_path == ""
    assert protocol.client is None
    assert slim_protocol(protocol)  # nothing left to swap, but it is uvicorn's protocol
    assert isinstance(protocol.queue, LeanQueue)
