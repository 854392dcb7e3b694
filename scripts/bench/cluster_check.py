"""Check the capacity model (``capacity``) against a two-worker cluster on this machine.

``python -m scripts.bench.cluster_check`` starts a private ``redis-server`` on a free port and
two ``marketcast serve`` workers on it (store and bus on Redis, as ``make run-cluster`` does),
each serving ``--symbols`` simulator symbols whose ticks come every ``--tick`` seconds: each
watched 1-minute bar key then publishes one open-bar update per tick (simulated time runs at
1/100 and starts a second after a minute boundary, so no bar closes during the run and every
update is an open-bar update of the same size). The benchmark's client processes
(``client``, raw WebSocket) connect to the workers, one process per worker; every frame they
receive is counted.

The windows, in order (see ``capacity`` for what each one yields):

1. ``idle``: nothing subscribed.
2. ``flood``: nothing subscribed; the check publishes ``--flood-rate`` bus messages a second
   itself (topics nobody watches): what reading the channel costs a worker at that rate, and
   a bare PUBLISH costs Redis.
3. ``flood_fanout``: the same with ``--flood-subscribers`` raw Redis connections subscribed
   to the channel (they read and discard): Redis's cost per message per subscriber.
4. ``ingest``: one connection on worker 1 subscribes to every symbol first, so worker 1 takes
   every key's lease (the *owner*; checked in Redis) and worker 2 (the *relay*) only reads
   the channel.
5. ``fanout``: the same with ``--extra-subscribers`` extra subscribers, at the ingest rate.
6. ``calibrate``: a quarter of ``--connections`` on the relay, ``--topics`` symbols each.
7. ``check``: another quarter on the relay and half on the owner; predicted from the costs of
   1-6, then compared with what was measured.

Measured per window: each process's CPU (both workers and redis-server: the sum of its
threads' ``/proc/<pid>/task/*/schedstat``, in ns; ``/proc/<pid>/stat`` too, as a cross-check),
Redis's PUBLISH count and commands processed (``INFO commandstats`` / ``INFO stats``), frames
the clients of each worker received (and each worker's ``marketcast_ws_messages_sent_total``
as a cross-check), and each worker's resident memory before and after its clients connected.
Prints the predicted-vs-measured table, the per-unit costs as one JSON line, and what they
say about 100,000 and 1,000,000 connections (``capacity.plan``; the assumed load is printed).

The machine is shared with other work: per-unit costs move by 10-40 % between runs (see
docs/capacity.md for the spread); run it twice before trusting a figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import capacity
from .capacity import Budget, Load, UnitCosts, Window
from .common import WS_PATH, symbol
from .procs import Child
from .stats import cpu_times, load_average, rss_kib

#: Simulated seconds per real second: slow enough that no 1-minute bar closes in a run.
SIM_SPEED = 0.01
PREFIX = "marketcast"
CHANNEL = f"{PREFIX}:updates"
#: Core the client processes are pinned to (``client`` requires one).
CLIENT_CPU = 1


# -- processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    """A private redis-server on 127.0.0.1:``port``, nothing saved to disk (as
    ``make run-cluster`` starts one); never a Redis that happens to answer elsewhere."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("cluster-check: redis-server is not installed")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            if redis_call(port, "PING") == b"PONG":
                return process
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"cluster-check: redis-server did not start on port {port}")
        time.sleep(0.05)


def stop_processes(processes: list[subprocess.Popen[bytes]], within: float = 15.0) -> None:
    """SIGTERM each (workers drain and release their leases), SIGKILL what lingers."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + within
    for process in processes:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


# -- Redis: a few commands over raw RESP ---------------------------------------------------


class RespError(RuntimeError):
    """Redis answered with an error."""


def _command(*args: str) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""

    def _line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            self._fill()
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        return line

    def _exactly(self, size: int) -> bytes:
        while len(self._buffer) < size + 2:
            self._fill()
        data, self._buffer = self._buffer[:size], self._buffer[size + 2 :]
        return data

    def _fill(self) -> None:
        chunk = self._sock.recv(65_536)
        if not chunk:
            raise ConnectionError("redis closed the connection")
        self._buffer += chunk

    def reply(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RespError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self._exactly(size)
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self.reply() for _ in range(count)]
        raise RespError(f"unexpected reply {line[:80]!r}")


def redis_call(port: int, *args: str) -> Any:
    """One command to the Redis on 127.0.0.1:``port``; its decoded RESP2 reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(_command(*args))
        return _Reader(sock).reply()


