"""The abuse benchmark's table, verdicts and JSON line.

Every attack window is judged against the baseline window of the same run (same server
process, same machine, minutes apart): an absolute gap or round trip moves with whatever
else the shared machine does, the difference much less. Pure functions over the window
records that ``abuse`` collects, so the arithmetic is checked by unit tests.
"""

from __future__ import annotations

import json
from typing import Any

from .abuse_stats import GAP_GROWTH_LIMIT_MS, PING_P99_LIMIT_MS, gap_growth_ms, verdict

BASELINE = "baseline"

#: (dotted path in a window record, column title)
COLUMNS = [
    ("bystander.ping.p50_ms", "ping p50"),
    ("bystander.ping.p99_ms", "ping p99"),
    ("bystander.ping.max_ms", "ping max"),
    ("bystander.longest_gap_ms", "max gap"),
    ("gap_growth_ms", "gap +"),
    ("bystander.readyz.max_ms", "readyz max"),
]

LEGEND = f"""columns (all ms, measured by the bystander: one client subscribed to a bars and a
quotes topic, pinging every 50 ms, and probing /readyz on a fresh connection every 200 ms):
ping p50/p99/max = application ping -> pong round trip; max gap = longest time without an
update; gap + = max gap minus the baseline window's; readyz max = slowest /readyz.
Goals (issue 19): gap + <= {GAP_GROWTH_LIMIT_MS:g} ms and ping p99 < {PING_P99_LIMIT_MS:g} ms.
A window runs from the attack's start until the server has settled after it (at least 1 s
after the attack stopped: /readyz fast again, the bystander receiving updates), so a freeze
that outlasts the attack counts."""


def judge(records: list[dict[str, Any]]) -> None:
    """Add ``gap_growth_ms`` and ``verdict`` to every record, against the first baseline."""
    baseline = next((r for r in records if r["name"] == BASELINE), None)
    base_gap = None if baseline is None else baseline["bystander"]["longest_gap_ms"]
    for record in records:
        growth = gap_growth_ms(record["bystander"]["longest_gap_ms"], base_gap)
        met, text = verdict(growth, record["bystander"]["ping"]["p99_ms"])
        record["gap_growth_ms"] = growth
        record["verdict"] = {"met": met, "text": text}


def goals(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per attack window, whether it met the goals; and whether all did."""
    attacks = [r for r in records if not r["name"].startswith(BASELINE)]
    return {
        "gap_growth_limit_ms": GAP_GROWTH_LIMIT_MS,
        "ping_p99_limit_ms": PING_P99_LIMIT_MS,
        "met": {r["name"]: r["verdict"]["met"] for r in attacks},
        "all_met": all(r["verdict"]["met"] for r in attacks) if attacks else None,
    }


def _get(record: dict[str, Any], key: str) -> Any:
    value: Any = record
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(records: list[dict[str, Any]]) -> str:
    width = max([len(r["label"]) for r in records] + [6])
    header = f"{'window':<{width}}" + "".join(f"{title:>11}" for _, title in COLUMNS)
    lines = [header + "  verdict"]
    for record in records:
        cells = "".join(f"{_cell(_get(record, key)):>11}" for key, _ in COLUMNS)
        lines.append(f"{record['label']:<{width}}{cells}  {record['verdict']['text']}")
    return "\n".join(lines)


def notes(records: list[dict[str, Any]]) -> list[str]:
    """One line per window: what the attack got back (refusals, closes) and what it cost."""
    lines = []
    for record in records:
        parts = []
        if record.get("tally"):
            parts.append(" ".join(f"{k}={v}" for k, v in sorted(record["tally"].items())))
        server = record.get("server", {})
        if server:
            parts.append(
                f"server CPU {server.get('cpu_pct')} %, log +{server.get('log_kib')} KiB "
                f"({server.get('error_lines')} ERROR, {server.get('traceback_lines')} traceback)"
            )
        bystander = record["bystander"]
        if bystander["ping"]["unanswered"]:
            parts.append(f"{bystander['ping']['unanswered']} ping(s) unanswered at the report")
        if bystander.get("pings_held_back"):
            parts.append(f"{bystander['pings_held_back']} ping(s) held back (20 in flight)")
        if bystander["readyz"]["not_200"]:
            by_status = bystander["readyz"].get("not_200_by_status")
            parts.append(f"/readyz without 200 (by status, 0 = no answer): {by_status}")
        if bystander.get("closes"):
            parts.append(f"bystander closed: {bystander['closes']}")
        if record.get("recovery_s") is not None and record.get("tally"):
            parts.append(f"settled {record['recovery_s']} s after the attack stopped")
        if record.get("recovered") is False:
            parts.append("NOT settled within the limit (the next window starts anyway)")
        lines.append(f"  - {record['label']}: " + "; ".join(parts))
        lines.extend(f"  ! {record['label']}: {w}" for w in warnings(record))
    return lines


def warnings(record: dict[str, Any]) -> list[str]:
    """An attack that never reached what it attacks proves nothing: say so next to its
    verdict (e.g. every history request refused as malformed)."""
    tally = record.get("tally", {})
    if record["name"] == "rest_flood":
        served = tally.get("http:200", 0) + tally.get("http:429", 0)
        if not served:
            answers = {k: v for k, v in tally.items() if k.startswith("http:")}
            return [f"no request reached the history route (answers: {answers or 'none'})"]
    return []


def json_line(meta: dict[str, Any], records: list[dict[str, Any]]) -> str:
    document = {
        "bench": "marketcast-abuse",
        "version": 1,
        **meta,
        "goals": goals(records),
        "windows": records,
    }
    return json.dumps(document, separators=(",", ":"))
