"""Example envelopes for the AsyncAPI document and docs/websocket.md, one per message type.

They are checked against the models in ``tests/unit/test_examples.py`` so the documentation
never shows a frame the server would refuse or never send.
"""

from __future__ import annotations

from typing import Any

from marketcast.channels.base import Registry
from marketcast.channels.listing import list_examples


def examples(channels: Registry) -> dict[str, dict[str, Any]]:
    """Every message's example envelope: each family's own (its declaration), then the
    system messages', whose error example refuses a subscribe of the first family."""
    found: dict[str, dict[str, Any]] = {}
    for family in channels:
        found.update({type_: dict(example) for type_, example in family.docs.examples.items()})
    found.update(list_examples(channels))
    first = next(iter(channels)).route
    found.update(_system(f"{first}.subscribe"))
    return found


def _system(refused: str) -> dict[str, dict[str, Any]]:
    return {
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
                "request_type": refused,
            },
        },
    }
