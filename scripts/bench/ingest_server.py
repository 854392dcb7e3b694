"""The ingest scenario's server process: marketcast fed by ``ingest_feed.KlineFeed``.

Run by ``ingest`` as ``python -m scripts.bench.ingest_server --cpu 0 --symbols N`` and driven
over stdin like ``scripts.bench.server``:

- ``want``: every key of every symbol is wanted here (``StreamManager.acquire``, what a first
  subscriber does), so every resolution is aggregated, stored and published whether or not a
  client subscribes to it — and, on Redis, this worker takes every key's lease, as the only
  worker of a cluster does. Answers ``wanted`` with the time it took.
- ``drive``: run ``KlineDriver`` for a window; answers ``driven`` with its counts.
- ``stop``: shut down and exit.

marketcast is built as deployed (``create_app``, served by uvicorn with the options of
``marketcast serve``), with this feed instead of the configured ones; store and bus come from
``MARKETCAST_STORE_URL`` / ``MARKETCAST_BUS_URL`` as set by the orchestrator.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any, cast

import marketcast
from marketcast.app import create_app
from marketcast.settings import Settings
from marketcast.streams import StreamManager

from .common import emit, pin_to_cpu, raise_nofile, read_command, stdin_reader
from .gcmeter import GcMeter
from .ingest_feed import KlineDriver, KlineFeed, drive_window
from .server import event_loop_factory, listening_socket, reader_or_exit
from .targets.uvicorn_host import UvicornHost

#: Keys acquired at once while every key is being wanted: well under redis-py's asyncio pool
#: of 100 connections, which refuses a command beyond it (``MaxConnectionsError``) rather than
#: queueing it, and marketcast counts that as Redis unreachable.
WANT_CONCURRENCY = 32


def _ws_options(app: Any, settings: Settings) -> tuple[Any, bool]:
    """The WebSocket protocol and deflate switch ``marketcast serve`` uses (as the fan-out
    target reads them), or uvicorn's defaults where this bench version lacks that helper."""
    try:
        from .targets.marketcast import deployed_ws
    except ImportError:
        return "websockets-sansio", bool(getattr(settings, "ws_per_message_deflate", False))
    ws, deflate = deployed_ws(app, settings)
    return ws, deflate


def _source_dir() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(marketcast.__file__)))


async def want_all(streams: StreamManager, feed: KlineFeed) -> dict[str, Any]:
    began = time.monotonic()
    keys = [key for per_symbol in feed.keys for key in per_symbol]
    failed = 0
    for first in range(0, len(keys), WANT_CONCURRENCY):
        outcomes = await asyncio.gather(
            *(streams.acquire(key) for key in keys[first : first + WANT_CONCURRENCY]),
            return_exceptions=True,
        )
        failed += sum(1 for outcome in outcomes if isinstance(outcome, BaseException))
    return {
        "keys": len(keys),
        "failed": failed,
        "watched": len(feed.watched),
        "seconds": round(time.monotonic() - began, 2),
    }


async def run(args: argparse.Namespace, nofile: tuple[int, int]) -> None:
    os.environ.setdefault("MARKETCAST_LOG_LEVEL", "warning")
    if args.redis_url:
        os.environ["MARKETCAST_STORE_URL"] = args.redis_url
        os.environ["MARKETCAST_BUS_URL"] = args.redis_url
    settings = Settings()
    feed = KlineFeed(args.symbols, calls=args.calls)
    app = create_app(settings, feeds=[feed])
    streams = cast(StreamManager, app.state.streams)
    ws, deflate = _ws_options(app, settings)
    host = UvicornHost(
        app,
        lifespan="on",
        ws=ws,
        per_message_deflate=deflate,
        max_message_bytes=settings.max_message_bytes,
        ping_interval=settings.ws_ping_interval,
        ping_timeout=settings.ws_ping_timeout,
    )
    sock = listening_socket(0)
    ready = asyncio.Event()
    serving = asyncio.create_task(host.serve(sock, ready.set), name="serve")
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait([serving, waiting], return_when=asyncio.FIRST_COMPLETED)
    if not ready.is_set():
        waiting.cancel()
        await serving
        raise RuntimeError("marketcast stopped before it was ready")
    emit(
        "ready",
        port=sock.getsockname()[1],
        pid=os.getpid(),
        nofile=list(nofile),
        source=f"marketcast {marketcast.__version__} from {_source_dir()}",
        store=settings.store_url.split("://", 1)[0],
        batched=hasattr(streams, "on_candles") and args.calls == "batch",
    )
    driver = KlineDriver(feed, args.symbols, args.connections)
    gc_meter = GcMeter()
    gc_meter.install()
    reader = await stdin_reader()
    while True:
        command = await reader_or_exit(read_command(reader), serving)
        if command is None or command["cmd"] == "stop":
            break
        if command["cmd"] == "want":
            emit("wanted", **await want_all(streams, feed))
        elif command["cmd"] == "drive":
            emit("driven", **await drive_window(driver, gc_meter, command))
        else:
            raise ValueError(f"unknown ingest server command {command['cmd']!r}")
    host.stop()
    await asyncio.wait_for(serving, 30)
    emit("bye")


def main() -> None:
    parser = argparse.ArgumentParser(description="ingest benchmark server process")
    parser.add_argument("--cpu", type=int, required=True, help="core to pin this process to")
    parser.add_argument("--symbols", type=int, required=True, help="benchmark symbols")
    parser.add_argument("--connections", type=int, default=8, help="upstream connections")
    parser.add_argument("--calls", default="batch", help="batch (on_candles) or each")
    parser.add_argument("--redis-url", help="Redis store and bus (default: memory)")
    parser.add_argument("--nofile", type=int, default=20_000, help="open-files limit wanted")
    parser.add_argument("--loop", default="asyncio", help="asyncio (default) or uvloop")
    args = parser.parse_args()
    pin_to_cpu(args.cpu)
    nofile = raise_nofile(args.nofile)
    with asyncio.Runner(loop_factory=event_loop_factory(args.loop)) as runner:
        runner.run(run(args, nofile))


if __name__ == "__main__":
    main()
