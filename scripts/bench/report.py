"""The human table, the ratios, the goal checks, the gate and the one machine-readable JSON line.

Ratios are marketcast / baseline for every figure, both measured in the same run: a noisy
machine slows every target alike, so a ratio moves much less from run to run than an absolute
figure. Whether a ratio above 1 is good depends on the figure (``HIGHER_IS_BETTER``).

The gate (``goals``, ``gate``): every goal of issues 8 and 16 that the run has the figures
for gets a verdict, and the run exits with ``GATE_FAILED`` when one is FAIL — in the quick
preset (``make bench BENCH_ARGS=--quick``) and in the full run alike. Verdicts:

- PASS / FAIL: the goal is checked in this mode, and met / not met;
- FLOOR: missed, but the same run measured a floor that misses it too, so no server could
  meet it on this machine: reported, not failed. The floors: ``raw``'s CPU per delivery
  above the µs budget; ``raw`` compressing once per frame, over 1.15 times its uncompressed
  CPU per delivery or 0.5 ms over its uncompressed p99 (these three in the full run only:
  the quick preset has no ``raw``); and deflate itself (level 9, 15-bit window) above the
  bytes ratio on these frames;
- NOISY: a timing goal (deliveries per wall-clock second, a p99) missed while marketcast's
  run was starved: its server, or one of its client processes, was ready to run but waited
  for its core (other work on it) more than ``NOISE_PCT`` (20 %) of the window, or the
  hypervisor stole that much of a core. Noise makes such figures worse, never better: a goal
  met under noise is a PASS, a baseline's noisy run only loosens the bar, and a miss in a
  starved run is not judged (rerun on a quieter machine). How busy the cores were with
  other work is not the test: a server that needs 5 % of a core is served at once on a core
  others keep 90 % busy. CPU per delivery, bytes, counts and memory are always judged;
- INFO: not checked in this mode (shown with whether the full-run goal would be met).

The full run checks each goal as the issue states it. The quick preset measures 1-2-s windows
with fewer clients, where one scheduling hiccup moves a p99 by milliseconds and the server's
CPU time, read in 10-ms ticks, is 60-200 ms a case (±1-2 ticks: ±10-30 % per figure, more for
a ratio of two); its thresholds (``QUICK_LIMITS``) are the issue's, widened only as far as
that noise needs on this shared machine, and still well inside what a real regression does:

- saturation against ``websockets`` / FastWS (deliveries per second and per CPU-second):
  0.8 times the full run's ratio (>= 0.8, >= 2.0); quick runs measure ~0.9-2x and ~2.7-4x;
- slow consumers' p99 against the run without stalled clients (when both run): <= 2.5;
- CPU with deflate against without it, and against ``websockets``' own deflate: <= 1.75
  and <= 0.75 (full: 1.15 and 0.5); compressing per connection instead of once per frame
  measures ~4x and ~1x;
- "p99 within 0.5 ms of" another run: within ``QUICK_P99_SLACK_MS`` (10 ms) instead: healthy
  quick runs on this shared machine measure p99s of 1-8 ms with the server waiting 10-15 % of
  the window for its core; a write path that batches or queues fails (a 20-ms write delay,
  ``MARKETCAST_WS_WRITE_DELAY=0.02``, measures 36 ms; compressing per connection and falling
  behind, 70 ms);
- counts and sizes, which noise does not move (healthy clients get 100 % of the updates,
  KiB per idle connection, bytes per delivery): the same threshold;
- an absolute CPU budget (µs per delivery) and goals defined at a size the quick preset
  does not run (memory at 10,000 connections): INFO only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .books import TABLE_NOTE as LEVELS_NOTE
from .cases import CaseResult
from .common import BookFrames, deflate_ratio
from .scenarios import Scenario

SUBJECT = "marketcast"
#: Exit status of a run whose gate has a FAIL (0: no FAIL; 1 and 2: the run itself failed).
GATE_FAILED = 3
#: The quick preset's thresholds of ratio goals, by their full-run threshold's goal name
#: (see the module's docstring): (operator, full run, quick preset).
QUICK_LIMITS: dict[str, tuple[str, float, float]] = {
    "saturation_vs_websockets": (">=", 1.0, 0.8),
    "saturation_vs_fastws": (">=", 2.5, 2.0),
    "slow_p99_vs_ref": ("<=", 2.0, 2.5),
    "deflate_cpu_vs_uncompressed": ("<=", 1.15, 1.75),
    "deflate_cpu_vs_websockets_deflate": ("<=", 0.5, 0.75),
}
#: The quick preset's slack on "p99 within 0.5 ms of" goals, ms.
QUICK_P99_SLACK_MS = 10.0
#: Above this share of its window spent waiting for a core (see ``noise_pct``), a run's
#: missed timing goal is NOISY rather than FAIL.
NOISE_PCT = 20.0

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
    ("wire_bytes_per_delivery", "B/deliv"),
    ("compressed_pct", "deflate%"),
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
    "wire_bytes_per_delivery",
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


def goals(
    by_scenario: dict[str, dict[str, CaseResult]], mode: str = "full"
) -> dict[str, dict[str, Any]]:
    """The issues' goals, checked against this run where the run has the figures.

    ``mode`` is the preset, ``full`` or ``quick``: which thresholds apply (see the module's
    docstring). Each check has ``value``, ``goal`` (this mode's threshold), ``met``,
    ``verdict`` (PASS, FAIL, FLOOR or INFO), ``full_goal`` where the quick threshold differs,
    and some a ``context`` line (the floor, the baselines' figures)."""
    if mode not in ("full", "quick"):
        raise ValueError(f"mode must be 'full' or 'quick', got {mode!r}")
    goal = _Goals(by_scenario, quick=mode == "quick")
    checks: dict[str, dict[str, Any]] = {}
    # Saturation twice: per wall-clock second (the goal as written) and per server CPU second
    # (the same comparison with other work on the machine factored out).
    for figure, suffix in (("delivered_per_s", ""), ("delivered_per_cpu_s", "_per_cpu_s")):
        mine = goal.fig("saturation", SUBJECT, figure)
        for baseline in ("websockets", "fastws"):
            theirs = goal.fig("saturation", baseline, figure)
            if mine and theirs:
                check = goal.ratio(f"saturation_vs_{baseline}", mine / theirs)
                if figure == "delivered_per_s":
                    goal.timing(check, "saturation")
                checks[f"saturation_vs_{baseline}{suffix}"] = check
    p99 = goal.fig("market", SUBJECT, "p99_ms")
    ws_p99 = goal.fig("market", "websockets", "p99_ms")
    if p99 is not None and ws_p99 is not None:
        check = goal.within(p99, ws_p99, 0.5)
        goal.timing(check, "market")
        checks["market_p99_ms_vs_websockets_plus_0.5"] = check
    cost = goal.fig("market", SUBJECT, "cpu_us_per_delivery")
    if cost is not None:
        checks["market_cpu_us_per_delivery"] = goal.market_cpu(cost)
    healthy = goal.fig("slow", SUBJECT, "healthy_pct_of_published")
    if healthy is not None:
        checks["slow_healthy_pct"] = _check(healthy, ">=", 100.0)
    slow_p99 = goal.fig("slow", SUBJECT, "p99_ms")
    ref_p99 = goal.fig("slow_ref", SUBJECT, "p99_ms")
    if slow_p99 is not None and ref_p99:
        check = goal.ratio("slow_p99_vs_ref", slow_p99 / ref_p99)
        goal.timing(check, "slow")
        checks["slow_p99_vs_ref"] = check
    for idle in [name for name in by_scenario if name.startswith("idle")]:
        kib = goal.fig(idle, SUBJECT, "kib_per_conn")
        if kib is not None:
            checks[f"{idle}_kib_per_conn"] = _check(kib, "<=", 24.0)
        ws_kib = goal.fig(idle, "websockets", "kib_per_conn")
        if kib is not None and ws_kib:
            # Issue 16: at 10,000 connections, at most what bare ``websockets`` takes.
            check = _check(kib / ws_kib, "<=", 1.0)
            if idle != "idle_10k":
                check["verdict"] = "INFO"
                check["context"] = "the goal is set at 10,000 connections (idle_10k)"
            checks[f"{idle}_kib_per_conn_vs_websockets"] = check
    checks.update(goal.deflate())
    for check in checks.values():
        check.setdefault("verdict", "PASS" if check["met"] else "FAIL")
    return checks


class _Goals:
    """One run's figures and the mode's thresholds, for ``goals``."""

    def __init__(self, by_scenario: dict[str, dict[str, CaseResult]], *, quick: bool) -> None:
        self.by_scenario = by_scenario
        self.quick = quick

    def fig(self, scenario: str, target: str, figure: str) -> Any:
        case = self.by_scenario.get(scenario, {}).get(target)
        return None if case is None else case.figures.get(figure)

    def timing(self, check: dict[str, Any], scenario: str) -> None:
        """Make a missed timing goal NOISY when marketcast's run in ``scenario`` (the run
        judged; the other run compared is the bar) was starved (``noise_pct``)."""
        if check["met"] or check.get("verdict") is not None:
            return
        case = self.by_scenario.get(scenario, {}).get(SUBJECT)
        noise = 0.0 if case is None else noise_pct(case.figures)
        if noise > NOISE_PCT:
            check["verdict"] = "NOISY"
            note = f"not judged: {scenario} / {SUBJECT} waited {noise:g} % of its window"
            check["context"] = f"{check['context']}; {note}" if "context" in check else note

    def ratio(self, goal: str, value: float) -> dict[str, Any]:
        """The ratio goal ``goal`` (``QUICK_LIMITS``), at this mode's threshold."""
        op, full, quick = QUICK_LIMITS[goal]
        if not self.quick:
            return _check(value, op, full)
        return _check(value, op, quick, full=full)

    def within(self, value: float, reference: float, slack_ms: float) -> dict[str, Any]:
        """A "p99 within ``slack_ms`` of ``reference``" goal; in the quick preset within
        ``QUICK_P99_SLACK_MS``."""
        if not self.quick:
            return _check(value, "<=", round(reference + slack_ms, 3))
        check = _check(value, "<=", round(reference + QUICK_P99_SLACK_MS, 3))
        check["full_goal"] = f"<= {round(reference + slack_ms, 3):g}"
        return check

    def market_cpu(self, cost: float) -> dict[str, Any]:
        """Issue 8: at most 10 µs of server CPU per delivery in ``market``. Absolute, so
        full run only; FLOOR when ``raw``'s own cost in the same run is above it."""
        fig = self.fig
        check = _check(cost, "<=", 10.0)
        # What limits it: the kernel's share, and the floor of one raw write per delivery.
        context = [f"kernel {fig('market', SUBJECT, 'sys_us_per_delivery')} µs of it"]
        for baseline in ("raw", "websockets"):
            theirs = fig("market", baseline, "cpu_us_per_delivery")
            if theirs is not None:
                kernel = fig("market", baseline, "sys_us_per_delivery")
                context.append(f"{baseline} {theirs} µs (kernel {kernel})")
        check["context"] = "; ".join(context)
        floor = fig("market", "raw", "cpu_us_per_delivery")
        if self.quick:
            check["verdict"] = "INFO"
        elif not check["met"] and floor is not None and floor > 10.0:
            check["verdict"] = "FLOOR"
        return check

    def deflate(self) -> dict[str, dict[str, Any]]:
        """Issue 16's compression goals: marketcast with deflate (``deflate``) against itself
        without it (``deflate_ref``, the same load otherwise) and against bare ``websockets``'
        own per-connection deflate."""
        fig = self.fig
        checks: dict[str, dict[str, Any]] = {}
        cost = fig("deflate", SUBJECT, "cpu_us_per_delivery")
        plain_cost = fig("deflate_ref", SUBJECT, "cpu_us_per_delivery")
        if cost and plain_cost:
            check = self.ratio("deflate_cpu_vs_uncompressed", cost / plain_cost)
            check["context"] = f"{cost} vs {plain_cost} µs per delivery" + self._compressed(SUBJECT)
            raw = fig("deflate", "raw", "cpu_us_per_delivery")
            raw_plain = fig("deflate_ref", "raw", "cpu_us_per_delivery")
            if raw and raw_plain:
                check["context"] += f"; raw (compressed once) {raw / raw_plain:.3f}"
                limit = QUICK_LIMITS["deflate_cpu_vs_uncompressed"][1]
                if not check["met"] and not self.quick and raw / raw_plain > limit:
                    check["verdict"] = "FLOOR"
            checks["deflate_cpu_vs_uncompressed"] = check
        ws_cost = fig("deflate", "websockets", "cpu_us_per_delivery")
        if cost and ws_cost:
            check = self.ratio("deflate_cpu_vs_websockets_deflate", cost / ws_cost)
            raw = fig("deflate", "raw", "cpu_us_per_delivery")
            check["context"] = f"websockets {ws_cost} µs" + self._compressed("websockets")
            if raw is not None:
                check["context"] += f"; raw (compressed once) {raw} µs"
            checks["deflate_cpu_vs_websockets_deflate"] = check
        wire = fig("deflate", SUBJECT, "wire_bytes_per_delivery")
        plain_wire = fig("deflate_ref", SUBJECT, "wire_bytes_per_delivery")
        if wire and plain_wire:
            check = _check(wire / plain_wire, "<=", 0.4)
            floor = book_floor()
            check["context"] = (
                f"{wire} vs {plain_wire} bytes per delivery; deflate itself on these frames "
                f"(level 9, 15-bit window: the floor) {floor:.3f}"
            )
            for target in ("websockets", "raw"):
                theirs = fig("deflate", target, "wire_bytes_per_delivery")
                reference = fig("deflate_ref", target, "wire_bytes_per_delivery")
                if theirs and reference:
                    check["context"] += f"; {target} {theirs / reference:.3f}"
            if not check["met"] and floor > 0.4:
                check["verdict"] = "FLOOR"
            checks["deflate_bytes_vs_uncompressed"] = check
        p99 = fig("deflate", SUBJECT, "p99_ms")
        plain_p99 = fig("deflate_ref", SUBJECT, "p99_ms")
        if p99 is not None and plain_p99 is not None:
            check = self.within(p99, plain_p99, 0.5)
            raw, raw_plain = fig("deflate", "raw", "p99_ms"), fig("deflate_ref", "raw", "p99_ms")
            if raw is not None and raw_plain is not None:
                check["context"] = f"raw (compressed once) {raw} ms vs {raw_plain} ms"
                if not check["met"] and not self.quick and raw > raw_plain + 0.5:
                    check["verdict"] = "FLOOR"
            self.timing(check, "deflate")
            checks["deflate_p99_ms_vs_uncompressed_plus_0.5"] = check
        return checks

    def _compressed(self, target: str) -> str:
        share = self.fig("deflate", target, "compressed_pct")
        return "" if share is None else f" ({share:g} % of its frames compressed)"


_FLOOR: list[float] = []


def book_floor() -> float:
    """Deflate's own ratio on the deflate scenarios' frames (``common.deflate_ratio``:
    level 9, 15-bit window, each message on its own), computed once."""
    if not _FLOOR:
        books = BookFrames(1)
        frames = [books.frame(0, BAR_STEP * n, 10**12 + n) for n in range(BOOK_SAMPLE)]
        _FLOOR.append(round(deflate_ratio(frames), 3))
    return _FLOOR[0]


#: Frames sampled for ``book_floor``: one of each variant.
BOOK_SAMPLE = 64
BAR_STEP = 60_000


def noise_pct(figures: dict[str, Any]) -> float:
    """How starved a run was, in % of its window: the largest of the server's and the most
    delayed client process's wait for their core (``server_wait_pct``, ``client_wait_pct``)
    and the hypervisor's steal on either core (``stats.core_usage``)."""
    shares = [
        float(figures[key])
        for key in ("server_wait_pct", "client_wait_pct")
        if isinstance(figures.get(key), int | float)
    ]
    for side in ("server_core", "client_core"):
        core = figures.get(side)
        if isinstance(core, dict):
            shares.append(float(core.get("steal_pct", 0.0)))
    return round(max(shares, default=0.0), 1)


def verdict(check: dict[str, Any]) -> str:
    """A check's verdict; one without (from elsewhere) is PASS when met, else FAIL."""
    return str(check.get("verdict") or ("PASS" if check.get("met") else "FAIL"))


def gate(checks: dict[str, dict[str, Any]]) -> tuple[int, str]:
    """(exit status, one line): ``GATE_FAILED`` when a goal's verdict is FAIL, else 0."""
    failed = [name for name, check in checks.items() if verdict(check) == "FAIL"]
    if failed:
        return GATE_FAILED, f"gate: FAIL ({', '.join(failed)}): exit status {GATE_FAILED}"
    passed = sum(1 for check in checks.values() if verdict(check) == "PASS")
    noisy = [name for name, check in checks.items() if verdict(check) == "NOISY"]
    line = f"gate: PASS ({passed} goal(s) passed, none failed"
    if noisy:
        line += f"; not judged on a busy machine: {', '.join(noisy)}"
    return 0, line + ")"


def _check(value: float, op: str, limit: float, *, full: float | None = None) -> dict[str, Any]:
    met = value >= limit if op == ">=" else value <= limit
    check: dict[str, Any] = {"value": round(value, 3), "goal": f"{op} {limit:g}", "met": met}
    if full is not None:
        check["full_goal"] = f"{op} {full:g}"
    return check


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(scenario: Scenario, results: dict[str, CaseResult], skipped: Sequence[str] = ()) -> str:
    columns = IDLE_COLUMNS if scenario.kind == "idle" else LOAD_COLUMNS
    if scenario.mode != "rate":
        columns = [c for c in columns if c[0] != "healthy_pct_of_offered"]
    if scenario.frame == "bar":
        columns = [c for c in columns if c[0] != "wire_bytes_per_delivery"]
    if not scenario.deflate:
        columns = [c for c in columns if c[0] != "compressed_pct"]
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
    if skipped:
        lines.append(
            f"  - not run: {', '.join(skipped)} (this scenario runs "
            f"{', '.join(scenario.targets or ())} only)"
        )
    if scenario.frame == "levels":
        lines.append(f"  - {LEVELS_NOTE}")
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
B/deliv = bytes on the wire per delivery (WebSocket header + payload, compressed or not);
deflate% = share of the frames that arrived compressed (permessage-deflate, RSV1);
wait% = time the server was ready to run while something else had its core (noise);
steal% = server core time the hypervisor gave to another machine."""


def _shown(figure: str, columns: Sequence[tuple[str, str]]) -> bool:
    return any(key == figure for key, _ in columns)


def _title(figure: str, columns: Sequence[tuple[str, str]]) -> str:
    return next(title for key, title in columns if key == figure)


def goals_text(checks: dict[str, dict[str, Any]], mode: str = "full") -> str:
    """The verdict of every goal, one line each (and its context line)."""
    if not checks:
        return ""
    title = "quick preset: thresholds for its short windows" if mode == "quick" else "full run"
    lines = [f"== goals (issues 8 and 16; {title})"]
    for name, check in checks.items():
        goal = f"goal {check['goal']}"
        if "full_goal" in check:
            goal += f"; full run {check['full_goal']}"
        said = verdict(check)
        if said == "INFO":
            goal += "; not checked here: " + ("met" if check["met"] else "missed")
        lines.append(f"  {said:<5} {name:<42} {check['value']:>10} ({goal})")
        if "context" in check:
            lines.append(f"  {'':<48} {check['context']}")
    return "\n".join(lines)


def json_line(
    meta: dict[str, Any],
    scenarios: list[Scenario],
    by_scenario: dict[str, dict[str, CaseResult]],
    checks: dict[str, dict[str, Any]] | None = None,
) -> str:
    """Everything in one line; ``checks`` are the goals already computed (else computed in
    ``meta["mode"]``), with the gate's verdict next to them."""
    document: dict[str, Any] = {"bench": "marketcast-fanout", "version": 1, **meta}
    document["scenarios"] = {
        s.name: {
            "description": s.describe(),
            "results": {t: {**c.figures, "notes": c.notes} for t, c in by_scenario[s.name].items()},
            "ratios": ratios(by_scenario[s.name]),
            "skipped": [t for t in meta.get("targets", []) if not s.runs(t)],
        }
        for s in scenarios
        if s.name in by_scenario
    }
    if checks is None:
        checks = goals(by_scenario, str(meta.get("mode", "full")))
    document["goals"] = checks
    status, line = gate(checks)
    document["gate"] = {"exit_status": status, "summary": line}
    return json.dumps(document, separators=(",", ":"), sort_keys=False)
