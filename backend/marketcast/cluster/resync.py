"""``StoreResync``: what this worker's subscribers may have missed, read from the store.

Used by ``RedisBus`` after every (re)subscribe and on every resync request. For each key of a
family with history that has subscribers here, it reads what is stored at or after the topic's
guard floor (the oldest bar time, or trade id, this worker has not delivered as final) and
returns it as update frames; the bus delivers them through the same guard, so nothing is
delivered twice. Bars come from the candle store, trades from the kept newest events.

Topics with no floor yet — subscribed here, but no update of theirs ever reached this worker —
are skipped: the subscriber's snapshot is all it has, and without a floor there is no telling
which stored bars it already holds. Quotes are not resynced: each quote replaces the last.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from marketcast.channels.bars import bar_update
from marketcast.channels.base import History
from marketcast.delivery.hub import Hub
from marketcast.market import BarKey
from marketcast.store.base import CandleStore
from marketcast.streams import StreamManager
from marketcast.types import Millis, Topic
from marketcast.wire import Frame


class StoreResync:
    """A ``bus.redis.ResyncSource`` over this worker's streams, hub and the shared store."""

    def __init__(self, streams: StreamManager, hub: Hub, store: CandleStore, *, limit: int):
        self._streams = streams
        self._hub = hub
        self._store = store
        #: Bars read per topic at most: the store's capacity, i.e. everything it has.
        self._limit = limit

    async def __call__(
        self, topics: Collection[Topic] | None, floor: Callable[[Topic], Millis | None]
    ) -> list[Frame]:
        frames: list[Frame] = []
        streams = self._streams
        keys = streams.active_keys() if topics is None else streams.active_keys_of(topics)
        for key in keys:
            family = streams.channels.of_key(key)
            if family.history in (History.NONE, History.STATE):
                continue  # nothing stored to replay: a state's subscribers resubscribe
            topic = streams.topic(key)
            start = floor(topic)
            if start is None or self._hub.subscriber_count(topic) == 0:
                continue
            if isinstance(key, BarKey):
                for candle in await self._store.range(key, start, None, self._limit):
                    frames.append(bar_update(topic, key, candle))
                continue
            for record in await self._streams.recent(key, family.snapshot_max):
                if record.order >= start:
                    frames.append(family.update(topic, key, family.event_of(record.value)))
        return frames
