"""Frames encoded by hand in ``wire`` must validate against the protocol models."""

from __future__ import annotations

import orjson

from marketcast.market import BarKey, Candle, Quote
from marketcast.protocol import BarsUpdatePayload, QuotesUpdatePayload
from marketcast.streams import topic_of
from marketcast.wire import bar_update, envelope, quote_update


def test_bar_update_matches_model_and_carries_metadata() -> None:
    key = BarKey("BTCUSDT", "1")
    candle = Candle(60_000, 1.5, 2.0, 1.0, 1.75, 3.25, closed=True)
    frame = bar_update(topic_of(key), key, candle)
    message = orjson.loads(frame.text)
    assert message["type"] == "bars.update"
    payload = BarsUpdatePayload.model_validate(message["payload"])
    assert payload.topic == 'bars:{"resolution":"1","symbol":"BTCUSDT"}'
    assert (payload.time, payload.close, payload.closed) == (60_000, 1.75, True)
    assert (frame.topic, frame.bar_time, frame.closed) == (payload.topic, 60_000, True)
    assert not frame.conflatable


def test_quote_update_omits_unknown_optionals() -> None:
    frame = quote_update('quotes:{"symbol":"EUR/USD"}', "EUR/USD", Quote(5, 1.1, 1.2, 1.15))
    message = orjson.loads(frame.text)
    assert set(message["payload"]) == {"topic", "symbol", "time", "bid", "ask", "last"}
    QuotesUpdatePayload.model_validate(message["payload"])
    assert frame.conflatable


def test_envelope_echoes_id_only_when_given() -> None:
    assert orjson.loads(envelope("pong", {"time": 1})) == {"type": "pong", "payload": {"time": 1}}
    assert orjson.loads(envelope("pong", {"time": 1}, "a"))["id"] == "a"
    assert orjson.loads(envelope("pong", {"time": 1}, 0))["id"] == 0
