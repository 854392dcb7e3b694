"""Topic strings: ``route + ":" + topic_params({"symbol": symbol, **params})``.

A topic names one stream (``bars:{"resolution":"1","symbol":"AAPL"}``). The TypeScript client
(``frontend-types``: ``topicParams`` / ``buildTopic``) computes the same string on its side and
matches incoming messages against it, so the two implementations must agree byte for byte; both
are tested against ``tests/vectors/topics.json`` (see DESIGN.md section 4). The rules are those of
a small JavaScript function, which is why this module imitates JavaScript rather than Python:

- objects: keys sorted by UTF-16 code unit, as JavaScript's default ``Array.prototype.sort``
  does. Python compares code points, which disagrees for non-BMP characters against
  U+E000..U+FFFF (U+1F600 < U+FF5E in JavaScript, ``>`` in Python). Integer-like keys (``"10"``,
  ``"9"``) are string-sorted too, unlike the property order of a JavaScript object;
- arrays: order kept, elements processed recursively;
- ``None`` anywhere (including nested and inside arrays) becomes the empty string ``""``;
- compact JSON, strings as ``JSON.stringify`` writes them: non-ASCII as is, ``"`` and ``\\``
  escaped, ``\\b \\f \\n \\r \\t``, other control characters as ``\\u00xx``, lone surrogates as
  ``\\udxxx`` (well-formed ``JSON.stringify``), ``/`` and U+2028 not escaped;
- numbers as JavaScript's Number::toString: ``1.0`` -> ``1``, ``-0.0`` -> ``0``, ``1e21`` ->
  ``1e+21``, ``1e-7`` -> ``1e-7``, ``1.2345678901234568e20`` -> ``123456789012345680000``.
  Python ints are first rounded to the nearest double, as ``JSON.parse`` would. NaN and
  infinities (and ints too large for a double) are written as the bare text ``null``, as
  ``JSON.stringify`` writes them -- not as ``""``, since they were never ``None``;
- booleans ``true`` / ``false``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Final

from marketcast.types import JSON

__all__ = ["build_topic", "topic_params"]

_ESCAPED: Final = re.compile(r'[\x00-\x1f"\\\ud800-\udfff]')
_SURROGATE: Final = re.compile(r"[\ud800-\udfff]")
_SHORT_ESCAPES: Final = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def build_topic(route: str, params: Mapping[str, JSON]) -> str:
    """Return ``route + ":" + topic_params(params)``; callers pass ``{"symbol": ..., **params}``."""
    return route + ":" + topic_params(params)


def topic_params(value: JSON | Mapping[str, JSON]) -> str:
    """Serialise ``value`` canonically, exactly as the shared JavaScript rules do (see module)."""
    if value is None:
        return '""'
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda item: _utf16(item[0]))
        return "{" + ",".join(_string(k) + ":" + topic_params(v) for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(topic_params(v) for v in value) + "]"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _utf16(key: str) -> bytes:
    # Big-endian UTF-16 bytes compare exactly like JavaScript's code-unit comparison.
    return key.encode("utf-16-be", "surrogatepass")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _SHORT_ESCAPES.get(char) or f"\\u{ord(char):04x}"


def _string(text: str) -> str:
    if _SURROGATE.search(text):
        # A JavaScript string is UTF-16: a high+low surrogate pair is one character there, so
        # join pairs first; only the lone surrogates left over get escaped.
        text = _utf16(text).decode("utf-16-be", "surrogatepass")
    return '"' + _ESCAPED.sub(_escape, text) + '"'


def _number(value: int | float) -> str:
    try:
        x = float(value)
    except OverflowError:  # an int beyond the double range: JSON.parse would give +-Infinity
        return "null"
    if not math.isfinite(x):
        return "null"
    if x == 0:
        return "0"
    # repr() gives the shortest digits that round-trip, as ECMAScript Number::toString requires;
    # only the layout differs. Split into digits d1..dk and n with |x| = 0.d1..dk * 10**n.
    mantissa, _, exp = repr(abs(x)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).rstrip("0")
    n = len(whole) + int(exp or "0")
    stripped = digits.lstrip("0")
    n -= len(digits) - len(stripped)
    digits, k = stripped, len(stripped)
    sign = "-" if x < 0 else ""
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    e = n - 1
    head = digits[0] + ("." + digits[1:] if k > 1 else "")
    return sign + head + "e" + ("+" if e >= 0 else "-") + str(abs(e))
