"""``subscriptions.list``: the messages that tell a connection what it is subscribed to.

Why the entry models are built from the registry rather than written out: an entry carries its
family's params, typed by that family's own params model, so a client gets a union it can
switch on by ``route`` (TypeScript narrows ``params`` to ``{resolution}`` for bars). Written by
hand, every new family would need an edit here; built here, a declared family is listed, typed
and documented with no other change (``tests/integration/test_channel_declaration.py``).

Why the names are derived from the route (``BarsListedSubscription``): the AsyncAPI document
and the types generated from it are a public contract, so each name must stay the same when
another family is added.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, create_model

from marketcast.channels.base import Family, Registry
from marketcast.market import StreamKey
from marketcast.protocol import ClientModel, ServerModel
from marketcast.types import Topic

#: The router's prefix and the AsyncAPI channel of the listing.
LIST_CHANNEL = "subscriptions"
LIST_TYPE = f"{LIST_CHANNEL}.list"


class SubscriptionsListPayload(ClientModel):
    """List this connection's subscriptions (no fields)."""


@dataclass(frozen=True, slots=True)
class ListingModels:
    """The reply model and, per route, the model of one entry."""

    response: type[BaseModel]
    entries: Mapping[str, type[BaseModel]]


def listing_models(channels: Registry) -> ListingModels:
    """``SubscriptionsListResponsePayload`` for ``channels``: one entry model per family, in a
    union discriminated by ``route`` (a bare model when there is one family)."""
    entries = {family.route: _entry_model(family) for family in channels}
    models = tuple(entries.values())
    item: Any = models[0]
    if len(models) > 1:
        item = Annotated[Union[models], Field(discriminator="route")]  # noqa: UP007
    response = create_model(
        "SubscriptionsListResponsePayload",
        __base__=ServerModel,
        __doc__="Reply to ``subscriptions.list``: every topic this connection receives, in the "
        "order it subscribed, each with its route, symbol and params.",
        subscriptions=(list[item], ...),
    )
    return ListingModels(response, entries)


def _entry_model(family: Family) -> type[BaseModel]:
    """``{route, topic, symbol, params}`` with the family's own params model."""
    words = family.route.replace("_", " ").title().replace(" ", "")
    route: Any = Literal[family.route]
    model: type[BaseModel] = create_model(
        f"{words}ListedSubscription",
        __base__=ServerModel,
        __doc__=f"One ``{family.route}`` subscription of this connection.",
        route=(route, ...),
        topic=(str, ...),
        symbol=(str, ...),
        params=(family.models.params, ...),
    )
    return model


def list_reply(
    models: ListingModels, channels: Registry, held: Iterable[tuple[Topic, StreamKey]]
) -> BaseModel:
    """The reply for the (topic, key) pairs a connection holds, in the order given."""
    entries = []
    for topic, key in held:
        family = channels.of_key(key)
        entries.append(
            models.entries[family.route](
                route=family.route,
                topic=topic,
                symbol=key.symbol,
                params=family.params_of(key),
            )
        )
    return models.response(subscriptions=entries)


def list_examples(channels: Registry) -> dict[str, dict[str, Any]]:
    """The request and a reply listing one subscription of each family (its subscribe
    example's symbol and params), for the AsyncAPI document."""
    listed = []
    for family in channels:
        request = family.docs.examples.get(f"{family.route}.subscribe", {}).get("payload", {})
        symbol = request.get("symbol", "BTCUSDT")
        params = dict(request.get("params", {}))
        key = family.make_key(symbol, params)
        listed.append(
            {
                "route": family.route,
                "topic": family.topic(key),
                "symbol": symbol,
                "params": family.params_of(key),
            }
        )
    return {
        LIST_TYPE: {"type": LIST_TYPE, "id": 11, "payload": {}},
        f"{LIST_TYPE}.response": {
            "type": f"{LIST_TYPE}.response",
            "id": 11,
            "payload": {"subscriptions": listed},
        },
    }
