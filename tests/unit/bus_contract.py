"""The behaviour every ``Bus`` must have, as a reusable test class.

Not collected by itself. An implementation's test module subclasses it and provides one
fixture, ``bus_factory``: an async callable returning a new, not yet started bus, that closes
every bus it made when the test ends. Publishing is checked as the stream manager uses it: a
frame published on a started bus reaches this worker's handler before ``publish`` returns
(the hub of the publishing worker never waits for a round trip), once, unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from marketcast.bus.base import Bus
from marketcast.wire import Frame

BusFactory = Callable[[], Awaitable[Bus]]

TOPIC = 'bars:{"resolution":"1","symbol":"BTCUSDT"}'


def frame(time: int, *, closed: bool = False, text: str | None = None) -> Frame:
    return Frame(text or f'{{"type":"bars.update","t":{time}}}', TOPIC, time, closed)


class BusContract:
    """Subclass with a ``bus_factory`` fixture to run the suite against an implementation."""

    async def test_publish_delivers_locally_once_in_order(self, bus_factory: BusFactory) -> None:
        bus = await bus_factory()
        received: list[Frame] = []
        await bus.start(received.append)
        sent = [frame(0), frame(0, closed=True), frame(60_000)]
        for item in sent:
            await bus.publish(item)
        assert received == sent

    async def test_frames_arrive_unchanged(self, bus_factory: BusFactory) -> None:
        bus = await bus_factory()
        received: list[Frame] = []
        await bus.start(received.append)
        quote = Frame('{"type":"quotes.update","payload":{"symbol":"EUR/USD","x":"é €"}}', "q:x")
        await bus.publish(quote)
        await bus.publish(frame(5, closed=True, text='{"a":"line\\nbreak"}'))
        assert received == [quote, frame(5, closed=True, text='{"a":"line\\nbreak"}')]

    async def test_publish_before_start_is_harmless(self, bus_factory: BusFactory) -> None:
        bus = await bus_factory()
        await bus.publish(frame(0))
        received: list[Frame] = []
        await bus.start(received.append)
        await bus.publish(frame(1))
        assert received == [frame(1)]

    async def test_nothing_is_delivered_after_close(self, bus_factory: BusFactory) -> None:
        bus = await bus_factory()
        received: list[Frame] = []
        await bus.start(received.append)
        await bus.close()
        await bus.publish(frame(0))
        assert received == []
