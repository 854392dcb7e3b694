"""What a channel family declares, and the registry everything else reads it from.

Why one declaration per family: a family (``bars``, ``quotes``, ``trades``, …) differs from the
others in a handful of rules — its params, its key, its update payload, whether it keeps
history, what a slow client may lose, when it is stale. Written as branches on the route name
in every layer, adding a family meant editing seventeen places. Declared here once, the
routers, subscriptions, the stream manager's dispatch, the cluster's key codec, staleness,
metrics, raw streams and the AsyncAPI document (and so the TypeScript and Python types) all
follow from the registry, and a new family is one module plus its feeds.

A family is a class with class attributes (the facts) and a few methods (the rules); the
registry is an immutable list of instances built by the app factory, so a test can serve a
family of its own (``create_app(channels=...)``) without touching this package.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

from pydantic import BaseModel

from marketcast.errors import ErrorCode, ProtocolError
from marketcast.market import RecentRecord, StreamKey, SymbolInfo
from marketcast.topics import build_topic
from marketcast.types import Topic
from marketcast.wire import Frame


class History(Enum):
    """What a family keeps for snapshots."""

    #: Nothing: a subscriber gets updates from now on.
    NONE = "none"
    #: A candle series in the candle store: ``snapshot`` and ``since`` (``bars``).
    SERIES = "series"
    #: The newest N events per key, in memory or Redis (``store.recent``): ``snapshot``.
    RECENT = "recent"
    #: The current state, served by the worker that runs the key and read at the instant of
    #: subscribing: every subscribe reply carries it (``orderbook``, ``book.served``).
    STATE = "state"


@dataclass(frozen=True)
class Models:
    """The pydantic models of a family's messages; the generated router imports them by name
    from the family's module, so they must be module-level classes there."""

    params: type[BaseModel]
    subscribe: type[BaseModel]
    subscribe_response: type[BaseModel]
    unsubscribe: type[BaseModel]
    unsubscribe_response: type[BaseModel]
    update: type[BaseModel]
    #: One element of the subscribe reply's snapshot (``Bar``); None without history.
    item: type[BaseModel] | None = None


@dataclass(frozen=True)
class Docs:
    """The family's words in the AsyncAPI document, the routers and the raw streams."""

    #: One sentence: the router module's docstring and the start of the channel description.
    description: str
    #: The channel's description in the AsyncAPI document (after ``description``).
    channel: str
    subscribe_summary: str
    subscribe_description: str
    #: What one subscribes to, plural: "candles", "trades".
    update_noun: str
    update_summary: str
    update_description: str
    #: What happens to this family's updates for a client that falls behind.
    slow_client: str
    #: The raw stream's summary of its updates (plain text).
    raw_summary: str
    #: One example envelope per message type of the family (``<route>.subscribe``, …).
    examples: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


class Family:
    """One channel family. Subclasses set the class attributes and override the rules."""

    #: The route: the prefix of every message type and of every topic.
    route: ClassVar[str]
    #: The key class of this family's streams; ``SymbolInfo.kinds`` lists the ones a feed serves.
    key_type: ClassVar[type[StreamKey]]
    models: ClassVar[Models]
    docs: ClassVar[Docs]
    history: ClassVar[History] = History.NONE
    #: The subscribe reply's field holding the snapshot (``bars``, ``trades``); None: none.
    snapshot_field: ClassVar[str | None] = None
    #: The largest ``snapshot`` and, for ``RECENT``, how many events are kept per key.
    snapshot_max: ClassVar[int] = 0
    #: The generated router's module; a family declared outside the package (a test's) sets it
    #: to where its router was rendered.
    router_module: ClassVar[str | None] = None
    #: The module the generated router imports the models from (this family's module).
    models_module: ClassVar[str | None] = None

    # -- keys and topics ------------------------------------------------------------------------

    @property
    def param_names(self) -> tuple[str, ...]:
        """The params in declaration order: the key codec's and the raw stream path's order."""
        return tuple(self.models.params.model_fields)

    def make_key(self, symbol: str, params: Mapping[str, Any]) -> StreamKey:
        """The key behind canonical ``params``. The default: a key of the symbol alone."""
        return self.key_type(symbol)

    def check_served(self, info: SymbolInfo, key: StreamKey) -> None:
        """A ProtocolError if the symbol's source does not serve ``key``'s params (a
        resolution it lacks). The default: a served symbol serves every key of the family."""

    def params_of(self, key: StreamKey) -> dict[str, Any]:
        """The params a key was made from (without the symbol)."""
        return {}

    def topic(self, key: StreamKey) -> Topic:
        return build_topic(self.route, {"symbol": key.symbol, **self.params_of(key)})

    def parse_params(self, values: Mapping[str, str]) -> dict[str, Any]:
        """Params from text (a raw stream's path, a key name in Redis), canonical; a
        ProtocolError for a value that is not one. The default takes them as they are."""
        return dict(values)

    # -- updates --------------------------------------------------------------------------------

    def update(self, topic: Topic, key: StreamKey, event: object) -> Frame:
        """The update frame of one upstream event; the frame's ``order`` and ``final`` carry
        the family's rule for a slow client (conflation) and for repeats."""
        raise NotImplementedError(f"the {self.route} family publishes no events")

    def update_head(self, topic: Topic, key: StreamKey) -> str:
        """The start of ``key``'s update frames' text that every update repeats (type,
        topic, params), for a caller that builds many and keeps it per key (the ingest path,
        ``ingest_records``); empty when the family builds each frame whole (``update``)."""
        return ""

    def record(self, event: object) -> dict[str, Any]:
        """An event as one element of a ``RECENT`` snapshot."""
        raise NotImplementedError(f"the {self.route} family keeps no recent events")

    def joined(self, kept: Sequence[RecentRecord]) -> Sequence[RecentRecord]:
        """Of the kept events (oldest first), the newest run a snapshot may return as one
        stretch, continuous with the stream. The default: all of them."""
        return kept

    def event_of(self, record: Mapping[str, Any]) -> object:
        """The event a kept element stands for (``record``'s inverse): a resync rebuilds
        its update from it."""
        raise NotImplementedError(f"the {self.route} family keeps no recent events")

    def state_ordered(self, key: StreamKey) -> bool:
        """A ``STATE`` family: whether ``key``'s updates are ordered by the state's ``seq``
        (final, each applying to the one before: a diff), so the snapshot hold drops those
        the state already holds; otherwise every update after the subscription is newer."""
        return False

    def stale_after(self, key: StreamKey) -> float | None:
        """Seconds of upstream silence after which the key is stale; None: the default cap."""
        return None


