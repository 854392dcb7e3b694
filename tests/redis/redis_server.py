"""A private ``redis-server`` on a free 127.0.0.1 port, started and stopped by the tests.

Why a private one: tests must never touch a Redis someone else uses (the machine's 6379), and
the fault tests stop and restart theirs. Nothing is persisted (``--save ""``,
``--appendonly no``), so a restart loses every key, as a crashed cache would.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.harness import free_port


def require_redis_server() -> str:
    """The ``redis-server`` binary, or a failed test run saying how to get one.

    Never a skip: under CI a missing Redis must fail the run, and locally a silent skip would
    hide that the cluster code went untested.
    """
    path = shutil.which("redis-server")
    if path is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(
                "redis-server is not installed on this CI machine: `make setup` installs it "
                "(apt-get install -y redis-server); the Redis tests cannot run without it",
                pytrace=False,
            )
        pytest.fail(
            "redis-server is not installed: run `make setup` (it installs the Debian package "
            "redis-server), then run the tests again",
            pytrace=False,
        )
    return path


class RedisServer:
    """One redis-server process; ``stop``/``start`` keep the same port for fault tests."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.binary = require_redis_server()
        self.directory = directory
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            raise RuntimeError("redis-server already running")
        log = (self.directory / f"redis-{self.port}.log").open("ab")
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
        log.close()
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
        """A raw RESP PING, so checking the server needs no client library or event loop."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@contextmanager
def running_redis(directory: Path) -> Iterator[RedisServer]:
    """A started redis-server in ``directory``, stopped on exit."""
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
