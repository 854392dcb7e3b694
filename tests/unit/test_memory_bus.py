"""MemoryBus against the shared Bus contract (``bus_contract.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from marketcast.bus.base import Bus
from marketcast.bus.memory import MemoryBus
from tests.unit.bus_contract import BusContract, BusFactory


class TestMemoryBus(BusContract):
    @pytest.fixture
    async def bus_factory(self) -> AsyncIterator[BusFactory]:
        made: list[MemoryBus] = []

        async def make() -> Bus:
            made.append(MemoryBus())
            return made[-1]

        yield make
        for bus in made:
            await bus.close()
