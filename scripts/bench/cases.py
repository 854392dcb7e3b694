"""One scenario against one server under test: start it, load it, measure, stop it.

The measurement window is defined by publish stamps: the server publishes from "now" until
``t1``; clients count (and time) only updates stamped within [t0, t1), however late they
arrive, and the orchestrator reads the server's and the clients' CPU time at t0 and t1. So
warm-up traffic never pollutes the figures and a backlog still being delivered after t1 is
counted against the window it was published in.

A fresh server process per case: no state, buffers or garbage from one case reaches the next.
The client processes are shared by every case (they hold no state between cases).
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import WS_PATH, now_us, symbol
from .procs import Child
from .scenarios import Scenario
from .stats import (
    Histogram,
    core_ticks,
    core_usage,
    cpu_times,
    rss_kib,
    run_queue_wait_s,
)

#: Seconds to connect one batch of clients (10,000 connections take a while on one core).
CONNECT_TIMEOUT = 120.0
#: After the window, wait until deliveries stop growing, at most this long.
DRAIN_MAX_S = 5.0


@dataclass
class CaseResult:
    target: str
    scenario: str
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Bench:
    """What every case needs: the client processes and where logs and profiles go."""

    clients: list[Child]
    log_dir: Path
    server_cpu: int
    client_cpu: int
    nofile: int
    profile_dir: Path | None = None
    #: A ``backend`` directory to import marketcast from instead of this checkout's.
    marketcast_src: Path | None = None
    #: The server processes' event loop: "asyncio" or "uvloop".
    loop: str = "asyncio"
    #: gc.collect() + gc.freeze() in every server before it publishes (the default); False:
    #: no server freezes, marketcast runs with MARKETCAST_GC_FREEZE=false.
    gc_freeze: bool = True
    #: Where each target's code was imported from, as the server processes report it.
    sources: dict[str, str] = field(default_factory=dict)


async def run_case(bench: Bench, scenario: Scenario, target: str) -> CaseResult:
    result = CaseResult(target, scenario.name)
    args = ["--target", target, "--cpu", str(bench.server_cpu), "--topics", str(scenario.topics)]
    args += ["--nofile", str(bench.nofile), "--sndbuf", str(scenario.server_sndbuf)]
    args += ["--loop", bench.loop, "--frame", scenario.frame]
    if not bench.gc_freeze:
        args.append("--no-gc-freeze")
    launched = now_us()
    server = await Child.start(
        f"server-{scenario.name}-{target}",
        "scripts.bench.server",
        args,
        bench.log_dir,
        import_first=bench.marketcast_src if target == "marketcast" else None,
    )
    try:
        ready = await server.expect("ready", 60)
        result.figures["startup_s"] = round((now_us() - launched) / 1e6, 2)
        bench.sources[target] = str(ready.get("source"))
        soft_nofile = int(ready["nofile"][0])
        if soft_nofile < scenario.clients + 100:
            result.notes.append(
                f"server open-files limit is {soft_nofile} (hard limit {ready['nofile'][1]}): "
                f"too low for {scenario.clients} connections"
            )
        if scenario.kind == "idle":
            await _idle(bench, scenario, server, int(ready["port"]), result)
        else:
            await _load(bench, scenario, server, int(ready["port"]), result)
    finally:
        stopping = now_us()
        await asyncio.gather(
            *(
                client.ask({"cmd": "disconnect"}, "disconnected", 30)
                for client in bench.clients
                if client.process.returncode is None
            )
        )
        await server.stop({"cmd": "stop"})
        result.figures["teardown_s"] = round((now_us() - stopping) / 1e6, 2)
    return result


def _specs(scenario: Scenario) -> list[dict[str, Any]]:
    """Connection specs: client i subscribes to topics i*k .. i*k+k-1 (mod topics), so
    every topic gets the same number of subscribers; the first ``stalled`` ones stall."""
    per, topics = scenario.topics_per_client, scenario.topics
    return [
        {
            "symbols": [symbol((i * per + j) % topics) for j in range(per)],
            "stall": i < scenario.stalled,
        }
        for i in range(scenario.clients)
    ]


async def _connect(
    bench: Bench,
    port: int,
    specs: list[dict[str, Any]],
    deflate: dict[str, Any] | None = None,
    quickack: bool = False,
    frame: str = "bar",
) -> tuple[int, list[str]]:
    """Spread ``specs`` over the client processes round-robin; (connected, errors).
    ``deflate``: every connection offers permessage-deflate; ``quickack``: every connection
    acknowledges each read at once; ``frame`` ``levels``: order-book topics (see ``client``)."""
    procs = bench.clients
    shares = [specs[i :: len(procs)] for i in range(len(procs))]
    replies = await asyncio.gather(
        *(
            proc.ask(
                {
                    "cmd": "connect",
                    "host": "127.0.0.1",
                    "port": port,
                    "path": WS_PATH,
                    "conns": share,
                    "timeout": 30.0,
                    "deflate": deflate,
                    "quickack": quickack,
                    "frame": frame,
                },
                "connected",
                CONNECT_TIMEOUT,
            )
            for proc, share in zip(procs, shares, strict=True)
            if share
        )
    )
    errors = [e for r in replies for e in r["errors"]]
    return sum(int(r["ok"]) for r in replies), errors


async def _idle(
    bench: Bench, scenario: Scenario, server: Child, port: int, result: CaseResult
) -> None:
    # One connection first: whatever the first subscriber allocates once (a stream key, its
    # history, lazily built routes) is not a per-connection cost.
    warm, errors = await _connect(bench, port, _specs(Scenario("warm", "idle", clients=1)))
    if warm != 1:
        raise RuntimeError(f"{server.name}: the warm-up connection failed: {errors}")
    await asyncio.sleep(scenario.settle_s)
    before = rss_kib(server.pid)
    connected, errors = await _connect(bench, port, _specs(scenario))
    await asyncio.sleep(scenario.settle_s)
    after = rss_kib(server.pid)
    if connected < scenario.clients:
        result.notes.append(f"only {connected} of {scenario.clients} connected: {errors[:3]}")
    result.figures.update(
        connections=connected,
        rss_before_kib=before,
        rss_after_kib=after,
        kib_per_conn=round((after - before) / connected, 2) if connected else None,
    )


async def _load(
    bench: Bench, scenario: Scenario, server: Child, port: int, result: CaseResult
) -> None:
    offer = {"server_max_window_bits": scenario.deflate_window_bits} if scenario.deflate else None
    specs = _specs(scenario)
    connected, errors = await _connect(bench, port, specs, offer, scenario.quickack, scenario.frame)
    if connected == 0:
        raise RuntimeError(f"{server.name}: no client could connect: {errors[:3]}")
    if connected < scenario.clients:
        result.notes.append(f"only {connected} of {scenario.clients} connected: {errors[:3]}")
    start = now_us() + 200_000
    t0 = start + int(scenario.warmup_s * 1e6)
    t1 = t0 + int(scenario.measure_s * 1e6)
    await asyncio.gather(
        *(c.ask({"cmd": "window", "t0": t0, "t1": t1}, "window", 10) for c in bench.clients)
    )
    server.send(
        {
            "cmd": "publish",
            "mode": scenario.mode,
            "rate": scenario.publish_rate if scenario.mode == "rate" else 0,
            "t0": t0,
            "t1": t1,
            "gc_freeze": bench.gc_freeze,
        }
    )
    pids = [server.pid] + [c.pid for c in bench.clients]
    cores = (bench.server_cpu, bench.client_cpu)
    await _sleep_until(t0)
    times0 = [cpu_times(pid) for pid in pids]
    wait0 = run_queue_wait_s(server.pid)
    client_waits0 = [run_queue_wait_s(c.pid) for c in bench.clients]
    ticks0 = [core_ticks(core) for core in cores]
    wall0 = now_us()
    profiler = await _start_profiler(bench, scenario, server, result)
    await _sleep_until(t1)
    times1 = [cpu_times(pid) for pid in pids]
    wait1 = run_queue_wait_s(server.pid)
    client_waits1 = [run_queue_wait_s(c.pid) for c in bench.clients]
    ticks1 = [core_ticks(core) for core in cores]
    wall = (now_us() - wall0) / 1e6
    rss = rss_kib(server.pid)
    published = await server.expect("published", scenario.measure_s + 15)
    await _drain(bench)
    reports = await asyncio.gather(*(c.ask({"cmd": "report"}, "report", 30) for c in bench.clients))
    if profiler is not None:
        await _finish_profiler(profiler, result)
    if scenario.stalled:
        probes = await asyncio.gather(
            *(c.ask({"cmd": "probe", "wait_s": 0.5}, "probe", 30) for c in bench.clients)
        )
        outcome: dict[str, int] = {}
        for probe in probes:
            for key, count in probe["stalled"].items():
                outcome[key] = outcome.get(key, 0) + int(count)
        result.figures["stalled_outcome"] = outcome
    # (user, system) seconds per process, read once at each edge of the window.
    used = [(u1 - u0, s1 - s0) for (u0, s0), (u1, s1) in zip(times0, times1, strict=True)]
    server_cpu = sum(used[0])
    client_cpu = sum(u + s for u, s in used[1:])
    server_times = (server_cpu, used[0][1])
    result.figures.update(_figures(scenario, published, reports, server_times, client_cpu, wall))
    result.figures["server_rss_kib"] = rss
    # Time the server was ready to run while its core ran something else (other processes,
    # or the kernel's deferred network work): the noise it met.
    result.figures["server_wait_pct"] = round(100 * (wait1 - wait0) / wall, 1)
    # The same for the client process that waited most: how late it may have read (the
    # gate's noise rule, ``report.noise_pct``).
    client_wait = max(b - a for a, b in zip(client_waits0, client_waits1, strict=True))
    result.figures["client_wait_pct"] = round(100 * client_wait / wall, 1)
    result.figures["server_core"] = core_usage(ticks0[0], ticks1[0], server_cpu)
    result.figures["client_core"] = core_usage(ticks0[1], ticks1[1], client_cpu)
    for report in reports:
        if report["protocol_errors"]:
            result.notes.append(f"{report['protocol_errors']} client protocol error(s)")


async def _sleep_until(stamp_us: int) -> None:
    await asyncio.sleep(max(stamp_us - now_us(), 0) / 1e6)


async def _drain(bench: Bench) -> None:
    """Wait until the clients' in-window counts stop growing (bounded)."""
    deadline, last = now_us() + int(DRAIN_MAX_S * 1e6), -1
    while now_us() < deadline:
        counts = await asyncio.gather(
            *(c.ask({"cmd": "count"}, "count", 10) for c in bench.clients)
        )
        total = sum(int(c["in_window"]) for c in counts)
        if total == last:
            return
        last = total
        await asyncio.sleep(0.15)


