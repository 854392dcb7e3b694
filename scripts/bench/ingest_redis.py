"""A private ``redis-server`` for the ingest scenario, and Redis's own ceiling.

The server is started on a free 127.0.0.1 port in a temporary directory, persisting nothing
(``--save "" --appendonly no``), pinned to one core, and stopped by its own pid — never a
Redis someone else runs. The same as ``tests/redis/redis_server.py``, without pytest.

The ceiling runs ``redis-benchmark`` with the commands marketcast sends per upstream update,
built from marketcast's own script texts and encoders, so their sizes and work are the real
ones:

- ``batch``: ``EVALSHA`` of ``RedisCandleStore``'s store-and-publish script for one upstream
  update's eleven candles (every resolution) and their one ``B`` message: the call
  ``RedisBus.publish_stored_many`` makes for one update (a busy worker's calls carry several);
- ``single``: the same script for one candle (a feed sending one key per call);
- ``publish``: ``PUBLISH`` of one one-frame bus message alone: the bus without the store.

Each is pipelined (``-P``) from several connections while one subscriber (``redis-cli``)
drains the channel, as the worker's own bus reader does: Redis pays for delivering every
message. Redis's CPU per command comes from ``INFO cpu`` before and after, so the figure is
the server's own cost, whatever the benchmark client's core did.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Channel and key prefix as marketcast names them with the default ``REDIS_PREFIX``.
CHANNEL = "marketcast:updates"
KEY_PREFIX = "marketcast:candles:"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise SystemExit(
            f"the ingest scenario needs {binary} (Debian: apt-get install redis-server, which "
            "`make setup` does); leave the scenario out with --scenarios"
        )
    return path


class PrivateRedis:
    """One redis-server process of this benchmark, pinned to ``cpu``."""

    def __init__(self, directory: Path, cpu: int) -> None:
        self.binary = require("redis-server")
        self.directory = directory
        self.cpu = cpu
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 10.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / f"redis-{self.port}.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.directory),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        os.sched_setaffinity(self.process.pid, {self.cpu})
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: see {self.directory}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server not answering on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def parse_info_cpu(text: str) -> float:
    """Seconds of CPU the Redis server process used (user + system) from ``INFO cpu``."""
    total = 0.0
    found = 0
    for line in text.splitlines():
        name, _, value = line.strip().partition(":")
        if name in ("used_cpu_user", "used_cpu_sys"):
            total += float(value)
            found += 1
    if found != 2:
        raise ValueError(f"INFO cpu without used_cpu_user/used_cpu_sys: {text[:200]!r}")
    return total


def parse_benchmark_csv(output: str) -> dict[str, float]:
    """rps and latencies from ``redis-benchmark --csv`` output of one command.

    The row's first field is the command itself, which may hold commas, quotes and newlines
    (a bus message does), so the numbers are read from the end of the output."""
    tail = output.strip()
    if not tail.endswith('"'):
        raise ValueError(f"not redis-benchmark --csv output: {output[-200:]!r}")
    fields = tail[:-1].rsplit('","', 7)
    if len(fields) != 8:
        raise ValueError(f"not redis-benchmark --csv output: {output[-200:]!r}")
    names = ("rps", "avg_ms", "min_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms")
    try:
        return {name: float(value) for name, value in zip(names, fields[1:], strict=True)}
    except ValueError:
        raise ValueError(f"not redis-benchmark --csv output: {output[-200:]!r}") from None


@dataclass(frozen=True)
class BenchCommand:
    """One command shape for redis-benchmark: its arguments and candles per call."""

    name: str
    args: list[str]
    candles: int
    #: Script to SCRIPT LOAD first (its sha replaces ``{sha}`` in ``args``).
    script: str | None = None


def marketcast_commands(symbols: int) -> list[BenchCommand]:
    """The commands marketcast sends per update, from its own scripts and encoders.

    Keys take a random symbol per call (``__rand_int__``, bounded by ``-r symbols``)."""
    from marketcast.bus import redis_messages
    from marketcast.channels.bars import bar_update
    from marketcast.market import BarKey, Candle
    from marketcast.store import redis as store_redis
    from marketcast.timeframes import RESOLUTIONS
    from marketcast.types import Resolution
    from marketcast.wire import Frame

    from .common import BAR_TIME_BASE

    sample = Candle(BAR_TIME_BASE, 1.2345e11, 1.2345e11, 1.2345e11, 1.2345e11, 1.0)
    member = store_redis.encode_candle(sample).decode()
    sender = b"bench-worker:1234:abcd"

    def frame(resolution: Resolution) -> Frame:
        key = BarKey("BENCH1234", resolution)
        topic = 'bars:{"resolution":"' + resolution + '","symbol":"BENCH1234"}'
        return bar_update(topic, key, sample)

    def name(resolution: Resolution) -> str:
        return f"BENCH__rand_int__:{resolution}"

    def store(resolutions: Sequence[Resolution], message: bytes) -> list[str]:
        count = len(resolutions)
        return [
            "EVALSHA",
            "{sha}",
            "0",
            "1000",
            CHANNEL,
            message.decode(),
            ",".join([str(sample.time)] * count),
            "\n".join([member] * count),
            KEY_PREFIX,
            "\n".join(name(r) for r in resolutions),
        ]

    script = store_redis._STORE
    batch = redis_messages.encode_batch(sender, [frame(r) for r in RESOLUTIONS])
    one = redis_messages.encode_batch(sender, [frame("1")])
    return [
        BenchCommand("batch", store(RESOLUTIONS, batch), len(RESOLUTIONS), script),
        BenchCommand("single", store(("1",), one), 1, script),
        BenchCommand("publish", ["PUBLISH", CHANNEL, one.decode()], 1),
    ]


async def redis_ceiling(
    redis: PrivateRedis,
    *,
    symbols: int,
    requests: dict[str, int],
    bench_cpu: int,
    pipeline: int = 16,
    connections: int = 4,
) -> dict[str, Any]:
    """Run each of ``marketcast_commands`` through redis-benchmark; figures per command."""
    from redis import Redis

    benchmark = require("redis-benchmark")
    cli = require("redis-cli")
    client = Redis(host="127.0.0.1", port=redis.port)
    drain = await asyncio.create_subprocess_exec(
        "taskset",
        "-c",
        str(bench_cpu),
        cli,
        "-p",
        str(redis.port),
        "subscribe",
        CHANNEL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    results: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 10
        while _subscribers(client) < 1:
            if time.monotonic() > deadline:
                raise RuntimeError("redis-cli did not subscribe within 10 s")
            await asyncio.sleep(0.02)
        for command in marketcast_commands(symbols):
            args = list(command.args)
            if command.script is not None:
                sha = str(client.script_load(command.script))
                args = [sha if a == "{sha}" else a for a in args]
            n = requests.get(command.name, 0)
            if n <= 0:
                continue
            client.flushdb()
            cpu0 = _redis_cpu(client)
            process = await asyncio.create_subprocess_exec(
                "taskset",
                "-c",
                str(bench_cpu),
                benchmark,
                "-p",
                str(redis.port),
                "-c",
                str(connections),
                "-P",
                str(pipeline),
                "-n",
                str(n),
                "-r",
                str(symbols),
                "--csv",
                *args,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await process.communicate()
            cpu1 = _redis_cpu(client)
            if process.returncode != 0:
                raise RuntimeError(f"redis-benchmark failed: {err.decode()[-300:]}")
            figures = parse_benchmark_csv(out.decode(errors="replace"))
            redis_cpu = cpu1 - cpu0
            results[command.name] = ceiling_figures(figures, command.candles, n, redis_cpu)
    finally:
        if drain.returncode is None:
            drain.terminate()
        await drain.wait()
        client.close()
    results["setup"] = {"pipeline": pipeline, "connections": connections}
    return results


def ceiling_figures(
    figures: dict[str, float], candles: int, requests: int, redis_cpu_s: float
) -> dict[str, Any]:
    """One command's ceiling: calls/s, candles/s, and Redis CPU per call and per candle."""
    rps = figures["rps"]
    return {
        "calls_per_s": round(rps),
        "candles_per_call": candles,
        "candles_per_s": round(rps * candles),
        "redis_us_per_call": round(redis_cpu_s * 1e6 / requests, 2),
        "redis_us_per_candle": round(redis_cpu_s * 1e6 / (requests * candles), 2),
        # What one Redis core would sustain at that cost (its benchmark run also paid for
        # the connections' reads and writes, so this is the server's whole cost).
        "candles_per_redis_cpu_s": round(requests * candles / redis_cpu_s) if redis_cpu_s else None,
        "p99_ms": figures["p99_ms"],
    }


def _subscribers(client: Any) -> int:
    counts = client.pubsub_numsub(CHANNEL)
    return int(counts[0][1]) if counts else 0


def _redis_cpu(client: Any) -> float:
    """Redis's CPU seconds so far (redis-py parses ``INFO`` into a dict)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
