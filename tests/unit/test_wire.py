"""Frames encoded by hand in ``wire`` must validate against the protocol models."""

from __future__ import annotations

import orjson

from marketcast.channels.bars import BarsUpdatePayload, bar_update
from marketcast.channels.quotes import QuotesUpdatePayload, quote_update
from marketcast.channels.registry import default_registry
from marketcast.channels.trades import Trade, TradeKey, TradesUpdatePayload
from marketcast.market import BarKey, Candle, Quote
from marketcast.wire import envelope

REGISTRY = default_registry()


def test_bar_update_matches_model_and_carries_metadata() -> None:
    key = BarKey("BTCUSDT", "1")
    candle = Candle(60_000, 1.5, 2.0, 1.0, 1.75, 3.25, closed=True)
    frame = bar_update(REGISTRY.of_key(key).topic(key), key, candle)
    message = orjson.loads(frame.text)
    assert message["type"] == "bars.update"
    payload = BarsUpdatePayload.model_validate(message["payload"])
    assert payload.topic == 'bars:{"resolution":"1","symbol":"BTCUSDT"}'
    assert (payload.time, payload.close, payload.closed) == (60_000, 1.75, True)
    assert (frame.topic, frame.order, frame.final) == (payload.topic, 60_000, True)
    assert not frame.conflatable
    # The envelope of the payload, as every other frame's.
    assert frame.text == envelope("bars.update", message["payload"])


def test_quote_update_omits_unknown_optionals() -> None:
    frame = quote_update('quotes:{"symbol":"EUR/USD"}', "EUR/USD", Quote(5, 1.1, 1.2, 1.15))
    message = orjson.loads(frame.text)
    assert set(message["payload"]) == {"topic", "symbol", "time", "bid", "ask", "last"}
    QuotesUpdatePayload.model_validate(message["payload"])
    assert frame.conflatable


def test_trade_update_matches_model_and_is_never_conflated() -> None:
    key = TradeKey("BTCUSDT")
    family = REGISTRY.of_key(key)
    trade = Trade(41, 1_700_000_000_123, 91288.75, 0.0132, "sell")
    frame = family.update(family.topic(key), key, trade)
    message = orjson.loads(frame.text)
    assert message["type"] == "trades.update"
    payload = TradesUpdatePayload.model_validate(message["payload"])
    assert payload.topic == 'trades:{"symbol":"BTCUSDT"}'
    assert (payload.id, payload.price, payload.quantity, payload.side) == (
        41,
        91288.75,
        0.0132,
        "sell",
    )
    assert (frame.order, frame.final, frame.conflatable) == (41, True, False)
    assert family.record(trade) == {
        k: v for k, v in message["payload"].items() if k not in ("topic", "symbol")
    }


def test_envelope_echoes_id_only_when_given() -> None:
    assert orjson.loads(envelope("pong", {"time": 1})) == {"type": "pong", "payload": {"time": 1}}
    assert orjson.loads(envelope("pong", {"time": 1}, "a"))["id"] == "a"
    assert orjson.loads(envelope("pong", {"time": 1}, 0))["id"] == 0
