"""Frames encoded by hand in ``wire`` must validate against the protocol models."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from marketcast.channels.bars import BarsUpdatePayload, bar_fields, bar_head, bar_update
from marketcast.channels.base import Family
from marketcast.channels.quotes import QuotesUpdatePayload, quote_update
from marketcast.channels.registry import default_registry
from marketcast.channels.trades import Trade, TradeKey, TradesUpdatePayload
from marketcast.ingest_records import IngestRecords
from marketcast.market import BarKey, Candle, Quote, StreamKey
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


_PRICES = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53)


@settings(max_examples=300, deadline=None)
@given(
    symbol=st.text(min_size=1, max_size=12),
    resolution=st.sampled_from(["1", "60", "D", "M"]),
    time=st.integers(0, 2**53),
    prices=st.lists(_PRICES, min_size=5, max_size=5),
    closed=st.booleans(),
)
def test_bar_frames_encode_what_the_payload_says(
    symbol: str, resolution: str, time: int, prices: list[float], closed: bool
) -> None:
    """The ingest records' heads (``ingest_records``) and ``bar_update`` give the same text: the
    envelope of the payload with its fields in order, whatever the symbol's characters (a
    symbol named "time" included) or the numbers."""
    key = BarKey(symbol, resolution)
    topic = REGISTRY.of_key(key).topic(key)
    candle = Candle(time, *prices, closed=closed)
    payload = {
        "topic": topic,
        "symbol": symbol,
        "resolution": resolution,
        "time": time,
        "open": prices[0],
        "high": prices[1],
        "low": prices[2],
        "close": prices[3],
        "volume": prices[4],
        "closed": closed,
    }
    records = IngestRecords(REGISTRY.of_key)
    record = records.of(key)
    first = record.head + bar_fields(candle)
    assert records.of(key).head + bar_fields(candle) == first  # the head kept, the same
    assert first == bar_update(topic, key, candle).text
    assert first == envelope("bars.update", payload)
    frame = bar_update(topic, key, candle)
    assert (frame.topic, frame.order, frame.final) == (topic, time, closed)
    stale = bar_update(topic, key, candle, stale=True)
    assert stale.text == envelope("bars.update", {**payload, "stale": True})
    assert (stale.order, stale.final) == (None, False)


def test_ingest_records_build_each_keys_record_once() -> None:
    """One record per key, its topic and frame head computed on first use only; a key of
    another family gets no head (its family builds whole frames)."""
    asked: list[StreamKey] = []

    def family_of(key: StreamKey) -> Family:
        asked.append(key)
        return REGISTRY.of_key(key)

    records = IngestRecords(family_of)
    key, trades = BarKey("BTCUSDT", "1"), TradeKey("BTCUSDT")
    record = records.of(key)
    assert records.of(BarKey("BTCUSDT", "1")) is record
    assert asked == [key]
    assert record.topic == 'bars:{"resolution":"1","symbol":"BTCUSDT"}'
    assert record.head == bar_head(record.topic, key)
    assert (record.last_final, records.of(trades).head) == (None, "")
    assert records.key_of_topic == {record.topic: key, records.of(trades).topic: trades}
    assert len(records) == 2


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
