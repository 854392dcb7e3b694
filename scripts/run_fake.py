"""``make run-fake``: the fake upstreams plus ``marketcast serve`` configured against them.

Starts ``marketcast fake-upstreams`` (Binance on ``--binance-port``, default 8911, Twelve Data
on ``--twelvedata-port``, default 8912, 60x time), then the server (on ``MARKETCAST_PORT``,
default 8000) with Binance serving BTCUSDT/ETHUSDT and Twelve Data serving EUR/USD/GBP/USD;
Ctrl-C stops both. Other arguments go to ``fake-upstreams`` (e.g. ``--drop-every 30``), so
faults can be tried against a running server.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time

FAKE = [
    "--speed",
    "60",
    "--push-interval",
    "0.5",
    "--api-key",
    "offline-dev-key",
]


def settings(binance_port: int, twelvedata_port: int) -> dict[str, str]:
    """The server's settings against the fakes on these ports."""
    return {
        "MARKETCAST_BINANCE_SYMBOLS": "BTCUSDT,ETHUSDT",
        "MARKETCAST_BINANCE_WS_URL": f"ws://127.0.0.1:{binance_port}",
        "MARKETCAST_BINANCE_REST_URL": f"http://127.0.0.1:{binance_port}",
        "MARKETCAST_TWELVEDATA_SYMBOLS": "EUR/USD,GBP/USD",
        "MARKETCAST_TWELVEDATA_REST_URL": f"http://127.0.0.1:{twelvedata_port}",
        "MARKETCAST_TWELVEDATA_API_KEY": "offline-dev-key",
        # The fakes' clock runs 60x: a one-minute bar every second, so poll often.
        "MARKETCAST_TWELVEDATA_MIN_POLL": "2",
    }


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"run-fake: the fake upstreams did not listen on port {port}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="run_fake", description=__doc__.splitlines()[0])
    parser.add_argument("--binance-port", type=int, default=8911)
    parser.add_argument("--twelvedata-port", type=int, default=8912)
    ports, faults = parser.parse_known_args(argv)
    # SIGTERM (an editor's stop button, `timeout`) must stop both children too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    command = [sys.executable, "-m", "marketcast.cli"]
    listen = [
        *("--binance-port", str(ports.binance_port)),
        *("--twelvedata-port", str(ports.twelvedata_port)),
    ]
    fakes = subprocess.Popen([*command, "fake-upstreams", *listen, *FAKE, *faults])
    server: subprocess.Popen[bytes] | None = None
    try:
        wait_for_port(ports.binance_port)
        wait_for_port(ports.twelvedata_port)
        env = {**os.environ, **settings(ports.binance_port, ports.twelvedata_port)}
        server = subprocess.Popen([*command, "serve"], env=env)
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        for process in (server, fakes):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
