"""``marketcast serve`` in a subprocess on 127.0.0.1: started with ``MARKETCAST_*`` settings,
waited for until ``/readyz`` answers, stopped with SIGTERM (then SIGKILL).

Why here, shared: the integration tests' harness (``tests/integration/harness.py``) and the
order-book soak (``scripts.soak.orderbook``) start the server the same way, and a script
cannot import the tests' harness (it needs the test-only frame checks).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

#: Seconds a server may take to answer ``/readyz``: bounded only to name a hang (a loaded
#: machine starts slowly).
READY_WITHIN = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Endpoint:
    """Where a marketcast server on 127.0.0.1 answers."""

    port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/ws"


@dataclass
class ServeProcess(Endpoint):
    """A running ``marketcast serve``: its port, process and log file."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start(tmp_dir: Path, port: int, settings: Mapping[str, object]) -> ServeProcess:
    """Launch the server (not waiting for it): ``settings`` become ``MARKETCAST_*`` variables
    on top of an environment cleared of the caller's own ``MARKETCAST_*``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETCAST_")}
    env.update({f"MARKETCAST_{k.upper()}": str(v) for k, v in settings.items()})
    env["MARKETCAST_PORT"] = str(port)
    env["MARKETCAST_HOST"] = "127.0.0.1"
    log_path = tmp_dir / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "marketcast.cli", "serve"],
            env=env,
            cwd=tmp_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return ServeProcess(port, process, log_path)


def wait_ready(server: ServeProcess, timeout: float = READY_WITHIN) -> None:
    """Return once ``/readyz`` answers 200; raise with the log if the server exits first or
    is not ready within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{server.http}/readyz", timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server not ready within {timeout}s:\n{server.log()}")


def stop(server: ServeProcess) -> None:
    """SIGTERM, then SIGKILL if it has not ended within 15 s."""
    process = server.process
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@contextlib.contextmanager
def running(
    tmp_dir: Path, settings: Mapping[str, object], *, port: int | None = None
) -> Iterator[ServeProcess]:
    """The server, ready, for the ``with`` block; stopped afterwards."""
    server = start(tmp_dir, free_port() if port is None else port, settings)
    try:
        wait_ready(server)
        yield server
    finally:
        stop(server)


@contextlib.asynccontextmanager
async def running_in_thread(
    tmp_dir: Path, settings: Mapping[str, object], *, port: int | None = None
) -> AsyncIterator[ServeProcess]:
    """``running`` entered and left in a thread, so that fakes serving on the caller's own
    event loop (fake Binance, fake Twelve Data) keep answering while the server starts."""
    manager = running(tmp_dir, settings, port=port)
    server = await asyncio.to_thread(manager.__enter__)
    try:
        yield server
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)
