"""The benchmark's regression gate and its fairness default, checked without running it:
which goals a run is judged on in each preset, the verdicts, the exit status, the noise rule,
the floors, and every server's GC treatment."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from scripts.bench import report
from scripts.bench.cases import Bench, CaseResult
from scripts.bench.report import GATE_FAILED, gate, goals, goals_text, json_line, table
from scripts.bench.runner import gc_treatment, parse_args
from scripts.bench.scenarios import FULL, QUICK, QUICK_DEFLATE_REF, preset
from scripts.bench.server import apply_gc_choice

#: Cores that other work keeps busy: what a server needing 5 % of a core hardly notices.
CORES = {"busy_pct": 95.0, "others_pct": 88.0, "softirq_pct": 1.0, "steal_pct": 0.0}


def case(target: str, scenario: str, *, wait: float = 1.0, **figures: Any) -> CaseResult:
    """A measured case whose server and client processes waited ``wait`` % for their core."""
    base: dict[str, Any] = {
        "server_core": CORES,
        "client_core": CORES,
        "server_wait_pct": wait,
        "client_wait_pct": wait,
    }
    return CaseResult(target=target, scenario=scenario, figures={**base, **figures})


def deflate_run(
    *,
    cost: float = 7.0,
    plain_cost: float = 6.5,
    ws_cost: float = 26.0,
    wire: float = 521.3,
    p99: float = 2.1,
    plain_p99: float = 1.9,
    wait: float = 1.0,
) -> dict[str, dict[str, CaseResult]]:
    """The two deflate scenarios of one run (marketcast and ``websockets``)."""
    return {
        "deflate_ref": {
            "marketcast": case(
                "marketcast",
                "deflate_ref",
                wait=wait,
                cpu_us_per_delivery=plain_cost,
                wire_bytes_per_delivery=1332.1,
                p99_ms=plain_p99,
            ),
            "websockets": case(
                "websockets",
                "deflate_ref",
                wait=wait,
                cpu_us_per_delivery=6.0,
                wire_bytes_per_delivery=1332.1,
                p99_ms=1.8,
            ),
        },
        "deflate": {
            "marketcast": case(
                "marketcast",
                "deflate",
                wait=wait,
                cpu_us_per_delivery=cost,
                wire_bytes_per_delivery=wire,
                p99_ms=p99,
                compressed_pct=100.0,
            ),
            "websockets": case(
                "websockets",
                "deflate",
                wait=wait,
                cpu_us_per_delivery=ws_cost,
                wire_bytes_per_delivery=521.2,
                p99_ms=2.5,
                compressed_pct=100.0,
            ),
        },
    }


def verdicts(checks: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: check["verdict"] for name, check in checks.items()}


def test_a_healthy_deflate_run_passes_in_both_presets() -> None:
    for mode in ("full", "quick"):
        checks = goals(deflate_run(), mode)
        assert verdicts(checks) == {
            "deflate_cpu_vs_uncompressed": "PASS",
            "deflate_cpu_vs_websockets_deflate": "PASS",
            "deflate_bytes_vs_uncompressed": "PASS",
            "deflate_p99_ms_vs_uncompressed_plus_0.5": "PASS",
        }
        assert gate(checks) == (0, "gate: PASS (4 goal(s) passed, none failed)")
    checks = goals(deflate_run(), "full")
    assert checks["deflate_cpu_vs_uncompressed"]["value"] == pytest.approx(7.0 / 6.5, abs=1e-3)
    assert checks["deflate_bytes_vs_uncompressed"]["value"] == 0.391
    assert checks["deflate_p99_ms_vs_uncompressed_plus_0.5"]["goal"] == "<= 2.4"


def test_quick_thresholds_are_wider_only_where_noise_needs_it() -> None:
    quick = goals(deflate_run(cost=10.0, p99=9.0), "quick")
    full = goals(deflate_run(cost=10.0, p99=9.0), "full")
    # 10 / 6.5 = 1.54: over the full run's 1.15, under the quick preset's 1.75
    assert quick["deflate_cpu_vs_uncompressed"]["goal"] == "<= 1.75"
    assert quick["deflate_cpu_vs_uncompressed"]["full_goal"] == "<= 1.15"
    assert quick["deflate_cpu_vs_uncompressed"]["verdict"] == "PASS"
    assert full["deflate_cpu_vs_uncompressed"]["verdict"] == "FAIL"
    # p99 7.1 ms over the reference: within the quick preset's 10 ms, not the full run's 0.5
    assert quick["deflate_p99_ms_vs_uncompressed_plus_0.5"]["goal"] == "<= 11.9"
    assert quick["deflate_p99_ms_vs_uncompressed_plus_0.5"]["verdict"] == "PASS"
    assert full["deflate_p99_ms_vs_uncompressed_plus_0.5"]["verdict"] == "FAIL"
    # bytes are not noisy: the same 0.4 in both
    assert quick["deflate_bytes_vs_uncompressed"]["goal"] == "<= 0.4"
    assert "full_goal" not in quick["deflate_bytes_vs_uncompressed"]


def test_compressing_per_connection_fails_the_quick_gate() -> None:
    # What uvicorn's own deflate does: every frame compressed again for every client.
    checks = goals(deflate_run(cost=27.0, ws_cost=26.0), "quick")
    assert checks["deflate_cpu_vs_uncompressed"]["verdict"] == "FAIL"  # 4.15x > 1.75x
    assert checks["deflate_cpu_vs_websockets_deflate"]["verdict"] == "FAIL"  # 1.04x > 0.75x
    status, line = gate(checks)
    assert status == GATE_FAILED == 3
    assert line == (
        "gate: FAIL (deflate_cpu_vs_uncompressed, deflate_cpu_vs_websockets_deflate): exit status 3"
    )
    text = goals_text(checks, "quick")
    assert "  FAIL  deflate_cpu_vs_uncompressed" in text
    assert "(goal <= 1.75; full run <= 1.15)" in text


def test_a_server_that_does_not_compress_fails_on_bytes() -> None:
    checks = goals(deflate_run(wire=1332.1), "quick")
    assert checks["deflate_bytes_vs_uncompressed"]["value"] == 1.0
    assert checks["deflate_bytes_vs_uncompressed"]["verdict"] == "FAIL"


def test_the_bytes_goal_is_a_floor_when_deflate_itself_cannot_meet_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(report, "book_floor", lambda: 0.45)
    checks = goals(deflate_run(wire=600.0), "full")
    assert checks["deflate_bytes_vs_uncompressed"]["verdict"] == "FLOOR"
    assert (
        "(level 9, 15-bit window: the floor) 0.450"
        in checks["deflate_bytes_vs_uncompressed"]["context"]
    )
    assert gate(checks)[0] == 0


def test_a_timing_goal_missed_in_a_starved_run_is_not_judged() -> None:
    busy = goals(deflate_run(p99=30.0, wait=55.0), "quick")
    check = busy["deflate_p99_ms_vs_uncompressed_plus_0.5"]
    assert check["verdict"] == "NOISY"
    assert check["context"] == "not judged: deflate / marketcast waited 55 % of its window"
    assert gate(busy) == (
        0,
        "gate: PASS (3 goal(s) passed, none failed; not judged on a busy machine: "
        "deflate_p99_ms_vs_uncompressed_plus_0.5)",
    )
    # CPU per delivery is judged however busy the machine was
    busy_cpu = goals(deflate_run(cost=27.0, wait=55.0), "quick")
    assert busy_cpu["deflate_cpu_vs_uncompressed"]["verdict"] == "FAIL"
    # the same miss in a run that was not starved fails (the cores were 88 % busy with
    # other work all along: that alone is no excuse); a goal met under noise passes
    quiet = goals(deflate_run(p99=30.0), "quick")
    assert quiet["deflate_p99_ms_vs_uncompressed_plus_0.5"]["verdict"] == "FAIL"
    met = goals(deflate_run(wait=55.0), "quick")
    assert met["deflate_p99_ms_vs_uncompressed_plus_0.5"]["verdict"] == "PASS"


def test_only_a_starved_run_of_marketcast_excuses_a_miss() -> None:
    run = deflate_run(p99=30.0)
    # the reference run starved: its p99 only rose, which loosened the bar; still a miss
    run["deflate_ref"]["marketcast"].figures["server_wait_pct"] = 35.0
    assert goals(run, "full")["deflate_p99_ms_vs_uncompressed_plus_0.5"]["verdict"] == "FAIL"
    # marketcast's own clients starved: not judged
    run["deflate"]["marketcast"].figures["client_wait_pct"] = 35.0
    check = goals(run, "full")["deflate_p99_ms_vs_uncompressed_plus_0.5"]
    assert check["verdict"] == "NOISY"
    assert check["context"] == "not judged: deflate / marketcast waited 35 % of its window"
    # and so does the hypervisor taking a core
    run["deflate"]["marketcast"].figures["client_wait_pct"] = 1.0
    run["deflate"]["marketcast"].figures["client_core"] = {**CORES, "steal_pct": 25.0}
    assert goals(run, "full")["deflate_p99_ms_vs_uncompressed_plus_0.5"]["verdict"] == "NOISY"


def test_wall_clock_saturation_is_a_timing_goal_per_cpu_second_is_not() -> None:
    def saturation(per_cpu_s: float) -> dict[str, CaseResult]:
        return {
            "marketcast": case(
                "marketcast",
                "saturation",
                wait=80.0,
                delivered_per_s=60_000.0,
                delivered_per_cpu_s=per_cpu_s,
            ),
            "websockets": case(
                "websockets",
                "saturation",
                delivered_per_s=150_000.0,
                delivered_per_cpu_s=250_000.0,
            ),
        }

    checks = goals({"saturation": saturation(300_000.0)}, "quick")
    assert checks["saturation_vs_websockets"]["value"] == 0.4
    assert checks["saturation_vs_websockets"]["verdict"] == "NOISY"
    assert checks["saturation_vs_websockets_per_cpu_s"]["verdict"] == "PASS"
    # 0.6x < 0.8x per CPU-second: judged however starved the run was
    slower = goals({"saturation": saturation(150_000.0)}, "quick")
    assert slower["saturation_vs_websockets_per_cpu_s"]["verdict"] == "FAIL"


def test_p99_goal_is_a_floor_when_the_compress_once_floor_misses_it_too() -> None:
    run = deflate_run(p99=13.0)
    run["deflate_ref"]["raw"] = case("raw", "deflate_ref", p99_ms=1.5)
    run["deflate"]["raw"] = case("raw", "deflate", p99_ms=12.0)
    full = goals(run, "full")["deflate_p99_ms_vs_uncompressed_plus_0.5"]
    assert full["verdict"] == "FLOOR"
    assert full["context"] == "raw (compressed once) 12.0 ms vs 1.5 ms"
    # the quick preset has no raw run to stand for the floor: 13.0 > 1.9 + 10 ms fails
    assert goals(run, "quick")["deflate_p99_ms_vs_uncompressed_plus_0.5"]["verdict"] == "FAIL"


def test_memory_against_websockets_is_judged_at_10k_connections_only() -> None:
    def idle(name: str, mine: float) -> dict[str, CaseResult]:
        return {
            "marketcast": case("marketcast", name, kib_per_conn=mine),
            "websockets": case("websockets", name, kib_per_conn=15.0),
        }

    checks = goals({"idle_500": idle("idle_500", 13.6), "idle_10k": idle("idle_10k", 21.2)})
    assert checks["idle_10k_kib_per_conn_vs_websockets"] == {
        "value": 1.413,
        "goal": "<= 1",
        "met": False,
        "verdict": "FAIL",
    }
    assert checks["idle_500_kib_per_conn_vs_websockets"]["verdict"] == "INFO"
    assert checks["idle_10k_kib_per_conn"]["verdict"] == "PASS"  # 21.2 <= 24 KiB
    assert "not checked here: met" in goals_text(
        {"x": checks["idle_500_kib_per_conn_vs_websockets"]}
    )


def test_the_absolute_cpu_budget_is_a_full_run_goal() -> None:
    market = {
        "marketcast": case(
            "marketcast", "market", cpu_us_per_delivery=12.0, sys_us_per_delivery=8.0
        ),
        "raw": case("raw", "market", cpu_us_per_delivery=9.5, sys_us_per_delivery=7.0),
    }
    assert goals({"market": market}, "quick")["market_cpu_us_per_delivery"]["verdict"] == "INFO"
    # raw does it in 9.5 µs here, so 12 µs is marketcast's miss
    assert goals({"market": market}, "full")["market_cpu_us_per_delivery"]["verdict"] == "FAIL"


def test_checks_from_elsewhere_without_a_verdict_are_judged_by_met() -> None:
    assert gate({"a": {"value": 1, "goal": ">= 2", "met": False}})[0] == GATE_FAILED
    assert gate({"a": {"value": 3, "goal": ">= 2", "met": True}})[0] == 0
    assert gate({}) == (0, "gate: PASS (0 goal(s) passed, none failed)")


def test_json_line_carries_the_gate_and_the_skipped_targets() -> None:
    run = deflate_run(cost=27.0)
    scenarios = [QUICK_DEFLATE_REF]
    meta = {"mode": "quick", "targets": ["marketcast", "fastws", "websockets"]}
    document = json.loads(json_line(meta, scenarios, run))
    assert document["gate"] == {
        "exit_status": 3,
        "summary": "gate: FAIL (deflate_cpu_vs_uncompressed, deflate_cpu_vs_websockets_deflate): "
        "exit status 3",
    }
    assert document["scenarios"]["deflate_ref"]["skipped"] == ["fastws"]
    assert document["goals"]["deflate_cpu_vs_uncompressed"]["verdict"] == "FAIL"


def test_deflate_tables_show_bytes_and_the_compressed_share() -> None:
    run = deflate_run()
    deflate = next(s for s in QUICK if s.name == "deflate")
    text = table(deflate, run["deflate"], ["fastws"])
    header = text.splitlines()[1]
    assert "B/deliv" in header
    assert "deflate%" in header
    assert "  - not run: fastws (this scenario runs marketcast, websockets, raw only)" in text
    assert "B/deliv" not in table(next(s for s in QUICK if s.name == "market"), {})


def test_both_presets_pair_deflate_with_a_reference_that_differs_in_the_offer_only() -> None:
    for scenarios in (FULL, QUICK):
        by_name = {s.name: s for s in scenarios}
        ref, deflate = by_name["deflate_ref"], by_name["deflate"]
        assert not ref.deflate
        assert deflate.deflate
        assert {**vars(ref), "name": "deflate", "deflate": True} == vars(deflate)
        assert deflate.frame == "book"
        assert deflate.quickack
        assert deflate.runs("raw")
        assert not deflate.runs("fastws")
    full = {s.name: s for s in FULL}["deflate"]
    assert (full.clients, full.topics, full.subscribers_per_topic) == (1000, 100, 100.0)
    assert full.publish_rate == 250.0
    assert [s.name for s in preset(True, names=["deflate_ref", "deflate"])] == [
        "deflate_ref",
        "deflate",
    ]


# -- every server gets the same GC treatment ------------------------------------------------


def test_every_server_freezes_its_gc_by_default() -> None:
    assert parse_args([]).gc_freeze is True
    assert parse_args(["--gc-freeze"]).gc_freeze is True
    assert parse_args(["--no-gc-freeze"]).gc_freeze is False
    bench = Bench(clients=[], log_dir=os.devnull, server_cpu=0, client_cpu=1, nofile=1)  # type: ignore[arg-type]
    assert bench.gc_freeze is True


def test_gc_choice_is_recorded_for_the_header_and_the_json_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MARKETCAST_GC_FREEZE", raising=False)
    assert gc_treatment(True) == {
        "freeze_before_publish": True,
        "marketcast_gc_freeze": "true",
        "summary": "every server runs gc.collect(); gc.freeze() before it publishes (the "
        "default; marketcast also freezes on its own, MARKETCAST_GC_FREEZE)",
    }
    assert gc_treatment(False) == {
        "freeze_before_publish": False,
        "marketcast_gc_freeze": "false",
        "summary": "no server freezes (--no-gc-freeze; marketcast with MARKETCAST_GC_FREEZE=false)",
    }


def test_no_gc_freeze_turns_marketcasts_own_freezes_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETCAST_GC_FREEZE", "true")
    apply_gc_choice(freeze=True)
    assert os.environ["MARKETCAST_GC_FREEZE"] == "true"
    apply_gc_choice(freeze=False)
    assert os.environ["MARKETCAST_GC_FREEZE"] == "false"


def test_deflate_cpu_is_a_floor_when_compressing_once_costs_raw_as_much() -> None:
    run = deflate_run(cost=8.0, plain_cost=6.6)  # 1.21x
    run["deflate_ref"]["raw"] = case("raw", "deflate_ref", cpu_us_per_delivery=5.0)
    run["deflate"]["raw"] = case("raw", "deflate", cpu_us_per_delivery=6.0)  # 1.2x
    check = goals(run, "full")["deflate_cpu_vs_uncompressed"]
    assert check["verdict"] == "FLOOR"
    assert check["context"] == (
        "8.0 vs 6.6 µs per delivery (100 % of its frames compressed); raw (compressed once) 1.200"
    )
    run["deflate"]["raw"].figures["cpu_us_per_delivery"] = 5.5  # 1.1x: raw meets it
    assert goals(run, "full")["deflate_cpu_vs_uncompressed"]["verdict"] == "FAIL"
