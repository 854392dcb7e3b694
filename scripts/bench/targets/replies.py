"""The subscribe handling shared by the hand-written baselines (not by fastws, which routes
with its own operation router, nor marketcast).

A baseline answers ``bars.subscribe`` the way marketcast does — a ``bars.subscribe.response``
echoing the request id — so one client speaks to every server. Anything else gets an
``error`` frame; the baselines exist to fan out, not to validate.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

import orjson


def subscribe_reply(message: str | bytes, topics: Container[str]) -> tuple[str, str | None]:
    """(reply text, topic to subscribe or None) for one client frame."""
    try:
        request = orjson.loads(message)
        request_id = request.get("id")
        sym = request["payload"]["symbol"]
        resolution = request["payload"]["params"]["resolution"]
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
        return _envelope("error", {"code": "invalid_message", "message": "bad request"}), None
    topic = 'bars:{"resolution":"' + str(resolution) + '","symbol":"' + str(sym) + '"}'
    if request.get("type") != "bars.subscribe" or topic not in topics:
        return _envelope("error", {"code": "unknown", "message": "unknown request"}), None
    payload = {"status": "ok", "symbol": sym, "message": "subscribed", "topic": topic}
    return _envelope("bars.subscribe.response", payload, request_id), topic


def _envelope(type_: str, payload: dict[str, Any], request_id: Any = None) -> str:
    message: dict[str, Any] = {"type": type_, "payload": payload}
    if request_id is not None:
        message["id"] = request_id
    return orjson.dumps(message).decode()