def redis_info(port: int, section: str) -> dict[str, str]:
    text = redis_call(port, "INFO", section)
    assert isinstance(text, bytes)
    fields: dict[str, str] = {}
    for line in text.decode().splitlines():
        if ":" in line and not line.startswith("#"):
            name, value = line.split(":", 1)
            fields[name] = value
    return fields


#: Per command: (calls, µs spent executing it).
Calls = dict[str, tuple[int, int]]


def command_calls(port: int) -> Calls:
    """(calls, µs spent executing) per command since start (``INFO commandstats``; the
    commands scripts run are counted too)."""
    calls: Calls = {}
    for name, value in redis_info(port, "commandstats").items():
        stats = dict(item.split("=", 1) for item in value.split(","))
        calls[name.removeprefix("cmdstat_")] = (int(stats["calls"]), int(stats["usec"]))
    return calls


def calls_between(before: Calls, after: Calls, name: str) -> tuple[int, int]:
    calls0, usec0 = before.get(name, (0, 0))
    calls1, usec1 = after.get(name, (0, 0))
    return calls1 - calls0, usec1 - usec0


def lease_owners(port: int) -> dict[str, int]:
    """How many upstream leases each worker holds."""
    keys = redis_call(port, "KEYS", f"{PREFIX}:lease:*") or []
    if not keys:
        return {}
    owners: dict[str, int] = {}
    for value in redis_call(port, "MGET", *(k.decode() for k in keys)):
        name = value.decode() if value is not None else "(expired)"
        owners[name] = owners.get(name, 0) + 1
    return owners


class _Discard(asyncio.Protocol):
    """A Redis connection whose replies are read and thrown away: an extra channel
    subscriber (``first`` = SUBSCRIBE), or the flood's publisher (replies to PUBLISH)."""

    def __init__(self, first: bytes = b"") -> None:
        self._first = first
        self.received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._first:
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(self._first)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)


def flood_messages(topics: int) -> list[bytes]:
    """PUBLISH commands of bus messages (``bus.redis.encode``'s layout) as a worker would
    send them: open-bar updates of ``topics`` symbols no feed serves and nobody subscribes to,
    so every worker reads, decodes and drops them, and no client sees them."""
    commands = []
    for index in range(topics):
        name = f"NOSUB{index:03d}"
        topic = '{"resolution":"1","symbol":"' + name + '"}'
        topic = "bars:" + topic
        text = json.dumps(
            {
                "type": "bars.update",
                "payload": {
                    "topic": topic,
                    "symbol": name,
                    "resolution": "1",
                    "time": 1_763_683_200_000,
                    "open": 91250.5,
                    "high": 91302.0,
                    "low": 91210.25,
                    "close": 91288.75,
                    "volume": 12.4821,
                    "closed": False,
                },
            },
            separators=(",", ":"),
        )
        message = "\n".join(("F", "cluster-check", topic, "1763683200000", "0", text))
        commands.append(_command("PUBLISH", CHANNEL, message))
    return commands


async def subscribe_extra(port: int, count: int) -> list[asyncio.BaseTransport]:
    """``count`` extra subscribers of the channel that read and discard (they stand for more
    workers: Redis writes every message to each)."""
    loop = asyncio.get_running_loop()
    transports: list[asyncio.BaseTransport] = []
    for _ in range(count):
        transport, _ = await loop.create_connection(
            lambda: _Discard(_command("SUBSCRIBE", CHANNEL)), "127.0.0.1", port
        )
        transports.append(transport)
    await asyncio.sleep(0.5)
    return transports


def close_all(transports: list[asyncio.BaseTransport]) -> None:
    for transport in transports:
        transport.close()


def channel_subscribers(port: int) -> int:
    reply = redis_call(port, "PUBSUB", "NUMSUB", CHANNEL)
    return int(reply[1])


