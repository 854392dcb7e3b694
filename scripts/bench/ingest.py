"""The ingest scenario (issue 16 item 2): many symbols' klines in, every resolution out.

Load shape (full preset): 2,000 symbols, each updating its 1-minute kline (``ingest_feed``);
every update is aggregated to all ten coarser resolutions, so it moves 11 keys (22,000 in
all), each stored and published; 5,000 clients subscribe to 5 of the 22,000 topics each (every
topic has a subscriber; 25,000 subscriptions). The upstream arrives over 8 connections
(``KlineDriver``), each handing its updates to the feed one after the other.

Run once with marketcast's memory store and bus and once with Redis store and bus (a private
``redis-server``, ``ingest_redis``), each in three windows:

1. ``ingest``: saturating upstream, no client connected yet: the cost of ingest alone (feed,
   aggregation, store, publish, the bus echo on Redis) per upstream update, and the updates a
   second one core ingests.
2. ``ceiling``: saturating upstream with the 5,000 clients: the rate one worker sustains with
   the fan-out — the goal's "ingests at least N upstream updates/s".
3. ``half``: a fixed rate of half the updates/s the ceiling window sustained (wall clock):
   the p99 from feed to client.

Then ``redis-benchmark`` runs the commands marketcast sends per update against a fresh
private Redis (``ingest_redis.redis_ceiling``): whether Redis or marketcast is the floor.

Cores: marketcast on the server core; the clients and redis-server on the clients' core
(two cores is all there is); redis-benchmark on the server core once marketcast is gone.
A window's "updates" are the upstream updates whose stamp falls in it; CPU is read from
``/proc`` at its edges, for marketcast and for redis-server.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import WS_PATH, now_us, symbol
from .procs import Child
from .stats import Histogram, core_ticks, core_usage, cpu_times, run_queue_wait_s

if TYPE_CHECKING:
    from .cases import Bench

#: Resolutions, finest first, as marketcast names them (``timeframes.RESOLUTIONS``).
RESOLUTIONS = ("1", "3", "5", "15", "30", "60", "120", "240", "D", "W", "M")
#: Seconds to connect every client (thousands of subscriptions on one shared core).
CONNECT_TIMEOUT = 180.0
#: Connections each client process opens at once. A first subscription on Redis reads the
#: store, and redis-py's asyncio pool refuses a command beyond 100 connections in use
#: (``MaxConnectionsError``, which marketcast counts as Redis unreachable): 4 processes x 16
#: stays clear of it.
CONNECT_CONCURRENCY = 16
DRAIN_MAX_S = 5.0
#: Goals of issue 16 item 2: upstream updates/s one worker ingests, p99 at half that rate.
GOAL_UPDATES_PER_S = {"memory": 20_000.0, "redis": 10_000.0}
GOAL_P99_MS = 20.0


@dataclass(frozen=True)
class IngestPlan:
    symbols: int
    clients: int
    topics_per_client: int
    connections: int = 8
    warmup_s: float = 1.0
    measure_s: float = 4.0
    rate_warmup_s: float = 2.0
    rate_measure_s: float = 6.0
    stores: tuple[str, ...] = ("memory", "redis")
    #: Also run the raw baseline's ingest-alone window (``ingest_raw``).
    raw: bool = True
    #: redis-benchmark requests per command (batch, single, publish).
    bench_requests: tuple[int, int, int] = (30_000, 300_000, 500_000)

    @property
    def topics(self) -> int:
        return self.symbols * len(RESOLUTIONS)

    def describe(self) -> str:
        return (
            f"{self.symbols:,} symbols x {len(RESOLUTIONS)} resolutions = {self.topics:,} keys "
            f"(1-minute klines, the rest aggregated); {self.clients:,} clients x "
            f"{self.topics_per_client} topics; {self.connections} upstream connections; "
            f"saturating windows {self.measure_s:g} s, half-rate window {self.rate_measure_s:g} "
            f"s; stores: {', '.join(self.stores)}"
        )


FULL_PLAN = IngestPlan(symbols=2000, clients=5000, topics_per_client=5)
QUICK_PLAN = IngestPlan(
    symbols=200,
    clients=500,
    topics_per_client=5,
    warmup_s=0.5,
    measure_s=1.5,
    rate_warmup_s=0.5,
    rate_measure_s=1.5,
    bench_requests=(4_000, 40_000, 80_000),
)


def plan_for(scenario: Any, quick: bool) -> IngestPlan:
    """The plan of a ``scenarios.Scenario`` of kind ``ingest``: its symbols (``topics``),
    clients, topics per client and saturating windows; the rest from the preset."""
    base = QUICK_PLAN if quick else FULL_PLAN
    return replace(
        base,
        symbols=int(scenario.topics),
        clients=int(scenario.clients),
        topics_per_client=int(scenario.topics_per_client),
        warmup_s=float(scenario.warmup_s),
        measure_s=float(scenario.measure_s),
    )


async def run_in_bench(bench: Bench, scenario: Any, quick: bool) -> dict[str, Any]:
    """``run_ingest`` with the orchestrator's settings (``make bench``)."""
    return await run_ingest(
        len(bench.clients),
        bench.log_dir,
        quick=quick,
        server_cpu=bench.server_cpu,
        client_cpu=bench.client_cpu,
        nofile=bench.nofile,
        gc_freeze=bool(getattr(bench, "gc_freeze", False)),
        loop=bench.loop,
        marketcast_src=bench.marketcast_src,
        plan=plan_for(scenario, quick),
        progress=_progress,
    )


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def topic_of_index(index: int, symbols: int) -> tuple[int, str]:
    """Topic ``index`` as (symbol index, resolution): consecutive topics are different
    symbols, so a client's few topics spread over symbols and resolutions alike."""
    return index % symbols, RESOLUTIONS[(index // symbols) % len(RESOLUTIONS)]


def subscriptions(plan: IngestPlan) -> list[list[tuple[int, str]]]:
    """Per client, its topics: client ``i`` takes topics ``i*k .. i*k+k-1`` (mod topics)."""
    k, topics = plan.topics_per_client, plan.topics
    return [
        [topic_of_index((i * k + j) % topics, plan.symbols) for j in range(k)]
        for i in range(plan.clients)
    ]


def expected_deliveries(subs: list[list[tuple[int, str]]], per_symbol: list[int]) -> int:
    """Frames the clients should get: each subscription receives every update of its
    symbol (every update moves every resolution of its symbol)."""
    return sum(per_symbol[index] for topics in subs for index, _ in topics)


#: marketcast counts as CPU-bound in a window when it ran or was runnable this share of it.
CPU_BOUND_PCT = 90.0


def ceiling_rate(figures: dict[str, Any]) -> float:
    """The upstream updates/s one worker ingests, from a saturating window: per second of
    marketcast CPU when it was CPU-bound — running, or runnable while other work on the
    machine had its core (``server_wait_pct``) — which is what a core of its own does;
    else per wall-clock second (it waited on something: Redis, the clients)."""
    wall = float(figures["updates_per_s"])
    per_cpu = figures.get("updates_per_cpu_s")
    busy = float(figures.get("server_cpu_pct") or 0) + float(figures.get("server_wait_pct") or 0)
    if per_cpu and busy >= CPU_BOUND_PCT:
        return float(per_cpu)
    return wall


@dataclass
class Context:
    """What the windows of one store's run share."""

    plan: IngestPlan
    server: Child
    clients: list[Child]
    server_cpu: int
    client_cpu: int
    gc_freeze: bool
    redis_pid: int | None = None
    subs: list[list[tuple[int, str]]] | None = None


async def run_ingest(
    clients_procs: int,
    log_dir: Path,
    *,
    quick: bool,
    server_cpu: int,
    client_cpu: int,
    nofile: int,
    gc_freeze: bool = False,
    loop: str = "asyncio",
    marketcast_src: Path | None = None,
    plan: IngestPlan | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Every store's windows, then Redis's ceiling; the figures as one JSON-able dict."""
    plan = plan or (QUICK_PLAN if quick else FULL_PLAN)
    results: dict[str, Any] = {"plan": plan.describe()}
    work = Path(tempfile.mkdtemp(prefix="marketcast-ingest-"))
    clients: list[Child] = []
    try:
        for i in range(clients_procs):
            clients.append(
                await Child.start(
                    f"ingest-client-{i}",
                    "scripts.bench.ingest_client",
                    ["--cpu", str(client_cpu), "--nofile", str(nofile)],
                    log_dir,
                )
            )
        for client in clients:
            await client.expect("hello", 30)
        for store in plan.stores:
            began = now_us()
            results[store] = await _run_store(
                store,
                plan,
                clients,
                log_dir,
                work,
                server_cpu=server_cpu,
                client_cpu=client_cpu,
                nofile=nofile,
                gc_freeze=gc_freeze,
                loop=loop,
                marketcast_src=marketcast_src,
            )
            if progress is not None:
                progress(f"ingest / {store}: {(now_us() - began) / 1e6:.1f} s")
        if plan.raw:
            began = now_us()
            results["raw"] = await _run_raw(
                plan,
                clients,
                log_dir,
                server_cpu=server_cpu,
                client_cpu=client_cpu,
                gc_freeze=gc_freeze,
            )
            if progress is not None:
                progress(f"ingest / raw: {(now_us() - began) / 1e6:.1f} s")
        if "redis" in plan.stores:
            from .ingest_redis import PrivateRedis, redis_ceiling

            began = now_us()
            redis = PrivateRedis(work / "redis-ceiling", client_cpu)
            redis.start()
            try:
                batch, single, publish = plan.bench_requests
                results["redis_benchmark"] = await redis_ceiling(
                    redis,
                    symbols=plan.symbols,
                    requests={"batch": batch, "single": single, "publish": publish},
                    bench_cpu=server_cpu,
                )
            finally:
                redis.stop()
            if progress is not None:
                progress(f"ingest / redis-benchmark: {(now_us() - began) / 1e6:.1f} s")
    finally:
        for client in clients:
            await client.stop({"cmd": "quit"})
        shutil.rmtree(work, ignore_errors=True)
    return results


async def _run_store(
    store: str,
    plan: IngestPlan,
    clients: list[Child],
    log_dir: Path,
    work: Path,
    *,
    server_cpu: int,
    client_cpu: int,
    nofile: int,
    gc_freeze: bool,
    loop: str,
    marketcast_src: Path | None,
) -> dict[str, Any]:
    redis = None
    args = ["--cpu", str(server_cpu), "--symbols", str(plan.symbols)]
    args += ["--connections", str(plan.connections), "--nofile", str(nofile), "--loop", loop]
    if store == "redis":
        from .ingest_redis import PrivateRedis

        redis = PrivateRedis(work / "redis-ingest", client_cpu)
        redis.start()
        args += ["--redis-url", redis.url]
    elif store != "memory":
        raise ValueError(f"unknown store {store!r}: expected memory or redis")
    out: dict[str, Any] = {}
    try:
        server = await Child.start(
            f"ingest-server-{store}",
            "scripts.bench.ingest_server",
            args,
            log_dir,
            import_first=marketcast_src,
        )
        try:
            ready = await server.expect("ready", 60)
            out["source"] = ready.get("source")
            out["batched"] = ready.get("batched")
            wanted = await server.ask({"cmd": "want"}, "wanted", 600)
            out["setup"] = {"want_s": wanted["seconds"], "keys": wanted["keys"]}
            if wanted["failed"]:
                out.setdefault("notes", []).append(f"{wanted['failed']} keys failed to start")
            ctx = Context(
                plan,
                server,
                clients,
                server_cpu,
                client_cpu,
                gc_freeze,
                redis_pid=redis.pid if redis is not None else None,
            )
            out["ingest"] = await _window(ctx, "saturate", 0.0, plan.warmup_s, plan.measure_s)
            began = now_us()
            ctx.subs = subscriptions(plan)
            connected, errors = await _connect(ctx, int(ready["port"]))
            out["setup"]["connect_s"] = round((now_us() - began) / 1e6, 1)
            out["setup"]["connected"] = connected
            if connected < plan.clients:
                out.setdefault("notes", []).append(
                    f"only {connected} of {plan.clients} clients connected: {errors[:3]}"
                )
            out["ceiling"] = await _window(ctx, "saturate", 0.0, plan.warmup_s, plan.measure_s)
            # Half of what it sustained here, by the wall clock: on a machine where other
            # work takes part of marketcast's core, half of its per-CPU rate may be all of it.
            half = float(out["ceiling"]["updates_per_s"]) / 2
            out["half"] = await _window(ctx, "rate", half, plan.rate_warmup_s, plan.rate_measure_s)
            await asyncio.gather(
                *(c.ask({"cmd": "disconnect"}, "disconnected", 30) for c in clients)
            )
        finally:
            await server.stop({"cmd": "stop"}, within=30)
    finally:
        if redis is not None:
            redis.stop()
    return out


async def _run_raw(
    plan: IngestPlan,
    clients: list[Child],
    log_dir: Path,
    *,
    server_cpu: int,
    client_cpu: int,
    gc_freeze: bool,
) -> dict[str, Any]:
    """The raw baseline's ingest-alone window, on the server core, as marketcast's."""
    args = ["--cpu", str(server_cpu), "--symbols", str(plan.symbols)]
    args += ["--connections", str(plan.connections)]
    server = await Child.start("ingest-raw", "scripts.bench.ingest_raw", args, log_dir)
    try:
        ready = await server.expect("ready", 60)
        await server.ask({"cmd": "want"}, "wanted", 60)
        ctx = Context(plan, server, clients, server_cpu, client_cpu, gc_freeze)
        window = await _window(ctx, "saturate", 0.0, plan.warmup_s, plan.measure_s)
        return {"source": ready.get("source"), "ingest": window}
    finally:
        await server.stop({"cmd": "stop"}, within=30)


async def _connect(ctx: Context, port: int) -> tuple[int, list[str]]:
    assert ctx.subs is not None
    specs = [[[symbol(index), res] for index, res in topics] for topics in ctx.subs]
    procs = ctx.clients
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
                    "timeout": 60.0,
                    "concurrency": CONNECT_CONCURRENCY,
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


async def _sleep_until(stamp_us: int) -> None:
    await asyncio.sleep(max(stamp_us - now_us(), 0) / 1e6)


async def _window(
    ctx: Context, mode: str, rate: float, warmup_s: float, measure_s: float
) -> dict[str, Any]:
    """One driven window: the driver's counts, CPU of marketcast (and Redis), deliveries."""
    with_clients = ctx.subs is not None
    start = now_us() + 200_000
    t0 = start + int(warmup_s * 1e6)
    t1 = t0 + int(measure_s * 1e6)
    if with_clients:
        await asyncio.gather(
            *(c.ask({"cmd": "window", "t0": t0, "t1": t1}, "window", 10) for c in ctx.clients)
        )
    ctx.server.send(
        {"cmd": "drive", "mode": mode, "rate": rate, "t0": t0, "t1": t1, "gc_freeze": ctx.gc_freeze}
    )
    # marketcast, then Redis (if any), then the clients: what each core ran for the window.
    pids = [ctx.server.pid] + ([ctx.redis_pid] if ctx.redis_pid else [])
    pids += [c.pid for c in ctx.clients]
    cores = (ctx.server_cpu, ctx.client_cpu)
    await _sleep_until(t0)
    times0 = [cpu_times(pid) for pid in pids]
    wait0 = run_queue_wait_s(ctx.server.pid)
    ticks0 = [core_ticks(core) for core in cores]
    wall0 = now_us()
    await _sleep_until(t1)
    times1 = [cpu_times(pid) for pid in pids]
    wait1 = run_queue_wait_s(ctx.server.pid)
    ticks1 = [core_ticks(core) for core in cores]
    wall = (now_us() - wall0) / 1e6
    driven = await ctx.server.expect("driven", measure_s + 30)
    used = [(u1 - u0) + (s1 - s0) for (u0, s0), (u1, s1) in zip(times0, times1, strict=True)]
    redis_cpu = used[1] if ctx.redis_pid else None
    client_core_cpu = sum(used[1:])  # the clients, and Redis: both on the clients' core
    reports: list[dict[str, Any]] = []
    if with_clients:
        await _drain(ctx.clients)
        reports = list(
            await asyncio.gather(*(c.ask({"cmd": "report"}, "report", 30) for c in ctx.clients))
        )
    figures = window_figures(
        driven,
        measure_s=measure_s,
        wall_s=wall,
        server_cpu_s=used[0],
        redis_cpu_s=redis_cpu,
        reports=reports,
        expected=expected_deliveries(ctx.subs, driven["per_symbol"]) if ctx.subs else None,
    )
    figures["mode"] = mode
    if mode == "rate":
        figures["offered_per_s"] = round(rate)
    figures["server_wait_pct"] = round(100 * (wait1 - wait0) / wall, 1)
    figures["server_core"] = core_usage(ticks0[0], ticks1[0], used[0])
    figures["client_core"] = core_usage(ticks0[1], ticks1[1], client_core_cpu)
    figures["client_cpu_pct"] = round(100 * sum(used[2 if ctx.redis_pid else 1 :]) / wall, 1)
    return figures


async def _drain(clients: list[Child]) -> None:
    deadline, last = now_us() + int(DRAIN_MAX_S * 1e6), -1
    while now_us() < deadline:
        counts = await asyncio.gather(*(c.ask({"cmd": "count"}, "count", 10) for c in clients))
        total = sum(int(c["in_window"]) for c in counts)
        if total == last:
            return
        last = total
        await asyncio.sleep(0.15)


def window_figures(
    driven: dict[str, Any],
    *,
    measure_s: float,
    wall_s: float,
    server_cpu_s: float,
    redis_cpu_s: float | None,
    reports: list[dict[str, Any]],
    expected: int | None,
) -> dict[str, Any]:
    """The figures of one window (pure: the unit tests feed it numbers)."""
    updates = int(driven["in_window"])
    candles = int(driven["candles_in_window"])
    figures: dict[str, Any] = {
        "updates_per_s": round(updates / measure_s),
        "candles_per_s": round(candles / measure_s),
        "server_cpu_pct": round(100 * server_cpu_s / wall_s, 1),
        "updates_per_cpu_s": round(updates / server_cpu_s) if server_cpu_s > 0 else None,
        "cpu_us_per_update": round(server_cpu_s * 1e6 / updates, 1) if updates else None,
        "cpu_us_per_candle": round(server_cpu_s * 1e6 / candles, 2) if candles else None,
        "errors": int(driven["errors"]),
        "first_error": driven.get("first_error"),
        "max_lag_ms": round(int(driven["max_lag_us"]) / 1000, 1),
        "cancelled": bool(driven["cancelled"]),
        "gc_ms": driven.get("gc_ms"),
    }
    if redis_cpu_s is not None:
        figures["redis_cpu_pct"] = round(100 * redis_cpu_s / wall_s, 1)
        figures["redis_us_per_candle"] = round(redis_cpu_s * 1e6 / candles, 2) if candles else None
    if reports:
        histogram = Histogram()
        for report in reports:
            histogram.merge(Histogram.from_json(report["histogram"]))
        frames = sum(int(r["frames"]) for r in reports)
        closed: dict[str, int] = {}
        for report in reports:
            for code, count in report["closed"].items():
                closed[code] = closed.get(code, 0) + int(count)
        figures.update(
            deliveries_per_s=round(frames / measure_s),
            p50_ms=_ms(histogram.percentile(0.50)),
            p99_ms=_ms(histogram.percentile(0.99)),
            max_ms=_ms(float(histogram.max_us)) if histogram.total else None,
            delivered_pct=round(100 * frames / expected, 1) if expected else None,
            closed_by_server=closed,
        )
    return figures


def _ms(micros: float | None) -> float | None:
    return None if micros is None else round(micros / 1000, 2)