class Registry:
    """The families this app serves, by route and by key class. Immutable once built."""

    def __init__(self, families: Sequence[Family]) -> None:
        self._by_route: dict[str, Family] = {}
        self._by_key: dict[type[StreamKey], Family] = {}
        for family in families:
            if family.route in self._by_route:
                raise ValueError(f"two families declare the route {family.route!r}")
            if family.key_type in self._by_key:
                raise ValueError(
                    f"families {self._by_key[family.key_type].route!r} and {family.route!r} "
                    f"share the key class {family.key_type.__name__}"
                )
            self._by_route[family.route] = family
            self._by_key[family.key_type] = family

    def __iter__(self) -> Iterator[Family]:
        return iter(self._by_route.values())

    def __len__(self) -> int:
        return len(self._by_route)

    @property
    def routes(self) -> tuple[str, ...]:
        return tuple(self._by_route)

    def get(self, route: str) -> Family:
        family = self._by_route.get(route)
        if family is None:
            raise KeyError(f"no channel family {route!r}: expected one of {', '.join(self.routes)}")
        return family

    def find(self, route: str) -> Family | None:
        return self._by_route.get(route)

    def of_key(self, key: StreamKey) -> Family:
        return self._by_key[type(key)]

    def resolve(self, route: str, info: SymbolInfo, params: Mapping[str, Any]) -> StreamKey:
        """The key of a request for a served symbol, or a ProtocolError saying what is not
        served: a family the symbol's source lacks, or params the family refuses."""
        family = self.get(route)
        if family.key_type not in info.kinds:
            offered = sorted(f.route for f in self if f.key_type in info.kinds)
            raise ProtocolError(
                ErrorCode.UNSUPPORTED_CHANNEL,
                f"{route} are not served for {info.symbol} (source {info.source}): expected "
                f"one of {', '.join(offered)}",
            )
        key = family.make_key(info.symbol, params)
        family.check_served(info, key)
        return key

    # -- the cluster's key codec ----------------------------------------------------------------

    def key_id(self, key: StreamKey) -> str:
        """A key's name in Redis: ``bars|BTCUSDT|1``, ``quotes|EUR/USD``."""
        family = self.of_key(key)
        params = family.params_of(key)
        return "|".join([family.route, key.symbol, *(str(params[n]) for n in family.param_names)])

    def parse_key_id(self, text: str) -> StreamKey | None:
        """The key named ``text``, or None if it is not one this version understands."""
        route, _, rest = text.partition("|")
        family = self._by_route.get(route)
        if family is None or not rest:
            return None
        parts = rest.split("|")
        names = family.param_names
        if len(parts) != 1 + len(names):
            return None
        symbol, values = parts[0], dict(zip(names, parts[1:], strict=True))
        try:
            params = family.parse_params(values)
        except ProtocolError:
            return None
        return family.make_key(symbol, params)
