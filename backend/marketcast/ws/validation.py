"""Turning a pydantic ``ValidationError`` into one error code and a readable message.

Why specific codes: a client that sends ``EURUSD`` lower-cased or a resolution ``7`` deserves
``invalid_symbol`` / ``unsupported_resolution``, which a UI can show as such, rather than a
generic validation failure.
"""

from __future__ import annotations

from pydantic import ValidationError

from marketcast.errors import ErrorCode
from marketcast.protocol import SYMBOL_PATTERN
from marketcast.timeframes import RESOLUTION_ALIASES, RESOLUTIONS


def describe_validation_error(exc: ValidationError) -> tuple[ErrorCode, str]:
    """The code for the first problem and a message naming every problem."""
    problems = exc.errors(include_url=False)
    first = problems[0]
    location = tuple(first["loc"])
    code = ErrorCode.VALIDATION_ERROR
    if location == ("symbol",) and first["type"] in {"string_pattern_mismatch", "string_type"}:
        code = ErrorCode.INVALID_SYMBOL
        return code, (
            f"invalid symbol {first.get('input')!r}: expected upper-case letters and digits "
            f"such as 'BTCUSDT' or 'EUR/USD' (pattern {SYMBOL_PATTERN})"
        )
    if location == ("params", "resolution") and first["type"] == "literal_error":
        accepted = [*RESOLUTIONS, *RESOLUTION_ALIASES]
        return ErrorCode.UNSUPPORTED_RESOLUTION, (
            f"unsupported resolution {first.get('input')!r}: expected one of {', '.join(accepted)}"
        )
    parts = []
    for problem in problems:
        where = ".".join(str(part) for part in problem["loc"]) or "payload"
        got = problem.get("input")
        got_text = "" if problem["type"] == "missing" else f" (got {got!r:.60})"
        parts.append(f"{where}: {problem['msg']}{got_text}")
    return code, "invalid payload: " + "; ".join(parts)