async def flood(port: int, rate: float, stop: asyncio.Event) -> int:
    """Publish ``rate`` messages a second on the channel until ``stop``, written every
    millisecond or so (a few per write, as several owners' updates would interleave)."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(_Discard, "127.0.0.1", port)
    commands = flood_messages(200)
    sent, start = 0, time.monotonic()
    try:
        while not stop.is_set():
            due = int((time.monotonic() - start) * rate)
            if due > sent:
                transport.write(b"".join(commands[n % len(commands)] for n in range(sent, due)))
                sent = due
            await asyncio.sleep(0.001)
    finally:
        transport.close()
    return sent


# -- workers -------------------------------------------------------------------------------


@dataclass
class Worker:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def start_worker(
    name: str, port: int, redis_url: str, settings: dict[str, str], log_dir: Path
) -> Worker:
    """``marketcast serve`` with the cluster's settings; output to ``<log_dir>/<name>.log``.
    Runs in ``log_dir`` so no ``.env`` of the checkout applies."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETCAST_")}
    env.update(settings)
    env.update(
        {
            "MARKETCAST_HOST": "127.0.0.1",
            "MARKETCAST_PORT": str(port),
            "MARKETCAST_WORKER_ID": name,
            "MARKETCAST_STORE_URL": redis_url,
            "MARKETCAST_BUS_URL": redis_url,
            "MARKETCAST_REDIS_PREFIX": PREFIX,
        }
    )
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "marketcast.cli", "serve"],
            env=env,
            cwd=log_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Worker(name, port, process, log_path)


async def http_get(port: int, path: str, within: float = 5.0) -> tuple[int, bytes]:
    """(status, body) of one GET on a fresh connection (chunked bodies decoded)."""
    async with asyncio.timeout(within):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
            writer.write(request.encode() + b"\r\n")
            raw = await reader.read(-1)
        finally:
            writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    if any(line.lower().startswith("transfer-encoding: chunked") for line in lines[1:]):
        decoded, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            decoded, rest = decoded + rest[:size], rest[size + 2 :]
        body = decoded
    return status, body


