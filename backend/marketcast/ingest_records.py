"""``IngestRecords``: what the ingest path keeps per key, in one object per key.

Why one record rather than a dict per concern: every key of every upstream update (eleven per
kline once its resolutions are aggregated) needs its topic, its closed-bar floor, its
staleness clock and, for bars, its frame's head. Kept in four dicts, that was four lookups
per candle, two of them hashing the key in Python, each in a table of tens of thousands of
keys that no longer fits the CPU's caches; found once, the rest are attribute reads of one
small object.

Records are built on a key's first event or first ``topic`` question, and kept as the
stream manager kept its topic names: a few hundred bytes per key ever served, bounded by the
catalog. The closed-bar floor must outlive a key's stop and restart anyway (a feed's gap-fill
repeats what was published before), so nothing here is ever dropped.
"""

from __future__ import annotations

from collections.abc import Callable

from marketcast.channels.base import Family
from marketcast.market import StreamKey
from marketcast.staleness import LastData
from marketcast.types import Topic


class IngestRecord(LastData):
    """One key's ingest state; see the module docstring.

    It is its key's ``LastData`` too: the staleness tracker reads ``at`` from it while it
    watches the key (``StalenessTracker.watching``), and a candle writes ``at`` here, in the
    object it reads anyway. Written while the key is not watched, ``at`` is read by nobody."""

    __slots__ = ("head", "last_final", "topic")

    def __init__(self, topic: Topic, head: str) -> None:
        super().__init__()
        self.topic = topic
        #: The key's update frames' text up to the event (``Family.update_head``; for bars,
        #: ``channels.bars.bar_head``): the same for every update of the key. Empty for a
        #: family that builds its frames whole (``Family.update``).
        self.head = head
        #: The newest final update published: a closed bar's open time, a trade's id. A feed
        #: may repeat them (gap-fill after a reconnect, a second upstream owner taking
        #: over); clients must see each once, so anything at or before it is not published.
        self.last_final: int | None = None


class IngestRecords:
    """The records of the keys one stream manager ingests or names, built on first use."""

    def __init__(self, family_of: Callable[[StreamKey], Family]) -> None:
        #: A key's channel family (``Registry.of_key``): its topic and its update head.
        self._family_of = family_of
        #: Every record, by key: what the ingest loop looks up once per candle. Read directly
        #: for speed; only ``of`` adds to it (and to ``key_of_topic``).
        self.by_key: dict[StreamKey, IngestRecord] = {}
        #: And by topic, for the resync of a few named topics (``StreamManager.active_keys_of``).
        self.key_of_topic: dict[Topic, StreamKey] = {}

    def __len__(self) -> int:
        return len(self.by_key)

    def of(self, key: StreamKey) -> IngestRecord:
        """``key``'s record, built if it has none yet."""
        record = self.by_key.get(key)
        if record is None:
            family = self._family_of(key)
            topic = family.topic(key)
            record = self.by_key[key] = IngestRecord(topic, family.update_head(topic, key))
            self.key_of_topic[topic] = key
        return record
