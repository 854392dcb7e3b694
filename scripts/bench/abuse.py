"""``make bench BENCH_ARGS=--abuse``: what each of issue 19's attacks does to a bystander.

One real ``marketcast serve`` process (simulator feed, port chosen by the kernel, 127.0.0.1
only) pinned to the server core; one bystander process (``bystander``) subscribed and
pinging; the attacks run in this process, one window each, after a baseline window with no
attack, and a second baseline closes the run (did the server come back to normal?).

Where the bystander runs: on a core of its own when the machine has a third one; otherwise
on the attackers' core, with this process (the attacker) at nice +10 so the bystander's
wake-ups preempt it. Never on the server's core: it would then compete with the server it
measures.

Why the simulator runs at 600x with a 50 ms tick: the bystander's topics update 20 times a
second, so a stall of a few tens of milliseconds shows in its longest gap; and the re-watch
attack's keys, idle since the start of the run, miss hundreds of one-minute bars each
within a run of a minute or two. ``MARKETCAST_SIM_SPEED`` and
``MARKETCAST_SIM_TICK_INTERVAL`` from the caller's environment win.

Options (``python -m scripts.bench --abuse ...``): ``--quick`` (3 s windows instead of 10 s;
the slow-header and slow-reader attacks always last past the server's 10 s deadlines),
``--attacks long_url,rest_flood`` (a subset, see ``attacks.catalogue``), ``--measure S``
(window length), ``--marketcast-src DIR`` (the server imports marketcast from another
``backend`` directory: before/after with the same attacks), ``--log-dir DIR`` (keep the
server's and the bystander's logs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from . import rawhttp
from .abuse_report import BASELINE, LEGEND, json_line, judge, notes, table
from .attack_kit import HOST, IDLE_SYMBOLS, SYMBOLS, AttackContext, Tally
from .attacks import Attack, catalogue
from .attacks_ws import Rewatch
from .common import now_us, pin_to_cpu, raise_nofile
from .procs import ROOT, Child
from .stats import cpu_times, load_average

_SPEED = "MARKETCAST_SIM_SPEED"
#: Settings the caller may override from the environment.
SERVER_DEFAULTS = {
    _SPEED: "600",
    "MARKETCAST_SIM_TICK_INTERVAL": "0.05",
}
#: Settings the attacks depend on: a short grace period (re-watch), a quick shutdown.
GRACE_S = 1.0
SERVER_FIXED = {
    "MARKETCAST_HOST": HOST,
    "MARKETCAST_SIM_SYMBOLS": ",".join(SYMBOLS + IDLE_SYMBOLS),
    "MARKETCAST_STREAM_GRACE_PERIOD": str(GRACE_S),
    "MARKETCAST_CLOSE_NOTICE_SECONDS": "0",
    "MARKETCAST_DRAIN_TIMEOUT": "2",
}
#: After an attack stops: at least this long before the window ends...
TAIL_S = 1.0
#: ...and until /readyz answers twice in a row within this (the server is itself again)...
SETTLED_MS = 100.0
#: ...and the bystander has had an update within this...
BYSTANDER_FRESH_MS = 500.0
#: ...waiting at most this long (quick, full).
SETTLE_MAX_S = (30.0, 60.0)
#: An attack that has not returned this long after its deadline is cancelled.
ATTACK_OVERRUN_S = 30.0
#: Open files wanted: the slow-header connections and everything else.
NOFILE = 4_000
_LISTENING = re.compile(rb"listening on http://127\.0\.0\.1:(\d+)")


class Server:
    """The ``marketcast serve`` subprocess; its stderr and stdout go to a log file."""

    def __init__(self, process: asyncio.subprocess.Process, log_path: Path, port: int) -> None:
        self.process, self.log_path, self.port = process, log_path, port

    @classmethod
    async def start(cls, env: dict[str, str], log_path: Path, cpu: int) -> Server:
        command = [*_marketcast(), "serve", "--port", "0"]
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, env=env
            )
        os.sched_setaffinity(process.pid, {cpu})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while loop.time() < deadline and process.returncode is None:
            found = _LISTENING.search(_head(log_path, 20_000))
            if found:
                server = cls(process, log_path, int(found.group(1)))
                await server.wait_ready(deadline - loop.time())
                return server
            await asyncio.sleep(0.1)
        process.kill()
        await process.wait()
        tail = _head(log_path, 1 << 20)[-2000:].decode(errors="replace")
        raise RuntimeError(f"marketcast serve did not start; {log_path}:\n{tail}")

    async def wait_ready(self, within: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            try:
                status, _ = await rawhttp.get(HOST, self.port, "/readyz", 2.0)
                if status == 200:
                    return
            except (OSError, TimeoutError, rawhttp.HttpError, asyncio.IncompleteReadError):
                pass
            await asyncio.sleep(0.2)
        raise RuntimeError(f"/readyz never answered 200; see {self.log_path}")

    async def stop(self) -> int | None:
        """SIGTERM (the server drains: notice 0 s, drain 2 s), then SIGKILL after 30 s."""
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return self.process.returncode

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_figures(self, start: int) -> dict[str, Any]:
        """How much the server logged since ``start`` (bytes), and how badly."""
        with self.log_path.open("rb") as log:
            log.seek(start)
            chunk = log.read(64 << 20)
        return {
            "log_kib": round(len(chunk) / 1024, 1),
            "error_lines": chunk.count(b" ERROR "),
            "traceback_lines": chunk.count(b"Traceback (most recent call last)"),
        }


def _marketcast() -> list[str]:
    """The ``marketcast`` console script next to this interpreter, else the module."""
    script = Path(sys.executable).with_name("marketcast")
    return [str(script)] if script.exists() else [sys.executable, "-m", "marketcast.cli"]


def _head(path: Path, size: int) -> bytes:
    with path.open("rb") as file:
        return file.read(size)


async def settle(
    port: int, within: float, bystander_ok: Callable[[], Awaitable[bool]]
) -> float | None:
    """Seconds until the server is itself again: /readyz answers twice in a row within
    ``SETTLED_MS`` and the bystander is connected and receiving updates. None if that does
    not happen within ``within`` seconds."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    fast = 0
    while loop.time() - began < within:
        start = loop.time()
        try:
            status, _ = await rawhttp.get(HOST, port, "/readyz", within - (start - began) + 0.1)
        except (OSError, TimeoutError, rawhttp.HttpError, asyncio.IncompleteReadError):
            status = 0
        fast = fast + 1 if status == 200 and (loop.time() - start) * 1000 < SETTLED_MS else 0
        if fast >= 2 and await bystander_ok():
            return round(loop.time() - began, 2)
        await asyncio.sleep(0.1)
    return None


