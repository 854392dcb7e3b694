"""Every documented example frame is one the server accepts or sends."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from marketcast import protocol
from marketcast.channels.listing import LIST_TYPE, SubscriptionsListPayload, listing_models
from marketcast.channels.registry import default_registry
from marketcast.ws.examples import examples

REGISTRY = default_registry()
EXAMPLES = examples(REGISTRY)


def _models() -> dict[str, type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {
        "ping": protocol.PingPayload,
        "pong": protocol.PongPayload,
        "error": protocol.ErrorPayload,
        "notice": protocol.NoticePayload,
        LIST_TYPE: SubscriptionsListPayload,
        f"{LIST_TYPE}.response": listing_models(REGISTRY).response,
    }
    for family in REGISTRY:
        models, route = family.models, family.route
        found[f"{route}.subscribe"] = models.subscribe
        found[f"{route}.subscribe.response"] = models.subscribe_response
        found[f"{route}.unsubscribe"] = models.unsubscribe
        found[f"{route}.unsubscribe.response"] = models.unsubscribe_response
        found[f"{route}.update"] = models.update
    return found


MODELS = _models()


def test_every_message_type_has_an_example() -> None:
    assert set(EXAMPLES) == set(MODELS)
    assert len(MODELS) == 6 + 5 * len(REGISTRY)


@pytest.mark.parametrize("message_type", sorted(MODELS))
def test_example_validates(message_type: str) -> None:
    example: dict[str, Any] = EXAMPLES[message_type]
    assert example["type"] == message_type
    MODELS[message_type].model_validate(example["payload"])
