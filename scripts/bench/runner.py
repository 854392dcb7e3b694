"""``make bench``: every scenario against every server under test, in one invocation.

The orchestrator pins itself to the clients' core, starts the client processes once, then for
each scenario runs each target in turn (targets interleaved per scenario, so a burst of noise
from other work on the machine hits one scenario's comparison rather than one target), prints
a table per scenario, the goal checks, and finally one JSON line with every figure and ratio.

Every server gets the same GC treatment by default: ``gc.collect(); gc.freeze()`` before it
publishes (marketcast also freezes on its own, ``MARKETCAST_GC_FREEZE``, by default).
``--no-gc-freeze`` turns it off for every server, marketcast's own freezes included.

The exit status is the gate's (``report.gate``): 0 when no goal FAILs, ``GATE_FAILED`` (3)
when one does — in the quick preset and in the full run; 1 (an error) or 2 (bad arguments)
when the run itself failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .cases import Bench, CaseResult, run_case
from .common import pin_to_cpu, raise_nofile
from .ingest import run_in_bench
from .ingest_report import ingest_goals, ingest_text
from .procs import Child
from .report import LEGEND, gate, goals, goals_text, json_line, table
from .scenarios import preset
from .stats import load_average
from .targets import DESCRIPTIONS

FULL_TARGETS = ["marketcast", "fastws", "websockets", "naive", "raw"]
#: --quick leaves out the naive loop and raw, the cheapest baselines to drop, to stay short.
QUICK_TARGETS = ["marketcast", "fastws", "websockets"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench",
        description="Fan-out benchmark: marketcast against its baselines, in one run.",
        epilog="Targets: " + "; ".join(f"{k} = {v}" for k, v in DESCRIPTIONS.items()),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="CI-sized run (~1.5 min): the regression gate, exit status 3 on a FAIL",
    )
    parser.add_argument("--targets", help=f"comma list (default {','.join(FULL_TARGETS)})")
    parser.add_argument("--scenarios", help="comma list, e.g. saturation,market")
    parser.add_argument("--clients", type=int, help="clients in saturation and market")
    parser.add_argument("--client-procs", type=int, default=4, help="client processes (4)")
    parser.add_argument("--measure", type=float, help="seconds measured per load case")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per load case")
    parser.add_argument("--server-cpu", type=int, default=0, help="core of the server (0)")
    parser.add_argument("--client-cpu", type=int, default=1, help="core of the clients (1)")
    parser.add_argument("--log-dir", type=Path, help="keep process logs here")
    parser.add_argument(
        "--loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="event loop of every server under test (uvloop: run with `uv run --with uvloop`)",
    )
    parser.add_argument(
        "--gc-freeze",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="gc.collect() + gc.freeze() in every server before it publishes (the default: "
        "every server gets the same GC treatment); --no-gc-freeze: no server freezes, "
        "marketcast runs with MARKETCAST_GC_FREEZE=false",
    )
    parser.add_argument("--profile", type=Path, help="py-spy marketcast's load runs into DIR")
    parser.add_argument(
        "--marketcast-src",
        type=Path,
        help="a backend/ directory to import marketcast from (e.g. an exported older commit)",
    )
    parser.add_argument(
        "--abuse",
        action="store_true",
        help="instead of the fan-out scenarios: a bystander's latency under each of issue 19's "
        "attacks on a real `marketcast serve` (scripts/bench/abuse.py)",
    )
    parser.add_argument("--attacks", help="with --abuse: comma list (default: all)")
    args = parser.parse_args(argv)
    if args.client_procs < 1:
        parser.error("--client-procs must be at least 1")
    if args.marketcast_src and not (args.marketcast_src / "marketcast").is_dir():
        parser.error(f"--marketcast-src {args.marketcast_src} has no marketcast/ package")
    if args.server_cpu == args.client_cpu:
        parser.error("--server-cpu and --client-cpu must differ: that is the point")
    return args


def _targets(args: argparse.Namespace) -> list[str]:
    if not args.targets:
        return QUICK_TARGETS if args.quick else FULL_TARGETS
    names = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in names if t not in DESCRIPTIONS]
    if unknown:
        raise SystemExit(f"unknown target(s) {unknown}: expected some of {list(DESCRIPTIONS)}")
    return names


async def run(args: argparse.Namespace) -> int:
    scenarios = preset(
        args.quick,
        names=args.scenarios.split(",") if args.scenarios else None,
        clients=args.clients,
        measure_s=args.measure,
        warmup_s=args.warmup,
    )
    targets = _targets(args)
    most = max(s.clients for s in scenarios)
    nofile = most + 1000
    soft, hard = raise_nofile(nofile)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="marketcast-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "targets": targets,
        "gc": gc_treatment(args.gc_freeze),
        "machine": {
            "cpus": os.cpu_count(),
            "server_cpu": args.server_cpu,
            "client_cpu": args.client_cpu,
            "client_procs": args.client_procs,
            "server_loop": args.loop,
            "gc_freeze": args.gc_freeze,
            "python": platform.python_version(),
            "nofile": [soft, hard],
            "load_before": load_average(),
        },
    }
    if hard < most + 100:
        print(
            f"note: the open-files hard limit is {hard}, below the {most} connections of the "
            "largest scenario: some connections will fail and be reported",
            file=sys.stderr,
        )
    started = time.monotonic()
    clients: list[Child] = []
    by_scenario: dict[str, dict[str, CaseResult]] = {}
    try:
        for i in range(args.client_procs):
            client = await Child.start(
                f"client-{i}",
                "scripts.bench.client",
                ["--cpu", str(args.client_cpu), "--nofile", str(nofile)],
                log_dir,
            )
            clients.append(client)
        hellos = [await client.expect("hello", 30) for client in clients]
        meta["machine"]["client_loop"] = hellos[0].get("loop")
        bench = Bench(
            clients=clients,
            log_dir=log_dir,
            server_cpu=args.server_cpu,
            client_cpu=args.client_cpu,
            nofile=nofile,
            profile_dir=args.profile,
            marketcast_src=args.marketcast_src,
            loop=args.loop,
            gc_freeze=args.gc_freeze,
        )
        print(LEGEND, end="\n\n", flush=True)
        print(f"GC: {meta['gc']['summary']}", end="\n\n", flush=True)
        for scenario in scenarios:
            if scenario.kind == "ingest":  # its own runs: memory and Redis, not targets
                began = time.monotonic()
                meta["ingest"] = await run_in_bench(bench, scenario, args.quick)
                _progress(f"{scenario.name}: {time.monotonic() - began:.1f} s")
                print(ingest_text(meta["ingest"]), end="\n\n", flush=True)
                continue
            by_scenario[scenario.name] = {}
            for target in targets:
                if not scenario.runs(target):
                    continue
                began = time.monotonic()
                case = await run_case(bench, scenario, target)
                _progress(f"{scenario.name} / {target}: {time.monotonic() - began:.1f} s")
                by_scenario[scenario.name][target] = case
            skipped = [t for t in targets if not scenario.runs(t)]
            print(table(scenario, by_scenario[scenario.name], skipped), flush=True)
            print(flush=True)
        meta["sources"] = bench.sources
    finally:
        for client in clients:
            await client.stop({"cmd": "quit"})
    meta["duration_s"] = round(time.monotonic() - started, 1)
    meta["machine"]["load_after"] = load_average()
    if args.log_dir is None:
        # A successful run's logs are not worth keeping in /tmp; a failed run never gets here
        # and its logs stay where the error message points.
        shutil.rmtree(log_dir, ignore_errors=True)
    meta["logs"] = str(args.log_dir) if args.log_dir else None
    checks = goals(by_scenario, meta["mode"])
    if "ingest" in meta:
        checks.update(ingest_goals(meta["ingest"], meta["mode"], raw_us_per_delivery(by_scenario)))
    status, verdict = gate(checks)
    if checks:
        print(goals_text(checks, meta["mode"]))
        print(verdict)
    print(
        f"(load average before {_load(meta['machine']['load_before'])}, after "
        f"{_load(meta['machine']['load_after'])}; {meta['duration_s']} s"
        + (f"; logs in {args.log_dir})" if args.log_dir else ")")
    )
    print(json_line(meta, scenarios, by_scenario, checks), flush=True)
    return status


def gc_treatment(freeze: bool) -> dict[str, Any]:
    """What every server's collector does, for the JSON line and the header."""
    if freeze:
        summary = (
            "every server runs gc.collect(); gc.freeze() before it publishes (the default; "
            "marketcast also freezes on its own, MARKETCAST_GC_FREEZE)"
        )
    else:
        summary = "no server freezes (--no-gc-freeze; marketcast with MARKETCAST_GC_FREEZE=false)"
    return {
        "freeze_before_publish": freeze,
        "marketcast_gc_freeze": os.environ.get("MARKETCAST_GC_FREEZE", "true")
        if freeze
        else "false",
        "summary": summary,
    }


def raw_us_per_delivery(by_scenario: dict[str, dict[str, CaseResult]]) -> float | None:
    """The raw baseline's CPU per delivery in this run's ``market`` scenario (None without
    it): what the ingest goals with clients are weighed against (``deliveries_floor``)."""
    case = by_scenario.get("market", {}).get("raw")
    value = None if case is None else case.figures.get("cpu_us_per_delivery")
    return float(value) if value else None


def _load(values: tuple[float, float, float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _check_cpus(args: argparse.Namespace) -> None:
    allowed = os.sched_getaffinity(0)
    missing = {args.server_cpu, args.client_cpu} - allowed
    if missing:
        raise SystemExit(
            f"CPU(s) {sorted(missing)} are not available to this process (it may use "
            f"{sorted(allowed)}): the benchmark needs one core for the server and one for the "
            "clients; choose them with --server-cpu / --client-cpu"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _check_cpus(args)
    if args.abuse:
        from .abuse import main as abuse_main

        return abuse_main(args)
    pin_to_cpu(args.client_cpu)
    return asyncio.run(run(args))
