"""``GcFreezer``: freezes at start-up, once per burst of new topics, never when disabled."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from marketcast.delivery.hub import Hub
from marketcast.gcpolicy import GcFreezer
from marketcast.wire import Frame


@pytest.fixture(autouse=True)
def unfreeze() -> Iterator[None]:
    yield
    gc.unfreeze()


class Sink:
    def deliver(self, frame: Frame) -> None:
        pass


def test_freeze_now_moves_objects_to_the_permanent_generation() -> None:
    freezer = GcFreezer(enabled=True)
    freezer.freeze_now()
    assert freezer.freezes == 1
    assert gc.get_freeze_count() > 0


def test_disabled_never_freezes() -> None:
    gc.unfreeze()
    freezer = GcFreezer(enabled=False)
    freezer.freeze_now()
    freezer.soon()
    assert freezer.freezes == 0
    assert gc.get_freeze_count() == 0


async def test_new_topics_freeze_once_after_they_settle() -> None:
    freezer = GcFreezer(enabled=True, settle=0.05)
    hub = Hub(on_new_topic=freezer.soon)
    hub.add("bars:a", Sink())
    hub.add("bars:b", Sink())
    hub.add("bars:a", Sink())  # not a new topic
    assert freezer.freezes == 0
    await asyncio.sleep(0.2)
    assert freezer.freezes == 1


async def test_cancel_drops_a_pending_freeze() -> None:
    freezer = GcFreezer(enabled=True, settle=0.05)
    freezer.soon()
    freezer.cancel()
    await asyncio.sleep(0.1)
    assert freezer.freezes == 0