def _figures(
    scenario: Scenario,
    published: dict[str, Any],
    reports: list[dict[str, Any]],
    server_times: tuple[float, float],
    client_cpu: float,
    wall: float,
) -> dict[str, Any]:
    """The figures of one load case; ``server_times`` = (CPU seconds, of which system)."""
    server_cpu, server_sys = server_times
    histogram = Histogram()
    for report in reports:
        histogram.merge(Histogram.from_json(report["histogram"]))
    healthy_conns = sum(int(r["healthy_conns"]) for r in reports)
    healthy = sum(int(r["healthy_frames"]) for r in reports)
    delivered = healthy + sum(int(r["stalled_frames"]) for r in reports)
    share = scenario.topics_per_client / scenario.topics  # of all updates, per client
    in_window = int(published["in_window"])
    expected = healthy_conns * in_window * share
    wire = sum(int(r.get("wire_bytes", 0)) for r in reports)
    figures: dict[str, Any] = {
        "delivered_per_s": round(delivered / scenario.measure_s),
        "p50_ms": _ms(histogram.percentile(0.50)),
        "p99_ms": _ms(histogram.percentile(0.99)),
        "max_ms": _ms(float(histogram.max_us)) if histogram.total else None,
        "server_cpu_pct": round(100 * server_cpu / wall, 1),
        "cpu_us_per_delivery": round(server_cpu * 1e6 / delivered, 2) if delivered else None,
        # The kernel's share (system time): on loopback mostly send(), which also carries the
        # receiving side's TCP work; only fewer send() calls make it smaller.
        "sys_us_per_delivery": round(server_sys * 1e6 / delivered, 2) if delivered else None,
        # What the server would deliver with its core to itself: robust to other work.
        "delivered_per_cpu_s": round(delivered / server_cpu) if server_cpu > 0 else None,
        "client_cpu_pct": round(100 * client_cpu / wall, 1),
        "published": in_window,
        "healthy_pct_of_published": round(100 * healthy / expected, 2) if expected else None,
        "healthy_min_per_conn": min(
            (int(r["healthy_min"]) for r in reports if r["healthy_conns"]), default=0
        ),
        "publish_errors": int(published["errors"]),
        "publisher_max_lag_ms": round(int(published["max_lag_us"]) / 1000, 1),
        "publisher_cancelled": bool(published["cancelled"]),
        "closed_by_server": _merge_codes(reports),
        # WebSocket header + payload as received (compressed or not), per in-window delivery.
        "wire_bytes_per_delivery": round(wire / delivered, 1) if delivered else None,
        "gc_ms_total": round(sum(published.get("gc_ms", [])), 1),
        "gc_ms": published.get("gc_ms"),
        "gc_collections": published.get("gc_collections"),
    }
    if scenario.deflate:
        # Did the server compress? Connections that agreed to permessage-deflate, and the
        # share of text frames that came compressed (RSV1) since the window was set.
        frames = sum(int(r.get("frames_since_window", 0)) for r in reports)
        inflated = sum(int(r.get("inflated_frames", 0)) for r in reports)
        figures["deflate_conns"] = sum(int(r.get("deflate_conns", 0)) for r in reports)
        figures["compressed_pct"] = round(100 * inflated / frames, 1) if frames else None
    if scenario.mode == "rate":
        offered = scenario.publish_rate * scenario.measure_s
        figures["offered_per_s"] = scenario.offered_per_s
        figures["healthy_pct_of_offered"] = round(
            100 * healthy / (healthy_conns * offered * share), 2
        )
    return figures


