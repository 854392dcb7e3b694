"""The benchmark's own arithmetic, checked without running it: the baseline's raw framing,
the latency histogram, the publish stamp round trip, and the goals it prints."""

from __future__ import annotations

import random

import pytest
from websockets.frames import Frame, Opcode

from scripts.bench.cases import CaseResult
from scripts.bench.common import stamp_of, update_frame
from scripts.bench.report import goals
from scripts.bench.stats import Histogram
from scripts.bench.targets.websockets_raw import unmasked_text_frame


@pytest.mark.parametrize("size", [0, 125, 126, 65_535, 65_536, 70_000])
def test_raw_baseline_frames_like_the_websockets_library(size: int) -> None:
    payload = b"x" * size
    expected = Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])
    assert unmasked_text_frame(payload) == expected


def test_histogram_percentiles_are_within_a_bucket_and_never_flatter() -> None:
    rng = random.Random(7)
    samples = [int(rng.lognormvariate(6, 1.5)) for _ in range(20_000)]
    first, second = Histogram(), Histogram()
    for n, micros in enumerate(samples):
        (first if n % 2 else second).record(micros)
    first.merge(second)
    ordered = sorted(samples)
    assert first.total == len(samples)
    assert first.max_us == ordered[-1]
    for fraction in (0.5, 0.9, 0.99, 0.999):
        exact = ordered[max(1, -int(-fraction * len(ordered) // 1)) - 1]
        reported = first.percentile(fraction)
        assert reported is not None
        assert exact <= reported <= max(exact * 1.016, exact + 1), (fraction, exact, reported)
    assert first.percentile(1.0) == ordered[-1]
    assert Histogram().percentile(0.5) is None
    assert Histogram.from_json(first.to_json()) == first


def test_publish_stamp_survives_the_frame() -> None:
    frame = update_frame('bars:{"resolution":"1","symbol":"SYM0"}', "SYM0", 60_000, 1_234_567)
    assert stamp_of(frame) == 1_234_567


def case(target: str, scenario: str, **figures: float) -> CaseResult:
    return CaseResult(target=target, scenario=scenario, figures=dict(figures))


def test_goals_compare_marketcast_with_the_baselines_of_the_same_run() -> None:
    by_scenario = {
        "saturation": {
            "marketcast": case("marketcast", "saturation", delivered_per_s=300.0),
            "websockets": case("websockets", "saturation", delivered_per_s=200.0),
            "fastws": case("fastws", "saturation", delivered_per_s=150.0),
        },
        "market": {
            "marketcast": case(
                "marketcast",
                "market",
                p99_ms=2.0,
                cpu_us_per_delivery=12.0,
                sys_us_per_delivery=9.0,
            ),
            "websockets": case("websockets", "market", p99_ms=1.6, cpu_us_per_delivery=15.0),
            "raw": case("raw", "market", cpu_us_per_delivery=11.0, sys_us_per_delivery=8.5),
        },
        "idle_1k": {"marketcast": case("marketcast", "idle_1k", kib_per_conn=24.5)},
    }
    checks = goals(by_scenario)
    assert checks["saturation_vs_websockets"] == {"value": 1.5, "goal": ">= 1", "met": True}
    assert checks["saturation_vs_fastws"]["met"] is False  # 2.0x < 2.5x
    assert checks["market_p99_ms_vs_websockets_plus_0.5"] == {
        "value": 2.0,
        "goal": "<= 2.1",
        "met": True,
    }
    assert checks["market_cpu_us_per_delivery"]["met"] is False
    assert (
        "kernel 9.0 µs of it; raw 11.0 µs (kernel 8.5)"
        in checks["market_cpu_us_per_delivery"]["context"]
    )
    assert checks["idle_1k_kib_per_conn"]["met"] is False
    assert "slow_healthy_pct" not in checks  # no slow scenario in this run: no verdict
