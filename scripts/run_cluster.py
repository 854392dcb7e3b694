"""``make run-cluster``: Redis (started if needed) and N marketcast workers on one machine.

Workers listen on consecutive ports from ``--port`` (default ``MARKETCAST_PORT``, else 8000)
and share one Redis for the candle store, the bus and the upstream leases: a private
redis-server started here on a free port, unless ``--redis-url`` names one (then nothing is
started, and that Redis's database gets the cluster's keys). Any TCP or HTTP load balancer
that passes WebSocket upgrades (nginx, HAProxy, Envoy, a cloud LB) can spread clients over
them; none is started here.
Ctrl-C stops every worker, then the Redis this script started.

Settings other than the port, worker id, store and bus URLs come from the environment
(``MARKETCAST_*``) as for ``marketcast serve``; each worker's output is prefixed with its id.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO
from urllib.parse import urlsplit


def redis_answers(host: str, port: int) -> bool:
    """A raw RESP PING: no client library needed to check for a server."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(port: int) -> subprocess.Popen[bytes]:
    """A throw-away redis-server on 127.0.0.1:``port`` (nothing saved to disk)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("run-cluster: redis-server is not installed; run `make setup` first")
    workdir = tempfile.mkdtemp(prefix="marketcast-redis-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        # Its own session: a terminal's Ctrl-C reaches only this script, which stops the
        # workers first (they release their leases in Redis) and Redis last.
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while not redis_answers("127.0.0.1", port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"run-cluster: redis-server did not start on port {port}")
        time.sleep(0.05)
    print(f"run-cluster: started redis-server on 127.0.0.1:{port} (pid {process.pid})")
    return process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def relay(prefix: str, stream: IO[bytes]) -> None:
    """Copy a worker's output line by line, prefixed with its id."""
    for line in iter(stream.readline, b""):
        sys.stdout.write(f"[{prefix}] {line.decode(errors='replace')}")
        sys.stdout.flush()


def start_worker(
    name: str, port: int, redis_url: str, extra: dict[str, str]
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(extra)
    env.update(
        {
            "MARKETCAST_PORT": str(port),
            "MARKETCAST_WORKER_ID": name,
            "MARKETCAST_STORE_URL": redis_url,
            "MARKETCAST_BUS_URL": redis_url,
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "marketcast.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # Its own session, so it gets exactly one signal (SIGTERM, from ``stop``): a second
        # one would cut its drain short.
        start_new_session=True,
    )
    assert process.stdout is not None
    threading.Thread(target=relay, args=(name, process.stdout), daemon=True).start()
    return process


def stop(processes: list[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    """SIGTERM (workers drain and release their leases), then SIGKILL what lingers."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_cluster", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="how many workers (default 2)")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("MARKETCAST_PORT", "8000")),
        help="first worker's port (default: MARKETCAST_PORT, else 8000)",
    )
    parser.add_argument(
        "--redis-url",
        default="",
        help="an existing Redis for store, bus and leases (default: start a private one)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.workers <= 64:
        parser.error(f"--workers must be between 1 and 64, got {args.workers}")
    redis: subprocess.Popen[bytes] | None = None
    if args.redis_url:
        url = urlsplit(args.redis_url)
        if url.scheme not in {"redis", "rediss"}:
            parser.error(f"--redis-url must be redis://host:port/db, got {args.redis_url!r}")
        host, redis_port = url.hostname or "127.0.0.1", url.port or 6379
        if not redis_answers(host, redis_port):
            raise SystemExit(f"run-cluster: no Redis answers at {host}:{redis_port}")
        redis_url = args.redis_url
    else:
        # Never a Redis that happens to answer on 6379: its data is someone else's.
        redis_port = free_port()
        redis = start_redis(redis_port)
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
    extra: dict[str, str] = {}
    if float(os.environ.get("MARKETCAST_SIM_SPEED", "1")) != 1:
        # Simulated clocks only agree across workers with a common anchor.
        extra["MARKETCAST_SIM_ANCHOR"] = os.environ.get("MARKETCAST_SIM_ANCHOR", str(time.time()))

    workers = [
        start_worker(f"worker-{i + 1}", args.port + i, redis_url, extra)
        for i in range(args.workers)
    ]
    ports = ", ".join(f"http://127.0.0.1:{args.port + i}" for i in range(args.workers))
    print(f"run-cluster: {args.workers} workers on {ports}; Ctrl-C stops them all")

    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 0
    try:
        while not stopping.wait(0.2):
            exited = [w for w in workers if w.poll() is not None]
            if exited:
                print(f"run-cluster: a worker exited ({exited[0].returncode}); stopping all")
                code = 1
                break
    finally:
        stop(workers)
        if redis is not None:
            stop([redis])
            print("run-cluster: stopped the redis-server it had started")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
