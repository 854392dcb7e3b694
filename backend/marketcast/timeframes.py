"""Resolutions and UTC bucket arithmetic — pure functions, no I/O.

A bucket is the half-open interval ``[start, next_start)`` that one candle covers. Intraday
buckets are aligned to the Unix epoch in UTC; days open at 00:00 UTC; weeks open on Monday
00:00 UTC (the epoch was a Thursday, hence the offset); months follow the calendar.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final, get_args

from marketcast.types import Millis, Resolution

MINUTE_MS: Final = 60_000
DAY_MS: Final = 86_400_000
WEEK_MS: Final = 7 * DAY_MS
#: 1970-01-01 was a Thursday; Monday 1970-01-05 00:00 UTC is 4 days later.
_FIRST_MONDAY_MS: Final = 4 * DAY_MS

RESOLUTIONS: Final[tuple[Resolution, ...]] = get_args(Resolution)

#: Accepted spellings that are not canonical, and what they mean.
RESOLUTION_ALIASES: Final[dict[str, Resolution]] = {"1D": "D", "1W": "W", "1M": "M"}

_FIXED_MS: Final[dict[Resolution, int]] = {
    "1": MINUTE_MS,
    "3": 3 * MINUTE_MS,
    "5": 5 * MINUTE_MS,
    "15": 15 * MINUTE_MS,
    "30": 30 * MINUTE_MS,
    "60": 60 * MINUTE_MS,
    "120": 120 * MINUTE_MS,
    "240": 240 * MINUTE_MS,
    "D": DAY_MS,
    "W": WEEK_MS,
}


def normalize_resolution(value: str) -> Resolution | None:
    """Return the canonical resolution for ``value`` (``1D`` -> ``D``), or None if unknown."""
    if value in RESOLUTION_ALIASES:
        return RESOLUTION_ALIASES[value]
    for resolution in RESOLUTIONS:
        if resolution == value:
            return resolution
    return None


def nominal_ms(resolution: Resolution) -> int:
    """A bucket's length; months count as 31 days (an upper bound, for staleness and sizing)."""
    return _FIXED_MS.get(resolution, 31 * DAY_MS)


def bucket_start(ts: Millis, resolution: Resolution) -> Millis:
    """The open time of the bucket that contains ``ts``."""
    if resolution == "M":
        moment = datetime.fromtimestamp(ts / 1000, tz=UTC)
        return _ms(datetime(moment.year, moment.month, 1, tzinfo=UTC))
    if resolution == "W":
        return ts - (ts - _FIRST_MONDAY_MS) % WEEK_MS
    size = _FIXED_MS[resolution]
    return ts - ts % size


def next_bucket(start: Millis, resolution: Resolution) -> Millis:
    """The open time of the bucket after the one opening at ``start``."""
    if resolution == "M":
        moment = datetime.fromtimestamp(start / 1000, tz=UTC)
        year, month = (
            (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
        )
        return _ms(datetime(year, month, 1, tzinfo=UTC))
    return start + _FIXED_MS[resolution]


def previous_bucket(start: Millis, resolution: Resolution) -> Millis:
    """The open time of the bucket before the one opening at ``start``."""
    return bucket_start(start - 1, resolution)


def _ms(moment: datetime) -> Millis:
    return int(moment.timestamp() * 1000)