async def wait_ready(worker: Worker, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while True:
        if worker.process.poll() is not None:
            raise RuntimeError(
                f"{worker.name} exited ({worker.process.returncode}); see {worker.log_path}"
            )
        try:
            status, _ = await http_get(worker.port, "/readyz", 2.0)
            if status == 200:
                return
        except (OSError, TimeoutError, ValueError, IndexError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{worker.name} not ready within {within:g} s; see {worker.log_path}"
            )
        await asyncio.sleep(0.2)


async def frames_sent(worker: Worker) -> int:
    """``marketcast_ws_messages_sent_total`` of one worker."""
    _, body = await http_get(worker.port, "/metrics")
    for line in body.decode().splitlines():
        if line.startswith("marketcast_ws_messages_sent_total "):
            return int(float(line.split()[1]))
    raise RuntimeError(f"{worker.name}: no marketcast_ws_messages_sent_total in /metrics")


# -- the run -------------------------------------------------------------------------------


@dataclass
class Cluster:
    redis: subprocess.Popen[bytes]
    redis_port: int
    owner: Worker
    relay: Worker
    #: Client process serving the owner's connections, and the relay's.
    owner_clients: Child
    relay_clients: Child


def cpu_s(pid: int) -> float:
    """CPU seconds every thread of ``pid`` has run so far: the sum of each thread's
    ``/proc/<pid>/task/<tid>/schedstat`` (nanoseconds), not ``/proc/<pid>/stat``'s 10 ms ticks,
    which are coarse against Redis's few hundred ms in a window."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # the thread ended meanwhile
    return total / 1e9


def stat_cpu_s(pid: int) -> float:
    """The same from ``/proc/<pid>/stat`` (user + system, in clock ticks): a cross-check."""
    user, system = cpu_times(pid)
    return user + system


async def measure(
    cluster: Cluster, name: str, seconds: float, extra: int = 0, *, injected: bool = False
) -> tuple[Window, dict[str, Any]]:
    """One window: CPU, PUBLISH count and frames received, over ``seconds``."""
    clients = (cluster.owner_clients, cluster.relay_clients)
    await asyncio.gather(
        *(c.ask({"cmd": "window", "t0": 0, "t1": 0}, "window", 10) for c in clients)
    )
    sent0 = [await frames_sent(w) for w in (cluster.owner, cluster.relay)]
    pids = (cluster.owner.pid, cluster.relay.pid, cluster.redis.pid)
    calls0, stats0 = command_calls(cluster.redis_port), redis_info(cluster.redis_port, "stats")
    ticks0 = [stat_cpu_s(pid) for pid in pids]
    cpu0, wall0 = [cpu_s(pid) for pid in pids], time.monotonic()
    await asyncio.sleep(seconds)
    cpu1, wall1 = [cpu_s(pid) for pid in pids], time.monotonic()
    ticks1 = [stat_cpu_s(pid) for pid in pids]
    calls1, stats1 = command_calls(cluster.redis_port), redis_info(cluster.redis_port, "stats")
    sent1 = [await frames_sent(w) for w in (cluster.owner, cluster.relay)]
    reports = await asyncio.gather(*(c.ask({"cmd": "report"}, "report", 30) for c in clients))
    wall = wall1 - wall0
    used = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
    published, _ = calls_between(calls0, calls1, "publish")
    scripts, script_usec = calls_between(calls0, calls1, "evalsha")
    received = [int(r["frames_since_window"]) for r in reports]
    window = Window(
        name=name,
        seconds=wall,
        owner_cpu_s=used[0],
        relay_cpu_s=used[1],
        redis_cpu_s=used[2],
        published=published,
        owner_deliveries=received[0],
        relay_deliveries=received[1],
        extra_subscribers=extra,
        injected=published if injected else 0,
    )
    commands = int(stats1["total_commands_processed"]) - int(stats0["total_commands_processed"])
    extras = {
        "proc_stat_cpu_s": [round(b - a, 2) for a, b in zip(ticks0, ticks1, strict=True)],
        "redis_commands_per_s": round(commands / wall),
        "redis_instantaneous_ops_per_sec": int(stats1["instantaneous_ops_per_sec"]),
        "redis_evalsha_per_s": round(scripts / wall),
        # Redis's own accounting of a script call (its commands included), no I/O.
        "redis_evalsha_usec_per_call": round(script_usec / scripts, 2) if scripts else None,
        "server_frames_sent": [b - a for a, b in zip(sent0, sent1, strict=True)],
        "closed_by_server": [r["closed"] for r in reports],
    }
    return window, extras


async def connect(child: Child, port: int, specs: list[list[str]], within: float = 120.0) -> None:
    reply = await child.ask(
        {
            "cmd": "connect",
            "host": "127.0.0.1",
            "port": port,
            "path": WS_PATH,
            "conns": [{"symbols": symbols} for symbols in specs],
            "timeout": 60.0,
            "concurrency": 32,
        },
        "connected",
        within,
    )
    if int(reply["failed"]):
        raise RuntimeError(
            f"{child.name}: {reply['failed']} connection(s) failed: {reply['errors']}"
        )


def bulk_specs(first: int, count: int, per_conn: int, symbols: int) -> list[list[str]]:
    """Connections ``first`` .. ``first + count - 1``: connection i watches symbols
    i·k .. i·k + k - 1 (mod ``symbols``), so every symbol gets the same number of them."""
    return [
        [symbol((i * per_conn + j) % symbols) for j in range(per_conn)]
        for i in range(first, first + count)
    ]


async def wait_leases(port: int, owner: str, keys: int, within: float = 15.0) -> dict[str, int]:
    deadline = time.monotonic() + within
    while True:
        owners = lease_owners(port)
        if owners.get(owner, 0) >= keys or time.monotonic() > deadline:
            return owners
        await asyncio.sleep(0.2)


async def run(args: argparse.Namespace, log_dir: Path) -> int:
    seconds = args.seconds
    anchor = math.floor(time.time() / 60) * 60 + 1.0
    names = [symbol(i) for i in range(args.symbols)]
    settings = {
        "MARKETCAST_SIM_SYMBOLS": ",".join(names),
        "MARKETCAST_SIM_TICK_INTERVAL": str(args.tick),
        "MARKETCAST_SIM_SPEED": str(SIM_SPEED),
        "MARKETCAST_SIM_ANCHOR": str(anchor),
        "MARKETCAST_STORE_CAPACITY": "200",
        "MARKETCAST_MAX_SUBSCRIPTIONS": str(max(200, args.symbols)),
        "MARKETCAST_RATE_LIMIT_BURST": str(max(250, args.symbols + 10)),
        "MARKETCAST_CLOSE_NOTICE_SECONDS": "0",
        "MARKETCAST_DRAIN_TIMEOUT": "1",
        "MARKETCAST_LOG_LEVEL": "info",
    }
    load_before = load_average()
    print(
        f"cluster-check: {args.symbols} symbols, a tick every {args.tick:g} s "
        f"(nominal {args.symbols / args.tick:,.0f} updates/s), {args.connections} connections "
        f"of {args.topics} topics; logs in {log_dir}",
        flush=True,
    )
    redis_port = free_port()
    redis = start_redis(redis_port, log_dir)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    workers: list[Worker] = []
    children: list[Child] = []
    extra_subs: list[asyncio.BaseTransport] = []
    try:
        ports = (free_port(), free_port())
        workers = [
            start_worker(f"worker-{i + 1}", ports[i], redis_url, settings, log_dir) for i in (0, 1)
        ]
        children = [
            await Child.start(
                f"cluster-clients-{w.name}",
                "scripts.bench.client",
                ["--cpu", str(CLIENT_CPU), "--nofile", str(args.connections + 500)],
                log_dir,
            )
            for w in workers
        ]
        for child in children:
            await child.expect("hello", 30)
        await asyncio.gather(*(wait_ready(w) for w in workers))
        cluster = Cluster(redis, redis_port, workers[0], workers[1], children[0], children[1])
        await asyncio.sleep(1.0)
        windows: list[tuple[Window, dict[str, Any]]] = []

        windows.append(await measure(cluster, "idle", seconds * 0.5))
        if args.flood_rate > 0:
            stop_flood = asyncio.Event()
            flooding = asyncio.create_task(flood(redis_port, args.flood_rate, stop_flood))
            await asyncio.sleep(0.5)
            windows.append(await measure(cluster, "flood", seconds, injected=True))
            extra_subs = await subscribe_extra(redis_port, args.flood_subscribers)
            windows.append(
                await measure(
                    cluster,
                    "flood_fanout",
                    seconds,
                    extra=channel_subscribers(redis_port) - 2,
                    injected=True,
                )
            )
            stop_flood.set()
            await flooding
            close_all(extra_subs)
            extra_subs = []
            await asyncio.sleep(0.5)
        await connect(cluster.owner_clients, cluster.owner.port, [names])
        owners = await wait_leases(redis_port, cluster.owner.name, args.symbols)
        print(f"cluster-check: leases held {owners}", flush=True)
        if owners.get(cluster.owner.name, 0) < args.symbols:
            print(
                f"cluster-check: WARNING {cluster.owner.name} does not hold every key's lease; "
                "the model's owner/relay split does not hold for this run",
                flush=True,
            )
        await asyncio.sleep(1.5)
        windows.append(await measure(cluster, "ingest", seconds))

        extra_subs = await subscribe_extra(redis_port, args.extra_subscribers)
        extra = channel_subscribers(redis_port) - 2
        windows.append(await measure(cluster, "fanout", seconds, extra=extra))
        close_all(extra_subs)
        extra_subs = []
        await asyncio.sleep(0.5)

        quarter = args.connections // 4
        rss0 = [rss_kib(w.pid) for w in workers]
        await connect(
            cluster.relay_clients,
            cluster.relay.port,
            bulk_specs(0, quarter, args.topics, args.symbols),
        )
        await asyncio.sleep(1.5)
        windows.append(await measure(cluster, "calibrate", seconds))
        await asyncio.gather(
            connect(
                cluster.owner_clients,
                cluster.owner.port,
                bulk_specs(0, 2 * quarter, args.topics, args.symbols),
            ),
            connect(
                cluster.relay_clients,
                cluster.relay.port,
                bulk_specs(quarter, quarter, args.topics, args.symbols),
            ),
        )
        await asyncio.sleep(2.0)
        rss1 = [rss_kib(w.pid) for w in workers]
        windows.append(await measure(cluster, "check", seconds * 1.5))
        final_owners = lease_owners(redis_port)
    finally:
        close_all(extra_subs)
        await asyncio.gather(*(c.stop({"cmd": "quit"}) for c in children), return_exceptions=True)
        stop_processes([w.process for w in workers])
        stop_processes([redis])

    conns = 2 * quarter
    kib = sum(rss1[i] - rss0[i] for i in (0, 1)) / (2 * conns)
    by_name = {w.name: w for w, _ in windows}
    print()
    print(windows_table(windows))
    costs = capacity.derive(
        by_name["idle"],
        by_name["ingest"],
        by_name["fanout"],
        by_name["calibrate"],
        by_name.get("flood"),
        by_name.get("flood_fanout"),
        delivery_us=args.delivery_us,
        kib_per_conn=kib,
        worker_base_mib=sum(rss0) / 2 / 1024,
    )
    print()
    print(check_table(costs, by_name["check"]))
    print()
    print(costs_text(costs, args.delivery_us is not None))
    print()
    plans = plan_text(costs)
    print(plans)
    record = {
        "event": "cluster_check",
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "load_average": {"before": load_before, "after": load_average()},
        "leases": {"after_ingest_connect": owners, "at_end": final_owners},
        "rss_kib": {"before": rss0, "after": rss1, "connections_per_worker": conns},
        "windows": [
            {
                **asdict(w),
                "cores": [round(w.owner, 4), round(w.relay, 4), round(w.redis, 4)],
                "updates_per_s": round(w.updates, 1),
                **extra,
            }
            for w, extra in windows
        ],
        "costs": costs_json(costs),
        "check": [
            {"process": n, "predicted": round(p, 4), "measured": round(m, 4), "ratio": round(r, 3)}
            for n, p, m, r in capacity.compare(costs, by_name["check"])
        ],
    }
    record["plans"] = plans_json(costs)
    print()
    print(json.dumps(record))
    return 0


# -- output --------------------------------------------------------------------------------


def windows_table(windows: list[tuple[Window, dict[str, Any]]]) -> str:
    rows = [
        "| window | s | updates/s | owner deliv/s | relay deliv/s | owner CPU % | relay CPU % "
        "| redis CPU % | redis cmds/s | extra subs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for w, extra in windows:
        rows.append(
            f"| {w.name} | {w.seconds:.1f} | {w.updates:,.0f} | {w.owner_rate:,.0f} "
            f"| {w.relay_rate:,.0f} | {100 * w.owner:.1f} | {100 * w.relay:.1f} "
            f"| {100 * w.redis:.1f} | {extra['redis_commands_per_s']:,} | {w.extra_subscribers} |"
        )
    return "\n".join(rows)


def check_table(costs: UnitCosts, window: Window) -> str:
    rows = [
        f"check window: {window.updates:,.0f} updates/s, owner {window.owner_rate:,.0f} and "
        f"relay {window.relay_rate:,.0f} deliveries/s",
        "",
        "| process | predicted CPU % | measured CPU % | measured / predicted |",
        "|---|---|---|---|",
    ]
    for name, predicted, measured, ratio in capacity.compare(costs, window):
        rows.append(f"| {name} | {100 * predicted:.1f} | {100 * measured:.1f} | {ratio:.2f} |")
    return "\n".join(rows)


def costs_json(costs: UnitCosts) -> dict[str, float]:
    values = {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(costs).items()}
    values["ingest_us"] = round(costs.ingest_us, 3)
    values["base_us"] = round(costs.base_us, 3)
    return values


def costs_text(costs: UnitCosts, delivery_given: bool) -> str:
    source = "given" if delivery_given else "measured on the relay, calibrate window"
    return "\n".join(
        [
            "per-unit costs (µs of one core per unit):",
            f"  delivery, per frame to a client ........ {costs.delivery_us:6.2f}  ({source})",
            f"  bus intake, per message, every worker .. {costs.recv_us:6.2f}"
            f"  (at {costs.recv_rate:,.0f} msg/s; {costs.recv_fast_us:.2f} at "
            f"{costs.recv_fast_rate:,.0f} msg/s)",
            f"  ingest, per update, the owner .......... {costs.ingest_us:6.2f}"
            f"  (= {costs.own_us:.2f} own + {costs.recv_us:.2f} reading its echo)",
            f"  redis, per update with 2 subscribers ... {costs.update_us:6.2f}"
            f"  (calibrate window; = {costs.base_us:.2f} script + 2 x {costs.fanout_us:.2f}"
            " per subscriber)",
            f"  redis, per bare PUBLISH, pipelined ..... {costs.publish_us:6.2f}"
            f"  (2 subscribers, no script; {costs.fanout_fast_us:.2f} per extra subscriber"
            f" at {costs.recv_fast_rate:,.0f} msg/s)",
            f"  idle: owner {100 * costs.owner_idle:.1f} %, relay {100 * costs.relay_idle:.1f} %,"
            f" redis {100 * costs.redis_idle:.1f} % of a core",
            f"  memory: {costs.kib_per_conn:.1f} KiB per connection, "
            f"{costs.worker_base_mib:.0f} MiB per worker before clients",
        ]
    )


#: The assumed loads of the capacity plan (``capacity.Load`` documents the defaults).
PLAN_LOADS = (Load(connections=100_000, symbols=2_000), Load(connections=1_000_000, symbols=2_000))


def _plan_row(label: str, p: capacity.Plan | None) -> str:
    if p is None:
        return f"| {label} | no plan up to 1,024 shards | | | | | |"
    if p.workers is None:
        return (
            f"| {label} | none: bus intake alone {p.intake:,.0f} msg/s fills a worker | | "
            f"| {p.shards} | | |"
        )
    verdict = "ok" if p.redis_ok else "**over budget**"
    return (
        f"| {label} | {p.workers:,} | {p.conns_per_worker:,.0f} "
        f"| {100 * (p.worker_cpu or 0):.0f} % (intake {p.intake:,.0f} msg/s) | {p.shards} "
        f"| {p.subscribers_per_node:,} "
        f"| {100 * p.redis_cpu:.0f} % {verdict} |"
    )


def plan_text(costs: UnitCosts, budget: Budget | None = None) -> str:
    budget = budget or Budget()
    lines = [
        f"capacity plan (budget: a worker {100 * budget.worker_cpu:.0f} % of a core, Redis "
        f"{100 * budget.redis_cpu:.0f} % of its core, at most {budget.conns_per_worker:,} "
        "connections per worker)",
    ]
    for load in PLAN_LOADS:
        lines += [
            "",
            f"{load.connections:,} connections on {load.symbols:,} symbols: "
            f"{load.topics_per_symbol} topics per symbol x {load.updates_per_topic_s:g} update/s = "
            f"{load.bus_rate:,.0f} updates/s on the bus; {load.topics_per_connection} topics per "
            f"connection = {load.delivery_rate:,.0f} deliveries/s",
            "",
            "| setup | workers | conns/worker | worker CPU | Redis nodes | subscribers/node "
            "| Redis CPU/node |",
            "|---|---|---|---|---|---|---|",
            _plan_row("one channel, one Redis", capacity.plan(costs, load, budget)),
            _plan_row(
                "channel sharded by topic, clients anywhere",
                capacity.smallest(costs, load, budget, affinity=False),
            ),
            _plan_row(
                "sharded, clients routed by topic group",
                capacity.smallest(costs, load, budget, affinity=True),
            ),
        ]
        one = capacity.plan(costs, load, budget)
        feeds = capacity.channel_ceiling(costs, load.bus_rate, budget)
        if feeds:
            lines.append(f"one channel on one Redis core feeds at most {feeds:,} workers here")
        else:
            lines.append(
                f"one Redis core cannot carry {load.bus_rate:,.0f} updates/s within its "
                f"{100 * (budget.redis_cpu):.0f} % budget with even one subscriber: the "
                f"store-and-publish scripts alone take {load.bus_rate * costs.base_us / 1e6:.2f} "
                "cores"
            )
        if one.workers is not None:
            subs = one.load.connections / one.workers * load.topics_per_connection
            share = capacity.coverage(subs, load.topics)
            lines.append(
                f"a worker of {one.workers:,} has clients on {100 * share:.0f} % of the "
                f"{load.topics:,} topics (uniform popularity), so per-topic subscriptions "
                f"without routing clients by topic would cut its intake by "
                f"{100 * (1 - share):.0f} % only"
            )
    bare = max(costs.publish_us - costs.subscribers * costs.fanout_at_scale, 0.0)
    lines += [
        "",
        "one channel on one Redis core: most messages/s it carries, by workers subscribed "
        f"({costs.fanout_at_scale:.2f} µs per message per worker)",
        "",
        f"| workers | store + publish script ({costs.base_us:.1f} µs) "
        f"| bare PUBLISH, store elsewhere ({bare:.1f} µs) |",
        "|---|---|---|",
    ]
    for workers in (2, 10, 25, 50, 100, 200):
        lines.append(
            f"| {workers} | {capacity.channel_rate_ceiling(costs, workers, budget):,.0f} "
            f"| {capacity.channel_rate_ceiling(costs, workers, budget, base_us=bare):,.0f} |"
        )
    lines += [
        "",
        f"ceilings (extrapolated): a worker does nothing but read the bus at "
        f"{capacity.intake_ceiling(costs, budget):,.0f} msg/s; one Redis core writes at most "
        f"{capacity.fanout_ceiling(costs, budget):,.0f} messages x subscribers per second",
    ]
    return "\n".join(lines)


def plans_json(costs: UnitCosts, budget: Budget | None = None) -> list[dict[str, Any]]:
    """The plans of ``plan_text``, one record each."""
    records: list[dict[str, Any]] = []
    for load in PLAN_LOADS:
        for setup, found in (
            ("one channel", capacity.plan(costs, load, budget)),
            ("sharded, clients anywhere", capacity.smallest(costs, load, budget, affinity=False)),
            ("sharded, routed by topic", capacity.smallest(costs, load, budget, affinity=True)),
        ):
            record: dict[str, Any] = {"connections": load.connections, "setup": setup}
            if found is not None:
                record.update(
                    workers=found.workers,
                    redis_nodes=found.shards,
                    worker_cpu=None if found.worker_cpu is None else round(found.worker_cpu, 3),
                    redis_cpu_per_node=round(found.redis_cpu, 3),
                    feasible=found.feasible,
                )
            records.append(record)
    return records


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.cluster_check",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("--symbols", type=int, default=200, help="simulator symbols (200)")
    parser.add_argument("--tick", type=float, default=0.1, help="seconds between ticks (0.1)")
    parser.add_argument(
        "--connections", type=int, default=1000, help="client connections, half per worker"
    )
    parser.add_argument("--topics", type=int, default=2, help="symbols per connection (2)")
    parser.add_argument(
        "--extra-subscribers", type=int, default=24, help="raw channel readers in 'fanout' (24)"
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per window (4)")
    parser.add_argument(
        "--flood-rate",
        type=float,
        default=16_000,
        help="messages/s the 'flood' windows publish on the channel (16,000; 0: no such window)",
    )
    parser.add_argument(
        "--flood-subscribers",
        type=int,
        default=8,
        help="raw channel readers in 'flood_fanout' (8)",
    )
    parser.add_argument(
        "--delivery-us",
        type=float,
        help="CPU per delivery (µs) to use instead of the one measured in 'calibrate'",
    )
    parser.add_argument("--log-dir", type=Path, help="keep the processes' logs here")
    args = parser.parse_args(argv)
    if args.connections < 8 or args.symbols < 1 or args.topics < 1:
        parser.error("need at least 8 connections, 1 symbol and 1 topic per connection")
    if args.topics > args.symbols:
        parser.error("--topics cannot exceed --symbols")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix="marketcast-cluster-check-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(run(args, log_dir))


if __name__ == "__main__":
    raise SystemExit(main())
