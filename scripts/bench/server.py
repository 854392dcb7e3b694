"""The server-under-test process: one target, pinned to one core, driven over stdin.

Run by the orchestrator as ``python -m scripts.bench.server --target NAME --cpu 0``. It binds
a listening socket on 127.0.0.1 (an ephemeral port, reported in the ``ready`` event), serves
the target on it, and obeys command lines:

- ``publish``: run the publisher (``publisher.run_publisher``) with the given mode, rate and
  window; answers ``published`` with the counts once it is done.
- ``stop``: shut the target down and exit.

The publisher runs as a task next to the server, in the same event loop as every client
connection: exactly what a feed does in production.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import os
import socket
from collections.abc import Callable
from typing import Any

from .common import emit, pin_to_cpu, raise_nofile, read_command, stdin_reader
from .gcmeter import GcMeter
from .publisher import run_publisher
from .targets import Target, build_target


def listening_socket(sndbuf: int) -> socket.socket:
    """A socket bound to an ephemeral port on 127.0.0.1.

    ``sndbuf`` > 0 fixes the kernel send buffer of every accepted connection (Linux copies it
    from the listening socket): see ``Scenario.server_sndbuf``.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if sndbuf > 0:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    sock.bind(("127.0.0.1", 0))
    return sock


async def run(target: Target, topics: int, nofile: tuple[int, int], sndbuf: int) -> None:
    sock = listening_socket(sndbuf)
    port = sock.getsockname()[1]
    ready = asyncio.Event()
    serving = asyncio.create_task(target.serve(sock, ready.set), name="serve")
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait([serving, waiting], return_when=asyncio.FIRST_COMPLETED)
    if not ready.is_set():
        waiting.cancel()
        await serving  # re-raises why the target could not start
        raise RuntimeError(f"target {target.name} stopped before it was ready")
    emit("ready", port=port, pid=os.getpid(), nofile=list(nofile), source=target.source)
    reader = await stdin_reader()
    publishing: asyncio.Task[None] | None = None
    next_seq = 0
    gc_meter = GcMeter()
    gc_meter.install()

    async def publish(command: dict[str, Any]) -> None:
        nonlocal next_seq
        if command.get("gc_freeze"):
            # The default for every target (``--no-gc-freeze`` turns it off): everything
            # alive after start-up (connections, history) is moved out of the collector's
            # reach, as marketcast's own ``MARKETCAST_GC_FREEZE`` does, so that every server
            # gets the same GC treatment.
            gc.collect()
            gc.freeze()
        gc_before = gc_meter.snapshot()
        result = await run_publisher(
            target.publish,
            topics=topics,
            mode=str(command["mode"]),
            rate=float(command.get("rate", 0)),
            t0=int(command["t0"]),
            t1=int(command["t1"]),
            first_seq=next_seq,
        )
        next_seq = result.next_seq
        gc_after = gc_meter.snapshot()
        collector = {
            key: [b - a for a, b in zip(gc_before[key], gc_after[key], strict=True)]
            for key in gc_after
        }
        emit("published", **result.to_json(), **collector)

    while True:
        command = await reader_or_exit(read_command(reader), serving)
        if command is None or command["cmd"] == "stop":
            break
        if command["cmd"] == "publish":
            if publishing is not None and not publishing.done():
                raise RuntimeError("publish received while the previous one is still running")
            publishing = asyncio.create_task(publish(command), name="publisher")
        else:
            raise ValueError(f"unknown server command {command['cmd']!r}")
    if publishing is not None:
        publishing.cancel()
    target.stop()
    await asyncio.wait_for(serving, 15)
    emit("bye")


async def reader_or_exit(reading: Any, serving: asyncio.Task[None]) -> dict[str, Any] | None:
    """The next command; if the server task ends first, re-raise what ended it."""
    read = asyncio.ensure_future(reading)
    await asyncio.wait([read, serving], return_when=asyncio.FIRST_COMPLETED)
    if read.done():
        result: dict[str, Any] | None = read.result()
        return result
    read.cancel()
    await serving
    raise RuntimeError("the server under test stopped serving on its own")


def apply_gc_choice(*, freeze: bool) -> None:
    """``--no-gc-freeze``: marketcast's own freezes off too (its Settings read the variable
    when the target builds the app), so that no server freezes; the baselines have no such
    setting, and ``publish`` is told by the orchestrator not to freeze any of them. With
    freezing on, marketcast keeps its setting (a caller's ``MARKETCAST_GC_FREEZE`` wins)."""
    if not freeze:
        os.environ["MARKETCAST_GC_FREEZE"] = "false"


def event_loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop every target runs on: asyncio's own (the default) or uvloop, to
    measure what uvloop would give (``--loop uvloop``, needs uvloop installed)."""
    if name == "asyncio":
        return None
    if name != "uvloop":
        raise SystemExit(f"unknown event loop {name!r}: expected asyncio or uvloop")
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        raise SystemExit("--loop uvloop needs uvloop: run with `uv run --with uvloop`") from None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def main() -> None:
    parser = argparse.ArgumentParser(description="benchmark server-under-test process")
    parser.add_argument("--target", required=True, help="marketcast, fastws, websockets, naive")
    parser.add_argument("--cpu", type=int, required=True, help="core to pin this process to")
    parser.add_argument("--topics", type=int, required=True, help="benchmark symbols served")
    parser.add_argument("--nofile", type=int, default=20_000, help="open-files limit wanted")
    parser.add_argument("--sndbuf", type=int, default=0, help="SO_SNDBUF of connections")
    parser.add_argument("--loop", default="asyncio", help="asyncio (default) or uvloop")
    parser.add_argument(
        "--frame", default="bar", help="bar (default), book (1-2 KB) or levels (order books)"
    )
    parser.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="no GC freeze at all: marketcast runs with MARKETCAST_GC_FREEZE=false",
    )
    args = parser.parse_args()
    pin_to_cpu(args.cpu)
    nofile = raise_nofile(args.nofile)
    apply_gc_choice(freeze=not args.no_gc_freeze)
    target = build_target(args.target, args.topics, args.frame)
    with asyncio.Runner(loop_factory=event_loop_factory(args.loop)) as runner:
        runner.run(run(target, args.topics, nofile, args.sndbuf))


if __name__ == "__main__":
    main()
