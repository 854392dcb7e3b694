"""The abuse benchmark's arithmetic, checked without a server: percentiles, the longest gap
between updates, ping and probe windows, verdicts, and what the attacks send and count."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from scripts.bench.abuse_report import goals, json_line, judge, table, warnings
from scripts.bench.abuse_stats import (
    Ping,
    Probe,
    gap_growth_ms,
    longest_gap_us,
    percentile,
    ping_figures,
    probe_figures,
    verdict,
)
from scripts.bench.attack_kit import bar_topics, classify
from scripts.bench.attacks_ws import missed_buckets, nested_frame, rewatch_keys


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    random.Random(3).shuffle(values)
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile(values, 0.0) == 1.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) is None
    with pytest.raises(ValueError, match="within"):
        percentile(values, 1.5)


def test_longest_gap_counts_stalls_that_straddle_the_window_edges() -> None:
    arrivals = [100, 150, 200, 900, 950]
    assert longest_gap_us(arrivals, 120, 960) == 700  # 200 -> 900, inside
    # From the last arrival before the window: a stall that began before t0 counts whole.
    assert longest_gap_us(arrivals, 300, 960) == 700
    # To the end of the window: a stall still going on at t1 counts up to t1.
    assert longest_gap_us([100, 150, 200], 100, 1_000) == 800
    # No arrival at all: the window is one gap.
    assert longest_gap_us([], 10, 60) == 50
    assert longest_gap_us([5, 10], 20, 20) == 10
    with pytest.raises(ValueError, match="before it starts"):
        longest_gap_us(arrivals, 10, 5)


def test_ping_figures_count_unanswered_pings_at_their_wait_so_far() -> None:
    pings = [Ping(1_000 * n, 2_000) for n in range(99)] + [Ping(99_000, None)]
    figures = ping_figures(pings, 0, 100_000, now=1_099_000)
    assert figures["pings"] == 100
    assert figures["unanswered"] == 1
    assert figures["p50_ms"] == 2.0
    assert figures["p99_ms"] == 2.0
    assert figures["max_ms"] == 1_000.0  # the unanswered one, 1 s so far
    # Only pings sent in [t0, t1) belong to the window.
    assert ping_figures(pings, 0, 10_000, now=1_099_000)["pings"] == 10
    assert ping_figures([], 0, 1, now=2)["p99_ms"] is None


def test_probe_figures_count_failures_and_the_pending_probe() -> None:
    probes = [Probe(0, 1_500, 200), Probe(10_000, 3_000_000, 0), Probe(20_000, None, 0)]
    figures = probe_figures(probes, 0, 30_000, now=5_020_000)
    assert figures == {
        "probes": 3,
        "not_200": 2,
        "not_200_by_status": {"0": 1, "pending": 1},
        "p50_ms": 3_000.0,
        "max_ms": 5_000.0,
    }


@pytest.mark.parametrize(
    ("growth", "p99", "met", "text"),
    [
        (250.0, 49.9, True, "met"),
        (250.1, 10.0, False, "MISSED: gap +250 ms > 250"),
        (0.0, 50.0, False, "MISSED: p99 50.0 ms >= 50"),
        (1_000.0, 80.0, False, "MISSED: gap +1,000 ms > 250, p99 80.0 ms >= 50"),
        (None, 1.0, False, "MISSED: gap ? ms > 250"),
        (-3.0, None, False, "MISSED: p99 ? ms >= 50"),
    ],
)
def test_verdict_against_the_issue_goals(
    growth: float | None, p99: float | None, met: bool, text: str
) -> None:
    assert verdict(growth, p99) == (met, text)


def test_gap_growth_is_against_the_baseline() -> None:
    assert gap_growth_ms(355.25, 55.1) == 300.1
    assert gap_growth_ms(50.0, 55.0) == -5.0
    assert gap_growth_ms(None, 55.0) is None
    assert gap_growth_ms(50.0, None) is None


def record(name: str, gap: float, p99: float) -> dict[str, Any]:
    return {
        "name": name,
        "label": name,
        "bystander": {
            "ping": {"p50_ms": 1.0, "p99_ms": p99, "max_ms": p99, "unanswered": 0},
            "longest_gap_ms": gap,
            "readyz": {"max_ms": 3.0, "not_200": 0},
        },
    }


def test_judge_compares_every_window_with_the_first_baseline() -> None:
    records = [
        record("baseline", 55.0, 4.0),
        record("long_url", 14_055.0, 9_000.0),
        record("rest_flood", 300.0, 20.0),
        record("baseline_after", 60.0, 5.0),
    ]
    judge(records)
    assert [r["gap_growth_ms"] for r in records] == [0.0, 14_000.0, 245.0, 5.0]
    assert [r["verdict"]["met"] for r in records] == [True, False, True, True]
    summary = goals(records)
    assert summary["met"] == {"long_url": False, "rest_flood": True}
    assert summary["all_met"] is False
    lines = table(records).splitlines()
    assert lines[2].startswith("long_url")
    assert "14,000.0" in lines[2]
    assert "MISSED" in lines[2]
    document = json.loads(json_line({"mode": "quick"}, records))
    assert document["bench"] == "marketcast-abuse"
    assert len(document["windows"]) == 4


def test_classify_reads_only_the_head_of_a_frame() -> None:
    error = b'{"type":"error","id":3,"payload":{"code":"rate_limited","message":"x"}}'
    assert classify(error) == "error:rate_limited"
    assert classify(b'{"type":"bars.update","payload":{}}') == "update"
    assert classify(b'{"type":"bars.subscribe.response","id":1,"payload":{}}') == "reply"
    assert classify(b'{"type":"pong","id":1,"payload":{}}') == "pong"
    assert classify(b'{"type":"error","payload":{}}') == "error:?"


def test_attack_frames_and_keys() -> None:
    frame = nested_frame(1_000)
    assert len(frame) < 2_100
    with pytest.raises(RecursionError):  # what makes the frame an attack on a naive parser
        json.loads(nested_frame(100_000))
    assert len(set(bar_topics())) == 44
    keys = rewatch_keys()
    assert len(set(keys)) == 25
    assert ("BTCUSDT", "1") not in keys
    assert missed_buckets(3_600, keys) == 25 * 60
    assert missed_buckets(-5, keys) == 0


def test_a_rest_flood_that_never_reached_the_route_is_flagged() -> None:
    refused = {"name": "rest_flood", "tally": {"http:422": 4_000, "connections": 10}}
    assert warnings(refused) == [
        "no request reached the history route (answers: {'http:422': 4000})"
    ]
    assert warnings({"name": "rest_flood", "tally": {"http:429": 5}}) == []
    assert warnings({"name": "long_url", "tally": {}}) == []
