"""The test client itself: a reader task cancelled just as a frame arrives must stop.

Why: on Python 3.11 ``asyncio.wait_for`` returns a result that is ready when the cancellation
lands instead of raising, so a test that cancels its reader tasks (``drain`` in
test_upstreams_server.py) could wait forever for one that went on reading a busy topic. That
was the hang of ``test_twelvedata_budget_holds_for_any_number_of_subscribers`` under load."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import orjson

from tests.integration.harness import Client


class _OneFrame:
    """Stands in for a WebSocket connection whose next frame the test releases."""

    def __init__(self) -> None:
        self.frame: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def recv(self) -> str:
        return await self.frame


async def test_a_reader_cancelled_as_its_frame_arrives_is_cancelled() -> None:
    connection = _OneFrame()
    reader = Client(cast(Any, connection))
    task = asyncio.create_task(reader.recv(within=20))
    await asyncio.sleep(0)  # the reader waits for its frame
    connection.frame.set_result(
        orjson.dumps({"type": "pong", "id": 1, "payload": {"time": 1}}).decode()
    )
    task.cancel()  # in the same loop iteration as the frame's arrival
    (outcome,) = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(outcome, asyncio.CancelledError), outcome
