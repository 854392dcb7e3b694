"""The human table, the ratios, the goal checks and the one machine-readable JSON line.

Ratios are marketcast / baseline for every figure, both measured in the same run: a noisy
machine slows every target alike, so a ratio moves much less from run to run than an absolute
figure. Whether a ratio above 1 is good depends on the figure (``HIGHER_IS_BETTER``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .cases import CaseResult
from .scenarios import Scenario

SUBJECT = "marketcast"

#: Figures shown in the tables, with their column titles.
LOAD_COLUMNS = [
    ("delivered_per_s", "deliv/s"),
    ("delivered_per_cpu_s", "deliv/CPUs"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
    ("max_ms", "max ms"),
    ("server_cpu_pct", "srv CPU%"),
    ("cpu_us_per_delivery", "µs/deliv"),
    ("sys_us_per_delivery", "sys µs"),
    ("healthy_pct_of_published", "ok%pub"),
    ("healthy_pct_of_offered", "ok%offer"),
    ("gc_ms_total", "GC ms"),
    ("client_cpu_pct", "cli CPU%"),
    ("server_wait_pct", "wait%"),
    ("server_core.steal_pct", "steal%"),
]
IDLE_COLUMNS = [
    ("connections", "conns"),
    ("rss_before_kib", "RSS0 KiB"),
    ("rss_after_kib", "RSS1 KiB"),
    ("kib_per_conn", "KiB/conn"),
]
#: Figures that get a marketcast/baseline ratio.
RATIO_FIGURES = [
    "delivered_per_s",
    "delivered_per_cpu_s",
    "p50_ms",
    "p99_ms",
    "max_ms",
    "cpu_us_per_delivery",
    "server_cpu_pct",
    "healthy_pct_of_offered",
    "kib_per_conn",
]
HIGHER_IS_BETTER = {
    "delivered_per_s",
    "delivered_per_cpu_s",
    "healthy_pct_of_offered",
    "healthy_pct_of_published",
}
#: Client CPU above this means the clients, not the server, may have set the pace.
CLIENT_SATURATED_PCT = 90.0


def ratios(results: dict[str, CaseResult]) -> dict[str, dict[str, float]]:
    """Per baseline, marketcast's figure divided by the baseline's."""
    subject = results.get(SUBJECT)
    if subject is None:
        return {}
    out: dict[str, dict[str, float]] = {}
    for name, other in results.items():
        if name == SUBJECT:
            continue
        row = {}
        for figure in RATIO_FIGURES:
            mine, theirs = subject.figures.get(figure), other.figures.get(figure)
            if isinstance(mine, int | float) and isinstance(theirs, int | float) and theirs:
                row[figure] = round(mine / theirs, 3)
        out[name] = row
    return out


def goals(by_scenario: dict[str, dict[str, CaseResult]]) -> dict[str, dict[str, Any]]:
    """The issue's goals, checked against this run where the run has the figures."""

    def fig(scenario: str, target: str, figure: str) -> Any:
        case = by_scenario.get(scenario, {}).get(target)
        return None if case is None else case.figures.get(figure)

    checks: dict[str, dict[str, Any]] = {}
    # Saturation twice: per wall-clock second (the goal as written) and per server CPU second
    # (the same comparison with other work on the machine factored out).
    for figure, suffix in (("delivered_per_s", ""), ("delivered_per_cpu_s", "_per_cpu_s")):
        mine = fig("saturation", SUBJECT, figure)
        for baseline, limit in (("websockets", 1.0), ("fastws", 2.5)):
            theirs = fig("saturation", baseline, figure)
            if mine and theirs:
                checks[f"saturation_vs_{baseline}{suffix}"] = _check(mine / theirs, ">=", limit)
    p99, ws_p99 = fig("market", SUBJECT, "p99_ms"), fig("market", "websockets", "p99_ms")
    if p99 is not None and ws_p99 is not None:
        checks["market_p99_ms_vs_websockets_plus_0.5"] = _check(p99, "<=", ws_p99 + 0.5)
    cost = fig("market", SUBJECT, "cpu_us_per_delivery")
    if cost is not None:
        check = _check(cost, "<=", 10.0)
        # What limits it: the kernel's share, and the floor of one raw write per delivery.
        context = [f"kernel {fig('market', SUBJECT, 'sys_us_per_delivery')} µs of it"]
        for baseline in ("raw", "websockets"):
            theirs = fig("market", baseline, "cpu_us_per_delivery")
            if theirs is not None:
                kernel = fig("market", baseline, "sys_us_per_delivery")
                context.append(f"{baseline} {theirs} µs (kernel {kernel})")
        check["context"] = "; ".join(context)
        checks["market_cpu_us_per_delivery"] = check
    healthy = fig("slow", SUBJECT, "healthy_pct_of_published")
    if healthy is not None:
        checks["slow_healthy_pct"] = _check(healthy, ">=", 100.0)
    slow_p99, ref_p99 = fig("slow", SUBJECT, "p99_ms"), fig("slow_ref", SUBJECT, "p99_ms")
    if slow_p99 is not None and ref_p99:
        checks["slow_p99_vs_ref"] = _check(slow_p99 / ref_p99, "<=", 2.0)
    for idle in [name for name in by_scenario if name.startswith("idle")]:
        kib = fig(idle, SUBJECT, "kib_per_conn")
        if kib is not None:
            checks[f"{idle}_kib_per_conn"] = _check(kib, "<=", 24.0)
    return checks


