"""``make run-fake``: the fake upstreams plus ``marketcast serve`` configured against them.

Starts ``marketcast fake-upstreams`` (Binance on :8911, Twelve Data on :8912, 60x time), then
the server on 127.0.0.1:8000 with Binance serving BTCUSDT/ETHUSDT and Twelve Data serving
EUR/USD/GBP/USD; Ctrl-C stops both. Extra arguments go to ``fake-upstreams`` (e.g.
``--drop-every 30``), so faults can be tried against a running server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

FAKE = [
    "--binance-port",
    "8911",
    "--twelvedata-port",
    "8912",
    "--speed",
    "60",
    "--push-interval",
    "0.5",
    "--api-key",
    "offline-dev-key",
]
SETTINGS = {
    "MARKETCAST_BINANCE_SYMBOLS": "BTCUSDT,ETHUSDT",
    "MARKETCAST_BINANCE_WS_URL": "ws://127.0.0.1:8911",
    "MARKETCAST_BINANCE_REST_URL": "http://127.0.0.1:8911",
    "MARKETCAST_TWELVEDATA_SYMBOLS": "EUR/USD,GBP/USD",
    "MARKETCAST_TWELVEDATA_REST_URL": "http://127.0.0.1:8912",
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


def main() -> int:
    # SIGTERM (an editor's stop button, `timeout`) must stop both children too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    command = [sys.executable, "-m", "marketcast.cli"]
    fakes = subprocess.Popen([*command, "fake-upstreams", *FAKE, *sys.argv[1:]])
    server: subprocess.Popen[bytes] | None = None
    try:
        wait_for_port(8911)
        wait_for_port(8912)
        server = subprocess.Popen([*command, "serve"], env={**os.environ, **SETTINGS})
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
    raise SystemExit(main())
