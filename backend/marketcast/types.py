"""Small type aliases shared across the package (no behaviour lives here)."""

from __future__ import annotations

from typing import Literal, TypeAlias

#: Milliseconds since the Unix epoch, UTC. Every timestamp on the wire and in the store uses it.
Millis: TypeAlias = int

#: A served symbol as clients write it: ``BTCUSDT``, ``EUR/USD``, ``AAPL``.
Symbol: TypeAlias = str

#: A topic string, ``route + ":" + topic_params(...)`` (see ``marketcast.topics``).
Topic: TypeAlias = str

#: TradingView resolution strings in their canonical form (aliases ``1D``/``1W``/``1M`` are
#: normalised to ``D``/``W``/``M`` on input).
Resolution: TypeAlias = Literal["1", "3", "5", "15", "30", "60", "120", "240", "D", "W", "M"]

#: A request id as clients send it: echoed verbatim in the reply and in any error.
RequestId: TypeAlias = str | int

#: JSON values as ``orjson.loads`` returns them.
JSON: TypeAlias = dict[str, "JSON"] | list["JSON"] | str | int | float | bool | None