def _check(value: float, op: str, limit: float) -> dict[str, Any]:
    met = value >= limit if op == ">=" else value <= limit
    return {"value": round(value, 3), "goal": f"{op} {limit:g}", "met": met}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(scenario: Scenario, results: dict[str, CaseResult]) -> str:
    columns = IDLE_COLUMNS if scenario.kind == "idle" else LOAD_COLUMNS
    if scenario.mode != "rate":
        columns = [c for c in columns if c[0] != "healthy_pct_of_offered"]
    lines = [f"== {scenario.name}: {scenario.describe()}"]
    header = f"{'server':<12}" + "".join(f"{title:>11}" for _, title in columns)
    lines.append(header)
    for name, case in results.items():
        cells = "".join(f"{_cell(_get(case.figures, key)):>11}" for key, _ in columns)
        lines.append(f"{name:<12}{cells}")
    for name, case in results.items():
        cpu = case.figures.get("client_cpu_pct")
        if isinstance(cpu, float) and cpu >= CLIENT_SATURATED_PCT:
            lines.append(
                f"  ! {name}: the clients used {cpu:.0f} % of their core; the figure may be "
                "the clients' limit, not the server's"
            )
        closed = case.figures.get("closed_by_server")
        if closed:
            lines.append(f"  - {name}: connections closed by the server, by code: {closed}")
        outcome = case.figures.get("stalled_outcome")
        if outcome:
            lines.append(f"  - {name}: stalled clients at the end (open / close code): {outcome}")
        if case.figures.get("publisher_cancelled"):
            lines.append(f"  - {name}: the publisher was still blocked after the window")
        lines.extend(f"  - {name}: {note}" for note in case.notes)
    for baseline, row in ratios(results).items():
        shown = [f for f in RATIO_FIGURES if f in row and _shown(f, columns)]
        if shown:
            parts = "  ".join(f"{_title(f, columns)} {row[f]:.2f}x" for f in shown)
            lines.append(f"  {SUBJECT}/{baseline}: {parts}")
    return "\n".join(lines)


def _get(figures: dict[str, Any], key: str) -> Any:
    """``figures[key]``, where ``a.b`` reads ``figures["a"]["b"]``."""
    value: Any = figures
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


LEGEND = """columns: deliv/s = updates received per second (in the window);
deliv/CPUs = per second of server CPU (what the server would deliver with its core to
itself; robust to noise);
p50/p99/max = publish -> client receipt; srv CPU% = server process, % of one core;
µs/deliv = server CPU per delivery; ok%pub / ok%offer = share of the updates published /
offered that every healthy client received; cli CPU% = all client processes, % of their core;
GC ms = server time in the garbage collector during the window;
wait% = time the server was ready to run while something else had its core (noise);
steal% = server core time the hypervisor gave to another machine."""


def _shown(figure: str, columns: Sequence[tuple[str, str]]) -> bool:
    return any(key == figure for key, _ in columns)


def _title(figure: str, columns: Sequence[tuple[str, str]]) -> str:
    return next(title for key, title in columns if key == figure)


def goals_text(checks: dict[str, dict[str, Any]]) -> str:
    if not checks:
        return ""
    lines = ["== goals (issue 8)"]
    for name, check in checks.items():
        verdict = "met" if check["met"] else "MISSED"
        lines.append(f"  {name:<40} {check['value']:>10} (goal {check['goal']}): {verdict}")
        if "context" in check:
            lines.append(f"  {'':<40} {check['context']}")
    return "\n".join(lines)


def json_line(
    meta: dict[str, Any],
    scenarios: list[Scenario],
    by_scenario: dict[str, dict[str, CaseResult]],
) -> str:
    document: dict[str, Any] = {"bench": "marketcast-fanout", "version": 1, **meta}
    document["scenarios"] = {
        s.name: {
            "description": s.describe(),
            "results": {t: {**c.figures, "notes": c.notes} for t, c in by_scenario[s.name].items()},
            "ratios": ratios(by_scenario[s.name]),
        }
        for s in scenarios
        if s.name in by_scenario
    }
    document["goals"] = goals(by_scenario)
    return json.dumps(document, separators=(",", ":"), sort_keys=False)
