"""The abuse benchmark's arithmetic: a window's ping, gap and /readyz figures, and verdicts.

Pure functions over monotonic timestamps in µs (``common.now_us``), so they can be checked
without a server. Why exact nearest-rank percentiles here rather than the fan-out benchmark's
``Histogram``: a bystander sends one ping every 50 ms, a few hundred per window, and a sorted
list of that size is cheap and exact.

Why unanswered pings and unfinished probes count, at the time they have waited so far: a
server frozen past the end of a window would otherwise drop its worst samples from the
figures, and look better the longer it stays frozen.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

#: Issue 19's acceptance: the bystander's longest gap between updates grows by at most this
#: much over the baseline window of the same run...
GAP_GROWTH_LIMIT_MS: Final = 250.0
#: ...and its ping round trip p99 stays below this.
PING_P99_LIMIT_MS: Final = 50.0


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least ``fraction`` of the values
    at or below it (the same rank ``stats.Histogram`` uses); None for no values."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be within [0, 1], got {fraction}")
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -int(-fraction * len(ordered) // 1))
    return ordered[rank - 1]


def longest_gap_us(arrivals: Sequence[int], t0: int, t1: int) -> int:
    """The longest time without an update within [t0, t1]; ``arrivals`` ascending.

    The first gap starts at the last arrival before the window (or at ``t0`` when there is
    none) and the last one ends at ``t1``: a stall that straddles an edge is counted, not
    cut in two.
    """
    if t1 < t0:
        raise ValueError(f"window ends before it starts: {t0} > {t1}")
    first = bisect.bisect_right(arrivals, t0)
    last = bisect.bisect_right(arrivals, t1)
    previous = arrivals[first - 1] if first else t0
    longest = 0
    for arrival in arrivals[first:last]:
        longest = max(longest, arrival - previous)
        previous = arrival
    return max(longest, t1 - previous)


@dataclass(frozen=True)
class Ping:
    """One application ``ping``: when it was sent and its round trip, None while unanswered."""

    sent_us: int
    rtt_us: int | None


def ping_figures(pings: Sequence[Ping], t0: int, t1: int, now: int) -> dict[str, Any]:
    """p50/p99/max round trip (ms) of the pings sent in [t0, t1); an unanswered one counts
    as ``now - sent`` (a lower bound of its round trip)."""
    rtts: list[float] = []
    unanswered = 0
    for ping in pings:
        if t0 <= ping.sent_us < t1:
            if ping.rtt_us is None:
                unanswered += 1
                rtts.append(float(max(now - ping.sent_us, 0)))
            else:
                rtts.append(float(ping.rtt_us))
    return {
        "pings": len(rtts),
        "unanswered": unanswered,
        "p50_ms": _ms(percentile(rtts, 0.50)),
        "p99_ms": _ms(percentile(rtts, 0.99)),
        "max_ms": _ms(max(rtts, default=None)),
    }


@dataclass(frozen=True)
class Probe:
    """One ``GET /readyz``: when it started, how long it took (None while pending), and its
    HTTP status (0 when it failed without one: refused, reset, timed out)."""

    start_us: int
    latency_us: int | None
    status: int


def probe_figures(probes: Sequence[Probe], t0: int, t1: int, now: int) -> dict[str, Any]:
    """/readyz latency (ms) of the probes started in [t0, t1), and how many did not get 200
    (by status; 0 = no HTTP answer: refused, reset or timed out)."""
    latencies: list[float] = []
    not_ok: dict[str, int] = {}
    for probe in probes:
        if t0 <= probe.start_us < t1:
            waited = probe.latency_us if probe.latency_us is not None else now - probe.start_us
            latencies.append(float(max(waited, 0)))
            if probe.status != 200:
                key = str(probe.status) if probe.latency_us is not None else "pending"
                not_ok[key] = not_ok.get(key, 0) + 1
    return {
        "probes": len(latencies),
        "not_200": sum(not_ok.values()),
        "not_200_by_status": not_ok,
        "p50_ms": _ms(percentile(latencies, 0.50)),
        "max_ms": _ms(max(latencies, default=None)),
    }


def gap_growth_ms(gap_ms: float | None, baseline_gap_ms: float | None) -> float | None:
    """How much longer the window's longest gap is than the baseline's (negative: shorter)."""
    if gap_ms is None or baseline_gap_ms is None:
        return None
    return round(gap_ms - baseline_gap_ms, 1)


def verdict(growth_ms: float | None, p99_ms: float | None) -> tuple[bool, str]:
    """(met, text) of the acceptance goals for one window; a missing figure misses."""
    misses = []
    if growth_ms is None or growth_ms > GAP_GROWTH_LIMIT_MS:
        shown = "?" if growth_ms is None else f"+{growth_ms:,.0f}"
        misses.append(f"gap {shown} ms > {GAP_GROWTH_LIMIT_MS:g}")
    if p99_ms is None or p99_ms >= PING_P99_LIMIT_MS:
        shown = "?" if p99_ms is None else f"{p99_ms:,.1f}"
        misses.append(f"p99 {shown} ms >= {PING_P99_LIMIT_MS:g}")
    if misses:
        return False, "MISSED: " + ", ".join(misses)
    return True, "met"


def _ms(micros: float | None) -> float | None:
    return None if micros is None else round(micros / 1000, 1)