class Session:
    """One run: the server, the bystander, and the window records collected so far."""

    def __init__(
        self, server: Server, bystander: Child, quick: bool, duration: float, sim_speed: float
    ) -> None:
        self.server, self.bystander = server, bystander
        self.quick, self.duration, self.sim_speed = quick, duration, sim_speed
        self.records: list[dict[str, Any]] = []

    async def window(self, name: str, label: str, description: str, attack: Attack | None) -> None:
        loop = asyncio.get_running_loop()
        log_start = self.server.log_size()
        cpu0 = cpu_times(self.server.process.pid)
        t0 = now_us()
        record: dict[str, Any] = {"name": name, "label": label, "description": description}
        tally: Tally | None = None
        if attack is None:
            await asyncio.sleep(self.duration)
        else:
            tally = await self._attack(attack)
        record["attack_s"] = round((now_us() - t0) / 1e6, 2)
        stopped = loop.time()
        await asyncio.sleep(TAIL_S)
        limit = SETTLE_MAX_S[0 if self.quick else 1]
        recovery = await settle(self.server.port, limit, self._bystander_ok)
        record["recovered"] = recovery is not None
        record["recovery_s"] = None if recovery is None else round(loop.time() - stopped, 2)
        t1 = now_us()
        report = await self.bystander.ask({"cmd": "report", "t0": t0, "t1": t1}, "report", 30)
        report.pop("event", None)
        cpu1 = cpu_times(self.server.process.pid)
        record["seconds"] = round((t1 - t0) / 1e6, 2)
        record["bystander"] = report
        record["tally"] = dict(tally) if tally is not None else {}
        busy = sum(cpu1) - sum(cpu0)
        record["server"] = {
            "cpu_pct": round(100 * busy / ((now_us() - t0) / 1e6), 1),
            **self.server.log_figures(log_start),
        }
        self.records.append(record)
        _progress(f"{label}: {record['seconds']} s")

    async def _bystander_ok(self) -> bool:
        health = await self.bystander.ask({"cmd": "health"}, "health", 10)
        age = health["update_age_ms"]
        return bool(health["connected"]) and age is not None and age < BYSTANDER_FRESH_MS

    async def _attack(self, attack: Attack) -> Tally:
        loop = asyncio.get_running_loop()
        duration = max(self.duration, attack.min_s)
        context = AttackContext(
            port=self.server.port,
            duration_s=duration,
            deadline=loop.time() + duration,
            quick=self.quick,
            nofile=raise_nofile(NOFILE)[0],
            sim_speed=self.sim_speed,
        )
        try:
            tally = await asyncio.wait_for(attack.run(context), duration + ATTACK_OVERRUN_S)
        except TimeoutError:
            return Tally(attack_overran=1)
        await asyncio.sleep(max(context.remaining(), 0.0))  # every window at least as long
        return tally


