"""The ``orderbook`` family: a symbol's order book, in one of two modes chosen per topic.

- ``levels`` (params ``{mode: "levels", depth}``): the best ``depth`` bids and asks, at most
  one update per topic every 100 ms and only when they changed; a slow client gets the newest
  (latest wins). For screens that draw a ladder.
- ``diff`` (params ``{mode: "diff"}``): the subscribe reply carries the whole book and its
  ``seq``; each update carries the changed levels (quantity 0: gone) with ``prev_seq`` and
  ``seq``, so a client that checks ``prev_seq`` against the ``seq`` it holds can prove it
  missed nothing. After an upstream resync the whole book comes again, flagged ``reset``.
  Updates are final, never conflated: a diff that finds the client's outbox full replaces
  the topic's queued diffs by the whole book at the newest ``seq``, flagged ``reset``
  (``book.served.ServedBooks.reset_frame``, ``delivery.outbox.Outbox.reset``).

The state is the current book (``History.STATE``): read at the instant of the subscription,
continuous with the stream through the connection's snapshot hold, ordered by ``seq``
(``book.served``). Prices and quantities are the upstream's decimals as JSON numbers: each the
shortest representation of the float parsed from the upstream's decimal string, so the same
decimal value, never computed (no sums, no scaling).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal

from pydantic import Field

from marketcast.channels.base import Docs, Family, History, Models
from marketcast.errors import ErrorCode, ProtocolError
from marketcast.market import StreamKey
from marketcast.protocol import ClientModel, Reply, ServerModel, SymbolField
from marketcast.topics import build_topic
from marketcast.types import Topic

ROUTE: Final = "orderbook"
#: The message type of every book update (``book.served`` builds them).
UPDATE_TYPE: Final = f"{ROUTE}.update"
#: The depths a levels topic may ask for, and the one it gets when it names none.
DEPTHS: Final = (5, 10, 20, 50)
DEFAULT_DEPTH: Final = 20

Mode = Literal["levels", "diff"]
#: ``[price, quantity]``; in a diff, quantity 0 removes the price.
Level = tuple[float, float]


@dataclass(frozen=True, slots=True)
class BookKey(StreamKey):
    """Identifies one served view of a symbol's book: its mode and (levels) its depth; a
    diff key's depth is 0."""

    mode: Mode
    depth: int


def book_source(symbol: str) -> BookKey:
    """The key a symbol's book is run upstream by, whatever views of it are served: its lease
    in a cluster, its feed's watch. The diff view's key, since that view is the whole book."""
    return BookKey(symbol, "diff", 0)


# ---- messages ----------------------------------------------------------------------------


class OrderbookParams(ClientModel):
    """Topic parameters of the ``orderbook`` route."""

    mode: Mode = Field(
        default="levels",
        description="`levels`: the best `depth` levels, at most every 100 ms, latest wins. "
        "`diff`: a full snapshot in the reply, then every change with `prev_seq` and `seq`.",
    )
    depth: Literal[5, 10, 20, 50] | None = Field(
        default=None,
        description=f"Levels per side in `levels` mode (default {DEFAULT_DEPTH}); not allowed "
        "in `diff` mode, which serves the whole book.",
    )


class OrderbookSubscribePayload(ClientModel):
    """Subscribe to a symbol's order book in one mode; the reply carries the book."""

    symbol: SymbolField
    params: OrderbookParams = Field(default_factory=OrderbookParams)


class OrderbookUnsubscribePayload(ClientModel):
    """Stop receiving a symbol's order book in one mode."""

    symbol: SymbolField
    params: OrderbookParams = Field(default_factory=OrderbookParams)


class BookSnapshot(ServerModel):
    """The book at ``seq``: every level (``diff``) or the best ``depth`` (``levels``), each
    side best first."""

    seq: int = Field(description="The upstream update id of the last change in this book.")
    time: int | None = Field(
        default=None, description="Upstream time of that change, ms UTC (absent: unknown)."
    )
    bids: list[Level] = Field(description="`[price, quantity]`, highest price first.")
    asks: list[Level] = Field(description="`[price, quantity]`, lowest price first.")


class OrderbookSubscribeResponsePayload(Reply):
    """Reply to ``orderbook.subscribe``; ``book`` is the book at the instant of subscribing
    (null only while the upstream book is not joined yet: it then comes as a ``reset``)."""

    book: BookSnapshot | None = None


class OrderbookUnsubscribeResponsePayload(Reply):
    """Reply to ``orderbook.unsubscribe``."""


class OrderbookUpdatePayload(ServerModel):
    """A change of the book: the best levels (``levels``) or the changed ones (``diff``)."""

    topic: str
    symbol: str
    mode: Mode
    seq: int = Field(description="The upstream update id of the last change included.")
    time: int | None = Field(
        default=None, description="Upstream time of that change, ms UTC (null: unknown)."
    )
    bids: list[Level]
    asks: list[Level]
    depth: int | None = Field(default=None, description="`levels` only: levels per side.")
    prev_seq: int | None = Field(
        default=None,
        description="`diff` only: the `seq` this diff applies to; null on a `reset`. A client "
        "holding another `seq` missed a diff and must resubscribe.",
    )
    reset: bool | None = Field(
        default=None,
        description="`diff` only, true: the whole book again after an upstream resync; "
        "replace the book held with it.",
    )


# ---- the declaration ---------------------------------------------------------------------

_TOPIC_LEVELS = 'orderbook:{"depth":5,"mode":"levels","symbol":"BTCUSDT"}'
_TOPIC_DIFF = 'orderbook:{"mode":"diff","symbol":"BTCUSDT"}'
_OK = {"status": "ok", "symbol": "BTCUSDT"}
_BIDS = [[91288.5, 0.412], [91288.0, 1.05]]
_ASKS = [[91289.0, 0.2], [91289.5, 2.5]]


