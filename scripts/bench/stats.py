"""Latency histograms and per-process counters read from ``/proc``.

Why a log-bucketed histogram instead of a list of samples: a saturated run delivers millions
of frames; every client process records every one of them, and the orchestrator merges the
processes. Buckets are exact below 128 µs and then 64 per doubling (at most 1.6 % wide), found
with integer operations only (``bit_length`` and a shift), so recording costs a few hundred
nanoseconds; merging is adding counts, and a process sends a few hundred numbers back. The
maximum is kept exactly.

Why ``/proc`` instead of psutil: two fields of two files are all that is needed, on Linux
only (the benchmark pins processes to cores, which is Linux-only anyway).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

#: Below this many µs every µs has its own bucket.
_LINEAR = 128
#: Latencies are clamped below this (about 12 days), which bounds the bucket list.
_CLAMP_BITS = 40
BUCKETS = _LINEAR + (_CLAMP_BITS - 7) * 64
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def bucket_of(micros: int) -> int:
    """The bucket index of a latency in µs (negative values count as 0)."""
    if micros < _LINEAR:
        return max(micros, 0)
    micros = min(micros, (1 << _CLAMP_BITS) - 1)
    shift = micros.bit_length() - 7
    return _LINEAR + (shift - 1) * 64 + (micros >> shift) - 64


def bucket_value(index: int) -> float:
    """The upper edge of bucket ``index`` in µs: percentiles never flatter the server."""
    if index < _LINEAR:
        return float(index)
    shift, sub = divmod(index - _LINEAR, 64)
    return float((sub + 65) << (shift + 1)) - 1.0


@dataclass
class Histogram:
    """Counts of latencies (µs) per bucket, mergeable across processes."""

    counts: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    total: int = 0
    max_us: int = 0

    def record(self, micros: int) -> None:
        self.counts[bucket_of(micros)] += 1
        self.total += 1
        if micros > self.max_us:
            self.max_us = micros

    def merge(self, other: Histogram) -> None:
        for index, count in enumerate(other.counts):
            if count:
                self.counts[index] += count
        self.total += other.total
        self.max_us = max(self.max_us, other.max_us)

    def percentile(self, fraction: float) -> float | None:
        """The latency (µs) below which ``fraction`` of samples fall; None if empty."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be within [0, 1], got {fraction}")
        if self.total == 0:
            return None
        rank = max(1, -int(-fraction * self.total // 1))
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return min(bucket_value(index), float(self.max_us))
        return float(self.max_us)

    def to_json(self) -> dict[str, object]:
        sparse = {str(i): c for i, c in enumerate(self.counts) if c}
        return {"counts": sparse, "total": self.total, "max_us": self.max_us}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Histogram:
        raw_counts = data.get("counts", {})
        if not isinstance(raw_counts, dict):
            raise ValueError(f"histogram counts must be an object, got {raw_counts!r}")
        histogram = cls()
        for key, count in raw_counts.items():
            histogram.counts[int(key)] += int(count)
        total, max_us = data.get("total", 0), data.get("max_us", 0)
        if not isinstance(total, int) or not isinstance(max_us, int):
            raise ValueError(f"histogram total/max_us must be integers, got {data!r}")
        histogram.total, histogram.max_us = total, max_us
        return histogram


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system (kernel) CPU seconds a process has used so far (``/proc/<pid>/stat``).

    Why both: on loopback a server's system time is mostly its ``send()`` calls (which also
    carry the receiving side's TCP work), the part no Python code can make cheaper except by
    making fewer calls.
    """
    text = Path(f"/proc/{pid}/stat").read_text()
    # Field 2 (comm) may contain spaces; everything after its closing parenthesis is fixed.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) / _CLOCK_TICKS, int(fields[12]) / _CLOCK_TICKS


def run_queue_wait_s(pid: int) -> float:
    """Seconds the process's main thread has spent runnable but waiting for a CPU
    (``/proc/<pid>/schedstat``): time other work on its core took from it."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def rss_kib(pid: int) -> int:
    """Resident memory of a process in KiB (``/proc/<pid>/statm``)."""
    resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return resident_pages * _PAGE_KIB


def load_average() -> tuple[float, float, float]:
    """The machine's 1, 5 and 15 minute load averages: the noise a reader should know of."""
    one, five, fifteen = os.getloadavg()
    return one, five, fifteen


def core_ticks(cpu: int) -> dict[str, int]:
    """Cumulative time of one core by state (``/proc/stat``), in clock ticks."""
    prefix = f"cpu{cpu} "
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(prefix):
            values = [int(v) for v in line.split()[1:9]]
            names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
            return dict(zip(names, values, strict=True))
    raise RuntimeError(f"no line for CPU {cpu} in /proc/stat")


def core_usage(
    before: dict[str, int], after: dict[str, int], process_cpu_s: float
) -> dict[str, float]:
    """What one core did between two ``core_ticks`` readings, in percent of the interval.

    ``others_pct`` is the time the core was busy with anything but ``process_cpu_s`` (the
    process pinned there) — other developers' work, kernel threads; ``softirq_pct`` is
    network processing the kernel did in interrupt context (on loopback it is the clients'
    and the server's TCP work); ``steal_pct`` is time the hypervisor gave to another guest.
    """
    delta = {name: after[name] - before[name] for name in before}
    total = sum(delta.values())
    if total <= 0:
        return {"busy_pct": 0.0, "others_pct": 0.0, "softirq_pct": 0.0, "steal_pct": 0.0}
    busy = total - delta["idle"] - delta["iowait"] - delta["steal"]
    process = process_cpu_s * _CLOCK_TICKS
    return {
        "busy_pct": round(100 * busy / total, 1),
        "others_pct": round(max(100 * (busy - process - delta["softirq"]) / total, 0.0), 1),
        "softirq_pct": round(100 * delta["softirq"] / total, 1),
        "steal_pct": round(100 * delta["steal"] / total, 1),
    }
