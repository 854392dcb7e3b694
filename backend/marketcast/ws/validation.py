"""Turning a pydantic ``ValidationError`` into one error code and a readable message.

Why specific codes: a client that sends ``EURUSD`` lower-cased or a resolution ``7`` deserves
``invalid_symbol`` / ``unsupported_resolution``, which a UI can show as such, rather than a
generic validation failure.

Why every echoed value goes through ``preview``: an error reply quotes what the client sent,
and the client decides what that is. ``repr`` recurses (a value nested a thousand arrays deep
raised ``RecursionError`` inside the error handler, so the client got ``internal_error`` and
the log a traceback) and is unbounded (a 64 KiB frame could earn a reply twice its size).
``preview`` walks a value with an explicit stack and stops after ``ECHO_LIMIT`` characters,
so an error costs the same whatever it quotes, and a reply is never larger than a bounded
constant plus the request's ``id``.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import ValidationError

from marketcast.errors import ErrorCode
from marketcast.protocol import SYMBOL_PATTERN
from marketcast.timeframes import RESOLUTION_ALIASES, RESOLUTIONS

#: Characters of a client's value quoted back in an error message (then ``…``).
ECHO_LIMIT: Final = 64
#: Problems of one payload listed in a ``validation_error`` message; more are counted.
MAX_PROBLEMS: Final = 5


def preview(value: Any, limit: int = ECHO_LIMIT) -> str:
    """A ``repr``-like rendering of a decoded JSON value, at most ``limit`` characters
    (plus ``…`` when cut), in time proportional to ``limit`` whatever the value's depth."""
    out: list[str] = []
    size = 0
    #: Pending work, last first: a value to render, or a literal piece of punctuation.
    stack: list[tuple[bool, Any]] = [(True, value)]
    while stack and size <= limit:
        is_value, item = stack.pop()
        if not is_value:
            piece = item
        elif isinstance(item, list):
            stack.append((False, "]"))
            # Each element shows at least one character: more than ``limit`` never fit.
            elements = item[: limit + 1]
            for index in range(len(elements) - 1, -1, -1):
                stack.append((True, elements[index]))
                if index:
                    stack.append((False, ", "))
            piece = "["
        elif isinstance(item, dict):
            stack.append((False, "}"))
            entries = list(item.items())[: limit + 1]
            for index in range(len(entries) - 1, -1, -1):
                key, entry = entries[index]
                stack.append((True, entry))
                stack.append((False, f"{_short_repr(key, limit)}: "))
                if index:
                    stack.append((False, ", "))
            piece = "{"
        else:
            piece = _short_repr(item, limit)
        out.append(piece)
        size += len(piece)
    text = "".join(out)
    if len(text) > limit or stack:
        return text[:limit] + "…"
    return text


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` cut to ``limit`` characters (then ``…``): for names a client chose."""
    return text if len(text) <= limit else text[:limit] + "…"


def _short_repr(value: Any, limit: int) -> str:
    """``repr`` of a scalar, with strings cut before quoting so a long one costs nothing."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[: limit + 1])
    return repr(value)


def describe_validation_error(exc: ValidationError) -> tuple[ErrorCode, str]:
    """The code for the first problem and a message naming the first ``MAX_PROBLEMS``."""
    problems = exc.errors(include_url=False)
    first = problems[0]
    location = tuple(first["loc"])
    code = ErrorCode.VALIDATION_ERROR
    if location == ("symbol",) and first["type"] in {"string_pattern_mismatch", "string_type"}:
        code = ErrorCode.INVALID_SYMBOL
        return code, (
            f"invalid symbol {preview(first.get('input'))}: expected upper-case letters and "
            f"digits such as 'BTCUSDT' or 'EUR/USD' (pattern {SYMBOL_PATTERN})"
        )
    if location == ("params", "resolution") and first["type"] == "literal_error":
        accepted = [*RESOLUTIONS, *RESOLUTION_ALIASES]
        return ErrorCode.UNSUPPORTED_RESOLUTION, (
            f"unsupported resolution {preview(first.get('input'))}: expected one of "
            f"{', '.join(accepted)}"
        )
    parts = []
    for problem in problems[:MAX_PROBLEMS]:
        where = clip(".".join(str(part) for part in problem["loc"]) or "payload")
        got = "" if problem["type"] == "missing" else f" (got {preview(problem.get('input'))})"
        parts.append(f"{where}: {problem['msg']}{got}")
    if len(problems) > MAX_PROBLEMS:
        parts.append(f"and {len(problems) - MAX_PROBLEMS} more problem(s)")
    return code, "invalid payload: " + "; ".join(parts)