class OrderbookFamily(Family):
    route: ClassVar[str] = ROUTE
    key_type: ClassVar[type[StreamKey]] = BookKey
    models: ClassVar[Models] = Models(
        params=OrderbookParams,
        subscribe=OrderbookSubscribePayload,
        subscribe_response=OrderbookSubscribeResponsePayload,
        unsubscribe=OrderbookUnsubscribePayload,
        unsubscribe_response=OrderbookUnsubscribeResponsePayload,
        update=OrderbookUpdatePayload,
        item=BookSnapshot,
    )
    history: ClassVar[History] = History.STATE
    snapshot_field: ClassVar[str | None] = "book"
    models_module: ClassVar[str | None] = __name__
    router_module: ClassVar[str | None] = "marketcast.ws.generated.orderbook"
    docs: ClassVar[Docs] = Docs(
        description="a symbol's order book: its best levels, or exact diffs.",
        channel="Order books per symbol, in two modes (`params.mode`): `levels`, the best "
        "`depth` (5, 10, 20 or 50) levels at most every 100 ms; `diff`, the whole book in the "
        "reply, then every change with `prev_seq` and `seq` and a `reset` after an upstream "
        "resync. Prices and quantities are the upstream's decimals, never computed.",
        subscribe_summary="Receive a symbol's order book, after the book as it is now.",
        subscribe_description="Subscribe to the topic of (symbol, mode, depth); the reply's "
        "``book`` is the book at that instant, continuous with the updates that follow.",
        update_noun="order book updates",
        update_summary="The book changed.",
        update_description="`levels`: the best levels, when they changed, at most every 100 "
        "ms. `diff`: the changed levels (quantity 0: removed) from `prev_seq` to `seq`, or "
        "the whole book flagged `reset`.",
        slow_client="`levels`: a client that falls behind gets the newest levels only. "
        "`diff`: never conflated; a diff that finds the outbox full replaces the topic's "
        "queued diffs by the whole book at the newest `seq`, flagged `reset`. Too far behind "
        "in time or bytes (kernel buffers included), the client is closed as a slow consumer "
        "(4008) and resubscribes for a fresh book.",
        raw_summary="orderbook.update for this symbol in this mode.",
        examples={
            "orderbook.subscribe": {
                "type": "orderbook.subscribe",
                "id": "o1",
                "payload": {"symbol": "BTCUSDT", "params": {"mode": "levels", "depth": 5}},
            },
            "orderbook.subscribe.response": {
                "type": "orderbook.subscribe.response",
                "id": "o1",
                "payload": {
                    **_OK,
                    "message": "subscribed",
                    "topic": _TOPIC_LEVELS,
                    "book": {"seq": 71042, "time": 1763683212345, "bids": _BIDS, "asks": _ASKS},
                },
            },
            "orderbook.unsubscribe": {
                "type": "orderbook.unsubscribe",
                "id": "o2",
                "payload": {"symbol": "BTCUSDT", "params": {"mode": "diff"}},
            },
            "orderbook.unsubscribe.response": {
                "type": "orderbook.unsubscribe.response",
                "id": "o2",
                "payload": {**_OK, "message": "unsubscribed", "topic": _TOPIC_DIFF},
            },
            "orderbook.update": {
                "type": "orderbook.update",
                "payload": {
                    "topic": _TOPIC_DIFF,
                    "symbol": "BTCUSDT",
                    "mode": "diff",
                    "seq": 71045,
                    "prev_seq": 71042,
                    "time": 1763683212445,
                    "bids": [[91288.5, 0.0], [91287.5, 0.31]],
                    "asks": [[91289.0, 0.25]],
                },
            },
        },
    )

    def make_key(self, symbol: str, params: Mapping[str, Any]) -> StreamKey:
        mode, depth = params.get("mode", "levels"), params.get("depth")
        if mode == "diff":
            if depth:
                raise ProtocolError(
                    ErrorCode.VALIDATION_ERROR,
                    f"depth {depth} applies to levels mode only: diff mode serves the whole "
                    "book (leave depth out)",
                )
            return BookKey(symbol, "diff", 0)
        return BookKey(symbol, "levels", DEFAULT_DEPTH if depth is None else int(depth))

    def params_of(self, key: StreamKey) -> dict[str, Any]:
        assert isinstance(key, BookKey)
        return {"mode": key.mode, "depth": key.depth if key.mode == "levels" else None}

    def topic(self, key: StreamKey) -> Topic:
        assert isinstance(key, BookKey)
        params: dict[str, Any] = {"symbol": key.symbol, "mode": key.mode}
        if key.mode == "levels":
            params["depth"] = key.depth
        return build_topic(self.route, params)

    def state_ordered(self, key: StreamKey) -> bool:
        assert isinstance(key, BookKey)
        return key.mode == "diff"

    def parse_params(self, values: Mapping[str, str]) -> dict[str, Any]:
        mode, depth = values["mode"], values["depth"]
        if mode == "diff" and depth in ("0", "", "None"):  # a raw path says 0; a key id None
            return {"mode": "diff", "depth": None}
        if mode == "levels" and depth in {str(d) for d in DEPTHS}:
            return {"mode": "levels", "depth": int(depth)}
        raise ProtocolError(
            ErrorCode.VALIDATION_ERROR,
            f"unsupported book view {mode[:10]!r}/{depth[:10]!r}: expected levels/5, levels/10, "
            "levels/20, levels/50 or diff/0",
        )