def _ms(micros: float | None) -> float | None:
    return None if micros is None else round(micros / 1000, 3)


def _merge_codes(reports: list[dict[str, Any]]) -> dict[str, int]:
    codes: dict[str, int] = {}
    for report in reports:
        for code, count in report["closed"].items():
            codes[code] = codes.get(code, 0) + int(count)
    return codes


# -- optional profiling (--profile DIR) ----------------------------------------------------


async def _start_profiler(
    bench: Bench, scenario: Scenario, server: Child, result: CaseResult
) -> asyncio.subprocess.Process | None:
    """py-spy on the server under test for the measured window (marketcast only)."""
    if bench.profile_dir is None or result.target != "marketcast":
        return None
    output = bench.profile_dir / f"{scenario.name}-{result.target}.txt"
    command = [
        _py_spy(),
        "record",
        "--pid",
        str(server.pid),
        "--duration",
        str(max(int(scenario.measure_s), 1)),
        "--rate",
        "200",
        "--nonblocking",
        "--format",
        "raw",
        "--output",
        str(output),
    ]
    result.figures["profile"] = str(output)
    result.notes.append("profiled with py-spy: figures include its sampling overhead")
    with (bench.log_dir / "py-spy.log").open("ab") as log:
        return await asyncio.create_subprocess_exec(*command, stdout=log, stderr=log)


def _py_spy() -> str:
    found = shutil.which("py-spy")
    if found is None:
        raise SystemExit(
            "--profile needs py-spy on PATH: run the benchmark as "
            "`uv run --with py-spy python -m scripts.bench --profile DIR`"
        )
    return found


async def _finish_profiler(process: asyncio.subprocess.Process, result: CaseResult) -> None:
    try:
        await asyncio.wait_for(process.wait(), 30)
    except TimeoutError:
        process.kill()
        await process.wait()
        result.notes.append("py-spy did not finish in time and was killed")