def server_env(marketcast_src: Path | None) -> dict[str, str]:
    """The server's environment; ``marketcast_src`` (a ``backend`` directory, e.g. an
    exported older commit) goes first on its import path: before/after in one command."""
    env = dict(os.environ)
    for key, value in SERVER_DEFAULTS.items():
        env.setdefault(key, value)
    env.update(SERVER_FIXED)
    env.pop("MARKETCAST_PORT", None)  # --port 0 is passed; the variable would be ignored anyway
    paths = [str(marketcast_src) if marketcast_src else None, str(ROOT), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


def bystander_cpu(server_cpu: int, client_cpu: int) -> tuple[int, bool]:
    """(the bystander's core, whether it shares it with the attacker)."""
    spare = sorted(os.sched_getaffinity(0) - {server_cpu, client_cpu})
    return (spare[0], False) if spare else (client_cpu, True)


def select(names: str | None, attacks: list[Attack]) -> list[Attack]:
    if not names:
        return attacks
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = sorted(set(wanted) - {a.name for a in attacks})
    if unknown:
        raise SystemExit(
            f"unknown attack(s) {unknown}: expected some of {[a.name for a in attacks]}"
        )
    return [a for a in attacks if a.name in wanted]


async def run(args: argparse.Namespace) -> int:
    quick = bool(args.quick)
    duration = float(args.measure or (3.0 if quick else 10.0))
    soft, hard = raise_nofile(NOFILE)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="marketcast-abuse-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    cpu, shared = bystander_cpu(args.server_cpu, args.client_cpu)
    env = server_env(args.marketcast_src)
    rewatch = Rewatch(GRACE_S)
    attacks = select(args.attacks, catalogue(rewatch))
    meta: dict[str, Any] = {
        "mode": "quick" if quick else "full",
        "window_s": duration,
        "machine": {
            "cpus": os.cpu_count(),
            "server_cpu": args.server_cpu,
            "attacker_cpu": args.client_cpu,
            "bystander_cpu": cpu,
            "bystander_shares_attacker_cpu": shared,
            "python": platform.python_version(),
            "nofile": [soft, hard],
            "load_before": load_average(),
        },
        "server_env": {k: env[k] for k in sorted(env) if k.startswith("MARKETCAST_")},
        "marketcast_src": str(args.marketcast_src or ROOT / "backend"),
    }
    started = time.monotonic()
    server = await Server.start(env, log_dir / "server.log", args.server_cpu)
    bystander: Child | None = None
    try:
        bystander = await Child.start(
            "bystander", "scripts.bench.bystander", ["--cpu", str(cpu)], log_dir
        )
        await bystander.ask({"cmd": "start", "port": server.port}, "started", 60)
        if shared:
            os.nice(10)  # this thread only (Linux): the attacker yields to the bystander
        if any(a.name == "rewatch" for a in attacks):
            await rewatch.prepare(server.port)
        await asyncio.sleep(1.0)
        session = Session(server, bystander, quick, duration, float(env[_SPEED]))
        print(LEGEND, end="\n\n", flush=True)
        await session.window(BASELINE, "baseline", "no attack", None)
        for attack in attacks:
            await session.window(attack.name, attack.label, attack.description, attack)
        await session.window(BASELINE + "_after", "baseline after", "no attack, at the end", None)
    finally:
        if bystander is not None:
            await bystander.stop({"cmd": "quit"})
        meta["server_exit_status"] = await server.stop()
    records = session.records
    judge(records)
    meta["duration_s"] = round(time.monotonic() - started, 1)
    meta["machine"]["load_after"] = load_average()
    meta["logs"] = str(args.log_dir) if args.log_dir else None
    if args.log_dir is None:
        shutil.rmtree(log_dir, ignore_errors=True)
    print(
        f"== abuse: {len(attacks)} attack(s), {duration:g} s each, marketcast serve at "
        f"{env[_SPEED]}x, bystander on CPU {cpu}"
        + (" (shared with the attacker, which runs at nice +10)" if shared else "")
    )
    print(table(records))
    print("\n".join(notes(records)))
    print(
        f"(load average before {_load(meta['machine']['load_before'])}, after "
        f"{_load(meta['machine']['load_after'])}; {meta['duration_s']} s"
        + (f"; logs in {args.log_dir})" if args.log_dir else ")")
    )
    print(json_line(meta, records), flush=True)
    return 0


def _load(values: tuple[float, float, float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(args: argparse.Namespace) -> int:
    """Entry from ``runner.main`` when ``--abuse`` is given."""
    pin_to_cpu(args.client_cpu)
    return asyncio.run(run(args))
