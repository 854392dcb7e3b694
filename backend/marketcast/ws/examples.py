"""Example envelopes for the AsyncAPI document and docs/websocket.md, one per message type.

They are checked against the models in ``tests/unit/test_examples.py`` so the documentation
never shows a frame the server would refuse or never send.
"""

from __future__ import annotations

from typing import Any

_TOPIC = 'bars:{"resolution":"1","symbol":"BTCUSDT"}'
_QUOTES_TOPIC = 'quotes:{"symbol":"BTCUSDT"}'
_BAR = {
    "time": 1763683200000,
    "open": 91250.5,
    "high": 91302.0,
    "low": 91210.25,
    "close": 91288.75,
    "volume": 12.4821,
    "closed": True,
}
_BARS = {"symbol": "BTCUSDT", "params": {"resolution": "1"}}
_QUOTES = {"symbol": "BTCUSDT", "params": {}}
_OK = {"status": "ok", "symbol": "BTCUSDT"}

EXAMPLES: dict[str, dict[str, Any]] = {
    "bars.subscribe": {"type": "bars.subscribe", "id": 1, "payload": {**_BARS, "snapshot": 2}},
    "bars.subscribe.response": {
        "type": "bars.subscribe.response",
        "id": 1,
        "payload": {
            **_OK,
            "message": "subscribed",
            "topic": _TOPIC,
            "bars": [
                {**_BAR, "time": 1763683140000},
                {**_BAR, "closed": False},
            ],
        },
    },
    "bars.unsubscribe": {"type": "bars.unsubscribe", "id": 2, "payload": _BARS},
    "bars.unsubscribe.response": {
        "type": "bars.unsubscribe.response",
        "id": 2,
        "payload": {**_OK, "message": "unsubscribed", "topic": _TOPIC},
    },
    "bars.update": {
        "type": "bars.update",
        "payload": {"topic": _TOPIC, "symbol": "BTCUSDT", "resolution": "1", **_BAR},
    },
    "quotes.subscribe": {"type": "quotes.subscribe", "id": "q1", "payload": _QUOTES},
    "quotes.subscribe.response": {
        "type": "quotes.subscribe.response",
        "id": "q1",
        "payload": {**_OK, "message": "subscribed", "topic": _QUOTES_TOPIC},
    },
    "quotes.unsubscribe": {"type": "quotes.unsubscribe", "id": "q2", "payload": _QUOTES},
    "quotes.unsubscribe.response": {
        "type": "quotes.unsubscribe.response",
        "id": "q2",
        "payload": {**_OK, "message": "unsubscribed", "topic": _QUOTES_TOPIC},
    },
    "quotes.update": {
        "type": "quotes.update",
        "payload": {
            "topic": _QUOTES_TOPIC,
            "symbol": "BTCUSDT",
            "time": 1763683212345,
            "bid": 91288.5,
            "ask": 91289.0,
            "last": 91288.75,
            "volume": 1532.77,
            "change": 412.25,
            "change_percent": 0.45,
        },
    },
    "ping": {"type": "ping", "id": 7, "payload": {}},
    "pong": {"type": "pong", "id": 7, "payload": {"time": 1763683212345}},
    "notice": {
        "type": "notice",
        "payload": {
            "code": "shutdown",
            "message": "server shutting down: reconnect (with `since` to resume bars)",
            "close_code": 1001,
            "close_in_ms": 5000,
        },
    },
    "error": {
        "type": "error",
        "id": 3,
        "payload": {
            "code": "unknown_symbol",
            "message": "unknown symbol 'DOGEUSDT': this server serves AAPL, BTCUSDT, ETHUSDT, "
            "EUR/USD",
            "request_type": "bars.subscribe",
        },
    },
}


def example_for(type_: str) -> dict[str, Any] | None:
    return EXAMPLES.get(type_)
