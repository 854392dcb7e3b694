"""Every documented example frame is one the server accepts or sends."""

from __future__ import annotations

import pytest

from marketcast import protocol
from marketcast.ws.examples import EXAMPLES

MODELS = {
    "bars.subscribe": protocol.BarsSubscribePayload,
    "bars.subscribe.response": protocol.BarsSubscribeResponsePayload,
    "bars.unsubscribe": protocol.BarsUnsubscribePayload,
    "bars.unsubscribe.response": protocol.BarsUnsubscribeResponsePayload,
    "bars.update": protocol.BarsUpdatePayload,
    "quotes.subscribe": protocol.QuotesSubscribePayload,
    "quotes.subscribe.response": protocol.QuotesSubscribeResponsePayload,
    "quotes.unsubscribe": protocol.QuotesUnsubscribePayload,
    "quotes.unsubscribe.response": protocol.QuotesUnsubscribeResponsePayload,
    "quotes.update": protocol.QuotesUpdatePayload,
    "ping": protocol.PingPayload,
    "pong": protocol.PongPayload,
    "error": protocol.ErrorPayload,
    "notice": protocol.NoticePayload,
}


def test_every_message_type_has_an_example() -> None:
    assert set(EXAMPLES) == set(MODELS)


@pytest.mark.parametrize("message_type", sorted(MODELS))
def test_example_validates(message_type: str) -> None:
    example = EXAMPLES[message_type]
    assert example["type"] == message_type
    MODELS[message_type].model_validate(example["payload"])
